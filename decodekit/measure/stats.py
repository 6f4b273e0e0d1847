"""Statistics of timing samples: pure functions, no clock, no GPU.

A measurement is a list of trials, each a list of per-call samples in microseconds.
The headline number depends on the protocol being reproduced (see :data:`STATISTICS`);
the other figures are always computed the same way, over all samples pooled.

>>> s = summarize([[10.0, 11.0, 12.0], [10.0, 10.5, 13.0]], statistic="median")
>>> s.latency_us, s.min_us, s.noisy
(10.75, 10.0, False)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

# A trial-to-trial spread above this fraction of the mean trial median flags the figure noisy.
NOISE_THRESHOLD = 0.05

STATISTICS = {
    "median": "median over all iterations of all trials",
    "mean": "mean over all iterations of all trials (flashinfer-bench 0.1.2)",
    "median-then-mean": "median over iterations per trial, then mean over trials "
    "(flashinfer-bench main)",
}


@dataclass(frozen=True)
class Stats:
    latency_us: float  # the headline, per ``statistic``
    statistic: str
    median_us: float
    mean_us: float
    p10_us: float
    p90_us: float
    min_us: float
    spread: float  # (max - min) of the trial medians over their mean
    noisy: bool
    trial_medians_us: tuple[float, ...]
    n_samples: int

    def row(self) -> dict:
        d = asdict(self)
        d["trial_medians_us"] = list(self.trial_medians_us)
        return d


def spread(trial_medians: list[float]) -> float:
    """Trial-to-trial spread: ``(max - min) / mean`` of the trial medians; 0 for one trial.

    >>> round(spread([10.0, 10.5, 11.0]), 4)
    0.0952
    """
    m = np.asarray(trial_medians, dtype=float)
    if m.size < 2 or m.mean() == 0:
        return 0.0
    return float((m.max() - m.min()) / m.mean())


def summarize(
    trials: list[list[float]], *, statistic: str = "median", threshold: float = NOISE_THRESHOLD
) -> Stats:
    """Summarize per-trial samples (µs). ``statistic`` picks the headline from
    :data:`STATISTICS`; ``threshold`` is the spread above which ``noisy`` is set."""
    if statistic not in STATISTICS:
        raise ValueError(
            f"argument 'statistic': expected one of {list(STATISTICS)}, got {statistic!r}"
        )
    trials = [list(t) for t in trials if len(t)]
    if not trials:
        raise ValueError("argument 'trials': expected at least one non-empty trial")
    pooled = np.concatenate([np.asarray(t, dtype=float) for t in trials])
    medians = [float(np.median(t)) for t in trials]
    headline = {
        "median": float(np.median(pooled)),
        "mean": float(pooled.mean()),
        "median-then-mean": float(np.mean(medians)),
    }[statistic]
    sp = spread(medians)
    return Stats(
        latency_us=headline,
        statistic=statistic,
        median_us=float(np.median(pooled)),
        mean_us=float(pooled.mean()),
        p10_us=float(np.percentile(pooled, 10)),
        p90_us=float(np.percentile(pooled, 90)),
        min_us=float(pooled.min()),
        spread=sp,
        noisy=sp > threshold,
        trial_medians_us=tuple(medians),
        n_samples=int(pooled.size),
    )


def memory_figures(
    bytes_moved: int,
    latency_us: float | None,
    copy_us: float | None = None,
    peak_gbps: float | None = None,
    row_copy_us: float | None = None,
) -> dict:
    """Achieved bandwidth and how close a call comes to the memory floor.

    ``pct_copy``: a device copy of the same bytes (timed the same way) as % of the call's
    time, 100 = as fast as the copy. ``pct_row_copy``: the same for the kit's row-copy
    kernel (``kernels/row_copy.cu``). ``pct_peak``: achieved GB/s as % of a large-copy peak.

    >>> memory_figures(2_000_000, 1.0, copy_us=0.5, peak_gbps=4000.0, row_copy_us=0.8)
    {'bytes': 2000000, 'gbps': 2000.0, 'pct_copy': 50.0, 'pct_row_copy': 80.0, 'pct_peak': 50.0}
    """
    gbps = bytes_moved / (latency_us * 1e3) if latency_us and latency_us > 0 else None
    return {
        "bytes": int(bytes_moved),
        "gbps": gbps,
        "pct_copy": 100.0 * copy_us / latency_us if copy_us and gbps else None,
        "pct_row_copy": 100.0 * row_copy_us / latency_us if row_copy_us and gbps else None,
        "pct_peak": 100.0 * gbps / peak_gbps if peak_gbps and gbps else None,
    }
