r"""What a cubin says about itself: its SM arch (ELF header and ptxas note) and the resources
of each entry, read from the image itself: registers and the local-memory frame from the
``.nv.info`` attributes ptxas writes (``EIATTR_REGCOUNT``, ``EIATTR_FRAME_SIZE``), static
shared memory from each entry's ``.nv.shared.<entry>`` section less the system-reserved KiB
(as ``ptxas -v`` counts it). These are what ``cuobjdump -res-usage`` prints (its SHARED
includes the reserved KiB); no driver call is involved, so they are the same with or
without a GPU and in every process. Spill bytes are not in the ELF: they come from the
``ptxas -v`` lines of the NVRTC log where it has them (NVRTC 13.0 prints none), and are 0
when the frame is empty (no local memory, nothing to spill to); otherwise unknown (None).

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
    spill_store_bytes: int | None = 0  # None: not known (no ptxas log, non-empty frame)
    spill_load_bytes: int | None = 0

    @property
    def spills(self) -> int | None:
        """Spill bytes stored + loaded; None when the build does not say."""
        if self.spill_store_bytes is None or self.spill_load_bytes is None:
            return None
        return self.spill_store_bytes + self.spill_load_bytes


def cubin_arch(cubin: bytes) -> str:
    """The SM arch a cubin was built for, e.g. ``'sm_90a'``.

    The SM number is bits 8-15 of the ELF ``e_flags`` (0x5a = 90, 0x64 = 100); the ``a``/``f``
    suffix is not in the flags, so it is read from the ptxas command line recorded in the
    ``.note.nv.tkinfo`` section.
    """
    if cubin[:5] != b"\x7fELF\x02" or struct.unpack_from("<H", cubin, 18)[0] != 190:
        raise ValueError("argument 'cubin': not a 64-bit CUDA ELF (EM_CUDA = 190)")
    sm = (struct.unpack_from("<I", cubin, 48)[0] >> 8) & 0xFF
    note = re.search(rb"-arch sm_(\d+)([af]?)\b", _sections(cubin).get(".note.nv.tkinfo", b""))
    if note and int(note.group(1)) == sm:
        return f"sm_{sm}{note.group(2).decode()}"
    return f"sm_{sm}"


_ENTRY_RE = re.compile(
    r'extern\s+"C"\s+__global__\s+void\s+(?:__launch_bounds__\([^)]*\)\s+)?(\w+)'
)

# .nv.info attribute records: u8 format, u8 attribute, u16 (value or payload size)
_EIFMT_SVAL = 0x04
_EIATTR_FRAME_SIZE = 0x11
_EIATTR_REGCOUNT = 0x2F
# sm_80+ reserve 1 KiB of shared memory per block for the system
# (cudaDevAttrReservedSharedMemoryPerBlock); a cubin that uses shared memory counts it in
# the entry's .nv.shared section (cuobjdump -res-usage shows that total), ptxas -v does not.
RESERVED_SMEM = 1024


def _sections(cubin: bytes) -> dict[str, bytes]:
    """Every ELF section by name (NOBITS sections as ``bytes(size)``)."""
    (shoff,) = struct.unpack_from("<Q", cubin, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", cubin, 0x3A)
    heads = []
    for i in range(shnum):
        base = shoff + i * shentsize
        name, kind = struct.unpack_from("<II", cubin, base)
        off, size = struct.unpack_from("<QQ", cubin, base + 24)
        heads.append((name, kind, off, size))
    str_off = heads[shstrndx][2]
    out = {}
    for name, kind, off, size in heads:
        label = cubin[str_off + name : cubin.index(b"\0", str_off + name)].decode()
        out[label] = bytes(size) if kind == 8 else cubin[off : off + size]  # 8: SHT_NOBITS
    return out


def _symbols(sections: dict[str, bytes]) -> list[str]:
    """Symbol names by index (Elf64_Sym: name u32, info u8, other u8, shndx u16, ...)."""
    tab, names = sections.get(".symtab", b""), sections.get(".strtab", b"")
    out = []
    for i in range(len(tab) // 24):
        (name,) = struct.unpack_from("<I", tab, i * 24)
        out.append(names[name : names.index(b"\0", name)].decode())
    return out


def _info_values(info: bytes, attribute: int) -> dict[int, int]:
    """``{symbol index: value}`` of the per-function SVAL records of one attribute."""
    out, i = {}, 0
    while i + 4 <= len(info):
        fmt, attr, size = struct.unpack_from("<BBH", info, i)
        i += 4
        if fmt != _EIFMT_SVAL:
            continue  # NVAL / BVAL / HVAL carry their value in the header
        if attr == attribute and size >= 8:
            sym, value = struct.unpack_from("<II", info, i)
            out[sym] = value
        i += size
    return out


def elf_resources(cubin: bytes, log: str = "") -> dict[str, Resources]:
    """Resources of every entry point of ``cubin``, from its own ELF notes (see the module
    docstring); spill bytes from the ``ptxas -v`` lines of ``log`` where it has them.

    >>> from decodekit.build.compile import compile_kernel
    >>> b = compile_kernel("gdn_decode_baseline.cu", arch="sm_90a")
    >>> elf_resources(b.cubin)["gdn_decode_baseline"].registers == b.usage().registers > 0
    True
    """
    if cubin[:5] != b"\x7fELF\x02":
        raise ValueError("argument 'cubin': not a 64-bit ELF image")
    sections = _sections(cubin)
    names = _symbols(sections)
    info = sections.get(".nv.info", b"")
    regs = {names[i]: v for i, v in _info_values(info, _EIATTR_REGCOUNT).items()}
    frames = {names[i]: v for i, v in _info_values(info, _EIATTR_FRAME_SIZE).items()}
    logged = parse_ptxas(log) if log else {}
    reserved = "__nv_reservedSMEM_offset_0_alias" in names
    out = {}
    for label in sections:
        if not label.startswith(".nv.info."):
            continue
        entry = label[len(".nv.info.") :]
        if entry not in regs:
            continue
        frame = frames.get(entry, 0)
        shared = len(sections.get(f".nv.shared.{entry}", b""))
        if shared and reserved:
            shared -= RESERVED_SMEM  # the section starts with the block's system-reserved KiB
        spilled = logged.get(entry)
        if spilled is not None:
            st, ld = spilled.spill_store_bytes, spilled.spill_load_bytes
        else:
            st = ld = 0 if frame == 0 else None
        out[entry] = Resources(regs[entry], shared, frame, st, ld)
    return out


def entry_names(source: str) -> list[str]:
    """The ``extern "C" __global__`` entry points a CUDA source declares."""
    return _ENTRY_RE.findall(source)


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
