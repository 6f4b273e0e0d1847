"""The full-occupancy candidates (family_tuning.FULL_SHAPES: 32 registers a thread, every warp
slot of the SM, an item's rows one at a time from its tile with ROW_STREAM 1) against each
T = 1 serving member's H200 table, on a GPU: one tuning run a member over its table's
entries and those candidates, so the incumbents and the new builds are timed side by side
in one run, with the tuner's usual margin (an entry is replaced only by a build that beats
it by more), tables and records written under DIR (the run recorded in
data/experiments/2026-12-02_full-occupancy/ wrote them to data/tuning/family/ and was
moved). FlashInfer's pretranspose kernel, 1-3% ahead of the kit's best on the large pools
(runs d25d6559, f8161149), runs 32 registers and 96% of the SM's warps (its `ncu` records
beside them); the kit's winners 55-64 and 43-53%.

Run: python experiments/full-occupancy/run.py DIR  (on the GPU machine)
"""

import sys

from decodekit.impls import family_tuning as ft
from decodekit.measure.family_tune import tune_member
from decodekit.problem.family import SERVING


def full_occupancy(d: dict) -> bool:
    return d["MIN_BLOCKS"] * d["WARPS"] * 32 == 2048 and d["SOLVE"] == 0


def main(out_dir: str) -> None:
    for m in (m for m in SERVING if m.seq_len == 1):
        table = ft.read_table(ft.own_table(m, "NVIDIA H200"), m)
        space = [e["defines"] for e in table.values()]
        space = ft.unique(space + [d for d in ft.search_space("full", m) if full_occupancy(d)])
        print(m.name, len(space), "candidates", flush=True)
        out = tune_member(m, "contest", None, space, out_dir=out_dir, verbose=False)
        for b, e in sorted(out.items()):
            d = {k: v for k, v in e["defines"].items() if v and k != "REDUCE"}
            print(f"  B={b:4d} {e['latency_us']:8.2f} us  {d}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
