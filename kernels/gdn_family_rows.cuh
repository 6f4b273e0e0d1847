// ROW_STREAM 1 (T = 1, PREFETCH 1 or 2): a work item's rows one at a time from the warp's
// tile (rows_item), and BLOCK_TILES (tiles_item) the same from the block's stage tiles, for
// gdn_decode_family.cu (included there, after its Token and exact_gates).
//
// Math: the kernel's T = 1 row pass, per state row s (128 k-values) of (b, h):
//   delta = beta (v - g s . k^),  s' = g s + delta k^,  out = scale (g s . q^ + (k^ . q^) delta)
// with k^ = rk k, q^ = rq q (L2NORM; rk = rq = 1 without). Row r of the lane's steps is read
// from the warp's tile (shared memory, filled one item ahead by PREFETCH's copies), its two
// sums finished over the row's L lanes, then it is updated, stored and its output written
// before row r + 1 is read, so one row's chunks (kChunks float4s) are live in registers, not
// all kSteps rows' as in decode_item. With MIN_BLOCKS = 2048 / (32 WARPS) that is 32
// registers a thread and every warp slot of the SM (64) in use: FlashInfer's pretranspose
// kernel's budget, which streams its rows from shared memory this way.
// Launch and lanes: gdn_decode_family.cu's (REDUCE 0: every lane of a row ends with the
// row's sums). Knobs: PREFETCH 1 or 2, REDUCE 0, HEAD_TOKENS 0; ITEMS, CONSECUTIVE,
// MIN_BLOCKS and STORE_HINT as in the kernel (LOAD_HINT does nothing with the tiles).
#pragma once

namespace family {

static_assert(ROW_STREAM == 0 || ROW_STREAM == 1, "ROW_STREAM must be 0 or 1");
static_assert(ROW_STREAM == 0 || (kT == 1 && PREFETCH != 0 && REDUCE == 0 && HEAD_TOKENS == 0),
              "ROW_STREAM 1 needs SEQ_LEN 1, PREFETCH 1 or 2, REDUCE 0 and HEAD_TOKENS 0");

// Four state values from the warp's tile, as a volatile shared load: kept in program order
// with the other volatile accesses (the cp.async waits, the hinted stores). Meant to keep the
// compiler from hoisting every row's reads to the top; on sm_90a the plain load
// (Items::tile4) builds at the same registers, so what bounds them is MIN_BLOCKS.
__device__ __forceinline__ float4 row4(const float* x) {
    float4 r;
    asm volatile("ld.shared.v4.f32 {%0, %1, %2, %3}, [%4];"
                 : "=f"(r.x), "=f"(r.y), "=f"(r.z), "=f"(r.w)
                 : "r"(static_cast<unsigned>(__cvta_generic_to_shared(x))));
    return r;
}
__device__ __forceinline__ float4 row4(const bf16* x) {
    uint2 r;
    asm volatile("ld.shared.v2.u32 {%0, %1}, [%2];"
                 : "=r"(r.x), "=r"(r.y)
                 : "r"(static_cast<unsigned>(__cvta_generic_to_shared(x))));
    return gdn::bf16x4(r);
}

// Work item i of the block (at p): its token, then its rows one at a time from the tile.
__device__ __forceinline__ void rows_item(const Place& p, int i, Items& items,
                                          FAMILY_ITEM_PARAMS) {
    const int h = p.h, col = p.col, row0 = p.row0;
    const size_t bt = p.row_b;  // T = 1: the token of batch row b
    const int slot = slot_of(state_indices, p.row_b);
    const Token cur = load_token(q, k, v, a, b, bt, h, h / kVPerQK, row0, col);
#if POOL
    if (slot < 0) {  // a padding row: zero output, no state touched
        zero_output(output, p);
        return;
    }
#endif
    const size_t off = state_offset(slot, p);
    const STATE_T* tile = items.landed(p, slot, i);  // nullptr: zeros (dense, no state)

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
    const gdn::Gates gt = exact_gates(cur.a, cur.b, dt_bias[h], A_log[h]);
    kq = gdn::group_sum<kLanes>(kq);
    float rk = 1.f, rq = 1.f;
    if (L2NORM) {
        rk = rsqrtf(gdn::group_sum<kLanes>(k2) + kL2Eps);
        rq = rsqrtf(gdn::group_sum<kLanes>(q2) + kL2Eps);
        kq *= rk * rq;
    }
    const size_t orow = (bt * kVHeads + h) * kDim + row0;
#pragma unroll
    for (int r = 0; r < kSteps; ++r) {
        float4 s[kChunks];
        float sk[1] = {0.f}, sq[1] = {0.f};
#pragma unroll
        for (int c = 0; c < kChunks; ++c) {
            s[c] = tile ? row4(tile + chunk_offset(r, c)) : make_float4(0.f, 0.f, 0.f, 0.f);
            sk[0] += gdn::dot4(s[c], kk[c]);
            sq[0] += gdn::dot4(s[c], qq[c]);
        }
        gdn::group_sums<kLanes>(sk, sq);
        const float delta = gdn::row_delta(gt, __bfloat162float(cur.v[r]), rk * sk[0]);
        const float dk = delta * rk;
#pragma unroll
        for (int c = 0; c < kChunks; ++c)
            gdn::store_state4<STORE_HINT>(new_state + off + chunk_offset(r, c),
                                          gdn::update4(s[c], gt.g, dk, kk[c]));
        if (col == 0)
            output[orow + r * kRowsPerStep] =
                __float2bfloat16(gdn::row_output(gt, rq * sq[0], kq, delta, scale));
    }
}

static_assert(BLOCK_TILES == 0 || kT > 1 || (REDUCE == 0 && HEAD_TOKENS == 0 && ROW_STREAM == 0),
              "BLOCK_TILES at SEQ_LEN 1 needs REDUCE 0, HEAD_TOKENS 0 and ROW_STREAM 0");

#if BLOCK_TILES
// T = 1 through the tiles: a warp's rows of a stage summed G at a time, one reduce-scatter for
// the G (2 (G - 1) + 2 log2(32 / G) shuffles where G butterflies take 10 G); one at a time
// when the launch bound leaves 32 registers (MIN_BLOCKS for all 64 warp slots), where G rows'
// values do not fit.
inline constexpr int kTileRowsAtOnce = MIN_BLOCKS * kWarps >= 64 ? 1 : kRowsPerWarpStage;
#endif

// BLOCK_TILES R (T = 1): work item i of the block (at p) through the block's stage tiles
// (gdn_family_tiles.cuh's stage_loop: FlashInfer's state path): the token while stage 0
// lands, then this warp's rows of each stage as it lands, read, summed over the warp (32
// lanes a row, kTileRowsAtOnce rows a reduce-scatter), updated and stored; v in and the
// outputs out through shared memory, one coalesced access each.
__device__ __forceinline__ void tiles_item(const Place& p, Items& items,
                                           FAMILY_ITEM_PARAMS) {
#if BLOCK_TILES
    const int h = p.h, lane = threadIdx.x & 31;
    const size_t bt = p.row_b;  // T = 1: the token of batch row b
    const size_t orow = (bt * kVHeads + h) * kDim + item_row(p);  // the item's first output
    const int slot = slot_of(state_indices, p.row_b);
#if POOL
    if (slot < 0) {  // a padding row: zero output, no state touched (block-uniform)
        if (threadIdx.x < kRowsPerBlock) output[orow + threadIdx.x] = __float2bfloat16(0.f);
        return;
    }
#endif
    __shared__ float vs[kRowsPerBlock];  // the item's v rows, then its outputs
    Token cur;
    float4 kk, qq;
    float kq, rk = 1.f, rq = 1.f;
    gdn::Gates gt;
    STATE_T* dst = new_state + stage_base(p, slot);
    stage_loop(
        p, slot, items,
        [&] {  // while stage 0 lands: the token, its norms and gates, the item's v
            cur = load_token(q, k, v, a, b, bt, h, h / kVPerQK, item_row(p), lane);
            if (threadIdx.x < kRowsPerBlock) vs[threadIdx.x] = __bfloat162float(v[orow + threadIdx.x]);
            kk = gdn::bf16x4(cur.k[0]);
            qq = gdn::bf16x4(cur.q[0]);
            gt = exact_gates(cur.a, cur.b, dt_bias[h], A_log[h]);
            kq = gdn::group_sum<32>(gdn::dot4(kk, qq));
            if (L2NORM) {
                rk = rsqrtf(gdn::group_sum<32>(gdn::dot4(kk, kk)) + kL2Eps);
                rq = rsqrtf(gdn::group_sum<32>(gdn::dot4(qq, qq)) + kL2Eps);
                kq *= rk * rq;
            }
        },
        [&](int s, const state_t* tile, bool reads) {
            // this warp's rows of the stage G at a time: their row sums reduce-scattered over
            // the warp (lane l ends with row l / (32 / G)'s of the G), that row's delta and
            // output, the G deltas round the warp, then each row's update and store
            const int warp = threadIdx.x >> 5;
#pragma unroll
            for (int m0 = 0; m0 < kRowsPerWarpStage; m0 += kTileRowsAtOnce) {
                constexpr int G = kTileRowsAtOnce;
                float4 x[G];
                float sk[G], sq[G];
#pragma unroll
                for (int m = 0; m < G; ++m) {
                    const int r = (m0 + m) * kWarps + warp;  // the row in the stage
                    x[m] = reads ? tile_values(tile + r * kDim + lane * 4)
                                 : make_float4(0.f, 0.f, 0.f, 0.f);
                    sk[m] = gdn::dot4(x[m], kk);
                    sq[m] = gdn::dot4(x[m], qq);
                }
                const int mine = gdn::group_sums_scatter<32>(sk, sq);
                const int row = s * kTileRows + (m0 + mine) * kWarps + warp;  // lane's row
                const float delta = gdn::row_delta(gt, vs[row], rk * sk[0]);
                __syncwarp();  // every lane has read vs[row] before its row's first lane writes
                if (lane % (32 / G) == 0)
                    vs[row] = gdn::row_output(gt, rq * sq[0], kq, delta, scale);
#pragma unroll
                for (int m = 0; m < G; ++m) {
                    const float dk = __shfl_sync(gdn::kFull, delta * rk, m * (32 / G));
                    store_row4(dst + (s * kTileRows + (m0 + m) * kWarps + warp) * kDim,
                               gdn::update4(x[m], gt.g, dk, kk));
                }
            }
        });
    __syncthreads();  // every row's output is in vs
    if (threadIdx.x < kRowsPerBlock) output[orow + threadIdx.x] = __float2bfloat16(vs[threadIdx.x]);
#endif
}

}  // namespace family
