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
//   (STATE_BF16 0) or bf16 (STATE_BF16 1); state_indices [B] int32 (POOL only);
//   intermediate_states [B,T,V_HEADS,128,128] of STATE_T (INTERMEDIATE only, else unused).
// Verify calls (T > 1): INTERMEDIATE 1 also stores the state after each token t to
//   intermediate_states[b, t] (padding rows store nothing); UPDATE 0 skips the final store,
//   so the state is left as it was.
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
//   sums over the L lanes (gdn::group_sums), k . q and the norms too (gdn::group_sum). With
//   REDUCE 1 the row sums are a reduce-scatter instead (gdn::group_sums_scatter: 2 (N - 1) +
//   2 log2(L / N) shuffles for a lane's N = ROWS_PER_WARP * L / 32 rows, not 2 N log2 L):
//   each lane ends with one row's sums, computes that row's delta and output, and the N
//   deltas go round the group by N shuffles.
//   Token t + 1's q, k, v, a and b are loaded (raw bf16) while token t is computed.
// Knobs: QK_HEADS, V_HEADS, SEQ_LEN, POOL, L2NORM, STATE_BF16 (the member); WARPS,
//   ROWS_PER_WARP, LANES_PER_ROW (the shape); ITEMS, PREFETCH, REG_PREFETCH, MIN_BLOCKS
//   (gdn_family.cuh: work items a block, the next item's state through shared tiles or in
//   registers, launch bounds); and
//   LOAD_HINT 0..5 / STORE_HINT 0..3  state cache policies (gdn.cuh's, bf16 state too)
//   REDUCE 1         the row sums as a reduce-scatter, not a butterfly
//   CHAIN_SUMS 1     a row's s.k and s.q as one FMA chain each (gdn::fma4), not a multiply,
//                    three FMAs and an add per chunk
//   for T > 1 only:
//   GATES_ONCE 1     lane t of each warp computes token t's g and beta before token 0 and
//                    the tokens shuffle them, not every lane every token
//   TOKENS_ONCE 1    each token's k . q, norms and gates once a block (warp t % WARPS for
//                    token t, over all 32 lanes) into shared memory before token 0, one
//                    __syncthreads; includes GATES_ONCE's work (which must then be 0)
//   LAZY_DECAY 1     the state held as G * s, G the running product of the tokens' g: s.k
//                    and s.q are scaled by G, the update is s += (delta k / G) k, one FMA a
//                    value, not two; s is rescaled by G when G < 1e-20 and before a store
//   UNROLL_TOKENS 1  the token loop unrolled (the token inputs' addresses constant offsets)
//   SOLVE 1          the T tokens in one pass over the state: the 2T row sums of the initial
//                    state, the deltas by forward substitution over the tokens' Gram terms,
//                    one update (gdn_family_solve.cuh, which states the math; REDUCE 1)
//   GRAM_MMA 1       with SOLVE 1 (MMA 0, BLOCK_TILES 0, SEQ_LEN <= 4): the tokens' Gram
//                    terms and norms as one 8 x 8 Gram matrix on the tensor cores (8 bf16
//                    MMAs a warp, fp32 accumulation), not a reduce-scatter over the warp
//   SCALARS_FIRST 1  with SOLVE 1 or SEQ_LEN 1 (MMA, BLOCK_TILES, ROW_STREAM 0): the state's
//                    row sums wait for the tokens' scalars (gates, k . q or the Gram terms,
//                    norms) by a -0 added to each chunk (hold_back), so that work runs
//                    while the state is in flight (ptxas put it after the state landed)
//   HEAD_TOKENS 1    with CONSECUTIVE 1 and ITEMS dividing SPLIT (a block's items all rows of
//                    one head), at T = 1 or with SOLVE 1 (MMA, BLOCK_TILES 0): the tokens' k
//                    and q chunks, k . q or the Gram terms, norms and gates come from the
//                    block's first item, kept in registers; later items load only v
//                    (FlashInfer's pretranspose kernel does them once a head)
//   for T = 1 only:
//   ROW_STREAM 1     with PREFETCH 1 or 2 and REDUCE 0: an item's rows one at a time from
//                    the warp's tile, one row's chunks live in registers, not all of them
//                    (gdn_family_rows.cuh: 32 registers with MIN_BLOCKS, as FlashInfer's)
//   BLOCK_TILES R    one item a block, LANES_PER_ROW 32, no PREFETCH: the item's rows through
//                    two block-wide shared tiles of R rows in turn, cp.async by every thread,
//                    a row read, updated and stored before the next (gdn_family_tiles.cuh,
//                    gdn_family_rows.cuh: FlashInfer's pretranspose state path; 8 is its)
//   MMA 1            SOLVE's row sums and update as tf32 tensor-core MMAs with the state
//                    split hi + lo (gdn_family_mma.cuh; SOLVE 1, LANES_PER_ROW 4,
//                    ROWS_PER_WARP 16 or 32, sm_80+); MMA 2: the item's k and q and the
//                    tokens' scalars once a block in shared memory (warp 0's), not in
//                    every lane's registers (128 registers at 16 rows a warp, not 168)
//   Gates: exact (FAST_GATES must stay 0).
// Run: decodekit.impls.family_kernels.kit_kernel(member)(q, k, v, state, A_log, a, dt_bias,
//   b, scale, output, new_state, state_indices, intermediate_states)
//   (decodekit.build.family_launch builds the member's defines and launch shape); check with
//   decodekit.measure.family_check.check(kit_kernel(member), case, "cuda"); compile only:
//   decodekit.build.compile.compile_kernel("gdn_decode_family.cu", "sm_90a",
//   {"QK_HEADS": 16, "V_HEADS": 32, "POOL": 1, ...}).
#include "gdn_family.cuh"

#ifndef REDUCE
#define REDUCE 0
#endif
#ifndef LAZY_DECAY
#define LAZY_DECAY 0
#endif
#ifndef GATES_ONCE
#define GATES_ONCE 0
#endif
#ifndef UNROLL_TOKENS
#define UNROLL_TOKENS 0
#endif
#ifndef CHAIN_SUMS
#define CHAIN_SUMS 0
#endif
#ifndef TOKENS_ONCE
#define TOKENS_ONCE 0
#endif
#ifndef SOLVE
#define SOLVE 0
#endif
#ifndef MMA
#define MMA 0
#endif
#ifndef GRAM_MMA
#define GRAM_MMA 0
#endif
#ifndef SCALARS_FIRST
#define SCALARS_FIRST 0
#endif
#ifndef HEAD_TOKENS
#define HEAD_TOKENS 0
#endif
#ifndef ROW_STREAM
#define ROW_STREAM 0
#endif

namespace family {

inline constexpr float kL2Eps = 1e-6f;
// REDUCE 1: each lane ends the row sums holding one row's (gdn::group_sums_scatter), so it
// needs only that row's v; REDUCE 0: every lane holds every row's sums and v.
inline constexpr int kVLoads = REDUCE ? 1 : kSteps;
inline constexpr int kLanesPerSum = kLanes / kSteps;  // REDUCE 1: lanes holding one row's sums

static_assert(FAST_GATES == 0, "gdn_decode_family uses the exact gate math (FAST_GATES 0)");
static_assert(REDUCE == 0 || REDUCE == 1, "REDUCE must be 0 or 1");
static_assert(LAZY_DECAY == 0 || LAZY_DECAY == 1, "LAZY_DECAY must be 0 or 1");
static_assert(GATES_ONCE == 0 || (GATES_ONCE == 1 && kT > 1),
              "GATES_ONCE must be 0, or 1 with SEQ_LEN > 1");
static_assert(UNROLL_TOKENS == 0 || (UNROLL_TOKENS == 1 && kT > 1),
              "UNROLL_TOKENS must be 0, or 1 with SEQ_LEN > 1");
static_assert(CHAIN_SUMS == 0 || CHAIN_SUMS == 1, "CHAIN_SUMS must be 0 or 1");
static_assert(TOKENS_ONCE == 0 || (TOKENS_ONCE == 1 && kT > 1 && GATES_ONCE == 0),
              "TOKENS_ONCE must be 0, or 1 with SEQ_LEN > 1 (it computes the gates too: "
              "GATES_ONCE 0)");
// LAZY_DECAY: below this the running decay is folded back into the state (no underflow)
inline constexpr float kRenorm = 1e-20f;
static_assert(HEAD_TOKENS == 0 ||
                  (HEAD_TOKENS == 1 && (kT == 1 || (SOLVE == 1 && MMA == 0 && BLOCK_TILES == 0)) &&
                   CONSECUTIVE == 1 && kSplit % kItems == 0),
              "HEAD_TOKENS 1 needs SEQ_LEN 1 or SOLVE 1 (MMA and BLOCK_TILES 0), CONSECUTIVE 1 "
              "and ITEMS dividing SPLIT");
static_assert(REDUCE == 0 || kSteps <= kLanes,
              "REDUCE 1 needs ROWS_PER_WARP / (32 / LANES_PER_ROW) <= LANES_PER_ROW");

// ---- one token's small inputs, as loaded (raw bf16) --------------------------------------

struct Token {
    uint2 k[kChunks], q[kChunks];  // this lane's chunks of k[b,t,j] and q[b,t,j]
    bf16 v[kVLoads];               // v[b,t,h] of this lane's rows (REDUCE 1: of its sum row)
    bf16 a, b;                     // a[b,t,h], b[b,t,h]
};

// HEAD_TOKENS 1: what a block's items (rows of one head) share, from its first item.
struct HeadTokens {
    uint2 k[kChunks], q[kChunks];  // this lane's chunks of k and q
    float kq, rk, rq;              // k . q (normalised) and the norms' rsqrt
    gdn::Gates gt;
};

// v[b,t,h] of this lane's rows (REDUCE 1: of its sum row), rows row0 + r * kRowsPerStep.
__device__ __forceinline__ void load_v(bf16 (&out)[kVLoads], const bf16* __restrict__ v,
                                       size_t bt, int h, int row0) {
    const size_t bth = bt * kVHeads + h;
#pragma unroll
    for (int r = 0; r < kVLoads; ++r) out[r] = v[bth * kDim + row0 + r * kRowsPerStep];
}

// Token bt = b * T + t of (value head h, q/k head j); rows row0 + r * kRowsPerStep.
__device__ __forceinline__ Token load_token(const bf16* __restrict__ q,
                                            const bf16* __restrict__ k,
                                            const bf16* __restrict__ v,
                                            const bf16* __restrict__ a,
                                            const bf16* __restrict__ b, size_t bt, int h, int j,
                                            int row0, int col) {
    // row0: the first row whose v this lane loads (REDUCE 1: its sum row, one v)
    Token x;
    const size_t qk = (bt * kQKHeads + j) * kDim + col * 4;
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
        x.k[c] = __ldg(reinterpret_cast<const uint2*>(k + qk + c * kLanes * 4));
        x.q[c] = __ldg(reinterpret_cast<const uint2*>(q + qk + c * kLanes * 4));
    }
    const size_t bth = bt * kVHeads + h;
#pragma unroll
    for (int r = 0; r < kVLoads; ++r) x.v[r] = v[bth * kDim + row0 + r * kRowsPerStep];
    if (!GATES_ONCE && !TOKENS_ONCE && !SOLVE) {  // else the prologue reads every token's a, b
        x.a = a[bth];
        x.b = b[bth];
    }
    return x;
}

// A token's g and beta from its raw a[b,t,h] and b[b,t,h] (gdn.cuh's exact gate math).
__device__ __forceinline__ gdn::Gates exact_gates(bf16 a, bf16 b, float dtb, float A) {
    return gdn::gate_values<gdn::GateMath::kExact>(__bfloat162float(a), dtb, A,
                                                   __bfloat162float(b));
}

// TOKENS_ONCE: what every lane needs of token t beyond its own k and q chunks, computed once
// a block (warp t % WARPS, all 32 lanes over the 128 values) into shared memory.
struct TokenScalars {
    float kq;       // k . q, of the normalised vectors with L2NORM
    float rk, rq;   // rsqrt(|k|^2 + eps), rsqrt(|q|^2 + eps) (1 without L2NORM)
    gdn::Gates gt;  // g and beta
};

// TOKENS_ONCE: token t's scalars for batch row bt0 / T, value head h, q/k head j.
__device__ __forceinline__ TokenScalars token_scalars(const bf16* __restrict__ q,
                                                      const bf16* __restrict__ k,
                                                      const bf16* __restrict__ a,
                                                      const bf16* __restrict__ b, size_t bt,
                                                      int h, int j, float A, float dtb) {
    const int lane = threadIdx.x & 31;
    const size_t qk = (bt * kQKHeads + j) * kDim + lane * 4;
    const float4 kt = gdn::load_bf16x4(k + qk), qt = gdn::load_bf16x4(q + qk);
    TokenScalars x;
    x.kq = gdn::group_sum<32>(gdn::dot4(kt, qt));
    x.rk = L2NORM ? rsqrtf(gdn::group_sum<32>(gdn::dot4(kt, kt)) + kL2Eps) : 1.f;
    x.rq = L2NORM ? rsqrtf(gdn::group_sum<32>(gdn::dot4(qt, qt)) + kL2Eps) : 1.f;
    x.kq *= x.rk * x.rq;
    const size_t bth = bt * kVHeads + h;
    x.gt = exact_gates(a[bth], b[bth], dtb, A);
    return x;
}

// This lane's partial s . k and s . q of each step's row over its chunks (CHAIN_SUMS 1: one
// FMA chain each); group sums over the row's L lanes finish them.
template <int NS>  // rows a lane (kSteps, or BLOCK_TILES's a stage)
__device__ __forceinline__ void row_sums(const float4 (&s)[NS][kChunks],
                                         const float4 (&kk)[kChunks], const float4 (&qq)[kChunks],
                                         float (&sk)[NS], float (&sq)[NS]) {
#pragma unroll
    for (int r = 0; r < NS; ++r) {
        sk[r] = 0.f;
        sq[r] = 0.f;
#pragma unroll
        for (int c = 0; c < kChunks; ++c) {
            if (CHAIN_SUMS) {
                sk[r] = gdn::fma4(sk[r], s[r][c], kk[c]);
                sq[r] = gdn::fma4(sq[r], s[r][c], qq[c]);
            } else {
                sk[r] += gdn::dot4(s[r][c], kk[c]);
                sq[r] += gdn::dot4(s[r][c], qq[c]);
            }
        }
    }
}

// SCALARS_FIRST 1: each of this lane's state chunks gets -0 (x + -0 = x for every x) from z,
// a value that depends on every token scalar, so its row sums wait for the scalars: a
// dependency ptxas must keep (-|z| * 0 folds only if z cannot be NaN or infinite). ptxas
// otherwise puts the state's sums first and the scalars' shuffle chains after the state
// lands; held back, that fixed work runs while the state's loads are in flight.
template <int NS>
__device__ __forceinline__ void hold_back(float4 (&s)[NS][kChunks], float z) {
#pragma unroll
    for (int r = 0; r < NS; ++r)
#pragma unroll
        for (int c = 0; c < kChunks; ++c) s[r][c].x = fmaf(-fabsf(z), 0.f, s[r][c].x);
}
static_assert(SCALARS_FIRST == 0 ||
                  (SCALARS_FIRST == 1 && (SOLVE == 1 || kT == 1) && MMA == 0 &&
                   BLOCK_TILES == 0 && ROW_STREAM == 0),
              "SCALARS_FIRST 1 needs SOLVE 1 or SEQ_LEN 1, with MMA, BLOCK_TILES and ROW_STREAM 0");

// A row's four columns after one token: g * s + dk * k, or with LAZY_DECAY (the state held
// as G * s, G already multiplied by this token's g) s + (dk / G) * k: one FMA a value.
__device__ __forceinline__ float4 update(float4 s, float g, float dk, float inv_decay, float4 k) {
    if (LAZY_DECAY) return gdn::axpy4(s, dk * inv_decay, k);
    return gdn::update4(s, g, dk, k);
}

}  // namespace family

typedef family::state_t STATE_T;

#include "gdn_family_solve.cuh"  // SOLVE 1: a work item's T tokens in one pass (solve_item)
#include "gdn_family_mma.cuh"    // MMA 1: SOLVE's products on the tensor cores (mma_item)
#include "gdn_family_rows.cuh"   // ROW_STREAM 1: an item's rows one at a time (rows_item)

namespace family {

// Work item i of the block (at p): its T tokens for the warp's rows of (b, h).
__device__ __forceinline__ void decode_item(const Place& p, int i, Items& items,
                                            FAMILY_ITEM_PARAMS,
                                            HeadTokens& head) {
    const int h = p.h, col = p.col, row0 = p.row0;
    const int j = h / kVPerQK;
    const size_t bt0 = static_cast<size_t>(p.row_b) * kT;  // token 0 of this batch row
    // REDUCE 1: the step whose row sums this lane ends with, and that row's v
    const int mine = REDUCE ? col / kLanesPerSum : 0;
    const int vrow0 = row0 + mine * kRowsPerStep;
    // HEAD_TOKENS 1: after the block's first item, the head's token comes from `head`
    const bool kept = HEAD_TOKENS && i > 0;

    const int slot = slot_of(state_indices, p.row_b);
#if HEAD_TOKENS
    Token cur;
    if (kept) {
#pragma unroll
        for (int c = 0; c < kChunks; ++c) {
            cur.k[c] = head.k[c];
            cur.q[c] = head.q[c];
        }
        load_v(cur.v, v, bt0, h, vrow0);
    } else {
        cur = load_token(q, k, v, a, b, bt0, h, j, vrow0, col);
#pragma unroll
        for (int c = 0; c < kChunks; ++c) {
            head.k[c] = cur.k[c];
            head.q[c] = cur.q[c];
        }
    }
#else
    Token cur = load_token(q, k, v, a, b, bt0, h, j, vrow0, col);
#endif
#if POOL
    if (slot < 0) {  // a padding row: zero output, no state touched
        zero_output(output, p);
        return;
    }
#endif
    const size_t off = state_offset(slot, p);

    float4 s[kSteps][kChunks];
    items.load(s, p, slot, off, i);  // the slot's rows, or zeros (a dense call without state)
    const float A = A_log[h];
    const float dtb = dt_bias[h];
    // GATES_ONCE: lane t < T computes token t's gates once for the warp; tokens shuffle them
    gdn::Gates lane_gates{1.f, 0.f};
    if (GATES_ONCE && (threadIdx.x & 31) < kT) {
        const size_t bth = (bt0 + (threadIdx.x & 31)) * kVHeads + h;
        lane_gates = exact_gates(a[bth], b[bth], dtb, A);
    }
    float G = 1.f;  // LAZY_DECAY: the state is G * s; each token's decay multiplies G only
#if TOKENS_ONCE
    // Token t's scalars by warp t % WARPS, once a block, while the state loads are in flight.
    __shared__ TokenScalars tokens[kT];
    if (kItems > 1) __syncthreads();  // the block's last item is done reading them
    for (int t = threadIdx.x >> 5; t < kT; t += kWarps) {
        const TokenScalars x = token_scalars(q, k, a, b, bt0 + t, h, j, A, dtb);
        if ((threadIdx.x & 31) == 0) tokens[t] = x;
    }
    __syncthreads();
#endif

#pragma unroll(UNROLL_TOKENS ? kT : 1)
    for (int t = 0; t < kT; ++t) {
        float4 kk[kChunks], qq[kChunks];
        float kq = 0.f, k2 = 0.f, q2 = 0.f;
#pragma unroll
        for (int c = 0; c < kChunks; ++c) {
            kk[c] = gdn::bf16x4(cur.k[c]);
            qq[c] = gdn::bf16x4(cur.q[c]);
            if (TOKENS_ONCE || kept) continue;  // the block's table or `head` has them
            kq += gdn::dot4(kk[c], qq[c]);
            if (L2NORM) {
                k2 += gdn::dot4(kk[c], kk[c]);
                q2 += gdn::dot4(qq[c], qq[c]);
            }
        }
        float vr[kVLoads];
#pragma unroll
        for (int r = 0; r < kVLoads; ++r) vr[r] = __bfloat162float(cur.v[r]);
        gdn::Gates gt;
#if TOKENS_ONCE
        const TokenScalars ts = tokens[t];
        gt = ts.gt;
#else
        if (GATES_ONCE) {
            gt.g = __shfl_sync(gdn::kFull, lane_gates.g, t);
            gt.beta = __shfl_sync(gdn::kFull, lane_gates.beta, t);
        } else {
            gt = kept ? head.gt : exact_gates(cur.a, cur.b, dtb, A);
            if (HEAD_TOKENS) head.gt = gt;
        }
#endif
        // What multiplies the old state's sums: g, or with LAZY_DECAY the new G = G * g
        // (the state is then G * s, and s changes only by the rank-1 term, scaled by 1 / G).
        const float decay = LAZY_DECAY ? (G *= gt.g) : gt.g;
        const float inv_decay = LAZY_DECAY ? __fdividef(1.f, decay) : 1.f;  // MUFU.RCP: scales dk
        const gdn::Gates gs{decay, gt.beta};
        if (kT > 1 && t + 1 < kT) cur = load_token(q, k, v, a, b, bt0 + t + 1, h, j, vrow0, col);

        // Each group of L lanes holds every column once, so group sums are full dot products.
        float sk[kSteps], sq[kSteps];
        float rk = 1.f, rq = 1.f;
        const auto scalars = [&] {  // k . q and the norms' rsqrt, over the row's lanes
#if TOKENS_ONCE
        kq = ts.kq;
        rk = ts.rk;
        rq = ts.rq;
#else
        if (kept) {
            kq = head.kq;
            rk = head.rk;
            rq = head.rq;
        } else {
            kq = gdn::group_sum<kLanes>(kq);
            if (L2NORM) {
                rk = rsqrtf(gdn::group_sum<kLanes>(k2) + kL2Eps);
                rq = rsqrtf(gdn::group_sum<kLanes>(q2) + kL2Eps);
                kq *= rk * rq;
            }
            if (HEAD_TOKENS) {
                head.kq = kq;
                head.rk = rk;
                head.rq = rq;
            }
        }
#endif
        };
        if constexpr (SCALARS_FIRST) {  // T = 1: the scalars first, the state waits for them
            scalars();
            hold_back(s, kq + rk + rq + gs.g + gs.beta);
        }
        row_sums(s, kk, qq, sk, sq);
        if constexpr (!SCALARS_FIRST) scalars();
        const size_t orow = ((bt0 + t) * kVHeads + h) * kDim + row0;
#if REDUCE
        // Each lane finishes one row: its delta and output; the deltas go round the group.
        gdn::group_sums_scatter<kLanes>(sk, sq);
        const float my_delta = gdn::row_delta(gs, vr[0], rk * sk[0]);
        if (col % kLanesPerSum == 0)
            output[orow + mine * kRowsPerStep] =
                __float2bfloat16(gdn::row_output(gs, rq * sq[0], kq, my_delta, scale));
#pragma unroll
        for (int r = 0; r < kSteps; ++r) {
            const float dk = __shfl_sync(gdn::kFull, my_delta, r * kLanesPerSum, kLanes) * rk;
#pragma unroll
            for (int c = 0; c < kChunks; ++c) s[r][c] = update(s[r][c], gt.g, dk, inv_decay, kk[c]);
        }
#else
        gdn::group_sums<kLanes>(sk, sq);
#pragma unroll
        for (int r = 0; r < kSteps; ++r) {
            const float delta = gdn::row_delta(gs, vr[r], rk * sk[r]);
            const float dk = delta * rk;
#pragma unroll
            for (int c = 0; c < kChunks; ++c) s[r][c] = update(s[r][c], gt.g, dk, inv_decay, kk[c]);
            if (col == 0)
                output[orow + r * kRowsPerStep] =
                    __float2bfloat16(gdn::row_output(gs, rq * sq[r], kq, delta, scale));
        }
#endif
        if (LAZY_DECAY && G < kRenorm) {  // block-uniform: fold G back before it underflows
#pragma unroll
            for (int r = 0; r < kSteps; ++r)
#pragma unroll
                for (int c = 0; c < kChunks; ++c) s[r][c] = gdn::scale4(s[r][c], G);
            G = 1.f;
        }
        // token t's state, for the engine to commit an accepted prefix
        if (INTERMEDIATE) store_rows(intermediate_states + intermediate_offset(t, p), s, G);
    }

    if (UPDATE) store_rows(new_state + off, s, G);  // UPDATE 0: the state left as it was
}

}  // namespace family

extern "C" __global__ void __launch_bounds__(family::kWarps * 32, family::kMinBlocks)
    gdn_decode_family(const gdn::bf16* __restrict__ q, const gdn::bf16* __restrict__ k,
                      const gdn::bf16* __restrict__ v, const STATE_T* state,
                      const float* __restrict__ A_log, const gdn::bf16* __restrict__ a,
                      const float* __restrict__ dt_bias, const gdn::bf16* __restrict__ b,
                      float scale, gdn::bf16* __restrict__ output, STATE_T* new_state,
                      const int* __restrict__ state_indices,
                      STATE_T* __restrict__ intermediate_states, int batch_size) {
    using namespace family;
    HeadTokens head;        // HEAD_TOKENS 1: the head's token, from the block's first item
    SolveHead solve_head;   // the same with SOLVE 1: every token's, and their scalars
    for_each_item(state, state_indices, batch_size, [&](const Place& p, int i, Items& items) {
        if constexpr (MMA != 0 && BLOCK_TILES != 0)
            tiles_mma_item(p, items, FAMILY_ITEM_ARGS);
        else if constexpr (MMA)
            mma_item(p, i, items, FAMILY_ITEM_ARGS);
        else if constexpr (BLOCK_TILES != 0 && kT > 1)
            tiles_solve_item(p, items, FAMILY_ITEM_ARGS);
        else if constexpr (BLOCK_TILES != 0)
            tiles_item(p, items, FAMILY_ITEM_ARGS);
        else if constexpr (ROW_STREAM)
            rows_item(p, i, items, FAMILY_ITEM_ARGS);
        else if constexpr (SOLVE)
            solve_item(p, i, items, FAMILY_ITEM_ARGS, solve_head);
        else
            decode_item(p, i, items, FAMILY_ITEM_ARGS, head);
    });
}
