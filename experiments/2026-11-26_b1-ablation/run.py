"""Where does a subwarp kernel's B=1 time above a row copy go? Times ablate.cu (beside this
file) with each ABLATE bit, the kit's row-copy floor kernel and FLA, cold L2 with CUPTI
(the contest method, 10/50/3), in two passes over the list to expose drift; writes
results.json (environment, method, source digests, times) to $OUT or beside this file.

    PYTHONPATH=. python experiments/2026-11-26_b1-ablation/run.py
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
from decodekit.measure.floors import ROW_COPY_CONFIGS
from decodekit.measure.timing import DeviceTimer
from decodekit.problem.workloads import empty_outputs, make_inputs, synthetic
from decodekit.records import now
from decodekit.records.env import capture

HERE = (
    Path(__file__).resolve().parent
)  # the code; its results: data/experiments/2026-11-26_b1-ablation/
DATA = HERE.parents[1] / "data" / "experiments" / "2026-11-26_b1-ablation"
SHAPES = ((2, 4, 16, 1), (4, 8, 8, 0))  # WARPS, ROWS_PER_WARP, LANES_PER_ROW, FAST_GATES
BITS = (0, 1, 2, 4, 8, 16, 7, 23, 32, 63)
BATCH_SIZES, PASSES, COUNTS = (1, 4, 8), 2, (10, 50, 3)
dev, timer = torch.device("cuda", 0), DeviceTimer()


def ablate(w, r, n, f, bits):
    d = {"WARPS": w, "ROWS_PER_WARP": r, "LANES_PER_ROW": n, "FAST_GATES": f, "ABLATE": bits}
    return kernel_impl(str(HERE / "ablate.cu"), "ablate", split_shape(d), d, inplace_ok=True)


configs = {f"subwarp[{w}x{r},L{n},fast{f}] ablate={b}": ablate(w, r, n, f, b)
           for w, r, n, f in SHAPES for b in BITS}  # fmt: skip
for d in ROW_COPY_CONFIGS:
    label = ",".join(f"{k}={v}" for k, v in d.items())
    configs[f"row_copy[{label}]"] = kernel_impl("row_copy.cu", "row_copy", split_shape(d), d)
configs["fla"] = get("fla").fn
results: dict = {}
for _ in range(PASSES):
    for B in BATCH_SIZES:
        x = make_inputs(synthetic(B), dev)
        out = empty_outputs(B, dev, poison=False)
        for name, fn in configs.items():
            us = experiment.cold_us(fn, {**x, **out}, dev, counts=COUNTS, timer=timer)
            results.setdefault(name, {}).setdefault(str(B), []).append(us)
digest = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:16]
          for p in (HERE / "ablate.cu", HERE.parents[1] / "kernels" / "row_copy.cu")}  # fmt: skip
doc = {
    "experiment": HERE.name,
    "date": now(),
    "method": "cupti-cold",
    "counts": COUNTS,
    "statistic": "median-then-mean",
    "passes": PASSES,
    "environment": capture(dev),
    "git_commit": os.environ.get("DECODEKIT_GIT_COMMIT"),
    "source_digests": digest,
    "us": results,  # name -> batch size -> one time per pass
}
dest = Path(os.environ.get("OUT") or DATA) / "results.json"
dest.write_text(json.dumps(doc, indent=1) + "\n")
print(f"{'config':<58}" + "".join(f"{'B=' + str(b):>14}" for b in BATCH_SIZES))
for name, by in results.items():
    print(f"{name:<58}" + "".join(f"{' / '.join(map(str, by[str(b)])):>14}" for b in BATCH_SIZES))
