"""Did my change help? compare gives a verdict with a bootstrap interval, per workload and B."""

import pytest

from decodekit import records
from decodekit.cli import main
from decodekit.measure import sweep
from decodekit.measure.timing import Samples
from decodekit.problem.reference import gdn_decode
from decodekit.views import compare


def rec(run, impl, uuid, B, trials, method="cupti-cold"):
    return dict(run_id=run, impl=impl, uuid=uuid, workload=uuid, batch_size=B, method=method,
                status="ok", latency_us=sum(trials) / len(trials), trial_medians_us=trials,
                gpu="G", timestamp="2026-12-01T00:00:00+00:00")  # fmt: skip


def frame(rows):
    return records.to_frame(rows)


def test_a_clear_speedup_is_faster_and_noise_is_same():
    rows = []
    for u, B in (("u1", 1), ("u2", 1), ("u3", 8)):
        rows += [rec("a", "best", u, B, [10.0, 10.1, 9.9]), rec("b", "best", u, B, [9.0, 9.1, 8.9])]
        rows += [
            rec("a", "fla", u, B, [20.0, 20.1, 19.9]),
            rec("b", "fla", u, B, [20.0, 19.9, 20.1]),
        ]
    per_w, per_b = compare.compare(frame(rows), "a", "b")
    allrow = per_b[per_b["batch_size"] == "all"].set_index("impl")
    assert allrow.loc["best", "verdict"] == "faster" and allrow.loc[
        "best", "ratio"
    ] == pytest.approx(0.9, abs=1e-3)
    assert allrow.loc["best", "ci_hi"] < 0.99 and allrow.loc["fla", "verdict"] == "same"
    assert set(per_b["batch_size"]) == {1, 8, "all"} and (per_w["verdict"] != "").all()
    assert per_b.attrs["runs"] == ["a", "b"]


def test_wide_trials_are_unclear_and_slower_is_slower():
    rows = [rec("a", "k", "u1", 1, [10.0, 14.0, 7.0]), rec("b", "k", "u1", 1, [10.0, 13.0, 8.0])]
    _, per_b = compare.compare(frame(rows), "a", "b")
    assert per_b["verdict"].tolist() == ["unclear", "unclear"]
    rows = [rec("a", "k", "u1", 1, [10.0, 10.0, 10.1]), rec("b", "k", "u1", 1, [12.0, 12.1, 12.0])]
    assert compare.compare(frame(rows), "a", "b")[1]["verdict"].iloc[-1] == "slower"


def test_bad_runs_and_pairs_are_named():
    rows = [rec("a", "k", "u1", 1, [10.0])]
    with pytest.raises(ValueError, match="argument 'run_b': no recorded run 'zz'"):
        compare.compare(frame(rows), "a", "zz")
    with pytest.raises(ValueError, match="argument 'impl_b'"):
        compare.compare(frame(rows), "a")


class Timer:
    def unavailable(self, method, device):
        return None

    def trial(self, method, target, n_warmup, n_iter):
        target()
        return Samples([2.0] * n_iter)


def reference(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state):
    o, s = gdn_decode(q, k, v, state, A_log, a, dt_bias, b, scale)
    output.copy_(o)
    new_state.copy_(s)


def test_interleaved_rounds_alternate_and_compare_within_one_run(tmp_path):
    from decodekit.impls.registry import Impl

    a = Impl(name="a", kind="baseline", description="t", factory=lambda: reference, device="any")
    b = Impl(name="b", kind="baseline", description="t", factory=lambda: reference, device="any")
    df = sweep.run([a, b], "B1,B2", preset="standard", out_dir=tmp_path, progress=False,
                   device="cpu", timer=Timer(), floors=False, rounds=3)  # fmt: skip
    assert df["impl"].tolist()[:6] == ["a", "b", "a", "b", "a", "b"]
    assert sorted(df["round"].unique()) == [0, 1, 2]
    back = records.load(tmp_path)
    assert sorted(back["round"].unique()) == [0, 1, 2]  # recorded, not only returned
    run = back["run_id"].iloc[0]
    per_w, per_b = compare.compare(back, run, impl_a="a", impl_b="b")
    assert per_b["verdict"].tolist() == ["same"] * 3 and per_w["impl"].iloc[0] == "b vs a"


def test_cli_compare_prints_a_verdict(tmp_path, monkeypatch, capsys):
    rows = [rec("aaaa1111", "best", "u1", 1, [10.0, 10.1, 9.9]),
            rec("bbbb2222", "best", "u1", 1, [9.0, 9.1, 8.9])]  # fmt: skip
    rec_dir = tmp_path / "results"
    records.append(rec_dir / "x.jsonl", rows)
    monkeypatch.setenv("DECODEKIT_DATA", str(tmp_path))
    assert main(["compare", "aaaa", "bbbb"]) == 0
    out = capsys.readouterr().out
    assert "best: faster (0.9000x" in out
    assert main(["compare", "aaaa", "nope"]) == 2
    assert "no recorded run 'nope'" in capsys.readouterr().err


def test_the_report_index_has_a_compare_section_naming_both_runs():
    from decodekit.views import report

    rows = []
    for run, t, us in (
        ("old", "2026-01-01T00:00:00+00:00", 10.0),
        ("new", "2026-01-02T00:00:00+00:00", 9.0),
    ):
        rows += [dict(rec(run, "best", u, 1, [us, us + 0.05, us - 0.05]), timestamp=t)
                 for u in ("u1", "u2")]  # fmt: skip
    html_text = report.compare_html(records.to_frame(rows))
    assert "Did the last change help?" in html_text
    assert "run new (B) against run old (A)" in html_text and "faster" in html_text


def test_latest_pair_skips_a_newer_run_of_host_cost_alone():
    """A `decodekit overhead` run (method host-steady) after two bench runs is not 'the last
    change': the pair is the two newest runs timed with the kernel method."""
    rows = [rec(r, "best", "u1", 1, [10.0]) for r in ("a", "b")]
    rows[1]["timestamp"] = "2026-12-01T01:00:00+00:00"
    host = rec("h", "best", "u1", 1, [9.0], method="host-steady")
    host["timestamp"] = "2026-12-01T02:00:00+00:00"
    assert compare.latest_pair(frame([*rows, host]), "best", "G") == ("a", "b")
    assert compare.latest_pair(frame([rows[0], host]), "best", "G") is None
