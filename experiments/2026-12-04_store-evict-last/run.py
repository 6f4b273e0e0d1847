"""Do L2 evict_last lines survive the cold-L2 flush, and which flush clears them?

Stop 35 saw builds with ``STORE_HINT`` 3 (new_state stored with an L2 evict_last policy) win
by 5-21%, and plain builds timed after them in the same run win too, at B = 32-128 of an
fp32 pool but not at B = 256 (state far larger than the 60 MiB L2). The reading to test: the
kit's flush (a buffer twice the L2 zeroed with normal stores) evicts normal lines first, so
evict_last lines of the pool outlive it and the next "cold" call reads them from L2.

The victim is a plain build (the member's row copy, and its tuned kit kernel). Phase 1,
before any evict_last store has run, times it on fresh buffers, then the STORE_HINT 3 builds
on buffers of their own under ``elflush`` (below) and the plain flush. Phase 2 times the
victim on one set of buffers, the pool in place, under ``before`` hooks that run after the
kit's flush:

==================  =====================================================================
condition           before each timed call (after the kit's flush)
==================  =====================================================================
``flush``           nothing: the kit's cold method as it was
``plain>flush``     the same row copy with plain stores on these buffers, then the flush
``el>flush``        the row copy with STORE_HINT 3 on these buffers, then the flush
``el>reset>flush``  as ``el>flush`` with cuCtxResetPersistingL2Cache before the flush
``el>elflush``      as ``el>flush`` with the flush buffer first written with evict_last
                    stores and demoted to evict_normal (applypriority), then the flush
``after``           nothing, on the buffers the conditions above used
==================  =====================================================================

The kit kernels are checked against the fp64 oracle on the member's contracts first (a
failing build is not timed). Cold L2, CUPTI (the contest method), per
:mod:`decodekit.measure.experiment`. Run at 1bd718b, before the kit's flush reset persisting
lines (it does since; data/experiments/2026-12-04_store-evict-last/README.md). Writes
results.json to $OUT or data/experiments/2026-12-04_store-evict-last/.

    PYTHONPATH=. python experiments/2026-12-04_store-evict-last/run.py
"""

import ctypes
from functools import partial
from pathlib import Path

import cupy
import torch

from decodekit.impls import family_tuning as ft
from decodekit.impls.family_kernels import kit_kernel, row_copy
from decodekit.measure import experiment, family_check
from decodekit.measure.timing import DeviceTimer
from decodekit.problem.family import load_cases, make_inputs, parse
from decodekit.records.env import capture

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DATA = ROOT / "data" / "experiments" / HERE.name
dev, timer = torch.device("cuda", 0), DeviceTimer()
COPY = dict(WARPS=4, ROWS_PER_WARP=8, LANES_PER_ROW=16, LOAD_HINT=1)  # the floor's first build
RUNS = {  # member -> batch sizes
    "gdn_decode_pool_qk4_v8_d128_k_last_l2norm": (32, 64, 256),
    "gdn_decode_pool_qk4_v8_d128_k_last_bf16state_l2norm": (32, 64),
}
FLUSH_SRC = r"""
extern "C" __global__ void el_write(int4* p, unsigned long long n) {
    unsigned long long pol;
    asm volatile("createpolicy.fractional.L2::evict_last.b64 %0, 1.0;" : "=l"(pol));
    for (unsigned long long i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += gridDim.x * blockDim.x)
        asm volatile("st.global.L2::cache_hint.v4.s32 [%0], {%1,%1,%1,%1}, %2;"
                     :: "l"(p + i), "r"(0), "l"(pol) : "memory");
}
extern "C" __global__ void demote(const int4* p, unsigned long long lines) {
    for (unsigned long long i = blockIdx.x * blockDim.x + threadIdx.x; i < lines;
         i += gridDim.x * blockDim.x)
        asm volatile("applypriority.global.L2::evict_normal [%0], 128;" :: "l"(p + 8 * i)
                     : "memory");
}
"""
_mod = cupy.RawModule(code=FLUSH_SRC, options=("-std=c++17",))
_libcuda = ctypes.CDLL("libcuda.so.1")


def reset_persisting() -> None:
    rc = _libcuda.cuCtxResetPersistingL2Cache()
    if rc:
        raise RuntimeError(f"cuCtxResetPersistingL2Cache returned CUresult {rc}")


def el_flush() -> None:
    """The flush buffer written with evict_last stores, demoted to evict_normal, then the
    kit's flush (normal zeros): every older evict_last line is displaced by the first pass."""
    timer.flush(dev)  # allocates the buffer once
    buf = timer._flush_buf[dev]
    n = buf.numel() // 16
    stream = cupy.cuda.ExternalStream(torch.cuda.current_stream(dev).cuda_stream)
    with stream:
        _mod.get_function("el_write")((1024,), (256,), (buf.data_ptr(), cupy.uint64(n)))
        _mod.get_function("demote")((1024,), (256,), (buf.data_ptr(), cupy.uint64(n // 8)))
    timer.flush(dev)


def run_of(fn, args: dict):
    return partial(fn, **args)


def steps(*fns):
    """One ``before`` hook: ``fns`` called in order."""

    def before() -> None:
        for f in fns:
            f()

    return before


def table_build(m, B: int) -> dict:
    return ft.read_table(ft.own_table(m, "NVIDIA H200"), m)[B]["defines"]


def call_args(case) -> dict:
    args = make_inputs(case, dev)
    T, HV = case.member.seq_len, case.member.v_heads
    out = torch.empty(case.batch_size, T, HV, 128, dtype=torch.bfloat16, device=dev)
    return {**args, "output": out, "new_state": args["state"], "intermediate_states": None}


def main() -> None:
    limit = cupy.cuda.runtime.deviceGetLimit(0x06)  # cudaLimitPersistingL2CacheSize
    runs = []  # one per (member, B): builds, a verdict each, three sets of buffers
    for name, sizes in RUNS.items():
        m = parse(name)
        plain, el = row_copy(m, COPY), row_copy(m, {**COPY, "STORE_HINT": 3})
        for B in sizes:
            case = next(c for c in load_cases(m) if c.batch_size == B)
            d = table_build(m, B)
            kit, kit_el = kit_kernel(m, d), kit_kernel(m, {**d, "STORE_HINT": 3})
            ok = {n: family_check.check(f, case, str(dev)).passed
                  for n, f in (("kit", kit), ("kit+el", kit_el))}  # fmt: skip
            runs.append(dict(member=name, B=B, defines=d, plain=plain, el=el, kit=kit,
                             kit_el=kit_el, ok=ok, fresh=call_args(case), args=call_args(case),
                             el_args=call_args(case)))  # fmt: skip
    rows = []
    # Phase 1, before any evict_last store has run: the plain builds on fresh buffers, then
    # the STORE_HINT 3 builds on buffers of their own, under each flush.
    for r in runs:
        tag = {"member": r["member"], "batch_size": r["B"]}
        for victim, fn in (("row-copy", r["plain"]), ("kit", r["kit"])):
            if victim == "kit" and not r["ok"]["kit"]:
                print(f"{tag} kit: check failed, not timed")
                continue
            rows.append(dict(tag, victim=victim, phase="fresh",
                             flush=experiment.cold_us(fn, r["fresh"], dev, timer=timer)))  # fmt: skip
            print(rows[-1], flush=True)
    for r in runs:
        tag = {"member": r["member"], "batch_size": r["B"]}
        for who, fn in (("row-copy+el", r["el"]), ("kit+el", r["kit_el"])):
            if who == "kit+el" and not r["ok"]["kit+el"]:
                print(f"{tag} kit+el: check failed, not timed")
                continue
            row = dict(tag, victim=who, phase="own buffers")
            for cond, before in (("elflush", el_flush), ("flush", None)):
                row[cond] = experiment.cold_us(fn, r["el_args"], dev, before=before, timer=timer)
            rows.append(row)
            print(row, flush=True)
    # Phase 2: the plain builds on buffers a STORE_HINT 3 row copy writes before each flush.
    for r in runs:
        pollute, copy = run_of(r["el"], r["args"]), run_of(r["plain"], r["args"])
        flush = partial(timer.flush, dev)
        conds = {
            "flush": None,
            "plain>flush": steps(copy, flush),
            "el>flush": steps(pollute, flush),
            "el>reset>flush": steps(pollute, reset_persisting, flush),
            "el>elflush": steps(pollute, el_flush),
            "after": None,
        }
        for victim, fn in (("row-copy", r["plain"]), ("kit", r["kit"])):
            if victim == "kit" and not r["ok"]["kit"]:
                continue
            row = {"member": r["member"], "batch_size": r["B"], "victim": victim,
                   "phase": "polluted", "defines": r["defines"] if victim == "kit" else COPY}  # fmt: skip
            for cond, before in conds.items():
                row[cond] = experiment.cold_us(fn, r["args"], dev, before=before, timer=timer)
            rows.append(row)
            print({k: v for k, v in row.items() if k != "defines"}, flush=True)
    rec = experiment.record(
        HERE.name,
        {"persisting_l2_limit_bytes": limit, "rows": rows},
        sources=[ROOT / "kernels" / f for f in ("family_row_copy.cu", "gdn_decode_family.cu",
                                                "gdn_family.cuh", "gdn.cuh")]
        + [Path(__file__)],
        environment=capture(dev),
    )  # fmt: skip
    print("wrote", experiment.write(DATA, rec))


if __name__ == "__main__":
    main()
