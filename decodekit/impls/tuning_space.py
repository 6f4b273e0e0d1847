"""The tuning search space: which builds of which kernels a sweep tries.

``quick`` (a few minutes) and ``full`` name the built-in spaces; ``tune --quick`` takes
:func:`quick_space` (a compact core and every recorded winner of the GPU's architecture); a
JSON file of ``[{"variant", "defines"}]`` gives your own (:func:`load_configs`).
:func:`canonical` names a build the same however its defines are spelled.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable
from pathlib import Path

from decodekit.impls import kernel_spec
from decodekit.impls import variants as _variants  # noqa: F401  (importing it declares the specs)
from decodekit.impls.tuning_tables import TUNING_DIR, _dirs, _label, _table_gpu, load_table

SPACES = kernel_spec.SPACES


def _wr(w: int, r: int) -> dict:
    return {"WARPS": w, "ROWS_PER_WARP": r}


def search_space(name: str = "quick") -> list[tuple[str, dict]]:
    """Candidates ``(variant, defines)``: ``quick`` (49, a few minutes) or ``full`` (136),
    each spec's sweeps (:mod:`decodekit.impls.variants`) less what its skip rules drop.

    >>> len(search_space("quick")), len(search_space("full"))
    (49, 136)
    """
    return kernel_spec.space(name)


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
    ``capability`` (all recorded tables when None), each candidate once. A recorded entry
    that no longer builds (its variant is gone, or it sets a define its file no longer
    declares) is left out with a warning that names the table and the batch size; the table
    itself still loads for views, and ``best`` building from it fails naming the define.

    >>> len(quick_space("0.0")) == len(QUICK_SEEDS)
    True
    """
    out = []
    for i, (v, d) in enumerate(QUICK_SEEDS):
        kernel_spec.check_candidate(v, d, f"QUICK_SEEDS[{i}]: ")
        out.append((v, dict(d)))
    for p in sorted(f for d in _dirs(directory) for f in d.glob("*.json")):
        gpu, env = _table_gpu(p)
        if gpu is None or (capability and str(env.get("compute_capability")) != capability):
            continue
        for b, c in load_table(p).items():
            try:
                kernel_spec.check_candidate(c["variant"], c.get("defines", {}), f"{p} B={b}: ")
            except ValueError as e:
                warnings.warn(f"quick_space leaves out a recorded choice: {e}", stacklevel=2)
                continue
            out.append((c["variant"], dict(c.get("defines", {}))))
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
    from decodekit.build.compile import declared_defines
    from decodekit.impls.impl import registered

    im = registered(variant)
    full = {**declared_defines(im.source), **im.meta.get("defines", {}), **defines}
    return f"{im.source}[{_label(full)}]"


def json_list(path: Path, argument: str) -> list:
    """The non-empty JSON list in ``path``; else a one-line error naming ``argument`` and the
    file (a candidate file's first check, for the contest's variants and the family's)."""
    try:
        entries = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"argument '{argument}': cannot read {path} as JSON ({e})") from None
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"argument '{argument}': {path} must hold a non-empty JSON list")
    return entries


def load_configs(path: str | Path) -> list[tuple[str, dict]]:
    """A candidate list from a JSON file: ``[{"variant": "subwarp", "defines": {...}}, ...]``
    (defines: macro name -> int). Errors name the file and the entry: a malformed one, an
    unknown variant, or a define the variant's file does not declare (a knob since removed).

    >>> import json, tempfile
    >>> with tempfile.TemporaryDirectory() as d:  # leaves nothing behind
    ...     f = Path(d) / "c.json"
    ...     _ = f.write_text(json.dumps([{"variant": "subwarp", "defines": {"WARPS": 4}}]))
    ...     load_configs(f)
    [('subwarp', {'WARPS': 4})]
    """
    path = Path(path)
    entries = json_list(path, "configs")
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
        kernel_spec.check_candidate(e["variant"], defines, f"entry {i} of {path}: ")
        out.append((e["variant"], dict(defines)))
    return out


def candidates(
    variants: Iterable[str] | None = None, configs: str | Path | list | None = None
) -> list[tuple[str, dict]]:
    """The search space, kept to ``variants`` when given. ``configs``: ``"quick"``, ``"full"``,
    a JSON file of candidates (:func:`load_configs`) or a list of ``(variant, defines)``
    (checked like a file's entries)."""
    if configs is None or configs in SPACES:
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
        for i, (v, d) in enumerate(space):
            kernel_spec.check_candidate(v, d, f"candidate {i}: ")
    wanted = set(variants) if variants is not None else None
    return [(v, d) for v, d in space if wanted is None or v in wanted]
