"""Is fetching a kernel's own instructions from DRAM part of its cold-L2 time at small B?

The B=1 ablation found time tracking code size more than work. Here every target is timed
three ways, cold L2 with CUPTI (the contest method, 10/50/3), two passes:
  cold       the L2 flush only (the contest's condition);
  warm-code  the flush, then the same kernel once on other buffers of the same size, so its
             instructions sit in L2 and the SMs' instruction caches while the timed call's
             data stays cold;
  control    the flush, then a different kernel (subwarp 4x8, L8) on those other buffers:
             any kernel running between the flush and the call, without this one's code.
Targets: spin.cu (beside this file) with 0 to 4096 FMAs after one cold load, the kit's B=1
and B=4 winners and other shapes, the row copy and FLA. Kit kernels and FLA are checked
against the fp64 oracle first. Writes results.json (environment, method, source digests,
times, code sizes) to $OUT or beside this file.

    PYTHONPATH=. python experiments/2026-11-26_code-fetch/run.py
"""

import hashlib
import json
import os
from pathlib import Path

import torch

from decodekit.build.launch import kernel_impl
from decodekit.impls.registry import get
from decodekit.impls.variants import split_shape
from decodekit.measure import experiment
from decodekit.measure.check import check
from decodekit.measure.timing import DeviceTimer, Target
from decodekit.measure.tuning import build
from decodekit.problem.workloads import empty_outputs, make_inputs, synthetic
from decodekit.records import now
from decodekit.records.env import capture

HERE = (
    Path(__file__).resolve().parent
)  # the code; its results: data/experiments/2026-11-26_code-fetch/
DATA = HERE.parents[1] / "data" / "experiments" / "2026-11-26_code-fetch"
ROOT = HERE.parents[1]
COUNTS, PASSES = (10, 50, 3), 2
dev, timer = torch.device("cuda", 0), DeviceTimer()


def spin(n):
    return kernel_impl(str(HERE / "spin.cu"), "spin", lambda B: ((128 * B,), (64,), 0),
                       {"N_FMA": n}, inplace_ok=True)  # fmt: skip


rc = {"WARPS": 4, "ROWS_PER_WARP": 4, "LOAD_HINT": 1}
B1 = {"WARPS": 2, "ROWS_PER_WARP": 4, "LANES_PER_ROW": 16, "FAST_GATES": 1}
L8 = {"WARPS": 4, "ROWS_PER_WARP": 8, "LANES_PER_ROW": 8, "LOAD_HINT": 1}
TARGETS = {f"spin[{n}]": spin(n) for n in (0, 256, 1024, 4096)}
TARGETS.update({
    "subwarp[2x4,L16,fast]": build("subwarp", B1),
    "subwarp[4x8,L8]": build("subwarp", L8),
    "rowsplit[1x4,fast]": build("rowsplit", {"WARPS": 1, "ROWS_PER_WARP": 4, "FAST_GATES": 1}),
    "row_copy[4x4,LH1]": kernel_impl("row_copy.cu", "row_copy", split_shape(rc), rc),
    "fla": get("fla").fn,
})  # fmt: skip
NO_CHECK = {k for k in TARGETS if k.startswith(("spin", "row_copy"))}
CONTROL = TARGETS["subwarp[4x8,L8]"]


def trial_us(t: Target, before) -> float:
    return experiment.cold_us(t.fn, t.kwargs, t.device, before, COUNTS, timer)


def sass_instructions(fn) -> int | None:
    """Instructions in the kernel's SASS (None for FLA, or without cuobjdump)."""
    from decodekit.build import sass

    b = getattr(fn, "build", None)
    if b is None:
        return None
    try:
        return len(sass.disassemble(str(b.source), b.arch, dict(fn.defines or {})))
    except sass.ToolMissing:
        return None


results: dict = {}
for p in range(PASSES):
    for B in (1, 4):
        w = synthetic(B)
        args = {**make_inputs(w, dev), **empty_outputs(B, dev, poison=False)}
        other = {**make_inputs(w, dev, seed=1), **empty_outputs(B, dev, poison=False)}
        for name, fn in TARGETS.items():
            if p == 0 and name not in NO_CHECK:
                res = check(fn, w, device=str(dev))
                if not res.passed:
                    print(f"{name} B={B}: check failed: {res.summary()}")
                    continue
            t = Target(fn, args, dev)
            row = results.setdefault(name, {}).setdefault(str(B), {})
            for cond, before in (
                ("cold", None),
                ("warm-code", lambda fn=fn, o=other: fn(**o)),
                ("control", lambda o=other: CONTROL(**o)),
            ):
                row.setdefault(cond, []).append(trial_us(t, before))
            print(name, B, {c: v[-1] for c, v in row.items()}, flush=True)
sizes = {k: sass_instructions(f) for k, f in TARGETS.items()}
srcs = [HERE / "spin.cu", *sorted((ROOT / "kernels").glob("*.cu*"))]
doc = {
    "experiment": HERE.name,
    "date": now(),
    "method": "cupti-cold (flush replaced per condition, see the docstring)",
    "counts": COUNTS,
    "statistic": "median-then-mean",
    "passes": PASSES,
    "environment": capture(dev),
    "git_commit": os.environ.get("DECODEKIT_GIT_COMMIT"),
    "source_digests": {p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:16] for p in srcs},
    "sass_instructions": sizes,
    "us": results,  # target -> batch size -> condition -> one time per pass
}
dest = Path(os.environ.get("OUT") or DATA) / "results.json"
dest.write_text(json.dumps(doc, indent=1) + "\n")
