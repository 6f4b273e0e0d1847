"""NVRTC through NVIDIA's public binding (``cuda.bindings.nvrtc``): compile-only, no GPU needed.

This is the path for CI, for ``--arch sm_100a`` proofs on a Hopper box and for every cubin
the kit inspects (resources, SASS, the arch read back). On a GPU the kernel that runs is
built by ``cupy.RawModule`` (:class:`decodekit.build.launch.KernelLauncher`); both get the same
source and the same options, and CuPy's additions (:data:`CUPY_ADDS`) are added here too,
so both give the same cubin (``tests/gpu/test_rawmodule_gpu.py`` proves it for the NVRTC at hand).

>>> cubin, log = compile_source('extern "C" __global__ void f() {}', "f.cu", ("-arch=sm_90a",))
>>> cubin[:4]
b'\\x7fELF'
"""

from __future__ import annotations

from functools import lru_cache

# What cupy.RawModule (CuPy 14, cupy/cuda/compiler.py) appends to every NVRTC compile besides
# its own -arch=sm_<cc>: flush denormals to zero, and __device__ as the default space. Its
# -arch=sm_90 after our -arch=sm_90a still gives the sm_90a cubin (NVRTC keeps the suffix).
CUPY_ADDS = ("-ftz=true", "--device-as-default-execution-space")


class NvrtcError(RuntimeError):
    """NVRTC refused the program; ``log`` is its full log."""

    def __init__(self, message: str, log: str):
        super().__init__(message)
        self.log = log


def _binding():
    try:
        from cuda.bindings import nvrtc
    except ImportError as e:
        raise ImportError(
            "NVRTC's Python binding is missing: pip install 'cuda-bindings>=13' "
            "nvidia-cuda-nvrtc (or pip install -e .[gpu])"
        ) from e
    return nvrtc


def _check(result, what: str):
    nvrtc = _binding()
    err, *rest = result
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        _, msg = nvrtc.nvrtcGetErrorString(err)
        raise NvrtcError(f"{what}: {msg.decode()}", log="")
    return rest[0] if len(rest) == 1 else rest


@lru_cache(maxsize=1)
def version() -> tuple[int, int]:
    """NVRTC's (major, minor)."""
    return tuple(_check(_binding().nvrtcVersion(), "nvrtcVersion"))


@lru_cache(maxsize=1)
def supported_archs() -> tuple[int, ...]:
    """The SM numbers this NVRTC can build a cubin for."""
    return tuple(_check(_binding().nvrtcGetSupportedArchs(), "nvrtcGetSupportedArchs"))


def compile_source(text: str, name: str, options: tuple[str, ...]) -> tuple[bytes, str]:
    """``(cubin, log)`` for one translation unit; raises :class:`NvrtcError` with the log."""
    nvrtc = _binding()
    prog = _check(nvrtc.nvrtcCreateProgram(text.encode(), name.encode(), 0, [], []), "create")
    try:
        opts = [o.encode() for o in options]
        (err,) = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
        size = _check(nvrtc.nvrtcGetProgramLogSize(prog), "log size")
        buf = b" " * size
        _check(nvrtc.nvrtcGetProgramLog(prog, buf), "log")
        log = buf.rstrip(b"\0").decode(errors="replace")
        if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            _, msg = nvrtc.nvrtcGetErrorString(err)
            raise NvrtcError(msg.decode(), log=log)
        size = _check(nvrtc.nvrtcGetCUBINSize(prog), "cubin size")
        cubin = b" " * size
        _check(nvrtc.nvrtcGetCUBIN(prog, cubin), "cubin")
        return cubin, log
    finally:
        nvrtc.nvrtcDestroyProgram(prog)
