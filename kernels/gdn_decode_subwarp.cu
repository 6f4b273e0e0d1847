// GDN decode, several rows per load instruction (variant "subwarp", parent "streaming").
//
// Math: gdn.cuh's one-pass row update, as in rowsplit; s . k and s . q are summed over the
//   LANES_PER_ROW lanes that share a row.
// Launch: grid B * 8 * SPLIT blocks, WARPS * 32 threads, no shared memory, where
//   SPLIT = 128 / (WARPS * ROWS_PER_WARP), as in rowsplit. Inside a warp a row belongs to
//   LANES_PER_ROW (L) lanes, so one warp-wide 16-byte load covers 32 / L rows (L * 16 bytes of
//   each, 128-byte aligned runs for L >= 8) and a lane holds 32 / L float4 chunks of a row:
//   chunk c of lane l is columns 4 * (c * L + l % L) .. + 4. A warp walks its rows in
//   STEPS = ROWS_PER_WARP * L / 32 steps, all loaded before any reduction.
// Change from streaming: s.k and s.q are sums over L lanes (log2 L shuffle steps, each
//   serving 32 / L rows) instead of 32, cutting shuffles per row from 10 to 2 log2(L) * L / 32
//   (1.5 at L = 8) and the dependent-shuffle chain from 5 steps to log2 L.
// TREE_SUM 1: a lane's share of s.k and s.q is summed pairwise over its chunks (depth
//   3 + log2(32 / L)) instead of chunk after chunk (depth 4 * 32 / L): the in-lane part of the
//   chain that runs after the state arrives, which matters at small L. With L = 2 a row is
//   one 32-byte sector per load instruction and the reduction is a single shuffle step; a
//   lane then holds 16 float4 of k and of q, so such builds want small blocks. A tuning axis,
//   like LOAD_HINT / STORE_HINT (streaming) and FAST_GATES (gdn.cuh).
// In place: each row is read and written by the same lanes, read fully before it is written.
// Check and time: decodekit.measure.check.require(registry.get("subwarp"), 17, device="cuda");
//   decodekit.measure.tuning.tune(["subwarp"]) times it per B and launch shape with cold L2.
#include "gdn.cuh"

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
#ifndef TREE_SUM
#define TREE_SUM 0
#endif

inline constexpr int kWarps = WARPS;
inline constexpr int kRowsPerWarp = ROWS_PER_WARP;
inline constexpr int kLanes = LANES_PER_ROW;            // lanes sharing one row
inline constexpr int kRowsPerStep = 32 / kLanes;        // rows covered by one warp-wide load
inline constexpr int kChunks = gdn::kDim / 4 / kLanes;  // float4 chunks of a row per lane
inline constexpr int kSteps = kRowsPerWarp / kRowsPerStep;
inline constexpr int kRowsPerBlock = kWarps * kRowsPerWarp;
inline constexpr int kSplit = gdn::kDim / kRowsPerBlock;
static_assert(kLanes == 2 || kLanes == 4 || kLanes == 8 || kLanes == 16 || kLanes == 32,
              "LANES_PER_ROW must be 2, 4, 8, 16 or 32");
static_assert(kWarps >= 1 && kWarps <= 32, "WARPS must be 1..32");
static_assert(kRowsPerWarp % kRowsPerStep == 0, "ROWS_PER_WARP must be a multiple of 32 / L");
static_assert(gdn::kDim % kRowsPerBlock == 0, "WARPS * ROWS_PER_WARP must divide 128");

extern "C" __global__ void __launch_bounds__(kWarps * 32)
    gdn_decode_subwarp(const gdn::bf16* __restrict__ q, const gdn::bf16* __restrict__ k,
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
    const int j = gdn::qk_row(bh, h);
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
    // The load loop stands in both branches so that TREE_SUM=0 keeps the tuned builds' SASS.
#if TREE_SUM
    float pkq[kChunks];
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
        kk[c] = gdn::load_bf16x4(k + j * gdn::kDim + (c * kLanes + col) * 4);
        qq[c] = gdn::load_bf16x4(q + j * gdn::kDim + (c * kLanes + col) * 4);
        pkq[c] = gdn::dot4_pair(kk[c], qq[c]);
    }
    float kq = gdn::pairwise_sum<kChunks>(pkq);
#else
    float kq = 0.f;
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
        kk[c] = gdn::load_bf16x4(k + j * gdn::kDim + (c * kLanes + col) * 4);
        qq[c] = gdn::load_bf16x4(q + j * gdn::kDim + (c * kLanes + col) * 4);
        kq += gdn::dot4(kk[c], qq[c]);
    }
#endif
    float vr[kSteps];
#pragma unroll
    for (int t = 0; t < kSteps; ++t)
        vr[t] = __bfloat162float(v[bh * gdn::kDim + row0 + t * kRowsPerStep]);
    const gdn::Gates gt = gdn::gates(A_log, a, dt_bias, b, bh, h);
    // Each group of L lanes holds every column once, so a group sum is the full k . q.
    kq = gdn::group_sum<kLanes>(kq);

    float sk[kSteps], sq[kSteps];
#pragma unroll
    for (int t = 0; t < kSteps; ++t) {
#if TREE_SUM
        float pk[kChunks], pq[kChunks];
#pragma unroll
        for (int c = 0; c < kChunks; ++c) {
            pk[c] = gdn::dot4_pair(s[t][c], kk[c]);
            pq[c] = gdn::dot4_pair(s[t][c], qq[c]);
        }
        sk[t] = gdn::pairwise_sum<kChunks>(pk);
        sq[t] = gdn::pairwise_sum<kChunks>(pq);
#else
        sk[t] = 0.f;
        sq[t] = 0.f;
#pragma unroll
        for (int c = 0; c < kChunks; ++c) {
            sk[t] += gdn::dot4(s[t][c], kk[c]);
            sq[t] += gdn::dot4(s[t][c], qq[c]);
        }
#endif
    }
    gdn::group_sums<kLanes>(sk, sq);

#pragma unroll
    for (int t = 0; t < kSteps; ++t) {
        const float delta = gdn::row_delta(gt, vr[t], sk[t]);
#pragma unroll
        for (int c = 0; c < kChunks; ++c)
            gdn::store_state4<STORE_HINT>(
                new_state + off + t * kRowsPerStep * gdn::kDim + c * kLanes * 4,
                gdn::update4(s[t][c], gt.g, delta, kk[c]));
        if (col == 0)
            output[bh * gdn::kDim + row0 + t * kRowsPerStep] =
                __float2bfloat16(gdn::row_output(gt, sq[t], kq, delta, scale));
    }
}
