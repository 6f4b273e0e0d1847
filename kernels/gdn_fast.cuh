// Small device helpers shared by the fast GDN decode variants (gdn_decode_rowsplit.cu,
// _subwarp.cu, _bulk.cu, _persistent.cu): problem constants, gate math, bf16 vector loads,
// warp reductions, cache-hinted state loads/stores and Hopper bulk-copy wrappers.
// Self-contained: needs only <cuda_bf16.h>, so it builds under NVRTC and nvcc alike.
#pragma once

#include <cuda_bf16.h>

namespace gdn {

typedef __nv_bfloat16 bf16;

inline constexpr int kQKHeads = 4;  // query/key heads
inline constexpr int kVHeads = 8;   // value heads; value head h reads q/k head h / 2
inline constexpr int kDim = 128;    // K = V = 128; a state row is kDim floats = 512 bytes
inline constexpr unsigned kFull = 0xffffffffu;

// Decay g and update gate beta of one (batch, value head), in fp32 like the reference.
// softplus follows torch (beta 1, threshold 20): x > 20 -> x, else log1p(exp(x)).
// FAST_GATES 1 computes them with the SFU intrinsics (__expf, __logf, approximate
// reciprocal): a chain of about 10 dependent instructions instead of about 40, which matters
// at small B, where the gate math runs after the gate inputs arrive from DRAM and before the
// first store can issue. Error: a few ulp on g and beta (the checker's state_rel is 1e-4).
#ifndef FAST_GATES
#define FAST_GATES 0
#endif
struct Gates {
  float g;
  float beta;
};

__device__ __forceinline__ Gates gates(const float* A_log, const bf16* a, const float* dt_bias,
                                       const bf16* b, int bh, int h) {
  const float x = __bfloat162float(a[bh]) + dt_bias[h];
  Gates r;
#if FAST_GATES
  const float sp = x > 20.f ? x : __logf(1.f + __expf(x));
  r.g = __expf(-__expf(A_log[h]) * sp);
  r.beta = __fdividef(1.f, 1.f + __expf(-__bfloat162float(b[bh])));
#else
  const float sp = x > 20.f ? x : log1pf(expf(x));
  r.g = expf(-expf(A_log[h]) * sp);
  r.beta = 1.f / (1.f + expf(-__bfloat162float(b[bh])));
#endif
  return r;
}

// Four consecutive bf16 (8-byte aligned) as fp32; q, k are never written, so the
// read-only path is safe.
__device__ __forceinline__ float4 load_bf16x4(const bf16* p) {
  const uint2 raw = __ldg(reinterpret_cast<const uint2*>(p));
  const float2 lo = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.x));
  const float2 hi = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.y));
  return make_float4(lo.x, lo.y, hi.x, hi.y);
}

__device__ __forceinline__ float dot4(float4 a, float4 b) {
  return a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w;
}

// The same sum in two independent halves: depth 3 (FMUL, FFMA, FADD) instead of 4.
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

// g * s + d * k, the state row update for four columns.
__device__ __forceinline__ float4 update4(float4 s, float g, float d, float4 k) {
  return make_float4(fmaf(g, s.x, d * k.x), fmaf(g, s.y, d * k.y), fmaf(g, s.z, d * k.z),
                     fmaf(g, s.w, d * k.w));
}

// Butterfly sum over aligned groups of WIDTH lanes; every lane of a group gets the sum.
template <int WIDTH>
__device__ __forceinline__ float group_sum(float x) {
#pragma unroll
  for (int off = WIDTH / 2; off > 0; off >>= 1) x += __shfl_xor_sync(kFull, x, off);
  return x;
}

// The L2 policies are plain (non-volatile) asm so the compiler creates each once per thread.
// State loads with a cache policy, chosen at compile time (LOAD_HINT in the variants):
//   0 plain ld.global; 1 ld.global.cs (evict-first, streaming); 2 L1::no_allocate;
//   3 L1::no_allocate + L2 evict_first policy; 4 ld.global.cs with an L2::256B prefetch
//   size; 5 L1::no_allocate with L2::256B. The prefetch size asks L2 to fetch the whole
//   aligned 256 bytes around a miss as one DRAM request (a lane group's share of a row
//   spans 256 bytes at 16 lanes per row). None uses the non-coherent path, so new_state
//   may alias state.
template <int HINT>
__device__ __forceinline__ float4 load_state4(const float* p) {
  static_assert(HINT >= 0 && HINT <= 5, "LOAD_HINT must be 0..5");
  float4 r;
  if constexpr (HINT == 0) {
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
__device__ __forceinline__ void store_state4(float* p, float4 x) {
  static_assert(HINT >= 0 && HINT <= 3, "STORE_HINT must be 0..3");
  if constexpr (HINT == 0) {
    *reinterpret_cast<float4*>(p) = x;
  } else if constexpr (HINT == 1) {
    __stcs(reinterpret_cast<float4*>(p), x);
  } else {
    unsigned long long pol;
    if constexpr (HINT == 2) {
      asm("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(pol));
    } else {
      asm("createpolicy.fractional.L2::evict_last.b64 %0, 1.0;" : "=l"(pol));
    }
    asm volatile("st.global.L2::cache_hint.v4.f32 [%0], {%1,%2,%3,%4}, %5;"
                 :
                 : "l"(p), "f"(x.x), "f"(x.y), "f"(x.z), "f"(x.w), "l"(pol)
                 : "memory");
  }
}

// Hopper bulk copies (cp.async.bulk) completing on an mbarrier; sm_90 and later only.
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
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::
          "r"(smem_addr(dst)),
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
