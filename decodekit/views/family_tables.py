"""Tables of the family members' records (:mod:`decodekit.measure.family_bench`): one
member's latency per implementation and batch size beside its floors, and every member's
kit-over-floor ratio side by side (against the row-copy floor, the issue's, by default).

>>> import pandas as pd
>>> versus_floor(pd.DataFrame()).empty
True
"""

from __future__ import annotations

import pandas as pd

from decodekit import records
from decodekit.views import latest


def table(rows: list[dict] | pd.DataFrame) -> pd.DataFrame:
    """Latency (µs) per implementation (and the floors) and batch size: the mean over each
    batch size's cases, failed checks shown by status. Rows drawn from more than one run
    (a peer's newest run older than the kit's, say) get a ``run`` column naming each row's
    runs, so a table never mixes runs silently."""
    df = records.to_frame(rows) if not isinstance(rows, pd.DataFrame) else rows
    df = df.assign(series=df["floor"].fillna(df["impl"]))
    ok = df[df["status"] == "ok"]
    t = ok.pivot_table(index="series", columns="batch_size", values="latency_us", aggfunc="mean")
    t = t.round(2).astype(object)
    for _, r in df[df["status"] != "ok"].iterrows():
        t.loc[r["series"], r["batch_size"]] = r["status"]
    if "run_id" in df and df["run_id"].nunique() > 1:
        runs = df.groupby("series")["run_id"].agg(lambda x: ", ".join(sorted(set(x.dropna()))))
        t["run"] = runs.reindex(t.index)
    return t


FLOORS = ("row-copy-floor", "copy-floor")


def members(ms) -> pd.DataFrame:
    """One row per member: heads, T, state dtype, layout, l2norm, the verify call's flags,
    its manifest's workloads and its state traffic per call at B=64 (MiB)."""
    from decodekit.problem.family import load_cases

    return pd.DataFrame([dict(
        definition=m.name, heads=f"{m.qk_heads}/{m.v_heads}", T=m.seq_len, state=m.state_dtype,
        layout=m.layout, l2norm=m.l2norm,
        verify=" ".join(f for f, on in (("inter", m.intermediate), ("noupdate", not m.update)) if on),
        workloads=len(load_cases(m)), state_MiB_B64=round(m.state_bytes(64) / 2**20, 1),
    ) for m in ms])  # fmt: skip


def versus_floor(
    df: pd.DataFrame, impl: str = "kit", floor: str = "row-copy-floor"
) -> pd.DataFrame:
    """``impl``'s latency over its member's ``floor`` (one of :data:`FLOORS`; same run, same
    method), one row per member recorded in ``df`` and one column per batch size: the members
    side by side, each from its own latest run, named in the ``run`` column (as
    :func:`table` names its rows'). A member whose latest run has no such floor is left out."""
    if floor not in FLOORS:
        raise ValueError(f"argument 'floor': expected one of {FLOORS}, got {floor!r}")
    out, runs = {}, {}
    for name in sorted(df["definition"].dropna().unique()) if "definition" in df else []:
        d = latest(df, definition=name)
        d = d[d["status"] == "ok"]
        base = d[d["floor"] == floor]
        mine = d[(d["impl"].str.split(" ").str[0] == impl) & d["floor"].isna()]
        if len(mine) and len(base):
            lat = mine.groupby("batch_size")["latency_us"].mean()
            out[name] = (lat / base.groupby("batch_size")["latency_us"].mean()).round(3)
            used = pd.concat([mine, base])
            runs[name] = ", ".join(sorted(used["run_id"].dropna().unique())) if "run_id" in used else ""  # fmt: skip
    t = pd.DataFrame(out).T
    t.columns = [int(c) for c in t.columns]
    t.columns.name = f"{impl} / {floor}, B"
    if len(t):
        t["run"] = pd.Series(runs)
    return t
