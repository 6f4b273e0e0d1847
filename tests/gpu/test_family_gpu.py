"""The family kernel on a GPU: every serving member and the dense ones (T 1 and 4, fp32 and
bf16 state) and the T=4 pool's verify calls (every token's state, no update, both) pass
decodekit.measure.family_check.check at every batch size (output, live slots, every live
row's intermediate states, untouched slots bit-identical, the whole pool when not updating,
padding rows zero and their intermediate rows untouched); a state fed back 32 steps stays
near the fp64 trajectory; bad indices and a misaligned intermediate buffer are refused
before the launch; torch's current stream is the one launched on."""

from dataclasses import replace

import pytest
import torch

from decodekit.impls.family_kernels import CHECKED, kit_kernel
from decodekit.impls.family_tuning import (
    MMA2_TOKENS,
    MMA_TILE_SHAPES,
    SOLVE_TILE_SHAPES,
    SOLVE_TOKENS,
    TILE_SHAPES,
)
from decodekit.measure import family_check
from decodekit.measure.family_check import _outputs
from decodekit.problem.family import SERVING, VERIFY, Member, cases, make_inputs
from decodekit.problem.family_math import decode
from decodekit.problem.spec import SpecError

pytestmark = pytest.mark.gpu

BATCH_SIZES = (1, 4, 8, 32, 128)
MEMBERS = list(CHECKED)
# drift runs a dense member of the same heads, T and l2norm that writes its final state, fp32
# and bf16 state side by side
DRIFT = list(dict.fromkeys(replace(m, state_dtype="float32", layout="dense", intermediate=False,
                                   update=True) for m in MEMBERS))  # fmt: skip
POOL = SERVING[0]


@pytest.mark.parametrize("B", BATCH_SIZES)
@pytest.mark.parametrize("member", MEMBERS, ids=lambda m: m.name)
def test_check_passes(member, B):
    (case,) = cases(member, (B,))
    res = family_check.check(kit_kernel(member), case, "cuda")
    assert res.passed, res.summary()


# Shapes and the reduce-scatter row sums (REDUCE 1) beside the default butterfly: the lane
# that ends with a row's sums writes its output, and the deltas go round the group. Then the
# pipelined state (PREFETCH 1: each item's rows through a shared tile, the next one's copy
# in flight) with 1, 3 (a partial last block) and 8 items a block, and items without it.
SHAPES = [dict(WARPS=w, ROWS_PER_WARP=r, LANES_PER_ROW=lanes, REDUCE=red)
          for (w, r, lanes) in ((4, 8, 16), (4, 4, 32), (4, 8, 8), (8, 4, 16), (4, 16, 16))
          for red in (0, 1)]  # fmt: skip
# the row sums as FMA chains (CHAIN_SUMS 1) on the butterfly and the reduce-scatter
SHAPES += [dict(WARPS=w, ROWS_PER_WARP=r, LANES_PER_ROW=lanes, REDUCE=red, CHAIN_SUMS=1)
           for (w, r, lanes, red) in ((4, 4, 16, 0), (4, 8, 32, 1), (2, 16, 16, 1))]  # fmt: skip
SHAPES += [dict(WARPS=w, ROWS_PER_WARP=r, LANES_PER_ROW=lanes, REDUCE=1, PREFETCH=pf, ITEMS=n)
           for (w, r, lanes, pf, n) in ((4, 8, 16, 1, 1), (4, 8, 16, 1, 3), (4, 8, 16, 1, 8),
                                        (4, 4, 32, 1, 4), (2, 8, 16, 0, 3))]  # fmt: skip
# items as the next row blocks of one head (CONSECUTIVE 1): a head a block, and 3 a block
# (so blocks straddle heads and the last one runs out of items)
SHAPES += [dict(WARPS=w, ROWS_PER_WARP=r, LANES_PER_ROW=lanes, REDUCE=1, PREFETCH=pf, ITEMS=n,
                CONSECUTIVE=1)
           for (w, r, lanes, pf, n) in ((4, 2, 32, 1, 16), (4, 4, 32, 1, 8), (2, 8, 16, 1, 3),
                                        (2, 8, 16, 0, 3), (4, 2, 32, 2, 16), (2, 8, 16, 2, 3))]  # fmt: skip
# the per-lane copies (PREFETCH 2: cp.async of a lane's own chunks, one group an item) with
# 1, 3 and 8 items a block, strided
SHAPES += [dict(WARPS=w, ROWS_PER_WARP=r, LANES_PER_ROW=lanes, REDUCE=1, PREFETCH=2, ITEMS=n)
           for (w, r, lanes, n) in ((4, 8, 16, 1), (4, 8, 16, 3), (4, 4, 32, 8))]  # fmt: skip


@pytest.mark.parametrize("B", (1, 8, 64))
@pytest.mark.parametrize("defines", SHAPES, ids=lambda d: "-".join(map(str, d.values())))
@pytest.mark.parametrize("member", (*SERVING, *VERIFY), ids=lambda m: m.name)
def test_shapes_and_reduce_pass(member, defines, B):
    (case,) = cases(member, (B,))
    res = family_check.check(kit_kernel(member, defines), case, "cuda")
    assert res.passed, res.summary()


# T = 1: a streamed head's token done once by the block's first item (HEAD_TOKENS 1): a head
# a block and 4 blocks a head, through no tiles, the bulk copies and the per-lane copies
HEAD = [dict(WARPS=w, ROWS_PER_WARP=r, LANES_PER_ROW=lanes, REDUCE=1, PREFETCH=pf, ITEMS=n,
             CONSECUTIVE=1, HEAD_TOKENS=1)
        for (w, r, lanes, pf, n) in ((4, 2, 32, 2, 16), (4, 2, 32, 0, 4), (4, 8, 16, 1, 4),
                                     (2, 8, 16, 2, 2))]  # fmt: skip


@pytest.mark.parametrize("B", (1, 8, 64))
@pytest.mark.parametrize("defines", HEAD, ids=lambda d: "-".join(map(str, d.values())))
@pytest.mark.parametrize("member", [m for m in SERVING if m.seq_len == 1], ids=lambda m: m.name)
def test_a_heads_token_once_passes(member, defines, B):
    (case,) = cases(member, (B,))
    res = family_check.check(kit_kernel(member, defines), case, "cuda")
    assert res.passed, res.summary()


def _pool_and_dense_pass(member, defines, B):
    """The kit build ``defines`` passes the contracts on ``member`` (a pool: its padding rows)
    and on its dense twin, at batch size ``B``."""
    for m in (member, replace(member, layout="dense")):  # a pool's padding rows; dense
        (case,) = cases(m, (B,))
        res = family_check.check(kit_kernel(m, defines), case, "cuda")
        assert res.passed, res.summary()


# T = 1: an item's rows one at a time from its tile (ROW_STREAM 1): the tuning space's
# full-occupancy builds (one item a block), through the bulk copies too, and pipelined items
# (strided, and a head a block) whose tiles alternate
ROWS = [dict(WARPS=w, ROWS_PER_WARP=r, LANES_PER_ROW=lanes, PREFETCH=pf, ITEMS=n,
             CONSECUTIVE=c, MIN_BLOCKS=mb, ROW_STREAM=1)
        for (w, r, lanes, pf, n, c, mb) in ((4, 4, 32, 2, 1, 0, 16), (8, 2, 32, 2, 1, 0, 8),
                                            (4, 4, 32, 1, 1, 0, 0), (4, 8, 16, 2, 3, 0, 0),
                                            (4, 4, 32, 2, 8, 1, 0))]  # fmt: skip


@pytest.mark.parametrize("B", (1, 8, 64))
@pytest.mark.parametrize("defines", ROWS, ids=lambda d: "-".join(map(str, d.values())))
@pytest.mark.parametrize("member", [m for m in SERVING if m.seq_len == 1], ids=lambda m: m.name)
def test_rows_streamed_from_the_tile_pass(member, defines, B):
    _pool_and_dense_pass(member, defines, B)


# T = 1: the token's scalars before the state's row sums (SCALARS_FIRST): 16 and 32 lanes a
# row, items in turn (3, and a head a block with its tokens kept: HEAD_TOKENS), 64 registers
FIRST = [dict(WARPS=w, ROWS_PER_WARP=r, LANES_PER_ROW=n, REDUCE=red, CHAIN_SUMS=1,
              SCALARS_FIRST=1, **x)
         for w, r, n, red, x in ((4, 8, 32, 1, dict(LOAD_HINT=4)), (4, 4, 16, 1, {}),
                                 (4, 4, 16, 0, {}), (2, 8, 32, 1, dict(MIN_BLOCKS=16)),
                                 (4, 8, 16, 1, dict(ITEMS=3)),
                                 (4, 4, 32, 1, dict(ITEMS=8, CONSECUTIVE=1, HEAD_TOKENS=1)))]  # fmt: skip


@pytest.mark.parametrize("B", (1, 8, 64))
@pytest.mark.parametrize("defines", FIRST, ids=lambda d: "-".join(f"{k}{v}" for k, v in d.items()))
@pytest.mark.parametrize("member", [m for m in SERVING if m.seq_len == 1], ids=lambda m: m.name)
def test_scalars_first_passes(member, defines, B):
    _pool_and_dense_pass(member, defines, B)


# T = 1: an item's rows through block-wide tiles (BLOCK_TILES): every shape of the tuning
# space (FlashInfer's 4 x 4 with 8-row tiles among them, one stage and four), kernel and copy
TILES = [dict(WARPS=w, ROWS_PER_WARP=r, LANES_PER_ROW=32, BLOCK_TILES=t, MIN_BLOCKS=mb)
         for w, r, t, mb in TILE_SHAPES]  # fmt: skip


@pytest.mark.parametrize("B", (1, 8, 64))
@pytest.mark.parametrize("defines", TILES, ids=lambda d: "-".join(map(str, d.values())))
@pytest.mark.parametrize("member", [m for m in SERVING if m.seq_len == 1], ids=lambda m: m.name)
def test_rows_through_block_tiles_pass(member, defines, B):
    _pool_and_dense_pass(member, defines, B)


# T > 1: SOLVE through the block-wide tiles (BLOCK_TILES with SOLVE 1) on every shape of the
# tuning space (one stage and up to eight; two, three and four tiles in turn), the T = 4 pool and every verify call (every token's
# state, no update, both), pool (padding rows) and dense, and the pool at bf16 state.
SOLVE_TILES = [dict(WARPS=w, ROWS_PER_WARP=r, LANES_PER_ROW=n, BLOCK_TILES=t, TILE_BUFFERS=nb,
                    **SOLVE_TOKENS) for w, r, n, t, nb in SOLVE_TILE_SHAPES]  # fmt: skip
# and MMA 2 through the tiles (tiles_mma_item) on its shapes
SOLVE_TILES += [dict(WARPS=w, ROWS_PER_WARP=r, LANES_PER_ROW=n, BLOCK_TILES=t, **MMA2_TOKENS)
                for w, r, n, t in MMA_TILE_SHAPES]  # fmt: skip
MULTI_TOKEN = [m for m in (*SERVING, *VERIFY) if m.seq_len > 1]


@pytest.mark.parametrize("B", (1, 8, 64))
@pytest.mark.parametrize("defines", SOLVE_TILES, ids=lambda d: "-".join(map(str, d.values())))
@pytest.mark.parametrize("member", MULTI_TOKEN, ids=lambda m: m.name)
def test_tokens_solved_through_block_tiles_pass(member, defines, B):
    ms = [member, replace(member, layout="dense")]
    if member in SERVING:
        ms.append(replace(member, state_dtype="bfloat16"))
    for m in ms:
        (case,) = cases(m, (B,))
        res = family_check.check(kit_kernel(m, defines), case, "cuda")
        assert res.passed, (m.name, res.summary())


@pytest.mark.parametrize("defines", TILES, ids=lambda d: "-".join(map(str, d.values())))
def test_tiled_row_copy_copies_live_slots_and_zeroes_the_output(defines):
    from decodekit.impls.family_kernels import row_copy

    for member in (m for m in SERVING if m.seq_len == 1):
        for m in (member, replace(member, layout="dense")):
            (case,) = cases(m, (16,))
            x = make_inputs(case, "cuda")
            x.update(_outputs(case, x))  # NaN output; dense: a NaN new_state
            before = x["state"].clone()
            row_copy(m, defines)(**x)
            torch.cuda.synchronize()
            assert torch.equal(x["new_state"], before), m.name  # dense: copied; pool: as it was
            assert (x["output"] == 0).all(), m.name  # padding rows included


@pytest.mark.parametrize(
    "defines",
    (
        None,
        dict(PREFETCH=1, ITEMS=3),
        dict(PREFETCH=1, ITEMS=3, CONSECUTIVE=1),
        dict(PREFETCH=2, ITEMS=3),
        dict(PREFETCH=2, ITEMS=3, CONSECUTIVE=1),
        dict(WARPS=4, ROWS_PER_WARP=4, LANES_PER_ROW=32, PREFETCH=2, ITEMS=1),
    ),
    ids=("grid", "pipelined", "consecutive", "per-lane", "per-lane-consecutive", "one-tile"),
)
def test_row_copy_copies_live_slots_and_zeroes_the_output(defines):
    from decodekit.impls.family_kernels import row_copy

    for member in (*SERVING, *VERIFY):
        for m in (member, replace(member, layout="dense")):
            (case,) = cases(m, (16,))
            x = make_inputs(case, "cuda")
            x.update(_outputs(case, x))  # NaN output; dense: a NaN new_state
            before = x["state"].clone()
            row_copy(m, defines)(**x)
            torch.cuda.synchronize()
            if m.update or m.layout == "pool":  # a pool: in place, as it was
                assert torch.equal(x["new_state"], before), m.name
            else:  # dense, not updating: nothing stored
                assert x["new_state"].isnan().all(), m.name
            assert (x["output"] == 0).all(), m.name  # padding rows included
            if m.intermediate:  # T copies of each live row's state; padding rows untouched
                idx = x["state_indices"]
                slots = idx.long() if idx is not None else torch.arange(16, device="cuda")
                rows = torch.nonzero(slots >= 0).flatten()
                inter = x["intermediate_states"]
                for t in range(m.seq_len):
                    assert torch.equal(inter[rows, t], before[slots[rows]]), (m.name, t)
                assert inter[slots < 0].isnan().all(), m.name


@pytest.mark.parametrize("member", DRIFT, ids=lambda m: m.name)
def test_drift_of_a_fed_back_state(member):
    df = family_check.drift(kit_kernel, member, batch_size=4, steps=32, device="cuda")
    last = df[df.step == 32].set_index("state_dtype")
    assert last.loc["float32", "state_rel"] < 1e-4, df.to_string()
    assert last.loc["bfloat16", "state_rel"] < 5e-2, df.to_string()


def _pool_call(member=POOL, B=8):
    case = cases(member, (B,))[0]
    x = make_inputs(case, "cuda")
    x.update(_outputs(case, x))
    return kit_kernel(member), x


@pytest.mark.parametrize(
    "bad, match",
    [([0, 1, 2, 3, 1, -1, 6, 7], r"slot 1 is named by rows \[1, 4\]"),  # a live slot twice
     ([0, 1, 2, 3, 16, -1, 6, 7], "expected -1 .* got 16"),  # past the pool (P = 16)
     ([0, 1, 2, 3, -2, -1, 6, 7], "expected -1 .* got -2")],
)  # fmt: skip
def test_bad_indices_raise_before_launch(bad, match):
    run, x = _pool_call()
    run(**x)  # good indices first
    torch.cuda.synchronize()
    x["state_indices"] = torch.tensor(bad, dtype=torch.int32, device="cuda")
    x["output"].fill_(float("nan"))
    before = x["state"].clone()
    with pytest.raises(SpecError, match="argument 'state_indices': " + match):
        run(**x)
    torch.cuda.synchronize()
    assert torch.equal(x["state"], before) and x["output"].isnan().all()  # nothing launched


def test_a_misaligned_intermediate_buffer_is_refused_before_launch():
    member = VERIFY[0]
    run, x = _pool_call(member)
    buf = x["intermediate_states"]
    flat = torch.full((buf.numel() + 1,), float("nan"), device="cuda")
    x["intermediate_states"] = flat[1:].view(buf.shape)  # contiguous, 4 bytes off
    before = x["state"].clone()
    with pytest.raises(SpecError, match="argument 'intermediate_states': expected a 16-byte"):
        run(**x)
    torch.cuda.synchronize()
    assert torch.equal(x["state"], before) and flat[1:].isnan().all()  # nothing launched
    x["intermediate_states"] = buf.cpu()
    with pytest.raises(SpecError, match="argument 'intermediate_states': expected a CUDA tensor"):
        run(**x)


def test_indices_edited_in_place_are_checked_again():
    run, x = _pool_call()
    run(**x)
    live = torch.nonzero(x["state_indices"] >= 0).flatten().tolist()
    x["state_indices"][live[1]] = x["state_indices"][live[0]]  # in place: a new _version
    with pytest.raises(SpecError, match="must be distinct"):
        run(**x)


def test_scale_and_null_dense_state():
    m = Member(16, 32, seq_len=4)
    case = cases(m, (3,))[0]
    x = make_inputs(case, "cuda")
    out = torch.empty(3, 4, 32, 128, dtype=torch.bfloat16, device="cuda")
    new = torch.empty_like(x["state"])
    kit_kernel(m)(**{**x, "state": None, "scale": 0.25}, output=out, new_state=new)
    cpu = {n: t.cpu() if isinstance(t, torch.Tensor) else t for n, t in x.items()}
    ref_out, ref_state = decode(
        m, **{**cpu, "state": torch.zeros_like(cpu["state"]), "scale": 0.25}
    )
    torch.testing.assert_close(out.cpu().double(), ref_out, rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(new.cpu().double(), ref_state, rtol=1e-4, atol=1e-5)
    with pytest.raises(SpecError, match="argument 'scale'"):
        kit_kernel(m)(**{**x, "scale": float("nan")}, output=out, new_state=new)


def test_launches_on_torchs_current_stream():
    m = Member(4, 8, seq_len=4, layout="pool", l2norm=True)
    run, x = _pool_call(m, 32)
    y = {
        **x,
        "state": x["state"].clone(),
        "output": x["output"].clone(),
        "q": torch.zeros_like(x["q"]),
    }
    y["new_state"] = y["state"]
    run(**x)
    torch.cuda.synchronize()
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        torch.cuda._sleep(50_000_000)  # on another stream the kernel would read zeros for q
        y["q"].copy_(x["q"])
        run(**y)
    side.synchronize()
    torch.cuda.synchronize()
    assert torch.equal(x["output"], y["output"]) and torch.equal(x["state"], y["state"])
