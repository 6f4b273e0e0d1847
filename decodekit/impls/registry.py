"""Every implementation, kit kernel or baseline, behind one calling convention.

Destination-passing: ``impl(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state)``
writes ``output`` [B, 1, 8, 128] bf16 and ``new_state`` [B, 8, 128, 128] fp32 (k-last) on the
inputs' device and returns nothing. ``impl.allocating(...)`` returns ``(output, new_state)``.

Kit kernels come from :mod:`decodekit.impls.variants` (one entry per ``kernels/*.cu``) and
:mod:`decodekit.impls.best` (the tuned dispatcher); baselines from :mod:`decodekit.impls.baselines`; each
is declared as an :class:`decodekit.impls.impl.Impl`. Benches, checks, NCU runs and reports list implementations
here and never name one in their own code.

Each implementation declares the calling contracts it supports (``contracts``, see
:mod:`decodekit.problem.contracts`; the first is its native one) and how many GPU activities one
call launches (``kernels_per_call``; None for a declared multi-kernel implementation such
as the torch reference). A peer whose ``probe`` is set is called once on a tiny input before
it is called available, so "available" means its real entry point runs.

>>> "torch-fp32" in names()
True
"""

from __future__ import annotations

from decodekit.impls.impl import _REGISTRY, Impl, register  # noqa: F401  (this API)

_LOADED = False


def _load() -> None:
    global _LOADED
    if not _LOADED:
        _LOADED = True
        from decodekit.impls import baselines, variants  # noqa: F401  (they register themselves)

        # isort: split
        from decodekit.impls import best  # noqa: F401  (after the variants it runs: last in listings)


def names(kind: str | None = None) -> list[str]:
    _load()
    return [n for n, i in _REGISTRY.items() if kind is None or i.kind == kind]


def get(name: str) -> Impl:
    _load()
    if name not in _REGISTRY:
        raise KeyError(
            f"argument 'impl': no implementation {name!r}; known: {', '.join(_REGISTRY)}"
        )
    return _REGISTRY[name]


def all_impls(kind: str | None = None) -> list[Impl]:
    return [get(n) for n in names(kind)]


def resource_usage(impl, arch: str | None = None):
    """Registers, spills and shared memory of a kit kernel (``Resources``), from ptxas.

    ``impl``: a :class:`KernelLauncher`, a registry name (``"baseline"``), a registry Impl, or
    a ``.cu`` file (then a dict ``{entry: Resources}``). Works without a GPU given ``arch``.
    """
    from decodekit.build.compile import compile_kernel
    from decodekit.build.launch import KernelLauncher

    if isinstance(impl, KernelLauncher):
        return impl.build.usage(impl.entry)
    if str(impl).endswith(".cu"):
        return compile_kernel(impl, arch).resources
    im = get(impl) if isinstance(impl, str) else impl
    if im.kind != "kernel":
        raise ValueError(f"argument 'impl': {im.name!r} is a {im.kind}, not a kit kernel")
    return compile_kernel(im.source, arch, im.meta.get("defines")).usage(im.meta["entry"])
