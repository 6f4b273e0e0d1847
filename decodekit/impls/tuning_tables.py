"""Tuning tables on disk and the ``best`` dispatcher that runs them.

A table maps tuned batch sizes to choices ``{variant, defines}``; a call of batch size ``B``
takes the choice of the smallest tuned size at or above ``B`` (the largest one beyond the
table). Tables live in ``data/tuning/<gpu-slug>.json`` (written by :func:`decodekit.measure.tuning.tune`)
and, installed, also ship with the kit (:func:`decodekit.base.paths.tuning_dirs`). A GPU with no
table borrows the nearest recorded one of its architecture, and says so.

>>> table = {1: {"variant": "bulk"}, 16: {"variant": "subwarp"}, 64: {"variant": "streaming"}}
>>> [choose(table, B)["variant"] for B in (1, 2, 16, 17, 300)]
['bulk', 'subwarp', 'subwarp', 'streaming', 'streaming']
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from decodekit.base import paths

TUNING_DIR = paths.data_dir() / "tuning"  # where tune writes; tables are also looked up in
# the ones shipped with an installed kit (paths.tuning_dirs)
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
    :func:`decodekit.base.paths.tuning_dirs` (the data directory, then the shipped tables)."""
    return [Path(directory)] if Path(directory) != TUNING_DIR else paths.tuning_dirs()


def _own_table(gpu: str, directory) -> Path | None:
    return next((p for d in _dirs(directory) if (p := table_path(gpu, d)).is_file()), None)


def table_path(gpu: str | None = None, directory: str | Path = TUNING_DIR) -> Path:
    """``data/tuning/<gpu-slug>.json`` for ``gpu`` (default: the current CUDA device's name)."""
    from decodekit.records.env import gpu_slug

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
    from decodekit.build.compile import declared_defines
    from decodekit.build.launch import kernel_impl
    from decodekit.impls.variants import kernel_variant

    im = kernel_variant(variant)
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
