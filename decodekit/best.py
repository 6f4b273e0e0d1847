"""``best``: per batch size, the variant and launch shape that won the tuning sweep on this GPU.

A :class:`decodekit.tuning_tables.Dispatcher` over ``data/tuning/<gpu>.json`` (else the
nearest recorded table of the same architecture, else a built-in default; it says which).
``DECODEKIT_TUNING`` names another table file (an A/B of two tables); records say which.
"""

from __future__ import annotations

from decodekit.impl import Impl, register


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
            "ncu_kernel": "^gdn_decode_(rowsplit|subwarp|ordered|bulk|persistent)$",
        },
    )
)
