// Ablation of gdn_decode_subwarp.cu (an experiment record, not a kit kernel): the same file
// with ABLATE bits that remove one part of the work each, to find where the B=1 time above a
// row copy goes. Bits: 1 constant gates (no a, b, A_log, dt_bias loads, no gate math);
// 2 constant q, k (no loads); 4 constant v; 8 no output store; 16 no shuffles (partial sums
// only); 32 new_state = state (no update math). 63 = all of them: a row copy in this layout.
// Launch, layouts and math otherwise as kernels/gdn_decode_subwarp.cu at the commit that
// added this folder. Run: run.py beside it (on a GPU).
#include "gdn.cuh"

#ifndef ABLATE
#define ABLATE 0
#endif
// ABLATE bits: 1 constant gates; 2 constant q, k; 4 no v load; 8 no output store;
// 16 no shuffles; 32 pure copy (new_state = state).
#ifndef WARPS
#define WARPS 4
#endif
#ifndef ROWS_PER_WARP
#define ROWS_PER_WARP 8
#endif
#ifndef LANES_PER_ROW
#define LANES_PER_ROW 8
#endif
#ifndef LOAD_HINT
#define LOAD_HINT 1
#endif
#ifndef STORE_HINT
#define STORE_HINT 0
#endif

constexpr int kWarps = WARPS;
constexpr int kRowsPerWarp = ROWS_PER_WARP;
constexpr int kLanes = LANES_PER_ROW;           // lanes sharing one row
constexpr int kRowsPerStep = 32 / kLanes;       // rows covered by one warp-wide load
constexpr int kChunks = gdn::kDim / 4 / kLanes;  // float4 chunks of a row per lane
constexpr int kSteps = kRowsPerWarp / kRowsPerStep;
constexpr int kRowsPerBlock = kWarps * kRowsPerWarp;
constexpr int kSplit = gdn::kDim / kRowsPerBlock;
static_assert(kLanes == 4 || kLanes == 8 || kLanes == 16 || kLanes == 32,
              "LANES_PER_ROW must be 4, 8, 16 or 32");
static_assert(kWarps >= 1 && kWarps <= 32, "WARPS must be 1..32");
static_assert(kRowsPerWarp % kRowsPerStep == 0, "ROWS_PER_WARP must be a multiple of 32 / L");
static_assert(gdn::kDim % kRowsPerBlock == 0, "WARPS * ROWS_PER_WARP must divide 128");

extern "C" __global__ void __launch_bounds__(kWarps * 32)
    ablate(const gdn::bf16* __restrict__ q, const gdn::bf16* __restrict__ k,
                       const gdn::bf16* __restrict__ v, const float* state,
                       const float* __restrict__ A_log, const gdn::bf16* __restrict__ a,
                       const float* __restrict__ dt_bias, const gdn::bf16* __restrict__ b,
                       float scale, gdn::bf16* __restrict__ output, float* new_state,
                       int batch_size) {
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int sub = lane / kLanes;  // which of the step's rows this lane works on
  const int col = lane % kLanes;  // which float4 of each chunk of L float4s
  const int bh = blockIdx.x / kSplit;
  if (bh >= batch_size * gdn::kVHeads) return;
  const int h = bh % gdn::kVHeads;
  const int j = (bh / gdn::kVHeads) * gdn::kQKHeads + h / 2;
  // This lane's row in step t is row0 + t * kRowsPerStep.
  const int row0 = (blockIdx.x % kSplit) * kRowsPerBlock + warp * kRowsPerWarp + sub;
  const size_t off = (static_cast<size_t>(bh) * gdn::kDim + row0) * gdn::kDim + col * 4;

  float4 s[kSteps][kChunks];
  if (state != nullptr) {
#pragma unroll
    for (int t = 0; t < kSteps; ++t)
#pragma unroll
      for (int c = 0; c < kChunks; ++c)
        s[t][c] = gdn::load_state4<LOAD_HINT>(state + off + t * kRowsPerStep * gdn::kDim +
                                              c * kLanes * 4);
  } else {
#pragma unroll
    for (int t = 0; t < kSteps; ++t)
#pragma unroll
      for (int c = 0; c < kChunks; ++c) s[t][c] = make_float4(0.f, 0.f, 0.f, 0.f);
  }
  float4 kk[kChunks], qq[kChunks];
  float kq = 0.f;
#pragma unroll
  for (int c = 0; c < kChunks; ++c) {
#if ABLATE & 2
    kk[c] = make_float4(0.1f, 0.1f, 0.1f, 0.1f);
    qq[c] = make_float4(0.2f, 0.2f, 0.2f, 0.2f);
#else
    kk[c] = gdn::load_bf16x4(k + j * gdn::kDim + (c * kLanes + col) * 4);
    qq[c] = gdn::load_bf16x4(q + j * gdn::kDim + (c * kLanes + col) * 4);
#endif
    kq += gdn::dot4(kk[c], qq[c]);
  }
  float vr[kSteps];
#pragma unroll
  for (int t = 0; t < kSteps; ++t)
#if ABLATE & 4
    vr[t] = 0.5f;
#else
    vr[t] = __bfloat162float(v[bh * gdn::kDim + row0 + t * kRowsPerStep]);
#endif
#if ABLATE & 1
  const gdn::Gates gt{0.9f, 0.5f};
#else
  const gdn::Gates gt = gdn::gates(A_log, a, dt_bias, b, bh, h);
#endif
  // Each group of L lanes holds every column once, so a group sum is the full k . q.
  kq = gdn::group_sum<kLanes>(kq);

  float sk[kSteps], sq[kSteps];
#pragma unroll
  for (int t = 0; t < kSteps; ++t) {
    sk[t] = 0.f;
    sq[t] = 0.f;
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      sk[t] += gdn::dot4(s[t][c], kk[c]);
      sq[t] += gdn::dot4(s[t][c], qq[c]);
    }
  }
#pragma unroll
  for (int o = kLanes / 2; o > ((ABLATE & 16) ? kLanes : 0); o >>= 1) {
#pragma unroll
    for (int t = 0; t < kSteps; ++t) {
      sk[t] += __shfl_xor_sync(gdn::kFull, sk[t], o);
      sq[t] += __shfl_xor_sync(gdn::kFull, sq[t], o);
    }
  }

#pragma unroll
  for (int t = 0; t < kSteps; ++t) {
    const float delta = gt.beta * (vr[t] - gt.g * sk[t]);
#pragma unroll
    for (int c = 0; c < kChunks; ++c)
      gdn::store_state4<STORE_HINT>(
          new_state + off + t * kRowsPerStep * gdn::kDim + c * kLanes * 4,
          (ABLATE & 32) ? s[t][c] : gdn::update4(s[t][c], gt.g, delta, kk[c]));
    if (!(ABLATE & 8) && col == 0)
      output[bh * gdn::kDim + row0 + t * kRowsPerStep] =
          __float2bfloat16(scale * fmaf(gt.g, sq[t], kq * delta));
  }
}
