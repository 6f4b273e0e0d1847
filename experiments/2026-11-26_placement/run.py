"""Does a kernel's cold-L2 time depend on where state and new_state sit in memory?

The full-54 runs show two speeds per batch size that alternate workload by workload (B=4:
3.25 vs 3.44 us for best; B=8: 4.6 vs 4.87), while FLA moves the other way. Part 1 replays
the bench's own allocation pattern (make_inputs + empty_outputs per contest workload, in file
order) and records each workload's buffer addresses beside its time. Part 2 places state and
new_state at chosen offsets inside one pool (order and gap), with every other input fresh.
Each (placement, impl) is checked against the fp64 oracle on those inputs before it is
timed; cold L2 with CUPTI (the contest method, 10/50/3), two passes. Writes results.json
(environment, method, source digests, times, addresses) to $OUT or beside this file.

    PYTHONPATH=. python experiments/2026-11-26_placement/run.py
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
from decodekit.measure.timing import DeviceTimer
from decodekit.measure.tuning import build
from decodekit.problem.workloads import empty_outputs, make_inputs, select
from decodekit.records import now
from decodekit.records.env import capture

HERE = (
    Path(__file__).resolve().parent
)  # the code; its results: data/experiments/2026-11-26_placement/
DATA = HERE.parents[1] / "data" / "experiments" / "2026-11-26_placement"
ROOT = HERE.parents[1]
COUNTS, PASSES, MB = (10, 50, 3), 2, 1 << 20
dev, timer = torch.device("cuda", 0), DeviceTimer()
rc = {"WARPS": 4, "ROWS_PER_WARP": 8, "LOAD_HINT": 3}
IMPLS = {
    "best": get("best").fn,
    "fla": get("fla").fn,
    "subwarp[2x4,L16,fast]": build(
        "subwarp", {"WARPS": 2, "ROWS_PER_WARP": 4, "LANES_PER_ROW": 16, "FAST_GATES": 1}
    ),
    "subwarp[4x8,L8]": build(
        "subwarp", {"WARPS": 4, "ROWS_PER_WARP": 8, "LANES_PER_ROW": 8, "LOAD_HINT": 1}
    ),
    "rowsplit[1x4,fast]": build("rowsplit", {"WARPS": 1, "ROWS_PER_WARP": 4, "FAST_GATES": 1}),
    "streaming[4x8,LH3]": build("streaming", {"WARPS": 4, "ROWS_PER_WARP": 8, "LOAD_HINT": 3}),
    "row_copy[4x8,LH3]": kernel_impl("row_copy.cu", "row_copy", split_shape(rc), rc),
}
COPY = {"row_copy[4x8,LH3]"}  # no math: timed without the oracle check
PLACEMENTS = {  # name -> (state offset, new_state offset) in units of (n bytes, MiB)
    "state<new, gap 0": ((0, 0), (1, 0)),
    "state>new, gap 0": ((1, 0), (0, 0)),
    "state<new, gap 1MiB": ((0, 0), (1, 1)),
    "state>new, gap 1MiB": ((1, 1), (0, 0)),
    "state<new, gap n": ((0, 0), (2, 0)),
    "state>new, gap n": ((2, 0), (0, 0)),
    "state<new, gap 64KiB": ((0, 0), (1, 1 / 16)),
    "state>new, gap 64KiB": ((1, 1 / 16), (0, 0)),
}


def time_us(fn, args) -> float:
    return experiment.cold_us(fn, args, dev, counts=COUNTS, timer=timer)


def where(args) -> dict:
    s, n = args["state"].data_ptr(), args["new_state"].data_ptr()
    return {"new_minus_state_MiB": (n - s) / MB, "state_mod_2MiB": s % (2 * MB),
            "new_mod_2MiB": n % (2 * MB)}  # fmt: skip


def timed(name, fn, w, args) -> float | None:
    if name not in COPY:
        ins = {k: v for k, v in args.items() if k not in ("output", "new_state")}
        res = check(fn, w, device=str(dev), inputs=ins)
        if not res.passed:
            print(f"  {name}: check failed: {res.summary()}")
            return None
    return time_us(fn, args)


natural, placed = [], []
for p in range(PASSES):
    for B in (1, 4, 8, 16):
        for w in [x for x in select("contest") if x.batch_size == B]:  # the bench's order
            args = {**make_inputs(w, dev), **empty_outputs(B, dev, poison=False)}
            row = {"pass": p, "batch_size": B, "workload": w.name, **where(args)}
            for name in ("best", "fla", "row_copy[4x8,LH3]"):
                row[name] = timed(name, IMPLS[name], w, args)
            natural.append(row)
            print(row, flush=True)
            del args
        w = [x for x in select("contest") if x.batch_size == B][0]
        base_args = make_inputs(w, dev)
        n = base_args["state"].numel() * 4
        pool = torch.empty((4 * n + 8 * MB) // 4, dtype=torch.float32, device=dev)
        skip = (-pool.data_ptr()) % (2 * MB) // 4  # start on a 2 MiB boundary
        for pname, (so, no) in PLACEMENTS.items():
            args = {**base_args, **empty_outputs(B, dev, poison=False)}
            for key, (k_n, k_mb) in (("state", so), ("new_state", no)):
                at = skip + int(k_n * n + k_mb * MB) // 4
                args[key] = pool[at : at + n // 4].view_as(base_args["state"])
            args["state"].copy_(base_args["state"])
            row = {"pass": p, "batch_size": B, "placement": pname, **where(args)}
            for name, fn in IMPLS.items():
                row[name] = timed(name, fn, w, args)
            placed.append(row)
            print(row, flush=True)
        del pool
digest = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:16]
          for p in sorted((ROOT / "kernels").glob("*.cu*")) if p.name != "empty.cu"}  # fmt: skip
doc = {
    "experiment": HERE.name,
    "date": now(),
    "method": "cupti-cold",
    "counts": COUNTS,
    "statistic": "median-then-mean",
    "environment": capture(dev),
    "git_commit": os.environ.get("DECODEKIT_GIT_COMMIT"),
    "source_digests": digest,
    "natural": natural,  # one row per contest workload as the bench allocates it
    "placed": placed,  # one row per (batch size, placement)
}
dest = Path(os.environ.get("OUT") or DATA) / "results.json"
dest.write_text(json.dumps(doc, indent=1) + "\n")
