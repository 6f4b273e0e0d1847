"""Nsight Compute exports -> one row per workload, with no ncu needed.

Two readers give the same kernel records: :func:`kernels_from_csv` reads the raw page
(``ncu --import X.ncu-rep --csv --page raw --print-units base``: first row metric names,
second row units, then one row per profiled kernel), and :func:`kernels_from_report` reads the
``.ncu-rep`` through NVIDIA's ``ncu_report`` module. :func:`frame` maps each kernel to its
workload by the NVTX push/pop range the runner opened (the workload uuid) and adds the memory
floor.

>>> text = ('"ID","thread Domain:Push/Pop_Range:PL_Type:PL_Value:CLR_Type:Color:Msg_Type:Msg",'
...         '"Kernel Name","gpu__time_duration.sum"\\n"","","","usecond"\\n'
...         '"0","1  ""<default domain>:B3:none:none:none:none:none:none"" ","k","2.5"\\n')
>>> [(k["ranges"], k["kernel"], k["metrics"][DURATION]) for k in kernels_from_csv(text)]
[(['B3'], 'k', 2.5e-06)]
>>> frame(kernels_from_csv(text))[["uuid", "batch_size", "duration_us"]].values.tolist()
[['B3', 3, 2.5]]
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from decodekit.base.paths import data_dir
from decodekit.problem.spec import bytes_moved
from decodekit.problem.workloads import ROOT  # noqa: F401

DATA = data_dir() / "ncu"
RAW_PAGE = ["--csv", "--page", "raw", "--print-units", "base", "--print-kernel-base", "function"]

DURATION = "gpu__time_duration.sum"
DRAM_READ = "dram__bytes_read.sum"
DRAM_WRITE = "dram__bytes_write.sum"
DRAM_PCT = (
    "gpu__dram_throughput.avg.pct_of_peak_sustained_elapsed",
    "dram__throughput.avg.pct_of_peak_sustained_elapsed",
)
OCCUPANCY = "sm__warps_active.avg.pct_of_peak_sustained_active"
REGISTERS = "launch__registers_per_thread"
GRID = "launch__grid_size"
BLOCK = "launch__block_size"
# DRAM peak = peak bytes per DRAM cycle x DRAM cycles per second (what the roofline section uses)
DRAM_PEAK_PER_CYCLE = "dram__bytes.sum.peak_sustained"
DRAM_HZ = "dram__cycles_elapsed.avg.per_second"
METRICS = (
    DURATION,
    DRAM_READ,
    DRAM_WRITE,
    DRAM_PCT[0],
    OCCUPANCY,
    REGISTERS,
    GRID,
    BLOCK,
    DRAM_PEAK_PER_CYCLE,
    DRAM_HZ,
)


class NcuError(RuntimeError):
    """Nsight Compute could not produce or read a profile; the message says what to do next."""


_PREFIX = {"n": -9, "u": -6, "m": -3, "K": 3, "M": 6, "G": 9, "T": 12}  # powers of ten
_BASE = ("second", "byte", "hz", "cycle", "B")
_SHORT = {"ns": -9, "us": -6, "ms": -3, "s": 0}


def _power(unit: str) -> int:
    u = (unit or "").strip()
    if "/" in u:
        num, den = u.split("/", 1)
        return _power(num) - _power(den)
    if u and u[0] in _PREFIX and u[1:] in _BASE:
        return _PREFIX[u[0]]
    return _SHORT.get(u, 0)


def to_si(value: float, unit: str) -> float:
    """``value`` in ``unit`` (an ncu unit) in SI base units: seconds, bytes, hertz.

    Unknown units (``register/thread``, ``%``) pass through. Powers of ten divide rather than
    multiply by 1e-9 so that whole nanoseconds stay exact decimals.

    >>> to_si(7008, "nsecond"), to_si(2, "Kbyte"), to_si(1.5, "cycle/nsecond")
    (7.008e-06, 2000, 1500000000.0)
    """
    p = _power(unit)
    return value * 10**p if p >= 0 else value / 10**-p


def number(text: Any) -> float:
    """A metric value as float (thousands separators dropped); NaN when not numeric."""
    try:
        return float(str(text).replace(",", "").strip())
    except ValueError:
        return math.nan


def nvtx_ranges(cell: str) -> list[str]:
    """Push/pop range names, outermost first, from the raw page's NVTX cell.

    ncu writes ``<thread>  "<domain>:<range>:<payload and colour fields>"`` per open range.

    >>> nvtx_ranges('1  "<default domain>:outer:none"  "<default domain>:B1:none:none" ')
    ['outer', 'B1']
    """
    parts = re.findall(r'"([^"]*)"', cell or "") or (cell or "").split()
    return [p.split(":")[1] for p in parts if p.count(":") >= 1 and p.split(":")[1]]


def kernels_from_csv(text: str) -> list[dict]:
    """Kernel records ``{id, kernel, ranges, metrics (SI units), grid, block}`` from a raw CSV."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith('"ID"')), None)
    if start is None:
        raise ValueError('not an Nsight Compute raw CSV: no header row starting with "ID"')
    table = list(csv.reader(lines[start:]))
    header, units = table[0], table[1] if len(table) > 1 else []
    nvtx_col = next((i for i, h in enumerate(header) if "Push/Pop_Range" in h), None)
    col = {h: i for i, h in enumerate(header)}
    metric_cols = [(h, i) for h, i in col.items() if "__" in h]
    out = []
    for row in table[2:]:
        if len(row) != len(header) or not row[col["ID"]].strip():
            continue
        unit = {h: units[i] if i < len(units) else "" for h, i in metric_cols}
        out.append(
            dict(
                id=int(number(row[col["ID"]])),
                kernel=row[col["Kernel Name"]] if "Kernel Name" in col else "",
                ranges=nvtx_ranges(row[nvtx_col]) if nvtx_col is not None else [],
                metrics={h: to_si(number(row[i]), unit[h]) for h, i in metric_cols},
                grid=row[col["Grid Size"]] if "Grid Size" in col else "",
                block=row[col["Block Size"]] if "Block Size" in col else "",
            )
        )
    return out


def kernels_from_report(path: str, ncu_report: Any) -> list[dict]:
    """Kernel records from a ``.ncu-rep`` through the ``ncu_report`` module (same shape as CSV)."""
    ctx = ncu_report.load_report(str(path))
    out = []
    for r in range(ctx.num_ranges()):
        rng = ctx.range_by_idx(r)
        for a in range(rng.num_actions()):
            action = rng.action_by_idx(a)
            metrics = {}
            for name in action.metric_names():
                m = action.metric_by_name(name)
                value = number(m.value()) if m is not None else math.nan
                if not math.isnan(value):
                    metrics[name] = to_si(value, m.unit())
            ranges = []
            state = action.nvtx_state()
            for d in state.domains() if state is not None else ():
                ranges += list(state.domain_by_id(d).push_pop_ranges())
            out.append(
                dict(
                    id=len(out),
                    kernel=action.name(),
                    ranges=ranges,
                    metrics=metrics,
                    grid="",
                    block="",
                )
            )
    return out


def _dims(text: str) -> float:
    """``"(8, 1, 1)"`` -> 8 (the product), NaN when absent."""
    nums = [number(x) for x in re.findall(r"[\d.]+", text or "")]
    return math.prod(nums) if nums else math.nan


def _first(metrics: dict, names: Iterable[str]) -> float:
    return next((metrics[n] for n in names if not math.isnan(metrics.get(n, math.nan))), math.nan)


def _batch_size(uuid: str) -> float:
    from decodekit.problem.workloads import select

    try:
        return select(uuid)[0].batch_size
    except Exception:  # a range this kit did not open: keep the row, batch size unknown
        return math.nan


def frame(
    kernels: list[dict],
    workloads: list[dict] | None = None,
    impl: str | None = None,
    copy_gbps: float | None = None,
) -> pd.DataFrame:
    """One row per workload (NVTX range); several kernels in one range are summed.

    Durations and bytes add up; occupancy, registers, grid and block come from the longest
    kernel. ``floor_us`` is ``bytes_moved(B)`` over ``copy_gbps`` (a measured device copy
    bandwidth, ``floor_basis='copy'``) when given, else over the DRAM peak ncu reports for the
    kernel (``floor_basis='dram_peak'``); ``pct_of_floor = 100 * floor_us / duration_us``.
    ``workloads`` (``[{uuid, batch_size}]``, the run's order) names rows when the export has
    no NVTX column (kernels in launch order); a workload's ``bytes`` (a family member's live
    state traffic) replaces the contest's bytes in its floor.
    """
    known = {w["uuid"]: w["batch_size"] for w in workloads or []}
    floor_bytes = {w["uuid"]: w["bytes"] for w in workloads or [] if w.get("bytes")}
    groups = _by_workload(kernels, workloads)
    return pd.DataFrame(
        [
            _row(u, ks, known.get(u), impl, copy_gbps, floor_bytes.get(u))
            for u, ks in groups.items()
        ],
        columns=COLUMNS,
    )


def _by_workload(kernels: list[dict], workloads: list[dict] | None) -> dict[str, list[dict]]:
    """The kernels of each workload (NVTX range, else launch order), the run's order first."""
    known = {w["uuid"]: w["batch_size"] for w in workloads or []}
    if (
        workloads
        and kernels
        and not any(k["ranges"] for k in kernels)
        and len(kernels) == len(workloads)
    ):
        for k, w in zip(kernels, workloads, strict=True):
            k["ranges"] = [w["uuid"]]
    groups: dict[str, list[dict]] = {}
    for k in kernels:
        hits = [r for r in k["ranges"] if r in known] or k["ranges"][-1:] or [f"#{k['id']}"]
        groups.setdefault(hits[-1], []).append(k)
    order = [u for u in known if u in groups] + [u for u in groups if u not in known]
    return {u: groups[u] for u in order}


# Where warps wait: WarpStateStats' stall reasons (cycles a warp spends in each per instruction
# it issues) and SchedulerStats' issue rate and eligible warps.
STALL = re.compile(r"smsp__average_warps_issue_stalled_(\w+?)_per_issue_active\.ratio")
ISSUE_ACTIVE = "smsp__issue_active.avg.pct_of_peak_sustained_active"
ELIGIBLE = "smsp__warps_eligible.avg.per_cycle_active"


def warp_states(kernels: list[dict], workloads: list[dict] | None = None) -> pd.DataFrame:
    """One row per workload from a profile with the WarpStateStats section (and, for the
    issue columns, SchedulerStats): ``batch_size``, ``duration_us``, ``issue_active_pct``,
    ``warps_active_pct``, ``eligible_per_cycle``, then ``stall_<reason>`` in cycles per issued
    instruction, the reasons largest first; the longest kernel of a workload speaks for it.
    ValueError when the profile has no stall metrics (record it with ``--section
    WarpStateStats``)."""
    known = {w["uuid"]: w["batch_size"] for w in workloads or []}
    rows = []
    for uuid, ks in _by_workload(kernels, workloads).items():
        m = max(ks, key=lambda k: k["metrics"].get(DURATION, 0.0))["metrics"]
        stalls = {f"stall_{STALL.fullmatch(h).group(1)}": v for h, v in m.items()
                  if STALL.fullmatch(h)}  # fmt: skip
        if not stalls:
            raise ValueError("no stall metrics in this profile: record it with "
                             "`decodekit ncu ... --section WarpStateStats`")  # fmt: skip
        rows.append(dict(batch_size=known.get(uuid, _batch_size(uuid)),
                         duration_us=m.get(DURATION, math.nan) * 1e6,
                         issue_active_pct=m.get(ISSUE_ACTIVE, math.nan),
                         warps_active_pct=m.get(OCCUPANCY, math.nan),
                         eligible_per_cycle=m.get(ELIGIBLE, math.nan), **stalls))  # fmt: skip
    df = pd.DataFrame(rows)
    reasons = sorted((c for c in df.columns if c.startswith("stall_")),
                     key=lambda c: -df[c].fillna(0).mean())  # fmt: skip
    return df[[c for c in df.columns if not c.startswith("stall_")] + reasons]


COLUMNS = [
    "impl",
    "uuid",
    "batch_size",
    "kernel",
    "n_kernels",
    "duration_us",
    "dram_read_bytes",
    "dram_write_bytes",
    "dram_gbps",
    "dram_throughput_pct",
    "achieved_occupancy",
    "registers_per_thread",
    "grid_size",
    "block_size",
    "dram_peak_gbps",
    "floor_us",
    "pct_of_floor",
    "floor_basis",
]


def _row(
    uuid: str,
    ks: list[dict],
    batch_size: int | None,
    impl: str | None,
    copy_gbps: float | None,
    nbytes: int | None = None,
) -> dict:
    def total(name):
        return sum(k["metrics"].get(name, math.nan) for k in ks)

    main = max(ks, key=lambda k: k["metrics"].get(DURATION, 0.0))
    m = main["metrics"]
    B = batch_size if batch_size is not None else _batch_size(uuid)
    duration = total(DURATION)
    read, write = total(DRAM_READ), total(DRAM_WRITE)
    peak = m.get(DRAM_PEAK_PER_CYCLE, math.nan) * m.get(DRAM_HZ, math.nan)
    bandwidth, basis = (copy_gbps * 1e9, "copy") if copy_gbps else (peak, "dram_peak")
    if nbytes is None and not math.isnan(B):
        nbytes = bytes_moved(int(B))["total"]  # the contest's bytes; a family run names its own
    floor = nbytes / bandwidth if nbytes is not None else math.nan
    names = list(dict.fromkeys(k["kernel"] for k in ks))
    return dict(
        impl=impl,
        uuid=uuid,
        batch_size=B,
        kernel="+".join(names),
        n_kernels=len(ks),
        duration_us=round(duration * 1e6, 6),
        dram_read_bytes=read,
        dram_write_bytes=write,
        dram_gbps=(read + write) / duration / 1e9 if duration else math.nan,
        dram_throughput_pct=_first(m, DRAM_PCT),
        achieved_occupancy=m.get(OCCUPANCY, math.nan),
        registers_per_thread=m.get(REGISTERS, math.nan),
        grid_size=m.get(GRID, _dims(main["grid"])),
        block_size=m.get(BLOCK, _dims(main["block"])),
        dram_peak_gbps=peak / 1e9,
        floor_us=floor * 1e6,
        pct_of_floor=100 * floor / duration if duration else math.nan,
        floor_basis=basis if not math.isnan(floor) else None,
    )


def _ncu_report(ncu: str = "ncu"):
    """NVIDIA's ``ncu_report`` module (the ``ncu-report`` package on PyPI), or None."""
    try:
        import ncu_report
    except (ImportError, OSError):
        return None
    return ncu_report


def load(
    path_or_impl: str | Path = DATA,
    *,
    copy_gbps: float | None = None,
    out_dir: str | Path = DATA,
    ncu: str = "ncu",
    definition: str | None = None,
) -> pd.DataFrame:
    """Recorded profiles as a DataFrame (the same rows :func:`profile` returns).

    ``path_or_impl``: an export (``.csv``, ``.ncu-rep`` or ``.json``), a folder of exports
    (every impl; the newest row per impl x workload x GPU), or an implementation name (its
    newest export in ``out_dir``). A ``.ncu-rep`` named explicitly is read through
    ``ncu_report`` when importable, else through the CSV beside it. A folder or a name gives
    the contest's profiles, or with ``definition`` those of that family member.
    """
    p = Path(path_or_impl)
    if p.is_dir():
        return _load_folder(p, copy_gbps, ncu, definition)
    if p.suffix in (".csv", ".ncu-rep", ".json") and p.exists():
        return _load_export(p.with_suffix(""), copy_gbps, ncu, prefer_report=p.suffix == ".ncu-rep")
    prefix = f"{definition}_{impl_part(p.name)}" if definition else impl_part(p.name)
    stems = [s for s in _stems(Path(out_dir), f"{prefix}_*")
             if export_meta(s).get("definition") == definition]  # fmt: skip
    if not stems:
        raise NcuError(
            f"no Nsight Compute export for {str(path_or_impl)!r} in {out_dir}; "
            f"record one with `decodekit ncu --impl {p.name}"
            + (f" --definition {definition}`" if definition else "`")
        )
    return _load_export(max(stems, key=lambda s: export_meta(s).get("date", "")), copy_gbps, ncu)


def _stems(folder: Path, pattern: str = "*") -> list[Path]:
    files = [*folder.glob(pattern + ".csv"), *folder.glob(pattern + ".ncu-rep")]
    return sorted({f.with_suffix("") for f in files})


def impl_part(impl: str) -> str:
    """``impl`` as it appears in an export's file name: itself when it is a plain name, else
    ``build-`` and a digest (a build's ``family[KNOB=v,...]``; the ``.json`` keeps the name)."""
    if re.fullmatch(r"[\w.-]+", impl):
        return impl
    return "build-" + hashlib.sha256(impl.encode()).hexdigest()[:10]


def export_meta(stem: Path) -> dict:
    """The ``.json`` beside an export (what :func:`decodekit.measure.ncu.profile` ran), or {}."""
    f = Path(stem).with_suffix(".json")
    return json.loads(f.read_text()) if f.exists() else {}


def export_kernels(stem: Path, ncu: str = "ncu", prefer_report: bool = False) -> list[dict]:
    """The kernel records of the export ``stem`` (``.ncu-rep`` through ``ncu_report`` when
    importable and preferred or alone, else the ``.csv`` beside it)."""
    stem = Path(stem)
    csv, rep = stem.with_suffix(".csv"), stem.with_suffix(".ncu-rep")
    module = _ncu_report(ncu) if rep.exists() and (prefer_report or not csv.exists()) else None
    if module is not None:
        return kernels_from_report(str(rep), module)
    if csv.exists():
        return kernels_from_csv(csv.read_text())
    raise NcuError(
        f"{rep} needs NVIDIA's ncu_report module (pip install ncu-report) or the CSV "
        f"beside it: ncu --import {rep} {' '.join(RAW_PAGE)} > {csv}"
    )


def _load_export(stem: Path, copy_gbps, ncu: str, prefer_report: bool = False) -> pd.DataFrame:
    meta = export_meta(stem)
    kernels = export_kernels(stem, ncu, prefer_report)
    impl = meta.get("impl") or stem.name.partition("_")[0]
    df = frame(kernels, meta.get("workloads"), impl, copy_gbps)
    for key in ("gpu", "tag", "clock_control", "cache_control", "ncu_version", "date"):
        df[key] = meta.get(key)
    df["definition"] = meta.get("definition")  # None: the contest's
    df.attrs.update(meta=meta, export=str(stem))
    return df


def _load_folder(folder: Path, copy_gbps, ncu: str, definition: str | None = None) -> pd.DataFrame:
    frames = []
    for stem in _stems(folder):
        if export_meta(stem).get("definition") != definition:
            continue  # another member's profiles (None: the contest's own)
        try:
            frames.append(_load_export(stem, copy_gbps, ncu))
        except (ValueError, NcuError) as e:  # a stray file must not hide the good exports
            warnings.warn(f"skipped {stem}: {e}", stacklevel=2)
    if not frames:
        return pd.DataFrame(columns=[*COLUMNS, "gpu", "date"])
    df = pd.concat(frames, ignore_index=True).sort_values(
        "date", kind="stable", na_position="first"
    )
    df = df.drop_duplicates(["impl", "uuid", "gpu"], keep="last")
    return df.sort_values(["impl", "batch_size"], kind="stable").reset_index(drop=True)
