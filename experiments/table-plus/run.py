"""A member's H200 table against new candidates, on a GPU: one tuning run a member over its
table's entries and the candidates of a JSON file (``[{knob: int}, ...]``), so the
incumbents and the new builds are timed side by side in one run, with the tuner's usual
margin (an entry is replaced only by a build that beats it by more), the table and records
written to the family's tuning folder (as ``decodekit tune --definition NAME --configs
FILE`` does, with the table's entries added).

Run: python experiments/table-plus/run.py NAME CANDIDATES.json [NAME CANDIDATES.json ...]
(on the GPU machine). The candidate files of the 2026-12-03 probe: bf16_rows.json (the
bf16-state pool: twice the rows a lane, for the bytes in flight of an fp32 state) and
t4_occupancy.json (the T = 4 pool: MMA at 128 registers, SOLVE's tiles 3 and 4 deep) and
t4_mma2.json (MMA 2 in the space: at 128 registers and through the tiles). Of the
2026-12-03 rows probe: t4_rows.json (SOLVE at 16 rows a warp, MMA at 32) and bf16_rows4.json
(four times the fp32 rows a lane), each spreading the per-warp work over more rows; and
bf16_chain.json, qk4_chain.json, qk16_chain.json (the T = 1 entries with CHAIN_SUMS 1: the
row sums as FMA chains, not a multiply, three FMAs and an add a chunk); tiles_t1.json (the
T = 1 tiles, TILE_SHAPES, with a stage's rows of a warp in one reduce-scatter); t4_gram.json
(SOLVE with GRAM_MMA 1: the tokens' Gram terms on the tensor cores) and t4_gram128.json (the
same at 16 rows a warp in 128 registers, which GRAM_MMA's fewer live values allow: 16 warps
an SM, one wave at B = 32; with 1 or 2 warps a block, and SOLVE alone spilled there);
bf16_occupancy.json (the bf16-state winners at B = 32 and 64 at 64 registers, MIN_BLOCKS
32 / WARPS: 32 warps an SM, one wave at B = 32 where ptxas's 72 registers give 1.1). Both
timed on 2026-12-04 (data/experiments/2026-12-04_incumbents-and-stalls/): GRAM_FULL lost at
B = 32 and tied at B >= 128; the bf16 MIN_BLOCKS 16 build took B = 64. t4_regprefetch.json
(SOLVE with REG_PREFETCH 1: the next item's rows loaded into registers during this item's
math, 8 rows a warp in 168 registers, 2 to 4 items a block; 16 rows at 255),
t4_scalars_first.json and bf16_scalars_first.json (SCALARS_FIRST 1: the state's row sums
held back until the tokens' scalars are done), t4_head_tokens.json (SOLVE with HEAD_TOKENS:
a block's items sharing the first one's tokens and scalars): timed on 2026-12-04, all lost
or tied (kernels/README.md). t4_hints.json and bf16_hints.json (the state cache policies on
the tables' builds): STORE_HINT 3 won, but its timing is suspect
(data/experiments/2026-12-04_store-evict-last/). t4_evict_last.json, bf16_evict_last.json,
qk4_evict_last.json, qk16_evict_last.json (each table's builds with STORE_HINT 3), timed
on 2026-12-04 under the fixed flush (which resets persisting L2 lines): STORE_HINT 3 builds
took B >= 32 in all four (tuning records 5e6fc0d8, 19293c46, 2d4f8aac, 9f6d21c7).
"""

import json
import sys
from pathlib import Path

from decodekit.impls import family_tuning as ft
from decodekit.measure.family_tune import tune_member
from decodekit.problem.family import parse


def main(args: list[str]) -> None:
    if not args or len(args) % 2:
        raise SystemExit("usage: run.py NAME CANDIDATES.json [NAME CANDIDATES.json ...]")
    for name, path in zip(args[::2], args[1::2], strict=True):
        m = parse(name)
        table = ft.read_table(ft.own_table(m, "NVIDIA H200"), m)
        extra = [ft.check_defines(d, f"{path} entry {i}")
                 for i, d in enumerate(json.loads(Path(path).read_text()))]  # fmt: skip
        space = ft.unique([e["defines"] for e in table.values()] + extra)
        print(m.name, len(space), "candidates", flush=True)
        out = tune_member(m, "contest", None, space, verbose=False)
        for b, e in sorted(out.items()):
            d = {k: v for k, v in e["defines"].items() if v and k not in ("REDUCE",)}
            print(f"  B={b:4d} {e['latency_us']:8.2f} us  {d}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
