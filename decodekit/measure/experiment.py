"""What every experiment script (``experiments/<date>_<name>/run.py``; its results in
``data/experiments/<date>_<name>/``) shares: the contest
method's timing with a hook between the flush and the call, and a provenance-complete
``results.json``.

An experiment asks one question a bench run cannot (what changes if the code, the state or
the new_state is in L2 when the call starts; what a kernel's parts cost); its script states
the question, the conditions and how to run it, and keeps every figure it prints in its
record. The timing is the bench's own (``cupti-cold``, :mod:`decodekit.measure.cupti_timer`), so its
figures compare with bench records of the same GPU.

>>> rec = record("2026-11-26_demo", {"us": {"k": 1.0}}, sources=[], environment={"gpu": "x"})
>>> sorted(rec)
['date', 'environment', 'experiment', 'git_commit', 'method', 'source_digests', 'us']
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from decodekit.measure import Preset, get_preset, measure
from decodekit.measure.timing import DeviceTimer
from decodekit.records import now

# The contest preset's protocol, stated once in decodekit.measure.PRESETS.
_CONTEST = get_preset("contest")
COUNTS = (_CONTEST.n_warmup, _CONTEST.n_iter, _CONTEST.n_trials)  # warm-up, timed, trials
STATISTIC = _CONTEST.statistic
METHOD = _CONTEST.method


def protocol(counts: tuple[int, int, int] = COUNTS) -> Preset:
    """The contest's protocol (``cupti-cold``, median-then-mean) with ``counts`` (warm-up,
    timed calls, trials)."""
    if len(counts) != 3 or min(counts) < 1:
        raise ValueError(f"argument 'counts': expected 3 ints >= 1, got {counts!r}")
    return Preset("experiment", METHOD, *counts, STATISTIC)


def cold_us(
    fn: Callable,
    kwargs: dict,
    device: torch.device,
    before: Callable[[], None] | None = None,
    counts: tuple[int, int, int] = COUNTS,
    timer: DeviceTimer | None = None,
) -> float:
    """``fn(**kwargs)`` timed like the contest (L2 flushed before every call, CUPTI kernel
    time, median per trial, mean over trials), with ``before()`` run after each flush and
    before the call: the condition the experiment varies. ``before``'s own kernels are not
    counted: CUPTI times only the target's launch. Unchecked: :func:`sweep` checks, or the
    caller does; one :func:`decodekit.measure.measure`.
    """
    rec = measure(fn, None, protocol(counts), before=before, timer=timer, device=device,
                  check=False, inputs=kwargs)  # fmt: skip
    if not rec.ok:
        raise RuntimeError(f"{getattr(fn, '__name__', fn)!r} not timed: {rec.note}")
    return round(rec.latency_us, 3)


def sweep(
    targets: dict[str, Callable],
    batch_sizes: Iterable[int],
    conditions: Callable[[dict, dict], dict],
    device: torch.device,
    passes: int = 2,
    no_check: Iterable[str] = (),
    counts: tuple[int, int, int] = COUNTS,
) -> dict:
    """Time every target at every batch size under every condition, ``passes`` times.

    Per batch size the arguments are one synthetic workload's (:func:`make_inputs` plus output
    buffers) and ``other`` a second set drawn with another seed; ``conditions(args, other)``
    maps condition names to ``before`` hooks (None: the flush only). Each target not in
    ``no_check`` is checked against the fp64 oracle (fresh inputs) on its first pass and,
    failing, is not timed: :func:`decodekit.measure.measure` does both. Returns
    ``{target: {str(B): {condition: [µs per pass]}}}``, printing each row.
    """
    from decodekit.problem.workloads import empty_outputs, make_inputs, synthetic

    unchecked, failed = set(no_check), set()
    timer, p = DeviceTimer(), protocol(counts)
    out: dict = {}
    for n in range(passes):
        for B in batch_sizes:
            w = synthetic(B)
            args = {**make_inputs(w, device), **empty_outputs(B, device, poison=False)}
            other = {**make_inputs(w, device, seed=1), **empty_outputs(B, device, poison=False)}
            for name, fn in targets.items():
                if name in failed:
                    continue
                row = out.setdefault(name, {}).setdefault(str(B), {})
                for cond, before in conditions(args, other).items():
                    check = n == 0 and name not in unchecked and not row
                    rec = measure(fn, w, p, before=before, timer=timer, device=device,
                                  check=check, inputs=args)  # fmt: skip
                    if not rec.ok:
                        print(f"{name} B={B}: {rec.status.value}, not timed: {rec.note}")
                        failed.add(name)
                        break
                    row.setdefault(cond, []).append(round(rec.latency_us, 3))
                if name not in failed:
                    print(name, B, {c: v[-1] for c, v in row.items()}, flush=True)
    return out


def record(
    name: str,
    results: dict,
    sources: Iterable[str | Path],
    environment: dict,
    method: str = f"{METHOD} {COUNTS}, {STATISTIC}",
) -> dict:
    """The experiment's record: its results with name, date, method, environment
    (:func:`decodekit.records.env.capture`), commit and a digest of every source that ran."""
    digests = {Path(p).name: hashlib.sha256(Path(p).read_bytes()).hexdigest()[:16] for p in sources}
    return {
        "experiment": name,
        "date": now(),
        "method": method,
        "environment": environment,
        "git_commit": os.environ.get("DECODEKIT_GIT_COMMIT") or environment.get("git_commit"),
        "source_digests": digests,
        **results,
    }


def write(here: str | Path, rec: dict) -> Path:
    """Write ``rec`` as ``results.json`` under ``$OUT`` when set (a lent GPU machine), else in
    ``here`` (the experiment's folder under ``data/experiments/``)."""
    dest = Path(os.environ.get("OUT") or here) / "results.json"
    dest.write_text(json.dumps(rec, indent=1) + "\n")
    return dest
