"""The SASS of a kit kernel build: the instructions the GPU runs, without a GPU.

Compiles ``kernels/<source>`` with NVRTC (:func:`decodekit.build.compile.compile_kernel`, same
arch and ``-D`` defines as a launch) and disassembles the cubin with ``cuobjdump -sass``
(which runs ``nvdisasm``). :func:`skeleton` keeps the instructions that decide a decode
kernel's latency (global loads and stores, shuffles, SFU ops, barriers, branches, exits),
each with its index, so "how many instructions before the state loads issue" or "which loads
did the compiler hoist" is one call::

    for ins in skeleton(disassemble("gdn_decode_subwarp.cu", "sm_90a", {"LANES_PER_ROW": 16})):
        print(ins)

The tools come with the ``gpu`` extra (``nvidia-cuda-cuobjdump``, ``nvidia-cuda-nvdisasm``)
or a CUDA toolkit, found by :func:`decodekit.build.tools.find_tool`; :func:`find_tools` says how
to get them when they are missing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from decodekit.build.tools import ToolMissing, find_tool  # noqa: F401  (ToolMissing: this API)

# Opcodes kept by skeleton(): memory traffic, cross-lane and SFU latency, control flow.
KEYS = ("LDG", "STG", "LDS", "STS", "RED", "ATOM", "SHFL", "MUFU", "BAR", "BRA", "CALL", "EXIT")
_LINE_RE = re.compile(r"^\s*/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;")


@dataclass(frozen=True)
class Instr:
    index: int  # position in the function, from 0
    offset: int  # byte offset (16 bytes per instruction)
    text: str  # e.g. "@P0 LDG.E.128 R16, desc[UR4][R32.64]"

    def __str__(self) -> str:
        return f"{self.index:5d}  /*{self.offset:04x}*/  {self.text}"

    @property
    def opcode(self) -> str:
        """The mnemonic with its modifiers, predicate dropped: ``LDG.E.128``."""
        words = self.text.split()
        return words[1] if words[0].startswith("@") and len(words) > 1 else words[0]


_HINT = (
    "install the gpu extra (pip install -e '.[gpu]': nvidia-cuda-cuobjdump, "
    "nvidia-cuda-nvdisasm) or a CUDA toolkit"
)


def find_tools() -> tuple[Path, Path]:
    """``(cuobjdump, nvdisasm)``; raises :class:`ToolMissing` saying how to get them."""
    return tuple(Path(find_tool(t, hint=_HINT)) for t in ("cuobjdump", "nvdisasm"))


def parse(text: str) -> list[Instr]:
    """The instructions of ``cuobjdump -sass`` output (one function), in order.

    >>> parse("        /*0010*/                   @P0 EXIT ;  /* 0x000000000000094d */")
    [Instr(index=0, offset=16, text='@P0 EXIT')]
    """
    out = []
    for line in text.splitlines():
        m = _LINE_RE.match(line)
        if m:
            out.append(Instr(len(out), int(m.group(1), 16), " ".join(m.group(2).split())))
    return out


def disassemble(source: str, arch: str | None = None, defines: dict | None = None, *,
                kernels_dir: str | os.PathLike | None = None) -> list[Instr]:  # fmt: skip
    """Every instruction of ``kernels/<source>`` (or of ``kernels_dir``'s) built for ``arch``
    with ``defines``."""
    from decodekit.build.compile import compile_kernel

    build = compile_kernel(source, arch, defines or {}, kernels_dir=kernels_dir)
    cuobjdump, nvdisasm = find_tools()
    env = dict(os.environ, PATH=f"{nvdisasm.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    with tempfile.TemporaryDirectory() as tmp:
        cubin = Path(tmp) / "kernel.cubin"
        cubin.write_bytes(build.cubin)
        res = subprocess.run(
            [str(cuobjdump), "-sass", str(cubin)], capture_output=True, text=True, env=env
        )
    instrs = parse(res.stdout)
    if res.returncode != 0 or not instrs:
        raise RuntimeError(
            f"cuobjdump -sass failed on {source} ({build.arch}): "
            f"{(res.stderr or res.stdout).strip()[:500]}"
        )
    return instrs


def compare(source: str, arch: str, builds: list[dict],
            kernels_dir: str | os.PathLike) -> list[tuple[dict, str]]:  # fmt: skip
    """Each build (defines) of ``source`` here and in ``kernels_dir`` (another tree's
    ``kernels/``): ``same`` when every instruction matches, ``differs``, or ``fails here``,
    ``fails there``, ``fails both`` when a side does not build. A knob the other tree does
    not declare is left out there when it has its default here (a knob added since)."""
    from decodekit.build.compile import CompileError, declared_defines

    mine, theirs = declared_defines(source), declared_defines(source, kernels_dir)
    out = []
    for d in builds:
        there = {k: v for k, v in d.items() if k in theirs or v != mine.get(k)}
        got = []
        for side, kw in ((d, {}), (there, {"kernels_dir": kernels_dir})):
            try:
                got.append([i.text for i in disassemble(source, arch, side, **kw)])
            except (CompileError, ValueError):  # a compile error or a refused define
                got.append(None)
        a, b = got
        if a is None or b is None:
            out.append(
                (d, "fails both" if a is b else "fails here" if a is None else "fails there")
            )
        else:
            out.append((d, "same" if a == b else "differs"))
    return out


def skeleton(instrs: list[Instr], keys: tuple[str, ...] = KEYS) -> list[Instr]:
    """The instructions whose opcode starts with one of ``keys``, indices kept.

    >>> ins = parse("/*0000*/ MOV R1, c[0x0][0x28] ;\\n/*0010*/ @P0 LDG.E.128 R4, [R2.64] ;")
    >>> [str(i.index) + " " + i.opcode for i in skeleton(ins)]
    ['1 LDG.E.128']
    """
    return [i for i in instrs if i.opcode.startswith(keys)]


def cli_sass(
    kernel: str, arch: str | None = None, defines: dict | None = None, only: str | None = None
) -> int:
    """``decodekit sass``: print the skeleton (or, with ``only="all"``, every instruction)
    of one build. Returns 1 with a message when the tools or the build are missing."""
    try:
        instrs = disassemble(kernel, arch, defines)
    except (ToolMissing, RuntimeError, ValueError, FileNotFoundError) as e:
        print(f"decodekit sass: {e}", file=sys.stderr)
        return 1
    keys = None if only == "all" else tuple(only.split(",")) if only else KEYS
    shown = instrs if keys is None else skeleton(instrs, keys)
    for i in shown:
        print(i)
    print(f"({len(shown)} of {len(instrs)} instructions)")
    return 0
