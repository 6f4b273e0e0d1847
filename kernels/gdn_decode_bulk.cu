// GDN decode, state rows brought in by Hopper bulk copies (variant "bulk", parent "streaming").
//
// Math: gdn.cuh's one-pass row update, as in rowsplit, on rows read from shared memory.
// Launch: grid B * 8 * SPLIT blocks, WARPS * 32 threads, static shared memory
//   WARPS * ROWS_PER_WARP * 512 bytes, SPLIT = 128 / (WARPS * ROWS_PER_WARP), as in rowsplit.
//   A warp owns ROWS_PER_WARP consecutive rows, one contiguous ROWS_PER_WARP * 512-byte run
//   of state: lane 0 starts one cp.async.bulk of the whole run into the warp's shared tile,
//   completing on the warp's mbarrier, while all lanes load q, k, v and compute the gates.
//   Then lane l takes columns [4l, 4l + 4) of each row from shared memory, as in rowsplit.
//   new_state leaves through registers (STORE_HINT as in streaming) or, with BULK_STORE=1,
//   back through the tile and one shared -> global bulk store per warp.
// Change from streaming: one instruction puts a warp's whole run in flight (the copy engine,
//   not 32 lanes x ROWS_PER_WARP loads, tracks it), so bytes in flight are no longer bounded
//   by registers; the tile is 16-byte aligned and the run a multiple of 512 bytes.
//   Before sm_90 the tile is filled by ordinary loads (same results, no bulk engine).
// In place: a warp waits for its whole run to land before writing any of it.
// Check and time: decodekit.measure.check.require(registry.get("bulk"), 17, device="cuda");
//   decodekit.measure.tuning.tune(["bulk"]) times it per B and launch shape with cold L2.
#include "gdn.cuh"

#ifndef WARPS
#define WARPS 4
#endif
#ifndef ROWS_PER_WARP
#define ROWS_PER_WARP 8
#endif
#ifndef STORE_HINT
#define STORE_HINT 0
#endif
#ifndef BULK_STORE
#define BULK_STORE 0
#endif

inline constexpr int kWarps = WARPS;
inline constexpr int kRowsPerWarp = ROWS_PER_WARP;
inline constexpr int kRowsPerBlock = kWarps * kRowsPerWarp;
inline constexpr int kSplit = gdn::kDim / kRowsPerBlock;
inline constexpr unsigned kRunBytes = kRowsPerWarp * gdn::kDim * sizeof(float);
// Rows reduced together: enough independent shuffles to hide their latency, few registers.
inline constexpr int kGroup = kRowsPerWarp < 8 ? kRowsPerWarp : 8;
static_assert(kWarps >= 1 && kWarps <= 32, "WARPS must be 1..32");
static_assert(kRowsPerWarp >= 1 && kRowsPerWarp <= 32, "ROWS_PER_WARP must be 1..32");
static_assert(kRowsPerWarp % kGroup == 0, "ROWS_PER_WARP must be < 8 or a multiple of 8");
static_assert(gdn::kDim % kRowsPerBlock == 0, "WARPS * ROWS_PER_WARP must divide 128");
static_assert(kRowsPerBlock <= 64, "the tile must fit 48 KiB of static shared memory");
static_assert(BULK_STORE == 0 || BULK_STORE == 1, "BULK_STORE must be 0 or 1");

// minBlocks 1: the tile, not registers, bounds occupancy here; without it ptxas capped
// registers to match and spilled a few bytes at ROWS_PER_WARP=16.
extern "C" __global__ void __launch_bounds__(kWarps * 32, 1)
    gdn_decode_bulk(const gdn::bf16* __restrict__ q, const gdn::bf16* __restrict__ k,
                    const gdn::bf16* __restrict__ v, const float* state,
                    const float* __restrict__ A_log, const gdn::bf16* __restrict__ a,
                    const float* __restrict__ dt_bias, const gdn::bf16* __restrict__ b,
                    float scale, gdn::bf16* __restrict__ output, float* new_state,
                    int batch_size) {
    __shared__ __align__(128) float tile[kWarps][kRowsPerWarp * gdn::kDim];
    __shared__ __align__(8) unsigned long long bar[kWarps];
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int bh = blockIdx.x / kSplit;
    if (bh >= batch_size * gdn::kVHeads) return;
    const int h = bh % gdn::kVHeads;
    const int j = gdn::qk_row(bh, h);
    const int row0 = (blockIdx.x % kSplit) * kRowsPerBlock + warp * kRowsPerWarp;
    // Offset of row r of this warp's run. Formed where used from a 32-bit row index: a 64-bit
    // offset held across the row loop was spilled to local memory at ROWS_PER_WARP=16.
    const int run_row = bh * gdn::kDim + row0;
    auto at = [run_row](int r) { return static_cast<size_t>(run_row + r) * gdn::kDim; };
    float* my = tile[warp];
    const bool has_state = state != nullptr;

    if (has_state) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
        if (lane == 0) {
            gdn::mbar_init(&bar[warp], 1);
            gdn::bulk_load(my, state + at(0), kRunBytes, &bar[warp]);
        }
#else
#pragma unroll
        for (int r = 0; r < kRowsPerWarp; ++r)
            reinterpret_cast<float4*>(my)[r * 32 + lane] =
                gdn::load_state4<0>(state + at(r) + lane * 4);
#endif
    }
    const float4 kk = gdn::load_bf16x4(k + j * gdn::kDim + lane * 4);
    const float4 qq = gdn::load_bf16x4(q + j * gdn::kDim + lane * 4);
    const float v_lane =
        lane < kRowsPerWarp ? __bfloat162float(v[bh * gdn::kDim + row0 + lane]) : 0.f;
    const gdn::Gates gt = gdn::gates(A_log, a, dt_bias, b, bh, h);
    const float kq = gdn::group_sum<32>(gdn::dot4(kk, qq));
    if (has_state) {
        // Lane 0's barrier initialisation (or the plain loads) is visible to the warp after this.
        __syncwarp();
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
        gdn::mbar_wait(&bar[warp], 0);
#endif
    }

    float out_lane = 0.f;
    // Groups one after another: the tile, not registers, holds the rest of the run.
#pragma unroll 1
    for (int r0 = 0; r0 < kRowsPerWarp; r0 += kGroup) {
        float4 s[kGroup];
        float sk[kGroup], sq[kGroup];
#pragma unroll
        for (int r = 0; r < kGroup; ++r) {
            s[r] = has_state ? reinterpret_cast<const float4*>(my)[(r0 + r) * 32 + lane]
                             : make_float4(0.f, 0.f, 0.f, 0.f);
            sk[r] = gdn::dot4(s[r], kk);
            sq[r] = gdn::dot4(s[r], qq);
        }
        gdn::group_sums<32>(sk, sq);
#pragma unroll
        for (int r = 0; r < kGroup; ++r) {
            const float vr = __shfl_sync(gdn::kFull, v_lane, r0 + r);
            const float delta = gdn::row_delta(gt, vr, sk[r]);
            const float4 ns = gdn::update4(s[r], gt.g, delta, kk);
            if constexpr (BULK_STORE) {
                reinterpret_cast<float4*>(my)[(r0 + r) * 32 + lane] = ns;
            } else {
                gdn::store_state4<STORE_HINT>(new_state + at(r0 + r) + lane * 4, ns);
            }
            const float o = gdn::row_output(gt, sq[r], kq, delta, scale);
            if (lane == r0 + r) out_lane = o;
        }
    }
    if (lane < kRowsPerWarp) output[bh * gdn::kDim + row0 + lane] = __float2bfloat16(out_lane);

    if constexpr (BULK_STORE) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
        gdn::fence_to_async();
        __syncwarp();
        if (lane == 0) gdn::bulk_store(new_state + at(0), my, kRunBytes);
#else
        __syncwarp();
#pragma unroll
        for (int r = 0; r < kRowsPerWarp; ++r)
            gdn::store_state4<0>(new_state + at(r) + lane * 4,
                                 reinterpret_cast<const float4*>(my)[r * 32 + lane]);
#endif
    }
}
