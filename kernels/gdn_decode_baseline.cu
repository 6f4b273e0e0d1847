// gdn_decode_baseline: the simplest correct GDN decode kernel; the parent of every variant.
//
// Math (gdn.cuh), row by row as the definition reads, not in one pass: thread v forms
//   S = g * state[b,h,v,:], u = S . k, delta = beta * (v[b,h,v] - u), S += delta * k,
//   stores S and writes output[b,h,v] = bf16(scale * (S . q)). g and beta as gdn.cuh's
//   gate math (exact unless built with FAST_GATES=1).
// Launch: grid (B * 8,), block (THREADS = 128,): one block per (b, h), thread v owns state
//   row v (128 floats in registers, read once with float4 loads and written once); q and k
//   of head j are staged in shared memory. Rows are 512 bytes apart, so loads are uncoalesced:
//   this variant is the correctness anchor, not a speed target.
// In place: each row is read whole before it is written, by the one thread that owns it.
// Parent: none.
// Check:  decodekit check --impl baseline --workloads contest
// Time:   decodekit bench --impl baseline --workloads representative
#include "gdn.cuh"

inline constexpr int THREADS = gdn::kDim;  // one thread per state row v
inline constexpr int VEC = 4;              // floats per vector load (float4)
inline constexpr int ROW_VECS = gdn::kDim / VEC;
static_assert(THREADS == gdn::kDim, "one thread per state row");
static_assert(gdn::kDim % VEC == 0, "rows load as whole float4s");

extern "C" __global__ void __launch_bounds__(THREADS) gdn_decode_baseline(
    const gdn::bf16* __restrict__ q, const gdn::bf16* __restrict__ k,
    const gdn::bf16* __restrict__ v, const float* state, const float* __restrict__ A_log,
    const gdn::bf16* __restrict__ a, const float* __restrict__ dt_bias,
    const gdn::bf16* __restrict__ b, float scale, gdn::bf16* __restrict__ output,
    float* new_state, int batch_size) {
    const int bh = blockIdx.x;  // b * 8 + h
    if (bh >= batch_size * gdn::kVHeads) return;
    const int bi = bh / gdn::kVHeads;
    const int h = bh % gdn::kVHeads;
    const int j = h / gdn::kVPerQK;  // q/k head
    const int row = threadIdx.x;

    __shared__ float q_s[gdn::kDim];
    __shared__ float k_s[gdn::kDim];
    const int qk_off = (bi * gdn::kQKHeads + j) * gdn::kDim;
    q_s[row] = __bfloat162float(q[qk_off + row]);
    k_s[row] = __bfloat162float(k[qk_off + row]);

    // Every thread computes the two gates itself: cheaper than a broadcast through shared memory.
    // The baseline's own order (gdn::gates has another): A_log, a, dt_bias, then b; softplus
    // formed after exp(A_log).
    constexpr gdn::GateMath M = gdn::kGateMath;
    const float g = gdn::decay_x<M>(A_log[h], __bfloat162float(a[bh]) + dt_bias[h]);
    const float beta = gdn::sigmoid<M>(__bfloat162float(b[bh]));
    __syncthreads();

    // 64-bit offset: B * 8 * 128 * 128 overflows int32 from B = 16384.
    const size_t row_off = (static_cast<size_t>(bh) * gdn::kDim + row) * gdn::kDim;
    float4 s[ROW_VECS];
    if (state != nullptr) {
        const float4* src = reinterpret_cast<const float4*>(state + row_off);
#pragma unroll
        for (int i = 0; i < ROW_VECS; ++i) s[i] = src[i];
    } else {
#pragma unroll
        for (int i = 0; i < ROW_VECS; ++i) s[i] = make_float4(0.f, 0.f, 0.f, 0.f);
    }

    // S = g * state (one multiply per element); u = S . k
    float u = 0.f;
#pragma unroll
    for (int i = 0; i < ROW_VECS; ++i) {
        s[i].x *= g;
        s[i].y *= g;
        s[i].z *= g;
        s[i].w *= g;
        u += s[i].x * k_s[VEC * i] + s[i].y * k_s[VEC * i + 1] + s[i].z * k_s[VEC * i + 2] +
             s[i].w * k_s[VEC * i + 3];
    }
    const float delta = beta * (__bfloat162float(v[bh * gdn::kDim + row]) - u);
    // A barrier here makes the compiler re-read k from shared memory below instead of keeping
    // all 128 values in registers beside the row (that spilled at 255 registers).
    __syncthreads();

    // S_new = S + delta * k, stored once; out = scale * (S_new . q)
    float4* dst = reinterpret_cast<float4*>(new_state + row_off);
    float o = 0.f;
#pragma unroll
    for (int i = 0; i < ROW_VECS; ++i) {
        s[i].x += delta * k_s[VEC * i];
        s[i].y += delta * k_s[VEC * i + 1];
        s[i].z += delta * k_s[VEC * i + 2];
        s[i].w += delta * k_s[VEC * i + 3];
        dst[i] = s[i];
        o += s[i].x * q_s[VEC * i] + s[i].y * q_s[VEC * i + 1] + s[i].z * q_s[VEC * i + 2] +
             s[i].w * q_s[VEC * i + 3];
    }
    output[bh * gdn::kDim + row] = __float2bfloat16_rn(scale * o);
}
