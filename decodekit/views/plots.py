"""Figures drawn from records: each function takes the records DataFrame and returns a Figure.

Every figure names its GPU and timing method in the title, labels axes with units, and notes
``recorded <date> on <gpu>`` at the bottom. Missing data gives a figure that says what is
missing, never a traceback, so a notebook runs top to bottom on any machine.

Rows with ``status != "ok"`` carry no performance figure and are never drawn. Several
records of the same impl x workload x method keep the newest (:func:`decodekit.views.latest`).

>>> fig = latency_vs_batch(views.empty_records())
>>> fig.axes[0].get_title()
'latency vs batch size: no data'
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.colors
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from decodekit import records, views
from decodekit.base import paths
from decodekit.views.plots_base import (  # noqa: F401  (re-exported: the plots API)
    FLOORS,
    KERNEL_METHODS,
    SEED_B200_NCU_US,
    _batch_axis,
    _colors,
    _default_impl,
    _figure,
    _floor_rows,
    _floors,
    _impl_rows,
    _method,
    _note,
    _per_batch,
    _prepare,
    empty,
    runs_note,
)


def latency_vs_batch(
    df: pd.DataFrame,
    method: str | None = None,
    impls: Sequence[str] | None = None,
    definition: str | None = None,
) -> Figure:
    """Latency per implementation vs batch size, with the copy floors and the empty kernel;
    of the contest, or of the family member ``definition`` (its own floors)."""
    d, m, blank = _prepare(df, "latency vs batch size", method, definition)
    if blank:
        return blank
    rows = _impl_rows(d, m, impls)
    if rows.empty:
        return empty("latency vs batch size", f"no {m} records for {list(impls or [])}")
    # The torch references run 100-1000x slower: their own panel keeps the kernels readable.
    is_ref = rows["impl"].astype(str).str.startswith("torch-")
    refs, rows = rows[is_ref], rows[~is_ref]
    if rows.empty:
        rows, refs = refs, refs.iloc[0:0]
    if len(refs):
        fig, (ax, ax_ref) = _figure(1, 2, size=(13, 4.8))
    else:
        fig, (ax,) = _figure()
    colors = _colors(d["impl"].unique())
    for name, g in _per_batch(rows).groupby("impl"):
        ax.plot(g["batch_size"], g["latency_us"], "o-", color=colors[name], label=name)
        ax.fill_between(g["batch_size"], g["p10_us"], g["p90_us"], color=colors[name], alpha=0.15)
    floor = _floors(d, "copy-floor", m)
    if len(floor):
        ax.plot(floor.index, floor.values, "k--", label="torch-copy floor: copy of the state bytes")
    rows_floor = _floors(d, "row-copy-floor", m)
    if len(rows_floor):
        label = "row-copy floor: kit grid, loads and stores, no math"
        ax.plot(rows_floor.index, rows_floor.values, "k-.", label=label)
    launch = _floor_rows(d, "empty-kernel", m)["latency_us"]  # once per run, no B
    if len(launch):
        # Measured once per run (no batch size): the cost of launching nothing.
        ax.axhline(launch.median(), color="k", ls=":", label="empty-kernel (launch floor)")
    _batch_axis(ax, rows["batch_size"])
    ax.set_yscale("log")
    # plain numbers (1, 10, 100, 1e+06), never an offset or a shared exponent on a log axis
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda y, _: f"{y:g}"))
    ax.set_ylabel("latency (µs, median; band p10-p90; log scale)")
    what = definition or "GDN decode"
    ax.set_title(f"{what} latency vs batch size on {views.gpu_of(d)} [{m}]", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    if len(refs):
        for name, g in _per_batch(refs).groupby("impl"):
            ax_ref.plot(g["batch_size"], g["latency_us"], "o-", color=colors[name], label=name)
        _batch_axis(ax_ref, refs["batch_size"])
        ax_ref.set_yscale("log")
        ax_ref.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda y, _: f"{y:g}"))
        ax_ref.set_ylabel("latency (µs, median; log scale)")
        ax_ref.set_title("torch references (slow by design)")
        ax_ref.legend(fontsize=8)
        ax_ref.grid(alpha=0.3)
    floors = d[d["floor"].isin(FLOORS) & (d["method"] == m)]
    return _note(fig, pd.concat([rows, refs, floors]))


def workload_bars(df: pd.DataFrame, impl: str | None = None, method: str | None = None) -> Figure:
    """One bar per workload (ordered by batch size) with the arithmetic mean over them."""
    d, m, blank = _prepare(df, "per-workload latency", method)
    if blank:
        return blank
    rows = _impl_rows(d, m)
    impl = impl or _default_impl(rows)
    rows = rows[rows["impl"] == impl].sort_values(["batch_size", "uuid"])
    if rows.empty:
        return empty("per-workload latency", f"no {m} records for {impl!r}")
    fig, (ax,) = _figure(size=(11, 4.8))
    x = np.arange(len(rows))
    sizes = sorted(rows["batch_size"].unique())
    colors = dict(zip(sizes, plt.cm.viridis(np.linspace(0.1, 0.9, len(sizes))), strict=True))
    err = np.vstack([rows["latency_us"] - rows["p10_us"], rows["p90_us"] - rows["latency_us"]])
    ax.bar(
        x,
        rows["latency_us"],
        color=[colors[b] for b in rows["batch_size"]],
        yerr=np.nan_to_num(np.clip(err, 0, None)),
        error_kw={"lw": 0.6},
    )
    mean = rows["latency_us"].mean()
    ax.axhline(
        mean, color="crimson", ls="--", label=f"mean over {len(rows)} workloads: {mean:.2f} µs"
    )
    centers = [x[(rows["batch_size"] == b).to_numpy()].mean() for b in sizes]
    ax.set_xticks(centers, [f"B={b:.0f}" for b in sizes])
    ax.set_xlabel("workload (grouped by batch size)")
    ax.set_ylabel("latency (µs, median; whiskers p10-p90)")
    ax.set_title(f"{impl}: latency per workload on {views.gpu_of(d)} [{m}]")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return _note(fig, d)


def latency_breakdown(
    df: pd.DataFrame, impl: str | None = None, method: str | None = None
) -> Figure:
    """Stacked per batch size: host dispatch, launch/idle gap, kernel time, all from ONE run
    (the newest that timed ``impl`` with the kernel method; parts that run did not record are
    left out, never filled in from another run), with that run's row-copy floor marked on
    the kernel bar.

    The gap is ``wall - host-dispatch - kernel`` (clipped at 0) where ``wall`` is recorded.
    """
    d, m, blank = _prepare(df, "latency breakdown", method)
    if blank:
        return blank
    impl = impl or _default_impl(_impl_rows(d, m))
    timed = d[(d["impl"] == impl) & (d["method"] == m)]
    if timed.empty:
        return empty("latency breakdown", f"no {m} records for {impl!r}")
    # one run: the one with the most of this impl's methods, then the newest
    full = views.ok(views.normalize(df))
    full = full[(full["gpu"] == views.gpu_of(timed)) & full["run_id"].isin(timed["run_id"])]
    score = (
        full[full["impl"] == impl]
        .groupby("run_id")
        .agg(n=("method", "nunique"), when=("timestamp", "max"))
    )
    run = score.sort_values(["n", "when"]).index[-1]
    one = full[full["run_id"] == run].sort_values("timestamp")
    one = one.drop_duplicates(["impl", "uuid", "method", "floor"], keep="last")
    mine = one[one["impl"] == impl]

    def part(meth):
        return mine[mine["method"] == meth].groupby("batch_size")["latency_us"].mean()

    kernel = part(m)
    host = part("host-dispatch").reindex(kernel.index)
    wall = part("wall").reindex(kernel.index)
    gap = (wall - host.fillna(0) - kernel).clip(lower=0)
    floor_name, floor = "row-copy", _floors(one, "row-copy-floor", m).reindex(kernel.index)
    if floor.isna().all():  # older runs measured only the torch copy
        floor_name, floor = "torch-copy", _floors(one, "copy-floor", m).reindex(kernel.index)
    fig, (ax,) = _figure()
    x = np.arange(len(kernel))
    bottom = np.zeros(len(kernel))
    for label, values, color in (
        ("host dispatch", host, "#8da0cb"),
        ("launch / idle gap", gap, "#fc8d62"),
        (f"kernel ({m})", kernel, "#66c2a5"),
    ):
        v = np.nan_to_num(values.to_numpy(dtype=float))
        if v.any():
            ax.bar(x, v, bottom=bottom, color=color, label=label, width=0.6)
            if label.startswith("kernel") and floor.notna().any():
                f = floor.to_numpy(dtype=float)
                ax.scatter(x, bottom + f, marker="_", s=900, color="k", zorder=3,
                           label=f"{floor_name} floor (same run): the kernel's memory time")  # fmt: skip
            bottom = bottom + v
    ax.set_xticks(x, [f"B={b:.0f}" for b in kernel.index])
    ax.set_xlabel("batch size")
    ax.set_ylabel("time per call (µs, mean over workloads)")
    missing = [n for n, s in (("host dispatch", host), ("wall", wall)) if s.isna().all()]
    extra = f"; not in this run: {', '.join(missing)}" if missing else ""
    ax.set_title(f"{impl}: where a call's time goes on {views.gpu_of(d)} (run {run}{extra})")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    drawn = (one["impl"] == impl) | (
        one["method"] == f"{'copy' if floor_name == 'torch-copy' else 'row-copy'}-floor"
    )
    return _note(fig, one[drawn])


def bandwidth_vs_batch(
    df: pd.DataFrame, method: str | None = None, impls: Sequence[str] | None = None
) -> Figure:
    """Achieved bandwidth (GB/s) and its share of the measured copy peak vs batch size."""
    d, m, blank = _prepare(df, "achieved bandwidth", method)
    if blank:
        return blank
    rows = _impl_rows(d, m, impls)
    rows = rows.dropna(subset=["gbps"])
    if rows.empty:
        return empty("achieved bandwidth", f"no {m} records with bytes/gbps")
    fig, (ax, ax2) = _figure(1, 2, size=(12, 4.8))
    colors = _colors(d["impl"].unique())
    for name, g in rows.groupby("impl"):
        g = g.groupby("batch_size")[["gbps", "pct_copy"]].mean()
        ax.plot(g.index, g["gbps"], "o-", color=colors[name], label=name)
        ax2.plot(g.index, g["pct_copy"], "o-", color=colors[name], label=name)
    peak = _floors(d, "copy-floor", m, "gbps")
    if len(peak):
        ax.plot(peak.index, peak.values, "k--", label="copy of the same bytes (measured)")
    ax2.axhline(100, color="k", ls="--", label="copy peak")
    for a in (ax, ax2):
        _batch_axis(a, rows["batch_size"])
        a.set_xlabel("batch size B (log scale; bytes moved ~ B x 1 MiB)")
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    ax.set_ylabel("achieved bandwidth (GB/s)")
    ax2.set_ylabel("% of measured copy peak")
    ax.set_title(f"bandwidth on {views.gpu_of(d)} [{m}]")
    ax2.set_title("share of the measured copy peak")
    return _note(fig, d)


def speedup(
    df: pd.DataFrame,
    baseline: str | None = None,
    method: str | None = None,
    impls: Sequence[str] | None = None,
) -> Figure:
    """Speedup of each implementation over ``baseline`` (default ``fla``, else ``torch-fp32``)."""
    d, m, blank = _prepare(df, "speedup", method)
    if blank:
        return blank
    per = _per_batch(_impl_rows(d, m)).pivot(
        index="batch_size", columns="impl", values="latency_us"
    )
    baseline = baseline or next((b for b in ("fla", "torch-fp32") if b in per), None)
    if baseline not in per:
        return empty("speedup", f"baseline {baseline!r} has no {m} records")
    others = [c for c in per.columns if c != baseline and (not impls or c in impls)]
    if not others:
        return empty("speedup", "no implementation besides the baseline")
    fig, (ax,) = _figure()
    colors = _colors(d["impl"].unique())
    x = np.arange(len(per))
    w = 0.8 / len(others)
    for i, name in enumerate(others):
        ax.bar(
            x + (i - (len(others) - 1) / 2) * w,
            per[baseline] / per[name],
            w,
            color=colors[name],
            label=name,
        )
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks(x, [f"B={b:.0f}" for b in per.index])
    ax.set_xlabel("batch size")
    ax.set_ylabel(f"speedup over {baseline} (x, higher is faster)")
    ax.set_title(f"speedup over {baseline} on {views.gpu_of(d)} [{m}]")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return _note(fig, d)


def method_comparison(
    df: pd.DataFrame,
    impl: str | None = None,
    methods: Sequence[str] | None = None,
    seed: bool | str = "auto",
) -> Figure:
    """One kernel under each timing method per batch size; ``seed`` adds the seed's B200 NCU range."""
    d, m, blank = _prepare(df, "timing methods", None)
    if blank:
        return blank
    impl = impl or _default_impl(_impl_rows(d, m))
    rows = d[(d["impl"] == impl) & ~records.is_floor(d) & (d["method"] != "host-dispatch")]
    if methods:
        rows = rows[rows["method"].isin(methods)]
    if rows.empty:
        return empty("timing methods", f"no records for {impl!r}")
    fig, (ax,) = _figure()
    for meth, g in rows.groupby("method"):
        g = g.groupby("batch_size")["latency_us"].mean()
        ax.plot(g.index, g.values, "o-", label=meth)
    if seed is True or (seed == "auto" and "B200" in views.gpu_of(d)):
        for i, (b, (lo, hi)) in enumerate(SEED_B200_NCU_US.items()):
            ax.vlines(
                b,
                lo,
                hi,
                color="0.3",
                lw=5,
                alpha=0.5,
                label="seed document (B200, Nsight Compute)" if i == 0 else None,
            )
    _batch_axis(ax, rows["batch_size"])
    ax.set_ylabel("latency (µs, mean over workloads)")
    ax.set_title(f"{impl}: one kernel, several timing methods on {views.gpu_of(d)}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _note(fig, d)


NCU_METRICS = ("duration_us", "dram_throughput_pct", "achieved_occupancy", "pct_of_floor")
NCU_LABELS = {
    "duration_us": "kernel duration (µs)",
    "dram_throughput_pct": "DRAM throughput (% of peak)",
    "achieved_occupancy": "achieved occupancy (%)",
    "pct_of_floor": "memory floor / duration (%)",
    "registers_per_thread": "registers per thread",
}


def ncu_metrics(
    ncu: pd.DataFrame,
    metrics: Sequence[str] = NCU_METRICS,
    gpu: str | None = None,
    impls: Sequence[str] | None = None,
) -> Figure:
    """Nsight Compute metrics per workload (one panel per metric, one bar series per impl)."""
    title = "Nsight Compute metrics"
    if ncu is None or ncu.empty:
        return empty(
            title, f"no Nsight Compute exports ({paths.relative(views.data_dir() / 'ncu')})"
        )
    rows = ncu[ncu["impl"].isin(impls)] if impls else ncu
    metrics = [c for c in metrics if c in rows and rows[c].notna().any()]
    if rows.empty or not metrics:
        return empty(title, "no rows with these metrics")
    rows = rows.sort_values(["batch_size", "uuid"])
    order = rows.drop_duplicates("uuid")[["uuid", "batch_size"]].reset_index(drop=True)
    pos = {u: i for i, u in enumerate(order["uuid"])}
    names = sorted(rows["impl"].dropna().unique()) or ["?"]
    colors = _colors(names)
    fig, axes = _figure(len(metrics), 1, size=(11, 2.6 * len(metrics) + 0.6), sharex=True)
    w = 0.8 / len(names)
    for ax, metric in zip(axes, metrics, strict=True):
        for i, name in enumerate(names):
            g = rows[rows["impl"] == name].groupby("uuid")[metric].mean()
            x = np.array([pos[u] for u in g.index]) + (i - (len(names) - 1) / 2) * w
            ax.bar(x, g.to_numpy(dtype=float), w, color=colors[name], label=name)
        ax.set_ylabel(NCU_LABELS.get(metric, metric), fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    sizes = order["batch_size"].unique()
    centers = [order.index[order["batch_size"] == b].to_numpy().mean() for b in sizes]
    axes[-1].set_xticks(centers, [f"B={b:.0f}" for b in sizes])
    axes[-1].set_xlabel("workload (grouped by batch size)")
    axes[0].legend(fontsize=8, ncol=len(names))
    axes[0].set_title(f"{title} per workload on {gpu or views.gpu_of(rows)} (ncu)")
    fig.tight_layout()
    return fig


def drift(df: pd.DataFrame, title: str = "state drift over steps") -> Figure:
    """Relative error of the state fed back step after step against the fp64 trajectory
    (:func:`decodekit.measure.family_check.drift`), one line per state dtype, log scale."""
    if df.empty:
        return empty(title, "no drift computed")
    fig, (ax,) = _figure()
    for dt, g in df.groupby("state_dtype"):
        ax.plot(g["step"], g["state_rel"], label=f"{dt} state: ||S - S64|| / ||S64||")
        ax.plot(g["step"], g["output_rel"], ls=":", label=f"{dt} state: output error")
    ax.set_yscale("log")
    ax.set_xlabel("step (new_state fed back as state)")
    ax.set_ylabel("relative error against the fp64 trajectory (log scale)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
