"""The tuning search space: which builds of which kernels a sweep tries.

``quick`` (a few minutes) and ``full`` name the built-in spaces; ``tune --quick`` takes
:func:`quick_space` (a compact core and every recorded winner of the GPU's architecture); a
JSON file of ``[{"variant", "defines"}]`` gives your own (:func:`load_configs`).
:func:`canonical` names a build the same however its defines are spelled.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from pathlib import Path

from decodekit.tuning_tables import TUNING_DIR, _dirs, _label, _table_gpu, load_table

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
    from decodekit.variants import kernel_variant

    im = kernel_variant(variant)
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
