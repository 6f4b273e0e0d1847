"""``cupti-cold``: GPU time of the work a call launches, from CUPTI activity records.

Per sample, as flashinfer-bench main does: zero a buffer twice the L2 size, synchronize,
take a CUPTI timestamp, call, take another, synchronize. The runtime and driver API calls
made between the two timestamps give correlation ids; the kernels, memcpys and memsets with
those ids are the call's GPU work. The sample is their span (first start to last end, so
gaps between several kernels count); the sum of their durations, their count and their
names (kernel names; ``memcpy`` / ``memset`` for copies) are kept, so a call that launches
more than one kernel, or a different set from one call to the next, can be flagged.

``cupti-python`` (``pip install cupti-python``, CUDA 13+) is imported lazily; without it
:func:`probe` says why and the presets fall back to ``events-cold``.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable

import torch

from decodekit.measure.trial import Samples, Target

BUFFER_BYTES = 8 << 20


def _cupti():
    from cupti import cupti

    return cupti


def _kinds(cupti) -> tuple[tuple, tuple]:
    k = cupti.ActivityKind
    return (k.RUNTIME, k.DRIVER), (k.CONCURRENT_KERNEL, k.MEMCPY, k.MEMSET)


def probe() -> str | None:
    """Why ``cupti-cold`` cannot run here, or None. Enables and disables kernel activity
    once, so a CUPTI that does not match the driver is caught before a sweep starts."""
    try:
        cupti = _cupti()
    except ImportError as e:
        return f"cupti-python not importable ({e}); pip install cupti-python"
    try:
        cupti.activity_enable(cupti.ActivityKind.CONCURRENT_KERNEL)
        cupti.activity_disable(cupti.ActivityKind.CONCURRENT_KERNEL)
        cupti.finalize()
    except Exception as e:  # a CUPTI that does not match the driver raises here
        return f"CUPTI unusable: {type(e).__name__}: {e}"
    return None


def spans(
    api: list[tuple[int, int]], gpu: list[tuple], windows: list[tuple[int, int]]
) -> tuple[list[float], list[float], list[float], list[tuple[str, ...]]]:
    """Per window: (span µs, sum µs, count, names) of the GPU activities whose launching API
    call started inside it. ``api``: (start_ns, correlation_id); ``gpu``: (start_ns, end_ns,
    correlation_id[, name]). Raises when a window launched no GPU work.

    >>> spans([(5, 1), (7, 2), (20, 3)], [(10, 12_000, 1, "k"), (13_000, 14_000, 2, "memset"),
    ...       (30, 40, 3, "k")], [(0, 9)])
    ([13.99], [12.99], [2.0], [('k', 'memset')])
    """
    api = sorted(api)
    starts = [a[0] for a in api]
    by_corr: dict[int, list[tuple[int, int, str]]] = {}
    for s, e, c, *name in gpu:
        by_corr.setdefault(c, []).append((s, e, name[0] if name else "?"))
    span_us, sum_us, count, names = [], [], [], []
    for i, (t0, t1) in enumerate(windows):
        lo, hi = bisect.bisect_left(starts, t0), bisect.bisect_right(starts, t1)
        acts = sorted(x for _, c in api[lo:hi] for x in by_corr.get(c, ()))
        if not acts:
            raise RuntimeError(f"CUPTI recorded no GPU activity for call {i} of the trial")
        span_us.append((max(e for _, e, _ in acts) - min(s for s, _, _ in acts)) / 1e3)
        sum_us.append(sum(e - s for s, e, _ in acts) / 1e3)
        count.append(float(len(acts)))
        names.append(tuple(n for _, _, n in acts))
    return span_us, sum_us, count, names


def cupti_trial(
    t: Target,
    n_warmup: int,
    n_iter: int,
    flush: Callable[[torch.device], None],
    sync: Callable[[torch.device], None],
) -> Samples:
    """One ``cupti-cold`` trial of ``t``; ``flush`` and ``sync`` come from the timer."""
    cupti = _cupti()
    dev = t.device
    for _ in range(n_warmup):
        flush(dev)
        t()
    sync(dev)
    api: list[tuple[int, int]] = []
    gpu: list[tuple[int, int, int]] = []
    api_kinds, gpu_kinds = _kinds(cupti)

    def requested():
        return BUFFER_BYTES, 0

    # CUPTI may call this from its own thread; list.append is atomic under the GIL.
    kernel_kind = cupti.ActivityKind.CONCURRENT_KERNEL
    copy_kind = cupti.ActivityKind.MEMCPY

    def completed(activities):
        for a in activities:
            if a.kind in gpu_kinds:
                name = (
                    getattr(a, "name", None) or "kernel"
                    if a.kind == kernel_kind
                    else ("memcpy" if a.kind == copy_kind else "memset")
                )
                gpu.append((a.start, a.end, a.correlation_id, str(name)))
            elif a.kind in api_kinds:
                api.append((a.start, a.correlation_id))

    windows = []
    for k in api_kinds + gpu_kinds:
        cupti.activity_enable(k)
    try:
        cupti.activity_register_callbacks(requested, completed)
        for _ in range(n_iter):
            flush(dev)
            sync(dev)
            t0 = cupti.get_timestamp()
            t()
            t1 = cupti.get_timestamp()
            sync(dev)
            windows.append((t0, t1))
        cupti.activity_flush_all(1)
    finally:
        for k in api_kinds + gpu_kinds:
            cupti.activity_disable(k)
        cupti.finalize()
    span_us, sum_us, count, names = spans(api, gpu, windows)
    return Samples(span_us, {"sum_us": sum_us, "n_kernels": count}, kernels=names)
