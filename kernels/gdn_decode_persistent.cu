// GDN decode, persistent warps with the next tile's loads in flight (variant "persistent",
// parent "streaming").
//
// Math: gdn.cuh's one-pass row update, as in rowsplit, one tile of rows at a time.
// Launch: grid min(ceil(TILES / WARPS), SMs * BLOCKS_PER_SM) blocks of WARPS * 32 threads, no
//   shared memory (decodekit.impls.variants.persistent_shape). A tile is ROWS_PER_WARP consecutive
//   rows of one (b, h); tile t covers head bh = t / (128 / ROWS_PER_WARP), and there are
//   TILES = B * 8 * 128 / ROWS_PER_WARP of them. Global warp w takes tiles w, w + W, w + 2W, ...
//   (W = warps in the grid); lane l holds columns [4l, 4l + 4) of each row (16-byte loads).
//   Each loop step first issues the loads of the warp's next tile (state rows, and the raw
//   q, k, v, a, b, A_log, dt_bias it needs), then reduces and stores the current one, so a
//   warp always has a tile of loads in flight while its stores drain. The prefetched values
//   are not touched until the next step: an in-order warp would stall on their first use.
// Change from streaming: a fixed grid of resident warps walks the tiles with one tile of
//   software prefetch, instead of one short-lived warp per tile whose stores end its life
//   and whose replacement starts with an empty pipeline. LOAD_HINT / STORE_HINT as in
//   streaming (default: evict-first loads and stores).
// In place: tiles are disjoint and each is owned by one warp; a warp's loads of tile t come
//   before its stores of tile t in program order (state and new_state are not __restrict__,
//   so the compiler keeps that order), and it never writes a row it has not read.
// Check and time: decodekit.measure.check.require(registry.get("persistent"), 64, device="cuda");
//   decodekit.measure.tuning.tune(["persistent"]) times it per B and launch shape with cold L2.
#include "gdn.cuh"

#ifndef WARPS
#define WARPS 4
#endif
#ifndef ROWS_PER_WARP
#define ROWS_PER_WARP 8
#endif
#ifndef BLOCKS_PER_SM
#define BLOCKS_PER_SM 4
#endif
#ifndef LOAD_HINT
#define LOAD_HINT 1
#endif
#ifndef STORE_HINT
#define STORE_HINT 1
#endif

inline constexpr int kWarps = WARPS;
inline constexpr int kRowsPerWarp = ROWS_PER_WARP;
inline constexpr int kBlocksPerSm = BLOCKS_PER_SM;
inline constexpr int kTilesPerHead = gdn::kDim / kRowsPerWarp;
static_assert(kWarps >= 1 && kWarps <= 32, "WARPS must be 1..32");
static_assert(kRowsPerWarp >= 1 && kRowsPerWarp <= 32, "ROWS_PER_WARP must be 1..32");
static_assert(gdn::kDim % kRowsPerWarp == 0, "ROWS_PER_WARP must divide 128");
static_assert(kBlocksPerSm >= 1 && kBlocksPerSm * kWarps <= 64,
              "BLOCKS_PER_SM * WARPS must fit an SM (1..64 warps)");

// A named namespace, not an anonymous one: anonymous-namespace symbols are mangled with the
// program's name, which cupy.RawModule takes from a hash, so the cubin would depend on who
// built it.
namespace persistent {

// Everything one tile needs, as loaded: nothing here has been used, so holding it costs no
// stall. q, k stay packed bf16 until the tile is processed.
struct Tile {
    float4 s[kRowsPerWarp];
    uint2 k_raw, q_raw;
    gdn::bf16 v_lane, a, b;  // lane r: v of the tile's row r
    float A_log, dt_bias;
    int bh, row0;
};

// Issue every load of tile t; the state loads first, since they carry the DRAM latency.
__device__ __forceinline__ void load_tile(Tile& x, int t, int lane, const gdn::bf16* q,
                                          const gdn::bf16* k, const gdn::bf16* v,
                                          const float* state, const float* A_log,
                                          const gdn::bf16* a, const float* dt_bias,
                                          const gdn::bf16* b) {
    x.bh = t / kTilesPerHead;
    x.row0 = (t % kTilesPerHead) * kRowsPerWarp;
    const size_t off = (static_cast<size_t>(x.bh) * gdn::kDim + x.row0) * gdn::kDim + lane * 4;
    if (state != nullptr) {
#pragma unroll
        for (int r = 0; r < kRowsPerWarp; ++r)
            x.s[r] = gdn::load_state4<LOAD_HINT>(state + off + r * gdn::kDim);
    } else {
#pragma unroll
        for (int r = 0; r < kRowsPerWarp; ++r) x.s[r] = make_float4(0.f, 0.f, 0.f, 0.f);
    }
    const int h = x.bh % gdn::kVHeads;
    const int j = gdn::qk_row(x.bh, h);
    x.k_raw = __ldg(reinterpret_cast<const uint2*>(k + j * gdn::kDim + lane * 4));
    x.q_raw = __ldg(reinterpret_cast<const uint2*>(q + j * gdn::kDim + lane * 4));
    x.v_lane = v[x.bh * gdn::kDim + x.row0 + (lane < kRowsPerWarp ? lane : 0)];
    x.a = a[x.bh];
    x.b = b[x.bh];
    x.A_log = A_log[h];
    x.dt_bias = dt_bias[h];
}

// Reduce, update and store tile x: the first use of its loads.
__device__ __forceinline__ void finish_tile(const Tile& x, int lane, float scale,
                                            gdn::bf16* output, float* new_state) {
    const float4 kk = gdn::bf16x4(x.k_raw);
    const float4 qq = gdn::bf16x4(x.q_raw);
    const gdn::Gates gt = gdn::gate_values<gdn::kGateMath>(
        __bfloat162float(x.a), x.dt_bias, x.A_log, __bfloat162float(x.b));
    const float kq = gdn::group_sum<32>(gdn::dot4(kk, qq));
    const float v_lane = __bfloat162float(x.v_lane);

    float sk[kRowsPerWarp], sq[kRowsPerWarp];
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
        sk[r] = gdn::dot4(x.s[r], kk);
        sq[r] = gdn::dot4(x.s[r], qq);
    }
    gdn::group_sums<32>(sk, sq);

    const size_t off = (static_cast<size_t>(x.bh) * gdn::kDim + x.row0) * gdn::kDim + lane * 4;
    float out_lane = 0.f;
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
        const float vr = __shfl_sync(gdn::kFull, v_lane, r);
        const float delta = gdn::row_delta(gt, vr, sk[r]);
        gdn::store_state4<STORE_HINT>(new_state + off + r * gdn::kDim,
                                      gdn::update4(x.s[r], gt.g, delta, kk));
        const float o = gdn::row_output(gt, sq[r], kq, delta, scale);
        if (lane == r) out_lane = o;
    }
    if (lane < kRowsPerWarp)
        output[x.bh * gdn::kDim + x.row0 + lane] = __float2bfloat16(out_lane);
}

}  // namespace persistent
using namespace persistent;

extern "C" __global__ void __launch_bounds__(kWarps * 32, kBlocksPerSm)
    gdn_decode_persistent(const gdn::bf16* __restrict__ q, const gdn::bf16* __restrict__ k,
                          const gdn::bf16* __restrict__ v, const float* state,
                          const float* __restrict__ A_log, const gdn::bf16* __restrict__ a,
                          const float* __restrict__ dt_bias, const gdn::bf16* __restrict__ b,
                          float scale, gdn::bf16* __restrict__ output, float* new_state,
                          int batch_size) {
    const int lane = threadIdx.x & 31;
    const int tiles = batch_size * gdn::kVHeads * kTilesPerHead;
    const int stride = gridDim.x * kWarps;
    // Warp-uniform from here on, so every shuffle sees all 32 lanes.
    int t = blockIdx.x * kWarps + (threadIdx.x >> 5);
    if (t >= tiles) return;

    Tile cur, next;
    load_tile(cur, t, lane, q, k, v, state, A_log, a, dt_bias, b);
    for (;;) {
        const int tn = t + stride;
        const bool more = tn < tiles;
        if (more) load_tile(next, tn, lane, q, k, v, state, A_log, a, dt_bias, b);
        finish_tile(cur, lane, scale, output, new_state);
        if (!more) break;
        cur = next;
        t = tn;
    }
}
