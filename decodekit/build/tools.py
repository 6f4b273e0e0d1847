"""Where NVIDIA's tools and headers are, found one way for the whole kit.

``cuda.pathfinder`` (NVIDIA's public locator, a dependency of ``cuda-bindings`` and CuPy)
first: the pip wheels of this interpreter, conda's layout, ``$CUDA_HOME`` / ``$CUDA_PATH``;
then ``PATH``; then ``<CUDA home>/bin`` and, for Nsight Compute, its versioned folders under
``/opt/nvidia``. An explicit path (``exe="/x/ncu"``) is used as given.

>>> find_tool("no-such-tool", hint="install it")
Traceback (most recent call last):
...
decodekit.build.tools.ToolMissing: no-such-tool not found (looked with cuda.pathfinder, on PATH, in the CUDA home's bin/); install it
"""

from __future__ import annotations

import glob
import os
import shutil
from functools import lru_cache
from pathlib import Path


class ToolMissing(RuntimeError):
    """A tool the command needs is not installed; the message says how to get it."""


def _pathfinder():
    try:
        import cuda.pathfinder as pf
    except ImportError:
        return None
    return pf


def cuda_home() -> Path | None:
    pf = _pathfinder()
    home = pf.get_cuda_path_or_home() if pf is not None else None
    home = home or os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if home:
        return Path(home)
    return Path("/usr/local/cuda") if Path("/usr/local/cuda").is_dir() else None


def find_tool(name: str, exe: str | None = None, *, hint: str = "") -> str:
    """The path of NVIDIA tool ``name`` (``nvdisasm``, ``cuobjdump``, ``ncu``,
    ``compute-sanitizer``); ``exe`` overrides. Raises :class:`ToolMissing` with ``hint``."""
    if exe and exe != name:
        hit = shutil.which(exe)
        if hit is None:
            raise ToolMissing(f"{exe!r} not found on PATH, nor an executable file by that path")
        return hit
    pf = _pathfinder()
    if pf is not None and name in getattr(pf, "SUPPORTED_BINARY_UTILITIES", ()):
        hit = pf.find_nvidia_binary_utility(name)
        if hit:
            return str(hit)
    hit = shutil.which(name)
    if hit:
        return hit
    home = cuda_home()
    extra = [home / "bin" / name] if home is not None else []
    if name == "ncu":
        extra += [Path(p) for p in sorted(glob.glob("/opt/nvidia/nsight-compute/*/ncu"))[::-1]]
    for cand in extra:
        if cand.is_file() and os.access(cand, os.X_OK):
            return str(cand)
    raise ToolMissing(
        f"{name} not found (looked with cuda.pathfinder, on PATH, in the CUDA home's bin/)"
        + (f"; {hint}" if hint else "")
    )


@lru_cache(maxsize=1)
def cuda_include_dir() -> Path:
    """The folder holding ``cuda_bf16.h`` (the nvidia-cuda-runtime wheel, conda, CUDA home)."""
    pf = _pathfinder()
    found = pf.find_nvidia_header_directory("cudart") if pf is not None else None
    candidates = [Path(found)] if found else []
    home = cuda_home()
    if home is not None:
        candidates += [home / "include", home / "targets" / "x86_64-linux" / "include"]
    for c in candidates:
        if (c / "cuda_bf16.h").is_file():
            return c
    raise FileNotFoundError(
        "cuda_bf16.h not found: pip install nvidia-cuda-runtime (or pip install -e '.[gpu]'); "
        f"looked in {', '.join(map(str, candidates)) or 'cuda.pathfinder (not installed)'}"
    )
