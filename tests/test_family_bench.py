"""The family member's bench: one measurement path (decodekit.measure.measure on a Case),
contracts checked before any timing, its copy floor, and records the contest's views keep
apart."""

import torch

from decodekit import records, views
from decodekit.measure import measure
from decodekit.measure.family_bench import bench_member
from decodekit.measure.trial import Samples
from decodekit.problem import family
from decodekit.views.family_tables import table, versus_floor


class Clock:
    """Every call takes 2 µs; counts the calls it times."""

    def __init__(self):
        self.calls = 0

    def unavailable(self, method, device):
        return None

    def trial(self, method, target, n_warmup, n_iter):
        for _ in range(n_iter):
            target()
            self.calls += 1
        return Samples([2.0] * n_iter)


POOL = family.Member(4, 8, layout="pool", l2norm=True)


def test_a_case_is_checked_with_its_contracts_then_timed():
    case = family.cases(POOL, (4,))[0]
    r = measure(family.reference(POOL), case, "quick", timer=Clock(), device="cpu")
    assert r.ok and r.uuid == case.uuid and r.batch_size == 4
    assert r.get("definition") == POOL.name and r.get("contract") == "pool"
    assert r.get("check") == "passed"


def test_a_call_that_writes_an_unnamed_slot_is_not_timed():
    case = family.cases(POOL, (4,))[0]
    good = family.reference(POOL)

    def scribbles(**kw):
        good(**kw)
        idx = kw["state_indices"]
        free = sorted(set(range(kw["state"].shape[0])) - set(idx.tolist()))
        kw["state"][free[0]] += 1.0  # a slot no index names

    clock = Clock()
    r = measure(scribbles, case, "quick", timer=clock, device="cpu")
    assert r.status.value == "check-failed" and "no index names" in r.note
    assert clock.calls == 0 and r.latency_us is None


def test_bench_member_records_the_floor_and_each_impl_apart_from_the_contest(tmp_path):
    rows = bench_member(POOL, {"torch-fp32": family.reference(POOL)}, "quick",
                        batch_sizes=(1, 4), out_dir=tmp_path, timer=Clock(), device="cpu")  # fmt: skip
    floors = [r for r in rows if r.get("floor") == "copy-floor"]
    impl = [r for r in rows if r["impl"] == "torch-fp32"]
    assert [r["batch_size"] for r in floors] == [1, 4] and len(impl) == 2
    assert all(r["definition"] == POOL.name for r in rows)
    assert impl[1]["bytes"] == POOL.state_bytes(4) and impl[1]["pct_copy"] == 100.0
    t = table(rows)
    assert list(t.columns) == [1, 4] and "torch-fp32 [pool]" in t.index
    df = records.load(tmp_path)
    assert len(df) == 4 and views.latest(df).empty  # the contest's views leave them out
    assert len(views.latest(df, definition=POOL.name)) == 4
    assert versus_floor(df, "torch-fp32").loc[POOL.name].tolist() == [1.0, 1.0]


def test_floor_buffers_move_the_members_state_bytes():
    from decodekit.measure.family_bench import floor_buffers

    for m in (POOL, family.Member(16, 32, state_dtype="bfloat16")):
        b = floor_buffers(m, 2)
        assert 2 * b["src"].numel() * b["src"].element_size() == m.state_bytes(2)
        assert b["src"].dtype == m.dtype and torch.isfinite(b["src"].float()).all()
