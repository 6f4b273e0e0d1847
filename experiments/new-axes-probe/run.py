"""The family kernel's new axes against each serving member's recorded table, on a GPU: the
tensor-core products (MMA), the per-lane pipelined copies (PREFETCH 2) and the 256-byte L2
prefetch size (LOAD_HINT 4, 5). For each member, one tuning run (checked, then timed with
the contest preset) over its H200 table's entries plus those candidates of the full space,
with no margin, so the incumbents and the new axes are timed side by side.

Run: python experiments/new-axes-probe/run.py DIR  (tables and records under DIR, not data/)
"""

import sys

from decodekit.impls import family_tuning as ft
from decodekit.measure.family_tune import tune_member
from decodekit.problem.family import SERVING


def new_axis(d: dict) -> bool:
    return bool(d["MMA"]) or d["PREFETCH"] == 2 or d["LOAD_HINT"] in (4, 5)


def main(out_dir: str) -> None:
    for m in SERVING:
        table = ft.read_table(ft.own_table(m, "NVIDIA H200"), m)
        space = [e["defines"] for e in table.values()]
        space = ft.unique(space + [d for d in ft.search_space("full", m) if new_axis(d)])
        sizes = [1, 32, 64, 128, 256] if m.seq_len > 1 else [32, 64, 128, 256]
        print(m.name, len(space), "candidates", flush=True)
        out = tune_member(m, "contest", sizes, space, out_dir=out_dir, margin=0.0, verbose=False)
        for b, e in sorted(out.items()):
            d = {k: v for k, v in e["defines"].items() if v and k != "REDUCE"}
            print(f"  B={b:<4} {e['latency_us']:8.2f} us  {d}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
