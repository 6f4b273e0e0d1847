"""``decodekit check`` and ``decodekit drift``: an implementation, or a member of the decode
family (``--definition``), against the fp64 oracle; a state fed back for many steps."""

from __future__ import annotations

import sys


def check_command(args) -> int:
    import torch

    from decodekit.impls.registry import get
    from decodekit.measure.check import check
    from decodekit.problem.workloads import select

    if args.definition and args.definition != "gdn_decode_qk4_v8_d128_k_last":
        return _check_family(args)
    impl = get(args.impl)
    why = impl.unavailable()
    if why:
        print(f"{impl.name}: cannot run here: {why}", file=sys.stderr)
        return 2
    import json

    device = "cuda" if torch.cuda.is_available() else "cpu"
    failed = 0
    if not args.json:
        print(f"{'workload':<10} {'B':>4}  {'result':<6} details")
    for w in select(args.workloads):
        for profile in args.profiles.split(","):
            res = check(impl, w, device=device, profile=profile)
            failed += not res.passed
            if args.json:
                print(json.dumps({**res.row(), "impl": impl.name, "profile": profile}))
                continue
            tag = "pass" if res.passed else "FAIL"
            detail = "" if res.passed else res.summary()
            out = res.reports[0] if res.reports else None
            if res.passed and out is not None:
                detail = (
                    f"{profile}: out rel {out.rel_err:.2e}, state rel {res.reports[1].rel_err:.2e}"
                )
            print(f"{w.name:<10} {w.batch_size:>4}  {tag:<6} {detail}")
    if not args.json:
        print(f"{impl.name}: {'all passed' if not failed else f'{failed} FAILED'}")
    return 1 if failed else 0


def _family_builder(name: str, member):
    """``member -> implementation`` for ``--impl`` on a family definition (drift builds the
    member's dense twins); errors name the argument."""
    from functools import partial

    from decodekit.impls import family_kernels

    why = family_kernels.supports(member) if family_kernels.is_kit(name) else None
    if why:
        raise ValueError(f"argument '--impl': the kit kernel cannot run {member.name}: {why}")
    if why := family_kernels.needs_gpu(name):
        raise ValueError(f"argument '--impl': {why}")
    family_kernels.implementation(name, member)  # an unknown name is an error here
    return partial(family_kernels.implementation, name)


def _family_impl(name: str, member):
    return _family_builder(name, member)(member)


def _check_family(args) -> int:
    import json

    import torch

    from decodekit.measure import family_check
    from decodekit.problem import family

    member = family.parse(args.definition)
    impl = _family_impl(args.impl, member)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    failed = 0
    for case in family.load_cases(member):
        if args.workloads not in ("representative", "contest", "all"):
            wanted = {int(x.strip().lstrip("Bb")) for x in args.workloads.split(",")}
            if case.batch_size not in wanted:
                continue
        res = family_check.check(impl, case, device)
        failed += not res.passed
        if args.json:
            print(json.dumps({"definition": member.name, "batch_size": case.batch_size,
                              "uuid": case.uuid, "passed": res.passed,
                              "summary": res.summary()}))  # fmt: skip
        else:
            print(
                f"B={case.batch_size:<4} {'pass' if res.passed else 'FAIL'}  {res.summary()[:200]}"
            )
    if not args.json:
        print(f"{member.name} {args.impl}: {'all passed' if not failed else f'{failed} FAILED'}")
    return 1 if failed else 0


def drift_command(a) -> int:
    import torch

    from decodekit.measure import family_check
    from decodekit.problem import family

    member = family.parse(a.definition)
    build = _family_builder(a.impl, member)
    device = "cuda" if a.impl == "kit" or torch.cuda.is_available() else "cpu"
    df = family_check.drift(build, member, batch_size=a.batch_size, steps=a.steps, device=device)
    at = sorted({1, 16, 64, a.steps} & set(df["step"]))
    t = df[df["step"].isin(at)].pivot(index="step", columns="state_dtype", values="state_rel")
    print(f"{member.name}, B={a.batch_size}: ||S - S_fp64|| / ||S_fp64|| after each step")
    print(t.to_string(float_format=lambda x: f"{x:.3e}"))
    return 0
