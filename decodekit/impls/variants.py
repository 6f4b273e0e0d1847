"""The kit's kernels: one :class:`~decodekit.impls.kernel_spec.KernelSpec` per
``kernels/gdn_decode_<technique>.cu``, and the variants built from them.

Every kernel has the same C signature (see ``kernels/README.md``)::

    extern "C" __global__ void <entry>(const bf16* q, const bf16* k, const bf16* v,
        const float* state /* may be null: zeros */, const float* A_log, const bf16* a,
        const float* dt_bias, const bf16* b, float scale /* resolved */, bf16* output,
        float* new_state, int batch_size)

A spec is declared once, here: file, entry, default defines, launch-shape function
``defines -> (batch_size -> (grid, block, shared_mem_bytes))``, skip rules (what the file's
static_asserts reject) and its tuning sweeps (the ``quick`` and ``full`` search spaces of
:mod:`decodekit.impls.tuning_space`). Adding a kernel = one ``.cu`` file + one ``declare(...)``
below; checks, benches, NCU runs (``best``'s kernel filter included), the search space and
reports pick it up through :mod:`decodekit.impls.registry`. A variant is a spec with other default
defines (``streaming`` is ``rowsplit``'s file with evict-first loads): one ``variant(...)``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

# the baselines register first, as decodekit.impls.registry loads them: listings put them first
from decodekit.impls import baselines  # noqa: F401
from decodekit.impls.impl import Impl, registered
from decodekit.impls.kernel_spec import (  # noqa: F401  (part of this API)
    Axis,
    KernelSpec,
    Shape,
    Skip,
    Sweep,
    declare,
    fixed,
    only,
    variant,
)
from decodekit.problem.spec import HEAD_SIZE, NUM_V_HEADS

WARP = 32  # threads per warp

# The sweeps' curated value lists (each a coupled axis where it is not a product).
SHAPES = ((1, 4), (2, 4), (4, 4), (4, 8), (8, 8), (2, 16))  # (WARPS, ROWS_PER_WARP)
HINTS = ((0, 0), (1, 0), (3, 0), (1, 1), (3, 3))  # (LOAD_HINT, STORE_HINT)
# Fast-intrinsic gate math (FAST_GATES=1, a knob of the kernels' shared header) shortens the
# chain that runs after the gate inputs arrive; it matters at small B, and which shapes it
# helps depends on how the compiler then schedules them, so it is swept rather than set.
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
# (WARPS, ROWS_PER_WARP, BLOCKS_PER_SM, STORE_HINT) of the persistent kernel; each fits its
# register cap (65536 / (32 * WARPS * BLOCKS_PER_SM)) without spills.
PERSISTENT = ((4, 8, 4, 1), (4, 8, 4, 0), (4, 4, 4, 1), (8, 4, 2, 1))

WR = ("WARPS", "ROWS_PER_WARP")
WRL = (*WR, "LANES_PER_ROW")
HINT_KEYS = ("LOAD_HINT", "STORE_HINT")


def _shape(values, keys=WR) -> Axis:
    return Axis("shape", values, keys)


# Skip rules: what the files' static_asserts reject, so a sweep's product never builds it.
DIVIDES_HEAD = Skip(
    "WARPS * ROWS_PER_WARP must divide the head's rows",
    lambda d: HEAD_SIZE % (d["WARPS"] * d["ROWS_PER_WARP"]) != 0,
)
WHOLE_STEPS = Skip(  # a load instruction covers 32 / LANES_PER_ROW rows
    "ROWS_PER_WARP must be a multiple of 32 / LANES_PER_ROW",
    lambda d: d["ROWS_PER_WARP"] % (WARP // d["LANES_PER_ROW"]) != 0,
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
    if warps < 1 or rows < 1 or HEAD_SIZE % (warps * rows):
        raise ValueError(
            f"argument 'defines': WARPS * ROWS_PER_WARP must divide {HEAD_SIZE}, "
            f"got {warps} * {rows}"
        )
    split = HEAD_SIZE // (warps * rows)
    return lambda B: ((B * NUM_V_HEADS * split,), (WARP * warps,), 0)


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
    if warps < 1 or per_sm < 1 or rows < 1 or HEAD_SIZE % rows:
        raise ValueError(
            f"argument 'defines': ROWS_PER_WARP must divide {HEAD_SIZE} and WARPS, "
            f"BLOCKS_PER_SM be positive, got {warps}, {rows}, {per_sm}"
        )

    def shape(B: int) -> Shape:
        tiles = B * NUM_V_HEADS * (HEAD_SIZE // rows)
        cap = (sms or _sm_count()) * per_sm
        return ((min(-(-tiles // warps), cap),), (WARP * warps,), 0)

    return shape


BASELINE_SPEC = declare(
    KernelSpec(
        "baseline",
        "gdn_decode_baseline.cu",
        "gdn_decode_baseline",
        lambda defines: lambda B: ((B * NUM_V_HEADS,), (HEAD_SIZE,), 0),
        "one block per (batch, value head), one thread per state row, one-pass math",
    )
)

ROWSPLIT_SPEC = declare(
    KernelSpec(
        "rowsplit",
        "gdn_decode_rowsplit.cu",
        "gdn_decode_rowsplit",
        split_shape,
        "V rows of a head split over blocks; a warp holds 4 rows in flight with 16-byte "
        "loads and butterfly reductions",
        parent="baseline",
        defaults={"WARPS": 4, "ROWS_PER_WARP": 4},
        skips=(DIVIDES_HEAD,),
        sweeps=(
            Sweep((_shape(SHAPES),)),
            Sweep(
                (_shape(SHAPES), Axis("hints", HINTS, HINT_KEYS)),
                variant="streaming",
                quick=(
                    only(WR, SHAPES[1:5], "quick: the four middle shapes"),
                    only(HINT_KEYS, HINTS[1:3], "quick: evict-first loads, plain stores"),
                ),
            ),
            Sweep((_shape(FAST_SHAPES), fixed(FAST_GATES=1))),
            Sweep(
                (_shape(((4, 4), (4, 8))), fixed(LOAD_HINT=3, STORE_HINT=0, FAST_GATES=1)),
                variant="streaming",
            ),
        ),
    )
)
variant(
    "streaming",
    ROWSPLIT_SPEC,
    {"LOAD_HINT": 1, "STORE_HINT": 0},
    parent="rowsplit",
    description="rowsplit with evict-first (ld.global.cs) state loads, so dirty new_state "
    "lines stay in L2",
)

SUBWARP_SPEC = declare(
    KernelSpec(
        "subwarp",
        "gdn_decode_subwarp.cu",
        "gdn_decode_subwarp",
        split_shape,
        "streaming with 8 lanes per row: 4 rows per load instruction, 3-step reductions",
        parent="streaming",
        defaults=dict(WARPS=4, ROWS_PER_WARP=8, LANES_PER_ROW=8, LOAD_HINT=1, STORE_HINT=0),
        skips=(DIVIDES_HEAD, WHOLE_STEPS),
        sweeps=(
            Sweep(
                (
                    Axis("LANES_PER_ROW", (4, 8, 16)),
                    _shape(((2, 8), (4, 8), (8, 4))),
                    Axis("hints", HINTS, HINT_KEYS),
                ),
                quick=(
                    only(("LANES_PER_ROW",), (8, 16), "quick: 8 and 16 lanes per row"),
                    only(HINT_KEYS, ((1, 0),), "quick: the default hints"),
                ),
            ),
            Sweep((_shape(FAST_SUBWARP, WRL), fixed(FAST_GATES=1))),
            Sweep(
                (_shape(TREE_SUBWARP, WRL), fixed(TREE_SUM=1), Axis("FAST_GATES", (1, 0))),
                quick=(
                    only(WRL, QUICK_TREE, "quick: one tree shape per lane count"),
                    only(("FAST_GATES",), (1,), "quick: fast gates only"),
                ),
            ),
        ),
    )
)

ORDERED_SPEC = declare(
    KernelSpec(
        "ordered",
        "gdn_decode_ordered.cu",
        "gdn_decode_ordered",
        split_shape,
        "subwarp with every small input loaded first in the source (volatile asm) and less "
        "work after the state arrives (base-2 gate math, g * s formed early)",
        parent="subwarp",
        defaults=dict(WARPS=2, ROWS_PER_WARP=4, LANES_PER_ROW=16, LOAD_HINT=1, STORE_HINT=0),
        skips=(DIVIDES_HEAD, WHOLE_STEPS),
        sweeps=(
            Sweep(
                (_shape(ORDERED, WRL), Axis("FENCE", (None, 1)), fixed(LOAD_HINT=1)),
                quick=(only((*WRL, "FENCE"), QUICK_ORDERED, "quick: the H100's winners"),),
            ),
        ),
    )
)

BULK_SPEC = declare(
    KernelSpec(
        "bulk",
        "gdn_decode_bulk.cu",
        "gdn_decode_bulk",
        split_shape,
        "a warp's 4 KiB of state arrives by one cp.async.bulk (TMA engine) into shared "
        "memory, completing on an mbarrier",
        parent="streaming",
        defaults={"WARPS": 4, "ROWS_PER_WARP": 8, "STORE_HINT": 0, "BULK_STORE": 0},
        skips=(
            DIVIDES_HEAD,
            Skip(
                "ROWS_PER_WARP must be < 8 or a multiple of 8",
                lambda d: d["ROWS_PER_WARP"] >= 8 and d["ROWS_PER_WARP"] % 8 != 0,
            ),
            Skip(
                "a block's rows must fit 48 KiB of static shared memory",
                lambda d: d["WARPS"] * d["ROWS_PER_WARP"] > 64,
            ),
        ),  # fmt: skip
        sweeps=(
            Sweep(
                (
                    _shape(((1, 4), (2, 8), (4, 8), (2, 16))),
                    fixed(STORE_HINT=0),
                    Axis("BULK_STORE", (0, 1)),
                ),
            ),
        ),
    )
)

PERSISTENT_SPEC = declare(
    KernelSpec(
        "persistent",
        "gdn_decode_persistent.cu",
        "gdn_decode_persistent",
        persistent_shape,
        "a fixed grid of resident warps walks row tiles, issuing the next tile's loads "
        "before it reduces and stores the current one",
        parent="streaming",
        defaults=dict(WARPS=4, ROWS_PER_WARP=8, BLOCKS_PER_SM=4, LOAD_HINT=1, STORE_HINT=1),
        skips=(
            Skip(
                "ROWS_PER_WARP must divide the head's rows",
                lambda d: HEAD_SIZE % d["ROWS_PER_WARP"] != 0,
            ),
            Skip(
                "BLOCKS_PER_SM * WARPS must be at most 64 (an SM's warps)",
                lambda d: d["BLOCKS_PER_SM"] * d["WARPS"] > 64,
            ),
        ),  # fmt: skip
        sweeps=(
            Sweep(
                (
                    Axis("build", PERSISTENT, (*WR, "BLOCKS_PER_SM", "STORE_HINT")),
                    fixed(LOAD_HINT=1),
                ),
            ),
        ),
    )
)


def kernel_variant(name: str) -> Impl:
    """The kit variant ``name`` (``rowsplit``, ``ordered``, ...), as registered above."""
    return registered(name)
