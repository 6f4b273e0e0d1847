// gdn_decode_baseline: the simplest correct GDN decode kernel; the parent of every variant.
//
// Math, per batch row b and value head h (q/k head j = h / 2), all in fp32:
//   g = exp(-exp(A_log[h]) * softplus(a[b,0,h] + dt_bias[h]));  beta = sigmoid(b[b,0,h])
//   for each state row v:  S = g * state[b,h,v,:];  u = S . k[b,0,j,:]
//                          delta = beta * (v[b,0,h,v] - u)
//                          new_state[b,h,v,:] = S + delta * k[b,0,j,:]
//                          output[b,0,h,v] = bf16(scale * (new_state[b,h,v,:] . q[b,0,j,:]))
// Layouts (contiguous): q, k [B,1,4,128] bf16; v, output [B,1,8,128] bf16; a, b [B,1,8] bf16;
//   A_log, dt_bias [8] fp32; state, new_state [B,8,128,128] fp32 k-last (row v, column k).
//   state == nullptr means zeros; new_state may alias state (each row is read whole before it
//   is written, by the one thread that owns it).
// Launch: grid (B * NUM_V_HEADS,), block (THREADS,): one block per (b, h), thread v owns state
//   row v (128 floats in registers, read once with float4 loads and written once); q and k
//   of head j are staged in shared memory. Rows are 512 bytes apart, so loads are uncoalesced:
//   this variant is the correctness anchor, not a speed target.
// Parent: none.
// Check:  decodekit check --impl baseline --workloads contest
// Time:   decodekit bench --impl baseline --workloads representative
#include "common.cuh"

inline constexpr int THREADS = HEAD_SIZE;  // one thread per state row v
inline constexpr int VEC = 4;              // floats per vector load (float4)
inline constexpr int ROW_VECS = HEAD_SIZE / VEC;
static_assert(THREADS == HEAD_SIZE, "one thread per state row");
static_assert(HEAD_SIZE % VEC == 0, "rows load as whole float4s");

extern "C" __global__ void __launch_bounds__(THREADS) gdn_decode_baseline(
    const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
    const float* state, const float* __restrict__ A_log, const bf16* __restrict__ a,
    const float* __restrict__ dt_bias, const bf16* __restrict__ b, float scale,
    bf16* __restrict__ output, float* new_state, int batch_size) {
    const int bh = blockIdx.x;  // b * NUM_V_HEADS + h
    if (bh >= batch_size * NUM_V_HEADS) return;
    const int bi = bh / NUM_V_HEADS;
    const int h = bh % NUM_V_HEADS;
    const int j = h / V_PER_QK;
    const int row = threadIdx.x;

    __shared__ float q_s[HEAD_SIZE];
    __shared__ float k_s[HEAD_SIZE];
    const int qk_off = (bi * NUM_Q_HEADS + j) * HEAD_SIZE;
    q_s[row] = to_float(q[qk_off + row]);
    k_s[row] = to_float(k[qk_off + row]);

    // Every thread computes the two gates itself: cheaper than a broadcast through shared memory.
    const float g = gdn_decay(A_log[h], to_float(a[bh]), dt_bias[h]);
    const float beta = gdn_beta(to_float(b[bh]));
    __syncthreads();

    // 64-bit offset: B * 8 * 128 * 128 overflows int32 from B = 16384.
    const size_t row_off = (static_cast<size_t>(bh) * HEAD_SIZE + row) * HEAD_SIZE;
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
    const float delta = beta * (to_float(v[bh * HEAD_SIZE + row]) - u);
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
    output[bh * HEAD_SIZE + row] = to_bf16(scale * o);
}
