"""compute-sanitizer (memcheck, racecheck, initcheck, synccheck) over one implementation.

The parent runs ``compute-sanitizer --tool T python -m decodekit.measure.sanitize --child ...`` once per
tool; the child checks the implementation on each batch size (fresh inputs, poisoned outputs),
so every launch the sanitizer sees is a real call. Kit kernels are filtered by entry name so
torch's own kernels are not instrumented.

>>> parse_summary("========= ERROR SUMMARY: 0 errors")
0
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from dataclasses import dataclass

from decodekit.base import proc
from decodekit.build.tools import ToolMissing, find_tool

TOOLS = ("memcheck", "racecheck", "initcheck", "synccheck")


class SanitizerError(RuntimeError):
    """compute-sanitizer is missing or could not run; the message says what to do."""


@dataclass
class SanitizerRun:
    tool: str
    errors: int | None  # None: no summary line (the run failed before it)
    returncode: int
    tail: str

    @property
    def clean(self) -> bool:
        return self.errors == 0 and self.returncode == 0


def parse_summary(text: str) -> int | None:
    """Total errors from compute-sanitizer's ``ERROR SUMMARY`` lines, or None if absent."""
    found = re.findall(r"ERROR SUMMARY:\s+(\d+) error", text)
    hazards = re.findall(r"RACECHECK SUMMARY:\s+(\d+) hazard", text)
    if not found and not hazards:
        return None
    return sum(int(n) for n in found) + sum(int(n) for n in hazards)


def find_sanitizer(exe: str = "compute-sanitizer") -> str:
    try:
        return find_tool("compute-sanitizer", exe)
    except ToolMissing as e:
        raise SanitizerError(
            f"{e}: install the CUDA toolkit (it ships with it) or pass "
            "exe='/path/to/compute-sanitizer'"
        ) from None


def sanitize(
    impl: str,
    batch_sizes=(1, 3, 64),
    tools=TOOLS,
    *,
    exe: str = "compute-sanitizer",
    timeout: float = 900,
) -> list[SanitizerRun]:
    """Run each tool over ``impl`` on ``batch_sizes``; one :class:`SanitizerRun` per tool."""
    from decodekit.impls.registry import get

    bad = [t for t in tools if t not in TOOLS]
    if bad:
        raise ValueError(f"argument 'tools': expected some of {TOOLS}, got {bad}")
    im = get(impl)
    # kit kernels: instrument only their own launches (the dispatcher's all share the prefix)
    entry = im.meta.get("entry") or ("gdn_decode_" if im.kind == "kernel" else None)
    sanitizer = find_sanitizer(exe)
    child = [
        sys.executable,
        "-m",
        "decodekit.measure.sanitize",
        "--child",
        "--impl",
        impl,
        "--batch-sizes",
        ",".join(str(b) for b in batch_sizes),
    ]
    procs = []
    for tool in tools:  # the tools run side by side: each instruments its own process
        cmd = [sanitizer, "--tool", tool, "--print-limit", "20"]
        if entry:
            cmd += ["--kernel-name", f"kns={entry}"]
        procs.append((tool, proc.start(cmd + child, stderr=subprocess.STDOUT)))
    deadline = time.monotonic() + timeout  # one deadline for the tools running side by side
    runs = []
    for tool, p in procs:
        text, _, timed_out = proc.finish(p, deadline)
        if timed_out:  # the tool and the program under it, killed as one group
            text += f"\n(killed after {timeout} s)"
        runs.append(SanitizerRun(tool, parse_summary(text), p.returncode, text[-2000:]))
    return runs


def cli_sanitize(
    impl: str, batch_sizes: list[int], tools: list[str], *, exe: str = "compute-sanitizer"
) -> int:
    try:
        runs = sanitize(impl, tuple(batch_sizes), tuple(tools), exe=exe)
    except SanitizerError as e:
        print(f"decodekit sanitize: {e}", file=sys.stderr)
        return 2
    print(f"{'tool':<10} {'errors':>6}  result   ({impl}, B in {batch_sizes})")
    for r in runs:
        errs = "?" if r.errors is None else str(r.errors)
        print(f"{r.tool:<10} {errs:>6}  {'clean' if r.clean else 'FAIL'}")
    for r in runs:
        if not r.clean:
            print(f"--- {r.tool} (exit {r.returncode}) ---\n{r.tail}")
    return 0 if all(r.clean for r in runs) else 1


def _child(impl_name: str, batch_sizes: list[int]) -> int:
    from decodekit.impls.registry import get
    from decodekit.measure.check import check

    impl = get(impl_name)
    ok = True
    for B in batch_sizes:
        res = check(impl, B, device="cuda")
        print(res.summary())
        ok &= res.passed
    return 0 if ok else 1


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--child", action="store_true")
    p.add_argument("--impl", required=True)
    p.add_argument("--batch-sizes", default="1,3,64")
    a = p.parse_args()
    bs = [int(x) for x in a.batch_sizes.split(",")]
    sys.exit(_child(a.impl, bs) if a.child else cli_sanitize(a.impl, bs, list(TOOLS)))
