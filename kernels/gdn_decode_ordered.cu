// GDN decode, small inputs first, then the state (variant "ordered", parent "subwarp").
//
// Math: gdn.cuh's one-pass row update, as in subwarp, with the base-2 gate math
//   (gdn::GateMath::kBase2) and new_state = delta * k + g * s.
// Launch: as subwarp: grid B * 8 * SPLIT blocks of WARPS * 32 threads, no shared memory,
//   SPLIT = 128 / (WARPS * ROWS_PER_WARP); LANES_PER_ROW (L) lanes share a row, lane l holds
//   columns 4 * (c * L + l % L) .. + 4 of chunk c; a warp's rows are all loaded before any
//   reduction.
// Change from subwarp:
//   1. Load order. Every small input (k, q, v, a, b, A_log, dt_bias) is loaded in the source
//      before the state, with volatile asm loads (in subwarp the compiler places some after
//      the state loads, where they queue behind the state's traffic), and the state loads
//      are volatile asm too (gdn::load_state4 with IN_ORDER), so they stay behind them.
//      ptxas may still interleave them with the state loads; FENCE below keeps their uses
//      behind all loads.
//   2. Less work after the state arrives, which at B=1 is what remains above the row copy
//      (data/experiments/2026-11-26_warm-parts): sums start from their first product
//      instead of 0 + x; new_state = delta * k + g * s with g * s formed while the
//      reductions run; bf16 high halves are unpacked with one AND; the gate math is
//      ex2 / lg2 / rcp approximations (flush-to-zero) in base 2.
//   FENCE 1 (a tuning axis) ties every small input to the last state value before its first
//   use, so ptxas cannot place a use between the loads: a warp that reaches such a use waits
//   a whole DRAM round trip before it issues the loads behind it.
//   Their effect on this kernel's time is in kernels/README.md.
// In place: each row is read and written by the same lanes, read fully before it is written.
// Check and time: decodekit.measure.check.require(registry.get("ordered"), 17, device="cuda");
//   decodekit.measure.tuning.tune(["ordered"]) times it per B and launch shape with cold L2.
#include "gdn.cuh"

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
// program's name, which cupy.RawModule takes from a hash, so the cubin would depend on who
// built it.
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

__device__ __forceinline__ float bf16_bits(unsigned h) { return __uint_as_float(h << 16); }

// Four bf16 (two 32-bit words, low half first) as fp32, high halves by one AND.
__device__ __forceinline__ float4 unpack4(uint2 w) {
    return make_float4(__uint_as_float(w.x << 16), __uint_as_float(w.x & 0xffff0000u),
                       __uint_as_float(w.y << 16), __uint_as_float(w.y & 0xffff0000u));
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
    const int j = gdn::qk_row(bh, h);
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
    for (int t = 0; t < kSteps; ++t)
        v_raw[t] = ld_u16(v + bh * gdn::kDim + row0 + t * kRowsPerStep);

    float4 s[kSteps][kChunks];
    if (state != nullptr) {
#pragma unroll
        for (int t = 0; t < kSteps; ++t)
#pragma unroll
            for (int c = 0; c < kChunks; ++c)
                s[t][c] = gdn::load_state4<LOAD_HINT, true>(
                    state + off + t * kRowsPerStep * gdn::kDim + c * kLanes * 4);
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
    const gdn::Gates gt = gdn::gate_values<gdn::GateMath::kBase2>(
        bf16_bits(a_raw), dt_bias_h, A_log_h, bf16_bits(b_raw));
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
    gdn::group_sums<kLanes>(sk, sq);

#pragma unroll
    for (int t = 0; t < kSteps; ++t) {
        const float delta = gdn::row_delta(gt, bf16_bits(v_raw[t]), sk[t]);
#pragma unroll
        for (int c = 0; c < kChunks; ++c) {
            const float4 gs = make_float4(gt.g * s[t][c].x, gt.g * s[t][c].y, gt.g * s[t][c].z,
                                          gt.g * s[t][c].w);
            const float4 kc = kk[c];
            gdn::store_state4<STORE_HINT>(
                new_state + off + t * kRowsPerStep * gdn::kDim + c * kLanes * 4,
                make_float4(fmaf(delta, kc.x, gs.x), fmaf(delta, kc.y, gs.y),
                            fmaf(delta, kc.z, gs.z), fmaf(delta, kc.w, gs.w)));
        }
        if (col == 0)
            output[bh * gdn::kDim + row0 + t * kRowsPerStep] =
                __float2bfloat16(gdn::row_output(gt, sq[t], kq, delta, scale));
    }
}
