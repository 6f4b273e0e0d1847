"""The variant table of ``kernels/README.md``, generated from recorded runs.

One row per kit kernel (from the registry): its parent, its one-line change, the measured
latency per contest batch size, and at the largest batch size the achieved GB/s and the %
of a device copy of the same bytes timed the same way (``pct_copy`` in the records); then
the floors (torch copy, the kit's row-copy kernel) of the newest run that measured them.
Nothing here times anything: it reads ``data/results/`` through :mod:`decodekit.records`.

>>> import pandas as pd
>>> df = pd.DataFrame([dict(impl="baseline", uuid="u", batch_size=64, method="cupti-cold",
...     status="ok", latency_us=30.0, gbps=2200.0, pct_copy=80.0, gpu="G", timestamp="t")])
>>> "| baseline |" in markdown(df)
True
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from decodekit.base.paths import kernels_dir
from decodekit.impls.registry import all_impls
from decodekit.measure.timing import COLD_METHODS

README = kernels_dir() / "README.md"
BEGIN, END = "<!-- variant-table -->", "<!-- /variant-table -->"
METHODS = COLD_METHODS  # the variant table is a cold-L2 table
BASELINES = ("fla",)  # shown beside the variants, measured the same way
# Floors shown as rows under the kernels: (row name, record method, what it is).
FLOORS = (
    ("torch-copy", "copy-floor", "floor: torch copy (cudaMemcpy) of the state bytes"),
    (
        "row-copy",
        "row-copy-floor",
        "floor: kernels/row_copy.cu, the kit grid's state loads and stores with no math "
        "(fastest of decodekit.measure.floors.ROW_COPY_CONFIGS)",
    ),
)


def table(df: pd.DataFrame, method: str | None = None, gpu: str | None = None) -> pd.DataFrame:
    """Mean latency (µs) per kit kernel x batch size; GB/s and % of copy at the largest B."""
    shown = [i.name for i in all_impls("kernel")] + list(BASELINES)
    df = df.reindex(columns=list(dict.fromkeys([*df.columns, "gbps", "pct_copy", "run_id"])))
    d = df[(df["status"] == "ok") & df["impl"].isin(shown)]
    d = d.assign(batch_size=d["batch_size"].astype(int))
    if d.empty:
        return pd.DataFrame()
    method = method or next((m for m in METHODS if (d["method"] == m).any()), None)
    d = d[d["method"] == method]
    gpu = gpu or (d.sort_values("timestamp")["gpu"].iloc[-1] if not d.empty else None)
    d = d[d["gpu"] == gpu].sort_values("timestamp").drop_duplicates(["impl", "uuid"], keep="last")
    if d.empty:
        return pd.DataFrame()
    lat = d.pivot_table(index="impl", columns="batch_size", values="latency_us", aggfunc="mean")
    top = d[d["batch_size"] == d["batch_size"].max()].groupby("impl")[["gbps", "pct_copy"]].mean()
    meta = {i.name: (i.parent or "", i.description) for i in all_impls()}
    out = lat.round(2)
    out.columns = [f"B={b} µs" for b in out.columns]
    out[f"GB/s B={d['batch_size'].max()}"] = top["gbps"].round(0)
    out["% of copy"] = top["pct_copy"].round(1)
    out.insert(0, "change", [meta[i][1] for i in out.index])
    out.insert(0, "parent", [meta[i][0] for i in out.index])
    floors = _floor_rows(df, method, gpu, d["timestamp"].max(), out.columns)
    out = pd.concat([out, floors])
    own = set(d["run_id"].dropna()) if "run_id" in d else set()
    runs = sorted(own | set(floors.attrs.get("runs", ())))
    out.attrs.update(method=method, gpu=gpu, date=str(d["timestamp"].max())[:10], runs=runs)
    return out


def _floor_rows(df: pd.DataFrame, method: str, gpu: str, upto, columns) -> pd.DataFrame:
    """The floors of the newest run (at or before ``upto``) that measured them with ``method``:
    µs per batch size, in the kernels' columns."""
    need = {"floor", "method", "gpu", "timestamp", "batch_size", "latency_us", "run_id"}
    if not need <= set(df.columns):
        return pd.DataFrame(columns=columns)
    rows, runs = [], set()
    for name, floor, what in FLOORS:
        f = df[(df["floor"] == floor) & (df["method"] == method) & (df["gpu"] == gpu)]
        f = f[(f["status"] == "ok") & (f["timestamp"] <= upto)]
        if f.empty:
            continue
        f = f[f["run_id"] == f.sort_values("timestamp")["run_id"].iloc[-1]]
        runs.add(f["run_id"].iloc[0])
        lat = f.groupby(f["batch_size"].astype(int))["latency_us"].mean().round(2)
        row = {f"B={b} µs": v for b, v in lat.items()}
        rows.append(pd.Series({"parent": "", "change": what, **row}, name=name))
    out = pd.DataFrame(rows).reindex(columns=columns) if rows else pd.DataFrame(columns=columns)
    out.attrs["runs"] = sorted(runs)
    return out


def gpus(df: pd.DataFrame) -> list[str]:
    """GPUs with recorded kit-kernel timings, the newest first."""
    kit = df[df["impl"].isin([i.name for i in all_impls("kernel")]) & (df["status"] == "ok")]
    kit = kit[kit["method"].isin(METHODS) & kit["gpu"].notna() & (kit["gpu"] != "cpu")]
    last = kit.groupby("gpu")["timestamp"].max().sort_values(ascending=False)
    return list(last.index)


def markdown(df: pd.DataFrame, method: str | None = None, gpu: str | None = None) -> str:
    """One table per GPU (``gpu``: only that one), newest GPU first, each under a heading
    that names its date, method and the runs it drew from."""
    names = [gpu] if gpu else gpus(df)
    parts = [_markdown_one(df, method, g) for g in names]
    parts = [p for p in parts if p]
    if not parts:
        return "_No recorded runs of the kit kernels yet: run `decodekit bench`._"
    return "\n\n".join(parts)


def _markdown_one(df: pd.DataFrame, method: str | None, gpu: str) -> str | None:
    t = table(df, method, gpu)
    if t.empty:
        return None
    head = ["variant", *map(str, t.columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in t.iterrows():
        cells = ["" if pd.isna(x) else str(x) for x in row]
        lines.append("| " + " | ".join([name, *cells]) + " |")
    a = t.attrs
    note = (
        f"\nMeasured on {a['gpu']}, {a['date']}, method `{a['method']}` (cold L2), mean over the "
        "recorded workloads of each batch size, the newest record of each variant and "
        f"workload; runs {', '.join(a['runs'])}; generated by `decodekit table` from "
        "`data/results/`."
    )
    return f"### {a['gpu']}\n\n" + "\n".join(lines) + "\n" + note


def write(df: pd.DataFrame, path: Path = README, **kw) -> str:
    """Replace the table between the markers of ``kernels/README.md``; return the table."""
    text = path.read_text()
    if BEGIN not in text:
        raise ValueError(f"{path}: no {BEGIN} marker to put the table after")
    head, _, rest = text.partition(BEGIN)
    tail = rest.partition(END)[2] if END in rest else rest
    md = markdown(df, **kw)
    from decodekit.records import write_text

    write_text(path, f"{head}{BEGIN}\n{md}\n{END}{tail}")
    return md


def cli_table(write_readme: bool = True, as_json: bool = False) -> int:
    """``decodekit table``: print (and unless told otherwise write) the per-GPU tables;
    ``as_json``: one object per GPU with its rows, date, method and runs."""
    from decodekit.records import load

    df = load()
    if as_json:
        import json

        out = []
        for gpu in gpus(df):
            t = table(df, None, gpu)
            rows = json.loads(t.to_json(orient="index"))
            out.append({**{k: t.attrs[k] for k in ("gpu", "date", "method", "runs")}, "rows": rows})
        print(json.dumps(out))
        return 0
    md = write(df) if write_readme else markdown(df)
    print(md)
    return 0
