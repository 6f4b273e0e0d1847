"""The benchmark harness: one call per implementation x workload, every figure through
:func:`decodekit.measure.measure`, written to the run's records file.

:func:`bench` refuses to time an implementation that has not just passed
:func:`decodekit.measure.check.check` on that workload in this process: a failure is recorded with
status ``check-failed`` and the check's summary, and carries no latency. Presets (the
protocols: method, counts, statistic) are listed in :mod:`decodekit.measure`. Extra methods
(``graph-hot``, ``host-dispatch``, ``wall``) are added with ``methods=``, with the preset's
counts and headline statistic.

The memory floor is measured in the same run with the same method: ``copy-floor`` (a torch
copy of a state-sized tensor, per batch size), ``copy-peak`` (a 1 GiB copy, read + write)
and ``empty-kernel`` (an empty kernel through the kit's launch path, once per run), see
:mod:`decodekit.measure.floors`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from decodekit import records
from decodekit.impls.registry import Impl
from decodekit.measure import Preset, as_device, as_impl, as_workload, get_preset, measure
from decodekit.measure.floors import Floors
from decodekit.measure.stats import memory_figures
from decodekit.measure.timing import COLD_METHODS, DeviceTimer, Timer
from decodekit.problem.contracts import check_contract
from decodekit.problem.spec import bytes_moved
from decodekit.problem.workloads import Workload
from decodekit.records.env import capture
from decodekit.records.schema import Record, Status

# What stops an implementation before any timing: recorded once for every wanted method.
REFUSALS = (Status.UNAVAILABLE, Status.UNSUPPORTED, Status.CHECK_FAILED)

# Methods whose samples are GPU time of the call (or include it), so GB/s means something.
BANDWIDTH_METHODS = COLD_METHODS + ("graph-hot", "fib-0.1.2")


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
    dev = as_device(device)
    timer = timer or DeviceTimer()
    rec = records.Recorder(out_dir, env=capture(dev))
    use_floors = dev.type == "cuda" if floors is None else floors
    return Run(dev, timer, rec, Floors(dev, timer, peak_bytes) if use_floors else None)


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

    ``contract`` (:mod:`decodekit.problem.contracts`; default the implementation's native one) binds
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
    wanted = list(dict.fromkeys([p.method, *methods]))
    common = dict(timer=run.timer, device=run.device, contract=contract, fields=tags)
    out: list[Record] = []
    nbytes = bytes_moved(w.batch_size)["total"]
    for m in wanted:  # each method checked on its own fresh inputs, then timed on them
        rec = measure(im, w, p, method=m, **common)
        checked = rec.get("check") == "passed"
        if rec.status in REFUSALS and not checked:  # the impl, its contract or its check
            out += [rec.replace(method=x) for x in wanted]
            break
        if checked:
            rec = rec.replace(**tuning_fields(im))
        if rec.ok:
            measured = run.floors is not None and rec.method in BANDWIDTH_METHODS
            floor = run.floors.measure(w.batch_size, rec.method, p) if measured else {}
            out += floor.get("rows", [])
            # GB/s only where a sample is GPU time of the call; host methods keep the bytes.
            gpu_us = rec.latency_us if rec.method in BANDWIDTH_METHODS else None
            figures = memory_figures(
                nbytes, gpu_us, floor.get("copy_us"), floor.get("peak_gbps"),
                floor.get("row_copy_us"),
            )  # fmt: skip
            rec = rec.replace(**figures)
        out.append(rec)
    return run.recorder.append(out)


def tuning_fields(im: Impl) -> dict:
    """What a dispatching implementation (``best``) says of the table it runs: the table
    file, the GPU it was tuned on, and whether that is this GPU."""
    fn = im.fn
    info = getattr(fn, "tuning", None)
    return dict(info) if isinstance(info, dict) else {}
