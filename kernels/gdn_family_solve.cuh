// SOLVE 1 (T > 1): a work item's T tokens in one pass over the state instead of T, for
// gdn_decode_family.cu (included there, after its Token and exact_gates).
//
// Math, per state row s (the item's initial state, 128 k-values), with the normalised
// k^_t = rk_t k_t, q^_t = rq_t q_t (rk = rq = 1 without L2NORM) and P(a, c) = g_a .. g_c
// (1 when a > c). The state after token t - 1 is P(0, t-1) s + sum_{i<t} P(i+1, t-1) d_i k^_i,
// so the per-token recurrence of gdn_decode_family.cu unrolls to
//   a_t = s . k^_t,  b_t = s . q^_t                           (2T row sums, one pass of s)
//   d_t = beta_t (v_t - P(0,t) a_t - sum_{i<t} P(i+1,t) d_i (k^_i . k^_t))   (in turn, t = 0..)
//   o_t = scale (P(0,t) b_t + sum_{i<=t} P(i+1,t) d_i (k^_i . q^_t))          (output[b,t,h])
//   s'  = P(0,T-1) s + sum_i P(i+1,T-1) d_i k^_i               (one pass: T + 1 ops a value)
// The d_t are a forward substitution in scalars, one row a lane. The Gram terms k^_i . k^_t
// (i < t), k^_i . q^_t (i <= t) and the norms, T^2 + 2T numbers of the tokens alone, are
// summed by each warp over its 32 lanes (lane (sub, col) adds chunk sub of its k and q: every
// column once) as a reduce-scatter of 16 a round (gdn::group_sums_scatter), while the
// state's loads are in flight. Against the per-token loop: the 2T row sums are independent
// (one reduce-scatter round for all tokens, not T dependent ones) and the state is updated
// once. With INTERMEDIATE the state after each token is formed in turn instead,
// s = g_t s + d_t k^_t (two ops a value a token), and stored; UPDATE 0 without INTERMEDIATE
// forms no state at all.
// Launch and lanes: gdn_decode_family.cu's (REDUCE 1: lane l ends the row sums holding row
// `mine` = (l % L) / (L / kSteps) of its steps; the coefficients of each step's row go round
// the group by T * kSteps shuffles). Knobs: REDUCE must be 1; GATES_ONCE, TOKENS_ONCE,
// LAZY_DECAY and UNROLL_TOKENS 0 (its own prologue computes the gates once a warp, lane t
// token t's; its token loops are unrolled); CHAIN_SUMS, ITEMS, PREFETCH, CONSECUTIVE,
// MIN_BLOCKS and the hints as in the kernel.
#pragma once

namespace family {

static_assert(SOLVE == 0 || SOLVE == 1, "SOLVE must be 0 or 1");
static_assert(SOLVE == 0 || (kT > 1 && REDUCE == 1 && GATES_ONCE == 0 && TOKENS_ONCE == 0 &&
                             LAZY_DECAY == 0 && UNROLL_TOKENS == 0),
              "SOLVE 1 needs SEQ_LEN > 1 and REDUCE 1, with GATES_ONCE, TOKENS_ONCE, "
              "LAZY_DECAY and UNROLL_TOKENS 0");

// The tokens' Gram terms and squared norms, in this order: k.k (i < t) at t (t-1)/2 + i,
// k.q (i <= t) at T (T-1)/2 + t (t+1)/2 + i, |k_t|^2 at T^2 + t, |q_t|^2 at T^2 + T + t;
// summed in rounds of 16 (16 partial terms live at a time, beside the state in flight).
inline constexpr int kGramKQ = kT * (kT - 1) / 2;
inline constexpr int kGramNorms = kT * kT;
inline constexpr int kGram = kGramNorms + (L2NORM ? 2 * kT : 0);
inline constexpr int kGramRounds = (kGram + 15) / 16;
__device__ __forceinline__ constexpr int gram_kk(int i, int t) { return t * (t - 1) / 2 + i; }
__device__ __forceinline__ constexpr int gram_kq(int i, int t) {
    return kGramKQ + t * (t + 1) / 2 + i;
}

// Term n's partial from this lane's chunks of every token's k and q (kc, qc).
__device__ __forceinline__ float gram_term(int n, const float4 (&kc)[kT], const float4 (&qc)[kT]) {
#pragma unroll
    for (int t = 0; t < kT; ++t) {
#pragma unroll
        for (int i = 0; i <= t; ++i) {
            if (i < t && n == gram_kk(i, t)) return gdn::dot4(kc[i], kc[t]);
            if (n == gram_kq(i, t)) return gdn::dot4(kc[i], qc[t]);
        }
        if (L2NORM && n == kGramNorms + t) return gdn::dot4(kc[t], kc[t]);
        if (L2NORM && n == kGramNorms + kT + t) return gdn::dot4(qc[t], qc[t]);
    }
    return 0.f;  // the last round's padding
}

// A warp's Gram terms after the reduce-scatter: round g's term n (of 16) is held by lane
// 4 (n % 8), in half n / 8 (gdn::group_sums_scatter<32, 8>: lane l ends with pair l / 4).
struct Gram {
    float held[kGramRounds][2];

    // Every lane's partial terms from its own chunk of each token's k and q (chunk `sub` of
    // the row layout: columns 4 lane .. 4 lane + 3, so every column once), summed over the
    // warp a round at a time.
    __device__ __forceinline__ void sum(const float4 (&kc)[kT], const float4 (&qc)[kT]) {
#pragma unroll
        for (int g = 0; g < kGramRounds; ++g) {
            float lo[8], hi[8];
#pragma unroll
            for (int n = 0; n < 8; ++n) {
                lo[n] = gram_term(16 * g + n, kc, qc);
                hi[n] = gram_term(16 * g + 8 + n, kc, qc);
            }
            gdn::group_sums_scatter<32, 8>(lo, hi);
            held[g][0] = lo[0];
            held[g][1] = hi[0];
        }
    }

    // Term n, to every lane (n a compile-time constant once unrolled).
    __device__ __forceinline__ float get(int n) const {
        return __shfl_sync(gdn::kFull, held[n / 16][n % 16 / 8], 4 * (n % 8));
    }
};

// This lane's own chunk of a token's k or q (chunk `sub`: every column once over the warp).
__device__ __forceinline__ float4 own_chunk(const uint2 (&x)[kChunks], int sub) {
    uint2 r = x[0];
#pragma unroll
    for (int c = 1; c < kChunks; ++c)
        if (c == sub) r = x[c];
    return gdn::bf16x4(r);
}

// Work item i of the block (at p): its T tokens in one pass (the math above).
__device__ __forceinline__ void solve_item(const Place& p, int i, Items& items,
                                           const bf16* __restrict__ q,
                                           const bf16* __restrict__ k,
                                           const bf16* __restrict__ v,
                                           const float* __restrict__ A_log,
                                           const bf16* __restrict__ a,
                                           const float* __restrict__ dt_bias,
                                           const bf16* __restrict__ b, float scale,
                                           bf16* __restrict__ output, STATE_T* new_state,
                                           const int* __restrict__ state_indices,
                                           STATE_T* __restrict__ intermediate_states) {
    const int h = p.h, col = p.col, row0 = p.row0;
    const int j = h / kVPerQK;
    const int lane = threadIdx.x & 31;
    const size_t bt0 = static_cast<size_t>(p.row_b) * kT;
    const int mine = col / kLanesPerSum;  // the step whose row sums this lane ends with
    const int vrow0 = row0 + mine * kRowsPerStep;

    const int slot = slot_of(state_indices, p.row_b);
    Token tok[kT];
#pragma unroll
    for (int t = 0; t < kT; ++t) tok[t] = load_token(q, k, v, a, b, bt0 + t, h, j, vrow0, col);
#if POOL
    if (slot < 0) {  // a padding row: zero output, no state touched
        zero_output(output, p);
        return;
    }
#endif
    const size_t off = state_offset(slot, p);
    float4 s[kSteps][kChunks];
    items.load(s, p, slot, off, i);

    // While the state is in flight: the gates (lane t, token t) and the Gram terms.
    const float A = A_log[h], dtb = dt_bias[h];
    gdn::Gates lane_gates{1.f, 0.f};
    if (lane < kT) {
        const size_t bth = (bt0 + lane) * kVHeads + h;
        lane_gates = exact_gates(a[bth], b[bth], dtb, A);
    }
    Gram gram;
    {
        float4 kc[kT], qc[kT];
#pragma unroll
        for (int t = 0; t < kT; ++t) {
            kc[t] = own_chunk(tok[t].k, p.sub);
            qc[t] = own_chunk(tok[t].q, p.sub);
        }
        gram.sum(kc, qc);
    }
    float rk[kT], rq[kT];
#pragma unroll
    for (int t = 0; t < kT; ++t) {
        rk[t] = L2NORM ? rsqrtf(gram.get(kGramNorms + t) + kL2Eps) : 1.f;
        rq[t] = L2NORM ? rsqrtf(gram.get(kGramNorms + kT + t) + kL2Eps) : 1.f;
    }

    // The 2T row sums of the initial state, each token's reduce-scattered at once (two a
    // token stay live, not 2 kSteps): lane `mine`'s row ends in sk[t], sq[t].
    float sk[kT], sq[kT];
#pragma unroll
    for (int t = 0; t < kT; ++t) {
        float4 kk[kChunks], qq[kChunks];
#pragma unroll
        for (int c = 0; c < kChunks; ++c) {
            kk[c] = gdn::bf16x4(tok[t].k[c]);
            qq[c] = gdn::bf16x4(tok[t].q[c]);
        }
        float pk[kSteps], pq[kSteps];  // partial s . k_t and s . q_t of each step's row
        row_sums(s, kk, qq, pk, pq);
        gdn::group_sums_scatter<kLanes>(pk, pq);
        sk[t] = pk[0];
        sq[t] = pq[0];
    }

    // Row `mine`: the deltas in turn and the outputs; e[i] = P(i+1, t) d_i as t goes on.
    float e[kT], dk[kT], decay = 1.f;  // decay = P(0, t)
#pragma unroll
    for (int t = 0; t < kT; ++t) {
        const float g = __shfl_sync(gdn::kFull, lane_gates.g, t);
        const float beta = __shfl_sync(gdn::kFull, lane_gates.beta, t);
        decay *= g;
#pragma unroll
        for (int i = 0; i < t; ++i) e[i] *= g;
        float u = decay * (rk[t] * sk[t]);
#pragma unroll
        for (int i = 0; i < t; ++i) u = fmaf(e[i], rk[i] * rk[t] * gram.get(gram_kk(i, t)), u);
        e[t] = beta * (__bfloat162float(tok[t].v[0]) - u);
        dk[t] = e[t] * rk[t];  // INTERMEDIATE: token t's delta on the raw k_t
        float o = decay * (rq[t] * sq[t]);
#pragma unroll
        for (int i = 0; i <= t; ++i) o = fmaf(e[i], rk[i] * rq[t] * gram.get(gram_kq(i, t)), o);
        if (col % kLanesPerSum == 0)
            output[((bt0 + t) * kVHeads + h) * kDim + vrow0] = __float2bfloat16(scale * o);
    }

    if (INTERMEDIATE) {  // every token's state in turn, stored; the last is the new state
#pragma unroll
        for (int t = 0; t < kT; ++t) {
            const float g = __shfl_sync(gdn::kFull, lane_gates.g, t);
#pragma unroll
            for (int r = 0; r < kSteps; ++r) {
                const float d = __shfl_sync(gdn::kFull, dk[t], r * kLanesPerSum, kLanes);
#pragma unroll
                for (int c = 0; c < kChunks; ++c)
                    s[r][c] = gdn::update4(s[r][c], g, d, gdn::bf16x4(tok[t].k[c]));
            }
            store_rows(intermediate_states + intermediate_offset(t, p), s);
        }
        if (UPDATE) store_rows(new_state + off, s);
    } else if (UPDATE) {  // s' = P(0, T-1) s + sum_i e_i rk_i k_i, one pass
#pragma unroll
        for (int r = 0; r < kSteps; ++r) {
            float d[kT];
#pragma unroll
            for (int t = 0; t < kT; ++t)
                d[t] = __shfl_sync(gdn::kFull, e[t] * rk[t], r * kLanesPerSum, kLanes);
#pragma unroll
            for (int c = 0; c < kChunks; ++c) {
                float4 x = gdn::scale4(s[r][c], decay);
#pragma unroll
                for (int t = 0; t < kT; ++t) x = gdn::axpy4(x, d[t], gdn::bf16x4(tok[t].k[c]));
                s[r][c] = x;
            }
        }
        store_rows(new_state + off, s);
    }
}

}  // namespace family
