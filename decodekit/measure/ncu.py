"""Nsight Compute profiles of any implementation, one row per workload.

:func:`profile` runs :mod:`decodekit.measure.ncu_runner` under ``ncu`` with an NVTX include per workload
uuid and a kernel-name filter, exports ``data/ncu/<impl>_<tag>.ncu-rep``, imports its raw page
into a CSV beside it and writes the run's metadata (ncu version, clock and cache control, GPU,
date, command, source digest) as JSON beside both. :func:`load` reads those exports back on any
machine, no ncu needed. :func:`seed_table`, :func:`by_batch_size` and :func:`side_by_side` are
the tables the seed project read.

>>> kernel_regex_for("fla")
'regex:fused_recurrent'
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import subprocess
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from decodekit.base.proc import run as run_group
from decodekit.build.tools import ToolMissing, find_tool
from decodekit.impls.registry import Impl, get
from decodekit.problem.workloads import ROOT, select
from decodekit.records import ncu_parse, write_json
from decodekit.records.env import gpu_slug, source_digest
from decodekit.records.ncu_parse import DATA, RAW_PAGE, NcuError, load

# Baselines whose kernel name differs from anything in their Impl (their DPS adapters launch
# copies too); an Impl may also say so itself with meta["ncu_kernel"].
BASELINE_KERNELS = {"fla": "fused_recurrent"}


def kernel_regex_for(impl: Impl | str) -> str | None:
    """The default ``-k`` filter: a kit kernel's entry, a known baseline's kernel, else None."""
    impl = get(impl) if isinstance(impl, str) else impl
    if "ncu_kernel" in impl.meta:
        return f"regex:{impl.meta['ncu_kernel']}"
    if "entry" in impl.meta:
        return f"regex:^{impl.meta['entry']}$"
    return f"regex:{BASELINE_KERNELS[impl.name]}" if impl.name in BASELINE_KERNELS else None


def find_ncu(ncu: str = "ncu") -> str:
    try:
        return find_tool("ncu", ncu)
    except ToolMissing as e:
        raise NcuError(
            f"Nsight Compute CLI: {e}. Install Nsight Compute (it ships with the CUDA "
            "toolkit) and put it on PATH or pass ncu='/path/to/ncu'. Recorded exports load "
            "without it: decodekit.measure.ncu.load()."
        ) from None


def profile(
    impl: Impl | str,
    workloads: str | Sequence = "representative",
    metrics: Sequence[str] | None = None,
    sections: Sequence[str] | None = None,
    cache_control: str = "all",
    clock_control: str = "base",
    kernel_regex: str | None = None,
    out_dir: str | Path = DATA,
    ncu: str = "ncu",
    *,
    tag: str | None = None,
    input_profile: str = "random",
    copy_gbps: float | None = None,
    timeout_s: float | None = None,
    definition: str | None = None,
) -> pd.DataFrame:
    """Profile ``impl`` on ``workloads`` under Nsight Compute; one row per workload.

    ``metrics`` and ``sections`` add to the metrics the table needs
    (:data:`decodekit.records.ncu_parse.METRICS`). ``kernel_regex`` overrides the kernel filter
    (``regex:...`` or a plain name; see :func:`kernel_regex_for`). ``copy_gbps``, a measured
    copy bandwidth in GB/s, sets the memory floor; without it the floor is the DRAM peak.

    ``definition``: a member of the decode family (:mod:`decodekit.problem.family`): ``impl``
    is then one of its implementations (``kit``, ``best``, a peer) and ``workloads`` its
    cases, ``"all"`` or batch sizes (``"1,64"``); the export is named after the member, and
    each case's floor is its live state bytes.
    """
    sections = _sections(sections)
    exe = find_ncu(ncu)
    if definition is not None:
        target = _member_target(definition, impl, workloads, kernel_regex)
    else:
        target = _contest_target(impl, workloads, kernel_regex, input_profile)
    if tag is None:
        tag = _tag(workloads, clock_control, cache_control, sections)
    gpu = _gpu()  # one export per GPU: a profile on another GPU never overwrites this one
    name = f"{target['prefix']}_{tag}" + (f"_{gpu_slug(gpu)}" if gpu else "")
    stem = Path(out_dir) / name
    stem.parent.mkdir(parents=True, exist_ok=True)
    kfilter, ws = target["kernel_regex"], target["workloads"]
    wanted = list(dict.fromkeys([*ncu_parse.METRICS, *(metrics or [])]))
    cmd = [
        exe,
        "--nvtx",
        *[a for w in ws for a in ("--nvtx-include", f"{w['uuid']}/")],
        *(["-k", kfilter] if kfilter else []),
        "--cache-control",
        cache_control,
        "--clock-control",
        clock_control,
        "--metrics",
        ",".join(wanted),
        *[a for s in sections for a in ("--section", s)],
        "--export",
        str(stem),
        "--force-overwrite",
        sys.executable,
        "-m",
        "decodekit.measure.ncu_runner",
        *target["runner_args"],
    ]
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    proc = _run(cmd, timeout_s, cwd=ROOT, env=env)
    _diagnose(proc, f"filter {kfilter or '(all kernels)'}, NVTX ranges {ws[0]['uuid']}/ ...")
    report = stem.with_suffix(".ncu-rep")
    if not report.exists():
        raise NcuError(
            f"ncu finished but wrote no report {report}; its output ends:\n"
            + _tail(proc.stdout + proc.stderr)
        )
    imported = _run([exe, "--import", str(report), *RAW_PAGE], timeout_s)
    if imported.returncode != 0:
        raise NcuError(
            f"could not read {report} back with ncu --import:\n" + _tail(imported.stderr)
        )
    stem.with_suffix(".csv").write_text(imported.stdout)
    meta = dict(
        impl=target["impl"],
        **({"definition": definition} if definition else {}),
        tag=tag,
        ncu_version=ncu_version(exe),
        clock_control=clock_control,
        cache_control=cache_control,
        kernel_regex=kfilter,
        metrics=wanted,
        sections=sections,
        input_profile=input_profile if definition is None else "seeded",
        gpu=gpu,
        date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        command=cmd,
        source_digest=target["source_digest"],  # the bench's own: records and profiles join
        workloads=ws,
    )
    write_json(stem.with_suffix(".json"), meta)
    return load(stem.with_suffix(".csv"), copy_gbps=copy_gbps)


def _contest_target(impl, workloads, kernel_regex, input_profile) -> dict:
    impl = get(impl) if isinstance(impl, str) else impl
    ws = list(dict.fromkeys(select(workloads)))
    spec = workloads if isinstance(workloads, str) else ",".join(w.uuid for w in ws)
    return dict(
        impl=impl.name,
        prefix=impl.name,
        kernel_regex=kernel_regex or kernel_regex_for(impl),
        workloads=[dict(uuid=w.uuid, batch_size=w.batch_size) for w in ws],
        runner_args=["--impl", impl.name, "--workloads", spec, "--profile", input_profile],
        source_digest=source_digest(impl),
    )


def member_cases(member, workloads: str | Sequence) -> list:
    """The cases of ``member`` that ``workloads`` names: ``"all"``, or batch sizes (``"1,64"``
    or a list); an unknown batch size is an error naming the argument."""
    from decodekit.problem.family import load_cases, parse_batch_sizes

    cases = load_cases(member)
    if workloads in ("all", None):
        return cases
    wanted = parse_batch_sizes(workloads, "workloads")  # or 'all', above
    have = {c.batch_size: c for c in cases}
    if missing := [b for b in wanted if b not in have]:
        raise ValueError(
            f"argument 'workloads': {member.name} has no case at B={missing[0]} "
            f"(it has {sorted(have)})"
        )
    return [have[b] for b in wanted]


def _member_target(definition: str, impl, workloads, kernel_regex) -> dict:
    from decodekit.impls.family_kernels import implementation
    from decodekit.measure.family_bench import live_bytes
    from decodekit.problem.family import parse

    member = parse(definition)
    name = impl if isinstance(impl, str) else getattr(impl, "name", str(impl))
    fn = implementation(name, member)  # an unknown or unsupported one fails here, in one line
    cases = member_cases(member, workloads)
    entry = getattr(fn, "entry", None)  # a kit launcher's kernel; a peer's: all in the range
    return dict(
        impl=name,
        prefix=f"{member.name}_{ncu_parse.impl_part(name)}",
        kernel_regex=kernel_regex or (f"regex:^{entry}$" if entry else None),
        workloads=[dict(uuid=c.uuid, batch_size=c.batch_size, bytes=live_bytes(c)) for c in cases],
        runner_args=[
            "--impl",
            name,
            "--definition",
            member.name,
            "--workloads",
            ",".join(str(c.batch_size) for c in cases),
        ],  # fmt: skip
        source_digest=source_digest(fn),
    )


def _tag(workloads, clock_control: str, cache_control: str, sections=()) -> str:
    """The export's name after the impl: workloads, non-default controls and the sections
    asked for, so a profile with sections never overwrites the plain one."""
    if isinstance(workloads, str):
        tag = re.sub(r"[^\w.-]+", "-", workloads)[:48].strip("-")
    else:
        tag = "custom-" + hashlib.sha256(repr(list(workloads)).encode()).hexdigest()[:8]
    if (clock_control, cache_control) != ("base", "all"):
        tag += f"_clock-{clock_control}_cache-{cache_control}"
    if sections:  # named while short; else counted, with a digest of the list (never cut)
        names = "-".join(sections)
        digest = hashlib.sha256(names.encode()).hexdigest()[:8]
        tag += "_" + (names if len(names) <= 48 else f"{len(sections)}-sections-{digest}")
    return tag


def _sections(sections) -> list[str]:
    """``sections`` as Nsight Compute section identifiers (``WarpStateStats``, ...), checked."""
    out = list(sections or [])
    bad = [s for s in out if not isinstance(s, str) or not re.fullmatch(r"[A-Za-z]\w*", s)]
    if bad:
        raise ValueError(f"argument 'sections': expected Nsight Compute section identifiers "
                         f"(e.g. WarpStateStats; ncu --list-sections), got {bad[0]!r}")  # fmt: skip
    return list(dict.fromkeys(out))


def _run(cmd: list[str], timeout_s: float | None, **kw) -> subprocess.CompletedProcess:
    try:  # a timeout kills ncu and the profiled program with it (one process group)
        return run_group(cmd, timeout_s, **kw)
    except subprocess.TimeoutExpired as e:
        raise NcuError(
            f"ncu did not finish within {timeout_s} s; profile fewer workloads or "
            f"raise timeout_s. Command: {' '.join(cmd[:6])} ..."
        ) from e


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join((text or "").rstrip().splitlines()[-lines:])


def _diagnose(proc: subprocess.CompletedProcess, what: str) -> None:
    """Raise :class:`NcuError` for the failures seen in practice, each with a way forward."""
    out = proc.stdout + "\n" + proc.stderr
    if "ERR_NVGPUCTRPERM" in out:
        raise NcuError(
            "no permission to read GPU performance counters (ERR_NVGPUCTRPERM). Run as root "
            "(sudo -E env PATH=$PATH ...), or load the driver with "
            "NVreg_RestrictProfilingToAdminUsers=0; "
            "see https://developer.nvidia.com/ERR_NVGPUCTRPERM"
        )
    if re.search(r"[Ff]ailed to find metric|[Ii]nvalid metric|[Uu]nknown metric", out):
        raise NcuError(
            "ncu rejected a metric name for this GPU; list valid ones with "
            "`ncu --query-metrics`. Output:\n" + _tail(out)
        )
    app_failed = "returned an error code" in out or re.search(
        r"^ncu_runner:|Traceback \(most recent call last\)", proc.stderr, re.MULTILINE
    )
    if proc.returncode != 0 and app_failed:
        raise NcuError(
            f"the profiled program failed (ncu exit status {proc.returncode}); the last lines "
            "of its stderr:\n" + _tail(proc.stderr or proc.stdout)
        )
    if "No kernels were profiled" in out:
        raise NcuError(
            f"no kernel matched ({what}). Check the kernel name with `ncu --nvtx "
            "--print-summary per-kernel python -m decodekit.measure.ncu_runner ...` and pass "
            "kernel_regex='regex:<name>' (or register meta['ncu_kernel'] on the Impl)."
        )
    if proc.returncode != 0:
        raise NcuError(f"ncu failed (exit status {proc.returncode}):\n" + _tail(out))


def ncu_version(exe: str = "ncu") -> str | None:
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"Version\s+(\S+)", out)
    return m.group(1) if m else (out.strip().splitlines() or [None])[-1]


def _gpu() -> str | None:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def seed_table(df: pd.DataFrame) -> pd.DataFrame:
    """The seed's table: ``uuid, axes, batch_size, duration_us`` per workload, then the mean.

    >>> t = seed_table(pd.DataFrame(dict(uuid=["u1", "u2"], batch_size=[1, 4],
    ...                                  duration_us=[7.0, 9.0])))
    >>> t["axes"].iloc[-1], float(t["duration_us"].iloc[-1])
    ('arithmetic mean over 2/2 workloads', 8.0)
    """
    if "impl" in df and df["impl"].nunique() > 1:
        raise ValueError("argument 'df': one implementation at a time; use side_by_side()")
    t = df[["uuid", "batch_size", "duration_us"]].reset_index(drop=True)
    t.insert(1, "axes", [f"batch_size={int(b)}" if pd.notna(b) else "?" for b in t["batch_size"]])
    n, m = int(t["duration_us"].notna().sum()), len(t)
    mean = dict(
        uuid="mean",
        axes=f"arithmetic mean over {n}/{m} workloads",
        batch_size=float("nan"),
        duration_us=t["duration_us"].mean(),
    )
    return pd.concat([t, pd.DataFrame([mean])], ignore_index=True)


def format_seed_table(df: pd.DataFrame) -> str:
    """:func:`seed_table` as the seed printed it (uuid, axes, duration in µs, then the mean)."""
    t = seed_table(df)
    rows = [f"{u} {a} {d:.3f}" for u, a, d in t[["uuid", "axes", "duration_us"]].values[:-1]]
    label, mean = t["axes"].iloc[-1], t["duration_us"].iloc[-1]
    return "\n".join(["UUID axes duration_us", *rows, "", f"{label.capitalize()}: {mean:.3f} us"])


def by_batch_size(df: pd.DataFrame) -> pd.DataFrame:
    """Per GPU, implementation and batch size: count, mean/min/max duration (µs), GB/s, % of
    floor, rounded for reading (GPUs are never averaged together)."""
    keys = [k for k in ("gpu", "impl", "batch_size") if k in df]
    g = df.groupby(keys, sort=True, dropna=False)
    out = g.agg(
        n=("uuid", "size"),
        duration_us=("duration_us", "mean"),
        min_us=("duration_us", "min"),
        max_us=("duration_us", "max"),
        dram_gbps=("dram_gbps", "mean"),
        pct_of_floor=("pct_of_floor", "mean"),
    ).reset_index()
    if "batch_size" in out and out["batch_size"].notna().all():
        out["batch_size"] = out["batch_size"].astype(int)
    return out.round({"duration_us": 2, "min_us": 2, "max_us": 2, "dram_gbps": 0,
                      "pct_of_floor": 1})  # fmt: skip


# Why an Nsight Compute duration is not the bench's number for the same call (notebook 03).
NCU_VS_CUPTI = (
    "Nsight Compute replays each kernel on its own with clock control 'base' (the SM clock "
    "held at its base frequency, below the boost clock the bench's calls run at) and adds its "
    "own per-kernel measurement overhead, which weighs most on microsecond kernels: its "
    "durations are longer than the bench's cupti-cold span for the same call, most at small "
    "B. Compare NCU with NCU (same clock control) and the bench with the bench."
)


def exports(folder: str | Path | None = None) -> pd.DataFrame:
    """One row per Nsight Compute export: file, implementation, GPU, date, ncu version,
    clock and cache control, workloads profiled."""
    folder = Path(folder) if folder is not None else DATA
    rows = []
    for meta_file in sorted(folder.glob("*.json")):
        try:
            m = json.loads(meta_file.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if not isinstance(m, dict) or "ncu_version" not in m:
            continue
        rows.append(dict(export=meta_file.stem, impl=m.get("impl"), gpu=m.get("gpu"),
                         date=str(m.get("date", ""))[:16].replace("T", " "),
                         ncu=m.get("ncu_version"), clock_control=m.get("clock_control"),
                         cache_control=m.get("cache_control"),
                         workloads=len(m.get("workloads") or [])))  # fmt: skip
    return pd.DataFrame(rows)


def side_by_side(
    dfs: dict[str, pd.DataFrame] | pd.DataFrame, by: str = "uuid", value: str = "duration_us"
) -> pd.DataFrame:
    """One column of ``value`` per implementation, per workload (``by='uuid'``) or per batch
    size (``by='batch_size'``), a final ``mean`` row over all workloads, and
    ``speedup <impl>`` = first implementation's value / this one's.
    """
    if isinstance(dfs, pd.DataFrame):
        dfs = {name: g for name, g in dfs.groupby("impl", sort=False)}
    names = list(dfs)
    long = pd.concat([d.assign(impl=name) for name, d in dfs.items()], ignore_index=True)
    wide = long.pivot_table(index=["uuid", "batch_size"], columns="impl", values=value, sort=False)
    mean = wide.mean().to_frame("mean").T
    if by == "batch_size":
        wide = wide.groupby(level="batch_size").mean()
        wide.index = wide.index.map(lambda b: f"B={int(b)}")
    else:
        wide.index = wide.index.get_level_values("uuid")
    t = pd.concat([wide[names], mean[names]])
    for name in names[1:]:
        t[f"speedup {name}"] = t[names[0]] / t[name]
    t.index.name = by
    return t.reset_index()


def stalls(export) -> pd.DataFrame:
    """Where a profile's warps wait, one row per workload
    (:func:`decodekit.records.ncu_parse.warp_states`: issue rate, warps active, eligible warps
    and each stall reason in cycles per issued instruction). ``export``: :func:`profile`'s or
    :func:`load`'s DataFrame, or an export's path; the profile needs ``--section
    WarpStateStats`` (SchedulerStats for the issue columns)."""
    if isinstance(export, pd.DataFrame):
        stem = Path(export.attrs["export"])
    else:
        p = Path(export)
        stem = p.with_suffix("") if p.suffix in (".csv", ".ncu-rep", ".json") else p
    meta = ncu_parse.export_meta(stem)
    return ncu_parse.warp_states(ncu_parse.export_kernels(stem), meta.get("workloads"))


def recorded_stalls(folder: str | Path | None = None, top: int | None = 4) -> pd.DataFrame:
    """Every export in ``folder`` recorded with WarpStateStats, one row per workload:
    definition (``contest`` for the contest's), impl, GPU, clock control, date, the issue
    columns and the ``top`` stall reasons over all rows (None: every reason; ``selected``,
    the issue itself, is left out of the ranking), each in cycles per issued instruction.
    Empty when no export has the section."""
    folder = Path(folder) if folder is not None else DATA
    frames = []
    for meta_file in sorted(folder.glob("*.json")):
        stem = meta_file.with_suffix("")
        meta = ncu_parse.export_meta(stem)
        if "WarpStateStats" not in (meta.get("sections") or []):
            continue
        try:
            st = stalls(stem)
        except (ValueError, NcuError) as e:  # a stray export must not hide the good ones
            warnings.warn(f"skipped {stem}: {e}", stacklevel=2)
            continue
        frames.append(st.assign(definition=meta.get("definition") or "contest",
                                impl=meta.get("impl"), gpu=meta.get("gpu"),
                                clock_control=meta.get("clock_control"),
                                date=str(meta.get("date", ""))[:10]))  # fmt: skip
    if not frames:
        return pd.DataFrame()
    df = pd.concat(frames, ignore_index=True)
    reasons = [c for c in df.columns if c.startswith("stall_") and c != "stall_selected"]
    reasons = sorted(reasons, key=lambda c: -df[c].fillna(0).mean())[:top]
    head = ["definition", "impl", "gpu", "clock_control", "date", "batch_size", "duration_us",
            "issue_active_pct", "warps_active_pct", "eligible_per_cycle"]  # fmt: skip
    return df[head + reasons]


def cli_ncu(impl: str, workloads: str = "representative", **kw) -> int:
    """``decodekit ncu``: profile, print the seed table and the per-batch-size table."""
    from decodekit.problem.spec import SpecError

    try:
        df = profile(impl, workloads, **kw)
    except (NcuError, SpecError, ValueError) as e:  # each says what to change, in a line
        print(f"decodekit ncu: {e}", file=sys.stderr)
        return 2
    m = df.attrs.get("meta", {})
    gpu = m.get("gpu") or "an unnamed GPU"
    what = f"{impl} [{m['definition']}]" if m.get("definition") else impl
    print(
        f"=== NCU duration per workload: {what} on {gpu} (ncu {m.get('ncu_version')}, "
        f"clock {m.get('clock_control')}, cache {m.get('cache_control')}) ==="
    )
    print(format_seed_table(df))
    print()
    print(by_batch_size(df).to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    if "WarpStateStats" in (m.get("sections") or []):
        st = stalls(df).set_index("batch_size").T.head(13)  # the rates and the top 8 reasons
        print("\nwhere warps wait (stall_*: cycles per issued instruction):")
        print(st.to_string(float_format=lambda x: f"{x:.2f}"))
    print(f"\nexports: {df.attrs.get('export')}.{{ncu-rep,csv,json}}")
    return 0
