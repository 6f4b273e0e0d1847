"""The first tuning of the three T = 4 verify members (intermediate states, no update, both),
on a GPU, into the family's tables (data/tuning/family/): each member's candidates are the
kernel's defaults (what the untuned member runs now), the T = 4 serving member's own H200
table entries, and the full space's multi-token candidates without pipelined state (the
lean loop, SOLVE and MMA: 23), not the whole space of 166 (about 225 s a member, more than
this session's device time allows for three). The T = 4 tunings so far (2a555c65, 9c3aaf0e)
took only SOLVE or MMA builds at B >= 1; the pipelined and per-token ones won no size.

Run: python experiments/verify-tune/run.py  (on the GPU machine; writes tables and records)
"""

from decodekit.impls import family_tuning as ft
from decodekit.measure.family_tune import tune_member
from decodekit.problem.family import SERVING, VERIFY


def multi_token(d: dict) -> bool:
    return bool(d["SOLVE"] or d["MMA"] or d["UNROLL_TOKENS"]) and not d["PREFETCH"]


def main() -> None:
    t4 = next(m for m in SERVING if m.seq_len == 4 and not m.bf16)
    table = ft.read_table(ft.own_table(t4, "NVIDIA H200"), t4)
    for m in VERIFY:
        space = [ft.kernel_defaults(), *(e["defines"] for e in table.values())]
        space = ft.unique(space + [d for d in ft.search_space("full", m) if multi_token(d)])
        print(m.name, len(space), "candidates", flush=True)
        out = tune_member(m, "contest", None, space, verbose=False)
        for b, e in sorted(out.items()):
            d = {k: v for k, v in e["defines"].items() if v and k != "REDUCE"}
            print(f"  B={b:4d} {e['latency_us']:8.2f} us  {d}", flush=True)


if __name__ == "__main__":
    main()
