// MMA 1 (T > 1, with SOLVE 1): SOLVE's row sums and update on the tensor cores, for
// gdn_decode_family.cu (included there, after gdn_family_solve.cuh).
//
// Math: gdn_family_solve.cuh's. Per 16-row tile of a warp's state S [16, 128]:
//   R = S @ [k_0 q_0 k_1 q_1 ...]         the 2T row sums a_t = s . k_t, b_t = s . q_t
//   d_t (forward substitution, scalars)  as in SOLVE, each lane for its tile rows
//   S' = P(0,T-1) S + D @ K,  D [16, T] = P(i+1,T-1) rk_i d_i,  K [T, 128] the raw k_i
// both products as mma.sync.m16n8k8 with tf32 inputs and fp32 accumulation. The raw bf16 k
// and q are exact in tf32 (8-bit mantissa); S and D are split into hi = tf32(x) and
// lo = x - hi, so R = S_hi K + S_lo K and D K = D_hi K + D_lo K (D's halves as the k
// dimension's two halves: one MMA) keep fp32 accuracy (the remainder's tf32 rounding is
// 2^-22 of x). Per 16 x 128 tile and T <= 4: 32 MMAs for R, 16 for the update, against
// SOLVE's 2T + T + 1 = 13 FMAs a state value (64 a lane here).
// Lanes: the MMA fragments are the kernel's own layout at LANES_PER_ROW 4 (so MMA 1 needs
// it, and ROWS_PER_WARP a multiple of 16): lane (g, t) = (lane / 4, lane % 4) holds rows
// row0 + 8 r (steps r; tile m is steps 2m, 2m + 1: rows g and g + 8 of the tile) at
// columns 16 c + 4 t .. + 3, c = 0 .. 7. The k dimension of R runs over the columns in the
// lanes' own order: k-step 2c + e (e = 0, 1) takes columns 16 c + 4 t + 2 e (fragment k
// index t) and + 1 (index t + 4), so A is the held state and B is the lane's own chunks of
// vector n = g (token 4 nb + g / 2, its k for g even, q for g odd, n-block nb). R's
// fragment gives lane t token 4 nb + t's two sums of both rows; a quad's four lanes share
// them by shuffles and each does the substitution of its rows for every token. The
// update's n dimension is the columns again: n-block 2c + e's columns 2 t, 2 t + 1 are
// 16 c + 4 t + 2 e and + 1, the held float4's halves, so the accumulator is the held state
// (scaled by P(0,T-1) first) and B is k-step u's token 4 u + t's raw k at columns
// 16 c + 4 (g / 2) + 2 e + g % 2. With INTERMEDIATE each token's rank-1 update is one such
// MMA pass (only token t's column of D non-zero) after S *= g_t, and each state is stored.
// Needs sm_80+ (mma.sync tf32). Knobs: SOLVE 1 (and so REDUCE 1), LANES_PER_ROW 4,
// ROWS_PER_WARP 16 or 32; WARPS, ITEMS, PREFETCH, CONSECUTIVE, MIN_BLOCKS and the hints as
// in the kernel; CHAIN_SUMS does nothing here. MMA 1: each lane holds its B operands and the
// tokens' scalars in registers; MMA 2: the block's item's k and q and the scalars (warp 0's)
// in shared memory, read after one barrier (fewer registers a thread), and with BLOCK_TILES R
// (16 rows a warp a stage) the item through the block-wide stage tiles (tiles_mma_item).
#pragma once

#if MMA && defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#error "MMA uses mma.sync with tf32 inputs: sm_80 or later"
#endif

namespace family {

static_assert(MMA >= 0 && MMA <= 2, "MMA must be 0, 1 or 2");
static_assert(MMA == 0 || (SOLVE == 1 && kLanes == 4 && kRowsPerWarp % 16 == 0),
              "MMA 1 needs SOLVE 1, LANES_PER_ROW 4 and ROWS_PER_WARP a multiple of 16");

inline constexpr int kQuads = (kT + 3) / 4;  // groups of 4 tokens: R's n-blocks, D's k-steps

// d += a b (m16n8k8; a, b tf32 bit patterns, the low 13 bits ignored; fp32 accumulate).
__device__ __forceinline__ void mma_tf32(float (&d)[4], unsigned a0, unsigned a1, unsigned a2,
                                         unsigned a3, unsigned b0, unsigned b1) {
    asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// x as hi + lo, both tf32 bit patterns: hi is x rounded to 10 mantissa bits (half up, in
// two integer operations: cvt.rna.tf32's Inf / NaN guard costs three more on sm_90, and a
// state has neither), lo the exact remainder (|lo| <= 2^-11 |x|).
struct Split {
    unsigned hi, lo;
};
__device__ __forceinline__ Split split(float x) {
    const unsigned hi = (__float_as_uint(x) + 0x1000u) & 0xffffe000u;
    return {hi, __float_as_uint(x - __uint_as_float(hi))};
}

// Element e (0..3) of 4 packed bf16 as fp32 bits (exact in tf32).
__device__ __forceinline__ unsigned bf16_bits(uint2 x, int e) {
    const unsigned w = e < 2 ? x.x : x.y;
    return (e & 1) ? (w & 0xffff0000u) : (w << 16);
}

__device__ __forceinline__ float& part(float4& x, int e) {
    return e == 0 ? x.x : e == 1 ? x.y : e == 2 ? x.z : x.w;
}

// A uint2 of 4 bf16 at p, or zeros when `live` is false (a token past T).
__device__ __forceinline__ uint2 load4_or_zero(const bf16* p, bool live) {
    return live ? __ldg(reinterpret_cast<const uint2*>(p)) : make_uint2(0u, 0u);
}

// The B operands, from registers (MMA 1: each lane's own, loaded once an item) or from the
// block's tokens in shared memory (MMA 2). vec(u, c): R's vector g of n-block u (token
// 4 u + g / 2, its k for g even, q for g odd) at columns 16 c + 4 t4 .. + 3; kup(u, c): the
// update's token 4 u + t4's k at columns 16 c + 4 (g / 2) .. + 3; zeros for tokens past T.
struct HeldB {
    uint2 vec_[kQuads][kChunks], kup_[kQuads][kChunks];
    __device__ __forceinline__ uint2 vec(int u, int c) const { return vec_[u][c]; }
    __device__ __forceinline__ uint2 kup(int u, int c) const { return kup_[u][c]; }
};
// MMA 2: the item's k and q of every token (rows past T zeros), rows padded to 144 values so
// that a warp's 8-byte reads of 8 rows at one column fall on distinct banks.
inline constexpr int kTokRow = kDim + 16;
struct SharedTokens {
    __align__(16) bf16 k[4 * kQuads][kTokRow];
    __align__(16) bf16 q[4 * kQuads][kTokRow];
};
struct SharedB {
    const bf16* r;   // R's vector g of n-block 0 at column 4 t4
    const bf16* up;  // token t4's k at column 4 (g / 2)
    __device__ __forceinline__ uint2 vec(int u, int c) const {
        return *reinterpret_cast<const uint2*>(r + 4 * u * kTokRow + 16 * c);
    }
    __device__ __forceinline__ uint2 kup(int u, int c) const {
        return *reinterpret_cast<const uint2*>(up + 4 * u * kTokRow + 16 * c);
    }
};

// The T tokens on NS steps (NS / 2 tiles of 16 rows) of this lane's rows (s: their state,
// lane (g, t4) of the fragment layout), as the math above says: R, each row's deltas and
// outputs (out(r, t, o) for step r's row, by lane t4 == t % 4; v_of(r, t): that row's v of
// token t), then the state: with INTERMEDIATE each token's in turn, store(t, s) for t = 0 ..
// T-1 and, with UPDATE, store(T, s); else with UPDATE the final in one pass, store(T, s).
// bs: the B operands (HeldB, SharedB); x: the tokens' scalars (TokenCoefs).
template <int NS, class BS, class Coefs, class VOf, class Out, class Store>
__device__ __forceinline__ void mma_rows(float4 (&s)[NS][kChunks], const BS& bs, const Coefs& x,
                                         int t4, VOf&& v_of, Out&& out, Store&& store) {
    static_assert(MMA == 0 || NS % 2 == 0, "MMA: 16-row tiles, two steps each");
    constexpr int kNTiles = NS / 2;
    const int lane = threadIdx.x & 31, g = lane / 4;
    // R = S @ [k_0 q_0 ...] per tile, then every token's sums of this lane's rows (quad).
    float sk[NS][kT], sq[NS][kT];
#pragma unroll
    for (int m = 0; m < kNTiles; ++m) {
        // two accumulators a group (k-steps e = 0 and 1): two chains of 16 dependent MMAs
        float acc[kQuads][4], acc1[kQuads][4];
#pragma unroll
        for (int u = 0; u < kQuads; ++u)
#pragma unroll
            for (int n = 0; n < 4; ++n) acc[u][n] = acc1[u][n] = 0.f;
#pragma unroll
        for (int c = 0; c < kChunks; ++c)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                const Split x0 = split(part(s[2 * m][c], 2 * e));
                const Split x1 = split(part(s[2 * m + 1][c], 2 * e));
                const Split x2 = split(part(s[2 * m][c], 2 * e + 1));
                const Split x3 = split(part(s[2 * m + 1][c], 2 * e + 1));
#pragma unroll
                for (int u = 0; u < kQuads; ++u) {
                    const uint2 w = bs.vec(u, c);
                    const unsigned b0 = bf16_bits(w, 2 * e);
                    const unsigned b1 = bf16_bits(w, 2 * e + 1);
                    float(&d)[4] = e ? acc1[u] : acc[u];
                    mma_tf32(d, x0.lo, x1.lo, x2.lo, x3.lo, b0, b1);
                    mma_tf32(d, x0.hi, x1.hi, x2.hi, x3.hi, b0, b1);
                }
            }
#pragma unroll
        for (int u = 0; u < kQuads; ++u)
#pragma unroll
            for (int n = 0; n < 4; ++n) acc[u][n] += acc1[u][n];
#pragma unroll
        for (int t = 0; t < kT; ++t) {
            const int src = (lane & ~3) | (t % 4);
            sk[2 * m][t] = __shfl_sync(gdn::kFull, acc[t / 4][0], src);
            sq[2 * m][t] = __shfl_sync(gdn::kFull, acc[t / 4][1], src);
            sk[2 * m + 1][t] = __shfl_sync(gdn::kFull, acc[t / 4][2], src);
            sq[2 * m + 1][t] = __shfl_sync(gdn::kFull, acc[t / 4][3], src);
        }
    }

    // Each row's deltas in turn and its outputs (lane t4 of the quad writes tokens t4 + 4 n);
    // dk[r][t] = rk_t d_t on the raw k_t, scaled on to P(t+1, T-1) for the one update.
    float dk[NS][kT], decay = 1.f;  // decay = P(0, T-1) after the loop
#pragma unroll
    for (int r = 0; r < NS; ++r) {
        float e[kT], P = 1.f;  // e[i] = P(i+1, t) d_i as t goes on; P = P(0, t)
#pragma unroll
        for (int t = 0; t < kT; ++t) {
            const float gt = x.g(t);
            P *= gt;
#pragma unroll
            for (int n = 0; n < t; ++n) e[n] *= gt;
            float y = P * (x.rk(t) * sk[r][t]);
#pragma unroll
            for (int n = 0; n < t; ++n) y = fmaf(e[n], x.kk(n, t), y);
            e[t] = x.beta(t) * (v_of(r, t) - y);
            float o = P * (x.rq(t) * sq[r][t]);
#pragma unroll
            for (int n = 0; n <= t; ++n) o = fmaf(e[n], x.kq(n, t), o);
            if (t4 == t % 4) out(r, t, o);
            dk[r][t] = e[t] * x.rk(t);  // INTERMEDIATE: token t's own delta on k_t
        }
        decay = P;
        if (!INTERMEDIATE) {
#pragma unroll
            for (int t = 0; t < kT; ++t) dk[r][t] = e[t] * x.rk(t);
        }
    }

    // s += D @ K over the tokens `first` .. `last` of D's column (this lane's token 4 u + t4).
    auto rank_update = [&](int first, int last) {
#pragma unroll
        for (int m = 0; m < kNTiles; ++m)
#pragma unroll
            for (int u = 0; u < kQuads; ++u) {
                if (4 * u + 3 < first || 4 * u > last) continue;
                float d0 = 0.f, d1 = 0.f;  // this lane's token of D, rows g and g + 8
#pragma unroll
                for (int n = 0; n < 4; ++n)
                    if (t4 == n && 4 * u + n >= first && 4 * u + n <= last) {
                        d0 = dk[2 * m][4 * u + n];
                        d1 = dk[2 * m + 1][4 * u + n];
                    }
                const Split a0 = split(d0), a1 = split(d1);
#pragma unroll
                for (int c = 0; c < kChunks; ++c) {
                    const uint2 kw = bs.kup(u, c);
#pragma unroll
                    for (int e = 0; e < 2; ++e) {
                        const unsigned w = e ? kw.y : kw.x;
                        const unsigned bk = g & 1 ? (w & 0xffff0000u) : (w << 16);
                        float acc[4] = {part(s[2 * m][c], 2 * e), part(s[2 * m][c], 2 * e + 1),
                                        part(s[2 * m + 1][c], 2 * e),
                                        part(s[2 * m + 1][c], 2 * e + 1)};
                        mma_tf32(acc, a0.hi, a1.hi, a0.lo, a1.lo, bk, bk);
                        part(s[2 * m][c], 2 * e) = acc[0];
                        part(s[2 * m][c], 2 * e + 1) = acc[1];
                        part(s[2 * m + 1][c], 2 * e) = acc[2];
                        part(s[2 * m + 1][c], 2 * e + 1) = acc[3];
                    }
                }
            }
    };
    auto scale_state = [&](float y) {
#pragma unroll
        for (int r = 0; r < NS; ++r)
#pragma unroll
            for (int c = 0; c < kChunks; ++c) s[r][c] = gdn::scale4(s[r][c], y);
    };

    if (INTERMEDIATE) {  // every token's state in turn, stored; the last is the new state
#pragma unroll
        for (int t = 0; t < kT; ++t) {
            scale_state(x.g(t));
            rank_update(t, t);
            store(t, s);
        }
        if (UPDATE) store(kT, s);
    } else if (UPDATE) {  // s' = P(0, T-1) s + D @ K, one pass
        scale_state(decay);
        rank_update(0, kT - 1);
        store(kT, s);
    }
}

// Token t's q or k of value head h's q/k head from column c0 (batch row bt0 / T).
__device__ __forceinline__ const bf16* qk_at(const bf16* x, size_t bt0, int h, int t, int c0) {
    return x + ((bt0 + t) * kQKHeads + h / kVPerQK) * kDim + c0;
}

// MMA 2: the item's k and q of every token into tk (16-byte pieces by the whole block, one
// coalesced load; the rows past T zeros).
__device__ __forceinline__ void fill_tokens(SharedTokens& tk, const bf16* __restrict__ q,
                                            const bf16* __restrict__ k, size_t bt0, int h) {
    for (int n = threadIdx.x; n < 2 * 4 * kQuads * 16; n += kWarps * 32) {
        const int t = n / 32, col = 8 * (n % 16);
        const bool isq = n / 16 % 2;
        const uint4 w = t < kT ? __ldg(reinterpret_cast<const uint4*>(qk_at(isq ? q : k, bt0, h, t, col)))
                               : make_uint4(0u, 0u, 0u, 0u);
        *reinterpret_cast<uint4*>(&(isq ? tk.q : tk.k)[t][col]) = w;
    }
}

// This lane's B operands in tk (lane (g, t4) = (lane / 4, lane % 4)).
__device__ __forceinline__ SharedB shared_b(const SharedTokens& tk) {
    const int lane = threadIdx.x & 31, g = lane / 4, t4 = lane % 4;
    return SharedB{(g & 1 ? tk.q : tk.k)[g / 2] + 4 * t4, tk.k[t4] + 4 * (g / 2)};
}

// The tokens' scalars (gdn_family_solve.cuh's chunk_scalars) from this lane's chunk of each
// token's k and q: columns 16 g + 4 t4 .. + 3, every column once over the warp.
__device__ __forceinline__ SolveScalars mma_scalars(const bf16* __restrict__ q,
                                                    const bf16* __restrict__ k,
                                                    const float* __restrict__ A_log,
                                                    const bf16* __restrict__ a,
                                                    const float* __restrict__ dt_bias,
                                                    const bf16* __restrict__ b, size_t bt0,
                                                    int h) {
    const int lane = threadIdx.x & 31, c0 = 16 * (lane / 4) + 4 * (lane % 4);
    const auto load = [&](float4 (&kc)[kT], float4 (&qc)[kT]) {
#pragma unroll
        for (int t = 0; t < kT; ++t) {
            kc[t] = gdn::bf16x4(__ldg(reinterpret_cast<const uint2*>(qk_at(k, bt0, h, t, c0))));
            qc[t] = gdn::bf16x4(__ldg(reinterpret_cast<const uint2*>(qk_at(q, bt0, h, t, c0))));
        }
    };
    // The order of the chunks' loads and the gates matters to ptxas: MMA 2 at 128 registers
    // spills with the loads after the gates, and MMA 1 is 1.15 slower at B = 32 on the T = 4
    // pool with them before (tuning 6e9aa4c0 against 43c0d985, H200).
    if constexpr (MMA == 2) {
        float4 kc[kT], qc[kT];
        load(kc, qc);
        const auto chunks = [&](float4 (&kc_)[kT], float4 (&qc_)[kT]) {
#pragma unroll
            for (int t = 0; t < kT; ++t) {
                kc_[t] = kc[t];
                qc_[t] = qc[t];
            }
        };
        return chunk_scalars(chunks, A_log, a, dt_bias, b, bt0, h);
    } else {
        return chunk_scalars(load, A_log, a, dt_bias, b, bt0, h);
    }
}

// Work item i of the block (at p): its T tokens in one pass, the products on tensor cores.
// MMA 1: every warp loads its B operands and computes the tokens' scalars. MMA 2: the block
// puts its item's k and q in shared memory (one coalesced load) and warp 0 the scalars, read
// by every warp after a barrier: 64 fewer registers a thread (one item a block: the block's
// warps share it).
__device__ __forceinline__ void mma_item(const Place& p, int i, Items& items,
                                         FAMILY_ITEM_PARAMS) {
    const int h = p.h, g = p.sub, t4 = p.col;  // lane (g, t4) of the MMA fragments
    const size_t bt0 = static_cast<size_t>(p.row_b) * kT;

    const int slot = slot_of(state_indices, p.row_b);
#if MMA == 2
    __shared__ SharedTokens tk;
    __shared__ TokenCoefs cf;
    if (kItems > 1) __syncthreads();  // the block's last item is done with tk and cf
    fill_tokens(tk, q, k, bt0, h);
#else
    // The token inputs this lane needs: R's B (vector g of each n-block at its columns) and
    // the update's B (token 4 u + t4's k).
    HeldB bs;
#pragma unroll
    for (int u = 0; u < kQuads; ++u) {
        const int tv = 4 * u + g / 2, tu = 4 * u + t4;
#pragma unroll
        for (int c = 0; c < kChunks; ++c) {
            bs.vec_[u][c] = load4_or_zero(qk_at(g & 1 ? q : k, bt0, h, tv, 16 * c + 4 * t4), tv < kT);
            bs.kup_[u][c] = load4_or_zero(qk_at(k, bt0, h, tu, 16 * c + 4 * (g / 2)), tu < kT);
        }
    }
#endif
    // its rows' v of every token
    bf16 vt[kSteps][kT];
#pragma unroll
    for (int t = 0; t < kT; ++t)
#pragma unroll
        for (int r = 0; r < kSteps; ++r)
            vt[r][t] = v[((bt0 + t) * kVHeads + h) * kDim + p.row0 + r * kRowsPerStep];
#if POOL
    if (slot < 0) {  // a padding row: zero output, no state touched (block-uniform)
        zero_output(output, p);
        return;
    }
#endif
    const size_t off = state_offset(slot, p);
    float4 s[kSteps][kChunks];
    items.load(s, p, slot, off, i);

    // While the state is in flight: the tokens' scalars.
#if MMA == 2
    if ((threadIdx.x >> 5) == 0) cf.fill(mma_scalars(q, k, A_log, a, dt_bias, b, bt0, h));  // warp 0's
    __syncthreads();  // tk and cf written
    const SharedB bs = shared_b(tk);
#else
    TokenCoefs cf;
    cf.fill<true>(mma_scalars(q, k, A_log, a, dt_bias, b, bt0, h));  // every lane's copy
#endif
    mma_rows(
        s, bs, cf, t4, [&](int r, int t) { return __bfloat162float(vt[r][t]); },
        [&](int r, int t, float o) {
            output[((bt0 + t) * kVHeads + h) * kDim + p.row0 + r * kRowsPerStep] =
                __float2bfloat16(scale * o);
        },
        [&](int t, const float4 (&st)[kSteps][kChunks]) {
            if (t < kT)
                store_rows(intermediate_states + intermediate_offset(t, p), st);
            else
                store_rows(new_state + off, st);
        });
}


// BLOCK_TILES R with MMA 2: gdn_family_solve.cuh's tiles_tokens_item with the item's k and q
// (to shared memory) and the tokens' scalars (warp 0's) while stage 0 lands, and each stage's
// rows (16-row tiles, kStageSteps steps a lane) through mma_rows.
__device__ __forceinline__ void tiles_mma_item(const Place& p, Items& items,
                                               FAMILY_ITEM_PARAMS) {
#if BLOCK_TILES && MMA == 2
    static_assert(kRowsPerWarpStage % 16 == 0, "BLOCK_TILES R with MMA: R / WARPS a multiple of 16");
    const int h = p.h;
    const size_t bt0 = static_cast<size_t>(p.row_b) * kT;
    __shared__ SharedTokens tk;
    tiles_tokens_item(
        p, items, v, output, new_state, state_indices, intermediate_states,
        [&] { fill_tokens(tk, q, k, bt0, h); },
        [&] { return mma_scalars(q, k, A_log, a, dt_bias, b, bt0, h); },
        [&](float4 (&st)[kStageSteps][kChunks], int r0, TokenTiles& sh, auto&& store) {
            mma_rows(
                st, shared_b(tk), sh.cf, p.col,
                [&](int r, int t) { return sh.vs[t][r0 + r * kRowsPerStep]; },
                [&](int r, int t, float o) {
                    sh.os[t][r0 + r * kRowsPerStep] = __float2bfloat16(scale * o);
                },
                store);
        });
#endif
}

}  // namespace family
