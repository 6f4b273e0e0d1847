// Code-size probe (an experiment record, not a kit kernel): one cold load per thread, then
// N_FMA fully unrolled FMAs in 4 independent chains that depend on it, then one store. The
// binary grows by about N_FMA instructions (16 bytes each) while the work after the load
// stays a few hundred cycles, so comparing cold L2 with and without the code already in L2
// shows what fetching the kernel's own instructions from DRAM costs.
// Launch: grid 128, block 64 (the B=1 winner's shape); the kit's ABI, only state and
// new_state used (thread t reads state[t], writes new_state[t]).
#include <cuda_bf16.h>

#ifndef N_FMA
#define N_FMA 0
#endif

extern "C" __global__ void spin(const __nv_bfloat16* q, const __nv_bfloat16* k,
                                const __nv_bfloat16* v, const float* state, const float* A_log,
                                const __nv_bfloat16* a, const float* dt_bias,
                                const __nv_bfloat16* b, float scale, __nv_bfloat16* output,
                                float* new_state, int batch_size) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  float x0 = state[t], x1 = x0 + 1.f, x2 = x0 + 2.f, x3 = x0 + 3.f;
#pragma unroll
  for (int i = 0; i < N_FMA / 4; ++i) {
    x0 = fmaf(x0, 0.999f, 0.25f);
    x1 = fmaf(x1, 0.998f, 0.5f);
    x2 = fmaf(x2, 0.997f, 0.75f);
    x3 = fmaf(x3, 0.996f, 1.f);
  }
  new_state[t] = (x0 + x1) + (x2 + x3);
}
