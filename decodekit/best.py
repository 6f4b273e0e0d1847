"""``best``: per batch size, the variant and launch shape that won the tuning sweep on this GPU.

A :class:`decodekit.tuning_tables.Dispatcher` over ``data/tuning/<gpu>.json`` (else the
nearest recorded table of the same architecture, else a built-in default; it says which).
``DECODEKIT_TUNING`` names another table file (an A/B of two tables); records say which.
"""

from __future__ import annotations

from decodekit import variants  # noqa: F401  (registers the variants best dispatches to)
from decodekit.impl import _REGISTRY, Impl, register


def tunable_entries() -> list[str]:
    """The kernel entry points ``best`` can run: those of every variant with a tunable launch
    shape (what its NCU kernel filter matches), in registration order."""
    names = [im.meta["entry"] for im in _REGISTRY.values() if "shape_for" in im.meta]
    return list(dict.fromkeys(names))


def _best_factory():
    import os

    from decodekit.tuning_tables import dispatcher

    return dispatcher(os.environ.get("DECODEKIT_TUNING") or None)


register(
    Impl(
        name="best",
        kind="kernel",
        description="per batch size, the variant and launch shape that won the tuning sweep "
        "on this GPU (data/tuning/<gpu>.json), else a built-in default",
        factory=_best_factory,
        parent=None,
        inplace_ok=True,
        meta={
            "dispatcher": True,
            "ncu_kernel": f"^({'|'.join(tunable_entries())})$",
        },
    )
)
