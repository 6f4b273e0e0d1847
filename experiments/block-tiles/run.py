"""The block-wide tiles (BLOCK_TILES: an item's rows through two shared tiles of R rows in
turn, every thread's cp.async, FlashInfer's pretranspose state path; family_tuning.
TILE_SHAPES) against each T = 1 serving member's H200 table, on a GPU: one tuning run a
member over its table's entries and those candidates, so the incumbents and the new builds
are timed side by side in one run, with the tuner's usual margin (an entry is replaced only
by a build that beats it by more), the tables and records written to the family's tuning
folder (data/tuning/family/, as ``decodekit tune --definition NAME --configs FILE`` does).
FlashInfer's kernel was 1-3% ahead of the kit's best on the fp32 pools at B >= 64 (runs
d25d6559, f8161149) and ahead of every kit row copy, and the kit's copy of its budget
(ROW_STREAM, data/experiments/2026-12-02_full-occupancy/) won nothing: what is left to copy
is how it moves the state.

Run: python experiments/block-tiles/run.py  (on the GPU machine)
"""

from decodekit.impls import family_tuning as ft
from decodekit.measure.family_tune import tune_member
from decodekit.problem.family import SERVING


def main() -> None:
    for m in (m for m in SERVING if m.seq_len == 1):
        table = ft.read_table(ft.own_table(m, "NVIDIA H200"), m)
        space = [e["defines"] for e in table.values()]
        space = ft.unique(space + [d for d in ft.search_space("full", m) if d["BLOCK_TILES"]])
        print(m.name, len(space), "candidates", flush=True)
        out = tune_member(m, "contest", None, space, verbose=False)
        for b, e in sorted(out.items()):
            d = {k: v for k, v in e["defines"].items() if v and k != "REDUCE"}
            print(f"  B={b:4d} {e['latency_us']:8.2f} us  {d}", flush=True)


if __name__ == "__main__":
    main()
