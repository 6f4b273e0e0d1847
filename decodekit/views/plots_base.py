"""What every figure of :mod:`decodekit.views.plots` shares: the figure and its run note, the batch
axis, colours, the method a figure shows, and the rows of implementations and floors."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.colors
import matplotlib.pyplot as plt
import matplotlib.ticker
import pandas as pd
from matplotlib.figure import Figure

from decodekit import records, views
from decodekit.base import paths
from decodekit.records.schema import FLOORS  # noqa: F401  (the floors a record can name; plots use it)

KERNEL_METHODS = views.KERNEL_METHODS
# The seed document's Nsight Compute kernel durations on a B200, per B (SPEC.md), in µs.
# fmt: off
SEED_B200_NCU_US = {1: (6.9, 7.6), 4: (8.0, 9.3), 8: (8.9, 9.2), 16: (10.5, 11.0),
                    32: (14.8, 15.4), 48: (20.7, 23.9), 64: (30.8, 32.6)}
# fmt: on


def _figure(rows: int = 1, cols: int = 1, size=(9, 4.8), sharex: bool = False):
    fig, axes = plt.subplots(rows, cols, figsize=size, squeeze=False, sharex=sharex)
    # Closed at once: the caller's cell shows the returned Figure exactly once.
    plt.close(fig)
    return fig, axes.ravel()


def empty(title: str, message: str) -> Figure:
    fig, (ax,) = _figure(size=(9, 3))
    ax.set_title(f"{title}: no data")
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, transform=ax.transAxes)
    ax.set_axis_off()
    return fig


def runs_note(df: pd.DataFrame) -> str:
    """Which runs a figure drew from, every one of them: ``run a`` or ``mixes 3 runs: a, b, c``.

    >>> runs_note(pd.DataFrame({"run_id": ["b", "a", "b"]}))
    'mixes 2 runs: a, b'
    """
    runs = sorted(map(str, df["run_id"].dropna().unique()))
    if not runs:
        return "run ?"
    return f"run {runs[0]}" if len(runs) == 1 else f"mixes {len(runs)} runs: {', '.join(runs)}"


def _note(fig: Figure, df: pd.DataFrame) -> Figure:
    """``df``: the rows the figure drew (so the note names exactly their runs)."""
    text = f"recorded {views.when(df)} on {views.gpu_of(df)} ({runs_note(df)})"
    fig.text(0.01, 0.01, text, fontsize=7, color="0.4")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def _batch_axis(ax, sizes) -> None:
    """Log-2 batch-size axis ticked at the batch sizes present, labelled in plain numbers."""
    sizes = sorted({int(b) for b in sizes})
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [str(b) for b in sizes])
    ax.minorticks_off()
    ax.set_xlabel("batch size B (log scale)")


def _colors(names: Sequence[str]) -> dict:
    """One distinct color per name: the style's cycle, or tab20 when there are more names."""
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    names = sorted(names)
    if len(names) > len(cycle):
        cycle = [matplotlib.colors.to_hex(c) for c in plt.get_cmap("tab20").colors]
    return {n: cycle[i % len(cycle)] for i, n in enumerate(names)}


def _method(df: pd.DataFrame, method: str | None) -> str | None:
    have = set(df["method"].dropna())
    if method is not None:
        return method if method in have else None
    return next((m for m in KERNEL_METHODS if m in have), None)


def _per_batch(df: pd.DataFrame, col: str = "latency_us") -> pd.DataFrame:
    """Mean over the workloads of each batch size, per impl (the contest averages workloads)."""
    return df.groupby(["impl", "batch_size"])[[col, "p10_us", "p90_us"]].mean().reset_index()


def _impl_rows(df: pd.DataFrame, method: str, impls: Sequence[str] | None = None) -> pd.DataFrame:
    """Rows of implementations (not floors) timed with ``method``; only ``impls`` if given."""
    rows = df[(df["method"] == method) & ~records.is_floor(df)]
    return rows[rows["impl"].isin(impls)] if impls else rows


def _default_impl(rows: pd.DataFrame) -> str:
    """The kit kernel with the most records (a baseline if no kernel is recorded)."""
    kernels = rows[rows["impl_kind"] == "kernel"]
    counts = (kernels if len(kernels) else rows)["impl"].value_counts()
    return sorted(counts[counts == counts.max()].index)[0]


def _floor_rows(df: pd.DataFrame, floor: str, timing: str) -> pd.DataFrame:
    """Records of one floor, those measured with ``timing`` (the kernel's method) if any."""
    rows = df[df["floor"] == floor]
    same = rows[rows["method"] == timing]
    return same if len(same) else rows


def _floors(df: pd.DataFrame, floor: str, timing: str, col: str = "latency_us") -> pd.Series:
    """A floor per batch size, measured with the same timing method as the kernel if recorded."""
    return _floor_rows(df, floor, timing).groupby("batch_size")[col].median().sort_index()


def _prepare(df: pd.DataFrame, title: str, method: str | None, definition: str | None = None):
    """Newest ok rows of one GPU (of the contest, or of the family member ``definition``) and
    the resolved method, or an empty-state Figure."""
    d = views.ok(
        views.latest(df) if definition is None else views.latest(df, definition=definition)
    )
    if d.empty:
        return (
            None,
            None,
            empty(title, f"no recorded results ({paths.relative(views.data_dir() / 'results')})"),
        )
    m = _method(d[~records.is_floor(d)], method)
    if m is None:
        return None, None, empty(title, f"no records with timing method {method or 'any'!r}")
    return d, m, None
