"""The family kernel's T > 1 knobs on a GPU: the gates computed once per warp for every token
(GATES_ONCE), the decay kept as one running factor (LAZY_DECAY), the lean loop (unrolled,
FMA-chained row sums, 64 registers), each token's scalars once a block (TOKENS_ONCE), the
T tokens in one pass (SOLVE), its products (MMA) and its Gram terms (GRAM_MMA) on the tensor
cores, the next item's state in registers (REG_PREFETCH), the tokens' scalars before the
state's row sums (SCALARS_FIRST), a block's items sharing their tokens (HEAD_TOKENS), with the
reduce-scatter row sums, pass decodekit.measure.family_check.check on the T = 4 members (pool
and dense, fp32 and bf16 state; SOLVE, MMA and GRAM_MMA on the verify calls too, MMA at T = 2,
3 and 8, GRAM_MMA at 2 and 3)
at small and large batch sizes, and a state fed back 32
steps with them stays as near the fp64 trajectory as the default build's."""

from dataclasses import replace

import pytest

from decodekit.impls.family_kernels import kit_kernel
from decodekit.measure import family_check
from decodekit.problem.family import SERVING, VERIFY, cases

pytestmark = pytest.mark.gpu

T4 = SERVING[2]  # pool qk4/v8 T=4 l2norm
MEMBERS = [T4, replace(T4, state_dtype="bfloat16"), replace(T4, layout="dense", l2norm=False),
           replace(T4, qk_heads=16, v_heads=32)]  # fmt: skip
KNOBS = [dict(REDUCE=1, GATES_ONCE=1, LAZY_DECAY=lazy, **shape)
         for lazy in (0, 1)
         for shape in (dict(WARPS=4, ROWS_PER_WARP=8, LANES_PER_ROW=16),
                       dict(WARPS=2, ROWS_PER_WARP=8, LANES_PER_ROW=16),
                       dict(WARPS=4, ROWS_PER_WARP=4, LANES_PER_ROW=32),
                       dict(WARPS=4, ROWS_PER_WARP=8, LANES_PER_ROW=16, PREFETCH=1,
                            ITEMS=3))]  # fmt: skip
# the lean token loop: unrolled, the row sums as FMA chains, 64 registers a thread
KNOBS += [dict(REDUCE=1, GATES_ONCE=1, LAZY_DECAY=1, UNROLL_TOKENS=1, CHAIN_SUMS=1,
               MIN_BLOCKS=mb, WARPS=2, ROWS_PER_WARP=8, LANES_PER_ROW=16)
          for mb in (0, 16)]  # fmt: skip
# each token's k . q, norms and gates once a block through shared memory (TOKENS_ONCE), one
# item a block and 3 in turn (the table rewritten per item, behind a barrier)
KNOBS += [dict(REDUCE=1, TOKENS_ONCE=1, LAZY_DECAY=lazy, UNROLL_TOKENS=1, CHAIN_SUMS=1,
               WARPS=w, ROWS_PER_WARP=r, LANES_PER_ROW=16, ITEMS=n)
          for (w, r, n, lazy) in ((4, 8, 1, 1), (2, 8, 3, 1), (8, 4, 1, 0))]  # fmt: skip
# the T tokens in one pass (SOLVE): 1, 2, 4 and 8 rows a lane, 16 and 32 lanes a row, items
# in turn through the pipelined tiles, and 64 registers
SOLVE = [dict(REDUCE=1, SOLVE=1, CHAIN_SUMS=c, WARPS=w, ROWS_PER_WARP=r, LANES_PER_ROW=n, **x)
         for (w, r, n, c, x) in ((4, 2, 32, 1, {}), (4, 1, 32, 0, {}), (4, 4, 16, 1, {}),
                                 (2, 8, 16, 0, {}), (1, 16, 16, 1, {}), (4, 16, 16, 1, {}),
                                 (4, 4, 32, 1, dict(MIN_BLOCKS=8)),
                                 (4, 4, 16, 1, dict(PREFETCH=1, ITEMS=3)))]  # fmt: skip
KNOBS += SOLVE
# SOLVE's products on the tensor cores (MMA): 4 and 1 warps of 16 rows at 4 lanes a row, and
# items in turn through the pipelined tiles; MMA 2 (the tokens and their scalars once a
# block in shared memory) at 128 registers, 4 warps, and items in turn (the barrier before
# the next item's tokens)
MMA = [dict(REDUCE=1, SOLVE=1, MMA=mma, WARPS=w, ROWS_PER_WARP=16, LANES_PER_ROW=4, **x)
       for mma, w, x in ((1, 4, {}), (1, 1, {}), (1, 2, dict(PREFETCH=1, ITEMS=3)),
                         (2, 2, dict(MIN_BLOCKS=8)), (2, 4, {}),
                         (2, 2, dict(PREFETCH=2, ITEMS=3)))]  # fmt: skip
KNOBS += MMA
# the tokens' Gram terms on the tensor cores (GRAM_MMA): 16 and 8 rows a warp, 32 lanes a row,
# and 16 rows a warp in 128 registers
GRAM = [dict(REDUCE=1, SOLVE=1, CHAIN_SUMS=1, GRAM_MMA=1, WARPS=w, ROWS_PER_WARP=r,
             LANES_PER_ROW=n, **x)
        for w, r, n, x in ((1, 16, 16, {}), (2, 8, 16, {}), (4, 4, 32, {}),
                           (1, 16, 16, dict(MIN_BLOCKS=16)))]  # fmt: skip
KNOBS += GRAM
# the next item's rows in registers while this one computes (REG_PREFETCH, fp32 state):
# SOLVE at 8 rows a warp with 2 and 3 items a block and consecutive items, and the token loop
REG = [dict(REDUCE=1, SOLVE=1, CHAIN_SUMS=1, REG_PREFETCH=1, WARPS=w, ROWS_PER_WARP=8,
            LANES_PER_ROW=16, ITEMS=n, **x)
       for w, n, x in ((2, 2, {}), (4, 3, {}), (2, 2, dict(CONSECUTIVE=1)))]  # fmt: skip
REG += [dict(REDUCE=1, GATES_ONCE=1, REG_PREFETCH=1, WARPS=4, ROWS_PER_WARP=8, LANES_PER_ROW=16,
             ITEMS=3)]  # fmt: skip
# the tokens' scalars (gates, Gram terms, norms) before the state's row sums (SCALARS_FIRST):
# SOLVE at 16 and 8 rows a warp, with GRAM_MMA, and items in turn
FIRST = [dict(REDUCE=1, SOLVE=1, CHAIN_SUMS=1, SCALARS_FIRST=1, WARPS=w, ROWS_PER_WARP=r,
              LANES_PER_ROW=16, **x)
         for w, r, x in ((2, 16, {}), (4, 8, {}), (2, 16, dict(GRAM_MMA=1)),
                         (1, 16, dict(GRAM_MMA=1, MIN_BLOCKS=16)), (2, 8, dict(ITEMS=3)))]  # fmt: skip
# a block's items (rows of one (b, h)) sharing the first item's tokens and scalars with SOLVE
# (HEAD_TOKENS): 16 and 8 rows a warp, 2 to 8 items, capped registers, GRAM_MMA, SCALARS_FIRST
HEAD = [dict(REDUCE=1, SOLVE=1, CHAIN_SUMS=1, HEAD_TOKENS=1, CONSECUTIVE=1, WARPS=w,
             ROWS_PER_WARP=r, LANES_PER_ROW=16, ITEMS=n, **x)
        for w, r, n, x in ((2, 16, 2, dict(MIN_BLOCKS=6)), (2, 8, 4, dict(MIN_BLOCKS=8)),
                           (1, 16, 8, {}), (2, 16, 2, dict(GRAM_MMA=1)),
                           (2, 8, 2, dict(SCALARS_FIRST=1)))]  # fmt: skip
# MMA at other token counts: part of a group of 4 tokens (2, 3) and two groups (8)
TOKENS = [replace(m, seq_len=t) for t in (2, 3, 8) for m in (T4, MEMBERS[1])]


# every knob on the T = 4 members; SOLVE and MMA on the verify calls too, MMA at other T
CASES = ([(m, d) for m in MEMBERS for d in KNOBS]
         + [(m, d) for m in VERIFY for d in SOLVE + MMA + GRAM]
         + [(m, d) for m in TOKENS for d in MMA]
         + [(m, d) for m in TOKENS if m.seq_len <= 4 for d in GRAM]
         + [(m, d) for m in [*MEMBERS, *VERIFY] if m.state_dtype == "float32" for d in REG]
         + [(m, d) for m in [*MEMBERS, *VERIFY] for d in FIRST + HEAD])  # fmt: skip


@pytest.mark.parametrize("B", (1, 8, 64))
@pytest.mark.parametrize(("member", "defines"), CASES,
                         ids=lambda x: getattr(x, "name", None) or "-".join(f"{k}{v}" for k, v in x.items()))  # fmt: skip
def test_multi_token_knobs_pass_the_contracts(member, defines, B):
    (case,) = cases(member, (B,))
    res = family_check.check(kit_kernel(member, defines), case, "cuda")
    assert res.passed, res.summary()


DRIFT = {"gates-once": dict(REDUCE=1, GATES_ONCE=1), "lazy-decay": dict(REDUCE=1, GATES_ONCE=1,
         LAZY_DECAY=1), "solve": SOLVE[0], "mma": MMA[0], "gram": GRAM[0],
         "reg-prefetch": REG[0], "scalars-first": FIRST[0], "head-tokens": HEAD[0]}  # fmt: skip


@pytest.mark.parametrize("knobs", DRIFT.values(), ids=DRIFT)
def test_knobs_drift_no_more_than_the_default(knobs):
    dense = replace(T4, layout="dense")
    # REG_PREFETCH builds for an fp32 state only (a bf16 state's widening waits at the load)
    dts = ("float32",) if knobs.get("REG_PREFETCH") else ("float32", "bfloat16")
    mine = family_check.drift(lambda m: kit_kernel(m, knobs), dense, batch_size=4, steps=32,
                              device="cuda", state_dtypes=dts)  # fmt: skip
    base = family_check.drift(kit_kernel, dense, batch_size=4, steps=32, device="cuda",
                              state_dtypes=dts)  # fmt: skip
    last = lambda df: df[df.step == 32].set_index("state_dtype")["state_rel"]  # noqa: E731
    assert (last(mine) <= 2 * last(base) + 1e-7).all(), (last(mine), last(base))
