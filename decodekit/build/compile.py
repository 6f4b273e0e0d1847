"""Compile ``kernels/*.cu`` to a cubin with NVRTC, with or without a GPU.

NVRTC comes from the ``nvidia-cuda-nvrtc`` wheel through NVIDIA's public binding
(:mod:`decodekit.build.nvrtc`, ``cuda.bindings``), ``cuda_bf16.h`` from the CUDA headers that
:mod:`decodekit.build.tools` finds. Options: C++17, line info, ``-I kernels/``, ``-D`` defines,
``ptxas -v`` for spill bytes where NVRTC prints them, and what ``cupy.RawModule`` adds to
every compile, so the cubin built here is the one the GPU runs (:mod:`decodekit.build.launch`
builds that one from :attr:`Build.code` and :attr:`Build.rawmodule_options`). Registers, the
local frame and shared memory are read from the cubin's own notes (:mod:`decodekit.build.cubin`).
The arch is read back from the cubin and must be the one asked for.

Builds are keyed on a digest of the source and its local includes, the options and the NVRTC
version: in memory, and on disk (:mod:`decodekit.build.cubin_cache`), so a second process (a
second ``tune``) reuses what the first built. A repeat call costs one ``stat`` per file:
the digest is recomputed only when a file's mtime or size changed, so editing a ``.cu`` and
calling again rebuilds with no restart.

>>> build = compile_kernel("empty.cu", arch="sm_100a")
>>> build.arch_from_cubin
'sm_100a'
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from decodekit.base.paths import ROOT, kernels_dir, relative  # noqa: E402,F401
from decodekit.build import cubin_cache, nvrtc
from decodekit.build.cubin import (  # noqa: F401  (cubin_arch, parse_ptxas: part of this API)
    Resources,
    cubin_arch,
    elf_resources,
    entry_names,
    parse_ptxas,
)
from decodekit.build.tools import cuda_include_dir  # noqa: F401  (part of this API)

KERNELS_DIR = kernels_dir()
FLAGS = ("-std=c++17", "-lineinfo", "-Xptxas=-v")
_ARCH_RE = re.compile(r"^sm_(\d+)([af]?)$")
_INCLUDE_RE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)
# a tunable knob: "#ifndef NAME" followed by "#define NAME <int>"
_KNOB_RE = re.compile(
    r"^\s*#\s*ifndef\s+([A-Z_][A-Z0-9_]*)\s*\n\s*#\s*define\s+\1\s+(-?\d+)\b", re.M
)


class CompileError(RuntimeError):
    """NVRTC rejected a kernel; the message shows ``file:line: error`` and the source line.

    ``file`` and ``line`` locate the first error; ``log`` is the full compiler log.
    """

    def __init__(self, message: str, *, file: str, line: int | None, log: str):
        super().__init__(message)
        self.file, self.line, self.log = file, line, log


@dataclass(frozen=True)
class Build:
    """One compiled kernel file: the cubin and what is known about it."""

    source: Path
    arch: str  # requested, e.g. "sm_90a"
    arch_from_cubin: str  # read back from the cubin's ELF header and notes
    options: tuple[str, ...]  # every option NVRTC got, CuPy's additions included
    digest: str  # sources + includes + options + NVRTC version
    resources: dict[str, Resources]  # per entry point, from the cubin's .nv.info notes
    files: tuple[Path, ...]  # the source and the local headers it includes
    stamp: tuple = field(repr=False)  # (mtime_ns, size) per file when built
    cubin: bytes = field(repr=False)
    log: str = field(repr=False)
    seconds: float = 0.0  # NVRTC wall time (of the build that made the cached cubin)
    code: str = field(default="", repr=False)  # the text NVRTC compiled (see _code)
    from_cache: bool = False  # the cubin came from the disk cache

    @property
    def rawmodule_options(self) -> tuple[str, ...]:
        """The options to hand ``cupy.RawModule``: ours, less what CuPy adds itself."""
        return tuple(o for o in self.options if o not in nvrtc.CUPY_ADDS)

    def usage(self, entry: str | None = None) -> Resources:
        """Resource usage of ``entry`` (the only entry when None)."""
        if entry is None and len(self.resources) == 1:
            return next(iter(self.resources.values()))
        if entry not in self.resources:
            raise KeyError(
                f"argument 'entry': {entry!r} not in {self.source.name}: {sorted(self.resources)}"
            )
        return self.resources[entry]

    @property
    def stale(self) -> bool:
        """True when the source or an included header changed since this build."""
        return _stamp(self.files) != self.stamp


def kernel_files() -> list[Path]:
    """Every ``kernels/*.cu``, sorted."""
    return sorted(KERNELS_DIR.glob("*.cu"))


@lru_cache(maxsize=1)
def _gpu_arch() -> str | None:
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        major, minor = torch.cuda.get_device_capability()
    except Exception:  # a broken CUDA install means "no GPU" here, not a crash
        return None
    # The arch-specific suffix unlocks wgmma / tcgen05 and friends; the cubin then runs only
    # on that exact chip, which is what a contest kernel wants.
    suffix = "a" if (major, minor) in ((9, 0), (10, 0)) else ""
    return f"sm_{major}{minor}{suffix}"


def default_arch() -> str:
    """The present GPU's arch (``sm_90a`` on H100, ``sm_100a`` on B200); raises without a GPU."""
    arch = _gpu_arch()
    if arch is None:
        raise ValueError(
            "argument 'arch': no CUDA GPU visible to pick it from; pass "
            'arch="sm_90a" (Hopper) or arch="sm_100a" (Blackwell)'
        )
    return arch


@lru_cache(maxsize=64)
def check_arch(arch: str) -> str:
    """``arch`` if NVRTC can build a cubin for it, else ValueError listing what it can."""
    m = _ARCH_RE.match(str(arch))
    if not m or int(m.group(1)) not in nvrtc.supported_archs():
        names = ", ".join(f"sm_{a}" for a in nvrtc.supported_archs())
        raise ValueError(
            f"argument 'arch': expected sm_<NN>[a|f] with NN one of NVRTC's "
            f"({names}), e.g. 'sm_90a' or 'sm_100a'; got {arch!r}"
        )
    return arch


_MEMO: dict[tuple, Build] = {}  # (path, arch, defines) -> latest build
_BY_DIGEST: dict[str, Build] = {}


def compile_kernel(
    source: str | os.PathLike,
    arch: str | None = None,
    defines: dict | None = None,
    *,
    kernels_dir: str | os.PathLike | None = None,
) -> Build:
    """Compile ``source`` (a file in ``kernels/`` or a path) for ``arch`` (default: the GPU's).

    ``defines`` become ``-DNAME=VALUE`` (``-DNAME`` for True/None). Raises
    :class:`CompileError` on a compiler error and ValueError on a bad arch, a bad define, or a
    cubin whose arch is not the one requested.
    """
    kdir = Path(kernels_dir) if kernels_dir is not None else KERNELS_DIR
    path = _resolve(source, kdir)
    arch = check_arch(arch) if arch is not None else default_arch()
    dkey = tuple(sorted((str(k), v) for k, v in (defines or {}).items()))
    key = (path, arch, dkey, kdir)
    hit = _MEMO.get(key)
    try:
        if hit is not None and _stamp(hit.files) == hit.stamp:
            return hit
    except OSError:
        pass  # a file vanished: rebuild, which reports it
    build = _build(path, arch, dkey, kdir)
    _MEMO[key] = build
    return build


@lru_cache(maxsize=256)
def _resolve(source: str | os.PathLike, kdir: Path) -> Path:
    p = Path(source)
    for cand in ([kdir / p, kdir / f"{p}.cu"] if not p.is_absolute() else []) + [p]:
        if cand.is_file():
            return cand.resolve()
    known = ", ".join(f.name for f in sorted(kdir.glob("*.cu")))
    raise FileNotFoundError(
        f"argument 'source': no kernel {str(source)!r} in {kdir} (known: {known}) and no such file"
    )


def _stamp(files: tuple[Path, ...]) -> tuple:
    return tuple((s.st_mtime_ns, s.st_size) for s in map(os.stat, files))


def _local_includes(path: Path, search: list[Path]) -> list[Path]:
    """The source and every header it pulls in with ``#include "..."`` found under ``search``."""
    seen, todo = [path], [path]
    while todo:
        cur = todo.pop()
        for name in _INCLUDE_RE.findall(cur.read_text()):
            for d in [cur.parent, *search]:
                cand = (d / name).resolve()
                if cand.is_file():
                    if cand not in seen:
                        seen.append(cand)
                        todo.append(cand)
                    break
    return seen


def declared_defines(source: str | os.PathLike, kernels_dir=None) -> dict[str, int]:
    """The knobs a kernel file declares, with their defaults: every ``#ifndef NAME`` /
    ``#define NAME <int>`` pair in the file and in every local header it pulls in with
    ``#include "..."`` (followed recursively, whatever the headers are called), the file's
    own first.

    >>> declared_defines("gdn_decode_rowsplit.cu")["WARPS"]
    4
    """
    kdir = Path(kernels_dir) if kernels_dir is not None else KERNELS_DIR
    path = _resolve(source, kdir)
    files = _local_includes(path, list(dict.fromkeys([path.parent, kdir])))
    return _knobs(f.read_text() for f in files)


def _knobs(texts) -> dict[str, int]:
    out: dict[str, int] = {}
    for text in texts:
        for name, value in _KNOB_RE.findall(text):
            out.setdefault(name, int(value))
    return out


def undeclared(source: str | os.PathLike, defines, kernels_dir=None) -> str | None:
    """Why ``defines`` (names) do not fit ``source``: ``"<file> declares no X (it declares
    A, B, ...)"`` when one of them is not a knob of the file (:func:`declared_defines`),
    else None.

    >>> undeclared("gdn_decode_ordered.cu", {"WARPS": 2, "DELTA_FMA": 1}).split(" (")[0]
    'gdn_decode_ordered.cu declares no DELTA_FMA'
    """
    return _undeclared(Path(source).name, declared_defines(source, kernels_dir), defines)


def _undeclared(name: str, knobs, defines) -> str | None:
    extra = [str(k) for k in defines if k not in knobs]
    if not extra:
        return None
    return f"{name} declares no {', '.join(extra)} (it declares {', '.join(knobs) or 'none'})"


def _define_flags(dkey: tuple) -> list[str]:
    flags = []
    for name, value in dkey:
        if not re.fullmatch(r"[A-Za-z_]\w*", name):
            raise ValueError(f"argument 'defines': {name!r} is not a C identifier")
        if value is not None and type(value) not in (int, bool):
            raise ValueError(f"argument 'defines': {name} must be an int or a bool, got {value!r}")
        flags.append(f"-D{name}" if value is None or value is True else f"-D{name}={value}")
    return flags


def _build(path: Path, arch: str, dkey: tuple, kdir: Path) -> Build:
    # the same order for our include tracking and for NVRTC: the source's folder, then kernels/
    search = list(dict.fromkeys([path.parent, kdir]))
    files = tuple(_local_includes(path, search))
    stamp = _stamp(files)  # before reading, so an edit during the build is seen next call
    texts = [f.read_text() for f in files]
    # a file that declares knobs takes only those: a stray -D (a knob since removed from the
    # file) would build the file's default silently. One that declares none takes any.
    knobs = _knobs(texts)
    if knobs and (why := _undeclared(path.name, knobs, [k for k, _ in dkey])):
        raise ValueError(f"argument 'defines': {why}")
    portable = [*FLAGS, f"--gpu-architecture={arch}", *_define_flags(dkey), *nvrtc.CUPY_ADDS]
    h = hashlib.sha256(repr((portable, nvrtc.version())).encode())
    for f, t in zip(files, texts, strict=True):
        h.update(f.name.encode() + b"\0" + t.encode() + b"\0")
    digest = h.hexdigest()[:16]
    if digest in _BY_DIGEST:
        old = _BY_DIGEST[digest]
        if old.source == path:
            return Build(**{**old.__dict__, "stamp": stamp, "files": files})
    incs = [f"-I{d}" for d in search] + [f"-I{cuda_include_dir()}"]
    options = tuple(portable + incs)
    name = relative(path)
    code = _code(name, texts[0], digest)
    cached = cubin_cache.load(digest)
    if cached is not None:
        cubin, log, seconds = cached
    else:
        t0 = time.perf_counter()
        cubin, log = _nvrtc_compile(name, code, options)
        seconds = time.perf_counter() - t0
    got = cubin_arch(cubin)
    if got != arch:
        raise ValueError(f"{name}: asked NVRTC for {arch} but the cubin says {got}")
    resources = elf_resources(cubin, log)
    missing = [e for e in entry_names(texts[0]) if e not in resources]
    if missing:
        raise CompileError(
            f"{name} ({arch}): no resource notes (EIATTR_REGCOUNT in .nv.info) for entry "
            f"{', '.join(missing)} in the cubin; found {sorted(resources) or 'none'}",
            file=name,
            line=None,
            log=log,
        )
    build = Build(
        path, arch, got, options, digest, resources, files, stamp, cubin, log, seconds,
        code=code, from_cache=cached is not None,
    )  # fmt: skip
    if cached is None:
        cubin_cache.store(digest, cubin, log, seconds)
    _BY_DIGEST[digest] = build
    return build


def _code(name: str, text: str, digest: str) -> str:
    """The text handed to NVRTC: a comment naming the digest (so CuPy's cache, keyed on the
    text and options alone, sees an edited header too), then ``#line 1 "<file>"`` so that
    errors and line info name the kernel file whatever name the compiler gives the program
    (CuPy names it after a hash in a temp folder). Neither changes the cubin."""
    return f'// decodekit build {digest}: {name} and its headers\n#line 1 "{name}"\n{text}'


def _nvrtc_compile(name: str, code: str, options: tuple[str, ...]) -> tuple[bytes, str]:
    try:
        return nvrtc.compile_source(code, name, options)
    except nvrtc.NvrtcError as e:
        raise _compile_error(name, e.log, options, e) from None


_DIAG_RE = re.compile(r"^(?P<file>.+?)\((?P<line>\d+)\): (?P<msg>(catastrophic )?error\b.*)")


def _compile_error(name: str, log: str, options, exc: Exception, most: int = 5) -> CompileError:
    """Each error as ``file:line: error ...`` with the source line and caret NVRTC prints
    under it; the first ``most`` errors only."""
    lines = log.rstrip("\0").splitlines()
    hits = [(i, m) for i, ln in enumerate(lines) if (m := _DIAG_RE.match(ln))][:most]
    picked = []
    for i, m in hits:
        picked += [f"{m['file']}:{m['line']}: {m['msg']}"]
        picked += [c for c in lines[i + 1 : i + 3] if c.strip()]
    # option errors carry no file position
    picked = picked or [ln for ln in lines if "error" in ln.lower()] or [str(exc)]
    tail = next((ln for ln in lines if "detected in the compilation" in ln), str(exc))
    arch = next((o.split("=", 1)[1] for o in options if o.startswith("--gpu-arch")), "?")
    msg = f"{name} ({arch}) failed to compile:\n" + "\n".join(picked) + f"\n({tail.strip()})"
    file, line = (hits[0][1]["file"], int(hits[0][1]["line"])) if hits else (name, None)
    return CompileError(msg, file=file, line=line, log=log)


def cli_compile(kernels: list[str] | None = None, arch: str | None = None) -> int:
    """``decodekit compile``: build each kernel (all of ``kernels/`` by default) and print,
    per kernel and arch, the arch read back from the cubin and the resources of each entry.

    ``arch`` may list several (``"sm_90a,sm_100a"``); without it, the GPU's arch, or both
    sm_90a and sm_100a on a machine with no GPU. Returns 1 if anything failed, else 0.
    """
    archs = arch.split(",") if arch else ([_gpu_arch()] if _gpu_arch() else ["sm_90a", "sm_100a"])
    row = "{:<28} {:<8} {:<8} {:<24} {:>4} {:>5} {:>5} {:>6}  {}".format
    print(row("kernel", "arch", "cubin", "entry", "regs", "spill", "stack", "smem", "result"))
    failures = []
    todo = kernels or [f.name for f in kernel_files()]
    if not todo:
        print(f"no kernels to compile: {KERNELS_DIR} holds no .cu files")
        return 1
    for f in todo:
        for a in archs:
            try:
                b = compile_kernel(f, a)
            except (CompileError, ValueError, FileNotFoundError) as e:
                print(row(Path(f).name, a, "-", "-", "", "", "", "", "FAIL"))
                failures.append(str(e))
                continue
            for entry, r in b.resources.items():
                nums = (r.registers, r.spills, r.stack_bytes, r.shared_bytes)
                print(row(b.source.name, a, b.arch_from_cubin, entry, *nums, "ok"))
            if not b.resources:
                print(row(b.source.name, a, b.arch_from_cubin, "?", "?", "?", "?", "?", "ok"))
    for msg in failures:
        print("\n" + msg)
    return 1 if failures else 0
