"""Probe for issue 17 on a GPU: does cupy.RawModule(code=...) build the cubin the compile-only
path (cuda.bindings NVRTC) builds, and what does each launch binding cost on the host?

Run: python experiments/rawmodule-probe/run.py  (prints a table; JSON to $OUT/probe.json)
"""

import ctypes
import json
import os
import sys
import tempfile
from pathlib import Path

CACHE = tempfile.mkdtemp(prefix="cupy-cache-")
os.environ["CUPY_CACHE_DIR"] = CACHE  # read when cupy is imported: before the import

import cupy  # noqa: E402
import torch  # noqa: E402

from decodekit.build.compile import compile_kernel  # noqa: E402
from decodekit.build.cubin import cubin_arch  # noqa: E402
from decodekit.measure.host import per_call_us as _per_call_us  # noqa: E402

out = {"versions": {}}
import cuda.bindings  # noqa: E402

out["versions"] = dict(
    cupy=cupy.__version__,
    torch=torch.__version__,
    cuda_bindings=cuda.bindings.__version__,
    python=sys.version.split()[0],
    gpu=torch.cuda.get_device_name(),
)
try:
    import ncu_report  # noqa: F401

    out["versions"]["ncu_report"] = "importable"
except ImportError as e:
    out["versions"]["ncu_report"] = f"missing: {e}"
print(out["versions"])

from decodekit.build.compile import kernel_files  # noqa: E402

CASES = [(f.name, {}, None) for f in kernel_files()] + [
    ("gdn_decode_rowsplit.cu", {"WARPS": 8}, None)
]
rows = []
for src, defines, entry in CASES:
    b = compile_kernel(src, "sm_90a", defines)
    entry = entry or next(iter(b.resources))
    before = set(os.listdir(CACHE))
    m = cupy.RawModule(code=b.code, options=b.rawmodule_options)
    fn = m.get_function(entry)
    regs = fn.num_regs
    new = sorted(set(os.listdir(CACHE)) - before)
    data = Path(CACHE, new[0]).read_bytes()[40:] if new else b""
    row = dict(source=src, defines=defines, entry=entry, same_cubin=data == b.cubin, same_but_last_byte=data == b.cubin[:-1],
               cupy_arch=cubin_arch(data) if data else None, ours=len(b.cubin), cupy=len(data),
               regs_ours=b.resources[entry].registers, regs_cupy=regs,
               binary_version=fn.binary_version, files=new)  # fmt: skip
    if data and data != b.cubin:
        n = min(len(data), len(b.cubin))
        row["first_diff"] = next((i for i in range(n) if data[i] != b.cubin[i]), n)
    rows.append(row)
    print(row)
out["cubins"] = rows

# host cost per launch of the empty kernel, by binding
eb = compile_kernel("empty.cu", "sm_90a")
m = cupy.RawModule(code=eb.code, options=eb.rawmodule_options)
rk = m.get_function("empty_kernel")
ptr = rk.kernel.ptr
stream = torch.cuda.current_stream().cuda_stream
buf = ctypes.create_string_buffer(100)
argv = (ctypes.c_void_p * 12)(*(ctypes.addressof(buf) + 8 * i for i in range(12)))
argv_ptr = ctypes.addressof(argv)
from cuda.bindings import driver as cbd  # noqa: E402

libcuda = ctypes.CDLL("libcuda.so.1")
cu = libcuda.cuLaunchKernel
cu.restype = ctypes.c_int
cu.argtypes = [ctypes.c_void_p] + [ctypes.c_uint] * 7 + [ctypes.c_void_p] * 3


def via_cuda_bindings():
    (err,) = cbd.cuLaunchKernel(ptr, 1, 1, 1, 1, 1, 1, 0, stream, argv_ptr, 0)
    if err:
        raise RuntimeError(err)


def via_ctypes():
    if cu(ptr, 1, 1, 1, 1, 1, 1, 0, stream, argv_ptr, None):
        raise RuntimeError("launch")


import numpy as np  # noqa: E402

args12 = (*([0] * 8), np.float32(0.1), 0, 0, np.int32(1))
bare = cupy.RawKernel(eb.code, "empty_kernel", options=eb.rawmodule_options)
timings = {}
with cupy.cuda.ExternalStream(stream):
    for name, fn in [
        ("bare cupy RawKernel (no args)", lambda: bare((1,), (1,), ())),
        ("RawModule fn, 12 args", lambda: rk((1,), (1,), args12)),
        ("cuda.bindings cuLaunchKernel prepacked", via_cuda_bindings),
        ("ctypes libcuda cuLaunchKernel prepacked", via_ctypes),
    ]:
        timings[name] = min(_per_call_us(fn, {}, 20000) for _ in range(3))
try:
    from cupy_backends.cuda.api import driver as cbk

    timings["cupy_backends launchKernel prepacked (old path)"] = min(
        _per_call_us(
            lambda: cbk.launchKernel(ptr, 1, 1, 1, 1, 1, 1, 0, stream, argv_ptr, 0), {}, 20000
        )
        for _ in range(3)
    )
except Exception as e:  # noqa: BLE001
    print("old path:", e)
from decodekit.build.launch import empty_launcher  # noqa: E402
from decodekit.problem.workloads import empty_outputs, make_inputs  # noqa: E402

inp, o = make_inputs(1, "cuda"), empty_outputs(1, "cuda", poison=False)
kargs = {**inp, **o}
timings["kit empty_launcher (current launch.py)"] = min(
    _per_call_us(empty_launcher(), kargs, 20000) for _ in range(3)
)
out["host_us"] = timings
for k, v in timings.items():
    print(f"{v:7.3f} us  {k}")
od = os.environ.get("OUT")
if od:
    Path(od, "probe.json").write_text(json.dumps(out, indent=1, default=str))
