"""The family kernel tuned per definition: its search space, its tables, and ``best``.

The space (:func:`search_space`) is launch shapes (``WARPS``, ``ROWS_PER_WARP``,
``LANES_PER_ROW``) of ``kernels/gdn_decode_family.cu`` that build without spills for every
serving member on sm_90a (``tests/test_family_tune.py``), each with the state cache hints
``LOAD_HINT`` 1 or 3 and ``STORE_HINT`` 0 or 1, the reduce-scatter row sums, the pipelined
state (``PREFETCH`` 1 with ``ITEMS`` work items a block) and, at T > 1, the token-loop
knobs, the one-pass tokens (``SOLVE``), their products and Gram terms on the tensor cores
(``MMA``, ``GRAM_MMA``) and their rows through block-wide tiles (``BLOCK_TILES``),
at T = 1 the plain row-layout builds with FMA-chained row sums (``CHAIN_SUMS``), the state
loads with a 256-byte L2 prefetch size (``LOAD_HINT`` 4 and 5) and a streamed head's token
done once (``HEAD_TOKENS``) and full-occupancy builds at 32
registers (``ROW_STREAM``: an item's rows one at a time from its tile) and an item's rows
through block-wide tiles (``BLOCK_TILES``, FlashInfer's state path), and at every T the
pipelined state through per-lane copies (``PREFETCH`` 2).
A table is one GPU's and one member's,
``data/tuning/family/<gpu-slug>/<member name>.json`` (written by
:func:`decodekit.measure.family_tune.tune_member`): tuned batch size -> ``{"defines"}``, with
the environment and the run id of its candidate records. :func:`best` runs one: a call of
batch size ``B`` takes the entry of the nearest tuned size at or below ``B``, else the
smallest; a GPU without a table runs the kernel's defaults and says so (``note``).

>>> len(search_space("full")), len(search_space("quick"))
(162, 9)
>>> table = {4: {"defines": {"WARPS": 2}}, 16: {"defines": {"WARPS": 8}}}
>>> [entry_for(table, B)["defines"]["WARPS"] for B in (1, 8, 16, 300)]
[2, 2, 8, 8]
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from decodekit.base import paths
from decodekit.build.compile import declared_defines
from decodekit.build.family_launch import ENTRY, SOURCE, FamilyLauncher
from decodekit.impls.tuning_space import json_list
from decodekit.impls.tuning_tables import _label, _table_gpu, this_gpu
from decodekit.problem.family import Member
from decodekit.records.env import gpu_slug

KNOBS = (
    "WARPS",
    "ROWS_PER_WARP",
    "LANES_PER_ROW",
    "LOAD_HINT",
    "STORE_HINT",
    "REDUCE",
    "GATES_ONCE",
    "LAZY_DECAY",
    "ITEMS",
    "PREFETCH",
    "REG_PREFETCH",
    "UNROLL_TOKENS",
    "CHAIN_SUMS",
    "MIN_BLOCKS",
    "TOKENS_ONCE",
    "CONSECUTIVE",
    "SOLVE",
    "MMA",
    "GRAM_MMA",
    "SCALARS_FIRST",
    "HEAD_TOKENS",
    "ROW_STREAM",
    "BLOCK_TILES",
    "TILE_BUFFERS",
)
# (WARPS, ROWS_PER_WARP, LANES_PER_ROW): 128 / (WARPS * ROWS_PER_WARP) blocks share a head,
# from 2 (few, large blocks for large B) to 32 (many small ones while B is short of SMs);
# every one under 128 registers for every serving member (T=4 the largest).
SHAPES = (
    (4, 8, 16),  # the kernel's default
    (8, 8, 16),
    (8, 4, 16),
    (4, 4, 16),  # the contest's ordered variant at B <= 16 (data/tuning/h200.json)
    (2, 8, 16),
    (2, 4, 16),
    (4, 8, 8),  # the contest's subwarp shape
    (2, 4, 8),
    (4, 4, 32),
    (4, 1, 32),
)
HINTS = ((1, 0), (1, 1), (3, 0), (3, 1))  # (LOAD_HINT, STORE_HINT), gdn.cuh's policies
# The reduce-scatter row sums (REDUCE 1) on every shape where a lane holds more than one row
# (ROWS_PER_WARP * LANES_PER_ROW / 32 > 1; with one, it is the butterfly), with these hints.
REDUCE_HINTS = ((1, 0), (3, 0))
# T > 1 only: every REDUCE 1 candidate again with the gates computed once per warp for all
# tokens (GATES_ONCE 1), with and without the decay kept as one running factor (LAZY_DECAY).
MULTI_TOKEN = ({"GATES_ONCE": 1, "LAZY_DECAY": 0}, {"GATES_ONCE": 1, "LAZY_DECAY": 1})
# T > 1 only: the leanest token loop (GATES_ONCE, LAZY_DECAY, the loop unrolled, the row sums
# as FMA chains) on these shapes, with ptxas's registers and with 64 a thread (MIN_BLOCKS =
# 32 / WARPS blocks an SM: 32 warps an SM, one wave of B = 32 at T = 4).
LEAN_TOKENS = {"REDUCE": 1, "GATES_ONCE": 1, "LAZY_DECAY": 1, "UNROLL_TOKENS": 1, "CHAIN_SUMS": 1}
LEAN_SHAPES = ((2, 8, 16), (4, 8, 16), (4, 4, 16))
# T > 1 only: the lean loop with each token's k . q, norms and gates computed once a block
# (TOKENS_ONCE, in place of GATES_ONCE), on (WARPS, ROWS_PER_WARP, LANES_PER_ROW, MIN_BLOCKS)
# that build without spills (2 x 8 at 64 registers spills).
SHARED_TOKENS = {"REDUCE": 1, "TOKENS_ONCE": 1, "LAZY_DECAY": 1, "UNROLL_TOKENS": 1,
                 "CHAIN_SUMS": 1}  # fmt: skip
SHARED_SHAPES = ((2, 8, 16, 0), (4, 8, 16, 0), (4, 8, 16, 8), (4, 4, 16, 0), (4, 4, 16, 8),
                 (8, 4, 16, 0))  # fmt: skip
# T > 1 only: the T tokens in one pass over the state (SOLVE: the row sums of the initial state,
# the deltas by forward substitution over the tokens' Gram terms, one update;
# gdn_family_solve.cuh) with FMA-chained row sums, on (WARPS, ROWS_PER_WARP, LANES_PER_ROW)
# that build without spills at ptxas's registers (64 .. 128; 168 at 16 rows a warp, which
# spread a warp's fixed work, ~800 instructions of Gram terms, gates and token loads, over
# twice the rows of 8: they won B >= 32 of the T = 4 pool on the H200, tuning 36f7ff7f).
SOLVE_TOKENS = {"REDUCE": 1, "SOLVE": 1, "CHAIN_SUMS": 1}
# T = 2 .. 4 only: each SOLVE_SHAPES build again with GRAM_MMA 1, the tokens' Gram terms and
# norms as one 8 x 8 Gram matrix on the tensor cores (8 bf16 MMAs a warp), not summed by a
# reduce-scatter over the warp: 9-13% fewer instructions a warp at T = 4.
GRAM_TOKENS = {**SOLVE_TOKENS, "GRAM_MMA": 1}
# ... and at 16 rows a warp in 128 registers (WARPS, ROWS_PER_WARP, LANES_PER_ROW, MIN_BLOCKS):
# without the reduce-scatter's live terms it builds without spills there (SOLVE alone spills
# 76-86 bytes), so 16 warps an SM, where 168 registers allow 12: one wave at B = 32. Not yet
# timed (tuning f7918546 timed GRAM_MMA at ptxas's 168 registers only).
GRAM_FULL_SHAPES = ((1, 16, 16, 16),)
SOLVE_SHAPES = ((4, 2, 32), (8, 2, 32), (4, 1, 32), (4, 4, 32), (4, 4, 16), (2, 4, 16),
                (4, 8, 16), (2, 8, 16), (1, 16, 16), (2, 16, 16), (4, 16, 16))  # fmt: skip
# T > 1 only: SOLVE's row sums and update as tf32 MMAs (MMA 1, gdn_family_mma.cuh: the state
# split hi + lo) on the fragment layout, 4 lanes a row and 16 rows a warp, 1, 2 and 4 warps
# (167 registers: 64 state values a lane; 8 warps and the bulk-copy tiles were 15-25%
# slower in the first H200 probe, data/experiments/2026-12-02_new-axes-probe/).
MMA_TOKENS = {"REDUCE": 1, "SOLVE": 1, "MMA": 1}
MMA_SHAPES = ((1, 16, 4), (2, 16, 4), (4, 16, 4))
# T > 1 only: MMA 2, the item's k and q and the tokens' scalars once a block in shared memory
# (warp 0's) in place of every lane's registers: (WARPS, ROWS_PER_WARP, LANES_PER_ROW,
# MIN_BLOCKS), at 128 registers without spills (MIN_BLOCKS 16 / WARPS: 16 warps an SM, where
# MMA 1's 168 allow 12); and through the block-wide tiles (BLOCK_TILES with MMA 2,
# tiles_mma_item: two stages of 16 rows a warp), (WARPS, ROWS_PER_WARP, LANES_PER_ROW,
# BLOCK_TILES). None won a size on the H200 (tuning fa3915ad: 1.03-1.08 of the winner at
# B >= 32, through the tiles 1.07-1.29; data/experiments/2026-12-03_mma-shared/).
MMA2_TOKENS = {"REDUCE": 1, "SOLVE": 1, "MMA": 2}
MMA2_SHAPES = ((1, 16, 4, 16), (2, 16, 4, 8), (4, 16, 4, 4))
MMA_TILE_SHAPES = ((1, 32, 4, 16), (2, 32, 4, 32))
# T > 1 only: SOLVE through block-wide tiles (BLOCK_TILES R with SOLVE_TOKENS: an item's rows
# in stages of R rows through shared tiles, a warp R / WARPS contiguous rows a stage, the
# tokens' scalars once a block in shared memory; gdn_family_solve.cuh's tiles_solve_item):
# (WARPS, ROWS_PER_WARP, LANES_PER_ROW, BLOCK_TILES, TILE_BUFFERS), one item a block, each
# building without spills at 96 .. 128 registers on every verify member. Two tiles (one stage
# ahead) won no size on the H200 (tuning 737a3da8: 1.08 of the winner at best, its copy of the
# next stage only one stage deep while a stage computes); the shapes of 4 and 8 stages also
# with 3 and 4 tiles (2 and 3 stages ahead).
SOLVE_TILE_SHAPES = ((2, 8, 16, 8, 2), (2, 8, 16, 16, 2), (4, 8, 16, 16, 2), (4, 8, 16, 32, 2),
                     (4, 16, 16, 16, 2), (4, 32, 16, 16, 2), (8, 8, 16, 16, 2),
                     (8, 16, 16, 16, 2), (8, 16, 16, 32, 2), (4, 16, 16, 16, 3),
                     (4, 16, 16, 16, 4), (4, 32, 16, 16, 3), (4, 32, 16, 16, 4),
                     (8, 16, 16, 16, 3), (8, 16, 16, 16, 4))  # fmt: skip
# T > 1 only: SOLVE and MMA with ITEMS items a block, the next one's state through per-lane
# copies (PREFETCH 2) while this one computes, so a block's loads are all in flight at once:
# (WARPS, ROWS_PER_WARP, LANES_PER_ROW, ITEMS, MIN_BLOCKS, MMA), SOLVE at 128 registers
# (MIN_BLOCKS where ptxas would take 168), MMA at ptxas's 186 (none won a size on the H200:
# the best of them 6-24% behind the winner at B >= 32, tuning 9c3aaf0e).
PIPELINED_SOLVE = ((2, 8, 16, 2, 8, 0), (4, 8, 16, 2, 4, 0), (4, 4, 16, 2, 0, 0),
                   (2, 8, 16, 4, 8, 0), (2, 16, 4, 2, 0, 1))  # fmt: skip
# T = 1 at bf16 state only: twice the rows a lane of the fp32 shapes (a bf16 row is half the
# bytes, so the same bytes in flight need twice the rows), with the reduce-scatter and the
# default and 256-byte L2 prefetch hints; 64 .. 128 registers without spills (the bf16-state
# probe 34f5df26: 2 x 16 x 16 won B = 32, 4 x 8 x 32 won 4 and 64).
STATE16_SHAPES = ((2, 16, 16), (4, 16, 16), (1, 16, 16), (2, 16, 32), (4, 8, 32), (2, 8, 32))
STATE16_HINTS = ((1, 0), (4, 0))
# T = 1 only: every plain row-layout candidate (these knobs and no others) also with
# CHAIN_SUMS 1, a row's s . k and s . q as one FMA chain each: 4-9% fewer instructions at bf16
# state, where the row sums are a third of them; on the H200 (tunings b211dec4, 25d09fa4) 1-2%
# faster at B = 4 .. 64 of the bf16 state and fp32 qk4/v8 pools.
ROW_LAYOUT = ("WARPS", "ROWS_PER_WARP", "LANES_PER_ROW", "LOAD_HINT", "STORE_HINT", "REDUCE")
# T = 1 only: the large-batch shapes with the reduce-scatter and a 256-byte L2 prefetch size
# on the state loads (LOAD_HINT 4: .cs.L2::256B, 5: .L1::no_allocate.L2::256B).
WIDE_SHAPES = ((2, 8, 16), (8, 8, 16))
WIDE_HINTS = ((4, 0), (5, 0))
QUICK_SHAPES = ((4, 8, 16), (8, 8, 16), (4, 4, 16), (2, 4, 16))  # 2 .. 16 blocks a head
# The pipelined state (PREFETCH 1: the next work item's rows in flight through a shared tile
# while this one computes, gdn_family.cuh) with ITEMS work items a block, on shapes whose two
# tiles a warp fit 48 KiB at fp32, with the reduce-scatter and the default hints.
PIPELINE_SHAPES = ((4, 8, 16), (2, 8, 16), (4, 4, 16), (4, 4, 32))
PIPELINE_ITEMS = (2, 4, 8)
# Pipelined items as the next row blocks of one head (CONSECUTIVE 1): (WARPS, ROWS_PER_WARP,
# LANES_PER_ROW, ITEMS), ITEMS = SPLIT: one block streams a head's whole state in tiles of
# 8, 16 and 32 rows (FlashInfer's pretranspose kernel: 8-row tiles, one head a block).
STREAM_SHAPES = ((4, 2, 32, 16), (4, 4, 32, 8), (4, 8, 16, 4))
# T = 1 only: the streamed shapes (a head a block) with the head's token done once, by the
# block's first item (HEAD_TOKENS 1: FlashInfer's pretranspose kernel), through the bulk
# (PREFETCH 1) and the per-lane copies (2).
HEAD_SHAPES = tuple((*shape, pf) for shape in STREAM_SHAPES for pf in (1, 2))
# T = 1 only: every warp slot of the SM in use (64: 32 registers a thread, MIN_BLOCKS =
# 2048 / (32 WARPS)), FlashInfer's pretranspose kernel's budget: (WARPS, ROWS_PER_WARP,
# LANES_PER_ROW, ROW_STREAM), an item's rows one at a time from its tile (ROW_STREAM 1,
# PREFETCH 2, one item a block: 4 x 4 x 32 is FlashInfer's 16 rows a block), or 2 rows a warp
# in registers (ROW_STREAM 0, no tiles); each builds at 32 registers without spills.
FULL_SHAPES = ((4, 4, 32, 1), (8, 4, 32, 1), (4, 2, 32, 1), (8, 2, 32, 1), (4, 2, 32, 0),
               (8, 2, 32, 0))  # fmt: skip
# T = 1 only: an item's rows through two block-wide shared tiles of BLOCK_TILES rows in turn
# (gdn_family_tiles.cuh: FlashInfer's pretranspose state path, whose shape is 4 x 4 x 32
# with 8-row tiles), one item a block: (WARPS, ROWS_PER_WARP, BLOCK_TILES, MIN_BLOCKS), 32
# lanes a row; MIN_BLOCKS 2048 / (32 WARPS) is FlashInfer's 32 registers and every warp slot.
TILE_SHAPES = ((4, 4, 8, 0), (4, 4, 8, 16), (4, 4, 16, 0), (4, 4, 4, 0), (8, 2, 8, 0),
               (8, 2, 16, 0), (4, 8, 8, 0), (4, 8, 16, 0), (2, 8, 8, 0), (4, 2, 8, 0))  # fmt: skip
# Every T: the pipelined state through per-lane cp.async (PREFETCH 2, FlashInfer's state
# path): (WARPS, ROWS_PER_WARP, LANES_PER_ROW, ITEMS, CONSECUTIVE), the streamed shapes (a
# head a block) and two strided ones.
ASYNC_SHAPES = (*((*shape, 1) for shape in STREAM_SHAPES), (4, 8, 16, 2, 0), (4, 4, 32, 4, 0))


def kernel_defaults() -> dict[str, int]:
    """The tuning knobs as the kernel file sets them when no define does: the incumbent of
    every sweep, and what ``best`` runs on a GPU without a table."""
    knobs = declared_defines(SOURCE)
    return {k: knobs[k] for k in KNOBS}


def full(defines: dict) -> dict[str, int]:
    """``defines`` with every knob filled from :func:`kernel_defaults`: one spelling per build."""
    return {**kernel_defaults(), **defines}


def label(defines: dict) -> str:
    """A candidate's name in records and tables: ``family[KNOB=v,...]``, every knob named."""
    return f"family[{_label(full(defines))}]"


def check_defines(defines, where: str) -> dict[str, int]:
    """``defines`` if it is ``{knob: int}`` of :data:`KNOBS`; else a one-line error naming
    ``where`` (an argument and entry, or a file and batch size)."""
    ok = isinstance(defines, dict) and all(
        k in KNOBS and isinstance(v, int) and not isinstance(v, bool) for k, v in defines.items()
    )
    if not ok:
        raise ValueError(f"{where}: expected {{knob: int}} of {', '.join(KNOBS)}, got {defines!r}")
    return dict(defines)


def load_candidates(path: str | Path) -> list[dict]:
    """The candidates of a JSON file for ``tune --definition NAME --configs FILE``: the
    contest's format, ``[{"variant": "family", "defines": {knob: int}}, ...]`` (``variant``
    may be left out), each entry's defines knobs of the family kernel (:data:`KNOBS`). Errors
    are one line naming the argument, the file and the entry.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:  # leaves nothing behind
    ...     f = Path(d) / "c.json"
    ...     _ = f.write_text(json.dumps([{"defines": {"WARPS": 2, "SOLVE": 1}}]))
    ...     load_candidates(f)
    [{'WARPS': 2, 'SOLVE': 1}]
    """
    path = Path(path)
    out = []
    for i, e in enumerate(json_list(path, "--configs")):
        where = f"argument '--configs': entry {i} of {path}"
        if not isinstance(e, dict) or e.get("variant", "family") != "family" or "defines" not in e:
            raise ValueError(f'{where}: expected {{"variant": "family", "defines": {{knob: '
                             f'int}}}}, got {e!r}')  # fmt: skip
        out.append(check_defines(e["defines"], where))
    return out


def search_space(name: str = "full", member: Member | None = None,
                 capability: str | None = None) -> list[dict]:  # fmt: skip
    """Candidate defines: ``full`` (:data:`SHAPES` x :data:`HINTS`, 40; the shapes that
    hold several rows a lane with ``REDUCE`` 1 x :data:`REDUCE_HINTS`, 16; the pipelined
    :data:`PIPELINE_SHAPES` x :data:`PIPELINE_ITEMS`, 12, and :data:`STREAM_SHAPES`, 3; for
    a member of T > 1 each ``REDUCE`` 1 one again with :data:`MULTI_TOKEN`, 2 x 31 more,
    :data:`LEAN_TOKENS` on :data:`LEAN_SHAPES` with and without ``MIN_BLOCKS``, 6, and
    :data:`SHARED_TOKENS` on :data:`SHARED_SHAPES`, 6, and :data:`SOLVE_TOKENS` on
    :data:`SOLVE_SHAPES`, 11 (at T <= 4 with :data:`GRAM_TOKENS` too, 11, and on
    :data:`GRAM_FULL_SHAPES`, 1), :data:`MMA_TOKENS` on :data:`MMA_SHAPES`, 3,
    :data:`MMA2_TOKENS` on :data:`MMA2_SHAPES`, 3, and through the tiles on
    :data:`MMA_TILE_SHAPES`, 2, and both
    pipelined, :data:`PIPELINED_SOLVE`, 5, and SOLVE through the block-wide tiles,
    :data:`SOLVE_TILE_SHAPES`, 15; at T = 1
    :data:`WIDE_SHAPES` x :data:`WIDE_HINTS`, 4, ``HEAD_TOKENS`` on :data:`HEAD_SHAPES`,
    6, the full-occupancy :data:`FULL_SHAPES`, 6, the block-wide tiles
    :data:`TILE_SHAPES`, 10, and at bf16 state :data:`STATE16_SHAPES` x
    :data:`STATE16_HINTS`, 12, and each of the plain ones (:data:`ROW_LAYOUT`) again
    with ``CHAIN_SUMS`` 1, 60 and at bf16 state 72; at every T the per-lane copies on
    :data:`ASYNC_SHAPES`, 5) or ``quick`` (:data:`QUICK_SHAPES` with the default hints, each
    with ``REDUCE`` 0 and 1, one pipelined shape, and with ``member`` every entry of its
    recorded tables on GPUs of compute capability ``capability``, all GPUs when None)."""
    if name not in ("full", "quick"):
        raise ValueError(f"argument 'space': expected 'full', 'quick' or a list of defines, "
                         f"got {name!r}")  # fmt: skip
    shapes, hints = (SHAPES, HINTS) if name == "full" else (QUICK_SHAPES, HINTS[:1])
    reduce_hints = REDUCE_HINTS if name == "full" else HINTS[:1]
    out = [dict(WARPS=w, ROWS_PER_WARP=r, LANES_PER_ROW=n, LOAD_HINT=lh, STORE_HINT=sh, REDUCE=0)
           for w, r, n in shapes for lh, sh in hints]  # fmt: skip
    out += [dict(WARPS=w, ROWS_PER_WARP=r, LANES_PER_ROW=n, LOAD_HINT=lh, STORE_HINT=sh, REDUCE=1)
            for w, r, n in shapes if r * n > 32 for lh, sh in reduce_hints]  # fmt: skip
    pipelined = PIPELINE_SHAPES if name == "full" else PIPELINE_SHAPES[:1]
    items = PIPELINE_ITEMS if name == "full" else (4,)
    out += [dict(WARPS=w, ROWS_PER_WARP=r, LANES_PER_ROW=n, REDUCE=int(r * n > 32), PREFETCH=1,
                 ITEMS=it) for w, r, n in pipelined for it in items]  # fmt: skip
    if name == "full":
        out += [dict(WARPS=w, ROWS_PER_WARP=r, LANES_PER_ROW=n, REDUCE=1, PREFETCH=1, ITEMS=it,
                     CONSECUTIVE=1) for w, r, n, it in STREAM_SHAPES]  # fmt: skip
    if member is not None and member.seq_len > 1:
        out += [dict(d, **extra) for d in list(out) if d["REDUCE"] for extra in MULTI_TOKEN]
        out += [dict(WARPS=w, ROWS_PER_WARP=r, LANES_PER_ROW=n, MIN_BLOCKS=mb, **LEAN_TOKENS)
                for w, r, n in LEAN_SHAPES for mb in (0, 32 // w)]  # fmt: skip
        out += [dict(WARPS=w, ROWS_PER_WARP=r, LANES_PER_ROW=n, MIN_BLOCKS=mb, **SHARED_TOKENS)
                for w, r, n, mb in SHARED_SHAPES]  # fmt: skip
        out += [dict(WARPS=w, ROWS_PER_WARP=r, LANES_PER_ROW=n, **SOLVE_TOKENS)
                for w, r, n in SOLVE_SHAPES]  # fmt: skip
        if member.seq_len <= 4:
            out += [dict(WARPS=w, ROWS_PER_WARP=r, LANES_PER_ROW=n, **GRAM_TOKENS)
                    for w, r, n in SOLVE_SHAPES]  # fmt: skip
            out += [dict(WARPS=w, ROWS_PER_WARP=r, LANES_PER_ROW=n, MIN_BLOCKS=mb, **GRAM_TOKENS)
                    for w, r, n, mb in GRAM_FULL_SHAPES]  # fmt: skip
        if name == "full":
            out += [dict(WARPS=w, ROWS_PER_WARP=r, LANES_PER_ROW=n, **MMA_TOKENS)
                    for w, r, n in MMA_SHAPES]  # fmt: skip
            out += [dict(WARPS=w, ROWS_PER_WARP=r, LANES_PER_ROW=n, MIN_BLOCKS=mb, **MMA2_TOKENS)
                    for w, r, n, mb in MMA2_SHAPES]  # fmt: skip
            out += [dict(WARPS=w, ROWS_PER_WARP=r, LANES_PER_ROW=n, BLOCK_TILES=t, **MMA2_TOKENS)
                    for w, r, n, t in MMA_TILE_SHAPES]  # fmt: skip
            out += [dict(WARPS=w, ROWS_PER_WARP=r, LANES_PER_ROW=n, PREFETCH=2, ITEMS=it,
                         MIN_BLOCKS=mb, **(MMA_TOKENS if mma else SOLVE_TOKENS))
                    for w, r, n, it, mb, mma in PIPELINED_SOLVE]  # fmt: skip
            out += [dict(WARPS=w, ROWS_PER_WARP=r, LANES_PER_ROW=n, BLOCK_TILES=t,
                         TILE_BUFFERS=nb, **SOLVE_TOKENS)
                    for w, r, n, t, nb in SOLVE_TILE_SHAPES]  # fmt: skip
    elif name == "full":
        out += [dict(WARPS=w, ROWS_PER_WARP=r, LANES_PER_ROW=n, LOAD_HINT=lh, STORE_HINT=sh,
                     REDUCE=1) for w, r, n in WIDE_SHAPES for lh, sh in WIDE_HINTS]  # fmt: skip
        out += [dict(WARPS=w, ROWS_PER_WARP=r, LANES_PER_ROW=n, REDUCE=1, PREFETCH=pf, ITEMS=it,
                     CONSECUTIVE=1, HEAD_TOKENS=1) for w, r, n, it, pf in HEAD_SHAPES]  # fmt: skip
        out += [dict(WARPS=w, ROWS_PER_WARP=r, LANES_PER_ROW=n, REDUCE=0, PREFETCH=2 * rs,
                     MIN_BLOCKS=2048 // (32 * w), ROW_STREAM=rs)
                for w, r, n, rs in FULL_SHAPES]  # fmt: skip
        out += [dict(WARPS=w, ROWS_PER_WARP=r, LANES_PER_ROW=32, REDUCE=0, BLOCK_TILES=t,
                     MIN_BLOCKS=mb) for w, r, t, mb in TILE_SHAPES]  # fmt: skip
        if member is not None and member.state_dtype == "bfloat16":
            out += [dict(WARPS=w, ROWS_PER_WARP=r, LANES_PER_ROW=n, LOAD_HINT=lh, STORE_HINT=sh,
                         REDUCE=1) for w, r, n in STATE16_SHAPES for lh, sh in STATE16_HINTS]  # fmt: skip
        # each plain row-layout build once more with the row sums as FMA chains
        out += [dict(d, CHAIN_SUMS=1) for d in list(out) if set(d) <= set(ROW_LAYOUT)]
    if name == "full":
        out += [dict(WARPS=w, ROWS_PER_WARP=r, LANES_PER_ROW=n, REDUCE=int(r * n > 32), PREFETCH=2,
                     ITEMS=it, CONSECUTIVE=c) for w, r, n, it, c in ASYNC_SHAPES]  # fmt: skip
    if name == "quick" and member is not None:
        out += recorded_choices(member, capability)
    return unique(out)


def unique(space: list[dict]) -> list[dict]:
    """Each build once (:func:`full` spellings compared), in first-seen order."""
    seen: dict[tuple, dict] = {}
    for d in space:
        seen.setdefault(tuple(sorted(full(d).items())), full(d))
    return list(seen.values())


def entry_for(table: dict, batch_size: int) -> dict:
    """The entry of the nearest tuned size at or below ``batch_size``, else the smallest."""
    sizes = sorted(int(b) for b in table)
    at = max((b for b in sizes if b <= batch_size), default=sizes[0])
    return table[at] if at in table else table[str(at)]


def family_dir() -> Path:
    """Where ``tune --definition`` writes: ``<data dir>/tuning/family`` (read at each call)."""
    return paths.data_dir() / "tuning" / "family"


def _dirs(directory) -> list[Path]:
    if directory is not None:
        return [Path(directory)]
    return [d / "family" for d in paths.tuning_dirs()]  # the data dir's, then the shipped


def table_path(member: Member, gpu: str, directory: str | Path | None = None) -> Path:
    """``<directory>/<gpu-slug>/<member name>.json`` (default: :func:`family_dir`)."""
    return Path(directory or family_dir()) / gpu_slug(gpu) / f"{member.name}.json"


def own_table(member: Member, gpu: str, directory=None) -> Path | None:
    """``gpu``'s table of ``member``: the first found in the data dir, then the shipped ones."""
    return next((p for d in _dirs(directory) if (p := table_path(member, gpu, d)).is_file()),
                None)  # fmt: skip


def check_table(entries, where: str) -> dict[int, dict]:
    """``{batch size: entry}`` with int keys, each entry's ``defines`` checked."""
    if not isinstance(entries, dict) or not entries:
        raise ValueError(f"argument 'table': {where}: expected a non-empty table, got {entries!r}")
    out = {}
    for b, e in entries.items():
        if not str(b).isdigit() or int(b) < 1 or not isinstance(e, dict):
            raise ValueError(f"argument 'table': {where}: expected batch size -> "
                             f"{{\"defines\": ...}}, got {b!r}: {e!r}")  # fmt: skip
        check_defines(e.get("defines", {}), f"argument 'table': {where} B={b}")
        out[int(b)] = e
    return out


def read_table(path: str | Path, member: Member | None = None) -> dict[int, dict]:
    """The table of a tuning file (of ``member``'s, when given); errors name the file."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"argument 'table': cannot read {path} as JSON ({e})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"argument 'table': {path} holds no tuning table")
    if member is not None and doc.get("definition") not in (None, member.name):
        raise ValueError(f"argument 'table': {path} is the table of {doc['definition']}, "
                         f"not of {member.name}")  # fmt: skip
    return check_table(doc.get("table"), str(path))


def recorded_choices(member: Member, capability: str | None = None, directory=None) -> list:
    """The defines of every recorded table of ``member`` on GPUs of compute capability
    ``capability`` (all when None); a table that no longer reads is left out, with a
    warning that names it."""
    out = []
    for p in (f for d in _dirs(directory) for f in sorted(d.glob(f"*/{member.name}.json"))):
        gpu, env = _table_gpu(p)
        if gpu is None or (capability and str(env.get("compute_capability")) != capability):
            continue
        try:
            out += [e.get("defines", {}) for e in read_table(p, member).values()]
        except ValueError as e:
            warnings.warn(f"recorded_choices leaves out {p}: {e}", stacklevel=2)
    return out


def untuned_note(member: Member, gpu: dict | None = None, directory=None) -> str | None:
    """``untuned on <gpu>: ...`` when the GPU (default: the current one) has no table of
    ``member``, naming what ``best`` runs and the command that tunes it; else None."""
    name = (gpu or _here())["name"]
    if own_table(member, name, directory):
        return None
    return (f"untuned on {name}: best for {member.name} runs the kernel's defaults "
            f"[{_label(kernel_defaults())}]; tune it: decodekit tune --definition "
            f"{member.name} --quick")  # fmt: skip


def _here() -> dict:
    return this_gpu() if torch.cuda.is_available() else {"name": "cpu", "capability": None}


class Best:
    """``best`` of one member: ``kernels/gdn_decode_family.cu`` with, per batch size, the
    defines of a table (:func:`entry_for`), in the family's calling convention
    ``run(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state, state_indices,
    intermediate_states)``.
    A launcher is built on the first call of a batch size (one per distinct defines, by
    ``make(member, defines)``); later calls of that size cost one dict lookup first.

    ``origin`` says where the table came from; ``tuning`` the same for records
    (``tuning_table``, ``tuned_on``, ``tuned``: tuned on the GPU at hand); ``note`` why it is
    not this GPU's own table (None when it is).

    >>> run = Best(Member(), {1: {"defines": {"WARPS": 2}}}, origin="doc", make=lambda m, d: d)
    >>> run.defines_for(64)["WARPS"], run.resolve(64)["ROWS_PER_WARP"]
    (2, 8)
    """

    source, entry = SOURCE, ENTRY  # what records digest; the kernel a profile filters on

    def __init__(self, member: Member, table: dict, *, origin: str, tuning: dict | None = None,
                 note: str | None = None,
                 make: Callable[[Member, dict], Callable] | None = None):  # fmt: skip
        self.member, self.origin, self.note = member, origin, note
        self.table = check_table(table, origin) if table else {}
        self.tuning = dict(tuning or {"tuning_table": origin, "tuned_on": None, "tuned": None})
        self._make = make or FamilyLauncher
        self._by_b: dict[int, Callable] = {}
        self._builds: dict[tuple, Callable] = {}

    def __repr__(self) -> str:
        return f"Best({self.member.name!r}, {len(self.table)} batch sizes from {self.origin})"

    def defines_for(self, batch_size: int) -> dict[str, int]:
        """The tuning defines a call of ``batch_size`` runs, every knob named."""
        return full(entry_for(self.table, batch_size).get("defines", {}) if self.table else {})

    def resolve(self, batch_size: int) -> Callable:
        """The launcher that serves ``batch_size`` (built, or shared, on first use)."""
        d = self.defines_for(batch_size)
        key = tuple(sorted(d.items()))
        if key not in self._builds:
            self._builds[key] = self._make(self.member, d)
        self._by_b[batch_size] = self._builds[key]
        return self._builds[key]

    def __call__(self, q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state,
                 state_indices=None, intermediate_states=None) -> None:  # fmt: skip
        try:
            fn = self._by_b[q.shape[0]]
        except (KeyError, AttributeError, IndexError):  # a new size, or a q the launcher names
            fn = self.resolve(q.shape[0] if isinstance(q, torch.Tensor) and q.dim() else 1)
        fn(
            q,
            k,
            v,
            state,
            A_log,
            a,
            dt_bias,
            b,
            scale,
            output,
            new_state,
            state_indices,
            intermediate_states,
        )


def best(member: Member, table: str | Path | dict | None = None, *, gpu: dict | None = None,
         directory=None, make: Callable[[Member, dict], Callable] | None = None) -> Best:  # fmt: skip
    """``member``'s :class:`Best` over ``table`` (a file, or ``{B: {"defines"}}``), by
    default this GPU's (``gpu``: :func:`decodekit.impls.tuning_tables.this_gpu`'s dict) in
    ``directory`` (default: the data dir's ``tuning/family``, then the shipped tables). A GPU
    without one runs the kernel's defaults, with a warning and ``note`` saying so."""
    here = gpu or _here()
    if isinstance(table, dict):
        return Best(member, table, origin="a table given as a dict", make=make)
    path = Path(table) if table is not None else own_table(member, here["name"], directory)
    if path is None:
        note = untuned_note(member, here, directory)
        warnings.warn(note, stacklevel=2)
        info = {"tuning_table": "kernel defaults", "tuned_on": None, "tuned": False}
        return Best(member, {}, origin="the kernel's defaults", tuning=info, note=note, make=make)
    if not path.is_file():
        raise ValueError(f"argument 'table': expected a tuning table file, got {str(path)!r} "
                         "(no such file)")  # fmt: skip
    entries, on = read_table(path, member), _table_gpu(path)[0]
    info = {"tuning_table": paths.relative(path), "tuned_on": on, "tuned": on == here["name"]}
    note = None if info["tuned"] else f"best for {member.name} runs {path.name}, tuned on {on}"
    return Best(member, entries, origin=paths.relative(path), tuning=info, note=note, make=make)
