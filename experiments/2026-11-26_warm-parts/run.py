"""Which of a call's memory accesses hold B=1 and B=4 above the row copy?

Best at B=1 runs 0.2 us above a row copy with the same grid (2.08 against 1.87), and every
shape and reduction scheme swept lands within 2% of 2.08. Here each target is timed with the
contest method (cupti-cold, 10/50/3, two passes) while one part of its memory is put in L2
between the flush and the call (decodekit.measure.experiment.cold_us's ``before`` hook):
  cold         the flush only (the contest's condition);
  control      a copy of two unrelated buffers of the state's size: whatever any kernel
               between the flush and the call changes (it drains dirty lines of the flush);
  new-read     new_state read (its lines in L2, clean): stores no longer allocate lines;
  new-zero     new_state zeroed (its lines in L2, dirty);
  small        q, k, v, a, b, A_log and dt_bias read: the small loads hit L2;
  state        the state read: the state loads hit L2 (what is left is launch and math);
  all          small, state and new-read together.
Targets: best and two EARLY_STORE builds of its B=1 shape (kernels/gdn_decode_subwarp.cu as
of commit 66557a5, which ran this; the axis was removed after it, so rerun from there),
the row copy and FLA; kit kernels and FLA are checked against the fp64 oracle first.
Writes results.json (decodekit.measure.experiment.record) to $OUT or beside this file.

    PYTHONPATH=. python experiments/2026-11-26_warm-parts/run.py
"""

from pathlib import Path

import torch

from decodekit.build.launch import kernel_impl
from decodekit.impls.registry import get
from decodekit.impls.variants import split_shape
from decodekit.measure import experiment
from decodekit.measure.tuning import build
from decodekit.records.env import capture

HERE = (
    Path(__file__).resolve().parent
)  # the code; its results: data/experiments/2026-11-26_warm-parts/
DATA = HERE.parents[1] / "data" / "experiments" / "2026-11-26_warm-parts"
ROOT = HERE.parents[1]
PASSES = 2
dev = torch.device("cuda", 0)
rc = {"WARPS": 4, "ROWS_PER_WARP": 4, "LOAD_HINT": 1}
B1 = {"WARPS": 2, "ROWS_PER_WARP": 4, "LANES_PER_ROW": 16, "FAST_GATES": 1}
TARGETS = {
    "best": get("best").fn,
    "subwarp[2x4,L16,fast,ES1]": build("subwarp", {**B1, "EARLY_STORE": 1}),
    "subwarp[2x4,L16,fast,ES2]": build("subwarp", {**B1, "EARLY_STORE": 2}),
    "row_copy[4x4,LH1]": kernel_impl("row_copy.cu", "row_copy", split_shape(rc), rc),
    "fla": get("fla").fn,
}
NO_CHECK = {"row_copy[4x4,LH1]"}
SMALL = ("q", "k", "v", "a", "b", "A_log", "dt_bias")


def conditions(args: dict, other: dict) -> dict:
    def read(*names):
        return lambda: [args[n].float().sum() for n in names]

    return {
        "cold": None,
        "control": lambda: other["new_state"].copy_(other["state"]),
        "new-read": read("new_state"),
        "new-zero": lambda: args["new_state"].zero_(),
        "small": read(*SMALL),
        "state": read("state"),
        "all": read(*SMALL, "state", "new_state"),
    }


results = experiment.sweep(TARGETS, (1, 4), conditions, dev, PASSES, NO_CHECK)
srcs = [*sorted((ROOT / "kernels").glob("*.cu*")), Path(__file__)]
rec = experiment.record(HERE.name, {"passes": PASSES, "us": results}, srcs, capture(dev))
print("wrote", experiment.write(DATA, rec))
