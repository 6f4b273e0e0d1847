"""Hand a result to flashinfer-bench: a Solution for a kit kernel, Traces for a recorded run.

:func:`solution` writes flashinfer-bench's ``Solution`` JSON (``name``, ``definition``,
``author``, ``spec``, ``sources``, ``description``): the kernel sources (the ``.cu`` files a
choice needs and the headers they include) and a ``main.py`` whose ``run`` is the
destination-passing entry point (``run(q, k, v, state, A_log, a, dt_bias, b, scale, output,
new_state)``, the contest's signature). ``main.py`` needs only torch and CuPy: it compiles each
source inline with ``cupy.RawModule`` for the target arch and launches it on torch's current
stream, per batch size the choice of the tuning table (for ``best``) or the one variant.

:func:`traces` writes one flashinfer-bench ``Trace`` per recorded workload of a run
(definition, workload axes and inputs, solution name, evaluation: status, environment,
timestamp, correctness, performance in ms with FLA's time as the reference where the run has
it). Both are plain JSON; ``tests/test_export.py`` loads them with flashinfer-bench's own
pydantic models.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from decodekit.build.compile import KERNELS_DIR, _local_includes
from decodekit.problem.spec import DEFINITION, INPUT_NAMES
from decodekit.records import write_json, write_text

AUTHOR = "decodekit"

MAIN = '''"""decodekit export of {name!r} for {definition} (target {arch}; generated, do not edit).

Destination-passing: run(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state)
writes output [B, 1, 8, 128] bf16 and new_state [B, 8, 128, 128] fp32. Each kernel source is
compiled inline with cupy.RawModule for {arch} and launched on torch's current stream.
"""

import math
import os

import cupy
import numpy as np
import torch

ARCH = {arch!r}
# per batch size (the smallest tuned size at or above B, else the largest): source, entry,
# launch family, -D defines
TABLE = {table!r}
HERE = os.path.dirname(os.path.abspath(__file__))
_MODULES = {{}}


def _choice(B):
    sizes = sorted(TABLE)
    return TABLE[next((s for s in sizes if s >= B), sizes[-1])]


def _kernel(c):
    key = (c["source"], tuple(sorted(c["defines"].items())))
    if key not in _MODULES:
        with open(os.path.join(HERE, c["source"])) as f:
            code = f.read()
        options = ("-std=c++17", f"-arch={{ARCH}}", f"-I{{HERE}}",
                   *(f"-D{{k}}={{int(v)}}" for k, v in sorted(c["defines"].items())))
        module = cupy.RawModule(code=code, options=options)
        _MODULES[key] = module.get_function(c["entry"])
    return _MODULES[key]


def _shape(c, B):
    d = c["defines"]
    if c["family"] == "baseline":
        return (B * 8,), (128,)
    if c["family"] == "persistent":
        sms = torch.cuda.get_device_properties(torch.cuda.current_device()).multi_processor_count
        tiles = B * 8 * (128 // d["ROWS_PER_WARP"])
        return (min(-(-tiles // d["WARPS"]), sms * d["BLOCKS_PER_SM"]),), (32 * d["WARPS"],)
    split = 128 // (d["WARPS"] * d["ROWS_PER_WARP"])
    return (B * 8 * split,), (32 * d["WARPS"],)


def run(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state):
    B = q.shape[0]
    c = _choice(B)
    grid, block = _shape(c, B)
    s = float(scale) if scale else 1.0 / math.sqrt(128)
    # pointers by value (CuPy has no bfloat16 arrays); the kernels read 16-byte vectors
    ptr = [np.uint64(0 if t is None else t.data_ptr()) for t in (q, k, v, state, A_log, a,
                                                                  dt_bias, b)]
    out = [np.uint64(t.data_ptr()) for t in (output, new_state)]
    with cupy.cuda.ExternalStream(torch.cuda.current_stream().cuda_stream):
        _kernel(c)(grid, block, (*ptr, np.float32(s), *out, np.int32(B)))
'''


def _family(impl) -> str:
    src = impl.source or ""
    if "persistent" in src:
        return "persistent"
    return "baseline" if "baseline" in src else "split"


def _table_for(arch: str) -> dict:
    """``best``'s table for ``arch``: this GPU's (or the one it borrows) when the GPU is of
    that arch, else the newest recorded table of that compute capability."""
    import torch

    from decodekit.measure import tuning

    cap = f"{int(arch[3:].rstrip('af')) // 10}.{int(arch[3:].rstrip('af')) % 10}"
    if torch.cuda.is_available() and tuning.this_gpu()["capability"] == cap:
        return tuning.dispatcher().table
    found = []
    for p in tuning.TUNING_DIR.glob("*.json"):
        gpu, env = tuning._table_gpu(p)
        if gpu and str(env.get("compute_capability")) == cap:
            found.append((json.loads(p.read_text()).get("date", ""), p))
    if not found:
        raise ValueError(
            f"argument 'arch': no recorded tuning table of compute capability {cap} in "
            f"{tuning.TUNING_DIR}; pass --table FILE or run decodekit tune on such a GPU"
        )
    return tuning.load_table(max(found)[1])


def _choices(impl_name: str, table: dict | None = None, arch: str = "sm_90a") -> dict[int, dict]:
    """``{batch_size: {source, entry, family, defines}}`` of a kit kernel or of ``best``."""
    from decodekit.build.compile import declared_defines
    from decodekit.impls.registry import get

    im = get(impl_name)
    if im.kind != "kernel":
        raise ValueError(f"argument 'impl': {impl_name!r} is a {im.kind}, not a kit kernel")
    if im.meta.get("dispatcher"):
        picks = table if table is not None else _table_for(arch)
        items = {int(b): (c["variant"], dict(c.get("defines", {}))) for b, c in picks.items()}
    else:
        items = {1: (impl_name, {})}
    out = {}
    for b, (variant, defines) in sorted(items.items()):
        v = get(variant)
        full = {**declared_defines(v.source), **v.meta.get("defines", {}), **defines}
        out[b] = {"source": v.source, "entry": v.meta["entry"], "family": _family(v),
                  "defines": {k: int(x) for k, x in full.items()}}  # fmt: skip
    return out


def solution(
    impl: str = "best", arch: str = "sm_90a", name: str | None = None, table: dict | None = None
) -> dict:
    """flashinfer-bench ``Solution`` of a kit kernel (``best``: this GPU's tuning table, or
    ``table``) for ``arch``, as a JSON-ready dict."""
    from decodekit.build.compile import check_arch

    check_arch(arch)
    choices = _choices(impl, table, arch)
    files: list[Path] = []
    for c in choices.values():
        path = KERNELS_DIR / c["source"]
        for f in _local_includes(path, [KERNELS_DIR]):
            if f not in files:
                files.append(f)
    name = name or f"decodekit_{impl}_{arch}"
    main = MAIN.format(name=name, definition=DEFINITION.name, arch=arch, table=choices)
    sources = [{"path": "main.py", "content": main}]
    sources += [{"path": f.name, "content": f.read_text()} for f in files]
    kinds = sorted({c["source"] for c in choices.values()})
    return {
        "name": name,
        "definition": DEFINITION.name,
        "author": AUTHOR,
        "spec": {
            "language": "python",
            "target_hardware": ["cuda", arch],
            "entry_point": "main.py::run",
            "dependencies": ["cupy", "torch"],
            "destination_passing_style": True,
        },
        "sources": sources,
        "description": f"decodekit {impl}: {', '.join(kinds)} compiled inline with "
        f"cupy.RawModule for {arch}; per batch size the choice of {len(choices)} "
        "tuned entries" + ("" if len(choices) > 1 else " (one build)"),
    }


def _workload(uuid: str, batch_size: int) -> dict:
    inputs = {n: {"type": "random"} for n in INPUT_NAMES}
    inputs["scale"] = {"type": "scalar", "value": 1.0 / math.sqrt(128)}
    return {"axes": {"batch_size": int(batch_size)}, "inputs": inputs, "uuid": uuid}


def traces(df: pd.DataFrame, run: str, impl: str = "best", solution_name: str | None = None,
           reference: str = "fla", method: str | None = None) -> list[dict]:  # fmt: skip
    """flashinfer-bench ``Trace`` dicts for ``impl``'s records in ``run`` (one per workload;
    the reference's time from the same run where it has one)."""
    from decodekit.views import kernel_method

    d = df[df["run_id"].astype(str).str.startswith(run)]
    if d.empty:
        raise ValueError(f"argument 'run': no recorded run {run!r}")
    method = method or kernel_method(d[d["impl"] == impl])
    if method is None:
        raise ValueError(f"argument 'impl': run {run} has no timed records of {impl!r}")
    mine = d[(d["impl"] == impl) & (d["method"] == method)]
    ref = d[(d["impl"] == reference) & (d["method"] == method) & (d["status"] == "ok")]
    ref_us = ref.groupby("uuid")["latency_us"].mean()
    name = solution_name or f"decodekit_{impl}"
    out = []
    for r in mine.itertuples():
        libs = {k: str(getattr(r, k)) for k in ("torch", "cuda", "cupy", "triton", "driver")
                if hasattr(r, k) and pd.notna(getattr(r, k))}  # fmt: skip
        ev = {"environment": {"hardware": str(r.gpu), "libs": libs},
              "timestamp": str(r.timestamp), "log": f"decodekit run {r.run_id}, {method}"}  # fmt: skip
        if r.status == "ok":
            lat = float(r.latency_us) / 1e3
            base = float(ref_us.get(r.uuid, float("nan"))) / 1e3
            perf = {"latency_ms": lat}
            if math.isfinite(base):
                perf.update(reference_latency_ms=base, speedup_factor=base / lat)
            ev.update(status="PASSED", correctness={}, performance=perf)
        elif r.status == "check-failed":
            ev.update(status="INCORRECT_NUMERICAL", correctness={}, log=str(r.note))
        else:
            ev.update(status="RUNTIME_ERROR", log=str(getattr(r, "note", "")))
        out.append({"definition": DEFINITION.name, "workload": _workload(r.uuid, r.batch_size),
                    "solution": name, "evaluation": ev})  # fmt: skip
    return out


def cli_export_solution(impl: str, arch: str, out: str | None, table: str | None = None) -> int:
    from decodekit.measure.tuning import load_table

    picks = load_table(table) if table else None
    if table and picks is None:
        raise ValueError(f"argument '--table': no tuning table {table}")
    doc = solution(impl, arch, table=picks)
    path = Path(out or f"{doc['name']}.json")
    write_json(path, doc)
    print(f"wrote {path} ({len(doc['sources'])} sources, entry {doc['spec']['entry_point']})")
    return 0


def cli_export_traces(run: str, impl: str, out: str | None) -> int:
    from decodekit.views import load_records

    rows = traces(load_records(), run, impl)
    path = Path(out or f"traces_{impl}_{run}.jsonl")
    write_text(path, "".join(json.dumps(t) + "\n" for t in rows))
    print(f"wrote {path} ({len(rows)} traces)")
    return 0
