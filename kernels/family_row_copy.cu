// Family row copy: a family member's state traffic through gdn_decode_family's grid, with
// none of its math. A floor, not a variant (row_copy.cu is the contest's).
//
// Math: for each batch row b with slot = state_indices[b] (POOL) or b (dense):
//   slot >= 0: new_state[slot] = state[slot] (dense with state == nullptr: zeros; UPDATE 0:
//   not stored), and with INTERMEDIATE intermediate_states[b, t] = state[slot] for every t;
//   output[b, t] = 0 for every token t, padding rows (slot < 0) included.
// No gates, no q, k, v. Layouts and ABI: those of gdn_decode_family.cu (same arguments, same
//   defines; L2NORM is accepted and changes nothing).
// Launch: gdn_decode_family's (gdn_family.cuh states it once: the same defines, grid, items
//   and prefetch); a lane loads the chunks gdn_decode_family's lane holds (the same loads,
//   gdn.cuh's load_state4 / store_state4 for fp32 or bf16, or the same tiles), then stores
//   them; column 0 of each row writes its T zeros of output.
// Why: the issue's floor for a member is a copy of the same bytes from the same scattered
//   slots; a torch copy moves them dense and pays its own launch. This is what the kit
//   kernel would take if its math, token loads and reductions were free, so "kernel minus
//   row copy" is their cost, per contract (pool, bf16 state, T).
// Time: decodekit.measure.family_bench (floor "row-copy-floor", every family bench).
#include "gdn_family.cuh"

typedef family::state_t COPY_STATE_T;

namespace family {

// Work item i of the block (at p): its rows' state copied, its output zeroed.
__device__ __forceinline__ void copy_item(const Place& p, int i, Items& items, float scale,
                                          bf16* __restrict__ output, COPY_STATE_T* new_state,
                                          const int* __restrict__ state_indices,
                                          COPY_STATE_T* __restrict__ intermediate_states) {
    const int slot = slot_of(state_indices, p.row_b);
    zero_output(output, p);
    if (slot < 0) return;  // a padding row touches no state
    const size_t off = state_offset(slot, p);
    float4 s[kSteps][kChunks];
    items.load(s, p, slot, off, i);  // the slot's rows, or zeros (a dense call without state)
    if (INTERMEDIATE) {
#pragma unroll 1
        for (int t = 0; t < kT; ++t) store_rows(intermediate_states + intermediate_offset(t, p), s);
    }
    if (!UPDATE) {
        // Nothing stores the state: keep its loads with a sum no input makes equal to this
        // runtime value (the compiler cannot drop them), as the kernel's own loads are kept.
        float sum = 0.f;
#pragma unroll
        for (int r = 0; r < kSteps; ++r)
#pragma unroll
            for (int c = 0; c < kChunks; ++c) sum += s[r][c].x + s[r][c].y + s[r][c].z + s[r][c].w;
        if (sum == -1e30f * scale) output[0] = __float2bfloat16(sum);
        return;
    }
    store_rows(new_state + off, s);
}

// BLOCK_TILES R: the item through the block's stage tiles (stage_rows), each row stored as it
// is read; output zeros.
__device__ __forceinline__ void tiles_copy_item(const Place& p, Items& items,
                                                bf16* __restrict__ output, COPY_STATE_T* new_state,
                                                const int* __restrict__ state_indices) {
#if BLOCK_TILES
    const int slot = slot_of(state_indices, p.row_b);
    const size_t orow = (static_cast<size_t>(p.row_b) * kVHeads + p.h) * kDim + item_row(p);
    if (threadIdx.x < kRowsPerBlock) output[orow + threadIdx.x] = __float2bfloat16(0.f);
    if (slot < 0) return;  // a padding row touches no state (block-uniform)
    COPY_STATE_T* dst = new_state + stage_base(p, slot);
    stage_rows(p, slot, items, [] {}, [&](int row, int, int, float4 x) {
        gdn::store_state4<STORE_HINT>(dst + row * kDim, x);
    });
#endif
}

}  // namespace family

extern "C" __global__ void __launch_bounds__(family::kWarps * 32, family::kMinBlocks)
    family_row_copy(const gdn::bf16* __restrict__ q, const gdn::bf16* __restrict__ k,
                    const gdn::bf16* __restrict__ v, const COPY_STATE_T* state,
                    const float* __restrict__ A_log, const gdn::bf16* __restrict__ a,
                    const float* __restrict__ dt_bias, const gdn::bf16* __restrict__ b,
                    float scale, gdn::bf16* __restrict__ output, COPY_STATE_T* new_state,
                    const int* __restrict__ state_indices,
                    COPY_STATE_T* __restrict__ intermediate_states, int batch_size) {
    using namespace family;
    for_each_item(state, state_indices, batch_size, [&](const Place& p, int i, Items& items) {
        if constexpr (BLOCK_TILES != 0)
            tiles_copy_item(p, items, output, new_state, state_indices);
        else
            copy_item(p, i, items, scale, output, new_state, state_indices, intermediate_states);
    });
}
