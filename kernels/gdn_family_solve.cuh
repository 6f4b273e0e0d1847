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
// column once) as a reduce-scatter of 16 a round (gdn::group_sums_scatter), or with
// GRAM_MMA 1 as one Gram matrix on the tensor cores (Gram::sum_mma), while the state's loads
// are in flight. Against the per-token loop: the 2T row sums are independent
// (one reduce-scatter round for all tokens, not T dependent ones) and the state is updated
// once. With INTERMEDIATE the state after each token is formed in turn instead,
// s = g_t s + d_t k^_t (two ops a value a token), and stored; UPDATE 0 without INTERMEDIATE
// forms no state at all.
// Launch and lanes: gdn_decode_family.cu's (REDUCE 1: lane l ends the row sums holding row
// `mine` = (l % L) / (L / kSteps) of its steps; the coefficients of each step's row go round
// the group by T * kSteps shuffles). Knobs: REDUCE must be 1; GATES_ONCE, TOKENS_ONCE,
// LAZY_DECAY and UNROLL_TOKENS 0 (its own prologue computes the gates once a warp, lane t
// token t's; its token loops are unrolled); GRAM_MMA (T <= 4, not with MMA or BLOCK_TILES:
// the Gram terms on the tensor cores); SCALARS_FIRST (the row sums wait for the scalars:
// SolveScalars::hold_back); HEAD_TOKENS (with CONSECUTIVE 1: a block's later items take the
// tokens and scalars of its first, SolveHead); CHAIN_SUMS, ITEMS, PREFETCH, CONSECUTIVE,
// MIN_BLOCKS and the hints as in the kernel.
#pragma once

namespace family {

static_assert(SOLVE == 0 || SOLVE == 1, "SOLVE must be 0 or 1");
static_assert(GRAM_MMA == 0 ||
                  (GRAM_MMA == 1 && SOLVE == 1 && MMA == 0 && BLOCK_TILES == 0 && kT <= 4),
              "GRAM_MMA 1 needs SOLVE 1 with MMA 0, BLOCK_TILES 0 and SEQ_LEN at most 4");
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

    // GRAM_MMA 1: every term at once as the 8 x 8 Gram matrix G = V V^T of the 2T vectors
    // V = (k_0 .. k_{T-1}, q_0 .. q_{T-1}, zeros past 2T) on the tensor cores, 8
    // mma.sync.m16n8k16 bf16 with fp32 accumulation (bf16 products are exact in fp32) over
    // the 128 columns: A = V (rows 8 .. 15 zero) and B = V^T are the same registers. Lane
    // (g, t4) = (lane / 4, lane % 4) loads vector g's columns 32 t4 .. 32 t4 + 31 (4 16-byte
    // loads of q and k of value head h's q/k head j, batch row bt0 / T) and gives MMA c
    // columns 32 t4 + 4 c .. + 3 as its k-indices 2 t4, 2 t4 + 1, 2 t4 + 8, 2 t4 + 9 (any
    // order of the columns sums the same); it ends with G(g, 2 t4) and G(g, 2 t4 + 1) in
    // held[0]. No reduction over lanes: 4 loads and 8 MMAs, where sum() takes ~100 FMAs and
    // a reduce-scatter of kGram terms.
    __device__ __forceinline__ void sum_mma(const bf16* __restrict__ q,
                                            const bf16* __restrict__ k, size_t bt0, int j) {
        const int lane = threadIdx.x & 31, g = lane / 4, t4 = lane % 4;
        uint4 w[4] = {};
        if (g < 2 * kT) {
            const bf16* x = (g < kT ? k : q) +
                            ((bt0 + (g < kT ? g : g - kT)) * kQKHeads + j) * kDim + 32 * t4;
#pragma unroll
            for (int i = 0; i < 4; ++i) w[i] = __ldg(reinterpret_cast<const uint4*>(x) + i);
        }
        float d[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
        for (int c = 0; c < 8; ++c) {
            const uint4& x = w[c / 2];
            const unsigned lo = c % 2 ? x.z : x.x, hi = c % 2 ? x.w : x.y;
            asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, "
                "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                : "r"(lo), "r"(0u), "r"(hi), "r"(0u), "r"(lo), "r"(hi));
        }
        held[0][0] = d[0];
        held[0][1] = d[1];
    }

    // GRAM_MMA 1: term n's place in G, (vector, vector) by the order above.
    __device__ __forceinline__ static constexpr int2 gram_cell(int n) {
        if (n >= kGramNorms + kT) return {kT + n - kGramNorms - kT, kT + n - kGramNorms - kT};
        if (n >= kGramNorms) return {n - kGramNorms, n - kGramNorms};
        for (int t = 0; t < kT; ++t)
            for (int i = 0; i <= t; ++i) {
                if (i < t && n == gram_kk(i, t)) return {i, t};
                if (n == gram_kq(i, t)) return {i, kT + t};
            }
        return {0, 0};
    }

    // Term n, to every lane (n a compile-time constant once unrolled).
    __device__ __forceinline__ float get(int n) const {
        if constexpr (GRAM_MMA) {
            const int2 v = gram_cell(n);
            return __shfl_sync(gdn::kFull, held[0][v.y & 1], 4 * v.x + v.y / 2);
        }
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

// What every row of an item needs of its T tokens beyond their k and q chunks: the gates
// (lane t: token t's), the Gram terms and the norms' rsqrt.
// solve_rows reads them through g(t), beta(t), rk(t), rq(t), kk(i, t) = rk_i rk_t k_i . k_t
// and kq(i, t) = rk_i rq_t k_i . q_t: here by shuffles from the lanes holding them
// (TokenCoefs: held once, in shared memory or registers).
struct SolveScalars {
    gdn::Gates lane_gates;
    Gram gram;
    float rk_[kT], rq_[kT];

    __device__ __forceinline__ float g(int t) const {
        return __shfl_sync(gdn::kFull, lane_gates.g, t);
    }
    __device__ __forceinline__ float beta(int t) const {
        return __shfl_sync(gdn::kFull, lane_gates.beta, t);
    }
    __device__ __forceinline__ float rk(int t) const { return rk_[t]; }
    __device__ __forceinline__ float rq(int t) const { return rq_[t]; }
    __device__ __forceinline__ float kk(int i, int t) const {
        return rk_[i] * rk_[t] * gram.get(gram_kk(i, t));
    }
    __device__ __forceinline__ float kq(int i, int t) const {
        return rk_[i] * rq_[t] * gram.get(gram_kq(i, t));
    }

    // SCALARS_FIRST 1: the state's row sums wait for every scalar held here (hold_back).
    template <int NS>
    __device__ __forceinline__ void hold_back(float4 (&s)[NS][kChunks]) const {
        float z = lane_gates.g + lane_gates.beta;
#pragma unroll
        for (int g = 0; g < (GRAM_MMA ? 1 : kGramRounds); ++g) z += gram.held[g][0] + gram.held[g][1];
#pragma unroll
        for (int t = 0; t < kT; ++t) z += rk_[t] + rq_[t];
        family::hold_back(s, z);
    }
};

// An item's SolveScalars held once, without shuffles at each use: in shared memory once a
// block (BLOCK_TILES, MMA 2: warp 0's, written by its lane 0 before a barrier), read by every
// warp, or in registers (MMA 1: every lane's own copy).
struct TokenCoefs {
    float g_[kT], beta_[kT], rk_[kT], rq_[kT], kk_[kGramKQ > 0 ? kGramKQ : 1],
        kq_[kGramKQ + kT];

    // Every lane of a warp computes; lane 0 writes (kEveryLane: every lane, a register copy).
    template <bool kEveryLane = false>
    __device__ __forceinline__ void fill(const SolveScalars& x) {
#pragma unroll
        for (int t = 0; t < kT; ++t) {
            const float g = x.g(t), beta = x.beta(t);
            float kk[kT], kq[kT + 1];
#pragma unroll
            for (int i = 0; i <= t; ++i) {
                if (i < t) kk[i] = x.kk(i, t);
                kq[i] = x.kq(i, t);
            }
            if (kEveryLane || (threadIdx.x & 31) == 0) {
                g_[t] = g;
                beta_[t] = beta;
                rk_[t] = x.rk(t);
                rq_[t] = x.rq(t);
#pragma unroll
                for (int i = 0; i <= t; ++i) {
                    if (i < t) kk_[gram_kk(i, t)] = kk[i];
                    kq_[gram_kq(i, t) - kGramKQ] = kq[i];
                }
            }
        }
    }
    __device__ __forceinline__ float g(int t) const { return g_[t]; }
    __device__ __forceinline__ float beta(int t) const { return beta_[t]; }
    __device__ __forceinline__ float rk(int t) const { return rk_[t]; }
    __device__ __forceinline__ float rq(int t) const { return rq_[t]; }
    __device__ __forceinline__ float kk(int i, int t) const { return kk_[gram_kk(i, t)]; }
    __device__ __forceinline__ float kq(int i, int t) const { return kq_[gram_kq(i, t) - kGramKQ]; }
};

// The item's SolveScalars (value head h, batch row bt0 / T): the gates (lane t, token t),
// then the Gram terms by fill(x.gram), then the norms' rsqrt from them.
template <class Fill>
__device__ __forceinline__ SolveScalars token_scalars(Fill&& fill,
                                                      const float* __restrict__ A_log,
                                                      const bf16* __restrict__ a,
                                                      const float* __restrict__ dt_bias,
                                                      const bf16* __restrict__ b, size_t bt0,
                                                      int h) {
    const int lane = threadIdx.x & 31;
    SolveScalars x;
    const float A = A_log[h], dtb = dt_bias[h];
    x.lane_gates = gdn::Gates{1.f, 0.f};
    if (lane < kT) {
        const size_t bth = (bt0 + lane) * kVHeads + h;
        x.lane_gates = exact_gates(a[bth], b[bth], dtb, A);
    }
    fill(x.gram);
#pragma unroll
    for (int t = 0; t < kT; ++t) {
        x.rk_[t] = L2NORM ? rsqrtf(x.gram.get(kGramNorms + t) + kL2Eps) : 1.f;
        x.rq_[t] = L2NORM ? rsqrtf(x.gram.get(kGramNorms + kT + t) + kL2Eps) : 1.f;
    }
    return x;
}

// The same with the Gram terms from this lane's own chunk of each token's k and q,
// chunks(kc, qc) (float4 kc[T], qc[T]: every column once over the warp).
template <class Chunks>
__device__ __forceinline__ SolveScalars chunk_scalars(Chunks&& chunks,
                                                      const float* __restrict__ A_log,
                                                      const bf16* __restrict__ a,
                                                      const float* __restrict__ dt_bias,
                                                      const bf16* __restrict__ b, size_t bt0,
                                                      int h) {
    const auto fill = [&](Gram& gram) {
        float4 kc[kT], qc[kT];
        chunks(kc, qc);
        gram.sum(kc, qc);
    };
    return token_scalars(fill, A_log, a, dt_bias, b, bt0, h);
}

// The same from the tokens of the row layout: this lane's chunk `sub` of each.
__device__ __forceinline__ SolveScalars solve_scalars(const Token (&tok)[kT],
                                                      const float* __restrict__ A_log,
                                                      const bf16* __restrict__ a,
                                                      const float* __restrict__ dt_bias,
                                                      const bf16* __restrict__ b, size_t bt0,
                                                      int h, int sub) {
    const auto chunks = [&](float4 (&kc)[kT], float4 (&qc)[kT]) {
#pragma unroll
        for (int t = 0; t < kT; ++t) {
            kc[t] = own_chunk(tok[t].k, sub);
            qc[t] = own_chunk(tok[t].q, sub);
        }
    };
    return chunk_scalars(chunks, A_log, a, dt_bias, b, bt0, h);
}

// The T tokens on NS steps of this lane's rows (s: their state, lane (sub, col) as in the
// kernel's layout, NS rows a lane): the 2T row sums, reduce-scattered so that the lane ends
// with row `mine` = col / (L / NS)'s; its deltas and outputs (out(t, o), by the lanes with
// col % (L / NS) == 0; v_of(t): that row's v of token t); then the state, as the math above
// says: with INTERMEDIATE each token's in turn, store(t, s) for t = 0 .. T-1 and, with
// UPDATE, store(T, s) for the final; else with UPDATE the final in one pass, store(T, s).
template <int NS, class Coefs, class VOf, class Out, class Store>
__device__ __forceinline__ void solve_rows(float4 (&s)[NS][kChunks], const Token (&tok)[kT],
                                           const Coefs& x, int col, VOf&& v_of,
                                           Out&& out, Store&& store) {
    constexpr int kPerSum = kLanes / NS;  // lanes holding one row's sums
    // The 2T row sums of the initial state, each token's reduce-scattered at once (two a
    // token stay live, not 2 NS): lane `mine`'s row ends in sk[t], sq[t].
    float sk[kT], sq[kT];
#pragma unroll
    for (int t = 0; t < kT; ++t) {
        float4 kk[kChunks], qq[kChunks];
#pragma unroll
        for (int c = 0; c < kChunks; ++c) {
            kk[c] = gdn::bf16x4(tok[t].k[c]);
            qq[c] = gdn::bf16x4(tok[t].q[c]);
        }
        float pk[NS], pq[NS];  // partial s . k_t and s . q_t of each step's row
        row_sums(s, kk, qq, pk, pq);
        gdn::group_sums_scatter<kLanes>(pk, pq);
        sk[t] = pk[0];
        sq[t] = pq[0];
    }

    // Row `mine`: the deltas in turn and the outputs; e[i] = P(i+1, t) d_i as t goes on.
    float e[kT], dk[kT], decay = 1.f;  // decay = P(0, t)
#pragma unroll
    for (int t = 0; t < kT; ++t) {
        const float g = x.g(t);
        const float beta = x.beta(t);
        decay *= g;
#pragma unroll
        for (int i = 0; i < t; ++i) e[i] *= g;
        float u = decay * (x.rk(t) * sk[t]);
#pragma unroll
        for (int i = 0; i < t; ++i) u = fmaf(e[i], x.kk(i, t), u);
        e[t] = beta * (v_of(t) - u);
        dk[t] = e[t] * x.rk(t);  // INTERMEDIATE: token t's delta on the raw k_t
        float o = decay * (x.rq(t) * sq[t]);
#pragma unroll
        for (int i = 0; i <= t; ++i) o = fmaf(e[i], x.kq(i, t), o);
        if (col % kPerSum == 0) out(t, o);
    }

    if (INTERMEDIATE) {  // every token's state in turn, stored; the last is the new state
#pragma unroll
        for (int t = 0; t < kT; ++t) {
            const float g = x.g(t);
#pragma unroll
            for (int r = 0; r < NS; ++r) {
                const float d = __shfl_sync(gdn::kFull, dk[t], r * kPerSum, kLanes);
#pragma unroll
                for (int c = 0; c < kChunks; ++c)
                    s[r][c] = gdn::update4(s[r][c], g, d, gdn::bf16x4(tok[t].k[c]));
            }
            store(t, s);
        }
        if (UPDATE) store(kT, s);
    } else if (UPDATE) {  // s' = P(0, T-1) s + sum_i e_i rk_i k_i, one pass
#pragma unroll
        for (int r = 0; r < NS; ++r) {
            float d[kT];
#pragma unroll
            for (int t = 0; t < kT; ++t)
                d[t] = __shfl_sync(gdn::kFull, e[t] * x.rk(t), r * kPerSum, kLanes);
#pragma unroll
            for (int c = 0; c < kChunks; ++c) {
                float4 y = gdn::scale4(s[r][c], decay);
#pragma unroll
                for (int t = 0; t < kT; ++t) y = gdn::axpy4(y, d[t], gdn::bf16x4(tok[t].k[c]));
                s[r][c] = y;
            }
        }
        store(kT, s);
    }
}

// HEAD_TOKENS 1 with SOLVE 1: what a block's items (rows of one (b, h)) share, from its first
// item: every token's k and q chunks of this lane and their scalars (gates, Gram, norms).
struct SolveHead {
    uint2 k[kT][kChunks], q[kT][kChunks];
    SolveScalars x;
};

// Work item i of the block (at p): its T tokens in one pass (the math above).
__device__ __forceinline__ void solve_item(const Place& p, int i, Items& items,
                                           FAMILY_ITEM_PARAMS, SolveHead& head) {
    const int h = p.h, col = p.col, row0 = p.row0;
    const int j = h / kVPerQK;
    const size_t bt0 = static_cast<size_t>(p.row_b) * kT;
    const int mine = col / kLanesPerSum;  // the step whose row sums this lane ends with
    const int vrow0 = row0 + mine * kRowsPerStep;

    const int slot = slot_of(state_indices, p.row_b);
    // HEAD_TOKENS 1: after the block's first item (rows of the same (b, h)), the tokens' k and
    // q chunks and their scalars come from `head`; the item loads only its rows' v
    const bool kept = HEAD_TOKENS && i > 0;
    Token tok[kT];
#pragma unroll
    for (int t = 0; t < kT; ++t) {
        if (kept) {
#pragma unroll
            for (int c = 0; c < kChunks; ++c) {
                tok[t].k[c] = head.k[t][c];
                tok[t].q[c] = head.q[t][c];
            }
            load_v(tok[t].v, v, bt0 + t, h, vrow0);
        } else {
            tok[t] = load_token(q, k, v, a, b, bt0 + t, h, j, vrow0, col);
        }
    }
#if POOL
    if (slot < 0) {  // a padding row: zero output, no state touched (the block's every item)
        zero_output(output, p);
        return;
    }
#endif
    const size_t off = state_offset(slot, p);
    float4 s[kSteps][kChunks];
    items.load(s, p, slot, off, i);

    // While the state is in flight: the gates (lane t, token t) and the Gram terms.
    SolveScalars x;
    if (kept)
        x = head.x;
    else if constexpr (GRAM_MMA)
        x = token_scalars([&](Gram& gram) { gram.sum_mma(q, k, bt0, j); }, A_log, a, dt_bias, b,
                          bt0, h);
    else
        x = solve_scalars(tok, A_log, a, dt_bias, b, bt0, h, p.sub);
    if (HEAD_TOKENS && !kept) {
        head.x = x;
#pragma unroll
        for (int t = 0; t < kT; ++t)
#pragma unroll
            for (int c = 0; c < kChunks; ++c) {
                head.k[t][c] = tok[t].k[c];
                head.q[t][c] = tok[t].q[c];
            }
    }
    if constexpr (SCALARS_FIRST) x.hold_back(s);
    solve_rows(
        s, tok, x, col, [&](int t) { return __bfloat162float(tok[t].v[0]); },
        [&](int t, float o) {
            output[((bt0 + t) * kVHeads + h) * kDim + vrow0] = __float2bfloat16(scale * o);
        },
        [&](int t, const float4 (&st)[kSteps][kChunks]) {
            if (t < kT)
                store_rows(intermediate_states + intermediate_offset(t, p), st);
            else
                store_rows(new_state + off, st);
        });
}

static_assert(BLOCK_TILES == 0 || kT == 1 || (SOLVE == 1 && MMA != 1),
              "BLOCK_TILES R with SEQ_LEN > 1 needs SOLVE 1 and MMA 0 or 2");

// BLOCK_TILES R at T > 1 (SOLVE 1, MMA 2): the item (at p, one a block) through the block's
// stage tiles (gdn_family_tiles.cuh's stage_loop, FlashInfer's state path). While stage 0
// lands: loads() (the caller's token loads), the item's v of every token to shared memory (one
// coalesced load), and warp 0 writes scalars() (the tokens' SolveScalars) to sh.cf. Then this warp's
// R / WARPS contiguous rows of each stage: read from the tile (lane (sub, col) of the kernel's
// layout, kStageSteps steps from row r0) and handed to rows(st, r0, sh, store), which does the
// tokens' math, reads v from sh.vs and writes the outputs to sh.os; store(t, y) stores token
// t's state (t = T: the new state), each row's values as vector stores. The outputs leave
// from shared memory in one coalesced store after the last stage. Registers hold one stage's
// rows, not the item's: the copies of the next stage are in flight while this one computes.
struct TokenTiles {
    float (&vs)[kT][kRowsPerBlock];  // the item's v of every token
    bf16 (&os)[kT][kRowsPerBlock];   // and its outputs
    TokenCoefs& cf;                  // the tokens' scalars, from warp 0
};
#if BLOCK_TILES
template <class Loads, class Scalars, class Rows>
__device__ __forceinline__ void tiles_tokens_item(const Place& p, Items& items,
                                                  const bf16* __restrict__ v,
                                                  bf16* __restrict__ output, STATE_T* new_state,
                                                  const int* __restrict__ state_indices,
                                                  STATE_T* __restrict__ intermediate_states,
                                                  Loads&& loads, Scalars&& scalars,
                                                  Rows&& rows) {
    const int h = p.h, col = p.col, warp = threadIdx.x >> 5;
    const size_t bt0 = static_cast<size_t>(p.row_b) * kT;
    const int irow = item_row(p);  // the item's first row in the head
    const int slot = slot_of(state_indices, p.row_b);
    // token t's row r of the item in output (and v) [B, T, V_HEADS, 128]
    const auto at = [&](int t, int r) { return ((bt0 + t) * kVHeads + h) * kDim + irow + r; };
#if POOL
    if (slot < 0) {  // a padding row: zero output, no state touched (block-uniform)
        for (int n = threadIdx.x; n < kT * kRowsPerBlock; n += kWarps * 32)
            output[at(n / kRowsPerBlock, n % kRowsPerBlock)] = __float2bfloat16(0.f);
        return;
    }
#endif
    __shared__ float vs[kT][kRowsPerBlock];  // the item's v of every token
    __shared__ bf16 os[kT][kRowsPerBlock];   // and its outputs
    __shared__ TokenCoefs cf;                // the tokens' scalars, from warp 0
    TokenTiles sh{vs, os, cf};
    const size_t slot_rows = (static_cast<size_t>(slot) * kVHeads + h) * kDim + irow;
    stage_loop(
        p, slot, items,
        [&] {  // while stage 0 lands
            loads();
            for (int n = threadIdx.x; n < kT * kRowsPerBlock; n += kWarps * 32)
                sh.vs[n / kRowsPerBlock][n % kRowsPerBlock] =
                    __bfloat162float(v[at(n / kRowsPerBlock, n % kRowsPerBlock)]);
            if (warp == 0) sh.cf.fill(scalars());
        },
        [&](int s, const state_t* tile, bool reads) {
            const int r0 = s * kTileRows + warp * kRowsPerWarpStage + p.sub;  // step 0's row
            const state_t* own = tile + (r0 - s * kTileRows) * kDim + col * 4;
            float4 st[kStageSteps][kChunks];
#pragma unroll
            for (int r = 0; r < kStageSteps; ++r)
#pragma unroll
                for (int c = 0; c < kChunks; ++c)
                    st[r][c] = reads ? tile_values(own + chunk_offset(r, c))
                                     : make_float4(0.f, 0.f, 0.f, 0.f);
            rows(st, r0, sh, [&](int t, const float4 (&y)[kStageSteps][kChunks]) {
                STATE_T* base = (t < kT ? intermediate_states +
                                              (((bt0 + t) * kVHeads + h) * kDim + irow) * kDim
                                        : new_state + slot_rows * kDim) +
                                r0 * kDim + col * 4;
#pragma unroll
                for (int r = 0; r < kStageSteps; ++r)
#pragma unroll
                    for (int c = 0; c < kChunks; ++c) store_row4(base + chunk_offset(r, c), y[r][c]);
            });
        });
    __syncthreads();  // every row's outputs are in os
    for (int n = threadIdx.x; n < kT * kRowsPerBlock; n += kWarps * 32)
        output[at(n / kRowsPerBlock, n % kRowsPerBlock)] =
            sh.os[n / kRowsPerBlock][n % kRowsPerBlock];
}
#endif

// BLOCK_TILES R with SOLVE 1: tiles_tokens_item with every token's k and q chunks, the gates
// and the Gram terms loaded while stage 0 lands, and the stage's rows through solve_rows.
__device__ __forceinline__ void tiles_solve_item(const Place& p, Items& items,
                                                 FAMILY_ITEM_PARAMS) {
#if BLOCK_TILES
    const int h = p.h, col = p.col;
    const size_t bt0 = static_cast<size_t>(p.row_b) * kT;
    const int irow = item_row(p);
    Token tok[kT];
    tiles_tokens_item(
        p, items, v, output, new_state, state_indices, intermediate_states,
        [&] {  // (the v it loads is unused: vs has every row's)
#pragma unroll
            for (int t = 0; t < kT; ++t)
                tok[t] = load_token(q, k, v, a, b, bt0 + t, h, h / kVPerQK, irow, col);
        },
        [&] { return solve_scalars(tok, A_log, a, dt_bias, b, bt0, h, p.sub); },
        [&](float4 (&st)[kStageSteps][kChunks], int r0, TokenTiles& sh, auto&& store) {
            const int sum_row = r0 + col / (kLanes / kStageSteps) * kRowsPerStep;  // `mine`'s
            solve_rows(
                st, tok, sh.cf, col, [&](int t) { return sh.vs[t][sum_row]; },
                [&](int t, float o) { sh.os[t][sum_row] = __float2bfloat16(scale * o); }, store);
        });
#endif
}

}  // namespace family
