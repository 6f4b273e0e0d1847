// GDN decode, rows of each head split across blocks (variant "rowsplit", parent "baseline").
//
// Math: gdn.cuh's one-pass row update: per state row, s . k and s . q from one read of s,
//   then delta, new_state = g * s + delta * k and output = scale * (g * (s . q) + (k . q) * delta).
// Launch: grid B * 8 * SPLIT blocks, WARPS * 32 threads, no shared memory, where
//   SPLIT = 128 / (WARPS * ROWS_PER_WARP). Block x owns ROWS_PER_BLOCK = WARPS * ROWS_PER_WARP
//   consecutive rows, part x % SPLIT of head bh = x / SPLIT; a warp owns ROWS_PER_WARP
//   consecutive rows; lane l holds columns [4l, 4l + 4) of each, so one 16-byte load per
//   lane covers a row (512 bytes).
//   Every row's load is issued before any reduction, so a warp has ROWS_PER_WARP rows in
//   flight; s.k and s.q are butterfly sums over the warp. Gates are computed per thread.
// Change from baseline (one block per (b,h), one thread per row): SPLIT blocks per head fill
//   the SMs at small B, and coalesced 16-byte loads replace per-thread row walks.
// Variant "streaming" (parent "rowsplit") is this file with LOAD_HINT / STORE_HINT set: state
//   loads and new_state stores carry cache policies (gdn::load_state4, gdn::store_state4).
//   Every state byte is touched once, so loads marked evict-first free L2 for the dirty
//   new_state lines, which can then drain to DRAM after the kernel ends; evict-first stores
//   test the opposite bet. FAST_GATES (gdn.cuh) is a tuning axis of both.
// In place: each row is read and written by one warp, read fully before it is written.
// Check and time: decodekit.measure.check.require(registry.get("rowsplit"), 17, device="cuda");
//   decodekit.measure.tuning.tune(["rowsplit", "streaming"]) times it per B and hint pair, cold L2.
#include "gdn.cuh"

#ifndef WARPS
#define WARPS 4
#endif
#ifndef ROWS_PER_WARP
#define ROWS_PER_WARP 8
#endif
#ifndef LOAD_HINT
#define LOAD_HINT 0
#endif
#ifndef STORE_HINT
#define STORE_HINT 0
#endif

inline constexpr int kWarps = WARPS;
inline constexpr int kRowsPerWarp = ROWS_PER_WARP;
inline constexpr int kRowsPerBlock = kWarps * kRowsPerWarp;
inline constexpr int kSplit = gdn::kDim / kRowsPerBlock;  // blocks per (batch, value head)
static_assert(kWarps >= 1 && kWarps <= 32, "WARPS must be 1..32");
static_assert(kRowsPerWarp >= 1 && kRowsPerWarp <= 32, "ROWS_PER_WARP must be 1..32");
static_assert(gdn::kDim % kRowsPerBlock == 0, "WARPS * ROWS_PER_WARP must divide 128");

extern "C" __global__ void __launch_bounds__(kWarps * 32)
    gdn_decode_rowsplit(const gdn::bf16* __restrict__ q, const gdn::bf16* __restrict__ k,
                        const gdn::bf16* __restrict__ v, const float* state,
                        const float* __restrict__ A_log, const gdn::bf16* __restrict__ a,
                        const float* __restrict__ dt_bias, const gdn::bf16* __restrict__ b,
                        float scale, gdn::bf16* __restrict__ output, float* new_state,
                        int batch_size) {
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int bh = blockIdx.x / kSplit;  // batch * 8 + value head
    if (bh >= batch_size * gdn::kVHeads) return;
    const int h = bh % gdn::kVHeads;
    const int j = gdn::qk_row(bh, h);
    const int row0 = (blockIdx.x % kSplit) * kRowsPerBlock + warp * kRowsPerWarp;
    const size_t off = (static_cast<size_t>(bh) * gdn::kDim + row0) * gdn::kDim + lane * 4;

    // State first: these loads carry all the latency; everything below overlaps them.
    float4 s[kRowsPerWarp];
    if (state != nullptr) {
#pragma unroll
        for (int r = 0; r < kRowsPerWarp; ++r)
            s[r] = gdn::load_state4<LOAD_HINT>(state + off + r * gdn::kDim);
    } else {
#pragma unroll
        for (int r = 0; r < kRowsPerWarp; ++r) s[r] = make_float4(0.f, 0.f, 0.f, 0.f);
    }
    const float4 kk = gdn::load_bf16x4(k + j * gdn::kDim + lane * 4);
    const float4 qq = gdn::load_bf16x4(q + j * gdn::kDim + lane * 4);
    // Lane r holds v of the warp's row r; broadcast by shuffle below.
    const float v_lane =
        lane < kRowsPerWarp ? __bfloat162float(v[bh * gdn::kDim + row0 + lane]) : 0.f;
    const gdn::Gates gt = gdn::gates(A_log, a, dt_bias, b, bh, h);
    const float kq = gdn::group_sum<32>(gdn::dot4(kk, qq));

    float sk[kRowsPerWarp], sq[kRowsPerWarp];
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
        sk[r] = gdn::dot4(s[r], kk);
        sq[r] = gdn::dot4(s[r], qq);
    }
    gdn::group_sums<32>(sk, sq);  // over all rows at once

    float out_lane = 0.f;
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
        const float vr = __shfl_sync(gdn::kFull, v_lane, r);
        const float delta = gdn::row_delta(gt, vr, sk[r]);
        gdn::store_state4<STORE_HINT>(new_state + off + r * gdn::kDim,
                                      gdn::update4(s[r], gt.g, delta, kk));
        const float o = gdn::row_output(gt, sq[r], kq, delta, scale);
        if (lane == r) out_lane = o;
    }
    if (lane < kRowsPerWarp) output[bh * gdn::kDim + row0 + lane] = __float2bfloat16(out_lane);
}
