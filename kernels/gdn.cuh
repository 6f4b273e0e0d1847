// gdn.cuh: what every kit kernel shares, stated once: the math, the layouts, the kernel ABI,
// the problem constants, the gate math and the device helpers. Definition
// gdn_decode_qk4_v8_d128_k_last: one decode step of Gated Delta Net attention. Each
// kernels/*.cu adds only its launch shape, its change and how to run it.
//
// Math, per batch row b and value head h (q/k head j = h / 2: 4 q/k heads, 8 value heads,
// K = V = 128), all in fp32:
//   g    = exp(-exp(A_log[h]) * softplus(a[b,h] + dt_bias[h]))   decay, in (0, 1]
//   beta = sigmoid(b[b,h])                                       update gate
//   S = g * state[b,h];  S += outer(beta * (v[b,h] - S @ k[b,j]), k[b,j])
//   output[b,h] = bf16(scale * S @ q[b,j]);  new_state[b,h] = S
// softplus as in torch (beta 1, threshold 20): x > 20 -> x, else log1p(exp(x)).
// Row by row (row v of S is state row v times g; s = state[b,h,v,:]), in one pass over s:
//   delta = beta * (v[b,h,v] - g * (s . k))                      (row_delta)
//   new_state[b,h,v,:] = g * s + delta * k                       (update4)
//   output[b,h,v] = scale * (g * (s . q) + (k . q) * delta)      (row_output)
// so one read of s gives both of its dot products, and k . q is one per (b, h).
//
// Layouts (contiguous, row-major, spec letters):
//   q, k [B,1,4,128] bf16;  v, output [B,1,8,128] bf16;  a, b [B,1,8] bf16;
//   A_log, dt_bias [8] fp32;  state, new_state [B,8,V=128,K=128] fp32 k-last: row v of head
//   (b, h) is its 128 k-values, 512 contiguous bytes, at float offset ((b * 8 + h) * 128 + v)
//   * 128 (64-bit: it overflows int32 from B = 16384). state == nullptr means zeros.
//
// Kernel ABI (the same for every kernel; decodekit.build.launch packs exactly these arguments):
//
//   extern "C" __global__ void <entry>(
//       const bf16*  q,          // [B, 1, kQKHeads, kDim]
//       const bf16*  k,          // [B, 1, kQKHeads, kDim]
//       const bf16*  v,          // [B, 1, kVHeads, kDim]
//       const float* state,      // [B, kVHeads, V, K] k-last; nullptr means zeros
//       const float* A_log,      // [kVHeads]
//       const bf16*  a,          // [B, 1, kVHeads]
//       const float* dt_bias,    // [kVHeads]
//       const bf16*  b,          // [B, 1, kVHeads]
//       float        scale,      // already resolved on the host (never 0)
//       bf16*        output,     // [B, 1, kVHeads, kDim]
//       float*       new_state,  // [B, kVHeads, V, K] k-last; may alias state (in-place)
//       int          batch_size);
//
// All tensors are contiguous and 16-byte aligned (the launcher checks). A variant registered
// with inplace_ok=True must be correct when new_state == state, so it must not mark those two
// __restrict__.
//
// Knobs are -D defines, each declared where it is used as "#ifndef NAME" / "#define NAME
// <int>" (decodekit.build.compile.declared_defines reads them from a kernel and its headers).
// Self-contained: needs only <cuda_bf16.h>, so it builds under NVRTC and nvcc alike. Names
// live in the named namespace gdn and namespace-scope constants are inline constexpr, so
// symbol names never depend on the program name NVRTC is given.
#pragma once

#include <cuda_bf16.h>

namespace gdn {

typedef __nv_bfloat16 bf16;

// ---- problem constants ------------------------------------------------------------------

inline constexpr int kQKHeads = 4;                   // query/key heads
inline constexpr int kVHeads = 8;                    // value heads
inline constexpr int kVPerQK = kVHeads / kQKHeads;   // value head h reads q/k head h / 2
inline constexpr int kDim = 128;                     // K = V; a state row is 512 bytes
inline constexpr unsigned kFull = 0xffffffffu;       // every lane of a warp
static_assert(kVHeads % kQKHeads == 0, "value heads must group evenly over q/k heads");

// ---- indexing ---------------------------------------------------------------------------

// Row of q and k (in units of kDim) that (batch, value head) bh = b * kVHeads + h reads;
// h = bh % kVHeads, passed in since every caller has it.
__device__ __forceinline__ int qk_row(int bh, int h) {
    return (bh / kVHeads) * kQKHeads + h / kVPerQK;
}

// ---- gate math --------------------------------------------------------------------------
// g and beta of one (batch, value head), the formulas above in three implementations:
//   kExact  libm expf / log1pf and an IEEE division, like the reference;
//   kFast   the SFU intrinsics (__expf, __logf, approximate reciprocal): a chain of about
//           10 dependent instructions instead of about 40, which matters at small B, where
//           the gate math runs after the gate inputs arrive from DRAM and before the first
//           store can issue; error a few ulp on g and beta (the checker's state_rel is 1e-4);
//   kBase2  ex2 / lg2 / rcp approximations (flush-to-zero) in base 2: softplus is carried
//           as softplus(x) * log2(e) = lg2(1 + ex2(x * log2(e))), linear above 20.
// FAST_GATES picks kFast over kExact (kGateMath, what gates() uses); the ordered kernel
// always takes kBase2. Where the gate inputs are loaded matters to the schedule, so a
// caller loads them in the order it wants: gates() loads a and dt_bias, then A_log after
// softplus, then b.
#ifndef FAST_GATES
#define FAST_GATES 0
#endif

struct Gates {
    float g;
    float beta;
};

enum class GateMath { kExact, kFast, kBase2 };
inline constexpr GateMath kGateMath = FAST_GATES ? GateMath::kFast : GateMath::kExact;
inline constexpr float kLog2e = 1.4426950408889634f;

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

// softplus(x), x = a + dt_bias (for kBase2: softplus(x) * log2(e)).
template <GateMath M>
__device__ __forceinline__ float softplus(float x) {
    if constexpr (M == GateMath::kBase2) {
        return x > 20.f ? x * kLog2e : lg2(1.f + ex2(x * kLog2e));
    } else if constexpr (M == GateMath::kFast) {
        return x > 20.f ? x : __logf(1.f + __expf(x));
    } else {
        return x > 20.f ? x : log1pf(expf(x));
    }
}

// g = exp(-exp(A_log) * sp()), sp() giving softplus<M>(a + dt_bias); it is called after
// exp(A_log) is formed. decay and decay_x below are the two orders the kernels use.
template <GateMath M, class SP>
__device__ __forceinline__ float decay_of(float A_log, SP sp) {
    if constexpr (M == GateMath::kBase2) {
        return ex2(-ex2(A_log * kLog2e) * sp());
    } else if constexpr (M == GateMath::kFast) {
        return __expf(-__expf(A_log) * sp());
    } else {
        return expf(-expf(A_log) * sp());
    }
}

// g from sp = softplus<M>(a + dt_bias), formed beforehand.
template <GateMath M>
__device__ __forceinline__ float decay(float A_log, float sp) {
    return decay_of<M>(A_log, [sp] { return sp; });
}

// g from x = a + dt_bias: softplus formed after exp(A_log).
template <GateMath M>
__device__ __forceinline__ float decay_x(float A_log, float x) {
    return decay_of<M>(A_log, [x] { return softplus<M>(x); });
}

// beta = sigmoid(b).
template <GateMath M>
__device__ __forceinline__ float sigmoid(float b) {
    if constexpr (M == GateMath::kBase2) {
        return rcp(1.f + ex2(-b * kLog2e));
    } else if constexpr (M == GateMath::kFast) {
        return __fdividef(1.f, 1.f + __expf(-b));
    } else {
        return 1.f / (1.f + expf(-b));
    }
}

// The gates from their inputs a = a[b,h], dt_bias = dt_bias[h], A_log = A_log[h], b = b[b,h].
template <GateMath M>
__device__ __forceinline__ Gates gate_values(float a, float dt_bias, float A_log, float b) {
    const float sp = softplus<M>(a + dt_bias);
    Gates r;
    r.g = decay<M>(A_log, sp);
    r.beta = sigmoid<M>(b);
    return r;
}

// The gates of (batch, value head) bh = b * kVHeads + h, read from the kernel arguments.
template <GateMath M = kGateMath>
__device__ __forceinline__ Gates gates(const float* A_log, const bf16* a, const float* dt_bias,
                                       const bf16* b, int bh, int h) {
    const float sp = softplus<M>(__bfloat162float(a[bh]) + dt_bias[h]);
    Gates r;
    r.g = decay<M>(A_log[h], sp);
    r.beta = sigmoid<M>(__bfloat162float(b[bh]));
    return r;
}

// ---- the row update ---------------------------------------------------------------------

// delta = beta * (v - g * (s . k)) of a state row, from its v and sk = s . k.
__device__ __forceinline__ float row_delta(Gates gt, float v, float sk) {
    return gt.beta * (v - gt.g * sk);
}

// output = scale * (g * (s . q) + (k . q) * delta) of a state row, from sq = s . q.
__device__ __forceinline__ float row_output(Gates gt, float sq, float kq, float delta,
                                            float scale) {
    return scale * fmaf(gt.g, sq, kq * delta);
}

// s + d * k for four columns, one FMA each.
__device__ __forceinline__ float4 axpy4(float4 s, float d, float4 k) {
    return make_float4(fmaf(d, k.x, s.x), fmaf(d, k.y, s.y), fmaf(d, k.z, s.z), fmaf(d, k.w, s.w));
}

// x * s for four columns.
__device__ __forceinline__ float4 scale4(float4 s, float x) {
    return make_float4(x * s.x, x * s.y, x * s.z, x * s.w);
}

// g * s + d * k, the state row update for four columns.
__device__ __forceinline__ float4 update4(float4 s, float g, float d, float4 k) {
    return make_float4(fmaf(g, s.x, d * k.x), fmaf(g, s.y, d * k.y), fmaf(g, s.z, d * k.z),
                       fmaf(g, s.w, d * k.w));
}

// ---- bf16 inputs and sums ---------------------------------------------------------------

// Two bf16 (a 32-bit word, low half first) as fp32. A bf16 is the high half of its float's
// bits, so each value is one shift or one mask (the same bits as __bfloat1622float2, which
// spends a PRMT and a shift on the high half).
__device__ __forceinline__ float2 bf16x2(unsigned w) {
    return make_float2(__uint_as_float(w << 16), __uint_as_float(w & 0xffff0000u));
}

// Four bf16 (two 32-bit words, low half first) as fp32.
__device__ __forceinline__ float4 bf16x4(uint2 raw) {
    const float2 lo = bf16x2(raw.x), hi = bf16x2(raw.y);
    return make_float4(lo.x, lo.y, hi.x, hi.y);
}

// Four consecutive bf16 (8-byte aligned) as fp32; q, k are never written, so the
// read-only path is safe.
__device__ __forceinline__ float4 load_bf16x4(const bf16* p) {
    return bf16x4(__ldg(reinterpret_cast<const uint2*>(p)));
}

__device__ __forceinline__ float dot4(float4 a, float4 b) {
    return a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w;
}

// The same sum in two independent halves: depth 3 (FMUL, FFMA, FADD) instead of 4.
// acc + a . b as one chain of four FMAs (no multiply to start it, no add to join it)
__device__ __forceinline__ float fma4(float acc, float4 a, float4 b) {
    return fmaf(a.w, b.w, fmaf(a.z, b.z, fmaf(a.y, b.y, fmaf(a.x, b.x, acc))));
}
__device__ __forceinline__ float dot4_pair(float4 a, float4 b) {
    return fmaf(a.y, b.y, a.x * b.x) + fmaf(a.w, b.w, a.z * b.z);
}

// Sum of x[0..N) (N a power of two) as a balanced tree: depth log2 N instead of N - 1.
template <int N>
__device__ __forceinline__ float pairwise_sum(const float* x) {
    static_assert(N > 0 && (N & (N - 1)) == 0, "pairwise_sum needs a power of two");
    if constexpr (N == 1) {
        return x[0];
    } else {
        return pairwise_sum<N / 2>(x) + pairwise_sum<N / 2>(x + N / 2);
    }
}

// Butterfly sum over aligned groups of WIDTH lanes; every lane of a group gets the sum.
template <int WIDTH>
__device__ __forceinline__ float group_sum(float x) {
#pragma unroll
    for (int off = WIDTH / 2; off > 0; off >>= 1) x += __shfl_xor_sync(kFull, x, off);
    return x;
}

// group_sum of every sk[r] and sq[r] (a row's partial s . k and s . q), step by step over
// all N rows at once: 2 * N independent shuffles per step.
template <int WIDTH, int N>
__device__ __forceinline__ void group_sums(float (&sk)[N], float (&sq)[N]) {
#pragma unroll
    for (int off = WIDTH / 2; off > 0; off >>= 1) {
#pragma unroll
        for (int r = 0; r < N; ++r) {
            sk[r] += __shfl_xor_sync(kFull, sk[r], off);
            sq[r] += __shfl_xor_sync(kFull, sq[r], off);
        }
    }
}

// group_sums by halving (a reduce-scatter): at each step a lane keeps half of its (sk, sq)
// pairs and sends the other half to its partner, so N pairs shrink to one in 2 (N - 1)
// shuffles, then 2 log2(WIDTH / N) more finish that pair. Lane l of a group of WIDTH ends
// with the full sums of one row, r = (l % WIDTH) / (WIDTH / N), in sk[0] and sq[0];
// group_sums gives every lane every row for 2 N log2(WIDTH) shuffles.
template <int OFF, int N>
__device__ __forceinline__ void halve_sums(float* sk, float* sq, int lane) {
    if constexpr (N > 1) {
        const bool upper = lane & OFF;
#pragma unroll
        for (int i = 0; i < N / 2; ++i) {
            const float send_k = upper ? sk[i] : sk[i + N / 2];
            const float send_q = upper ? sq[i] : sq[i + N / 2];
            const float keep_k = upper ? sk[i + N / 2] : sk[i];
            const float keep_q = upper ? sq[i + N / 2] : sq[i];
            sk[i] = keep_k + __shfl_xor_sync(kFull, send_k, OFF);
            sq[i] = keep_q + __shfl_xor_sync(kFull, send_q, OFF);
        }
        halve_sums<OFF / 2, N / 2>(sk, sq, lane);
    } else {
#pragma unroll
        for (int off = OFF; off > 0; off >>= 1) {
            sk[0] += __shfl_xor_sync(kFull, sk[0], off);
            sq[0] += __shfl_xor_sync(kFull, sq[0], off);
        }
    }
}

template <int WIDTH, int N>
__device__ __forceinline__ int group_sums_scatter(float (&sk)[N], float (&sq)[N]) {
    static_assert(N >= 1 && (N & (N - 1)) == 0 && N <= WIDTH,
                  "group_sums_scatter needs N a power of two, at most WIDTH");
    const int lane = threadIdx.x & 31;
    halve_sums<WIDTH / 2, N>(sk, sq, lane);
    return (lane % WIDTH) / (WIDTH / N);
}

// ---- state loads and stores -------------------------------------------------------------
// The L2 policies are plain (non-volatile) asm so the compiler creates each once per thread.
// State loads with a cache policy, chosen at compile time (LOAD_HINT in the kernels):
//   0 plain ld.global; 1 ld.global.cs (evict-first, streaming); 2 L1::no_allocate;
//   3 L1::no_allocate + L2 evict_first policy; 4 ld.global.cs with an L2::256B prefetch
//   size; 5 L1::no_allocate with L2::256B. The prefetch size asks L2 to fetch the whole
//   aligned 256 bytes around a miss as one DRAM request (a lane group's share of a row
//   spans 256 bytes at 16 lanes per row). None uses the non-coherent path, so new_state
//   may alias state. Hints 1..5 are volatile asm, so the compiler keeps them in program
//   order; IN_ORDER makes hint 0 a volatile asm load too.
template <int HINT, bool IN_ORDER = false>
__device__ __forceinline__ float4 load_state4(const float* p) {
    static_assert(HINT >= 0 && HINT <= 5, "LOAD_HINT must be 0..5");
    float4 r;
    if constexpr (HINT == 0 && IN_ORDER) {
        asm volatile("ld.global.v4.f32 {%0,%1,%2,%3}, [%4];"
                     : "=f"(r.x), "=f"(r.y), "=f"(r.z), "=f"(r.w)
                     : "l"(p));
    } else if constexpr (HINT == 0) {
        r = *reinterpret_cast<const float4*>(p);
    } else if constexpr (HINT == 1) {
        r = __ldcs(reinterpret_cast<const float4*>(p));
    } else if constexpr (HINT == 2) {
        asm volatile("ld.global.L1::no_allocate.v4.f32 {%0,%1,%2,%3}, [%4];"
                     : "=f"(r.x), "=f"(r.y), "=f"(r.z), "=f"(r.w)
                     : "l"(p));
    } else if constexpr (HINT == 4) {
        asm volatile("ld.global.cs.L2::256B.v4.f32 {%0,%1,%2,%3}, [%4];"
                     : "=f"(r.x), "=f"(r.y), "=f"(r.z), "=f"(r.w)
                     : "l"(p));
    } else if constexpr (HINT == 5) {
        asm volatile("ld.global.L1::no_allocate.L2::256B.v4.f32 {%0,%1,%2,%3}, [%4];"
                     : "=f"(r.x), "=f"(r.y), "=f"(r.z), "=f"(r.w)
                     : "l"(p));
    } else {
        unsigned long long pol;
        asm("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(pol));
        asm volatile("ld.global.L1::no_allocate.L2::cache_hint.v4.f32 {%0,%1,%2,%3}, [%4], %5;"
                     : "=f"(r.x), "=f"(r.y), "=f"(r.z), "=f"(r.w)
                     : "l"(p), "l"(pol));
    }
    return r;
}

// new_state stores (STORE_HINT): 0 plain st.global; 1 st.global.cs (evict-first);
// 2 L2 evict_first policy; 3 L2 evict_last policy (keeps dirty lines in L2, where they
// can drain after the kernel has finished).
template <int HINT>
__device__ __forceinline__ unsigned long long store_policy() {
    unsigned long long pol;
    if constexpr (HINT == 2) {
        asm("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(pol));
    } else {
        asm("createpolicy.fractional.L2::evict_last.b64 %0, 1.0;" : "=l"(pol));
    }
    return pol;
}

template <int HINT>
__device__ __forceinline__ void store_state4(float* p, float4 x) {
    static_assert(HINT >= 0 && HINT <= 3, "STORE_HINT must be 0..3");
    if constexpr (HINT == 0) {
        *reinterpret_cast<float4*>(p) = x;
    } else if constexpr (HINT == 1) {
        __stcs(reinterpret_cast<float4*>(p), x);
    } else {
        const unsigned long long pol = store_policy<HINT>();
        asm volatile("st.global.L2::cache_hint.v4.f32 [%0], {%1,%2,%3,%4}, %5;"
                     :
                     : "l"(p), "f"(x.x), "f"(x.y), "f"(x.z), "f"(x.w), "l"(pol)
                     : "memory");
    }
}

// bf16 state (8 bytes per 4 values), the same LOAD_HINT / STORE_HINT policies: loads widen
// to fp32, stores round to nearest even; the math stays fp32.
template <int HINT>
__device__ __forceinline__ float4 load_state4(const bf16* p) {
    static_assert(HINT >= 0 && HINT <= 5, "LOAD_HINT must be 0..5");
    uint2 r;
    if constexpr (HINT == 0) {
        r = *reinterpret_cast<const uint2*>(p);
    } else if constexpr (HINT == 1) {
        r = __ldcs(reinterpret_cast<const uint2*>(p));
    } else if constexpr (HINT == 2) {
        asm volatile("ld.global.L1::no_allocate.v2.u32 {%0,%1}, [%2];"
                     : "=r"(r.x), "=r"(r.y)
                     : "l"(p));
    } else if constexpr (HINT == 4) {
        asm volatile("ld.global.cs.L2::256B.v2.u32 {%0,%1}, [%2];"
                     : "=r"(r.x), "=r"(r.y)
                     : "l"(p));
    } else if constexpr (HINT == 5) {
        asm volatile("ld.global.L1::no_allocate.L2::256B.v2.u32 {%0,%1}, [%2];"
                     : "=r"(r.x), "=r"(r.y)
                     : "l"(p));
    } else {
        unsigned long long pol;
        asm("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(pol));
        asm volatile("ld.global.L1::no_allocate.L2::cache_hint.v2.u32 {%0,%1}, [%2], %3;"
                     : "=r"(r.x), "=r"(r.y)
                     : "l"(p), "l"(pol));
    }
    return bf16x4(r);
}

template <int HINT>
__device__ __forceinline__ void store_state4(bf16* p, float4 x) {
    static_assert(HINT >= 0 && HINT <= 3, "STORE_HINT must be 0..3");
    const __nv_bfloat162 lo =
        __halves2bfloat162(__float2bfloat16_rn(x.x), __float2bfloat16_rn(x.y));
    const __nv_bfloat162 hi =
        __halves2bfloat162(__float2bfloat16_rn(x.z), __float2bfloat16_rn(x.w));
    uint2 r;
    r.x = *reinterpret_cast<const unsigned*>(&lo);
    r.y = *reinterpret_cast<const unsigned*>(&hi);
    if constexpr (HINT == 0) {
        *reinterpret_cast<uint2*>(p) = r;
    } else if constexpr (HINT == 1) {
        __stcs(reinterpret_cast<uint2*>(p), r);
    } else {
        const unsigned long long pol = store_policy<HINT>();
        asm volatile("st.global.L2::cache_hint.v2.u32 [%0], {%1,%2}, %3;"
                     :
                     : "l"(p), "r"(r.x), "r"(r.y), "l"(pol)
                     : "memory");
    }
}

// ---- per-thread async copies (cp.async: global -> shared, 8 or 16 bytes); sm_80 and later --
// A thread's copies since its last commit form one group; wait<N> returns once all but its N
// most recent groups have landed (in its own view: a thread reading only what it copied
// needs no barrier).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
template <int BYTES>
__device__ __forceinline__ void async_copy(void* dst, const void* src) {
    static_assert(BYTES == 8 || BYTES == 16, "cp.async copies 8 or 16 bytes here");
    const unsigned to = static_cast<unsigned>(__cvta_generic_to_shared(dst));
    if constexpr (BYTES == 16)  // .cg: L2 only (16 bytes)
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(to), "l"(src) : "memory");
    else
        asm volatile("cp.async.ca.shared.global [%0], [%1], 8;" ::"r"(to), "l"(src) : "memory");
}

__device__ __forceinline__ void async_commit() {
    asm volatile("cp.async.commit_group;" ::: "memory");
}

template <int N>
__device__ __forceinline__ void async_wait() {
    asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}
#endif

// ---- Hopper bulk copies (cp.async.bulk) completing on an mbarrier; sm_90 and later only --
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
__device__ __forceinline__ unsigned smem_addr(const void* p) {
    return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void mbar_init(unsigned long long* bar, unsigned count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_addr(bar)), "r"(count)
                 : "memory");
    // Make the initialised barrier visible to the async proxy that will complete it.
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}

// Arm the barrier for `bytes` and start one global -> shared bulk copy (16-byte aligned,
// size a multiple of 16) that completes those bytes on it.
__device__ __forceinline__ void bulk_load(void* dst, const void* src, unsigned bytes,
                                          unsigned long long* bar) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_addr(bar)),
                 "r"(bytes)
                 : "memory");
    asm volatile(
        "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, "
        "[%3];" ::"r"(smem_addr(dst)),
        "l"(src), "r"(bytes), "r"(smem_addr(bar))
        : "memory");
}

__device__ __forceinline__ void mbar_wait(unsigned long long* bar, unsigned parity) {
    asm volatile(
        "{\n"
        ".reg .pred done;\n"
        "wait_%=:\n"
        "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
        "@!done bra wait_%=;\n"
        "}\n" ::"r"(smem_addr(bar)),
        "r"(parity)
        : "memory");
}

// shared -> global bulk store of generic-proxy writes: fence first (every writing thread),
// synchronise, then one thread issues it and waits until shared memory has been read.
__device__ __forceinline__ void fence_to_async() {
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}

__device__ __forceinline__ void bulk_store(void* dst, const void* src, unsigned bytes) {
    asm volatile("cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;" ::"l"(dst),
                 "r"(smem_addr(src)), "r"(bytes)
                 : "memory");
    asm volatile("cp.async.bulk.commit_group;" ::: "memory");
    asm volatile("cp.async.bulk.wait_group.read 0;" ::: "memory");
}
#endif

}  // namespace gdn
