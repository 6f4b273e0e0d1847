"""Pick the fastest kit kernel and launch shape per batch size: a sweep, its table, a dispatcher.

:func:`tune` runs on a GPU: for each batch size it builds every candidate (a variant of
:mod:`decodekit.variants` with a set of ``-D`` defines), checks it with
:func:`decodekit.check.check` on that batch size (a failing candidate gets no time), times it
with the cold-L2 method of a :mod:`decodekit.bench` preset, and writes the winners to
``data/tuning/<gpu-slug>.json`` with the environment. The registry entry ``best`` is a
:class:`Dispatcher` over that table: per call, one dict lookup on the batch size.

A table maps tuned batch sizes to choices; a call of batch size ``B`` takes the choice of the
smallest tuned size at or above ``B`` (the largest one beyond the table):

>>> table = {1: {"variant": "bulk"}, 16: {"variant": "subwarp"}, 64: {"variant": "streaming"}}
>>> [choose(table, B)["variant"] for B in (1, 2, 16, 17, 300)]
['bulk', 'subwarp', 'subwarp', 'streaming', 'streaming']
"""

from __future__ import annotations

import itertools
import json
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd
import torch

from decodekit import paths

TUNING_DIR = paths.data_dir() / "tuning"  # where tune writes; tables are also looked up in
# the ones shipped with an installed kit (paths.tuning_dirs)
BATCH_SIZES = (1, 4, 8, 16, 32, 48, 64)
SHAPES = ((1, 4), (2, 4), (4, 4), (4, 8), (8, 8), (2, 16))  # (WARPS, ROWS_PER_WARP)
# Fast-intrinsic gate math (FAST_GATES=1, see kernels/gdn_fast.cuh) shortens the chain that
# runs after the gate inputs arrive; it matters at small B, and which shapes it helps depends
# on how the compiler then schedules them, so it is swept rather than set.
FAST_SHAPES = ((4, 1), (8, 1), (1, 4), (2, 4), (4, 4))
FAST_SUBWARP = ((2, 4, 16), (2, 4, 8), (2, 8, 8))  # (WARPS, ROWS_PER_WARP, LANES_PER_ROW)
# Pairwise in-lane sums (TREE_SUM=1, see kernels/gdn_decode_subwarp.cu) shorten the chain
# after the state arrives, and with them 2 and 4 lanes per row (one or two shuffle steps)
# become candidates. On the H100 none won a slot (kernels/README.md); they stay in the space
# for other GPUs. Each shape with and without FAST_GATES; QUICK_TREE goes in the quick space.
TREE_SUBWARP = (
    (1, 16, 2), (2, 16, 2), (1, 8, 4), (2, 8, 4), (1, 16, 4), (1, 4, 8),
    (2, 4, 8), (4, 8, 8), (1, 2, 16), (2, 2, 16), (2, 4, 16), (4, 8, 16),
)  # fmt: skip
QUICK_TREE = ((1, 16, 2), (2, 8, 4), (2, 4, 8), (2, 4, 16))
# The ordered kernel (small inputs first, lean math after the state arrives), with and
# without FENCE (no use of a small input between the loads); its LOAD_HINT 3 builds lost by
# 0.3 us at B <= 8 on the H100, so only LOAD_HINT 1 is swept. (WARPS, ROWS_PER_WARP, LANES).
ORDERED = ((2, 4, 16), (1, 4, 16), (4, 4, 16), (4, 1, 32), (8, 1, 32), (2, 8, 8), (4, 8, 8))
QUICK_ORDERED = ((2, 4, 16, 0), (2, 4, 16, 1), (4, 1, 32, 0))  # ..., FENCE
HINTS = ((0, 0), (1, 0), (3, 0), (1, 1), (3, 3))  # (LOAD_HINT, STORE_HINT)
# (WARPS, ROWS_PER_WARP, BLOCKS_PER_SM, STORE_HINT) of the persistent kernel; each fits its
# register cap (65536 / (32 * WARPS * BLOCKS_PER_SM)) without spills.
PERSISTENT = ((4, 8, 4, 1), (4, 8, 4, 0), (4, 4, 4, 1), (8, 4, 2, 1))

# A new winner must beat the incumbent's mean by more than this (or the trials' spread).
MARGIN = 0.01

# Used by ``best`` where this GPU has no table yet: small blocks while the grid is short of
# SMs, more rows per warp once it is not.
DEFAULT_TABLE = {
    4: {
        "variant": "streaming",
        "defines": {"WARPS": 2, "ROWS_PER_WARP": 4, "LOAD_HINT": 1, "STORE_HINT": 0},
    },
    16: {
        "variant": "streaming",
        "defines": {"WARPS": 4, "ROWS_PER_WARP": 4, "LOAD_HINT": 1, "STORE_HINT": 0},
    },
    64: {
        "variant": "streaming",
        "defines": {"WARPS": 4, "ROWS_PER_WARP": 8, "LOAD_HINT": 1, "STORE_HINT": 0},
    },
}


def _wr(w: int, r: int) -> dict:
    return {"WARPS": w, "ROWS_PER_WARP": r}


def search_space(name: str = "quick") -> list[tuple[str, dict]]:
    """Candidates ``(variant, defines)``: ``quick`` (49, a few minutes) or ``full`` (136).

    >>> len(search_space("quick")), len(search_space("full"))
    (49, 136)
    """
    if name not in ("quick", "full"):
        raise ValueError(f"argument 'configs': expected 'quick', 'full' or a list, got {name!r}")
    full = name == "full"
    shapes = SHAPES if full else SHAPES[1:5]
    hints = HINTS if full else HINTS[1:3]
    sub_shapes = ((2, 8), (4, 8), (8, 4))
    out = [("rowsplit", _wr(w, r)) for w, r in SHAPES]
    for (w, r), (lh, sh) in itertools.product(shapes, hints):
        out.append(("streaming", {**_wr(w, r), "LOAD_HINT": lh, "STORE_HINT": sh}))
    lanes = (4, 8, 16) if full else (8, 16)
    for n, (w, r), (lh, sh) in itertools.product(lanes, sub_shapes, hints if full else hints[:1]):
        # a load instruction covers 32 / n rows, so a warp needs a multiple of that
        if r % (32 // n) == 0:
            out.append(
                ("subwarp", {**_wr(w, r), "LANES_PER_ROW": n, "LOAD_HINT": lh, "STORE_HINT": sh})
            )
    for w, r in FAST_SHAPES:
        out.append(("rowsplit", {**_wr(w, r), "FAST_GATES": 1}))
    for w, r, n in FAST_SUBWARP:
        out.append(("subwarp", {**_wr(w, r), "LANES_PER_ROW": n, "FAST_GATES": 1}))
    out += [
        ("streaming", {**_wr(4, r), "LOAD_HINT": 3, "STORE_HINT": 0, "FAST_GATES": 1})
        for r in (4, 8)
    ]
    for (w, r, n), fast in itertools.product(TREE_SUBWARP, (1, 0) if full else (1,)):
        if full or (w, r, n) in QUICK_TREE:
            tree = {**_wr(w, r), "LANES_PER_ROW": n, "TREE_SUM": 1, "FAST_GATES": fast}
            out.append(("subwarp", tree))
    for (w, r, n), fence in itertools.product(ORDERED, (0, 1)):
        if full or (w, r, n, fence) in QUICK_ORDERED:
            d = {**_wr(w, r), "LANES_PER_ROW": n, "LOAD_HINT": 1}
            out.append(("ordered", {**d, "FENCE": 1} if fence else d))
    bulk_shapes = ((1, 4), (2, 8), (4, 8), (2, 16))
    for (w, r), bulk_store in itertools.product(bulk_shapes, (0, 1)):
        out.append(("bulk", {**_wr(w, r), "STORE_HINT": 0, "BULK_STORE": bulk_store}))
    for w, r, per_sm, sh in PERSISTENT:
        out.append(
            (
                "persistent",
                {**_wr(w, r), "BLOCKS_PER_SM": per_sm, "LOAD_HINT": 1, "STORE_HINT": sh},
            )
        )
    return out


# ``tune --quick``: a compact core that covers each family's shapes that won somewhere,
# joined by every entry of the recorded tables of GPUs of the same architecture.
QUICK_SEEDS = (
    ("ordered", {**_wr(2, 4), "LANES_PER_ROW": 16, "LOAD_HINT": 1}),
    ("ordered", {**_wr(2, 4), "LANES_PER_ROW": 16, "LOAD_HINT": 1, "FENCE": 1}),
    ("ordered", {**_wr(4, 4), "LANES_PER_ROW": 16, "LOAD_HINT": 1, "FENCE": 1}),
    ("ordered", {**_wr(4, 1), "LANES_PER_ROW": 32, "LOAD_HINT": 1}),
    ("ordered", {**_wr(4, 8), "LANES_PER_ROW": 16, "LOAD_HINT": 1}),
    ("streaming", {**_wr(4, 8), "LOAD_HINT": 3, "STORE_HINT": 0, "FAST_GATES": 1}),
    ("streaming", {**_wr(4, 8), "LOAD_HINT": 3, "STORE_HINT": 0}),
    ("streaming", {**_wr(4, 4), "LOAD_HINT": 1, "STORE_HINT": 0}),
    ("streaming", {**_wr(2, 4), "LOAD_HINT": 1, "STORE_HINT": 0}),
    ("subwarp", {**_wr(4, 8), "LANES_PER_ROW": 8, "LOAD_HINT": 1, "STORE_HINT": 0}),
    ("subwarp", {**_wr(2, 4), "LANES_PER_ROW": 16, "FAST_GATES": 1}),
    ("rowsplit", _wr(4, 4)),
    ("persistent", {**_wr(4, 8), "BLOCKS_PER_SM": 4, "LOAD_HINT": 1, "STORE_HINT": 1}),
)


def quick_space(capability: str | None = None, directory: str | Path = TUNING_DIR) -> list:
    """:data:`QUICK_SEEDS` and every entry of the recorded tables of compute capability
    ``capability`` (all recorded tables when None), each candidate once.

    >>> len(quick_space("0.0")) == len(QUICK_SEEDS)
    True
    """
    out = [(v, dict(d)) for v, d in QUICK_SEEDS]
    for p in sorted(f for d in _dirs(directory) for f in d.glob("*.json")):
        gpu, env = _table_gpu(p)
        if gpu is None or (capability and str(env.get("compute_capability")) != capability):
            continue
        out += [(c["variant"], dict(c.get("defines", {}))) for c in load_table(p).values()]
    seen, unique = set(), []
    for v, d in out:
        key = canonical(v, d)
        if key not in seen:
            seen.add(key)
            unique.append((v, d))
    return unique


def canonical(variant: str, defines: dict) -> str:
    """One name per build: the variant's family file with every knob it declares, filled
    from the variant's and the file's defaults (two spellings of one build compare equal).

    >>> canonical("ordered", {"WARPS": 2}) == canonical("ordered", {"WARPS": 2, "FENCE": 0})
    True
    """
    from decodekit.compile import declared_defines
    from decodekit.registry import get

    im = get(variant)
    full = {**declared_defines(im.source), **im.meta.get("defines", {}), **defines}
    return f"{im.source}[{_label(full)}]"


def load_configs(path: str | Path) -> list[tuple[str, dict]]:
    """A candidate list from a JSON file: ``[{"variant": "subwarp", "defines": {...}}, ...]``
    (defines: macro name -> int). Errors name the file and the entry.

    >>> import json, tempfile
    >>> with tempfile.TemporaryDirectory() as d:  # leaves nothing behind
    ...     f = Path(d) / "c.json"
    ...     _ = f.write_text(json.dumps([{"variant": "subwarp", "defines": {"WARPS": 4}}]))
    ...     load_configs(f)
    [('subwarp', {'WARPS': 4})]
    """
    path = Path(path)
    try:
        entries = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"argument 'configs': cannot read {path} as JSON ({e})") from None
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"argument 'configs': {path} must hold a non-empty JSON list")
    out = []
    for i, e in enumerate(entries):
        ok = isinstance(e, dict) and isinstance(e.get("variant"), str)
        defines = e.get("defines", {}) if ok else None
        if (
            not ok
            or not isinstance(defines, dict)
            or not all(isinstance(k, str) and isinstance(v, int) for k, v in defines.items())
        ):
            raise ValueError(
                f"argument 'configs': entry {i} of {path}: expected "
                f'{{"variant": str, "defines": {{name: int}}}}, got {e!r}'
            )
        out.append((e["variant"], dict(defines)))
    return out


def candidates(
    variants: Iterable[str] | None = None, configs: str | Path | list | None = None
) -> list[tuple[str, dict]]:
    """The search space, kept to ``variants`` when given. ``configs``: ``"quick"``, ``"full"``,
    a JSON file of candidates (:func:`load_configs`) or a list of ``(variant, defines)``."""
    if configs is None or configs in ("quick", "full"):
        space = search_space(configs or "quick")
        if configs == "full":  # the full sweep covers whatever the quick one can pick
            known = {canonical(v, d) for v, d in space}
            space += [(v, d) for v, d in quick_space() if canonical(v, d) not in known]
    elif isinstance(configs, (str, Path)):
        if not Path(configs).is_file():
            raise ValueError(
                f"argument 'configs': expected 'quick', 'full' or a JSON file of candidates, "
                f"got {str(configs)!r} (no such file)"
            )
        space = load_configs(configs)
    else:
        space = [(v, dict(d)) for v, d in configs]
    wanted = set(variants) if variants is not None else None
    return [(v, d) for v, d in space if wanted is None or v in wanted]


def choose(table: dict, batch_size: int) -> dict:
    """The table's choice for ``batch_size``: smallest tuned size at or above it, else the
    largest tuned size."""
    if not table:
        raise ValueError("argument 'table': empty tuning table")
    sizes = sorted(int(b) for b in table)
    at = next((b for b in sizes if b >= batch_size), sizes[-1])
    return table[at] if at in table else table[str(at)]


def _dirs(directory) -> list[Path]:
    """The folders tables are looked up in: ``directory`` when named, else
    :func:`decodekit.paths.tuning_dirs` (the data directory, then the shipped tables)."""
    return [Path(directory)] if Path(directory) != TUNING_DIR else paths.tuning_dirs()


def _own_table(gpu: str, directory) -> Path | None:
    return next((p for d in _dirs(directory) if (p := table_path(gpu, d)).is_file()), None)


def table_path(gpu: str | None = None, directory: str | Path = TUNING_DIR) -> Path:
    """``data/tuning/<gpu-slug>.json`` for ``gpu`` (default: the current CUDA device's name)."""
    from decodekit.env import gpu_slug

    return Path(directory) / f"{gpu_slug(gpu or torch.cuda.get_device_name())}.json"


def load_table(path: str | Path | None = None) -> dict[int, dict] | None:
    """The ``table`` of a tuning file as ``{batch_size: choice}``; None if there is no file."""
    p = Path(path) if path is not None else table_path()
    if not p.is_file():
        return None
    return {int(b): c for b, c in json.loads(p.read_text())["table"].items()}


def build(variant: str, defines: dict, arch: str | None = None):
    """A DPS launcher of ``variant``'s source built with ``defines`` (in-place capable).

    A knob ``defines`` leaves out takes the variant's value, else the file's default
    (``#ifndef NAME / #define NAME v``); a define the file does not declare is an error, so
    a candidate list that names a removed knob fails loudly instead of building the default.
    """
    from decodekit.compile import declared_defines
    from decodekit.launch import kernel_impl
    from decodekit.registry import get

    im = get(variant)
    if "shape_for" not in im.meta:
        raise ValueError(f"argument 'variant': {variant!r} has no tunable launch shape")
    knobs = declared_defines(im.source)
    unknown = sorted(set(defines) - set(knobs))
    if unknown:
        raise ValueError(
            f"argument 'defines': {', '.join(unknown)} not declared in {im.source} "
            f"(it declares {', '.join(sorted(knobs)) or 'none'})"
        )
    full = {**knobs, **im.meta.get("defines", {}), **defines}
    label = f"{variant}[{_label(defines)}]"
    return kernel_impl(
        im.source,
        im.meta["entry"],
        im.meta["shape_for"](full),
        full,
        arch,
        inplace_ok=im.inplace_ok,
        name=label,
    )


def _label(defines: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(defines.items()))


class Dispatcher:
    """The ``best`` kernel: a DPS callable that runs, for each batch size, the choice of a
    tuning table. Launchers are built on first use of a batch size and shared between sizes
    that chose the same build; afterwards a call costs one dict lookup before the launch, and
    a repeat with the same ``q`` object an identity check (resize ``q`` in place and the
    stale choice is kept: pass a new tensor).

    ``tuning`` says what the table is, for records and headlines: its file, the GPU it was
    tuned on, and whether that is the GPU at hand (``tuned``)."""

    def __init__(
        self,
        table: dict[int, dict],
        origin: str = "table",
        make: Callable[[str, dict], Callable] = build,
        tuning: dict | None = None,
    ):
        self.table, self.origin, self._make = dict(table), origin, make
        self.tuning = dict(tuning or {"tuning_table": origin, "tuned": None})
        self._by_b: dict[int, Callable] = {}
        self._builds: dict[tuple, Callable] = {}
        self._q: object = None  # the last call's q and launcher: a repeat skips the lookup
        self._fn: Callable | None = None

    def __repr__(self) -> str:
        return f"Dispatcher({len(self.table)} batch sizes from {self.origin})"

    def __call__(self, q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state) -> None:
        if q is self._q:
            fn = self._fn
        else:
            fn = self._by_b.get(len(q)) or self.resolve(len(q))
            self._q, self._fn = q, fn
        fn(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state)

    def resolve(self, batch_size: int) -> Callable:
        """The launcher that serves ``batch_size`` (built and cached on first use)."""
        c = choose(self.table, batch_size)
        key = (c["variant"], tuple(sorted(c.get("defines", {}).items())))
        if key not in self._builds:
            self._builds[key] = self._make(c["variant"], dict(c.get("defines", {})))
        self._by_b[batch_size] = self._builds[key]
        return self._builds[key]


def _table_gpu(path: Path) -> tuple[str | None, dict]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None, {}
    if not isinstance(doc, dict) or not isinstance(doc.get("table"), dict):
        return None, {}
    return doc.get("gpu"), doc.get("environment") or {}


def nearest_table(
    capability: str, sm_count: int | None = None, l2_bytes: int | None = None,
    directory: str | Path = TUNING_DIR, exclude: str | None = None,
) -> Path | None:  # fmt: skip
    """The recorded table of the GPU nearest to this one: same compute capability, then the
    closest SM count and L2 size. None when no table of that architecture is recorded."""
    scored = []
    for p in sorted(f for d in _dirs(directory) for f in d.glob("*.json")):
        gpu, env = _table_gpu(p)
        if gpu is None or gpu == exclude or str(env.get("compute_capability")) != capability:
            continue
        d = sum(
            abs(float(env.get(k) or 0) - v) / max(v, 1)
            for k, v in (("sm_count", sm_count), ("l2_bytes", l2_bytes))
            if v
        )
        scored.append((d, p.name, p))
    return min(scored)[2] if scored else None


def this_gpu() -> dict:
    """Name, compute capability, SM count and L2 size of the current CUDA device."""
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    return {
        "name": props.name,
        "capability": f"{props.major}.{props.minor}",
        "sm_count": props.multi_processor_count,
        "l2_bytes": props.L2_cache_size,
    }


def untuned_note(gpu: dict | None = None, directory=TUNING_DIR) -> str | None:
    """``untuned on <gpu>: ...`` when the GPU (default: the current one) has no tuning
    table, naming the table ``best`` borrows and the command that tunes it; else None."""
    g = gpu or this_gpu()
    if _own_table(g["name"], directory):
        return None
    near = nearest_table(g["capability"], g.get("sm_count"), g.get("l2_bytes"), directory,
                         exclude=g["name"])  # fmt: skip
    uses = f"the table of {_table_gpu(near)[0]} ({near.name})" if near else "built-in defaults"
    return f"untuned on {g['name']}: best uses {uses}; tune this GPU: decodekit tune --quick"


def dispatcher(
    path: str | Path | None = None, *, gpu: dict | None = None, directory=TUNING_DIR
) -> Dispatcher:
    """A :class:`Dispatcher` over this GPU's tuning table (or the file ``path``). Where the
    GPU (``gpu``: :func:`this_gpu`'s dict) has none, the table of the nearest recorded GPU
    of the same architecture (:func:`nearest_table`: the H100's on an H200), else
    :data:`DEFAULT_TABLE`; either way with a warning that says "untuned on <gpu>" and names
    the command that tunes it. ``.tuning`` carries the same facts into the records."""
    if path is not None:
        p = Path(path)
        table = load_table(p)
        if table is not None:
            on = _table_gpu(p)[0]
            here = (gpu or this_gpu())["name"] if gpu or torch.cuda.is_available() else None
            info = {"tuning_table": p.name, "tuned_on": on, "tuned": on == here if here else None}
            return Dispatcher(table, origin=str(p), tuning=info)
        where, here, near = f"no tuning table {p}", None, None
    else:
        g = gpu or this_gpu()
        here = g["name"]
        p = _own_table(here, directory)
        if p is not None:
            info = {"tuning_table": p.name, "tuned_on": here, "tuned": True}
            return Dispatcher(load_table(p), origin=paths.relative(p), tuning=info)
        near = nearest_table(g["capability"], g.get("sm_count"), g.get("l2_bytes"), directory,
                             exclude=here)  # fmt: skip
        where = f"untuned on {here}"
    fix = "tune this GPU: decodekit tune --quick"
    if near is not None:
        other = _table_gpu(near)[0]
        warnings.warn(
            f"{where}: 'best' uses the table of {other}, the nearest recorded GPU of compute "
            f"capability {g['capability']} ({near.name}); {fix}",
            stacklevel=2,
        )
        info = {"tuning_table": near.name, "tuned_on": other, "tuned": False}
        return Dispatcher(load_table(near), origin=str(near), tuning=info)
    warnings.warn(f"{where}: 'best' uses built-in defaults; {fix}", stacklevel=2)
    info = {"tuning_table": "built-in defaults", "tuned_on": None, "tuned": False}
    return Dispatcher(DEFAULT_TABLE, origin="built-in defaults", tuning=info)


def tune_workloads(batch_size: int, per_batch: int = 1) -> list:
    """The workloads a sweep times at ``batch_size``: up to ``per_batch`` contest workloads of
    that batch size (manifest order), topped up with the synthetic one.

    >>> [w.name for w in tune_workloads(3, 2)]
    ['B3']
    >>> len(tune_workloads(1, 3)), all(w.batch_size == 1 for w in tune_workloads(1, 3))
    (3, True)
    """
    from decodekit.workloads import load_manifest, synthetic

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

    ``preset`` is a :mod:`decodekit.bench` preset (its cold-L2 method, counts and statistic).
    Each candidate is checked and timed on ``per_batch`` workloads of each batch size
    (:func:`tune_workloads`); it is ranked by its mean over them. ``incumbent`` (a table, e.g.
    the one already in ``data/tuning/``) joins the candidates and keeps its slot unless the
    winner beats it by more than ``margin`` and the trials' spread (see :func:`winners`).
    Returns one row per batch size x workload x candidate with ``status`` ``ok`` (and
    ``latency_us``), ``check-failed`` or ``compile-failed`` (and ``note``). With ``out_dir``
    (None: write nothing) the table goes to ``<out_dir>/<gpu-slug>.json``. ``timer`` (a
    :class:`decodekit.timing.Timer`) and ``make`` (``build``'s stand-in) are for tests.
    """
    from decodekit.bench import get_preset
    from decodekit.timing import DeviceTimer

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
    from decodekit.compile import CompileError

    try:
        return make(variant, defines)
    except (CompileError, ValueError) as e:
        return e


def _measure(fn, w, timer, method: str, p, dev) -> dict:
    """Check ``fn`` on fresh inputs of ``w``; time it on them only if it passed, with outputs
    allocated per trial: the bench's own sequence (:func:`decodekit.bench.trial_target`).
    The row's status, time and notes."""
    from decodekit.bench import trial_target
    from decodekit.check import check
    from decodekit.stats import summarize

    if isinstance(fn, Exception):
        return {"status": "compile-failed", "note": str(fn)}
    out: dict = {}
    if hasattr(fn, "build"):
        use = fn.build.usage(fn.entry)
        out.update(registers=use.registers, spills=use.spills)
    res = check(fn, w, device=str(dev))
    if not res.passed:
        return dict(out, status="check-failed", note=res.summary())
    trials = [
        timer.trial(
            method, trial_target(fn, res.inputs, w.batch_size, dev), p.n_warmup, p.n_iter
        ).us
        for _ in range(p.n_trials)
    ]
    st = summarize(trials, statistic=p.statistic)
    return dict(out, status="ok", latency_us=st.latency_us, spread=st.spread)


def _method(timer, p, dev: torch.device) -> tuple[str, str | None]:
    why = timer.unavailable(p.method, dev)
    if why is None:
        return p.method, None
    if p.fallback and timer.unavailable(p.fallback, dev) is None:
        return p.fallback, f"{p.method} unavailable ({why}); fell back to {p.fallback}"
    raise RuntimeError(f"timing method {p.method!r} unavailable: {why}")


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
) -> Path:
    """Write ``{gpu, date, method, preset, environment, table, candidates}`` for this GPU
    (the table from :func:`winners` with ``incumbent`` and ``margin``).

    Batch sizes this sweep did not time keep the entry (and candidate rows) of the table
    already on disk, marked ``kept`` with that table's date: re-tuning one batch size never
    drops the others (``best`` would otherwise run another size's winner there). ``swept``
    carries the date of the sweep that timed a kept entry through later partial sweeps.
    """
    from decodekit.env import capture
    from decodekit.records import now, write_json

    env = capture(device)
    path = table_path(env["gpu"], out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    cands = [
        {k: v for k, v in r.items() if not (isinstance(v, float) and v != v)}
        for r in df.to_dict("records")
    ]
    table = {str(b): c for b, c in winners(df, incumbent, margin).items()}
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
    doc = {
        "gpu": env["gpu"],
        "date": now(),
        "method": method,
        "preset": preset,
        "environment": env,
        "margin": margin,
        "workloads": sorted(workloads) or None,
        "table": dict(sorted(table.items(), key=lambda kv: int(kv[0]))),
        "candidates": cands,
    }
    return write_json(path, doc)  # a temp file renamed: never half a table


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


def cli_tune(
    batch_sizes: Iterable[int] = BATCH_SIZES,
    preset: str = "quick",
    variants: Iterable[str] | None = None,
    configs: str | list | None = None,
    per_batch: int = 1,
    fresh: bool = False,
    margin: float = MARGIN,
    quick: bool = False,
    out_dir: str | Path = TUNING_DIR,
) -> int:
    """``decodekit tune``: run the sweep, write the table, print the winners and every
    candidate that failed. Unless ``fresh``, this GPU's current table is the incumbent.
    ``quick``: the candidates of :func:`quick_space` for this GPU's architecture, one
    workload per batch size. Returns 0 when every batch size has a winner, else 1 (2 without
    a GPU, with the reason)."""
    if not torch.cuda.is_available():
        raise RuntimeError(
            "tune needs a CUDA GPU (torch.cuda.is_available() is False); on a GPU machine: "
            "decodekit tune --quick"
        )
    sizes = [int(b) for b in batch_sizes]
    if quick:
        configs, per_batch = quick_space(this_gpu()["capability"]), 1
    incumbent = None if fresh else load_table(table_path(directory=out_dir))
    df = tune(
        variants, sizes, configs, preset, per_batch=per_batch, incumbent=incumbent,
        margin=margin, out_dir=out_dir,
    )  # fmt: skip
    table = winners(df, incumbent, margin)
    for b, c in sorted(table.items()):
        kept = f"  ({c['kept']})" if "kept" in c else ""
        print(f"B={b:<4} {c['latency_us']:8.2f} us  {c['variant']}[{_label(c['defines'])}]{kept}")
    for r in df[df["status"] != "ok"].itertuples():
        print(f"B={r.batch_size} {r.workload} {r.config}: {r.status}: {str(r.note)[:300]}")
    return 0 if len(table) == len(set(sizes)) else 1
