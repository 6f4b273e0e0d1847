"""Call a kit kernel on torch tensors: zero-copy, on torch's current stream, destination-passing.

``kernel_impl(source, entry, launch_shape)`` compiles ``kernels/<source>`` (see
:mod:`decodekit.build.compile`) and returns a :class:`KernelLauncher`, called as
``run(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state)``. On the GPU the kernel
is built inline by ``cupy.RawModule(code=..., options=("--gpu-architecture=sm_90a", ...))``
from the same text and options as the compile-only build (which gives the cubin the kit
inspects; the two are the same cubin: ``tests/gpu/test_rawmodule_gpu.py``), and launched
from it: the entry's function pointer goes to ``cuLaunchKernel`` of NVIDIA's
``cuda.bindings`` with the arguments packed once, ``data_ptr()`` s straight from torch, on
``torch.cuda.current_stream()``, so it works inside CUDA graph capture. Inputs and outputs
are validated with :func:`decodekit.problem.spec.validate` before any launch; non-contiguous tensors
are rejected (a hidden copy would distort timings).

The hot path stays lean: the full checks run only when the tensor objects, their shape,
dtype, device, contiguity or pointer change; a repeat call with the same tensor objects and a
``None`` or positive float scale checks their identities, writes the scale into the packed
arguments if it changed and launches. The source's mtime is checked at most every
``RECHECK_S`` seconds, so editing a ``.cu`` and calling again reloads the kernel.

>>> run = kernel_impl("gdn_decode_baseline.cu", "gdn_decode_baseline",
...                   lambda B: ((B * 8,), (128,), 0), arch="sm_90a")
>>> run.build.usage("gdn_decode_baseline").spills
0
"""

from __future__ import annotations

import ctypes
import math
import re
import struct
import threading
import time
from collections.abc import Callable

import torch

from decodekit.build.compile import Build, compile_kernel
from decodekit.problem.spec import OUTPUT_NAMES, SpecError, resolve_scale, validate

RECHECK_S = 0.25  # seconds between checks of the source's mtime on the hot path
ALIGN = 16  # bytes; kernels may use 16-byte vector loads on every pointer
NAMES = ("q", "k", "v", "state", "A_log", "a", "dt_bias", "b", "output", "new_state")
# The kernel ABI of kernels/gdn.cuh: q k v state A_log a dt_bias b (8 pointers), float scale
# (4 bytes + 4 padding), output new_state (2 pointers), int batch_size.
_ARGS = struct.Struct("<8Qf4x2Qi")
_ARG_OFFSETS = (0, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88)
_SCALE = struct.Struct("<f")
_SCALE_OFFSET = 64
_MAX_STATIC_SMEM = 48 * 1024
_CUDA_ERROR_INVALID_CONTEXT = 201
_INF = float("inf")
_DEFAULT_SCALE = resolve_scale(None)
# CUDA's launch limits: grid x up to 2^31 - 1, y and z up to 65535; B is packed as an int32
_GRID_MAX = (2**31 - 1, 65535, 65535)
_INT32_MAX = 2**31 - 1

_get_device = getattr(torch._C, "_cuda_getDevice", None) or torch.cuda.current_device
_raw_stream = getattr(torch._C, "_cuda_getCurrentRawStream", None) or (
    lambda dev: torch.cuda.current_stream(dev).cuda_stream
)

Shape = tuple[tuple[int, ...], tuple[int, ...], int]


class KernelLauncher:
    """One kit kernel as a destination-passing callable on CUDA tensors.

    ``new_state`` may alias ``state`` only when ``inplace_ok``; ``state=None`` passes a null
    pointer (the kernel reads zeros); ``scale`` 0 or None means ``1/sqrt(128)``.
    ``.build`` holds the cubin, the arch and registers / spills / shared memory per entry.
    """

    def __init__(
        self,
        source: str,
        entry: str,
        launch_shape: Callable[[int], Shape],
        *,
        defines: dict | None = None,
        arch: str | None = None,
        inplace_ok: bool = False,
        name: str | None = None,
    ):
        self.source, self.entry, self.launch_shape = source, entry, launch_shape
        self.defines, self.arch = dict(defines or {}), arch
        self.inplace_ok, self.name = inplace_ok, name or entry
        self.build: Build = compile_kernel(source, arch, self.defines)
        self._functions: dict[int, object] = {}  # device index -> cupy RawKernel of the entry
        self._retired: list[object] = []  # earlier builds' kernels: captured graphs keep them
        self._shapes: dict[int, Shape] = {}
        self._ok_meta: set = set()  # tensor metadata that passed spec.validate
        self._last: tuple = ()  # the last admitted call's tensors (held: ids not reused)
        self._scale: object = 0.0  # the scale argument whose value is packed in the buffer
        self._launch_args: tuple = ()
        self._dev = -1
        self._driver_launch: Callable | None = None  # cuLaunchKernel, bound on first load
        self._next_check = time.monotonic() + RECHECK_S
        self._lock = threading.Lock()  # the packed-argument buffer is shared
        self._buf = ctypes.create_string_buffer(_ARGS.size)
        base = ctypes.addressof(self._buf)
        self._argv = (ctypes.c_void_p * len(_ARG_OFFSETS))(*(base + o for o in _ARG_OFFSETS))
        self._argv_ptr = ctypes.addressof(self._argv)

    def __repr__(self) -> str:
        return f"KernelLauncher({self.name!r}, {self.build.source.name}, {self.build.arch})"

    def __call__(self, q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state) -> None:
        # The hot path: the same tensor objects as the last call (kept alive in self._last,
        # so no other object can take their ids), None or a positive finite float scale, the
        # same device, and no source check due: pack the scale and launch. Everything else
        # goes through _call, which checks. (An in-place .set_() or .resize_() on a passed
        # tensor between calls is not seen: call forget() after one.)
        with self._lock:
            last = self._last
            if (
                last
                and q is last[0] and k is last[1] and v is last[2] and state is last[3]
                and A_log is last[4] and a is last[5] and dt_bias is last[6] and b is last[7]
                and output is last[8] and new_state is last[9]
                and (scale is None or type(scale) is float and 0.0 < scale < _INF)
                and self._dev == _get_device()
                and time.monotonic() < self._next_check
            ):  # fmt: skip
                if scale != self._scale:
                    _SCALE.pack_into(self._buf, _SCALE_OFFSET, scale or _DEFAULT_SCALE)
                    self._scale = scale
                dev = self._dev
                (err,) = self._driver_launch(
                    *self._launch_args, _raw_stream(dev), self._argv_ptr, 0
                )
                if err:
                    self._launch_failed(err, dev)
                return
        self._call((q, k, v, state, A_log, a, dt_bias, b, output, new_state), scale)

    def _call(self, ts: tuple, scale) -> None:
        """A call off the hot path: new tensors, another device, a scale to check, or the
        source's mtime due for a check."""
        if time.monotonic() >= self._next_check:
            self._recheck()
        try:
            # every value but a plain positive finite float is checked (NaN, inf, bool, str)
            s = scale if type(scale) is float and 0.0 < scale < _INF else resolve_scale(scale)
        except (TypeError, ValueError, RuntimeError):
            raise SpecError(f"argument 'scale': expected a float or None, got {scale!r}") from None
        with self._lock:
            last = self._last
            if len(last) != len(ts) or any(x is not y for x, y in zip(ts, last, strict=True)):
                self._admit(ts, scale)
            _SCALE.pack_into(self._buf, _SCALE_OFFSET, s)
            self._scale = scale  # as passed: None (the default) or a float
            dev = self._dev
            if dev == _get_device():
                self._launch(dev)
            else:
                with torch.cuda.device(dev):
                    self._launch(dev)

    def forget(self) -> None:
        """Drop the cached arguments: the next call re-checks and re-packs every tensor."""
        with self._lock:
            self._last = ()

    def reload(self) -> bool:
        """Rebuild from the source; True if the kernel changed (next call loads it)."""
        build = compile_kernel(self.source, self.arch, self.defines)
        changed = build.digest != self.build.digest
        if changed:
            self._retired.extend(self._functions.values())
            self._functions.clear()
            self._last = ()
        self.build = build
        return changed

    def func_attributes(self, device: int | None = None) -> dict[str, int]:
        """What the driver reports for the loaded entry: registers, local and shared bytes."""
        fn = self._function(torch.cuda.current_device() if device is None else device)
        names = ("max_threads_per_block", "shared_size_bytes", "local_size_bytes", "num_regs")
        return {n: int(getattr(fn, n)) for n in names}

    def _recheck(self) -> None:
        try:
            stale = self.build.stale
        except OSError:
            stale = True
        if stale:
            self.reload()  # a CompileError propagates on every call until the source compiles
        self._next_check = time.monotonic() + RECHECK_S

    def _launch(self, dev: int) -> None:
        (err,) = self._driver_launch(*self._launch_args, _raw_stream(dev), self._argv_ptr, 0)
        if err:
            self._launch_failed(err, dev)

    def _launch_failed(self, err, dev: int) -> None:
        if err == _CUDA_ERROR_INVALID_CONTEXT:
            # a thread that has made no CUDA runtime call yet has no current context
            torch.cuda.set_device(dev)
            (err,) = self._driver_launch(*self._launch_args, _raw_stream(dev), self._argv_ptr, 0)
        if err:
            raise RuntimeError(f"{self!r}: cuLaunchKernel failed: {_error_name(err)}")

    def _admit(self, ts: tuple, scale) -> None:
        """Full checks for a call whose tensors differ from the last one, then pack arguments."""
        try:
            meta = tuple(
                None if t is None else (t.shape, t.dtype, t.get_device(), t.is_contiguous())
                for t in ts
            )
        except AttributeError:
            meta = None
        if meta is None or meta not in self._ok_meta:
            tensors = dict(zip(NAMES, ts, strict=True))
            validate({**tensors, "scale": scale}, device="cuda", require_contiguous=True)
            validate(tensors, device="cuda", names=("q", *OUTPUT_NAMES), require_contiguous=True)
            if len(self._ok_meta) > 256:
                self._ok_meta.clear()
            self._ok_meta.add(meta)
        B, dev = ts[0].shape[0], ts[0].get_device()
        ptrs = [0 if t is None else t.data_ptr() for t in ts]
        self._check_pointers(ptrs, [0 if t is None else t.numel() * t.element_size() for t in ts])
        fn = self._function(dev)
        grid, block, smem = self._shape(B)
        _ARGS.pack_into(self._buf, 0, *ptrs[:8], 0.0, ptrs[8], ptrs[9], B)
        self._launch_args = (fn.kernel.ptr, *grid, *block, smem)
        self._dev = dev
        self._last = ts  # the hot path compares the next call's tensors with these

    def _check_pointers(self, ptrs: list[int], sizes: list[int]) -> None:
        for n, p in zip(NAMES, ptrs, strict=True):
            if p % ALIGN:
                raise SpecError(
                    f"argument {n!r}: data_ptr {p:#x} is not {ALIGN}-byte aligned; "
                    "kit kernels use vector loads (pass a .clone())"
                )
        inplace = ptrs[3] != 0 and ptrs[3] == ptrs[9]
        if inplace and not self.inplace_ok:
            raise SpecError(
                f"argument 'new_state': aliases 'state', but variant {self.name!r} "
                "is not declared inplace_ok; pass a separate tensor"
            )
        for i in (8, 9):  # output, new_state against everything else
            for j in range(10):
                if j == i or not ptrs[j] or (inplace and {i, j} == {3, 9}):
                    continue
                if ptrs[i] < ptrs[j] + sizes[j] and ptrs[j] < ptrs[i] + sizes[i]:
                    raise SpecError(
                        f"argument {NAMES[i]!r}: overlaps argument {NAMES[j]!r} in memory"
                    )

    def _function(self, dev: int):
        fn = self._functions.get(dev)
        if fn is None:
            fn = self._functions[dev] = self._load(dev)
        return fn

    def _load(self, dev: int):
        """The entry, built by ``cupy.RawModule`` from the build's text and options on device
        ``dev``; its registers and SM version must be the compile-only build's."""
        import cupy
        from cuda.bindings import driver

        self._driver_launch = driver.cuLaunchKernel
        b = self.build
        what = f"{b.source.name} ({b.arch}), entry {self.entry!r}"
        with torch.cuda.device(dev):
            gpu = f"{torch.cuda.get_device_name(dev)} {torch.cuda.get_device_capability(dev)}"
            try:
                module = cupy.RawModule(code=b.code, options=b.rawmodule_options)
                fn = module.get_function(self.entry)
                got = (int(fn.binary_version), int(fn.num_regs))
            except Exception as e:  # CuPy's CompileException, CUDADriverError, ...
                raise RuntimeError(
                    f"{what} does not build or load on {gpu} through cupy.RawModule: {e}; "
                    f"entries in the compile-only build: {sorted(b.resources)}"
                ) from e
            want = (int(re.sub(r"\D", "", b.arch)), b.usage(self.entry).registers)
            if got != want:
                raise RuntimeError(
                    f"{what}: cupy.RawModule built SM {got[0]} with {got[1]} registers on {gpu}, "
                    f"the compile-only build SM {want[0]} with {want[1]}: not the same cubin "
                    "(is the GPU's arch the one asked for?)"
                )
            for smem in {s for _, _, s in self._shapes.values() if s > _MAX_STATIC_SMEM}:
                self._allow_smem(fn, smem)
        return fn

    def _shape(self, B: int) -> Shape:
        shape = self._shapes.get(B)
        if shape is None:
            grid, block, smem = self.launch_shape(B)
            if not 1 <= B <= _INT32_MAX:
                raise SpecError(
                    f"argument 'q': batch size {B} does not fit the kernels' int32 batch_size"
                )
            grid3, block3 = (tuple(grid) + (1, 1))[:3], (tuple(block) + (1, 1))[:3]
            if min(grid3 + block3) < 1 or math.prod(block3) > 1024 or smem < 0:
                raise ValueError(
                    f"variant {self.name!r}: launch_shape({B}) gave grid {grid}, "
                    f"block {block}, shared {smem}; need >= 1 and <= 1024 threads"
                )
            if any(g > m for g, m in zip(grid3, _GRID_MAX, strict=True)):
                raise SpecError(
                    f"argument 'q': batch size {B} needs grid {grid3} from variant "
                    f"{self.name!r}, past CUDA's limits {_GRID_MAX}"
                )
            if smem > _MAX_STATIC_SMEM:
                for fn in self._functions.values():
                    self._allow_smem(fn, smem)
            shape = self._shapes[B] = (grid3, block3, int(smem))
        return shape

    @staticmethod
    def _allow_smem(fn, smem: int) -> None:
        fn.max_dynamic_shared_size_bytes = smem


def _error_name(err) -> str:
    from cuda.bindings import driver

    _, name = driver.cuGetErrorName(err)
    return name.decode() if isinstance(name, bytes) else str(err)


def kernel_impl(
    source: str,
    entry: str,
    launch_shape: Callable[[int], Shape],
    defines: dict | None = None,
    arch: str | None = None,
    *,
    inplace_ok: bool = False,
    name: str | None = None,
) -> KernelLauncher:
    """Compile ``kernels/<source>`` and return its DPS launcher (see :class:`KernelLauncher`).

    ``launch_shape(B) -> (grid, block, dynamic_shared_bytes)``; ``arch`` defaults to the GPU's.
    """
    return KernelLauncher(
        source, entry, launch_shape, defines=defines, arch=arch, inplace_ok=inplace_ok, name=name
    )


def _empty_shape(B: int) -> Shape:
    return (1,), (1,), 0


_EMPTY: KernelLauncher | None = None


def empty_launcher() -> KernelLauncher:
    """``kernels/empty.cu`` through the kit's own launch path: the launch floor of a variant."""
    global _EMPTY
    if _EMPTY is None:
        _EMPTY = kernel_impl("empty.cu", "empty_kernel", _empty_shape, inplace_ok=True)
    return _EMPTY


def bare_cupy_empty() -> Callable[[], None]:
    """A zero-argument callable: a plain ``cupy.RawKernel`` launch of the same empty kernel."""
    import functools

    import cupy

    from decodekit.build.compile import KERNELS_DIR

    kernel = cupy.RawKernel((KERNELS_DIR / "empty.cu").read_text(), "empty_kernel")
    return functools.partial(kernel, (1,), (1,), ())
