"""Where the host time of one ``best`` call goes, on a GPU (issue 17: <= 1.5x a bare CuPy
launch). Each line is the median host time per call over batches of 50 back-to-back calls
(the GPU drained between batches), the best of three runs; all measured in this one process.

Run: python experiments/host-dispatch/run.py  (a table; JSON to $OUT/host-dispatch.json)
"""

import json
import os
from pathlib import Path

import cupy
import numpy as np
import torch
from cuda.bindings import driver

from decodekit.build.launch import NAMES, bare_cupy_empty, empty_launcher
from decodekit.impls import registry
from decodekit.measure.host import per_call_us as _per_call_us
from decodekit.problem.workloads import empty_outputs, make_inputs


def per_call(fn, args=()):
    kwargs = dict(zip((*NAMES[:8], "scale", "output", "new_state"), args, strict=True))
    return min(_per_call_us(fn, kwargs, 20000) for _ in range(3))


inp, out = make_inputs(1, "cuda"), empty_outputs(1, "cuda", poison=False)
args = (*(inp[n] for n in NAMES[:8]), inp["scale"], out["output"], out["new_state"])
best = registry.get("best")
best(*args)
launcher = getattr(best.fn, "_by_b", {}).get(1)
empty = empty_launcher()
empty(*args)
stream = torch.cuda.current_stream().cuda_stream
rows = {"bare CuPy RawKernel call, empty kernel, no args": per_call(bare_cupy_empty())}
ef = empty._function(torch.cuda.current_device()).kernel.ptr
rows["cuda.bindings cuLaunchKernel, empty kernel, prepacked"] = per_call(
    lambda: driver.cuLaunchKernel(ef, 1, 1, 1, 1, 1, 1, 0, stream, empty._argv_ptr, 0)
)
rows["kit launcher, empty kernel (12 tensors)"] = per_call(empty, args)
if launcher is not None:
    la = launcher._launch_args
    rows[f"cuda.bindings cuLaunchKernel, {launcher.name} B=1, prepacked"] = per_call(
        lambda: driver.cuLaunchKernel(*la, stream, launcher._argv_ptr, 0)
    )
    rows[f"kit launcher {launcher.name} B=1 (direct)"] = per_call(launcher, args)
    rk = launcher._function(torch.cuda.current_device())
    grid, block = la[1:4], la[4:7]
    cargs = (*(t.data_ptr() for t in args[:8]), np.float32(args[8]),
             args[9].data_ptr(), args[10].data_ptr(), np.int32(1))  # fmt: skip
    rows[f"CuPy RawKernel call of {launcher.name}, 12 args"] = per_call(
        lambda: rk(grid, block, cargs, shared_mem=la[7])
    )
rows["best (dispatcher + launcher)"] = per_call(best, args)
bare = rows["bare CuPy RawKernel call, empty kernel, no args"]
for k, v in rows.items():
    print(f"{v:7.2f} us  {v / bare:5.2f}x  {k}")
if os.environ.get("OUT"):
    Path(os.environ["OUT"], "host-dispatch.json").write_text(
        json.dumps(
            {"gpu": torch.cuda.get_device_name(), "cupy": cupy.__version__, "host_us": rows},
            indent=1,
        )  # fmt: skip
    )
