"""Records: one JSON line per implementation x workload x method, with the environment.

The records layer is this package: the store (here), the schema of one record (``schema``),
the environment a run captures (``env``) and Nsight Compute exports (``ncu_parse``).

A run appends to ``data/results/<date>_<gpu-slug>_<run_id>.jsonl`` (``$DECODEKIT_DATA/results``
when that is set); each batch of lines is written whole (one ``write``, after a newline if
the file lacks its last one, truncated back on failure), so a crash never leaves half a record
that swallows the next. A finished run's file may be packed (:func:`pack`: gzip beside it,
``.jsonl.gz``, for the large tuning sweeps); every reader takes both. Rows are validated on
read (:func:`validate`). Every
record carries at least :data:`REQUIRED`. :func:`load` returns a pandas DataFrame with
provenance columns (``recorded``, ``provenance``, ``source_file``), so a machine without a
GPU shows where and when each figure was measured.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as d:  # leaves nothing behind
...     rec = Recorder(d, env={"gpu": "cpu"}, run_id="doc")
...     _ = rec.append([{"impl": "x", "uuid": "B1", "batch_size": 1, "method": "wall",
...                      "latency_us": 3.0, "status": "ok"}])
...     load(d)[["impl", "latency_us", "recorded"]].values.tolist()
[['x', 3.0, True]]
"""

from __future__ import annotations

import gzip
import json
import math
import os
import uuid as uuidlib
import warnings
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from decodekit.base import paths
from decodekit.records.env import gpu_slug
from decodekit.records.schema import (  # noqa: F401  (the store's API: what it writes and reads)
    LEADING,
    REQUIRED,
    SCHEMA,
    STATUSES,
    Record,
    Status,
    upgrade,
    validate,
)

RESULTS = paths.data_dir() / "results"  # at import; results_dir() reads the variable per call
AUTO = "auto"  # out_dir meaning results_dir() at the time of the call


def results_dir() -> Path:
    """Where records go and come from: ``$DECODEKIT_DATA/results`` if set, else
    ``data/results`` of the repository (the views honour the same variable)."""
    return paths.data_dir() / "results"


def new_run_id() -> str:
    return uuidlib.uuid4().hex[:8]


def now() -> str:
    """UTC time, ISO 8601 to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _clean(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def append(path: str | Path, rows: Iterable[dict]) -> None:
    """Append rows as JSON lines in one write: a file left without its final newline (a
    crash, a full disk) gets one first, so a broken line never swallows the next record; a
    failed write is truncated back, so a batch lands whole or not at all."""
    lines = [json.dumps(_clean(r), default=str, allow_nan=False) + "\n" for r in rows]
    if not lines:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        guard = b""
        if size and os.pread(fd, 1, size - 1) != b"\n":
            guard = b"\n"
        data = guard + "".join(lines).encode()
        try:
            while data:
                data = data[os.write(fd, data) :]
        except OSError:
            os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)


def write_json(path: str | Path, doc) -> Path:
    """Write ``doc`` as JSON to a temp file beside ``path`` and rename it into place, so a
    reader never sees half a file."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return write_text(path, json.dumps(doc, indent=1, default=str) + "\n")


def write_text(path: str | Path, text: str) -> Path:
    """Text written to a temp file and renamed into place (README tables and the like)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


class Recorder:
    """Writes one run's records: stamps each row with the run id, time and environment."""

    def __init__(
        self, out_dir: str | Path | None = AUTO, env: dict | None = None, run_id: str | None = None
    ):
        self.env = dict(env or {})
        self.run_id = run_id or new_run_id()
        self.started = now()
        self.rows: list[dict] = []
        self.path = None
        if out_dir == AUTO:
            out_dir = results_dir()
        if out_dir is not None:
            name = f"{self.started[:10]}_{gpu_slug(str(self.env.get('gpu', 'unknown')))}"
            self.path = Path(out_dir) / f"{name}_{self.run_id}.jsonl"

    def stamp(self, row: dict) -> dict:
        out = {"schema": SCHEMA, "run_id": self.run_id, "timestamp": now()}
        out.update(self.env)
        out.update(row)
        return out

    def header(self) -> dict:
        """The run header (schema 2): the environment once, before the run's first row."""
        return {"schema": SCHEMA, "kind": "run", "run_id": self.run_id, "started": self.started,
                **self.env}  # fmt: skip

    def append(self, rows: Iterable[dict | Record]) -> list[dict]:
        """Stamp and keep ``rows`` (:class:`Record` or dicts; returned whole as dicts,
        environment included); on disk each row holds only what differs from the run header,
        written with the first batch."""
        stamped = [self.stamp(r.row() if isinstance(r, Record) else r) for r in rows]
        for r in stamped:  # what the reader would skip is never written
            why = validate(dict(r))
            if why is not None:
                raise ValueError(f"argument 'rows': not a valid record ({why}): {r.get('impl')!r}")
        if self.path is not None and self.path.suffix == PACKED:
            raise ValueError(f"argument 'rows': run {self.run_id} is packed ({self.path.name}); "
                             "start a new Recorder")  # fmt: skip
        self.rows.extend(stamped)
        if self.path is not None and stamped:
            lines = [] if self.path.exists() else [self.header()]
            env = self.env
            lines += [{k: v for k, v in r.items() if k not in env or env[k] != v} for r in stamped]
            append(self.path, lines)
        return stamped

    def pack(self) -> Path | None:
        """The finished run's file packed (:func:`pack`); its path (None: nothing written)."""
        if self.path is not None and self.path.exists() and self.path.suffix != PACKED:
            self.path = pack(self.path)
        return self.path if self.path is not None and self.path.exists() else None


PACKED = ".gz"  # a packed run's suffix: <name>.jsonl.gz


def _text(path: Path) -> str:
    if path.suffix == PACKED:
        return gzip.decompress(path.read_bytes()).decode()
    return path.read_text()


def pack(path: str | Path) -> Path:
    """A finished run's file gzipped beside it (``<name>.jsonl.gz``, no timestamp in the
    header, so the same records pack to the same bytes) and the plain file removed once the
    packed one is in place and reads back the same rows; the packed path. Nothing is lost on
    a failure: the plain file stays until then."""
    path = Path(path)
    if path.suffix != ".jsonl":
        raise ValueError(f"argument 'path': expected a .jsonl file of records, got {str(path)!r}")
    out = path.with_name(path.name + PACKED)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        plain = path.read_bytes()
        tmp.write_bytes(gzip.compress(plain, mtime=0))
        if gzip.decompress(tmp.read_bytes()) != plain:
            raise OSError(f"{tmp}: the packed records do not read back as {path.name}")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    path.unlink()
    return out


def read(path: str | Path) -> list[dict]:
    """Valid rows of one file (:func:`validate`); a line that is not a JSON object or not a
    valid record is skipped with a ``file:line`` warning, never used and never a crash."""
    rows: list[dict] = []
    env: dict = {}
    for i, line in enumerate(_text(Path(path)).splitlines()):
        if not line.strip():
            continue
        where = f"{path}:{i + 1}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            warnings.warn(f"{where}: not a JSON record, skipped", stacklevel=2)
            continue
        if isinstance(row, dict) and row.get("kind") == "run":  # schema 2 run header
            env = {k: v for k, v in row.items() if k not in ("kind", "started", "schema")}
            continue
        if isinstance(row, dict) and env:
            row = {**env, **row}
        why = validate(row)
        if why:
            warnings.warn(f"{where}: {why}, skipped", stacklevel=2)
            continue
        rows.append(row)
    return rows


FLAG = " (!kernels)"  # appended to the label of an implementation whose spans were flagged


def is_floor(df: pd.DataFrame) -> pd.Series:
    """True on floor rows (copy, row-copy and launch floors, :mod:`decodekit.measure.floors`): a
    reference time, never an implementation's; every table, plot and score leaves them out
    of the implementations through this one test.

    >>> is_floor(pd.DataFrame({"impl_kind": ["floor", "kernel", None]})).tolist()
    [True, False, False]
    """
    if "impl_kind" not in df:
        return pd.Series(False, index=df.index)
    return df["impl_kind"].fillna("") == "floor"


def label(df: pd.DataFrame) -> pd.DataFrame:
    """Series labels every view shows in ``impl``, the registry name kept in ``impl_name``:
    a contract other than ``dps`` is named (``flashinfer [inplace]``), so no table or plot
    puts two contracts in one row or curve unsaid; an implementation with a flagged kernel
    set (``kernel_flag``: more GPU activities per call than it declares, or a changing set)
    carries :data:`FLAG`. Records without a ``contract`` are ``dps`` (schema 1).

    >>> label(pd.DataFrame({"impl": ["best", "fi"], "contract": [None, "inplace"],
    ...                     "kernel_flag": [None, "launches 2"]}))["impl"].tolist()
    ['best', 'fi [inplace] (!kernels)']
    """
    if "impl_name" in df.columns or "impl" not in df.columns:
        return df  # labelled already
    df = df.copy()
    df["impl_name"] = df["impl"]
    if "contract" not in df.columns:
        df["contract"] = None
    contract = df["contract"].fillna("dps").astype(str)
    names = df["impl"].astype(str).where(contract == "dps", df["impl"] + " [" + contract + "]")
    if "kernel_flag" in df.columns:
        flagged = set(names[df["kernel_flag"].notna()])
        names = names.map(lambda n: n + FLAG if n in flagged else n)
    df["impl"] = names.where(df["impl"].notna(), None)
    return df


def to_frame(rows: list[dict], *, recorded: bool = False) -> pd.DataFrame:
    """DataFrame of records, the :data:`LEADING` columns first, series labelled by
    :func:`label`. ``recorded`` marks rows read back from disk (as opposed to a live run in
    this process)."""
    df = pd.DataFrame([upgrade(dict(r)) for r in rows])
    for col in REQUIRED + ("floor",):
        if col not in df:
            df[col] = None
    df = label(df)
    df["recorded"] = recorded
    if len(df):
        df["provenance"] = [_provenance(r) for r in df.to_dict("records")]
    else:
        df["provenance"] = pd.Series(dtype=object)
    lead = [c for c in LEADING if c in df]
    return df[lead + [c for c in df.columns if c not in lead]]


def _provenance(r: dict) -> str:
    commit = str(r.get("git_commit") or "")[:8] or "no git commit"
    when = str(r.get("timestamp") or "")[:10] or "unknown date"
    return f"{when} on {r.get('gpu')} (run {r.get('run_id')}, {commit})"


def load(paths: str | Path | Iterable | None = None, latest: bool = False) -> pd.DataFrame:
    """All records under :func:`results_dir` (or the given files / folders) as a DataFrame.

    ``latest``: only the run with the most recent timestamp.
    """
    if paths is None:
        paths = [results_dir()]
    elif isinstance(paths, (str, Path)):
        paths = [paths]
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted([*p.glob("*.jsonl"), *p.glob("*.jsonl" + PACKED)]))
        elif p.exists():
            files.append(p)
    rows = []
    for f in files:
        for r in read(f):
            r["source_file"] = f.name
            rows.append(r)
    df = to_frame(rows, recorded=True)
    if latest and len(df):
        last = df.sort_values("timestamp")["run_id"].iloc[-1]
        df = df[df["run_id"] == last].reset_index(drop=True)
    return df
