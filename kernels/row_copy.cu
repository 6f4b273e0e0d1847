// Row copy: the GDN decode's state traffic without its math. A floor, not a variant.
//
// Math: new_state[b,h,v,:] = state[b,h,v,:]; output[b,h,v] = 0. No gates, no q, k, v.
// Layouts and ABI: as every kit kernel (gdn.cuh).
// Launch: as rowsplit (decodekit.impls.variants.split_shape): grid B * 8 * SPLIT blocks of
//   WARPS * 32 threads, SPLIT = 128 / (WARPS * ROWS_PER_WARP); a warp loads its
//   ROWS_PER_WARP rows (one 16-byte load per lane per row, LOAD_HINT as in streaming), then
//   stores them (STORE_HINT).
// Why: a torch copy of the state bytes (cudaMemcpy) is the floor the issue names, but at
//   small B it pays a launch the kit kernels do not, and its cache behaviour differs. This is
//   what a kit kernel with the same grid and loads would take if its math were free, so
//   "kernel minus row copy" is the cost of the math, the gate loads and the reductions.
// Time: decodekit.measure.floors (method "row-copy-floor", every bench run on a GPU).
#include "gdn.cuh"

#ifndef WARPS
#define WARPS 4
#endif
#ifndef ROWS_PER_WARP
#define ROWS_PER_WARP 4
#endif
#ifndef LOAD_HINT
#define LOAD_HINT 1
#endif
#ifndef STORE_HINT
#define STORE_HINT 0
#endif

inline constexpr int kWarps = WARPS;
inline constexpr int kRowsPerWarp = ROWS_PER_WARP;
inline constexpr int kRowsPerBlock = kWarps * kRowsPerWarp;
inline constexpr int kSplit = gdn::kDim / kRowsPerBlock;
static_assert(gdn::kDim % kRowsPerBlock == 0, "WARPS * ROWS_PER_WARP must divide 128");

extern "C" __global__ void __launch_bounds__(kWarps * 32)
    row_copy(const gdn::bf16* __restrict__ q, const gdn::bf16* __restrict__ k,
             const gdn::bf16* __restrict__ v, const float* state,
             const float* __restrict__ A_log, const gdn::bf16* __restrict__ a,
             const float* __restrict__ dt_bias, const gdn::bf16* __restrict__ b, float scale,
             gdn::bf16* __restrict__ output, float* new_state, int batch_size) {
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int bh = blockIdx.x / kSplit;
    if (bh >= batch_size * gdn::kVHeads) return;
    const int row0 = (blockIdx.x % kSplit) * kRowsPerBlock + warp * kRowsPerWarp;
    const size_t off = (static_cast<size_t>(bh) * gdn::kDim + row0) * gdn::kDim + lane * 4;
    float4 s[kRowsPerWarp];
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r)
        s[r] = state ? gdn::load_state4<LOAD_HINT>(state + off + r * gdn::kDim)
                     : make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r)
        gdn::store_state4<STORE_HINT>(new_state + off + r * gdn::kDim, s[r]);
    if (lane < kRowsPerWarp) output[bh * gdn::kDim + row0 + lane] = __float2bfloat16(0.f);
}
