"""GPU tests of the build path (issue 17): ``cupy.RawModule`` builds the cubin that the
compile-only path (``cuda.bindings`` NVRTC) builds, and the launcher runs RawModule's."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from decodekit.build.compile import default_arch, kernel_files
from decodekit.build.launch import kernel_impl

pytestmark = pytest.mark.gpu
ROOT = Path(__file__).resolve().parents[2]

# In a child process: CuPy reads CUPY_CACHE_DIR when imported, and its on-disk cache file is
# the one place RawModule's cubin can be read back (a 40-character SHA-1 hex, then the cubin).
_CHILD = """
import json, os, sys
import cupy
from decodekit.build.compile import compile_kernel
out = []
for source, defines in json.loads(sys.argv[1]):
    b = compile_kernel(source, sys.argv[2], defines)
    before = set(os.listdir(os.environ["CUPY_CACHE_DIR"]))
    cupy.RawModule(code=b.code, options=b.rawmodule_options).compile()
    (new,) = set(os.listdir(os.environ["CUPY_CACHE_DIR"])) - before
    with open(os.path.join(os.environ["CUPY_CACHE_DIR"], new), "rb") as f:
        cupy_cubin = f.read()[40:]
    out.append([source, defines, b.cubin.hex(), cupy_cubin.hex()])
print(json.dumps(out))
"""


def test_rawmodule_and_compile_only_give_the_same_cubin(tmp_path):
    cases = [(f.name, {}) for f in kernel_files()]
    cases += [("gdn_decode_rowsplit.cu", {"WARPS": 8}), ("gdn_decode_ordered.cu", {"WARPS": 2})]
    env = {**os.environ, "CUPY_CACHE_DIR": str(tmp_path / "cupy"),
           "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}  # fmt: skip
    (tmp_path / "cupy").mkdir()
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(cases), default_arch()],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(done.stdout)
    assert len(rows) == len(cases)
    for source, defines, ours, theirs in rows:
        ours, theirs = bytes.fromhex(ours), bytes.fromhex(theirs)
        # CuPy keeps the image less its final byte, a NUL (its nvrtc.getCUBIN counts a string
        # terminator); the driver loads either. Everything before it is byte for byte ours.
        assert theirs == ours[:-1] and ours[-1:] == b"\0", (source, defines, len(ours), len(theirs))


def test_the_launcher_runs_the_rawmodule_build():
    import cupy

    run = kernel_impl("empty.cu", "empty_kernel", lambda B: ((1,), (1,), 0), inplace_ok=True)
    fn = run._function(torch.cuda.current_device())
    assert isinstance(fn, cupy.RawKernel)
    attrs = run.func_attributes()
    assert attrs["num_regs"] == run.build.usage("empty_kernel").registers


def test_an_arch_the_gpu_cannot_run_is_refused_with_both_archs_named():
    other = "sm_100a" if default_arch() != "sm_100a" else "sm_90a"
    run = kernel_impl("empty.cu", "empty_kernel", lambda B: ((1,), (1,), 0), arch=other)
    with pytest.raises(RuntimeError, match=r"cupy.RawModule built SM \d+ .* compile-only build SM"):
        run._function(torch.cuda.current_device())
