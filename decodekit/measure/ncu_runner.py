"""The program :func:`decodekit.measure.ncu.profile` runs under Nsight Compute.

    python -m decodekit.measure.ncu_runner --impl NAME --workloads SPEC [--profile random]
    python -m decodekit.measure.ncu_runner --impl kit --definition MEMBER --workloads 1,64

For each workload: build its inputs, check the implementation once against the fp64 oracle
(exit 3 with the summary if it fails), warm up, then call it once inside an NVTX push/pop range
named after the workload uuid. ncu profiles only kernels inside those ranges
(``--nvtx-include "<uuid>/"``), so every profiled kernel maps to one workload, and the check and
warm-up launches stay out of the report.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

import torch

from decodekit.problem.workloads import PROFILES

WARMUP = 3


def nvtx_range_functions(device: str) -> tuple[Callable[[str], object], Callable[[], object]]:
    """``(push, pop)`` for push/pop ranges in NVTX's default domain, the one
    ``--nvtx-include "<name>/"`` matches.

    torch's own NVTX binding comes first: it pushes plain ASCII messages. The ``nvtx`` package
    is the fallback, with ``domain=None`` (its default-domain handle). Off CUDA, ranges are
    no-ops so the runner can be tried on a CPU.
    """
    if not device.startswith("cuda"):
        return (lambda name: None), (lambda: None)
    try:
        from torch._C import _nvtx  # noqa: F401  (absent in builds without NVTX)

        return torch.cuda.nvtx.range_push, torch.cuda.nvtx.range_pop
    except ImportError:
        pass
    try:
        import nvtx
    except ImportError as e:
        raise RuntimeError("no NVTX binding: this torch has none; pip install nvtx") from e
    return (lambda name: nvtx.push_range(name, domain=None)), (lambda: nvtx.pop_range(domain=None))


@contextmanager
def _range(push, pop, name: str) -> Iterator[None]:
    push(name)
    try:
        yield
    finally:
        pop()


def run(impl_name: str, workloads: str, profile: str = "random", device: str = "cuda") -> int:
    """Check, warm up and call ``impl_name`` once per workload; the exit status for the shell."""
    from decodekit.impls.registry import get
    from decodekit.measure.check import check
    from decodekit.problem.workloads import empty_outputs, make_inputs, select

    impl = get(impl_name)
    if _no_gpu(device):
        return 4
    why = impl.unavailable()
    if why:
        print(f"ncu_runner: implementation {impl.name!r} cannot run here: {why}", file=sys.stderr)
        return 4

    def calls():
        for w in dict.fromkeys(select(workloads)):
            inputs = make_inputs(w, device, profile=profile)
            res = check(impl, w, device=device, profile=profile, inputs=inputs)
            out = empty_outputs(w.batch_size, device, poison=False)
            yield w.uuid, f"{w.uuid} B={w.batch_size}", res, partial(impl, **inputs, **out)

    return _profile(impl.name, calls(), device)


def run_member(impl_name: str, definition: str, batch_sizes: str, device: str = "cuda") -> int:
    """:func:`run` for a family member: its implementation ``impl_name`` on the cases of
    ``batch_sizes``, each checked with the member's contracts, NVTX ranges named by case uuid."""
    from decodekit.impls.family_kernels import implementation
    from decodekit.measure.family_check import _outputs, check, fresh_inputs
    from decodekit.measure.ncu import member_cases
    from decodekit.problem.family import parse

    if _no_gpu(device):
        return 4
    member = parse(definition)
    fn = implementation(impl_name, member)

    def calls():
        for case in member_cases(member, batch_sizes):
            res = check(fn, case, device)
            inputs = fresh_inputs(case, device)
            dests = _outputs(case, inputs)  # a pool: in place on these inputs' own pool
            label = f"{member.name} {case.uuid} B={case.batch_size}"
            yield case.uuid, label, res, partial(fn, **inputs, **dests)

    return _profile(impl_name, calls(), device)


def _no_gpu(device: str) -> bool:
    if device.startswith("cuda") and not torch.cuda.is_available():
        print(
            "ncu_runner: no CUDA GPU visible (torch.cuda.is_available() is False)", file=sys.stderr
        )
        return True
    return False


def _profile(name: str, calls, device: str) -> int:
    """For each ``(uuid, label, check result, call)``: stop with 3 on a failed check, else warm
    up and make the call once inside the NVTX range ``uuid`` (what ncu profiles)."""
    push, pop = nvtx_range_functions(device)
    for uuid, label, res, call in calls:
        if not res.passed:
            print(f"ncu_runner: {name} failed the check: {res.summary()}", file=sys.stderr)
            return 3
        for _ in range(WARMUP):
            call()
        _sync(device)
        with _range(push, pop, uuid):
            call()
            _sync(device)
        print(f"ncu_runner: {name} {label} profiled", flush=True)
    return 0


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m decodekit.measure.ncu_runner", description=__doc__.split("\n")[0]
    )
    p.add_argument("--impl", required=True)
    p.add_argument("--workloads", default="representative")
    p.add_argument("--profile", default="random", choices=PROFILES, help="input profile")
    p.add_argument("--device", default="cuda", help="cuda (under ncu) or cpu (a dry run)")
    p.add_argument("--definition", help="a family member: --workloads are its batch sizes")
    a = p.parse_args(argv)
    if a.definition:
        return run_member(a.impl, a.definition, a.workloads, a.device)
    return run(a.impl, a.workloads, a.profile, a.device)


if __name__ == "__main__":
    sys.exit(main())
