// BLOCK_TILES R: a work item's rows through block-wide shared tiles of R rows in turn
// (stage_loop), for gdn_decode_family.cu (T = 1: tiles_item in gdn_family_rows.cuh; T > 1
// with SOLVE: tiles_solve_item in gdn_family_solve.cuh) and family_row_copy.cu (tiles_copy_item,
// through stage_rows);
// included by gdn_family.cuh. FlashInfer's pretranspose state path
// (gated_delta_rule_decode_pretranspose, 0.7.2: TILE_V 8 rows, 2 stages, 128 threads, 16 rows
// a block), with the kit's exact gates and one-pass row math.
//
// Math (T = 1, tiles_item): the kernel's row pass, per state row s (128 k-values):
//   delta = beta (v - g s . k^),  s' = g s + delta k^,  out = scale (g s . q^ + (k^ . q^) delta)
// with k^ = rk k, q^ = rq q (L2NORM; rk = rq = 1 without); s . k and s . q of the old row
// summed over the warp, a warp's rows of a stage in one reduce-scatter (gdn_family_rows.cuh).
// T > 1: gdn_family_solve.cuh's.
// State path: the item's WARPS * ROWS_PER_WARP rows (the grid's, gdn_family.cuh) in stages of
// R contiguous rows (R * 512 bytes at fp32). Every thread of the block starts cp.async.cg of
// 16-byte pieces of the first stages (TILE_BUFFERS - 1 of them, one commit group each) into
// their tiles (the pieces of a warp contiguous), then loads its token; before stage s it waits
// for its copies of stage s (cp.async.wait_group TILE_BUFFERS - 2) and the block
// (__syncthreads: every thread's pieces landed, stage s - 1's reads of its tile done), starts
// stage s + TILE_BUFFERS - 1's copy into that tile, then works on stage s. T = 1: warp w
// takes rows w, w + WARPS, .. of the stage, 32 lanes a row, lane l its columns 4 l .. 4 l + 3;
// each row is read from the tile, summed, updated and stored (its 512 bytes one warp store). The item's v rows come in one coalesced load to shared memory while stage
// 0 lands, and its outputs leave from shared memory in one coalesced store after the last
// stage. In place is safe: a row is stored only after its stage landed, and stages read
// ahead only rows not yet stored.
// Knobs: BLOCK_TILES R (rows a stage, a multiple of WARPS dividing WARPS * ROWS_PER_WARP;
//   0: off), with ITEMS 1, PREFETCH 0 and at T = 1 LANES_PER_ROW 32 (and the kernel's REDUCE
//   0, HEAD_TOKENS 0, ROW_STREAM 0), at T > 1 SOLVE 1; TILE_BUFFERS N (2..8, default 2:
//   FlashInfer's two tiles, one stage in flight ahead; N: N - 1 ahead); STORE_HINT as in the
//   kernel (LOAD_HINT does nothing: the copies are .cg). Shared memory: min(N, stages) * R *
//   128 state values.
#pragma once

#ifndef BLOCK_TILES
#define BLOCK_TILES 0
#endif
#ifndef TILE_BUFFERS
#define TILE_BUFFERS 2
#endif

namespace family {

inline constexpr int kTileRows = BLOCK_TILES;

// T = 1: a row a warp at a time, 32 lanes a row. T > 1 (SOLVE 1, gdn_family_solve.cuh's
// math): a warp takes R / WARPS contiguous rows of each stage, lane (sub, col) of the kernel's
// layout rows sub + r * (32 / L) of them, so the stage's steps are kStageSteps and the row
// sums a reduce-scatter of that many (a power of two, at most L).
static_assert(BLOCK_TILES == 0 ||
                  (kItems == 1 && PREFETCH == 0 && REG_PREFETCH == 0 &&
                   BLOCK_TILES % kWarps == 0 && kRowsPerBlock % BLOCK_TILES == 0 &&
                   (kT > 1 || kLanes == 32)),
              "BLOCK_TILES R needs ITEMS 1, PREFETCH 0, REG_PREFETCH 0, R a multiple of WARPS "
              "dividing WARPS * ROWS_PER_WARP, and LANES_PER_ROW 32 (SEQ_LEN 1) or SOLVE 1 "
              "(SEQ_LEN > 1)");

#if BLOCK_TILES
inline constexpr int kStages = kRowsPerBlock / kTileRows;
inline constexpr int kRowsPerWarpStage = kTileRows / kWarps;
inline constexpr int kStageSteps = kRowsPerWarpStage / kRowsPerStep;  // T > 1: steps a stage
static_assert(kT == 1 || (kRowsPerWarpStage % kRowsPerStep == 0 && kStageSteps <= kLanes &&
                          (kStageSteps & (kStageSteps - 1)) == 0),
              "BLOCK_TILES R with SOLVE: R / WARPS must be 32 / LANES_PER_ROW times a power of "
              "two at most LANES_PER_ROW");
static_assert(TILE_BUFFERS >= 2 && TILE_BUFFERS <= 8, "TILE_BUFFERS must be 2..8");
// Tiles in turn (TILE_BUFFERS, at most one a stage) and stages in flight ahead of the one
// being worked on: 1 with two tiles (FlashInfer's), TILE_BUFFERS - 1 with more.
inline constexpr int kStageBuffers = kStages < TILE_BUFFERS ? kStages : TILE_BUFFERS;
inline constexpr int kAhead = kStageBuffers > 1 ? kStageBuffers - 1 : 1;
inline constexpr int kPieceValues = 16 / sizeof(state_t);  // state values a 16-byte copy
inline constexpr int kStagePieces = kTileRows * kDim / kPieceValues;
static_assert(kStageBuffers * kTileRows * kDim * sizeof(state_t) <= 48 * 1024,
              "BLOCK_TILES: the tiles must fit 48 KiB");

// The block's tiles, one per stage in flight.
struct StageTiles {
    state_t tile[kStageBuffers][kTileRows * kDim];
};

// Start the copy of stage s (rows s * R .. of the item at src) into its tile, one commit group.
__device__ __forceinline__ void start_stage(StageTiles& sh, const state_t* src, int s) {
    state_t* dst = sh.tile[s % kStageBuffers];
    src += static_cast<size_t>(s) * kTileRows * kDim;
#pragma unroll
    for (int i = threadIdx.x; i < kStagePieces; i += kWarps * 32)
        gdn::async_copy<16>(dst + i * kPieceValues, src + i * kPieceValues);
    gdn::async_commit();
}

// The item's first row (of its kRowsPerBlock) in the head: the grid's row block.
__device__ __forceinline__ int item_row(const Place& p) {
    return p.row0 - (threadIdx.x >> 5) * kRowsPerWarp - p.sub;
}

// Four state values from a tile.
__device__ __forceinline__ float4 tile_values(const float* x) {
    return *reinterpret_cast<const float4*>(x);
}
__device__ __forceinline__ float4 tile_values(const bf16* x) {
    return gdn::bf16x4(*reinterpret_cast<const uint2*>(x));
}

// A row's four new values to global memory as one vector store. In the row callbacks NVVM
// splits the plain vector store (gdn::store_state4's STORE_HINT 0) into scalar ones: four
// st.global.f32 (bf16: two st.global.u32) a row where the row copy has one st.global.v4.f32,
// so STORE_HINT 0 is the vector store in PTX here; the other hints are store_state4's.
__device__ __forceinline__ void store_row4(float* p, float4 x) {
    if constexpr (STORE_HINT == 0)
        asm volatile("st.global.v4.f32 [%0], {%1, %2, %3, %4};"
                     :: "l"(p), "f"(x.x), "f"(x.y), "f"(x.z), "f"(x.w) : "memory");
    else
        gdn::store_state4<STORE_HINT>(p, x);
}
__device__ __forceinline__ void store_row4(bf16* p, float4 x) {
    if constexpr (STORE_HINT == 0) {
        const __nv_bfloat162 lo = __floats2bfloat162_rn(x.x, x.y);
        const __nv_bfloat162 hi = __floats2bfloat162_rn(x.z, x.w);
        asm volatile("st.global.v2.b32 [%0], {%1, %2};"
                     :: "l"(p), "r"(*reinterpret_cast<const unsigned*>(&lo)),
                        "r"(*reinterpret_cast<const unsigned*>(&hi)) : "memory");
    } else {
        gdn::store_state4<STORE_HINT>(p, x);
    }
}

// The state path of one item (at p, slot `slot` >= 0): stage 0's copy started, then
// prologue() (what it writes to shared memory is seen by every thread from stage 0 on: a
// barrier opens each stage), then for each stage and each of this warp's rows of it row(row, s, m, x), x
// this lane's four values of the item's row `row` (s * R + m * WARPS + warp), zeros for a
// dense call without a state. new_state + stage_base(p, slot) + row * 128 is where row
// `row`'s four values of this lane go.
__device__ __forceinline__ size_t stage_base(const Place& p, int slot) {
    return ((static_cast<size_t>(slot) * kVHeads + p.h) * kDim + item_row(p)) * kDim +
           (threadIdx.x & 31) * 4;
}

// The stages in turn: stage 0's copy started, prologue(), then for each stage s
// stage(s, tile, reads), tile the stage's R rows in shared memory (reads false: nothing was
// read, the rows are zeros).
template <class Prologue, class Stage>
__device__ __forceinline__ void stage_loop(const Place& p, int slot, Items& items,
                                           Prologue&& prologue, Stage&& stage) {
    __shared__ __align__(128) StageTiles sh;
    const int lane = threadIdx.x & 31;
    const bool reads = items.reads(p, slot);  // block-uniform (one item a block)
    const state_t* src = reads ? items.state + stage_base(p, slot) - lane * 4 : nullptr;
    // one commit group a stage; with more than one ahead, empty ones past the last stage, so
    // that waiting for all but the newest kAhead - 1 is always waiting for stage s
    if (reads) {
#pragma unroll
        for (int j = 0; j < kAhead; ++j) {
            if (j < kStages)
                start_stage(sh, src, j);
            else if constexpr (kAhead > 1)
                gdn::async_commit();
        }
    }
    prologue();
#pragma unroll
    for (int s = 0; s < kStages; ++s) {
        if (reads) gdn::async_wait<kAhead - 1>();
        __syncthreads();  // stage s landed for every thread; stage s - 1's reads are done
        if (reads) {  // into stage s - 1's tile
            if (s + kAhead < kStages)
                start_stage(sh, src, s + kAhead);
            else if constexpr (kAhead > 1)
                gdn::async_commit();
        }
        stage(s, static_cast<const state_t*>(sh.tile[s % kStageBuffers]), reads);
    }
}

template <class Prologue, class Row>
__device__ __forceinline__ void stage_rows(const Place& p, int slot, Items& items,
                                           Prologue&& prologue, Row&& row) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    stage_loop(p, slot, items, prologue, [&](int s, const state_t* tile, bool reads) {
#pragma unroll
        for (int m = 0; m < kRowsPerWarpStage; ++m) {
            const int r = m * kWarps + warp;  // the row in the stage
            row(s * kTileRows + r, s, m,
                reads ? tile_values(tile + r * kDim + lane * 4) : make_float4(0.f, 0.f, 0.f, 0.f));
        }
    });
}
#endif

}  // namespace family
