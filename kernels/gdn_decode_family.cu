// GDN decode for every member of the family (decodekit.problem.family.Member): q/k and value
// heads, tokens per call, fp32 or bf16 state, a dense state or a pool of slots, optional
// in-kernel L2 normalisation of q and k. One kernel, gdn_decode_family, chosen by defines.
//
// Math, in fp32, per batch row b and value head h (q/k head j = h / (V_HEADS / QK_HEADS),
// K = V = gdn::kDim = 128), S the head's state [V, K], for t = 0 .. T-1 (T = SEQ_LEN):
//   qt, kt = q[b,t,j], k[b,t,j];  with L2NORM: x = x * rsqrt(sum x^2 + 1e-6) for both
//   g    = exp(-exp(A_log[h]) * softplus(a[b,t,h] + dt_bias[h]))   (gdn.cuh, exact libm)
//   beta = sigmoid(b[b,t,h])
//   S = g * S;  S += outer(beta * (v[b,t,h] - S @ kt), kt);  output[b,t,h] = bf16(scale * S @ qt)
// and the final S is the new state. Row v of S (s its 128 k-values) in one pass per token, as
// in gdn.cuh: delta = beta (v - g s.k), s' = g s + delta k, out = scale (g s.q + (k.q) delta).
// With L2NORM the norms are folded in: s.k = rk * (s . k_raw), s.q = rq * (s . q_raw),
// k.q = rk rq (k_raw . q_raw), s' = g s + (delta rk) k_raw, rk = rsqrt(|k_raw|^2 + 1e-6), so
// the row sums start before the norms are known. The state stays in registers across the T
// tokens: loaded once before token 0, stored once after token T-1.
//
// Layouts (contiguous, row-major): q, k [B,T,QK_HEADS,128] bf16; v, output [B,T,V_HEADS,128]
//   bf16; a, b [B,T,V_HEADS] bf16; A_log, dt_bias [V_HEADS] fp32; state and new_state k-last
//   [B,V_HEADS,128,128] (dense) or [P,V_HEADS,128,128] (POOL: P slots) of STATE_T, float
//   (STATE_BF16 0) or bf16 (STATE_BF16 1); state_indices [B] int32 (POOL only).
// Dense: row b reads state[b] (nullptr means zeros) and writes new_state[b].
// Pool (POOL 1): slot = state_indices[b]; slot >= 0 reads and writes state[slot] in place
//   (new_state == state); slot < 0 is a padding row: it writes zeros to its whole output
//   [T,V_HEADS,128] and touches no state. Each state row is read and written by the same
//   lanes, read fully (before token 0) before it is written (after token T-1), so in place is
//   safe; state and new_state are therefore not __restrict__. The host rejects out-of-range
//   and repeated live slots before launching (decodekit.problem.family.validate_indices).
// bf16 state: a lane loads 4 bf16 (8 bytes) per chunk and widens them to a float4, does the
//   math in fp32 and stores each element rounded to nearest (__float2bfloat16_rn).
// Launch: grid B * V_HEADS * SPLIT blocks, SPLIT = 128 / (WARPS * ROWS_PER_WARP), block
//   WARPS * 32 threads, no shared memory: subwarp's tiling (gdn_decode_subwarp.cu). Block x
//   works on (b, h) = divmod(x / SPLIT, V_HEADS) and rows (x % SPLIT) * WARPS * ROWS_PER_WARP
//   onward; in a warp a row belongs to LANES_PER_ROW (L) lanes, lane l holding chunks
//   c = 0 .. 32/L-1 of it, columns 4 * (c * L + l % L) .. + 4; s . k and s . q are butterfly
//   sums over the L lanes (gdn::group_sums), k . q and the norms too (gdn::group_sum).
//   Token t + 1's q, k, v, a and b are loaded (raw bf16) while token t is computed.
// Knobs: QK_HEADS, V_HEADS, SEQ_LEN, POOL, L2NORM, STATE_BF16 (the member), WARPS,
//   ROWS_PER_WARP, LANES_PER_ROW (the shape), LOAD_HINT 0..5 / STORE_HINT 0..3 (state cache
//   policies, gdn.cuh's meanings, for bf16 state too). Gates: exact (FAST_GATES must stay 0).
// Run: decodekit.impls.family_kernels.kit_kernel(member)(q, k, v, state, A_log, a, dt_bias,
//   b, scale, output, new_state, state_indices) (decodekit.build.family_launch builds the
//   member's defines and launch shape); check with decodekit.measure.family_check.check(
//   kit_kernel(member), case, "cuda"); compile only: decodekit.build.compile.compile_kernel(
//   "gdn_decode_family.cu", "sm_90a", {"QK_HEADS": 16, "V_HEADS": 32, "POOL": 1, ...}).
#include "gdn.cuh"

#ifndef QK_HEADS
#define QK_HEADS 4
#endif
#ifndef V_HEADS
#define V_HEADS 8
#endif
#ifndef SEQ_LEN
#define SEQ_LEN 1
#endif
#ifndef POOL
#define POOL 0
#endif
#ifndef L2NORM
#define L2NORM 0
#endif
#ifndef STATE_BF16
#define STATE_BF16 0
#endif
#ifndef WARPS
#define WARPS 4
#endif
#ifndef ROWS_PER_WARP
#define ROWS_PER_WARP 8
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

namespace family {

using gdn::bf16;

inline constexpr int kQKHeads = QK_HEADS;
inline constexpr int kVHeads = V_HEADS;
inline constexpr int kVPerQK = kVHeads / kQKHeads;
inline constexpr int kT = SEQ_LEN;
inline constexpr int kDim = gdn::kDim;
inline constexpr int kWarps = WARPS;
inline constexpr int kRowsPerWarp = ROWS_PER_WARP;
inline constexpr int kLanes = LANES_PER_ROW;        // lanes sharing one row
inline constexpr int kRowsPerStep = 32 / kLanes;    // rows covered by one warp-wide load
inline constexpr int kChunks = kDim / 4 / kLanes;   // 4-column chunks of a row per lane
inline constexpr int kSteps = kRowsPerWarp / kRowsPerStep;
inline constexpr int kRowsPerBlock = kWarps * kRowsPerWarp;
inline constexpr int kSplit = kDim / kRowsPerBlock;
inline constexpr float kL2Eps = 1e-6f;

static_assert(kQKHeads >= 1 && kVHeads >= 1, "QK_HEADS and V_HEADS must be >= 1");
static_assert(kVHeads % kQKHeads == 0, "V_HEADS must be a multiple of QK_HEADS");
static_assert(kT >= 1 && kT <= 16, "SEQ_LEN must be 1..16");
static_assert(POOL == 0 || POOL == 1, "POOL must be 0 or 1");
static_assert(L2NORM == 0 || L2NORM == 1, "L2NORM must be 0 or 1");
static_assert(STATE_BF16 == 0 || STATE_BF16 == 1, "STATE_BF16 must be 0 or 1");
static_assert(FAST_GATES == 0, "gdn_decode_family uses the exact gate math (FAST_GATES 0)");
static_assert(kLanes == 2 || kLanes == 4 || kLanes == 8 || kLanes == 16 || kLanes == 32,
              "LANES_PER_ROW must be 2, 4, 8, 16 or 32");
static_assert(kWarps >= 1 && kWarps <= 32, "WARPS must be 1..32");
static_assert(kRowsPerWarp >= 1 && kRowsPerWarp % kRowsPerStep == 0,
              "ROWS_PER_WARP must be a multiple of 32 / LANES_PER_ROW");
static_assert(kDim % kRowsPerBlock == 0, "WARPS * ROWS_PER_WARP must divide 128");

#if STATE_BF16
typedef bf16 state_t;
#else
typedef float state_t;
#endif

// ---- state chunks: 4 values of a row as a float4, from fp32 or bf16 ---------------------

template <int HINT>
__device__ __forceinline__ float4 load4(const float* p) {
    return gdn::load_state4<HINT>(p);
}

// Four bf16 state values (8 bytes) with gdn.cuh's LOAD_HINT policies, widened to fp32.
template <int HINT>
__device__ __forceinline__ float4 load4(const bf16* p) {
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
    return gdn::bf16x4(r);
}

template <int HINT>
__device__ __forceinline__ void store4(float* p, float4 x) {
    gdn::store_state4<HINT>(p, x);
}

// Four fp32 values rounded to bf16 (round to nearest even), stored as 8 bytes with gdn.cuh's
// STORE_HINT policies.
template <int HINT>
__device__ __forceinline__ void store4(bf16* p, float4 x) {
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
        unsigned long long pol;
        if constexpr (HINT == 2) {
            asm("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(pol));
        } else {
            asm("createpolicy.fractional.L2::evict_last.b64 %0, 1.0;" : "=l"(pol));
        }
        asm volatile("st.global.L2::cache_hint.v2.u32 [%0], {%1,%2}, %3;"
                     :
                     : "l"(p), "r"(r.x), "r"(r.y), "l"(pol)
                     : "memory");
    }
}

// ---- one token's small inputs, as loaded (raw bf16) --------------------------------------

struct Token {
    uint2 k[kChunks], q[kChunks];  // this lane's chunks of k[b,t,j] and q[b,t,j]
    bf16 v[kSteps];                // v[b,t,h] of this lane's rows
    bf16 a, b;                     // a[b,t,h], b[b,t,h]
};

// Token bt = b * T + t of (value head h, q/k head j); rows row0 + r * kRowsPerStep.
__device__ __forceinline__ Token load_token(const bf16* __restrict__ q,
                                            const bf16* __restrict__ k,
                                            const bf16* __restrict__ v,
                                            const bf16* __restrict__ a,
                                            const bf16* __restrict__ b, size_t bt, int h, int j,
                                            int row0, int col) {
    Token x;
    const size_t qk = (bt * kQKHeads + j) * kDim + col * 4;
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
        x.k[c] = __ldg(reinterpret_cast<const uint2*>(k + qk + c * kLanes * 4));
        x.q[c] = __ldg(reinterpret_cast<const uint2*>(q + qk + c * kLanes * 4));
    }
    const size_t bth = bt * kVHeads + h;
#pragma unroll
    for (int r = 0; r < kSteps; ++r) x.v[r] = v[bth * kDim + row0 + r * kRowsPerStep];
    x.a = a[bth];
    x.b = b[bth];
    return x;
}

}  // namespace family

typedef family::state_t STATE_T;

extern "C" __global__ void __launch_bounds__(family::kWarps * 32)
    gdn_decode_family(const gdn::bf16* __restrict__ q, const gdn::bf16* __restrict__ k,
                      const gdn::bf16* __restrict__ v, const STATE_T* state,
                      const float* __restrict__ A_log, const gdn::bf16* __restrict__ a,
                      const float* __restrict__ dt_bias, const gdn::bf16* __restrict__ b,
                      float scale, gdn::bf16* __restrict__ output, STATE_T* new_state,
                      const int* __restrict__ state_indices, int batch_size) {
    using namespace family;
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int sub = lane / kLanes;  // which of the step's rows this lane works on
    const int col = lane % kLanes;  // which 4-column piece of each chunk of L pieces
    const int bh = blockIdx.x / kSplit;
    if (bh >= batch_size * kVHeads) return;
    const int row_b = bh / kVHeads;
    const int h = bh % kVHeads;
    const int j = h / kVPerQK;
    // This lane's row in step r is row0 + r * kRowsPerStep.
    const int row0 = (blockIdx.x % kSplit) * kRowsPerBlock + warp * kRowsPerWarp + sub;
    const size_t bt0 = static_cast<size_t>(row_b) * kT;  // token 0 of this batch row

#if POOL
    const int slot = state_indices[row_b];
#else
    const int slot = row_b;
#endif
    Token cur = load_token(q, k, v, a, b, bt0, h, j, row0, col);
#if POOL
    if (slot < 0) {  // a padding row: zero output, no state touched
        if (col == 0) {
#pragma unroll 1
            for (int t = 0; t < kT; ++t)
#pragma unroll
                for (int r = 0; r < kSteps; ++r)
                    output[((bt0 + t) * kVHeads + h) * kDim + row0 + r * kRowsPerStep] =
                        __float2bfloat16(0.f);
        }
        return;
    }
#endif
    const size_t off = ((static_cast<size_t>(slot) * kVHeads + h) * kDim + row0) * kDim + col * 4;

    float4 s[kSteps][kChunks];
    if (POOL || state != nullptr) {
#pragma unroll
        for (int r = 0; r < kSteps; ++r)
#pragma unroll
            for (int c = 0; c < kChunks; ++c)
                s[r][c] = load4<LOAD_HINT>(state + off + r * kRowsPerStep * kDim + c * kLanes * 4);
    } else {
#pragma unroll
        for (int r = 0; r < kSteps; ++r)
#pragma unroll
            for (int c = 0; c < kChunks; ++c) s[r][c] = make_float4(0.f, 0.f, 0.f, 0.f);
    }
    const float A = A_log[h];
    const float dtb = dt_bias[h];

#pragma unroll 1
    for (int t = 0; t < kT; ++t) {
        float4 kk[kChunks], qq[kChunks];
        float kq = 0.f, k2 = 0.f, q2 = 0.f;
#pragma unroll
        for (int c = 0; c < kChunks; ++c) {
            kk[c] = gdn::bf16x4(cur.k[c]);
            qq[c] = gdn::bf16x4(cur.q[c]);
            kq += gdn::dot4(kk[c], qq[c]);
            if (L2NORM) {
                k2 += gdn::dot4(kk[c], kk[c]);
                q2 += gdn::dot4(qq[c], qq[c]);
            }
        }
        float vr[kSteps];
#pragma unroll
        for (int r = 0; r < kSteps; ++r) vr[r] = __bfloat162float(cur.v[r]);
        const gdn::Gates gt = gdn::gate_values<gdn::GateMath::kExact>(
            __bfloat162float(cur.a), dtb, A, __bfloat162float(cur.b));
        if (kT > 1 && t + 1 < kT) cur = load_token(q, k, v, a, b, bt0 + t + 1, h, j, row0, col);

        // Each group of L lanes holds every column once, so group sums are full dot products.
        float sk[kSteps], sq[kSteps];
#pragma unroll
        for (int r = 0; r < kSteps; ++r) {
            sk[r] = 0.f;
            sq[r] = 0.f;
#pragma unroll
            for (int c = 0; c < kChunks; ++c) {
                sk[r] += gdn::dot4(s[r][c], kk[c]);
                sq[r] += gdn::dot4(s[r][c], qq[c]);
            }
        }
        kq = gdn::group_sum<kLanes>(kq);
        float rk = 1.f, rq = 1.f;
        if (L2NORM) {
            rk = rsqrtf(gdn::group_sum<kLanes>(k2) + kL2Eps);
            rq = rsqrtf(gdn::group_sum<kLanes>(q2) + kL2Eps);
            kq *= rk * rq;
        }
        gdn::group_sums<kLanes>(sk, sq);

        const size_t orow = ((bt0 + t) * kVHeads + h) * kDim + row0;
#pragma unroll
        for (int r = 0; r < kSteps; ++r) {
            const float delta = gdn::row_delta(gt, vr[r], rk * sk[r]);
            const float dk = delta * rk;
#pragma unroll
            for (int c = 0; c < kChunks; ++c) s[r][c] = gdn::update4(s[r][c], gt.g, dk, kk[c]);
            if (col == 0)
                output[orow + r * kRowsPerStep] =
                    __float2bfloat16(gdn::row_output(gt, rq * sq[r], kq, delta, scale));
        }
    }

#pragma unroll
    for (int r = 0; r < kSteps; ++r)
#pragma unroll
        for (int c = 0; c < kChunks; ++c)
            store4<STORE_HINT>(new_state + off + r * kRowsPerStep * kDim + c * kLanes * 4,
                               s[r][c]);
}
