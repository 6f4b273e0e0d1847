"""The environment a measurement was taken in, captured once per run.

GPU, SM count, L2 size (and its persisting set-aside), clocks (current and max, from ``nvidia-smi``), driver, CUDA, package
versions, git commit. No host name, user or path goes into a record.

>>> e = capture("cpu")
>>> e["gpu"], "torch" in e
('cpu', True)
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import os
import platform
import subprocess
from pathlib import Path

import torch

from decodekit.base.paths import ROOT, kernels_dir  # noqa: E402

KERNELS = kernels_dir()
PACKAGES = {
    "torch": "torch",
    "cupy": "cupy-cuda13x",
    "triton": "triton",
    "fla": "fla-core",
    "cupti": "cupti-python",
    "numpy": "numpy",
}
SMI_FIELDS = (
    "clocks.sm",
    "clocks.mem",
    "clocks.max.sm",
    "clocks.max.mem",
    "driver_version",
    "power.draw",
    "temperature.gpu",
)
SMI_KEYS = (
    "sm_clock_mhz",
    "mem_clock_mhz",
    "sm_clock_max_mhz",
    "mem_clock_max_mhz",
    "driver",
    "power_w",
    "temperature_c",
)


def version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _run(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, cwd=ROOT)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _number(s: str):
    try:
        return float(s) if "." in s else int(s)
    except ValueError:
        return s or None


def smi(index: int = 0) -> dict:
    """Clocks, driver, power and temperature of GPU ``index`` from ``nvidia-smi``."""
    out = _run(
        [
            "nvidia-smi",
            f"--id={index}",
            f"--query-gpu={','.join(SMI_FIELDS)}",
            "--format=csv,noheader,nounits",
        ]
    )
    if not out:
        return {}
    vals = [v.strip() for v in out.splitlines()[0].split(",")]
    return {k: (v if k == "driver" else _number(v)) for k, v in zip(SMI_KEYS, vals, strict=False)}


def git() -> dict:
    """Commit of the working tree and whether it had uncommitted changes (read-only).

    A copy of the tree without ``.git`` (a lent GPU machine) names its commit in the
    environment variable ``DECODEKIT_GIT_COMMIT``, set by whoever copied it."""
    if os.environ.get("DECODEKIT_GIT_COMMIT"):
        return {"git_commit": os.environ["DECODEKIT_GIT_COMMIT"], "git_dirty": None}
    commit = _run(["git", "rev-parse", "HEAD"])
    status = _run(["git", "status", "--porcelain", "--untracked-files=no"])
    return {"git_commit": commit, "git_dirty": bool(status) if status is not None else None}


def persisting_l2(index: int) -> int | None:
    """The device's L2 set-aside for persisting lines (``cudaLimitPersistingL2CacheSize``),
    where stores with an L2 evict_last policy stay; None where it cannot be read."""
    try:
        from cuda.bindings import runtime

        with torch.cuda.device(index):
            err, size = runtime.cudaDeviceGetLimit(runtime.cudaLimit.cudaLimitPersistingL2CacheSize)
        return int(size) if err == runtime.cudaError_t.cudaSuccess else None
    except Exception:  # no binding or no driver here: the record says unknown
        return None


def capture(device: str | torch.device = "cuda") -> dict:
    """Flat dict of the environment of ``device``, ready to merge into every record."""
    dev = torch.device(device)
    env: dict = {"python": platform.python_version(), "cuda": torch.version.cuda}
    env.update({name: version(dist) for name, dist in PACKAGES.items()})
    if dev.type == "cuda":
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        p = torch.cuda.get_device_properties(index)
        env.update(
            gpu=p.name,
            sm_count=p.multi_processor_count,
            l2_bytes=p.L2_cache_size,
            memory_bytes=p.total_memory,
            compute_capability=f"{p.major}.{p.minor}",
            l2_persisting_bytes=persisting_l2(index),
        )
        env.update(smi(index))
    else:
        env.update(gpu="cpu", sm_count=None, l2_bytes=None)
    env.update(git())
    return env


def gpu_slug(gpu: str) -> str:
    """File-name form of a GPU name.

    >>> gpu_slug("NVIDIA H100 80GB HBM3")
    'h100-80gb-hbm3'
    """
    words = gpu.replace("NVIDIA", "").lower().split()
    return "-".join("".join(c for c in w if c.isalnum()) for w in words) or "unknown"


def source_digest(what) -> str | None:
    """The one digest of what defines an implementation (first 16 hex of a sha256), so a
    bench record and a profile of the same code join: for a kit kernel (its ``.cu`` name, or an
    implementation with a ``source``) the file and every header in ``kernels/``; for another
    implementation (a peer) its adapter's module; None when neither is found.

    >>> source_digest("gdn_decode_subwarp.cu") == source_digest("gdn_decode_subwarp.cu")
    True
    >>> source_digest(None) is None
    True
    """
    if what is None:
        return None
    source = what if isinstance(what, str) else getattr(what, "source", None)
    if not source:
        factory = getattr(what, "factory", None)
        try:
            module = inspect.getsourcefile(factory) if factory is not None else None
        except TypeError:  # a builtin or C callable has no source file
            module = None
        if not module:
            return None
        return hashlib.sha256(Path(module).read_bytes()).hexdigest()[:16]
    path = KERNELS / source
    if not path.exists():
        return None
    h = hashlib.sha256(path.read_bytes())
    for header in sorted(KERNELS.glob("*.cuh")):
        h.update(header.name.encode())
        h.update(header.read_bytes())
    return h.hexdigest()[:16]
