"""The benchmark harness: check, then time, then record; one call per implementation x workload.

:func:`bench` refuses to time an implementation that has not just passed
:func:`decodekit.check.check` on that workload in this process: a failure is recorded with
status ``check-failed`` and the check's summary, and carries no latency. The timing methods
are stated once, in :mod:`decodekit.timing`; presets name a protocol:

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
(``method`` is what ran, ``note`` why). Extra methods (``graph-hot``, ``host-dispatch``,
``wall``) are added with ``methods=``, with the preset's counts and headline statistic.

The memory floor is measured in the same run with the same method: ``copy-floor`` (a torch
copy of a state-sized tensor, per batch size), ``copy-peak`` (a 1 GiB copy, read + write)
and ``empty-kernel`` (an empty kernel through the kit's launch path, once per run), see
:mod:`decodekit.floors`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from decodekit import records, registry
from decodekit.check import check
from decodekit.contracts import bind, check_contract
from decodekit.env import capture, source_digest
from decodekit.floors import Floors
from decodekit.registry import Impl
from decodekit.spec import bytes_moved
from decodekit.stats import memory_figures, summarize
from decodekit.timing import COLD_METHODS, DeviceTimer, Target, Timer
from decodekit.workloads import Workload, empty_outputs, select

# Methods whose samples are GPU time of the call (or include it), so GB/s means something.
BANDWIDTH_METHODS = COLD_METHODS + ("graph-hot", "fib-0.1.2")


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


@dataclass
class Run:
    """State shared by the calls of one run: device, timer, recorder, measured floors."""

    device: torch.device
    timer: Timer
    recorder: records.Recorder
    floors: Floors | None = None
    notes: dict = field(default_factory=dict)


def open_run(
    device: str | torch.device | None = None,
    *,
    out_dir=records.AUTO,
    timer: Timer | None = None,
    floors: bool | None = None,
    peak_bytes: int = 1 << 30,
) -> Run:
    """Start a run: capture the environment once, open its records file under ``out_dir``
    (``None``: keep rows in memory only). Floors are measured on CUDA devices by default."""
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    timer = timer or DeviceTimer()
    rec = records.Recorder(out_dir, env=capture(dev))
    use_floors = dev.type == "cuda" if floors is None else floors
    return Run(dev, timer, rec, Floors(dev, timer, peak_bytes) if use_floors else None)


def as_impl(impl: str | Impl | object) -> Impl:
    """A registry name, an :class:`Impl`, or any DPS callable (wrapped as kind ``adhoc``)."""
    if isinstance(impl, str):
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
        )
    raise TypeError(f"argument 'impl': expected a name, an Impl or a callable, got {impl!r}")


def as_workload(workload: Workload | int | str) -> Workload:
    found = select(workload)
    if len(found) != 1:
        raise ValueError(
            f"argument 'workload': expected one workload, {workload!r} names {len(found)}"
        )
    return found[0]


def resolve_method(
    run: Run, method: str, fallback: str | None
) -> tuple[str, str | None, str | None]:
    """(method to run, note, reason it cannot run)."""
    why = run.timer.unavailable(method, run.device)
    if why is None:
        return method, None, None
    if fallback and run.timer.unavailable(fallback, run.device) is None:
        return fallback, f"{method} unavailable ({why}); fell back to {fallback}", None
    return method, None, why


def bench(
    impl: str | Impl | object,
    workload: Workload | int | str,
    *,
    preset: str | Preset = "quick",
    methods: list[str] | tuple = (),
    run: Run | None = None,
    device: str | None = None,
    out_dir=records.AUTO,
    contract: str | None = None,
    tags: dict | None = None,
) -> list[dict]:
    """Check ``impl`` on ``workload``, then time it with the preset's method and any extra
    ``methods``; append one record per method to the run's file and return the rows.

    ``contract`` (:mod:`decodekit.contracts`; default the implementation's native one) binds
    the buffers of the check and of every timed call, and is recorded. Where the timer sees
    the GPU activities of each call (``cupti-cold``), the record holds their count and names,
    and ``kernel_flag`` says what is off: more than the implementation declares per call, or
    a set that changed between calls (flashinfer-bench's kernel-set check).

    Without ``run`` a new run (a new records file under ``out_dir``) is opened for this call;
    sweeps share one :class:`Run` so the environment and floors are captured once."""
    run = run or open_run(device, out_dir=out_dir)
    p = get_preset(preset)
    im, w = as_impl(impl), as_workload(workload)
    contract = check_contract(contract or im.contract)
    base = {
        "impl": im.name,
        "impl_kind": im.kind,
        "contract": contract,
        "parent": im.parent,
        "source_digest": source_digest(im.source),
        "uuid": w.uuid,
        "workload": w.name,
        "batch_size": w.batch_size,
        "preset": p.name,
        "statistic": p.statistic,
        "n_warmup": p.n_warmup,
        "n_iter": p.n_iter,
        "n_trials": p.n_trials,
        **(tags or {}),  # e.g. the round of an interleaved A/B
    }
    wanted = list(dict.fromkeys([p.method, *methods]))

    def refuse(status: str, note: str) -> list[dict]:
        return run.recorder.append(
            [dict(base, method=m, status=status, note=note, latency_us=None) for m in wanted]
        )

    why = im.unavailable()
    if why:
        return refuse("unavailable", why)
    if contract not in im.contracts:
        return refuse(
            "unsupported",
            f"{im.name} does not support the {contract!r} contract (it supports "
            f"{', '.join(im.contracts)})",
        )
    gate = check(im, w, device=str(run.device), contract=contract)
    if not gate.passed:
        return refuse("check-failed", gate.summary())
    base["check"] = "passed"
    base.update(tuning_fields(im))

    rows = []
    inputs = gate.inputs  # the fresh inputs the check just passed on
    nbytes = bytes_moved(w.batch_size)["total"]
    for m in wanted:
        method, note, why = resolve_method(run, m, p.fallback if m == p.method else None)
        row = dict(base, method=method, note=note, latency_us=None)
        if why:
            rows.append(dict(row, status="unavailable", note=why))
            continue
        measured = run.floors is not None and method in BANDWIDTH_METHODS
        floor = run.floors.measure(w.batch_size, method, p) if measured else {}
        rows.extend(floor.get("rows", []))
        try:
            trials = [
                run.timer.trial(
                    method,
                    trial_target(im, inputs, w.batch_size, run.device, contract),
                    p.n_warmup,
                    p.n_iter,
                )
                for _ in range(p.n_trials)
            ]
        except Exception as e:  # a method that fails on this impl is a finding, not a crash
            rows.append(dict(row, status="error", note=f"{type(e).__name__}: {e}"))
            continue
        stats = summarize([t.us for t in trials], statistic=p.statistic)
        row.update(stats.row(), status="ok")
        for key in trials[0].extra:
            vals = np.concatenate([t.extra[key] for t in trials])
            row[key] = float(np.mean(vals) if key == "prequeue_missed" else np.median(vals))
        row.update(kernel_set([getattr(t, "kernels", None) for t in trials], im.kernels_per_call))
        # GB/s only where a sample is GPU time of the call; host methods keep the byte count.
        gpu_us = stats.latency_us if method in BANDWIDTH_METHODS else None
        row.update(
            memory_figures(
                nbytes,
                gpu_us,
                floor.get("copy_us"),
                floor.get("peak_gbps"),
                floor.get("row_copy_us"),
            )
        )
        rows.append(row)
    return run.recorder.append(rows)


def trial_target(
    fn, inputs: dict, batch_size: int, device: torch.device, contract: str = "dps"
) -> Target:
    """The call of one trial: outputs allocated once per trial, as flashinfer-bench does, and
    bound as ``contract`` says (in place: a copy of the state, updated by every call).
    :func:`decodekit.tuning.tune` times its candidates through this too, so a sweep sees the
    same buffer placement as the bench (in full runs that moves memory-bound kernels by up
    to 8% at B=4 and 8, kernels/README.md)."""
    outputs = empty_outputs(batch_size, device, poison=False)
    return Target(fn, bind(contract, inputs, outputs), device)


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


def tuning_fields(im: Impl) -> dict:
    """What a dispatching implementation (``best``) says of the table it runs: the table
    file, the GPU it was tuned on, and whether that is this GPU."""
    fn = im.fn
    info = getattr(fn, "tuning", None)
    return dict(info) if isinstance(info, dict) else {}
