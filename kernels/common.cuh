// Shared definitions for every kernels/gdn_decode_*.cu (definition gdn_decode_qk4_v8_d128_k_last).
//
// Kernel ABI (the same for every variant; decodekit.launch packs exactly these arguments):
//
//   extern "C" __global__ void <entry>(
//       const bf16*  q,          // [B, 1, NUM_Q_HEADS, HEAD_SIZE]
//       const bf16*  k,          // [B, 1, NUM_Q_HEADS, HEAD_SIZE]
//       const bf16*  v,          // [B, 1, NUM_V_HEADS, HEAD_SIZE]
//       const float* state,      // [B, NUM_V_HEADS, V, K] k-last; nullptr means zeros
//       const float* A_log,      // [NUM_V_HEADS]
//       const bf16*  a,          // [B, 1, NUM_V_HEADS]
//       const float* dt_bias,    // [NUM_V_HEADS]
//       const bf16*  b,          // [B, 1, NUM_V_HEADS]
//       float        scale,      // already resolved on the host (never 0)
//       bf16*        output,     // [B, 1, NUM_V_HEADS, HEAD_SIZE]
//       float*       new_state,  // [B, NUM_V_HEADS, V, K] k-last; may alias state (in-place)
//       int          batch_size);
//
// All tensors are contiguous and 16-byte aligned (the launcher checks). A variant registered
// with inplace_ok=True must be correct when new_state == state, so it must not mark those two
// __restrict__.
#pragma once

#include <cuda_bf16.h>

typedef __nv_bfloat16 bf16;

inline constexpr int NUM_Q_HEADS = 4;
inline constexpr int NUM_V_HEADS = 8;
inline constexpr int HEAD_SIZE = 128;
// value head h reads q/k head h / V_PER_QK
inline constexpr int V_PER_QK = NUM_V_HEADS / NUM_Q_HEADS;
inline constexpr int WARP_SIZE = 32;
static_assert(NUM_V_HEADS % NUM_Q_HEADS == 0, "value heads must group evenly over q/k heads");

__device__ __forceinline__ float to_float(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ bf16 to_bf16(float x) { return __float2bfloat16_rn(x); }

// torch.nn.functional.softplus with beta=1, threshold=20: linear above the threshold.
__device__ __forceinline__ float softplus(float x) { return x > 20.f ? x : log1pf(expf(x)); }

__device__ __forceinline__ float sigmoid(float x) { return 1.f / (1.f + expf(-x)); }

// Decay g = exp(-exp(A_log) * softplus(a + dt_bias)), in (0, 1].
__device__ __forceinline__ float gdn_decay(float A_log, float a, float dt_bias) {
    return expf(-expf(A_log) * softplus(a + dt_bias));
}

// Update gate beta = sigmoid(b).
__device__ __forceinline__ float gdn_beta(float b) { return sigmoid(b); }

// Sum over the 32 lanes of a warp; every lane gets the total.
__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
    for (int offset = WARP_SIZE / 2; offset > 0; offset /= 2) {
        x += __shfl_xor_sync(0xffffffffu, x, offset);
    }
    return x;
}
