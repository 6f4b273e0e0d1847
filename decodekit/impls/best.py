"""``best``: per batch size, the variant and launch shape that won the tuning sweep on this GPU.

A :class:`decodekit.impls.tuning_tables.Dispatcher` over ``data/tuning/<gpu>.json`` (else the
nearest recorded table of the same architecture, else a built-in default; it says which).
``DECODEKIT_TUNING`` names another table file (an A/B of two tables); records say which.
Its Nsight Compute kernel filter matches the entry of every tunable
:class:`~decodekit.impls.kernel_spec.KernelSpec` and follows later declarations.
"""

from __future__ import annotations

from decodekit.impls import kernel_spec, variants  # noqa: F401  (variants: declares the specs)
from decodekit.impls.impl import Impl, register


def tunable_entries() -> list[str]:
    """The kernel entry points ``best`` can run: those of every tunable spec (one with a
    search space), in declaration order.

    >>> tunable_entries()[0]
    'gdn_decode_rowsplit'
    """
    return kernel_spec.tunable_entries()


def ncu_kernel_regex() -> str:
    """The Nsight Compute kernel filter that matches every entry ``best`` can run.

    >>> import re
    >>> bool(re.match(ncu_kernel_regex(), "gdn_decode_ordered"))
    True
    """
    return f"^({'|'.join(tunable_entries())})$"


def _best_factory():
    import os

    from decodekit.impls.tuning_tables import dispatcher

    return dispatcher(os.environ.get("DECODEKIT_TUNING") or None)


_BEST = register(
    Impl(
        name="best",
        kind="kernel",
        description="per batch size, the variant and launch shape that won the tuning sweep "
        "on this GPU (data/tuning/<gpu>.json), else a built-in default",
        factory=_best_factory,
        parent=None,
        inplace_ok=True,
        meta={"dispatcher": True},
    )
)


def _refresh() -> None:
    _BEST.meta["ncu_kernel"] = ncu_kernel_regex()


kernel_spec.on_change(_refresh)
