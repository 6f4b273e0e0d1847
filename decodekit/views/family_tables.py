"""Tables of the family members' records (:mod:`decodekit.measure.family_bench`): one
member's latency per implementation and batch size beside its copy floor, and every member's
kit-over-floor ratio side by side.

>>> import pandas as pd
>>> versus_floor(pd.DataFrame()).empty
True
"""

from __future__ import annotations

import pandas as pd

from decodekit import records
from decodekit.views import latest


def table(rows: list[dict] | pd.DataFrame) -> pd.DataFrame:
    """Latency (µs) per implementation (and the copy floor) and batch size: the mean over
    each batch size's cases, failed checks shown by status."""
    df = records.to_frame(rows) if not isinstance(rows, pd.DataFrame) else rows
    df = df.assign(series=df["floor"].fillna(df["impl"]))
    ok = df[df["status"] == "ok"]
    t = ok.pivot_table(index="series", columns="batch_size", values="latency_us", aggfunc="mean")
    t = t.round(2).astype(object)
    for _, r in df[df["status"] != "ok"].iterrows():
        t.loc[r["series"], r["batch_size"]] = r["status"]
    return t


def versus_floor(df: pd.DataFrame, impl: str = "kit") -> pd.DataFrame:
    """``impl``'s latency over its member's copy floor (same run, same method), one row per
    member recorded in ``df`` and one column per batch size: the members side by side."""
    out = {}
    for name in sorted(df["definition"].dropna().unique()) if "definition" in df else []:
        d = latest(df, definition=name)
        d = d[d["status"] == "ok"]
        floor = d[d["floor"] == "copy-floor"].groupby("batch_size")["latency_us"].mean()
        mine = d[(d["impl"].str.split(" ").str[0] == impl) & d["floor"].isna()]
        if len(mine) and len(floor):
            out[name] = (mine.groupby("batch_size")["latency_us"].mean() / floor).round(3)
    t = pd.DataFrame(out).T
    t.columns = [int(c) for c in t.columns]
    t.columns.name = f"{impl} / copy floor, B"
    return t
