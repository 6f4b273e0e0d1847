"""Recorded data for the views: load records, pick the newest, and say where numbers came from.

Plots, widgets, notebooks and reports read records through this module and never time
anything. ``DECODEKIT_DATA`` (a folder holding ``results/`` and ``ncu/``) redirects every
view to another data set, which is how tests and reports render a copy without touching
``data/``.

>>> df = latest(empty_records())
>>> len(df), provenance(df)
(0, 'no recorded results')
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent

RECORD_COLUMNS = (
    "impl",
    "uuid",
    "workload",
    "batch_size",
    "method",
    "latency_us",
    "mean_us",
    "p10_us",
    "p90_us",
    "min_us",
    "spread",
    "noisy",
    "preset",
    "status",
    "bytes",
    "gbps",
    "pct_copy",
    "pct_peak",
    "gpu",
    "sm_count",
    "timestamp",
    "run_id",
    "git_commit",
    "driver",
    "cuda",
    "torch",
    "source_digest",
)
NCU_COLUMNS = (
    "uuid",
    "batch_size",
    "kernel",
    "duration_us",
    "dram_read_bytes",
    "dram_write_bytes",
    "dram_throughput_pct",
    "achieved_occupancy",
    "registers_per_thread",
    "grid_size",
    "block_size",
    "pct_of_floor",
    "impl",
)


def data_dir() -> Path:
    """The data folder views read: ``$DECODEKIT_DATA`` if set, else the repository's ``data/``."""
    return Path(os.environ.get("DECODEKIT_DATA") or ROOT / "data")


def empty_records() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in RECORD_COLUMNS})


def normalize(df: pd.DataFrame) -> pd.DataFrame:
    """Give a records frame every schema column and a UTC ``timestamp`` so views can rely on them."""
    df = df.copy()
    for c in RECORD_COLUMNS:
        if c not in df.columns:
            df[c] = pd.NA
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True, errors="coerce")
    for c in ("batch_size", "latency_us", "p10_us", "p90_us", "gbps", "pct_copy", "pct_peak"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


def load_records(path: str | Path | None = None) -> pd.DataFrame:
    """All records under ``path`` (default ``<data>/results``) as one normalized DataFrame."""
    folder = Path(path) if path is not None else data_dir() / "results"
    files = (
        sorted(folder.glob("*.jsonl")) if folder.is_dir() else [folder] if folder.exists() else []
    )
    rows = [json.loads(line) for f in files for line in f.read_text().splitlines() if line.strip()]
    return normalize(pd.DataFrame(rows)) if rows else normalize(empty_records())


def load_ncu(path: str | Path | None = None) -> pd.DataFrame:
    """Nsight Compute metrics via :func:`decodekit.ncu.load` (empty frame when none are recorded)."""
    folder = Path(path) if path is not None else data_dir() / "ncu"
    try:
        from decodekit import ncu
    except ImportError:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in NCU_COLUMNS})
    if not folder.exists() or not any(folder.iterdir()):
        return pd.DataFrame({c: pd.Series(dtype=object) for c in NCU_COLUMNS})
    return ncu.load(folder)


def gpu_available() -> bool:
    import torch

    return torch.cuda.is_available()


def resolve_live(live: bool | str = "auto") -> bool:
    """``"auto"``: live when a CUDA GPU is visible; ``True`` without a GPU is an error."""
    if live == "auto":
        return gpu_available()
    if live and not gpu_available():
        raise RuntimeError("argument 'live': True needs a CUDA GPU; use live='auto' or False")
    return bool(live)


def ok(df: pd.DataFrame) -> pd.DataFrame:
    """Rows that carry a number: a failed or unavailable check shows no performance figure."""
    return df[(df["status"].fillna("ok") == "ok") & df["latency_us"].notna()]


def latest(df: pd.DataFrame, gpu: str | None = None) -> pd.DataFrame:
    """One GPU (``gpu`` or the most recently recorded) and the newest row per impl x uuid x method."""
    df = normalize(df)
    if df.empty:
        return df
    if gpu is None:
        newest = df.sort_values("timestamp", na_position="first").iloc[-1]
        gpu = newest["gpu"]
    if not pd.isna(gpu):
        df = df[df["gpu"] == gpu]
    df = df.sort_values("timestamp", na_position="first")
    return df.drop_duplicates(["impl", "uuid", "method"], keep="last").reset_index(drop=True)


def runs(df: pd.DataFrame) -> pd.DataFrame:
    """One row per recorded run: GPU, date, commit, preset, methods and implementations."""
    df = normalize(df)
    if df.empty:
        return pd.DataFrame(columns=["run_id", "gpu", "date", "git_commit", "preset", "rows"])
    g = df.groupby(df["run_id"].fillna("?"), sort=False)
    out = g.agg(
        gpu=("gpu", "first"),
        date=("timestamp", "max"),
        git_commit=("git_commit", "first"),
        driver=("driver", "first"),
        cuda=("cuda", "first"),
        torch=("torch", "first"),
        preset=("preset", "first"),
        rows=("impl", "size"),
        methods=("method", lambda s: ", ".join(sorted(set(s.dropna())))),
        impls=("impl", lambda s: ", ".join(sorted(set(s.dropna())))),
    )
    return out.reset_index().sort_values("date", ascending=False, ignore_index=True)


def when(df: pd.DataFrame) -> str:
    """The newest record's date (``YYYY-MM-DD``), or ``unknown date``."""
    ts = normalize(df)["timestamp"].dropna()
    return ts.max().strftime("%Y-%m-%d") if len(ts) else "unknown date"


def gpu_of(df: pd.DataFrame) -> str:
    names = df["gpu"].dropna().unique() if "gpu" in df else []
    return ", ".join(map(str, names)) if len(names) else "unknown GPU"


def provenance(df: pd.DataFrame) -> str:
    """One line per recorded run the frame draws on: GPU, date, run, commit, software, methods."""
    table = runs(df)
    if table.empty:
        return "no recorded results"
    lines = []
    for r in table.itertuples():
        date = r.date.strftime("%Y-%m-%d %H:%M UTC") if not pd.isna(r.date) else "unknown date"
        commit = str(r.git_commit)[:10] if not pd.isna(r.git_commit) else "?"
        lines.append(
            f"{r.gpu} {date}: run {r.run_id}, commit {commit}, driver {r.driver}, "
            f"CUDA {r.cuda}, torch {r.torch}, preset {r.preset}, methods {r.methods}"
        )
    return "\n".join(lines)


def banner(df: pd.DataFrame, live: bool) -> str:
    """The one-line statement a view shows above its numbers: live or recorded, GPU and date."""
    if live:
        return f"live: measured on {gpu_of(latest(df))} in this session (records also written)"
    if latest(df).empty:
        return f"no GPU: no recorded results under {data_dir()} yet; figures are empty"
    d = latest(df)
    return f"no GPU: showing recorded data from {gpu_of(d)} {when(d)}"


def kernels_log(section: str | None = None) -> str:
    """``kernels/README.md`` (or one ``## section`` of it) as Markdown text."""
    path = ROOT / "kernels" / "README.md"
    if not path.exists():
        return "_kernels/README.md is not written yet._"
    text = path.read_text()
    if section is None:
        return text
    parts = text.split("\n## ")
    hits = [p for p in parts if p.lower().startswith(section.lower())]
    return "## " + hits[0] if hits else f"_no section {section!r} in kernels/README.md_"
