// GDN decode, small inputs first, then the state (variant "ordered", parent "subwarp").
//
// Math, per batch row b, value head h (q/k head j = h / 2), state row v (one pass):
//   g = exp(-exp(A_log[h]) * softplus(a[b,h] + dt_bias[h])),  beta = sigmoid(b[b,h])
//   s = state[b,h,v,:];  u = g * (s . k);  delta = beta * (v[b,h,v] - u)
//   new_state[b,h,v,:] = g * s + delta * k
//   output[b,h,v] = scale * (g * (s . q) + (k . q) * delta)
// Layouts (row-major, spec letters): q, k [B,1,4,128] bf16; v [B,1,8,128] bf16;
//   state, new_state [B,8,V=128,K=128] fp32 k-last (state may be null: zeros);
//   a, b [B,1,8] bf16; A_log, dt_bias [8] fp32; output [B,1,8,128] bf16.
// Launch: as subwarp: grid B * 8 * SPLIT blocks of WARPS * 32 threads, no shared memory,
//   SPLIT = 128 / (WARPS * ROWS_PER_WARP); LANES_PER_ROW (L) lanes share a row, lane l holds
//   columns 4 * (c * L + l % L) .. + 4 of chunk c; a warp's rows are all loaded before any
//   reduction.
// Change from subwarp:
//   1. Load order. Every small input (k, q, v, a, b, A_log, dt_bias) is loaded in the source
//      before the state, with volatile asm loads (in subwarp the compiler places some after
//      the state loads, where they queue behind the state's traffic). ptxas may still
//      interleave them with the state loads; FENCE below keeps their uses behind all loads.
//   2. Less work after the state arrives, which at B=1 is what remains above the row copy
//      (data/experiments/2026-11-26_warm-parts: 0.2 us with every input already in L2):
//      sums start from their first product instead of 0 + x; new_state = delta * k + g * s
//      with g * s formed while the reductions run; bf16 high halves are unpacked with one
//      AND; the gate math is ex2 / lg2 / rcp approximations (flush-to-zero) in base 2.
//   On the H100 this takes B=1 from 2.07 to 2.03 us and B=4 from 3.29 to 3.24 (kernels/
//   README.md). LOAD_HINT 3 (L2 evict_first policy) stays 0.3 us slower at B <= 8 here too,
//   so the slowness of such builds is the policy, not the order of the loads.
//   FENCE 1 (a tuning axis) ties every small input to the last state value before its first
//   use, so ptxas cannot place a use between the loads (with 4 warps x 2 rows it did, and
//   the loads behind it went out a DRAM round trip late: 2.61 us at B=1; 2.17 with FENCE).
//   The tuned table uses it at B=8.
// In place: each row is read and written by the same lanes, read fully before it is written.
// Check and time: decodekit.check.require(registry.get("ordered"), 17, device="cuda");
//   decodekit.tuning.tune(["ordered"]) times it per B and launch shape with cold L2.
#include "gdn_fast.cuh"

#ifndef WARPS
#define WARPS 2
#endif
#ifndef ROWS_PER_WARP
#define ROWS_PER_WARP 4
#endif
#ifndef LANES_PER_ROW
#define LANES_PER_ROW 16
#endif
#ifndef LOAD_HINT
#define LOAD_HINT 1
#endif
#ifndef STORE_HINT
#define STORE_HINT 0
#endif
#ifndef FENCE
#define FENCE 0
#endif

inline constexpr int kWarps = WARPS;
inline constexpr int kRowsPerWarp = ROWS_PER_WARP;
inline constexpr int kLanes = LANES_PER_ROW;            // lanes sharing one row
inline constexpr int kRowsPerStep = 32 / kLanes;        // rows covered by one warp-wide load
inline constexpr int kChunks = gdn::kDim / 4 / kLanes;  // float4 chunks of a row per lane
inline constexpr int kSteps = kRowsPerWarp / kRowsPerStep;
inline constexpr int kRowsPerBlock = kWarps * kRowsPerWarp;
inline constexpr int kSplit = gdn::kDim / kRowsPerBlock;
static_assert(kLanes == 4 || kLanes == 8 || kLanes == 16 || kLanes == 32,
              "LANES_PER_ROW must be 4, 8, 16 or 32");
static_assert(kWarps >= 1 && kWarps <= 32, "WARPS must be 1..32");
static_assert(kRowsPerWarp % kRowsPerStep == 0, "ROWS_PER_WARP must be a multiple of 32 / L");
static_assert(gdn::kDim % kRowsPerBlock == 0, "WARPS * ROWS_PER_WARP must divide 128");
static_assert(LOAD_HINT == 0 || LOAD_HINT == 1 || LOAD_HINT == 3, "LOAD_HINT must be 0, 1 or 3");

// A named namespace, not an anonymous one: anonymous-namespace symbols are mangled with the
// program's name, which cupy.RawModule takes from a hash, so the cubin would depend on who built it.
namespace ordered {

// Volatile read-only loads: the compiler keeps them in program order.
__device__ __forceinline__ uint2 ld_u32x2(const void* p) {
  uint2 r;
  asm volatile("ld.global.nc.v2.u32 {%0,%1}, [%2];" : "=r"(r.x), "=r"(r.y) : "l"(p));
  return r;
}
__device__ __forceinline__ unsigned ld_u16(const void* p) {
  unsigned short r;
  asm volatile("ld.global.nc.u16 %0, [%1];" : "=h"(r) : "l"(p));
  return r;
}
__device__ __forceinline__ float ld_f32(const float* p) {
  float r;
  asm volatile("ld.global.nc.f32 %0, [%1];" : "=f"(r) : "l"(p));
  return r;
}

// The state loads as volatile asm too, so they stay behind the small loads.
__device__ __forceinline__ float4 ld_state4(const float* p) {
  float4 r;
#if LOAD_HINT == 0
  asm volatile("ld.global.v4.f32 {%0,%1,%2,%3}, [%4];"
               : "=f"(r.x), "=f"(r.y), "=f"(r.z), "=f"(r.w)
               : "l"(p));
#elif LOAD_HINT == 1
  asm volatile("ld.global.cs.v4.f32 {%0,%1,%2,%3}, [%4];"
               : "=f"(r.x), "=f"(r.y), "=f"(r.z), "=f"(r.w)
               : "l"(p));
#else
  unsigned long long pol;
  asm("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(pol));
  asm volatile("ld.global.L1::no_allocate.L2::cache_hint.v4.f32 {%0,%1,%2,%3}, [%4], %5;"
               : "=f"(r.x), "=f"(r.y), "=f"(r.z), "=f"(r.w)
               : "l"(p), "l"(pol));
#endif
  return r;
}

__device__ __forceinline__ float bf16_bits(unsigned h) { return __uint_as_float(h << 16); }

// Four bf16 (two 32-bit words, low half first) as fp32.
__device__ __forceinline__ float4 unpack4(uint2 w) {
  return make_float4(__uint_as_float(w.x << 16), __uint_as_float(w.x & 0xffff0000u),
                     __uint_as_float(w.y << 16), __uint_as_float(w.y & 0xffff0000u));
}

__device__ __forceinline__ float ex2(float x) {
  float r;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
  return r;
}
__device__ __forceinline__ float lg2(float x) {
  float r;
  asm("lg2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
  return r;
}
__device__ __forceinline__ float rcp(float x) {
  float r;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
  return r;
}

// g and beta in base 2: softplus(x) * log2(e) = lg2(1 + ex2(x * log2(e))), linear above 20.
__device__ __forceinline__ gdn::Gates gates2(float a, float dt_bias, float A_log, float b) {
  constexpr float kLog2e = 1.4426950408889634f;
  const float x = a + dt_bias;
  const float sp2 = x > 20.f ? x * kLog2e : lg2(1.f + ex2(x * kLog2e));
  gdn::Gates r;
  r.g = ex2(-ex2(A_log * kLog2e) * sp2);
  r.beta = rcp(1.f + ex2(-b * kLog2e));
  return r;
}

}  // namespace ordered
using namespace ordered;

extern "C" __global__ void __launch_bounds__(kWarps * 32)
    gdn_decode_ordered(const gdn::bf16* __restrict__ q, const gdn::bf16* __restrict__ k,
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

  // 1. Small inputs, in program order, before the state.
  unsigned a_raw = ld_u16(a + bh);
  unsigned b_raw = ld_u16(b + bh);
  float A_log_h = ld_f32(A_log + h);
  float dt_bias_h = ld_f32(dt_bias + h);
  uint2 k_raw[kChunks], q_raw[kChunks];
#pragma unroll
  for (int c = 0; c < kChunks; ++c) {
    k_raw[c] = ld_u32x2(k + j * gdn::kDim + (c * kLanes + col) * 4);
    q_raw[c] = ld_u32x2(q + j * gdn::kDim + (c * kLanes + col) * 4);
  }
  unsigned v_raw[kSteps];
#pragma unroll
  for (int t = 0; t < kSteps; ++t) v_raw[t] = ld_u16(v + bh * gdn::kDim + row0 + t * kRowsPerStep);

  float4 s[kSteps][kChunks];
  if (state != nullptr) {
#pragma unroll
    for (int t = 0; t < kSteps; ++t)
#pragma unroll
      for (int c = 0; c < kChunks; ++c)
        s[t][c] = ld_state4(state + off + t * kRowsPerStep * gdn::kDim + c * kLanes * 4);
  } else {
#pragma unroll
    for (int t = 0; t < kSteps; ++t)
#pragma unroll
      for (int c = 0; c < kChunks; ++c) s[t][c] = make_float4(0.f, 0.f, 0.f, 0.f);
  }

#if FENCE
  // ptxas may place a use of a small input between the loads, and a warp that reaches it
  // waits a whole DRAM round trip before it issues the loads behind it. Tying every small
  // input to the last state value (AND with batch_size >> 31, zero for any valid call and
  // all bits opaque to the compiler) keeps every use behind every load.
  {
    const unsigned zero = __float_as_uint(s[kSteps - 1][kChunks - 1].w) &
                          static_cast<unsigned>(batch_size >> 31);
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      k_raw[c].x |= zero;
      k_raw[c].y |= zero;
      q_raw[c].x |= zero;
      q_raw[c].y |= zero;
    }
#pragma unroll
    for (int t = 0; t < kSteps; ++t) v_raw[t] |= zero;
    a_raw |= zero;
    b_raw |= zero;
    A_log_h = __uint_as_float(__float_as_uint(A_log_h) | zero);
    dt_bias_h = __uint_as_float(__float_as_uint(dt_bias_h) | zero);
  }
#endif
  // 2. What needs only the small inputs: gates, k, q, k . q.
  const gdn::Gates gt = gates2(bf16_bits(a_raw), dt_bias_h, A_log_h, bf16_bits(b_raw));
  float4 kk[kChunks], qq[kChunks];
  float kq = 0.f;
#pragma unroll
  for (int c = 0; c < kChunks; ++c) {
    kk[c] = unpack4(k_raw[c]);
    qq[c] = unpack4(q_raw[c]);
    kq = c == 0 ? gdn::dot4(kk[c], qq[c]) : kq + gdn::dot4(kk[c], qq[c]);
  }
  // Each group of L lanes holds every column once, so a group sum is the full k . q.
  kq = gdn::group_sum<kLanes>(kq);

  // 3. After the state arrives: s . k and s . q, their group sums, the update, the stores.
  float sk[kSteps], sq[kSteps];
#pragma unroll
  for (int t = 0; t < kSteps; ++t) {
    sk[t] = gdn::dot4(s[t][0], kk[0]);
    sq[t] = gdn::dot4(s[t][0], qq[0]);
#pragma unroll
    for (int c = 1; c < kChunks; ++c) {
      sk[t] += gdn::dot4(s[t][c], kk[c]);
      sq[t] += gdn::dot4(s[t][c], qq[c]);
    }
  }
#pragma unroll
  for (int o = kLanes / 2; o > 0; o >>= 1) {
#pragma unroll
    for (int t = 0; t < kSteps; ++t) {
      sk[t] += __shfl_xor_sync(gdn::kFull, sk[t], o);
      sq[t] += __shfl_xor_sync(gdn::kFull, sq[t], o);
    }
  }

#pragma unroll
  for (int t = 0; t < kSteps; ++t) {
    const float delta = gt.beta * (bf16_bits(v_raw[t]) - gt.g * sk[t]);
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      const float4 gs = make_float4(gt.g * s[t][c].x, gt.g * s[t][c].y, gt.g * s[t][c].z,
                                    gt.g * s[t][c].w);
      const float4 kc = kk[c];
      gdn::store_state4<STORE_HINT>(
          new_state + off + t * kRowsPerStep * gdn::kDim + c * kLanes * 4,
          make_float4(fmaf(delta, kc.x, gs.x), fmaf(delta, kc.y, gs.y), fmaf(delta, kc.z, gs.z),
                      fmaf(delta, kc.w, gs.w)));
    }
    if (col == 0)
      output[bh * gdn::kDim + row0 + t * kRowsPerStep] =
          __float2bfloat16(scale * fmaf(gt.g, sq[t], kq * delta));
  }
}
