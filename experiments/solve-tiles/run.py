"""SOLVE through the block-wide tiles (BLOCK_TILES R with SOLVE 1, gdn_family_solve.cuh's
tiles_solve_item; family_tuning.SOLVE_TILE_SHAPES) against each T > 1 member's H200 table,
on a GPU: one tuning run a member over its table's entries and those candidates, so the
incumbents and the new builds are timed side by side in one run, with the tuner's usual
margin (an entry is replaced only by a build that beats it by more), the tables and records
written to the family's tuning folder (data/tuning/family/, as ``decodekit tune --definition
NAME --configs FILE`` does). The T = 4 pool was 1.09-1.20 of its row-copy floor at B >= 32
(run d1c83f64) where the T = 1 members, through the tiles, are 1.02-1.03: SOLVE holds an
item's rows in registers (64 .. 128 a thread), so fewer of the state's bytes are in flight.

Run: python experiments/solve-tiles/run.py [NAME ...]  (on the GPU machine; default every
T > 1 serving and verify member)
"""

import sys

from decodekit.impls import family_tuning as ft
from decodekit.measure.family_tune import tune_member
from decodekit.problem.family import SERVING, VERIFY, parse


def main(names: list[str]) -> None:
    members = [parse(n) for n in names] or [m for m in (*SERVING, *VERIFY) if m.seq_len > 1]
    for m in members:
        table = ft.read_table(ft.own_table(m, "NVIDIA H200"), m)
        space = [e["defines"] for e in table.values()]
        tiles = [d for d in ft.search_space("full", m) if d["BLOCK_TILES"]]
        space = ft.unique(space + tiles)
        print(m.name, len(space), "candidates", flush=True)
        out = tune_member(m, "contest", None, space, verbose=False)
        for b, e in sorted(out.items()):
            d = {k: v for k, v in e["defines"].items() if v and k not in ("REDUCE", "LOAD_HINT")}
            print(f"  B={b:4d} {e['latency_us']:8.2f} us  {d}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
