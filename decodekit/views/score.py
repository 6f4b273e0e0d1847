"""Summaries of records: the seed's report, speedups, the contest score, latency breakdown.

Every function takes a records DataFrame (:func:`decodekit.records.load` or a live sweep)
and one timing ``method`` (default: the best cold method present); rows are the latest
``ok`` record per implementation x workload. Views and reports call these; nothing here
times anything.

* :func:`mean_latency`: arithmetic mean latency over the workloads, per implementation (the
  seed's headline, over the 54 contest workloads).
* :func:`per_batch`: mean latency per batch size, implementations as columns.
* :func:`speedup`: per batch size and overall, geomean over workloads of baseline / impl.
* :func:`contest_score`: mean over workloads of reference / impl (the contest's score, the
  reference timed the same way), each batch size's share of it, and the geomean.
* :func:`breakdown`: host dispatch, launch gap, kernel time and memory floor per batch size.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from decodekit import records
from decodekit.measure.timing import DEFAULT_METHODS as METHOD_PREFERENCE  # noqa: E402  (one order)

KEY = ["impl", "uuid", "method"]


def default_method(df: pd.DataFrame) -> str | None:
    """The preferred timing method present among ``ok`` implementation records."""
    have = set(df.loc[_impl_rows(df) & (df["status"] == "ok"), "method"])
    return next((m for m in METHOD_PREFERENCE if m in have), None)


def _impl_rows(df: pd.DataFrame) -> pd.Series:
    return ~records.is_floor(df)


def latest(df: pd.DataFrame, method: str | None = None, preset: str | None = None) -> pd.DataFrame:
    """The latest ``ok`` record per implementation x workload for ``method``."""
    method = method or default_method(df)
    keep = _impl_rows(df) & (df["status"] == "ok") & (df["method"] == method)
    if preset is not None:
        keep &= df["preset"] == preset
    out = df[keep].sort_values("timestamp").drop_duplicates(KEY, keep="last")
    return out.reset_index(drop=True)


def geomean(x) -> float:
    """Geometric mean.

    >>> geomean([1.0, 4.0])
    2.0
    """
    x = np.asarray(x, dtype=float)
    return float(np.exp(np.log(x).mean())) if x.size else float("nan")


def mean_latency(df: pd.DataFrame, method: str | None = None) -> pd.DataFrame:
    """Arithmetic mean latency over workloads per implementation, with the count."""
    d = latest(df, method)
    g = d.groupby("impl")["latency_us"]
    return pd.DataFrame({"mean_us": g.mean(), "n_workloads": g.size()}).sort_values("mean_us")


def per_batch(df: pd.DataFrame, method: str | None = None) -> pd.DataFrame:
    """Mean latency (µs) per batch size (rows) and implementation (columns)."""
    d = latest(df, method)
    return d.pivot_table(index="batch_size", columns="impl", values="latency_us", aggfunc="mean")


def _paired(df: pd.DataFrame, reference: str, method: str | None) -> pd.DataFrame:
    d = latest(df, method)
    if not (d["impl"] == reference).any():
        have = set(df.loc[_impl_rows(df) & (df["status"] == "ok"), "method"])
        if method is not None and method not in have:
            raise ValueError(
                f"argument 'method': expected one of {sorted(have)} (methods with ok records), "
                f"got {method!r}"
            )
        raise ValueError(
            f"argument 'reference': expected an implementation with ok {method or 'default'}"
            f"-method records, one of {sorted(set(d['impl']))}, got {reference!r}"
        )
    ref = d[d["impl"] == reference][["uuid", "latency_us"]].rename(columns={"latency_us": "ref_us"})
    out = d.merge(ref, on="uuid")
    out["ratio"] = out["ref_us"] / out["latency_us"]
    return out


def speedup(df: pd.DataFrame, baseline: str, method: str | None = None) -> pd.DataFrame:
    """Speedup over ``baseline`` (baseline / impl latency), geomean over the workloads of
    each batch size, and over all workloads (row ``all``)."""
    p = _paired(df, baseline, method)
    by_b = p.groupby(["batch_size", "impl"])["ratio"].apply(geomean).unstack("impl")
    overall = p.groupby("impl")["ratio"].apply(geomean).rename("all")
    by_b.index = by_b.index.astype(object)
    return pd.concat([by_b, overall.to_frame().T])


def speedups(
    df: pd.DataFrame, baselines: list[str] | None = None, method: str | None = None
) -> dict[str, pd.DataFrame]:
    """:func:`speedup` against each baseline (default: every ``baseline`` impl present)."""
    if baselines is None:
        d = latest(df, method)
        has_kind = "impl_kind" in d
        baselines = sorted(set(d.loc[d["impl_kind"] == "baseline", "impl"])) if has_kind else []
    return {b: speedup(df, b, method) for b in baselines}


def contest_score(
    df: pd.DataFrame, reference: str | None = None, method: str | None = None
) -> pd.DataFrame:
    """Per implementation: ``score`` = mean over workloads of reference / impl latency,
    ``geomean`` of the same ratios, ``n_workloads``, and ``share_B<n>``: the percentage of
    the score each batch size contributes. The reference defaults to ``torch-loop`` (the
    definition's literal loop, as the contest times it) when recorded, else ``torch-fp32``."""
    if df.empty or "impl" not in df:
        return pd.DataFrame(columns=["score", "geomean", "n_workloads"])
    if reference is None:
        reference = "torch-loop" if (df["impl"] == "torch-loop").any() else "torch-fp32"
    p = _paired(df, reference, method)
    rows = {}
    for impl, g in p.groupby("impl"):
        total = g["ratio"].sum()
        row = {"score": g["ratio"].mean(), "geomean": geomean(g["ratio"]), "n_workloads": len(g)}
        for b, gb in g.groupby("batch_size"):
            row[f"share_B{b}"] = 100.0 * gb["ratio"].sum() / total
        rows[impl] = row
    return pd.DataFrame.from_dict(rows, orient="index").sort_values("score", ascending=False)


def breakdown(df: pd.DataFrame, method: str | None = None) -> pd.DataFrame:
    """Latency breakdown per implementation x batch size (means over workloads, µs):
    ``host_us`` (host-dispatch), ``kernel_us`` (``method``), ``gap_us`` = wall - host -
    kernel (launch latency and idle), ``wall_us``, and ``floor_us``: the copy floor timed with
    ``method``, the part of the kernel time memory alone would need."""
    method = method or default_method(df)
    parts = {"kernel_us": method, "host_us": "host-dispatch", "wall_us": "wall"}
    cols = []
    for name, m in parts.items():
        d = latest(df, m)
        cols.append(d.groupby(["impl", "batch_size"])["latency_us"].mean().rename(name))
    out = pd.concat(cols, axis=1).reset_index()
    out["gap_us"] = out["wall_us"] - out["host_us"] - out["kernel_us"]
    floor = df["floor"] if "floor" in df else pd.Series(None, index=df.index, dtype=object)
    floors = df[(floor == "copy-floor") & (df["method"] == method) & (df["status"] == "ok")]
    floor = floors.sort_values("timestamp").groupby("batch_size")["latency_us"].last()
    out["floor_us"] = out["batch_size"].map(floor)
    return out[["impl", "batch_size", "host_us", "gap_us", "kernel_us", "floor_us", "wall_us"]]


def summary(
    df: pd.DataFrame,
    method: str | None = None,
    reference: str = "torch-fp32",
    baselines: list[str] | None = None,
) -> dict:
    """The seed's report and the contest score in one dict of DataFrames."""
    method = method or default_method(df)
    return {
        "method": method,
        "mean": mean_latency(df, method),
        "per_batch": per_batch(df, method),
        "speedup": speedups(df, baselines, method),
        "score": contest_score(df, reference, method),
    }
