"""One declaration per kernel file: :class:`KernelSpec`, and the variants built from it.

A spec names a ``kernels/*.cu`` file, its entry point, the defines its kit variant builds with
(over the file's own ``#ifndef NAME`` / ``#define NAME v`` defaults), its launch shape as a
function of the defines, and its tuning sweeps, nvbench style: each :class:`Sweep` is the
product of named :class:`Axis` values, less what the skip rules (:class:`Skip`, a predicate
over a candidate's defines and the reason) drop; the ``quick`` space also drops what each
sweep's ``quick`` rules name, the ``full`` one keeps the rest. An axis may set several defines
at once (a ``shape`` axis of ``(WARPS, ROWS_PER_WARP)`` pairs): a curated list that is not a
product is one coupled axis.

:func:`declare` registers a spec and its own variant (:class:`decodekit.impls.impl.Impl`, named like
the spec); :func:`variant` registers another variant of the same file with other defaults
(``streaming`` is ``rowsplit``'s file with evict-first loads). Both check every define they
name against the file (:func:`decodekit.build.compile.undeclared`): a define the file does not
declare is an error, not a silent build of the file's default. The search space
(:func:`space`), the entries ``best`` runs and its Nsight Compute filter derive from the
declared specs, so adding a kernel is one ``.cu`` file and one :func:`declare`.

>>> ax = Axis("shape", ((4, 4), (4, 8)), ("WARPS", "ROWS_PER_WARP"))
>>> ax.points()
[{'WARPS': 4, 'ROWS_PER_WARP': 4}, {'WARPS': 4, 'ROWS_PER_WARP': 8}]
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from decodekit.impls.impl import _REGISTRY, Impl, register

Shape = tuple[tuple[int, ...], tuple[int, ...], int]  # (grid, block, dynamic shared bytes)
LaunchShape = Callable[[dict], Callable[[int], Shape]]  # defines -> (batch_size -> Shape)
SPACES = ("quick", "full")


@dataclass(frozen=True)
class Axis:
    """A named tuning axis. Each value sets ``defines`` (default: the one define ``name``):
    an int per define, or None to leave that define unset (the variant's or file's default);
    a value of a coupled axis (several defines) is a tuple in ``defines`` order."""

    name: str
    values: tuple
    defines: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "values", tuple(self.values))
        object.__setattr__(self, "defines", tuple(self.defines))
        if not self.values:
            raise ValueError(f"argument 'values': axis {self.name!r} has no values")
        for v in self.values:
            vals = v if isinstance(v, tuple) else (v,)
            if len(vals) != len(self.keys) or not all(x is None or type(x) is int for x in vals):
                raise ValueError(
                    f"argument 'values': axis {self.name!r} sets {', '.join(self.keys)}: "
                    f"expected {len(self.keys)} int (or None) per value, got {v!r}"
                )

    @property
    def keys(self) -> tuple[str, ...]:
        """The defines a value of this axis sets."""
        return self.defines or (self.name,)

    def points(self) -> list[dict]:
        """Each value as ``{define: int}`` (None values left out)."""
        out = []
        for v in self.values:
            vals = v if isinstance(v, tuple) else (v,)
            out.append({k: x for k, x in zip(self.keys, vals, strict=True) if x is not None})
        return out


def fixed(**defines: int) -> Axis:
    """A one-value axis: defines every candidate of a sweep sets.

    >>> fixed(FAST_GATES=1).points()
    [{'FAST_GATES': 1}]
    """
    return Axis("fixed", (tuple(defines.values()),), tuple(defines))


@dataclass(frozen=True)
class Skip:
    """A skip rule (nvbench's ``skip``): ``when(defines)`` True drops the candidate, for
    ``reason``. ``defines`` is the candidate's full build: the file's defaults, under the
    variant's, under the candidate's own."""

    reason: str
    when: Callable[[dict], bool]


def only(keys: Iterable[str], values: Iterable, reason: str) -> Skip:
    """The rule that keeps a candidate only where its ``keys`` take one of ``values`` (an int
    per value for one key, else tuples in ``keys`` order).

    >>> only(("LANES_PER_ROW",), (8, 16), "quick").when({"LANES_PER_ROW": 4})
    True
    """
    keys = tuple(keys)
    keep = {v if isinstance(v, tuple) else (v,) for v in values}
    return Skip(reason, lambda d: tuple(d.get(k) for k in keys) not in keep)


@dataclass(frozen=True)
class Sweep:
    """One product of axes (an nvbench benchmark's axes), run as ``variant`` (None: the
    spec's own). ``skips`` drop candidates from every space, ``quick`` from the quick one."""

    axes: tuple[Axis, ...]
    variant: str | None = None
    skips: tuple[Skip, ...] = ()
    quick: tuple[Skip, ...] = ()

    def __post_init__(self):
        for name in ("axes", "skips", "quick"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not self.axes or len(self.keys) != len(set(self.keys)):
            raise ValueError(
                f"argument 'axes': expected axes that set distinct defines, got "
                f"{[a.name for a in self.axes]} setting {self.keys}"
            )

    @property
    def keys(self) -> list[str]:
        """Every define the sweep's axes set."""
        return [k for a in self.axes for k in a.keys]


@dataclass(frozen=True)
class KernelSpec:
    """A kernel file, declared once: ``source`` (in ``kernels/``), ``entry``, ``defaults``
    (the defines its own variant ``name`` builds with, over the file's), ``launch_shape``
    (``defines -> (batch_size -> (grid, block, shared_bytes))``, given every define filled),
    ``skips`` (rules over every candidate of the file, e.g. what its static_asserts reject)
    and ``sweeps`` (its search space). A spec with sweeps is tunable: ``best`` may run it."""

    name: str
    source: str
    entry: str
    launch_shape: LaunchShape
    description: str
    parent: str | None = None
    defaults: Mapping[str, int] = field(default_factory=dict)
    skips: tuple[Skip, ...] = ()
    sweeps: tuple[Sweep, ...] = ()
    inplace_ok: bool = True

    def __post_init__(self):
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))
        for name in ("skips", "sweeps"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    @property
    def tunable(self) -> bool:
        return bool(self.sweeps)

    def knobs(self) -> dict[str, int]:
        """The defines the file declares, with its defaults (file order)."""
        from decodekit.build.compile import declared_defines

        return declared_defines(self.source)


_SPECS: dict[str, KernelSpec] = {}  # by source file, in declaration order
_VARIANTS: dict[str, tuple[KernelSpec, dict]] = {}  # variant -> (its spec, its defines)
_WATCHERS: list[Callable[[], None]] = []


def _check(spec: KernelSpec, argument: str, defines, where: str = "") -> None:
    from decodekit.build.compile import undeclared

    why = undeclared(spec.source, defines)
    if why:
        raise ValueError(f"argument {argument!r}: {where}{why}")


def _check_sweeps(spec: KernelSpec) -> None:
    for s in spec.sweeps:
        for a in s.axes:
            _check(spec, "sweeps", a.keys, f"axis {a.name!r} of spec {spec.name!r}: ")


def declare(spec: KernelSpec) -> KernelSpec:
    """Register ``spec`` and its own variant ``spec.name``. Raises ValueError when the file
    lacks the entry, or declares no define the defaults or an axis names (one spec per file:
    a second one of another name is an error; the same name again replaces it)."""
    from decodekit.build.compile import KERNELS_DIR
    from decodekit.build.cubin import entry_names

    other = _SPECS.get(spec.source)
    if other is not None and other.name != spec.name:
        raise ValueError(
            f"argument 'spec': {spec.source} has a spec already ({other.name!r}); one spec per "
            f"file: add a variant of it with variant(name, spec, defines), got {spec.name!r}"
        )
    path = KERNELS_DIR / spec.source
    if not path.is_file():
        raise FileNotFoundError(f"argument 'source': no kernel {spec.source!r} in {KERNELS_DIR}")
    text = path.read_text()
    if spec.entry not in entry_names(text):
        raise ValueError(
            f"argument 'entry': {spec.source} has no extern \"C\" __global__ {spec.entry} "
            f"(it has {', '.join(entry_names(text)) or 'none'})"
        )
    _check(spec, "defaults", spec.defaults)
    _check_sweeps(spec)
    if other is not None:
        withdraw(other.name, notify=False)
    _SPECS[spec.source] = spec
    try:
        variant(spec.name, spec, parent=spec.parent, description=spec.description)
    except Exception:
        del _SPECS[spec.source]
        raise
    return spec


def variant(
    name: str,
    spec: KernelSpec,
    defines: Mapping[str, int] | None = None,
    *,
    parent: str | None,
    description: str,
) -> Impl:
    """Register the variant ``name``: ``spec``'s file built with ``spec.defaults`` updated by
    ``defines``. Its ``meta`` holds ``entry``, ``defines``, ``launch_shape``, ``spec`` and,
    for a tunable spec, ``shape_for`` (the launch shape of any other defines)."""
    _check(spec, "defines", dict(defines or {}), f"variant {name!r}: ")
    full = {**spec.defaults, **(defines or {})}
    shape = spec.launch_shape({**spec.knobs(), **full})

    def factory():
        from decodekit.build.launch import kernel_impl

        return kernel_impl(
            spec.source, spec.entry, shape, defines=full, inplace_ok=spec.inplace_ok, name=name
        )

    meta = {"entry": spec.entry, "defines": dict(full), "launch_shape": shape, "spec": spec}
    if spec.tunable:
        meta["shape_for"] = spec.launch_shape
    impl = register(
        Impl(
            name=name,
            kind="kernel",
            description=description,
            factory=factory,
            parent=parent,
            source=spec.source,
            inplace_ok=spec.inplace_ok,
            meta=meta,
        )
    )
    _VARIANTS[name] = (spec, dict(full))
    _notify()
    return impl


def withdraw(name: str, *, notify: bool = True) -> None:
    """Remove the spec ``name`` and every variant of its file (a throwaway spec of a test or
    notebook); KeyError when no spec has that name."""
    spec = next((s for s in _SPECS.values() if s.name == name), None)
    if spec is None:
        raise KeyError(f"argument 'name': no spec {name!r}; known: {', '.join(spec_names())}")
    del _SPECS[spec.source]
    for v in [v for v, (s, _) in _VARIANTS.items() if s.source == spec.source]:
        del _VARIANTS[v]
        _REGISTRY.pop(v, None)
    if notify:
        _notify()


def on_change(fn: Callable[[], None]) -> None:
    """Call ``fn`` now and after every declaration or withdrawal (``best`` keeps its Nsight
    Compute filter current so)."""
    _WATCHERS.append(fn)
    fn()


def _notify() -> None:
    for fn in _WATCHERS:
        fn()


def specs() -> list[KernelSpec]:
    """The declared specs, in declaration order."""
    return list(_SPECS.values())


def spec_names() -> list[str]:
    return [s.name for s in _SPECS.values()]


def spec_of(variant_name: str) -> KernelSpec:
    """The spec a registered kit variant builds."""
    if variant_name not in _VARIANTS:
        raise KeyError(
            f"argument 'variant': no kit variant {variant_name!r}; known: {', '.join(_VARIANTS)}"
        )
    return _VARIANTS[variant_name][0]


def check_candidate(variant_name: str, defines: Mapping, where: str = "") -> None:
    """ValueError (naming ``where``, e.g. the file and entry) unless ``variant_name`` is a
    kit variant whose file declares every define in ``defines``."""
    if variant_name not in _VARIANTS:
        raise ValueError(
            f"argument 'configs': {where}no kit variant {variant_name!r} "
            f"(known: {', '.join(_VARIANTS)})"
        )
    _check(_VARIANTS[variant_name][0], "configs", defines, where)


def tunable_entries() -> list[str]:
    """The entry points of the tunable specs, in declaration order."""
    return list(dict.fromkeys(s.entry for s in _SPECS.values() if s.tunable))


def space(name: str, skipped: list | None = None) -> list[tuple[str, dict]]:
    """The candidates ``(variant, defines)`` of the space ``name`` (``quick`` or ``full``):
    every spec's sweeps in declaration order, each the product of its axes (first axis
    outermost) less what a skip rule drops; ``skipped`` (a list) collects
    ``(variant, defines, reason)`` of each dropped one."""
    if name not in SPACES:
        raise ValueError(f"argument 'configs': expected 'quick', 'full' or a list, got {name!r}")
    out = []
    for spec in _SPECS.values():
        _check_sweeps(spec)  # the file may have lost a knob since the spec was declared
        knobs = spec.knobs()
        for sweep in spec.sweeps:
            vname = sweep.variant or spec.name
            if _VARIANTS.get(vname, (None,))[0] is not spec:
                raise ValueError(
                    f"argument 'sweeps': spec {spec.name!r} runs a sweep as {vname!r}, which "
                    f"is no variant of {spec.source} (declare it with variant(...))"
                )
            rules = (*spec.skips, *sweep.skips, *(sweep.quick if name == "quick" else ()))
            for combo in itertools.product(*(a.points() for a in sweep.axes)):
                point = {k: v for p in combo for k, v in p.items()}
                point = {k: point[k] for k in knobs if k in point}  # the file's order
                full = {**knobs, **_VARIANTS[vname][1], **point}
                why = next((r.reason for r in rules if r.when(full)), None)
                if why is None:
                    out.append((vname, point))
                elif skipped is not None:
                    skipped.append((vname, point, why))
    return out
