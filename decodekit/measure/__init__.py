"""One measurement: check, then time, then a :class:`~decodekit.records.schema.Record`.

The measure layer is this package: :func:`measure` (here), the timers (``timing``,
``cupti_timer``, ``trial``), statistics (``stats``), the oracle check (``check``,
``family_check``), floors, and what runs measurements: ``bench``, ``tuning``, ``sweep``,
``host``, ``ncu``, ``sanitize``, ``experiment`` and ``fleet`` (several GPUs).

:func:`measure` is the kit's one path from an implementation and a workload to a number.
The bench (:mod:`decodekit.measure.bench`), the tuner (:mod:`decodekit.measure.tuning`), the floors
(:mod:`decodekit.measure.floors`), the host-overhead figures (:mod:`decodekit.measure.host`) and the
experiments (:mod:`decodekit.measure.experiment`, ``experiments/``) all call it; the store
(:mod:`decodekit.records`) writes what it returns. It never times an implementation that has
not just passed :func:`decodekit.measure.check.check` on fresh, seeded inputs (NaN-poisoned outputs,
fp64 oracle) unless the caller says it checked (``check=False``, or a passed result).

A *protocol* (a :class:`Preset`) names the timing method, the warm-up / timed calls / trials
and the headline statistic; the methods themselves are stated once, in :mod:`decodekit.measure.timing`:

=============  ===============  ========================  ==================  ===============
preset         method           warm-up / iters / trials  headline            reproduces
=============  ===============  ========================  ==================  ===============
``contest``    ``cupti-cold``   10 / 50 / 3               median-then-mean    flashinfer-bench
                                                                              main (the contest)
``standard``   ``cupti-cold``   3 / 100 / 5               median              the kit's headline
``quick``      ``events-cold``  3 / 30 / 2                median              a fast look
``seed``       ``fib-0.1.2``    3 / 100 / 5               mean                the seed's runs
``fib-0.1.2``  ``fib-0.1.2``    10 / 50 / 3               mean                flashinfer-bench
                                                                              0.1.2 (PyPI)
=============  ===============  ========================  ==================  ===============


Without CUPTI, ``cupti-cold`` presets fall back to ``events-cold`` and the record says so
(``method`` is what ran, ``note`` why).

>>> from decodekit.measure.trial import Samples
>>> class Clock:  # a stand-in timer: every call takes 2 us
...     def unavailable(self, method, device): return None
...     def trial(self, method, target, n_warmup, n_iter):
...         target(); return Samples([2.0] * n_iter)
>>> r = measure("torch-fp32", 1, "quick", timer=Clock(), device="cpu")
>>> r.status.value, r.latency_us, r.get("check"), r.method
('ok', 2.0, 'passed', 'events-cold')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from decodekit.impls.impl import Impl
from decodekit.measure import family_check
from decodekit.measure.check import CheckResult
from decodekit.measure.check import check as run_check
from decodekit.measure.stats import summarize
from decodekit.measure.timing import DeviceTimer, Target, Timer
from decodekit.problem.contracts import bind, check_contract
from decodekit.problem.family import Case
from decodekit.problem.workloads import Workload, empty_outputs, make_inputs, select
from decodekit.records.env import source_digest
from decodekit.records.schema import Record, Status


@dataclass(frozen=True)
class Preset:
    name: str
    method: str
    n_warmup: int
    n_iter: int
    n_trials: int
    statistic: str
    fallback: str | None = None


PRESETS = {
    p.name: p
    for p in (
        Preset("contest", "cupti-cold", 10, 50, 3, "median-then-mean", fallback="events-cold"),
        Preset("standard", "cupti-cold", 3, 100, 5, "median", fallback="events-cold"),
        Preset("quick", "events-cold", 3, 30, 2, "median"),
        # the contest's method with few calls: for slow references (torch-loop) in the score
        Preset("contest-short", "cupti-cold", 2, 10, 1, "median", fallback="events-cold"),
        Preset("seed", "fib-0.1.2", 3, 100, 5, "mean"),
        Preset("fib-0.1.2", "fib-0.1.2", 10, 50, 3, "mean"),
    )
}


def get_preset(name: str | Preset) -> Preset:
    if isinstance(name, Preset):
        return name
    if name not in PRESETS:
        raise KeyError(f"argument 'preset': expected one of {list(PRESETS)}, got {name!r}")
    return PRESETS[name]


def as_impl(impl: str | Impl | object) -> Impl:
    """A registry name, an :class:`Impl`, or any DPS callable (wrapped as kind ``adhoc``)."""
    if isinstance(impl, str):
        from decodekit.impls import registry  # the catalog loads every implementation

        return registry.get(impl)
    if isinstance(impl, Impl):
        return impl
    if callable(impl):
        name = getattr(impl, "__name__", type(impl).__name__)
        return Impl(
            name=name,
            kind="adhoc",
            description="ad hoc callable",
            factory=lambda: impl,
            device="any",
            kernels_per_call=getattr(impl, "kernels_per_call", 1),  # a peer may declare more
        )
    raise TypeError(f"argument 'impl': expected a name, an Impl or a callable, got {impl!r}")


def as_workload(workload: Workload | int | str) -> Workload:
    """A :class:`Workload`, a contest workload's uuid or name, or a batch size (one workload
    of the manifest)."""
    if isinstance(workload, Workload):
        return workload
    found = select(workload)
    if len(found) != 1:
        raise ValueError(
            f"argument 'workload': expected one workload, {workload!r} names {len(found)}"
        )
    return found[0]


def as_device(device: str | torch.device | None) -> torch.device:
    """The device to run on: CUDA with its index when there is one, else the CPU."""
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def resolve_method(
    timer: Timer, device: torch.device, method: str, fallback: str | None
) -> tuple[str, str | None, str | None]:
    """(method to run, note, reason it cannot run)."""
    why = timer.unavailable(method, device)
    if why is None:
        return method, None, None
    if fallback and timer.unavailable(fallback, device) is None:
        return fallback, f"{method} unavailable ({why}); fell back to {fallback}", None
    return method, None, why


def trial_target(
    fn, inputs: dict, batch_size: int, device: torch.device, contract: str = "dps"
) -> Target:
    """The call of one trial: outputs allocated once per trial, as flashinfer-bench does, and
    bound as ``contract`` says (in place: a copy of the state, updated by every call). Every
    sweep sees the same buffer placement as the bench (in full runs placement
    moves memory-bound kernels by up to 8% at B=4 and 8, kernels/README.md)."""
    outputs = empty_outputs(batch_size, device, poison=False)
    return Target(fn, bind(contract, inputs, outputs), device)


def case_target(fn, inputs: dict, case: Case, device: torch.device) -> Target:
    """The call of one trial of a family case: its output buffer, and the state bound as the
    member's contract says (a pool: a copy, updated in place by every call; dense: a
    separate ``new_state``)."""
    m = case.member
    out = torch.empty(m.output_shape(case.batch_size), dtype=torch.bfloat16, device=device)
    state = inputs["state"]
    if m.layout == "pool":
        state = state.clone()
        kw = {**inputs, "state": state, "output": out, "new_state": state}
    else:
        kw = {**inputs, "output": out, "new_state": torch.empty_like(state)}
    if m.intermediate:  # a verify call: every token's state by batch row, [B, T, HV, V, K]
        kw["intermediate_states"] = torch.empty(m.intermediate_shape(case.batch_size),
                                                dtype=m.dtype, device=device)  # fmt: skip
    return Target(fn, kw, device)


def kernel_set(per_trial: list, expected: int | None = 1) -> dict:
    """Record fields from the GPU activities seen per call (a list per trial of per-sample
    name tuples, or None where the timer does not see them): ``n_kernels`` (the most common
    count), ``kernels`` (the most common set), ``kernel_sets`` (distinct sets seen) and
    ``kernel_flag`` (why the span is not one declared kernel per call, else None).
    ``expected`` None is a declared multi-kernel implementation: only a changing set is
    flagged.

    >>> kernel_set([[("k",), ("k",)]])["kernel_flag"] is None
    True
    >>> kernel_set([[("copy", "k"), ("copy", "k")]])["kernel_flag"]
    'launches 2 GPU activities per call (declared 1): copy, k'
    """
    samples = [k for trial in per_trial if trial for k in trial]
    if not samples:
        return {}
    counts: dict[tuple, int] = {}
    for k in samples:
        counts[k] = counts.get(k, 0) + 1
    common = max(counts, key=counts.get)
    flag = None
    if len(counts) > 1:
        flag = f"the kernel set changed between calls ({len(counts)} sets)"
    elif expected is not None and len(common) != expected:
        flag = (
            f"launches {len(common)} GPU activities per call (declared {expected}): "
            + ", ".join(common)
        )
    return {
        "n_kernels": len(common),
        "kernels": list(common),
        "kernel_sets": len(counts),
        "kernel_flag": flag,
    }


def measure(
    impl: str | Impl | Callable,
    workload: Workload | int | str | None,
    protocol: str | Preset = "quick",
    *,
    before: Callable[[], None] | None = None,
    timer: Timer | None = None,
    method: str | None = None,
    device: str | torch.device | None = None,
    contract: str | None = None,
    check: bool | CheckResult = True,
    inputs: dict | None = None,
    fields: dict | None = None,
) -> Record:
    """Check ``impl`` on ``workload``, then time it as ``protocol`` says; the record.

    ``workload``: a contest workload (or its uuid, name or batch size), a case of a family
    member (:class:`decodekit.problem.family.Case`: checked with its contracts by
    :func:`decodekit.measure.family_check.check`, timed in the member's contract, a pool in
    place on a copy per trial), or None: a call with no workload (a once-per-run floor), timed
    on ``inputs`` as they are, unchecked.

    ``method``: another timing method with the protocol's counts and statistic (the
    protocol's own falls back as it says). ``before()`` runs before every timed call, after
    the L2 flush, untimed: the condition an experiment varies (cold methods only).
    ``contract`` (:mod:`decodekit.problem.contracts`; default the implementation's native
    one) binds the buffers of the check and of every timed call. ``check``: True checks on
    fresh inputs and times on them; a passed check result reuses its verdict and inputs;
    False times unchecked (a floor, or a caller that checked). ``inputs`` are the call's
    keyword arguments, used as they are (outputs included: an experiment's placement, a
    floor's buffers). ``fields`` are recorded as they are (tags), over the protocol's. Never
    raises for the implementation's sake: what stops it is the record's status and note."""
    p = get_preset(protocol)
    im, dev = as_impl(impl), as_device(device)
    case = workload if isinstance(workload, Case) else None  # a family member's workload
    w = case or (as_workload(workload) if workload is not None else None)
    if w is None and (inputs is None or check is not False):
        raise ValueError("argument 'workload': None needs inputs= and check=False (no oracle)")
    call = im if isinstance(impl, (str, Impl)) else impl  # a bare callable is called as is
    contract = check_contract(case.member.contract if case else (contract or im.contract))
    timer = timer or DeviceTimer()
    wanted = method or p.method
    extra = {
        "workload": (f"B{w.batch_size}" if case else w.name) if w else None,
        **({"definition": case.member.name} if case else {}),
        "contract": contract,
        "parent": im.parent,
        "source_digest": source_digest(im if call is im else call),  # a launcher: its .cu
        "preset": p.name,
        "statistic": p.statistic,
        "n_warmup": p.n_warmup,
        "n_iter": p.n_iter,
        "n_trials": p.n_trials,
        **(fields or {}),
    }

    def rec(status: Status, note: str | None = None, at: str = wanted, **more) -> Record:
        uuid, batch_size = (w.uuid, w.batch_size) if w else (None, None)
        lat = more.pop("latency_us", None)
        return Record(impl=im.name, method=at, status=status, latency_us=lat, uuid=uuid,
                      batch_size=batch_size, impl_kind=im.kind, note=note,
                      fields={**extra, **more})  # fmt: skip

    why = im.unavailable()
    if why:
        return rec(Status.UNAVAILABLE, why)
    if contract not in im.contracts and not case:  # a case's contract is its member's
        return rec(Status.UNSUPPORTED, f"{im.name} does not support the {contract!r} contract "
                   f"(it supports {', '.join(im.contracts)})")  # fmt: skip
    gate = check
    if gate is True:
        gate = (family_check.check(call, case, str(dev)) if case
                else run_check(call, w, device=str(dev), contract=contract))  # fmt: skip
    bound = inputs is not None  # the caller's arguments, used as they are
    if isinstance(gate, (CheckResult, family_check.FamilyResult)):
        if not gate.passed:
            return rec(Status.CHECK_FAILED, gate.summary())
        extra["check"] = "passed"
        if getattr(gate, "notes", None):  # parts of the contract the implementation declares away
            extra["check_notes"] = "; ".join(gate.notes)
        inputs = inputs if bound else gate.inputs
    if inputs is None:
        inputs = family_check.fresh_inputs(case, dev) if case else make_inputs(w, dev)
    fallback = p.fallback if wanted == p.method else None
    ran, note, why = resolve_method(timer, dev, wanted, fallback)
    if why:
        return rec(Status.UNAVAILABLE, why)
    hook = {"before": before} if before is not None else {}

    def target() -> Target:
        if bound:
            return Target(call, inputs, dev)
        if case:
            return case_target(call, inputs, case, dev)
        return trial_target(call, inputs, w.batch_size, dev, contract)

    try:
        trials = [
            timer.trial(ran, target(), p.n_warmup, p.n_iter, **hook) for _ in range(p.n_trials)
        ]
    except Exception as e:  # a method that fails on this impl is a finding, not a crash
        return rec(Status.ERROR, f"{type(e).__name__}: {e}", at=ran)
    stats = summarize([t.us for t in trials], statistic=p.statistic).row()
    figures = {k: v for k, v in stats.items() if k != "latency_us"}
    for key in trials[0].extra:
        vals = np.concatenate([t.extra[key] for t in trials])
        figures[key] = float(np.mean(vals) if key == "prequeue_missed" else np.median(vals))
    figures.update(kernel_set([getattr(t, "kernels", None) for t in trials], im.kernels_per_call))
    return rec(Status.OK, note, at=ran, latency_us=stats["latency_us"], **figures)
