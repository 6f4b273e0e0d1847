// The decode family's kernels (gdn_decode_family.cu and its floor family_row_copy.cu): the
// member and launch-shape defines with their defaults, the constants they give, and where a
// thread works. One statement of the family's grid, so the floor is the kernel's own.
//
// Member: QK_HEADS, V_HEADS, SEQ_LEN (T), POOL (state pool + slot indices), L2NORM,
//   STATE_BF16, and for T > 1 the verify calls: INTERMEDIATE (every token's state also to
//   intermediate_states [B, T, V_HEADS, 128, 128], by batch row) and UPDATE (0: the final
//   state is not written back) (decodekit.build.family_launch.member_defines). Shape: WARPS, ROWS_PER_WARP,
//   LANES_PER_ROW; LOAD_HINT 0..5 / STORE_HINT 0..3 (gdn.cuh's state cache policies).
// Grid: B * V_HEADS * SPLIT blocks of WARPS * 32 threads, SPLIT = 128 / (WARPS * ROWS_PER_WARP).
//   Block x works on (b, h) = divmod(x / SPLIT, V_HEADS) and rows (x % SPLIT) * WARPS *
//   ROWS_PER_WARP onward; in a warp a row belongs to LANES_PER_ROW (L) lanes, lane l holding
//   chunks c = 0 .. 32/L-1 of it, columns 4 * (c * L + l % L) .. + 4, and rows row0 + r *
//   (32 / L) for its steps r = 0 .. ROWS_PER_WARP * L / 32 - 1.
// Items (ITEMS, PREFETCH): a (b, h, rows) of the grid above is a work item; with ITEMS = N
//   the grid is ceil(B * V_HEADS * SPLIT / N) blocks and block x works on items x, x + grid,
//   .. x + (N - 1) * grid in turn (ITEMS 1: one item, x), or with CONSECUTIVE 1 on items
//   x * N .. x * N + N - 1: the next row blocks of the same head, its state read on in order
//   (with SPLIT = N a block streams one head's whole state, as FlashInfer's kernel does).
//   With PREFETCH 1 (sm_90+) a warp's rows of the state, one contiguous run of
//   ROWS_PER_WARP * 128 values, come through shared memory: lane 0 starts one bulk copy
//   (cp.async.bulk, completing on the warp's mbarrier) of item i + 1's run into the warp's
//   second tile before item i's math, so the next item's state is in flight while this one
//   computes (two tiles a warp, one with ITEMS 1: static shared memory WARPS * 2 *
//   ROWS_PER_WARP * 128 * sizeof(state), or half); LOAD_HINT then does nothing. PREFETCH 2
//   (sm_80+) fills the same tiles with per-lane copies instead: each lane starts cp.async
//   of its own chunks of item i + 1 (16 bytes each, 8 at bf16; one commit group an item,
//   empty when there is nothing to read) and waits for item i's group only
//   (cp.async.wait_group 1), reading back just what it copied, so no barrier: FlashInfer's
//   pretranspose kernel's state path. REG_PREFETCH 1 (PREFETCH 0, fp32 state) keeps the
//   next item's rows in registers instead: item i's load takes the rows loaded during item
//   i - 1 and starts each lane's loads of its chunks of item i + 1, so one item's loads are
//   in flight during the math of the one before it, with no shared memory and no copy back
//   (twice the state registers a lane).
// MIN_BLOCKS: the launch bounds' minimum blocks an SM (0: ptxas chooses the registers).
// BLOCK_TILES R (T = 1, one item a block): the item's rows through two block-wide shared
//   tiles of R rows in turn (gdn_family_tiles.cuh: FlashInfer's pretranspose state path).
#pragma once
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
#ifndef INTERMEDIATE
#define INTERMEDIATE 0
#endif
#ifndef UPDATE
#define UPDATE 1
#endif
#ifndef ITEMS
#define ITEMS 1
#endif
#ifndef PREFETCH
#define PREFETCH 0
#endif
#ifndef REG_PREFETCH
#define REG_PREFETCH 0
#endif
#ifndef MIN_BLOCKS
#define MIN_BLOCKS 0
#endif
#ifndef CONSECUTIVE
#define CONSECUTIVE 0
#endif
#if PREFETCH == 1 && defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
#error "PREFETCH 1 uses Hopper bulk copies: sm_90 or later"
#endif
#if PREFETCH == 2 && defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#error "PREFETCH 2 uses cp.async: sm_80 or later"
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
inline constexpr int kItems = ITEMS;

static_assert(kQKHeads >= 1 && kVHeads >= 1, "QK_HEADS and V_HEADS must be >= 1");
static_assert(kVHeads % kQKHeads == 0, "V_HEADS must be a multiple of QK_HEADS");
static_assert(kT >= 1 && kT <= 16, "SEQ_LEN must be 1..16");
static_assert(POOL == 0 || POOL == 1, "POOL must be 0 or 1");
static_assert(L2NORM == 0 || L2NORM == 1, "L2NORM must be 0 or 1");
static_assert(STATE_BF16 == 0 || STATE_BF16 == 1, "STATE_BF16 must be 0 or 1");
static_assert(kLanes == 2 || kLanes == 4 || kLanes == 8 || kLanes == 16 || kLanes == 32,
              "LANES_PER_ROW must be 2, 4, 8, 16 or 32");
static_assert(kWarps >= 1 && kWarps <= 32, "WARPS must be 1..32");
static_assert(kRowsPerWarp >= 1 && kRowsPerWarp % kRowsPerStep == 0,
              "ROWS_PER_WARP must be a multiple of 32 / LANES_PER_ROW");
static_assert(kDim % kRowsPerBlock == 0, "WARPS * ROWS_PER_WARP must divide 128");
static_assert(INTERMEDIATE == 0 || INTERMEDIATE == 1, "INTERMEDIATE must be 0 or 1");
static_assert(UPDATE == 0 || UPDATE == 1, "UPDATE must be 0 or 1");
static_assert(kT > 1 || (INTERMEDIATE == 0 && UPDATE == 1),
              "INTERMEDIATE 1 and UPDATE 0 are verify calls: SEQ_LEN > 1");
static_assert(kItems >= 1 && kItems <= 64, "ITEMS must be 1..64");
static_assert(PREFETCH >= 0 && PREFETCH <= 2, "PREFETCH must be 0, 1 or 2");
static_assert(REG_PREFETCH == 0 || (REG_PREFETCH == 1 && PREFETCH == 0 && STATE_BF16 == 0),
              "REG_PREFETCH must be 0, or 1 with PREFETCH 0 and an fp32 state (a bf16 "
              "state's widening would wait for the loads where they are issued)");
static_assert(MIN_BLOCKS >= 0 && MIN_BLOCKS <= 32, "MIN_BLOCKS must be 0..32");
static_assert(CONSECUTIVE == 0 || CONSECUTIVE == 1, "CONSECUTIVE must be 0 or 1");

#if STATE_BF16
typedef bf16 state_t;
#else
typedef float state_t;
#endif

// Where this thread works on work item `item` (the grid above); live is false past the
// last (b, h).
struct Place {
    int sub;       // which of a step's rows this lane works on
    int col;       // which 4-column piece of each chunk of L pieces
    int row_b, h;  // batch row and value head
    int row0;      // this lane's row in step 0; step r's is row0 + r * kRowsPerStep
    bool live;
};

__device__ __forceinline__ Place place(int batch_size, unsigned item) {
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int bh = item / kSplit;
    Place p;
    p.sub = lane / kLanes;
    p.col = lane % kLanes;
    p.row_b = bh / kVHeads;
    p.h = bh % kVHeads;
    p.row0 = (item % kSplit) * kRowsPerBlock + warp * kRowsPerWarp + p.sub;
    p.live = bh < batch_size * kVHeads;
    return p;
}

// Offset of this lane's first state chunk (step 0, chunk 0) in state slot `slot`.
__device__ __forceinline__ size_t state_offset(int slot, const Place& p) {
    return ((static_cast<size_t>(slot) * kVHeads + p.h) * kDim + p.row0) * kDim + p.col * 4;
}

// Offset of this lane's first chunk of token t's state in intermediate_states [B, T, HV, V, K].
__device__ __forceinline__ size_t intermediate_offset(int t, const Place& p) {
    return (((static_cast<size_t>(p.row_b) * kT + t) * kVHeads + p.h) * kDim + p.row0) * kDim +
           p.col * 4;
}

// Chunk c of step r, relative to state_offset (and intermediate_offset).
__device__ __forceinline__ constexpr int chunk_offset(int r, int c) {
    return r * kRowsPerStep * kDim + c * kLanes * 4;
}

// Store this lane's chunks of a state, each times x (1: as they are), at base + chunk_offset.
template <class T>
__device__ __forceinline__ void store_rows(T* base, const float4 (&s)[kSteps][kChunks],
                                           float x = 1.f) {
#pragma unroll
    for (int r = 0; r < kSteps; ++r)
#pragma unroll
        for (int c = 0; c < kChunks; ++c)
            gdn::store_state4<STORE_HINT>(base + chunk_offset(r, c), gdn::scale4(s[r][c], x));
}

// Zeros for this lane's rows of output[b, t] for every token (column 0 of each row writes).
__device__ __forceinline__ void zero_output(bf16* __restrict__ output, const Place& p) {
    if (p.col != 0) return;
    const size_t bt0 = static_cast<size_t>(p.row_b) * kT;
#pragma unroll 1
    for (int t = 0; t < kT; ++t)
#pragma unroll
        for (int r = 0; r < kSteps; ++r)
            output[((bt0 + t) * kVHeads + p.h) * kDim + p.row0 + r * kRowsPerStep] =
                __float2bfloat16(0.f);
}

// ---- a block's work items and where their state comes from (ITEMS, PREFETCH) -------------

// The kernels' minimum blocks an SM (__launch_bounds__): MIN_BLOCKS when set (ptxas then
// keeps to 65536 / (MIN_BLOCKS * WARPS * 32) registers a thread: occupancy for registers),
// else 1 with PREFETCH 1 or 2 (or ptxas caps registers to what the shared tiles would allow and
// spills, as in gdn_decode_bulk.cu), else 0: left to ptxas.
inline constexpr int kMinBlocks = MIN_BLOCKS > 0 ? MIN_BLOCKS : (PREFETCH ? 1 : 0);

// PREFETCH 1, 2: each warp's two tiles of its rows (items alternate; one tile with ITEMS 1,
// the item's rows landing in shared memory before it reads them) and their barriers (1).
inline constexpr int kTilesPerWarp = kItems > 1 ? 2 : 1;
struct Tiles {
    state_t tile[kWarps][kTilesPerWarp][kRowsPerWarp * kDim];
    unsigned long long bar[kWarps][2];
};
inline constexpr unsigned kRunBytes = kRowsPerWarp * kDim * sizeof(state_t);
static_assert(PREFETCH == 0 || sizeof(Tiles) <= 48 * 1024,
              "PREFETCH 1, 2: WARPS * 2 (ITEMS 1: 1) * ROWS_PER_WARP * 128 state values must "
              "fit 48 KiB");

// The slot batch row b reads and writes: state_indices[b] (POOL; < 0 a padding row) or b.
__device__ __forceinline__ int slot_of(const int* __restrict__ state_indices, int row_b) {
#if POOL
    return state_indices[row_b];
#else
    return row_b;
#endif
}

// This block's items in turn (blockIdx.x + i * gridDim.x, or blockIdx.x * ITEMS + i with
// CONSECUTIVE 1) and, with PREFETCH 1, the bulk copies that bring each item's state rows to
// the warp's tile one item ahead.
struct Items {
    const state_t* state;  // the dense states or the pool (nullptr: dense zeros)
    const int* state_indices;
    int batch_size;
    Tiles* sh;        // PREFETCH 1: the block's tiles (else unused)
    unsigned phase;   // bit t: the parity tile t's barrier completes next
#if REG_PREFETCH
    float4 next[kSteps][kChunks];  // the next item's rows, in flight (prefetch)
    int fetched;                   // the item whose loads prefetch issued last
#endif

    __device__ __forceinline__ unsigned item(int i) const {
        return CONSECUTIVE ? blockIdx.x * kItems + i : blockIdx.x + i * gridDim.x;
    }

    // Whether the live item i (at p) has state to read: a live slot, or a dense state.
    __device__ __forceinline__ bool reads(const Place& p, int slot) const {
        return p.live && slot >= 0 && (POOL || state != nullptr);
    }

    // PREFETCH 1: start item i's copy (warp-uniform; nothing for a padding row or zeros).
    // The warp's reads of the tile's previous item are done first: every lane passed them.
    // PREFETCH 2: this lane's copies of its own chunks of item i, as one commit group.
    __device__ __forceinline__ void start(int i) {
#if PREFETCH == 2
        if (i < kItems) {
            const Place p = place(batch_size, item(i));
            const int slot = p.live ? slot_of(state_indices, p.row_b) : -1;
            if (p.live && reads(p, slot)) {
                const state_t* src = state + state_offset(slot, p);
                state_t* dst = sh->tile[threadIdx.x >> 5][i & 1] + p.sub * kDim + p.col * 4;
#pragma unroll
                for (int r = 0; r < kSteps; ++r)
#pragma unroll
                    for (int c = 0; c < kChunks; ++c)
                        gdn::async_copy<4 * sizeof(state_t)>(dst + chunk_offset(r, c),
                                                             src + chunk_offset(r, c));
            }
        }
        gdn::async_commit();  // one group an item, empty or not: load(i) waits for all but i + 1's
#elif PREFETCH
        if (i >= kItems) return;
        const Place p = place(batch_size, item(i));
        if (!p.live) return;
        const int slot = slot_of(state_indices, p.row_b);
        if (!reads(p, slot)) return;
        const int warp = threadIdx.x >> 5;
        gdn::fence_to_async();
        __syncwarp();
        if ((threadIdx.x & 31) == 0)
            gdn::bulk_load(sh->tile[warp][i & 1],
                           state + state_offset(slot, p) - p.sub * kDim - p.col * 4, kRunBytes,
                           &sh->bar[warp][i & 1]);
#endif
    }

    // REG_PREFETCH 1: this lane's loads of its chunks of item i into next (nothing for a
    // padding row or a dense call without a state, or past the block's last item).
    __device__ __forceinline__ void prefetch(int i) {
#if REG_PREFETCH
        fetched = i;
        if (i >= kItems) return;
        const Place p = place(batch_size, item(i));
        const int slot = p.live ? slot_of(state_indices, p.row_b) : -1;
        if (!reads(p, slot)) return;
        global_rows(next, state_offset(slot, p));
#endif
    }

    // This lane's chunks of the rows at offset off of the state, from global memory.
    __device__ __forceinline__ void global_rows(float4 (&s)[kSteps][kChunks], size_t off) const {
#pragma unroll
        for (int r = 0; r < kSteps; ++r)
#pragma unroll
            for (int c = 0; c < kChunks; ++c)
                s[r][c] = gdn::load_state4<LOAD_HINT>(state + off + chunk_offset(r, c));
    }

    // After item i: REG_PREFETCH 1 starts item i + 1's loads if item i did not (a padding
    // row returns before its load).
    __device__ __forceinline__ void finish(int i) {
#if REG_PREFETCH
        if (fetched != i + 1) prefetch(i + 1);
#endif
    }

    // PREFETCH 1: set up the warp's barriers and start its first item's copy (2: the copy;
    // REG_PREFETCH 1: the loads).
    __device__ __forceinline__ void begin() {
#if REG_PREFETCH
        prefetch(0);
#elif PREFETCH == 2
        start(0);
#elif PREFETCH
        const int warp = threadIdx.x >> 5;
        if ((threadIdx.x & 31) == 0) {
            gdn::mbar_init(&sh->bar[warp][0], 1);
            gdn::mbar_init(&sh->bar[warp][1], 1);
        }
        __syncwarp();
        phase = 0;
        start(0);
#endif
    }

    // This lane's chunks of item i's rows (at p, offset off of its slot): from global memory,
    // or (PREFETCH 1, 2) from its tile once the copy started by start(i) has landed, or
    // (REG_PREFETCH 1) from the registers prefetch(i) filled; zeros for a dense call without a
    // state.
    __device__ __forceinline__ void load(float4 (&s)[kSteps][kChunks], const Place& p, int slot,
                                         size_t off, int i) {
#if REG_PREFETCH
        // the rows prefetch(i) loaded during the item before (the copy waits for them), then
        // item i + 1's loads, in flight during this item's math
        const bool got = reads(p, slot);
#pragma unroll
        for (int r = 0; r < kSteps; ++r)
#pragma unroll
            for (int c = 0; c < kChunks; ++c)
                s[r][c] = got ? next[r][c] : make_float4(0.f, 0.f, 0.f, 0.f);
        prefetch(i + 1);
        return;
#endif
        if (!reads(p, slot)) {
#pragma unroll
            for (int r = 0; r < kSteps; ++r)
#pragma unroll
                for (int c = 0; c < kChunks; ++c) s[r][c] = make_float4(0.f, 0.f, 0.f, 0.f);
            return;
        }
#if PREFETCH
        const state_t* mine = landed(p, slot, i);
#pragma unroll
        for (int r = 0; r < kSteps; ++r)
#pragma unroll
            for (int c = 0; c < kChunks; ++c) s[r][c] = tile4(mine + chunk_offset(r, c));
#else
        global_rows(s, off);
#endif
    }

    // PREFETCH 1, 2: item i's rows in the warp's tile once the copy started by start(i) has
    // landed, as this lane's first chunk there; nullptr when the item reads nothing (zeros).
    __device__ __forceinline__ const state_t* landed(const Place& p, int slot, int i) {
        if (!reads(p, slot)) return nullptr;
#if PREFETCH
        const int t = i & 1, warp = threadIdx.x >> 5;
        if constexpr (PREFETCH == 2) {
            gdn::async_wait<1>();  // item i's group; i + 1's (started before this item) may fly
        } else {
            gdn::mbar_wait(&sh->bar[warp][t], (phase >> t) & 1u);
            phase ^= 1u << t;
        }
        return sh->tile[warp][t] + p.sub * kDim + p.col * 4;
#else
        return nullptr;
#endif
    }

    __device__ __forceinline__ static float4 tile4(const float* x) {
        return *reinterpret_cast<const float4*>(x);
    }
    __device__ __forceinline__ static float4 tile4(const bf16* x) {
        return gdn::bf16x4(*reinterpret_cast<const uint2*>(x));
    }
};

// The kernel's arguments as every work item takes them (decode_item, solve_item, mma_item,
// rows_item, tiles_item and the tiled T > 1 items): one parameter list, and the call's
// arguments in the same order (the kernel's own parameter names).
#define FAMILY_ITEM_PARAMS                                                                    \
    const bf16 *__restrict__ q, const bf16 *__restrict__ k, const bf16 *__restrict__ v,     \
        const float *__restrict__ A_log, const bf16 *__restrict__ a,                        \
        const float *__restrict__ dt_bias, const bf16 *__restrict__ b, float scale,         \
        bf16 *__restrict__ output, STATE_T *new_state, const int *__restrict__ state_indices, \
        STATE_T *__restrict__ intermediate_states
#define FAMILY_ITEM_ARGS \
    q, k, v, A_log, a, dt_bias, b, scale, output, new_state, state_indices, intermediate_states

// The block's items in turn, f(p, i, items) for each live one (the kernel's entry loop).
template <class F>
__device__ __forceinline__ void for_each_item(const state_t* state,
                                              const int* __restrict__ state_indices,
                                              int batch_size, F&& f) {
#if PREFETCH
    __shared__ __align__(128) Tiles tiles;
    Items items{state, state_indices, batch_size, &tiles, 0u};
#else
    Items items{state, state_indices, batch_size, nullptr, 0u};
#endif
    items.begin();
#pragma unroll 1
    for (int i = 0; i < kItems; ++i) {
        const Place p = place(batch_size, items.item(i));
        if (!p.live) break;  // items only grow: the rest are past the last (b, h) too
        items.start(i + 1);  // PREFETCH 1: the next item's state in flight during this one
        f(p, i, items);      // (REG_PREFETCH 1: its load() starts the next item's loads)
        items.finish(i);
    }
}

}  // namespace family

#include "gdn_family_tiles.cuh"  // BLOCK_TILES: an item's rows through block-wide tiles
