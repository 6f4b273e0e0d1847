"""The headline a kernel engineer asks for first, per GPU, from exactly one recorded run: how
fast ``best`` is per batch size, against whom (each peer in its own contract), how close to
the row-copy floor, whether the GPU was tuned, with which method, in which run and when.

The run is the newest one of that GPU that timed the kit's headline kernel on the most
workloads beside at least one peer (where any run has one): one run, so no number in the
table comes from another. Nothing here times anything.

>>> from decodekit.views import empty_records
>>> runs_by_gpu(empty_records())
{}
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from decodekit import records, views

KIT = "best"


def _kit(d: pd.DataFrame) -> str | None:
    names = d.get("impl_name", d["impl"])
    if (names == KIT).any():
        return KIT
    kernels = d[d["impl_kind"] == "kernel"]
    return kernels["impl"].value_counts().index[0] if len(kernels) else None


def runs_by_gpu(df: pd.DataFrame) -> dict[str, str]:
    """``{gpu: run_id}``: each GPU's headline run (see the module docstring), newest GPU first."""
    d = views.ok(views.normalize(df))
    d = d[d["gpu"].notna() & (d["gpu"] != "cpu") & d["run_id"].notna()]
    scored = []
    for (gpu, run), g in d.groupby(["gpu", "run_id"]):
        method = views.kernel_method(g)
        kit = _kit(g)
        if method is None or kit is None:
            continue
        mine = g[(g["impl"] == kit) & (g["method"] == method)]
        peers = g[(g["impl_kind"] == "baseline") & (g["method"] == method)]["impl"].nunique()
        scored.append((gpu, mine["uuid"].nunique(), peers > 0, g["timestamp"].max(), run))
    best: dict[str, tuple] = {}
    for gpu, n, has_peer, when, run in scored:
        if gpu not in best or (n, has_peer, when) > best[gpu][:3]:
            best[gpu] = (n, has_peer, when, run)
    order = sorted(best, key=lambda g: best[g][2], reverse=True)
    return {g: best[g][3] for g in order}


def headline(df: pd.DataFrame, gpu: str, run: str | None = None) -> pd.DataFrame:
    """Per batch size, from one run: the kit kernel's latency, each peer's latency and how
    much faster the kit kernel is (peer / kit in the peer's contract), the row-copy floor
    and the kit kernel as % of it. ``attrs``: gpu, run, date, commit, method, tuned."""
    from decodekit.measure.sweep import speedups, tuning_note

    run = run or runs_by_gpu(df).get(gpu)
    d = views.ok(views.normalize(df))
    d = d[(d["gpu"] == gpu) & (d["run_id"] == run)]
    if d.empty:
        return pd.DataFrame()
    method = views.kernel_method(d)
    kit = _kit(d)
    timed = d[(d["method"] == method) & ~records.is_floor(d)]
    per_b = timed.pivot_table(index="batch_size", columns="impl", values="latency_us")
    per_b.index = per_b.index.astype(int)
    peers = [c for c in per_b.columns if c != kit and not str(c).startswith(f"{kit} [")]
    out = pd.DataFrame(index=per_b.index)
    out[f"{kit} µs"] = per_b[kit].round(2)
    fast = speedups(d, kit=kit, method=method)
    for p in peers:
        out[f"{p} µs"] = per_b[p].round(2)
        if p in fast.index:
            out[f"{p} / {fast.loc[p, 'vs']}"] = [fast.loc[p].get(b, np.nan) for b in out.index]
    floor = d[(d["floor"] == "row-copy-floor") & (d["method"] == method)]
    if len(floor):
        f = floor.groupby(floor["batch_size"].astype(int))["latency_us"].mean()
        out["row-copy floor µs"] = f.reindex(out.index).round(2)
        out[f"{kit} % of floor"] = (100 * per_b[kit] / f.reindex(out.index)).round(1)
    out.index.name = "B"
    note = tuning_note(d)
    tuned = d.get("tuned", pd.Series(dtype=object)).dropna()
    commit = d["git_commit"].dropna().astype(str).str[:10]
    out.attrs.update(
        gpu=gpu, run=run, method=method, kit=kit,
        date=d["timestamp"].max().strftime("%Y-%m-%d %H:%M UTC"),
        commit=commit.iloc[0] if len(commit) else "?",
        tuned=note or ("tuned on this GPU" if len(tuned) and bool(tuned.iloc[-1])
                       else "tuning not recorded"),
    )  # fmt: skip
    return out


def caption(t: pd.DataFrame) -> str:
    a = t.attrs
    return (
        f"{a['gpu']}: run {a['run']} ({a['date']}, commit {a['commit']}), method {a['method']}, "
        f"mean over each batch size's workloads; {a['tuned']}. Peers in their own contract "
        f"(peer / {a['kit']}: how much faster {a['kit']} is)."
    )
