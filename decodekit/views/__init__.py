"""Recorded data for the views: load records, pick the newest, and say where numbers came from.

The views layer is this package: loading and :func:`select` (here), tables (``score``,
``kernel_table``, ``headline``), figures (``plots``), widgets, comparisons, the HTML report,
exports, and the bench and tune commands (``commands``).

Plots, widgets, notebooks and reports read records through this module and never time
anything. ``DECODEKIT_DATA`` (a folder holding ``results/`` and ``ncu/``) redirects every
view to another data set, which is how tests and reports render a copy without touching
``data/``.

>>> df = latest(empty_records())
>>> len(df), provenance(df)
(0, 'no recorded results')
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from decodekit import records
from decodekit.base import paths
from decodekit.problem.spec import DEFINITION

# The records schema (decodekit.records) as far as views read it; absent columns become NA.
RECORD_COLUMNS = (
    "impl", "uuid", "workload", "batch_size", "method", "latency_us", "mean_us", "p10_us",
    "p90_us", "min_us", "spread", "noisy", "preset", "status", "bytes", "gbps", "pct_copy",
    "pct_row_copy", "pct_peak", "gpu", "sm_count", "timestamp", "run_id", "git_commit", "driver",
    "cuda", "torch", "source_digest",
    "impl_kind",  # "kernel" | "baseline" | "floor" (copy and launch floors, decodekit.measure.floors)
    "definition",  # family members' rows (decodekit.problem.family); none: the contest's
    "floor",  # floor rows: which floor (decodekit.records.schema.FLOORS); method is what timed it
)  # fmt: skip

# Preference order for "the kernel's time" when a caller names no method.
from decodekit.measure.timing import DEFAULT_METHODS as KERNEL_METHODS  # noqa: E402  (one order)


def data_dir() -> Path:
    """The data folder views read: ``$DECODEKIT_DATA`` if set, else the repository's ``data/``."""
    return paths.data_dir()


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
    if not folder.exists():
        return normalize(empty_records())
    return normalize(records.load(folder))


def load_ncu(path: str | Path | None = None) -> pd.DataFrame:
    """Nsight Compute metrics via :func:`decodekit.measure.ncu.load` (empty frame when none are recorded)."""
    from decodekit.measure import ncu
    from decodekit.records import ncu_parse

    folder = Path(path) if path is not None else data_dir() / "ncu"
    if not folder.is_dir():
        return pd.DataFrame(columns=[*ncu_parse.COLUMNS, "gpu", "date"])
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


def latest(df: pd.DataFrame, gpu: str | None = None, definition: str = DEFINITION.name):
    """One GPU (``gpu``, else the newest recorded), the newest row per impl x workload x method,
    of one ``definition`` (default the contest's: rows of family members are left out). A
    family member's rows are those of its manifest's workloads (a record of a workload the
    manifest has since replaced, a uuid it no longer lists, stays in data/ but out of view).
    A row ``unavailable`` (a peer not installed on that run's machine) does not hide an older
    row of the same key: the newest of those shows, with its own run id, and the
    ``unavailable`` row only where nothing else was recorded; a newer failed or unsupported
    row still replaces a measurement."""
    df = normalize(df)
    if df.empty:
        return df
    df = df[df["definition"].fillna(DEFINITION.name) == definition]
    if definition != DEFINITION.name and len(df):
        from decodekit.problem.family import load_cases, parse

        current = {c.uuid for c in load_cases(parse(definition))}
        df = df[df["uuid"].isin(current) | df["uuid"].isna()]
    if df.empty:
        return df.reset_index(drop=True)
    if gpu is None:
        # CPU-only runs (host methods of torch-fp32) never hide a GPU's records.
        on_gpu = df[df["gpu"].fillna("cpu") != "cpu"]
        last = (on_gpu if len(on_gpu) else df).sort_values("timestamp", na_position="first")
        gpu = last.iloc[-1]["gpu"]
    if not pd.isna(gpu):
        df = df[df["gpu"] == gpu]
    shown = df["status"].ne("unavailable").rename("_shown")
    df = df.assign(_shown=shown).sort_values(["_shown", "timestamp"], na_position="first")
    key = ["impl", "uuid", "batch_size", "method", "floor"]
    df = df.drop_duplicates(key, keep="last").drop(columns="_shown")
    return df.sort_values("timestamp", na_position="first").reset_index(drop=True)


_newest = latest  # select's argument of the same name shadows it


def select(
    df: pd.DataFrame,
    method: str | None = None,
    gpu: str | None = None,
    latest: bool = True,
    only_ok: bool = True,
) -> tuple[pd.DataFrame, str | None]:
    """The one selection every table, figure and score starts from, and the method it
    resolved: with ``latest``, one GPU (``gpu``, else the newest recorded) and the newest row
    per impl x workload x method x floor; with ``only_ok``, rows that carry a number; then the
    implementations' rows of ``method`` (None: :func:`kernel_method`, the first of
    :data:`KERNEL_METHODS` recorded) beside the floors measured with it.

    >>> d, m = select(empty_records())
    >>> len(d), m
    (0, None)
    """
    d = normalize(df)
    if latest:
        d = _newest(d, gpu)
    elif gpu is not None:
        d = d[d["gpu"] == gpu]
    if only_ok:
        d = ok(d)
    m = method or kernel_method(d)
    return d[d["method"] == m].reset_index(drop=True), m


def kernel_method(df: pd.DataFrame) -> str | None:
    """The timing method views show by default: the first of :data:`KERNEL_METHODS` recorded."""
    d = ok(df)
    if "impl_kind" in d:  # frames that are not normalized may lack it: then no floors
        d = d[~records.is_floor(d)]
    have = set(d["method"])
    return next((m for m in KERNEL_METHODS if m in have), None)


def table(df: pd.DataFrame, method: str | None = None) -> pd.DataFrame:
    """Latency (µs) per implementation and batch size (:func:`decodekit.measure.sweep.table`) of the
    newest records, with the default method; failed checks show their status, not a number."""
    from decodekit.measure.sweep import table as sweep_table

    d, m = select(df, method, only_ok=False)  # failed checks show their status
    t = sweep_table(d, m)
    t.columns = [int(c) for c in t.columns]
    t.columns.name = f"B ({m}, µs)"
    return t


def method_table(df: pd.DataFrame, impl: str) -> pd.DataFrame:
    """Latency (µs) of ``impl`` per timing method (rows) and batch size (columns), with the
    one-line reason each method moves the figure."""
    from decodekit.measure.timing import WHY

    d = ok(latest(df))
    d = d[d["impl"] == impl]
    t = d.pivot_table(index="method", columns="batch_size", values="latency_us", aggfunc="mean")
    t = t.rename(columns=int).round(2)
    t["why it differs"] = [WHY.get(m, "") for m in t.index]
    return t


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


def banner(df: pd.DataFrame, live: bool, definition: str = DEFINITION.name) -> str:
    """The one-line statement a view shows above its numbers: live or recorded, GPU and date
    (of ``definition``'s records: default the contest's, else a family member's)."""
    if live:
        import torch

        from decodekit.measure.tuning import untuned_note

        gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "the GPU"
        untuned = untuned_note() if torch.cuda.is_available() else None
        return (
            f"live: measuring on {gpu} now; figures draw on the records "
            f"this session appends to {paths.relative(data_dir() / 'results')}"
        ) + (f"; {untuned}" if untuned else "")
    d = latest(df, definition=definition)
    why = "no GPU" if not gpu_available() else "recorded mode (live=False)"
    if d.empty:
        return (
            f"{why}: no recorded results under {paths.relative(data_dir() / 'results')} yet; "
            "figures are empty"
        )
    from decodekit.measure.sweep import tuning_note

    untuned = tuning_note(d)
    return f"{why}: showing recorded data from {gpu_of(d)} {when(d)}" + (
        f"; {untuned}" if untuned else ""
    )


def kernels_log(section: str | None = None) -> str:
    """``kernels/README.md`` (or one ``## section`` of it) as Markdown text."""
    path = paths.kernels_dir() / "README.md"
    if not path.exists():
        return "_kernels/README.md is not written yet._"
    text = path.read_text()
    if section is None:
        return text
    parts = text.split("\n## ")
    hits = [p for p in parts if p.lower().startswith(section.lower())]
    return "## " + hits[0] if hits else f"_no section {section!r} in kernels/README.md_"
