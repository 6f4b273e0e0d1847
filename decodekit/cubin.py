r"""What a cubin says about itself: its SM arch (ELF header and ptxas note) and the resources
of each entry (ptxas ``-v`` lines of the NVRTC log, or the driver where the log has none).

>>> parse_ptxas("ptxas info : Compiling entry function 'f' for 'sm_90a'\n"
...             "ptxas info : Used 40 registers, 1024 bytes smem").get("f").registers
40
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

_SPILL_RE = re.compile(
    r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads"
)


@dataclass(frozen=True)
class Resources:
    """Per-thread registers and local memory, per-block static shared memory (ptxas -v)."""

    registers: int
    shared_bytes: int = 0
    stack_bytes: int = 0  # local memory frame: spills and local arrays
    spill_store_bytes: int = 0
    spill_load_bytes: int = 0

    @property
    def spills(self) -> int:
        return self.spill_store_bytes + self.spill_load_bytes


def complete_elf(cubin: bytes) -> bytes:
    """``cubin`` padded with zero bytes up to the end of its ELF tables.

    CuPy's ``nvrtc.getCUBIN`` returns the image without its last byte (a NUL counted as a
    string terminator); the driver loads it anyway, but ``cuobjdump`` and ``nvdisasm`` reject
    the file. The program and section header tables say how long the image must be.

    >>> import struct
    >>> head = bytearray(b"\\x7fELF" + bytes(60)); struct.pack_into("<QQ", head, 0x20, 64, 0)
    >>> struct.pack_into("<HHHH", head, 0x36, 56, 1, 64, 0)
    >>> len(complete_elf(bytes(head) + bytes(55)))
    120
    """
    if len(cubin) < 64 or cubin[:4] != b"\x7fELF":
        return cubin
    phoff, shoff = struct.unpack_from("<QQ", cubin, 0x20)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", cubin, 0x36)
    end = max(phoff + phentsize * phnum, shoff + shentsize * shnum)
    return cubin + bytes(end - len(cubin)) if end > len(cubin) else cubin


def _elf_section(cubin: bytes, wanted: str) -> bytes:
    (shoff,) = struct.unpack_from("<Q", cubin, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", cubin, 0x3A)

    def header(i):  # (name offset, file offset, size)
        (name,) = struct.unpack_from("<I", cubin, shoff + i * shentsize)
        off, size = struct.unpack_from("<QQ", cubin, shoff + i * shentsize + 24)
        return name, off, size

    _, str_off, _ = header(shstrndx)
    for i in range(shnum):
        name, off, size = header(i)
        end = cubin.index(b"\0", str_off + name)
        if cubin[str_off + name : end].decode() == wanted:
            return cubin[off : off + size]
    return b""


def cubin_arch(cubin: bytes) -> str:
    """The SM arch a cubin was built for, e.g. ``'sm_90a'``.

    The SM number is bits 8-15 of the ELF ``e_flags`` (0x5a = 90, 0x64 = 100); the ``a``/``f``
    suffix is not in the flags, so it is read from the ptxas command line recorded in the
    ``.note.nv.tkinfo`` section.
    """
    if cubin[:5] != b"\x7fELF\x02" or struct.unpack_from("<H", cubin, 18)[0] != 190:
        raise ValueError("argument 'cubin': not a 64-bit CUDA ELF (EM_CUDA = 190)")
    sm = (struct.unpack_from("<I", cubin, 48)[0] >> 8) & 0xFF
    note = re.search(rb"-arch sm_(\d+)([af]?)\b", _elf_section(cubin, ".note.nv.tkinfo"))
    if note and int(note.group(1)) == sm:
        return f"sm_{sm}{note.group(2).decode()}"
    return f"sm_{sm}"


_ENTRY_RE = re.compile(
    r'extern\s+"C"\s+__global__\s+void\s+(?:__launch_bounds__\([^)]*\)\s+)?(\w+)'
)


def driver_resources(cubin: bytes, source: str) -> dict[str, Resources]:
    """Resources as the driver reports them, for NVRTC builds whose log has no ptxas lines
    (NVRTC 13.0 prints none). Needs a GPU whose arch can load the cubin; else empty."""
    try:
        from cupy_backends.cuda.api import driver

        mod = driver.moduleLoadData(cubin)
    except Exception:  # no GPU, or a cubin for another arch: nothing to ask
        return {}
    out = {}
    try:
        for entry in _ENTRY_RE.findall(source):
            fn = driver.moduleGetFunction(mod, entry)
            regs, smem, local = (
                driver.funcGetAttribute(getattr(driver, f"CU_FUNC_ATTRIBUTE_{n}"), fn)
                for n in ("NUM_REGS", "SHARED_SIZE_BYTES", "LOCAL_SIZE_BYTES")
            )
            out[entry] = Resources(regs, smem, local, 0, 0)
    finally:
        driver.moduleUnload(mod)
    return out


def parse_ptxas(log: str) -> dict[str, Resources]:
    """Resources per entry point from the ``ptxas info`` lines of an NVRTC log."""
    out: dict[str, Resources] = {}
    entry = None
    vals: dict[str, int] = {}
    for line in log.splitlines():
        if m := re.search(r"Compiling entry function '(\w+)'", line):
            entry, vals = m.group(1), {}
        elif entry and (m := _SPILL_RE.search(line)):
            vals = dict(
                zip(
                    ("stack_bytes", "spill_store_bytes", "spill_load_bytes"),
                    map(int, m.groups()),
                    strict=True,
                )
            )
        elif entry and (m := re.search(r"Used (\d+) registers", line)):
            smem = re.search(r"(\d+) bytes smem", line)
            out[entry] = Resources(int(m[1]), int(smem[1]) if smem else 0, **vals)
            entry = None
    return out
