"""The kit's kernel variants: one entry per ``kernels/gdn_decode_<technique>.cu``.

Every kernel has the same C signature (see ``kernels/common.cuh``)::

    extern "C" __global__ void <entry>(const bf16* q, const bf16* k, const bf16* v,
        const float* state /* may be null: zeros */, const float* A_log, const bf16* a,
        const float* dt_bias, const bf16* b, float scale /* resolved */, bf16* output,
        float* new_state, int batch_size)

and a launch-shape function ``batch_size -> (grid, block, shared_mem_bytes)`` lives beside its
entry here. Adding a kernel = one ``.cu`` file + one ``variant(...)`` call below; checks,
benches, NCU runs and reports pick it up through :mod:`decodekit.registry`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from decodekit.impl import Impl, register, registered

Shape = tuple[tuple[int, ...], tuple[int, ...], int]


def variant(
    name: str,
    source: str,
    entry: str,
    launch_shape: Callable[[int], Shape],
    *,
    parent: str | None,
    description: str,
    defines: dict | None = None,
    inplace_ok: bool = False,
) -> Impl:
    def factory():
        from decodekit.launch import kernel_impl

        return kernel_impl(
            source, entry, launch_shape, defines=defines or {}, inplace_ok=inplace_ok, name=name
        )

    return register(
        Impl(
            name=name,
            kind="kernel",
            description=description,
            factory=factory,
            parent=parent,
            source=source,
            inplace_ok=inplace_ok,
            meta={"entry": entry, "defines": dict(defines or {}), "launch_shape": launch_shape},
        )
    )


variant(
    "baseline",
    "gdn_decode_baseline.cu",
    "gdn_decode_baseline",
    lambda B: ((B * 8,), (128,), 0),
    parent=None,
    inplace_ok=True,
    description="one block per (batch, value head), one thread per state row, one-pass math",
)


def split_shape(defines: dict) -> Callable[[int], Shape]:
    """Launch shape of the row-split kernels (rowsplit, streaming, subwarp, ordered, bulk)
    built with ``defines``: ``B * 8 * SPLIT`` blocks of ``WARPS * 32`` threads, no dynamic
    shared memory, where a block owns ``WARPS * ROWS_PER_WARP`` rows of one head and ``SPLIT``
    blocks share it.

    >>> split_shape({"WARPS": 4, "ROWS_PER_WARP": 8})(2)
    ((64,), (128,), 0)
    """
    warps, rows = int(defines["WARPS"]), int(defines["ROWS_PER_WARP"])
    if warps < 1 or rows < 1 or 128 % (warps * rows):
        raise ValueError(
            f"argument 'defines': WARPS * ROWS_PER_WARP must divide 128, got {warps} * {rows}"
        )
    split = 128 // (warps * rows)
    return lambda B: ((B * 8 * split,), (32 * warps,), 0)


def _split_variant(
    name: str, defines: dict, *, parent: str, description: str, source: str | None = None
) -> Impl:
    source = source or name  # a variant may be another one's file with other defines
    impl = variant(
        name,
        f"gdn_decode_{source}.cu",
        f"gdn_decode_{source}",
        split_shape(defines),
        parent=parent,
        description=description,
        defines=defines,
        inplace_ok=True,
    )
    # decodekit.tuning builds the same source with other defines; this gives their shape.
    impl.meta["shape_for"] = split_shape
    return impl


_split_variant(
    "rowsplit",
    {"WARPS": 4, "ROWS_PER_WARP": 4},
    parent="baseline",
    description="V rows of a head split over blocks; a warp holds 4 rows in flight with "
    "16-byte loads and butterfly reductions",
)
_split_variant(
    "streaming",
    {"WARPS": 4, "ROWS_PER_WARP": 4, "LOAD_HINT": 1, "STORE_HINT": 0},
    parent="rowsplit",
    description="rowsplit with evict-first (ld.global.cs) state loads, so dirty new_state "
    "lines stay in L2",
    source="rowsplit",
)
_split_variant(
    "subwarp",
    {"WARPS": 4, "ROWS_PER_WARP": 8, "LANES_PER_ROW": 8, "LOAD_HINT": 1, "STORE_HINT": 0},
    parent="streaming",
    description="streaming with 8 lanes per row: 4 rows per load instruction, 3-step reductions",
)
_split_variant(
    "ordered",
    {"WARPS": 2, "ROWS_PER_WARP": 4, "LANES_PER_ROW": 16, "LOAD_HINT": 1, "STORE_HINT": 0},
    parent="subwarp",
    description="subwarp with every small input loaded first in the source (volatile asm) "
    "and less work after the state arrives (base-2 gate math, g * s formed early)",
)
_split_variant(
    "bulk",
    {"WARPS": 4, "ROWS_PER_WARP": 8, "STORE_HINT": 0, "BULK_STORE": 0},
    parent="streaming",
    description="a warp's 4 KiB of state arrives by one cp.async.bulk (TMA engine) into "
    "shared memory, completing on an mbarrier",
)


@functools.cache
def _sm_count() -> int:
    import torch

    return torch.cuda.get_device_properties(torch.cuda.current_device()).multi_processor_count


def persistent_shape(defines: dict, sms: int | None = None) -> Callable[[int], Shape]:
    """Launch shape of ``gdn_decode_persistent.cu`` built with ``defines``: enough blocks of
    ``WARPS * 32`` threads for one warp per ``ROWS_PER_WARP``-row tile, at most
    ``BLOCKS_PER_SM`` per SM (``sms``: SM count, default the current GPU's, read once).

    >>> shape = persistent_shape({"WARPS": 4, "ROWS_PER_WARP": 8, "BLOCKS_PER_SM": 4}, sms=132)
    >>> shape(64), shape(1)
    (((528,), (128,), 0), ((32,), (128,), 0))
    """
    warps, rows = int(defines["WARPS"]), int(defines["ROWS_PER_WARP"])
    per_sm = int(defines["BLOCKS_PER_SM"])
    if warps < 1 or per_sm < 1 or rows < 1 or 128 % rows:
        raise ValueError(
            "argument 'defines': ROWS_PER_WARP must divide 128 and WARPS, BLOCKS_PER_SM be "
            f"positive, got {warps}, {rows}, {per_sm}"
        )

    def shape(B: int) -> Shape:
        tiles = B * 8 * (128 // rows)
        cap = (sms or _sm_count()) * per_sm
        return ((min(-(-tiles // warps), cap),), (32 * warps,), 0)

    return shape


_PERSISTENT = {"WARPS": 4, "ROWS_PER_WARP": 8, "BLOCKS_PER_SM": 4, "LOAD_HINT": 1, "STORE_HINT": 1}
_persistent = variant(
    "persistent",
    "gdn_decode_persistent.cu",
    "gdn_decode_persistent",
    persistent_shape(_PERSISTENT),
    parent="streaming",
    description="a fixed grid of resident warps walks row tiles, issuing the next tile's "
    "loads before it reduces and stores the current one",
    defines=_PERSISTENT,
    inplace_ok=True,
)
_persistent.meta["shape_for"] = persistent_shape


def kernel_variant(name: str) -> Impl:
    """The kit variant ``name`` (``rowsplit``, ``ordered``, ...), as registered above."""
    return registered(name)
