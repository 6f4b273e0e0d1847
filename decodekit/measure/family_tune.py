"""Tune the family kernel for one definition: each candidate at each batch size of the
member's manifest, checked, timed and recorded; the winners in the member's table.

:func:`tune_member` runs on a GPU (tests give a stand-in timer and ``device="cpu"``). For each
case of the member's manifest (one per batch size; ``batch_sizes`` keeps some, a size the
manifest lacks gets a case made the manifest's way), every candidate of the space
(:func:`decodekit.impls.family_tuning.search_space`; the kernel's defaults always among
them) is built and measured on the case by :func:`decodekit.measure.measure`, which checks
the member's contracts first (:func:`decodekit.measure.family_check.check`): a candidate
that fails is recorded and never timed, one that does not build is recorded
``compile-failed``. Every candidate is a record of one run in ``<out_dir>/records/``. The
winner of each batch size follows the contest tuning's rule
(:func:`decodekit.measure.tuning.winners`): the incumbent is this GPU's table entry at that
size when the run times it (unless ``fresh``), else the kernel's defaults, and a candidate
replaces it only if faster by more than ``margin`` or the trials' spread. The
table goes to ``<out_dir>/<gpu-slug>/<member name>.json``, written whole or not at all;
batch sizes this run did not sweep keep the entries of the table already there.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd
import torch

from decodekit import records
from decodekit.build.family_launch import ENTRY
from decodekit.impls import family_tuning as ft
from decodekit.impls.family_kernels import kit_kernel
from decodekit.impls.tuning_tables import this_gpu
from decodekit.measure import as_device, get_preset, measure
from decodekit.measure.timing import DeviceTimer, Timer
from decodekit.measure.tuning import MARGIN, _make, _method, winners
from decodekit.problem.family import Case, Member, cases, load_cases
from decodekit.records.schema import Record, Status

VARIANT = "family"  # the one source every candidate builds (tuning.winners groups by it)
KIND = "tune-candidate"


def tune_member(
    member: Member,
    preset: str = "contest",
    batch_sizes: Iterable[int] | None = None,
    space: str | list[dict] | None = None,
    *,
    margin: float = MARGIN,
    timer: Timer | None = None,
    device: str | None = None,
    out_dir: str | Path | None = records.AUTO,
    make: Callable[[Member, dict], Callable] = kit_kernel,
    verbose: bool = True,
    fresh: bool = False,
) -> dict[int, dict]:
    """Check, time and record every candidate of ``space`` (``full``, ``quick`` or a list of
    defines; default ``full``) on the member's case of each batch size, with ``preset``'s
    method; returns the table written: ``{batch size: {"defines", "latency_us"[, "kept"]}}``.
    ``out_dir``: the family's tuning folder (default :func:`~decodekit.impls.family_tuning.family_dir`;
    None writes nothing). ``fresh``: the kernel's defaults are every size's incumbent, not the
    table already there. ``timer`` and ``make`` (``kit_kernel``'s stand-in) are for tests."""
    from decodekit.records.env import capture

    p = get_preset(preset)
    todo = _cases(member, batch_sizes)
    dev = _device(device, member)
    timer = timer or DeviceTimer()
    method, _ = _method(timer, p, dev)  # fails here, before any build, if it cannot run
    cands = _space(member, space, dev)
    env = capture(dev)
    folder = ft.family_dir() if out_dir == records.AUTO else out_dir
    path = ft.table_path(member, env["gpu"], folder) if folder is not None else None
    old = _old(path, member)  # a table that does not read stops the sweep before it starts
    rec = records.Recorder(Path(folder) / "records" if folder is not None else None, env=env)
    built: dict[str, object] = {}
    rows: list[dict] = []
    for case in todo:
        batch = []
        for d in cands:
            name = ft.label(d)
            if name not in built:
                built[name] = _make(make, member, d)
            batch.append(_candidate(built[name], case, d, p, method, timer, dev))
            if verbose:
                r = batch[-1]
                shown = f"{r.latency_us:8.2f} us" if r.ok else f"{r.status.value}: {r.note}"
                print(f"B={case.batch_size:<4} {name:<80} {shown[:200]}", flush=True)
        rows += rec.append(batch)  # each batch size's records land as it is done
    rec.pack()  # the finished sweep gzipped (a tuning run is the store's largest file)
    incumbent = _incumbents(todo, {} if fresh else old, cands)
    table = {b: {k: v for k, v in c.items() if k != "variant"}
             for b, c in winners(pd.DataFrame(rows), incumbent, margin).items()}  # fmt: skip
    if path is not None:
        swept = {c.batch_size for c in todo}
        doc = _doc(member, table, swept, old, env, method=method, preset=p.name, margin=margin,
                   space=space if isinstance(space, str) else ("full" if space is None else "given"),
                   run=rec.run_id, incumbent=incumbent)  # fmt: skip
        records.write_json(path, doc)  # a temp file renamed: never half a table
        table = {int(b): c for b, c in doc["table"].items()}
    if verbose:
        for b, c in sorted(table.items()):
            kept = f"  ({c['kept']})" if "kept" in c else ""
            print(f"B={b:<4} {c.get('latency_us', float('nan')):8.2f} us  "
                  f"{ft.label(c['defines'])}{kept}")  # fmt: skip
        if path is not None:
            print(f"wrote {path}")
    return table


def _cases(member: Member, batch_sizes) -> list[Case]:
    """One case per batch size: the manifest's first, else one made as the manifest's are."""
    manifest: dict[int, Case] = {}
    for c in load_cases(member):
        manifest.setdefault(c.batch_size, c)
    if batch_sizes is None:
        return list(manifest.values())
    out = []
    for B in batch_sizes:
        if isinstance(B, bool) or not isinstance(B, int) or B < 1:
            raise ValueError(f"argument 'batch_sizes': expected ints >= 1, got {B!r}")
        out.append(manifest.get(B) or cases(member, (B,))[0])
    return list(dict.fromkeys(out))


def _device(device, member: Member) -> torch.device:
    dev = torch.device(device or "cuda")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "tune needs a CUDA GPU (torch.cuda.is_available() is False); on a GPU machine: "
            f"decodekit tune --definition {member.name} --quick"
        )
    return as_device(dev)


def _space(member: Member, space, dev: torch.device) -> list[dict]:
    """The candidates, every knob named, the kernel's defaults among them."""
    if space is None or isinstance(space, str):
        cap = this_gpu()["capability"] if dev.type == "cuda" else None
        cands = ft.search_space(space or "full", member, cap)
    elif isinstance(space, (list, tuple)) and space:
        cands = [ft.check_defines(d, f"argument 'space': entry {i}") for i, d in enumerate(space)]
    else:
        raise ValueError(f"argument 'space': expected 'full', 'quick' or a non-empty list of "
                         f"defines, got {space!r}")  # fmt: skip
    return ft.unique([*cands, ft.kernel_defaults()])


def _candidate(fn, case: Case, defines: dict, p, method: str, timer, dev) -> Record:
    """One candidate on one case: ``compile-failed`` (``fn`` is the exception), or
    :func:`decodekit.measure.measure`'s record (checked first), with the build's registers."""
    tag = {"definition": case.member.name, "variant": VARIANT, "config": ft.label(defines),
           "defines": defines}  # fmt: skip
    if isinstance(fn, Exception):
        return Record(impl=tag["config"], method=method, status=Status.COMPILE_FAILED,
                      uuid=case.uuid, batch_size=case.batch_size, impl_kind=KIND,
                      note=f"{type(fn).__name__}: {fn}",
                      fields={**tag, "workload": f"B{case.batch_size}"})  # fmt: skip
    r = measure(fn, case, p, timer=timer, device=dev, fields=tag)
    r = r.replace(impl=tag["config"], impl_kind=KIND)
    if hasattr(fn, "build"):
        use = fn.build.usage(getattr(fn, "entry", ENTRY))
        r = r.replace(registers=use.registers, spills=use.spills)
    return r


def _old(path: Path | None, member: Member) -> dict:
    """The table file already at ``path`` (checked: one that does not read is an error)."""
    if path is None or not path.is_file():
        return {}
    ft.read_table(path, member)
    return json.loads(path.read_text())


def _incumbents(todo: list[Case], old: dict, cands: list[dict]) -> dict[int, dict]:
    """Per batch size the build a candidate must beat: the table entry of ``old`` where it is
    among ``cands`` (timed in this run), else the kernel's defaults."""
    timed = {ft.label(d) for d in cands}
    entries = old.get("table") or {}
    out = {}
    for c in todo:
        e = entries.get(str(c.batch_size))
        mine = ft.full(e["defines"]) if e and ft.label(e["defines"]) in timed else None
        out[c.batch_size] = {"variant": VARIANT, "defines": mine or ft.kernel_defaults(),
                             "from": "table" if mine else "defaults"}  # fmt: skip
    return out


def _doc(member: Member, table: dict, swept: set, old: dict, env: dict, *, method: str,
         preset: str, margin: float, space: str, run: str, incumbent: dict) -> dict:  # fmt: skip
    """The tuning file: this run's winners, and the entries of ``old`` at sizes not swept
    (``kept``, with the date and run of the sweep that timed them)."""
    from decodekit.records.env import source_digest

    out = {str(b): dict(c, records=run) for b, c in table.items()}
    for b, entry in (old.get("table") or {}).items():
        if int(b) in swept:
            continue
        when = entry.get("swept") or old.get("date")
        out[b] = {**entry, "swept": when, "records": entry.get("records") or old.get("records"),
                  "kept": f"not swept in this run: the winner of {when}"}  # fmt: skip
    return {
        "definition": member.name,
        "gpu": env["gpu"],
        "date": records.now(),
        "method": method,
        "preset": preset,
        "space": space,
        "margin": margin,
        "incumbent": ft.kernel_defaults(),
        "incumbents": {str(b): c["from"] for b, c in sorted(incumbent.items())},
        "source": ft.SOURCE,
        "source_digest": source_digest(ft.SOURCE),
        "records": run,
        "environment": env,
        "table": dict(sorted(out.items(), key=lambda kv: int(kv[0]))),
    }
