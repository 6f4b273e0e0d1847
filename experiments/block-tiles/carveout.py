"""Does the shared-memory carveout hold the tiled builds back? Times family builds that use
shared tiles (BLOCK_TILES, PREFETCH 2, ROW_STREAM) and the table's winner at B = 64 and 256
of the fp32 pools, with the driver's default carveout and with the carveout set to all
shared memory (cudaFuncAttributePreferredSharedMemoryCarveout 100), cupti-cold (the
contest's method), checked first. Prints a table; full results to $OUT/carveout.json.

Run: python experiments/block-tiles/carveout.py  (on the GPU machine)
"""

import json
import os

import torch

from decodekit.impls.family_kernels import kit_kernel
from decodekit.measure import experiment, family_check
from decodekit.measure.family_check import _outputs
from decodekit.problem.family import SERVING, cases, make_inputs
from decodekit.records.env import capture

BUILDS = {
    "winner 2x8x16": dict(WARPS=2, ROWS_PER_WARP=8, LANES_PER_ROW=16, REDUCE=1),
    "prefetch2 4x4x32 i4": dict(
        WARPS=4, ROWS_PER_WARP=4, LANES_PER_ROW=32, REDUCE=1, PREFETCH=2, ITEMS=4
    ),
    "rowstream 4x4x32 mb16": dict(
        WARPS=4, ROWS_PER_WARP=4, LANES_PER_ROW=32, PREFETCH=2, ROW_STREAM=1, MIN_BLOCKS=16
    ),
    "tiles 4x4 R8": dict(WARPS=4, ROWS_PER_WARP=4, LANES_PER_ROW=32, BLOCK_TILES=8),
    "tiles 4x4 R8 mb16": dict(
        WARPS=4, ROWS_PER_WARP=4, LANES_PER_ROW=32, BLOCK_TILES=8, MIN_BLOCKS=16
    ),
    "tiles 4x8 R8": dict(WARPS=4, ROWS_PER_WARP=8, LANES_PER_ROW=32, BLOCK_TILES=8),
}
dev = torch.device("cuda", 0)
out = {"environment": capture(dev), "us": {}}
for m in (SERVING[0], SERVING[1]):
    for B in (64, 256):
        (case,) = cases(m, (B,))
        for name, d in BUILDS.items():
            k = kit_kernel(m, d)
            assert family_check.check(k, case, "cuda").passed, name
            fn = k._function(0)
            row = []
            for carve in (-1, 100):
                fn.preferred_shared_memory_carveout = carve
                x = make_inputs(case, "cuda")
                x.update(_outputs(case, x))
                row.append(experiment.cold_us(k, x, dev))
            fn.preferred_shared_memory_carveout = -1
            out["us"].setdefault(m.name, {}).setdefault(str(B), {})[name] = row
            print(
                f"{m.name[:32]:32s} B={B:3d} {name:24s} default {row[0]:8.2f}  "
                f"shared-max {row[1]:8.2f}",
                flush=True,
            )
with open(os.path.join(os.environ.get("OUT", "."), "carveout.json"), "w") as f:
    json.dump(out, f, indent=1)
