"""Pick the fastest kit kernel and launch shape per batch size: a sweep, its table, a dispatcher.

:func:`tune` runs on a GPU: for each batch size it builds every candidate (a variant of
:mod:`decodekit.impls.variants` with a set of ``-D`` defines), checks it with
:func:`decodekit.measure.check.check` on that batch size (a failing candidate gets no time), times it
with the cold-L2 method of a :mod:`decodekit.measure.bench` preset, and writes the winners to
``data/tuning/<gpu-slug>.json`` with the environment. The registry entry ``best`` is a
:class:`Dispatcher` over that table: per call, one dict lookup on the batch size.

The search space is :mod:`decodekit.impls.tuning_space`, the tables and the dispatcher
:mod:`decodekit.impls.tuning_tables`; their names are re-exported here, the kit's one tuning API.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd
import torch

from decodekit.impls.tuning_space import (  # noqa: F401  (re-exported: the tuning API)
    QUICK_SEEDS,
    candidates,
    canonical,
    load_configs,
    quick_space,
    search_space,
)
from decodekit.impls.tuning_tables import (  # noqa: F401  (re-exported: the tuning API)
    DEFAULT_TABLE,
    TUNING_DIR,
    Dispatcher,
    _label,
    _table_gpu,
    build,
    choose,
    dispatcher,
    load_table,
    nearest_table,
    table_path,
    this_gpu,
    untuned_note,
)

BATCH_SIZES = (1, 4, 8, 16, 32, 48, 64)
# A new winner must beat the incumbent's mean by more than this (or the trials' spread).
MARGIN = 0.01


def tune_workloads(batch_size: int, per_batch: int = 1) -> list:
    """The workloads a sweep times at ``batch_size``: up to ``per_batch`` contest workloads of
    that batch size (manifest order), topped up with the synthetic one.

    >>> [w.name for w in tune_workloads(3, 2)]
    ['B3']
    >>> len(tune_workloads(1, 3)), all(w.batch_size == 1 for w in tune_workloads(1, 3))
    (3, True)
    """
    from decodekit.problem.workloads import load_manifest, synthetic

    if per_batch < 1:
        raise ValueError(f"argument 'per_batch': expected an int >= 1, got {per_batch!r}")
    ws = [w for w in load_manifest() if w.batch_size == batch_size][:per_batch]
    return ws or [synthetic(batch_size)]


def tune(
    variants: Iterable[str] | None = None,
    batch_sizes: Iterable[int] = BATCH_SIZES,
    configs: str | list | None = None,
    preset: str = "quick",
    *,
    per_batch: int = 1,
    incumbent: dict[int, dict] | None = None,
    margin: float = MARGIN,
    device: str | None = None,
    out_dir: str | Path | None = TUNING_DIR,
    verbose: bool = True,
    timer=None,
    make: Callable[[str, dict], Callable] = build,
) -> pd.DataFrame:
    """Check and time every candidate at every batch size on this GPU; write the winners.

    ``preset`` is a :mod:`decodekit.measure.bench` preset (its cold-L2 method, counts and statistic).
    Each candidate is checked and timed on ``per_batch`` workloads of each batch size
    (:func:`tune_workloads`); it is ranked by its mean over them. ``incumbent`` (a table, e.g.
    the one already in ``data/tuning/``) joins the candidates and keeps its slot unless the
    winner beats it by more than ``margin`` and the trials' spread (see :func:`winners`).
    Returns one row per batch size x workload x candidate with ``status`` ``ok`` (and
    ``latency_us``), ``check-failed`` or ``compile-failed`` (and ``note``). With ``out_dir``
    (None: write nothing) the table goes to ``<out_dir>/<gpu-slug>.json``. ``timer`` (a
    :class:`decodekit.measure.timing.Timer`) and ``make`` (``build``'s stand-in) are for tests.
    """
    from decodekit.measure import get_preset
    from decodekit.measure.timing import DeviceTimer

    dev = torch.device(device or "cuda")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("tune() needs a CUDA GPU (torch.cuda.is_available() is False)")
        dev = torch.device("cuda", torch.cuda.current_device()) if dev.index is None else dev
    p = get_preset(preset)
    timer = timer or DeviceTimer()
    method, note = _method(timer, p, dev)
    cands = candidates(variants, configs)
    seen = {_label(d) + v for v, d in cands}
    for c in (incumbent or {}).values():  # the incumbent is always re-measured
        if _label(c.get("defines", {})) + c["variant"] not in seen:
            cands.append((c["variant"], dict(c.get("defines", {}))))
            seen.add(_label(c.get("defines", {})) + c["variant"])
    built: dict[str, object] = {}
    rows = []
    for B in batch_sizes:
        for w in tune_workloads(int(B), per_batch):
            for variant, defines in cands:
                label = f"{variant}[{_label(defines)}]"
                if label not in built:
                    built[label] = _make(make, variant, defines)
                row = {
                    "batch_size": w.batch_size,
                    "uuid": w.uuid,
                    "workload": w.name,
                    "variant": variant,
                    "config": label,
                    "defines": defines,
                    "method": method,
                    "latency_us": None,
                    "note": note,
                }
                row.update(_measure(built[label], w, timer, method, p, dev))
                rows.append(row)
                if verbose:
                    shown = (
                        f"{row['latency_us']:8.2f} us" if row["status"] == "ok" else row["status"]
                    )
                    print(f"B={w.batch_size:<4} {w.name:<9} {label:<70} {shown}", flush=True)
    df = pd.DataFrame(rows)
    if out_dir is not None:
        path = write_table(
            df,
            dev,
            method=method,
            preset=p.name,
            out_dir=out_dir,
            incumbent=incumbent,
            margin=margin,
        )
        if verbose:
            print(f"wrote {path}")
    return df


def _make(make: Callable, variant: str, defines: dict):
    """The launcher, or the exception that stopped it being built."""
    from decodekit.build.compile import CompileError

    try:
        return make(variant, defines)
    except (CompileError, ValueError) as e:
        return e


def _measure(fn, w, timer, method: str, p, dev) -> dict:
    """Check ``fn`` on fresh inputs of ``w`` and time it on them only if it passed: one
    :func:`decodekit.measure.measure`, the bench's own path. The row's status, time and
    notes, with the build's registers and spills."""
    from decodekit.measure import measure

    if isinstance(fn, Exception):
        return {"status": "compile-failed", "note": str(fn)}
    out: dict = {}
    if hasattr(fn, "build"):
        use = fn.build.usage(fn.entry)
        out.update(registers=use.registers, spills=use.spills)
    rec = measure(fn, w, p, method=method, timer=timer, device=dev)
    out["status"] = rec.status.value
    if rec.note:
        out["note"] = rec.note
    if rec.ok:
        out.update(latency_us=rec.latency_us, spread=rec.get("spread"))
    return out


def _method(timer, p, dev: torch.device) -> tuple[str, str | None]:
    """The method a sweep runs (the preset's, or its fallback, said in the note)."""
    from decodekit.measure import resolve_method

    method, note, why = resolve_method(timer, dev, p.method, p.fallback)
    if why:
        raise RuntimeError(f"timing method {p.method!r} unavailable: {why}")
    return method, note


def winners(
    df: pd.DataFrame, incumbent: dict[int, dict] | None = None, margin: float = MARGIN
) -> dict[int, dict]:
    """Per batch size, the candidate with the lowest mean latency over the workloads it was
    timed on, among those that passed every check there.

    With ``incumbent`` (a table), its choice for a batch size stays unless the fastest
    candidate beats its mean by more than ``max(margin, spread)`` (``spread``: the larger
    relative trial-to-trial spread of the two, where the rows carry one): differences that
    small are run-to-run noise, and a sweep that chases them overfits its workloads.
    """
    if df.empty:
        return {}
    df = df.assign(key=df["config"] if "config" in df else df["variant"] + df["defines"].map(str))
    agg = {}
    for (B, _key), g in df.groupby(["batch_size", "key"], sort=False):
        if (g["status"] != "ok").any():
            continue
        spread = g["spread"].max() if "spread" in g and g["spread"].notna().any() else 0.0
        r = g.iloc[0]
        agg.setdefault(int(B), []).append(
            (float(g["latency_us"].mean()), float(spread), r.variant, dict(r.defines))
        )
    out = {}
    for B, rows in agg.items():
        lat, spread, variant, defines = min(rows, key=lambda x: x[0])
        choice = {"variant": variant, "defines": defines, "latency_us": round(lat, 3)}
        inc = (incumbent or {}).get(B)
        if inc is not None:
            same = [
                x for x in rows if x[2] == inc["variant"] and x[3] == dict(inc.get("defines", {}))
            ]
            if same and (variant, defines) != (same[0][2], same[0][3]):
                ilat, ispread = same[0][0], same[0][1]
                need = max(margin, spread, ispread)
                if lat > ilat * (1 - need):
                    choice = {
                        "variant": same[0][2],
                        "defines": same[0][3],
                        "latency_us": round(ilat, 3),
                        "kept": f"incumbent: the fastest, {variant}[{_label(defines)}] at "
                        f"{lat:.3f} us, is within {need:.1%} of it",
                    }
        out[B] = choice
    return out


def write_table(
    df: pd.DataFrame,
    device: torch.device,
    *,
    method: str,
    preset: str,
    out_dir: str | Path = TUNING_DIR,
    incumbent: dict[int, dict] | None = None,
    margin: float = MARGIN,
    env: dict | None = None,
) -> Path:
    """Write ``{gpu, date, method, preset, environment, table, candidates}`` for this GPU
    (the table from :func:`winners` with ``incumbent`` and ``margin``). ``env``: the
    environment of the GPU that timed them (a sweep over several GPUs passes its workers');
    by default captured from ``device``. Where the rows name ``timed_on`` (the GPU of a
    worker), each entry names the one that timed it.

    Batch sizes this sweep did not time keep the entry (and candidate rows) of the table
    already on disk, marked ``kept`` with that table's date: re-tuning one batch size never
    drops the others (``best`` would otherwise run another size's winner there). ``swept``
    carries the date of the sweep that timed a kept entry through later partial sweeps.
    """
    from decodekit.records import now, write_json
    from decodekit.records.env import capture

    env = env or capture(device)
    path = table_path(env["gpu"], out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    cands = [
        {k: v for k, v in r.items() if not (isinstance(v, float) and v != v)}
        for r in df.to_dict("records")
    ]
    table = {str(b): c for b, c in winners(df, incumbent, margin).items()}
    if "timed_on" in df:
        for b, c in table.items():
            hit = df[(df["batch_size"] == int(b)) & (df["variant"] == c["variant"])]
            hit = hit[[dict(d) == c["defines"] for d in hit["defines"]]]["timed_on"]
            if len(hit):
                c["timed_on"] = str(hit.iloc[0])
    old = json.loads(path.read_text()) if path.is_file() else {}
    for b, entry in (old.get("table") or {}).items():
        if b not in table:
            # an entry kept before keeps the date of the sweep that actually timed it
            when = entry.get("swept") or old.get("date", "an earlier sweep")
            table[b] = {
                **entry,
                "swept": when,
                "kept": f"not swept in this run: the winner of {when}",
            }
            cands += [c for c in old.get("candidates", []) if str(c.get("batch_size")) == b]
    workloads = {c["workload"] for c in cands if c.get("workload")}
    run = _record_candidates(df, method, env, Path(out_dir) / "records")
    doc = {
        "gpu": env["gpu"],
        "date": now(),
        "method": method,
        "preset": preset,
        "environment": env,
        "margin": margin,
        "records": run,
        "workloads": sorted(workloads) or None,
        "table": dict(sorted(table.items(), key=lambda kv: int(kv[0]))),
        "candidates": cands,
    }
    return write_json(path, doc)  # a temp file renamed: never half a table


def _record_candidates(df: pd.DataFrame, method: str, env: dict, folder: Path) -> str | None:
    """This sweep's candidate rows (each one :func:`decodekit.measure.measure`) as records of
    one run in ``folder`` (``data/tuning/records/``), through the store; the run id the
    table names. A candidate's ``impl`` is its build (``config``)."""
    from decodekit import records

    rows = [
        {k: v for k, v in r.items() if not (isinstance(v, float) and v != v)}
        for r in df.to_dict("records")
    ]
    if not rows:
        return None
    rec = records.Recorder(folder, env=env)
    rec.append(
        dict(r, impl=r.get("config") or r.get("variant"), impl_kind="tune-candidate",
             uuid=r.get("uuid") or r.get("workload") or f"B{r['batch_size']}",
             method=r.get("method") or method)
        for r in rows
    )  # fmt: skip
    rec.pack()  # the finished sweep gzipped (a tuning run is the store's largest file)
    return rec.run_id


def table_geomean(df: pd.DataFrame, table: dict) -> float | None:
    """Geomean over batch sizes of the mean latency a sweep ``df`` measured for ``table``'s
    choice at each size (None if a choice was not timed there): how two tables compare on
    the same measurements (``tune --quick`` against a full sweep)."""
    import math

    ok = df[df["status"] == "ok"]
    keys = [canonical(r.variant, dict(r.defines)) for r in ok.itertuples()]
    ok = ok.assign(key=keys)
    logs = []
    for B, c in table.items():
        key = canonical(c["variant"], c.get("defines", {}))
        hit = ok[(ok["batch_size"] == int(B)) & (ok["key"] == key)]["latency_us"]
        if hit.empty:
            return None
        logs.append(math.log(float(hit.mean())))
    return math.exp(sum(logs) / len(logs)) if logs else None
