"""Where do B=1 warps wait? Nsight Compute warp-state and scheduler statistics.

At B=1 every kit kernel runs 0.15-0.2 us above the row copy with the same grid, with the
inputs cold or all in L2 alike (2026-11-26_warm-parts), and splitting a block's rows over
more warps makes it slower, not faster (ordered 4 warps x 2 rows: 2.61 us against 2 x 4:
2.03). This profiles, at B=1 with cold caches (ncu --cache-control all, --clock-control
base), each target once: the row copy, subwarp's and ordered's B=1 shape and ordered with 4
warps x 2 rows, and records ncu's WarpStateStats, SchedulerStats, LaunchStats, Occupancy and
SpeedOfLight sections per kernel (ncu.csv) with the run's environment (results.json).

    PYTHONPATH=. python experiments/2026-11-26_b1-stalls/run.py
"""

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import torch

from decodekit.build.launch import kernel_impl
from decodekit.impls.variants import split_shape
from decodekit.measure import experiment
from decodekit.measure.check import check
from decodekit.measure.ncu import find_ncu, ncu_version
from decodekit.measure.tuning import build
from decodekit.problem.workloads import empty_outputs, make_inputs, synthetic
from decodekit.records.env import capture

HERE = (
    Path(__file__).resolve().parent
)  # the code; its results: data/experiments/2026-11-26_b1-stalls/
DATA = HERE.parents[1] / "data" / "experiments" / "2026-11-26_b1-stalls"
ROOT = HERE.parents[1]
rc = {"WARPS": 4, "ROWS_PER_WARP": 4, "LOAD_HINT": 1}
ORD = {"LANES_PER_ROW": 16, "LOAD_HINT": 1, "STORE_HINT": 0}
TARGETS = {  # launched in this order; ncu's kernel IDs follow it
    "row_copy[4x4,LH1]": lambda: kernel_impl("row_copy.cu", "row_copy", split_shape(rc), rc),
    "subwarp[2x4,L16,fast]": lambda: build(
        "subwarp", {"WARPS": 2, "ROWS_PER_WARP": 4, "LANES_PER_ROW": 16, "FAST_GATES": 1}
    ),
    "ordered[2x4,L16]": lambda: build("ordered", {"WARPS": 2, "ROWS_PER_WARP": 4, **ORD}),
    "ordered[4x2,L16]": lambda: build("ordered", {"WARPS": 4, "ROWS_PER_WARP": 2, **ORD}),
    "ordered[1x4,L16]": lambda: build("ordered", {"WARPS": 1, "ROWS_PER_WARP": 4, **ORD}),
}
SECTIONS = ("WarpStateStats", "SchedulerStats", "LaunchStats", "Occupancy", "SpeedOfLight")
STALLS = (
    "long_scoreboard",
    "short_scoreboard",
    "wait",
    "math_pipe_throttle",
    "mio_throttle",
    "lg_throttle",
    "barrier",
    "membar",
    "no_instruction",
    "not_selected",
    "selected",
    "dispatch_stall",
    "drain",
    "imc_miss",
    "branch_resolving",
    "tex_throttle",
)
METRICS = ",".join(f"smsp__average_warps_issue_stalled_{s}_per_issue_active.ratio" for s in STALLS)
dev = torch.device("cuda", 0)

if os.environ.get("B1_STALLS_CHILD"):  # under ncu: one call of each target
    fns = {n: make() for n, make in TARGETS.items()}
    w = synthetic(1)
    args = {**make_inputs(w, dev), **empty_outputs(1, dev, poison=False)}
    for fn in fns.values():
        fn(**args)
    torch.cuda.synchronize()
    sys.exit(0)

for n, make in TARGETS.items():
    if not n.startswith("row_copy"):
        res = check(make(), synthetic(1), device=str(dev))
        assert res.passed, f"{n}: {res.summary()}"
cmd = [
    find_ncu(),
    "--cache-control",
    "all",
    "--clock-control",
    "base",
    "--csv",
    "--page",
    "details",
    "-k",
    "regex:^(row_copy|gdn_decode_subwarp|gdn_decode_ordered)$",
]
cmd += [a for s in SECTIONS for a in ("--section", s)] + ["--metrics", METRICS]
cmd += [sys.executable, __file__]
proc = subprocess.run(
    cmd, capture_output=True, text=True, env={**os.environ, "B1_STALLS_CHILD": "1"}
)
text = proc.stdout[proc.stdout.find('"ID"') :]
rows = list(csv.DictReader(io.StringIO(text)))
names = list(TARGETS)
out: dict = {}
for r in rows:
    name = names[int(r["ID"])] if int(r["ID"]) < len(names) else r["ID"]
    out.setdefault(name, {})[f"{r['Section Name']}: {r['Metric Name']} [{r['Metric Unit']}]"] = r[
        "Metric Value"
    ]
dest = Path(os.environ.get("OUT") or DATA)
(dest / "ncu.csv").write_text(text)
rec = experiment.record(
    HERE.name,
    {
        "ncu": ncu_version(),
        "command": " ".join(cmd[1:]),
        "returncode": proc.returncode,
        "metrics": out,
    },
    [*sorted((ROOT / "kernels").glob("*.cu*")), Path(__file__)],
    capture(dev),
    method="ncu --cache-control all --clock-control base, one cold call per target at B=1",
)
experiment.write(DATA, rec)
keys = (
    "stalled",
    "Duration",
    "Warp Cycles Per Issued Instruction",
    "Stall",
    "Issued Warp",
    "No Eligible",
    "Registers",
    "Waves",
    "Achieved Occupancy",
    "Executed Ipc",
)
for name, m in out.items():
    print("==", name)
    for k, v in m.items():
        if any(x in k for x in keys):
            print("  ", k, v)
if proc.returncode:
    print(proc.stderr[-3000:])
