// GDN decode, persistent warps with the next tile's loads in flight (variant "persistent",
// parent "streaming").
//
// Math, per batch row b, value head h (q/k head j = h / 2), state row v (one pass):
//   g = exp(-exp(A_log[h]) * softplus(a[b,h] + dt_bias[h])),  beta = sigmoid(b[b,h])
//   s = state[b,h,v,:];  u = g * (s . k);  delta = beta * (v[b,h,v] - u)
//   new_state[b,h,v,:] = g * s + delta * k
//   output[b,h,v] = scale * (g * (s . q) + (k . q) * delta)
// Layouts (row-major, spec letters): q, k [B,1,4,128] bf16; v [B,1,8,128] bf16;
//   state, new_state [B,8,V=128,K=128] fp32 k-last (state may be null: zeros);
//   a, b [B,1,8] bf16; A_log, dt_bias [8] fp32; output [B,1,8,128] bf16.
// Launch: grid min(ceil(TILES / WARPS), SMs * BLOCKS_PER_SM) blocks of WARPS * 32 threads, no
//   shared memory (decodekit.variants.persistent_shape). A tile is ROWS_PER_WARP consecutive
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
// Check and time: decodekit.check.require(registry.get("persistent"), 64, device="cuda");
//   decodekit.tuning.tune(["persistent"]) times it per B and launch shape with cold L2.
#include "gdn_fast.cuh"

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
// program's name, which cupy.RawModule takes from a hash, so the cubin would depend on who built it.
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

__device__ __forceinline__ float4 bf16x4(uint2 raw) {
  const float2 lo = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.x));
  const float2 hi = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.y));
  return make_float4(lo.x, lo.y, hi.x, hi.y);
}

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
  const int j = (x.bh / gdn::kVHeads) * gdn::kQKHeads + h / 2;  // q/k head row
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
  const float4 kk = bf16x4(x.k_raw);
  const float4 qq = bf16x4(x.q_raw);
  // gdn::gates reads through pointers; these point at the prefetched registers.
  const gdn::Gates gt = gdn::gates(&x.A_log, &x.a, &x.dt_bias, &x.b, 0, 0);
  const float kq = gdn::group_sum<32>(gdn::dot4(kk, qq));
  const float v_lane = __bfloat162float(x.v_lane);

  float sk[kRowsPerWarp], sq[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    sk[r] = gdn::dot4(x.s[r], kk);
    sq[r] = gdn::dot4(x.s[r], qq);
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      sk[r] += __shfl_xor_sync(gdn::kFull, sk[r], o);
      sq[r] += __shfl_xor_sync(gdn::kFull, sq[r], o);
    }
  }

  const size_t off = (static_cast<size_t>(x.bh) * gdn::kDim + x.row0) * gdn::kDim + lane * 4;
  float out_lane = 0.f;
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const float vr = __shfl_sync(gdn::kFull, v_lane, r);
    const float delta = gt.beta * (vr - gt.g * sk[r]);
    gdn::store_state4<STORE_HINT>(new_state + off + r * gdn::kDim,
                                  gdn::update4(x.s[r], gt.g, delta, kk));
    const float o = scale * fmaf(gt.g, sq[r], kq * delta);
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
