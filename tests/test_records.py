"""Records round trip and the summaries (seed report, speedups, contest score, breakdown)
on a synthetic DataFrame over the 54 contest workloads."""

import json

import numpy as np
import pandas as pd
import pytest

from decodekit import records, score
from decodekit.workloads import select

# latency model per impl (µs) as a function of batch size
MODELS = {
    "torch-fp32": lambda B: 100.0 + 2.0 * B,
    "fla": lambda B: 5.0 + 0.35 * B,
    "kit": lambda B: 4.0 + 0.30 * B,
}
KINDS = {"torch-fp32": "baseline", "fla": "baseline", "kit": "kernel"}


def synthetic_df(method="events-cold"):
    rows = []
    for w in select("contest"):
        for impl, f in MODELS.items():
            rows.append(
                dict(
                    impl=impl,
                    impl_kind=KINDS[impl],
                    uuid=w.uuid,
                    workload=w.name,
                    batch_size=w.batch_size,
                    method=method,
                    latency_us=f(w.batch_size),
                    status="ok",
                    gpu="fake",
                    timestamp="2026-11-24T00:00:00+00:00",
                )
            )
    return records.to_frame(rows)


def required_row(**kw):
    r = dict(impl="kit", uuid="B1", batch_size=1, method="events-cold", latency_us=3.0, status="ok")
    r.update(kw)
    return r


# records ----------------------------------------------------------------------------------


def test_round_trip(tmp_path):
    env = {"gpu": "NVIDIA H100 80GB HBM3", "sm_count": 132, "git_commit": "abcdef0123456789"}
    rec = records.Recorder(tmp_path, env=env, run_id="r1")
    rec.append([required_row(), required_row(uuid="B3", batch_size=3, latency_us=float("nan"))])
    assert rec.path.name.endswith("_h100-80gb-hbm3_r1.jsonl")
    assert rec.path.name[:10] == rec.started[:10]
    lines = rec.path.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["latency_us"] is None
    df = records.load(tmp_path)
    for col in records.REQUIRED + ("run_id", "sm_count", "schema", "recorded", "provenance"):
        assert col in df.columns
    assert df["recorded"].all() and df["gpu"].iloc[0] == "NVIDIA H100 80GB HBM3"
    assert "H100" in df["provenance"].iloc[0] and "abcdef01" in df["provenance"].iloc[0]
    assert df["source_file"].iloc[0] == rec.path.name


def test_row_fields_override_env(tmp_path):
    rec = records.Recorder(tmp_path, env={"gpu": "g", "note": "env"}, run_id="r")
    (row,) = rec.append([required_row(note="row")])
    assert row["note"] == "row" and row["gpu"] == "g" and row["run_id"] == "r"


def test_load_latest_and_broken_line(tmp_path):
    a = records.Recorder(tmp_path, env={"gpu": "g"}, run_id="a")
    a.append([required_row()])
    b = records.Recorder(tmp_path, env={"gpu": "g"}, run_id="b")
    b.append([dict(required_row(), timestamp="2999-01-01T00:00:00+00:00")])
    with open(a.path, "a") as f:
        f.write('{"impl": "half')
    with pytest.warns(UserWarning, match="not a JSON record"):
        df = records.load(tmp_path)
    assert len(df) == 2
    with pytest.warns(UserWarning):
        assert list(records.load(tmp_path, latest=True)["run_id"]) == ["b"]


def test_live_frame_is_not_recorded():
    df = records.to_frame([required_row()])
    assert not df["recorded"].any() and list(df.columns[:4]) == [
        "impl",
        "uuid",
        "batch_size",
        "method",
    ]


# summaries --------------------------------------------------------------------------------


def test_mean_over_54_and_per_batch():
    df = synthetic_df()
    m = score.mean_latency(df)
    assert (m["n_workloads"] == 54).all()
    bs = np.array([w.batch_size for w in select("contest")])
    assert m.loc["kit", "mean_us"] == pytest.approx(np.mean(4.0 + 0.3 * bs))
    pb = score.per_batch(df)
    assert list(pb.index) == [1, 4, 8, 16, 32, 48, 64]
    assert pb.loc[64, "fla"] == pytest.approx(5.0 + 0.35 * 64)


def test_speedup_per_batch_and_geomean():
    df = synthetic_df()
    sp = score.speedups(df)
    assert set(sp) == {"fla", "torch-fp32"}
    s = sp["fla"]
    assert s.loc[1, "kit"] == pytest.approx(5.35 / 4.3)
    bs = [w.batch_size for w in select("contest")]
    want = score.geomean([(5.0 + 0.35 * b) / (4.0 + 0.3 * b) for b in bs])
    assert s.loc["all", "kit"] == pytest.approx(want)
    assert s.loc["all", "fla"] == pytest.approx(1.0)


def test_contest_score_and_shares():
    df = synthetic_df()
    sc = score.contest_score(df, reference="torch-fp32")
    bs = [w.batch_size for w in select("contest")]
    ratios = [(100.0 + 2.0 * b) / (4.0 + 0.3 * b) for b in bs]
    assert sc.loc["kit", "score"] == pytest.approx(np.mean(ratios))
    assert sc.loc["kit", "geomean"] == pytest.approx(score.geomean(ratios))
    shares = sc.loc["kit", [c for c in sc.columns if c.startswith("share_B")]]
    assert shares.sum() == pytest.approx(100.0)
    b1 = sum(r for r, b in zip(ratios, bs, strict=True) if b == 1)
    assert sc.loc["kit", "share_B1"] == pytest.approx(100 * b1 / sum(ratios))
    assert sc.loc["torch-fp32", "score"] == pytest.approx(1.0)
    assert sc.index[0] == "kit"


def test_unknown_reference_or_method_is_named():
    df = synthetic_df()
    with pytest.raises(ValueError, match="argument 'reference'.*'nope'"):
        score.contest_score(df, reference="nope")
    with pytest.raises(ValueError, match="argument 'method'.*'fla'"):
        score.speedup(df, "kit", method="fla")


def test_summary_picks_latest_ok_record():
    df = synthetic_df()
    newer = df[df["impl"] == "kit"].copy()
    newer["latency_us"] = 1.0
    newer["timestamp"] = "2026-11-25T00:00:00+00:00"
    failed = newer.copy()
    failed["status"] = "check-failed"
    failed["timestamp"] = "2026-11-26T00:00:00+00:00"
    s = score.summary(pd.concat([df, newer, failed]))
    assert s["method"] == "events-cold"
    assert s["mean"].loc["kit", "mean_us"] == 1.0 and s["mean"].loc["kit", "n_workloads"] == 54


def test_breakdown():
    rows = []
    for method, us in [("events-cold", 10.0), ("host-dispatch", 20.0), ("wall", 45.0)]:
        rows.append(
            dict(required_row(method=method, latency_us=us, timestamp="t"), impl_kind="kernel")
        )
    rows.append(
        dict(
            impl="torch-copy",
            impl_kind="floor",
            method="copy-floor",
            timing="events-cold",
            batch_size=1,
            uuid="B1",
            latency_us=4.0,
            status="ok",
            timestamp="t",
        )
    )
    b = score.breakdown(records.to_frame(rows))
    r = b.iloc[0]
    assert (r["host_us"], r["kernel_us"], r["wall_us"], r["gap_us"], r["floor_us"]) == (
        20,
        10,
        45,
        15,
        4,
    )


def test_decodekit_data_redirects_writes_and_reads(tmp_path, monkeypatch):
    monkeypatch.setenv("DECODEKIT_DATA", str(tmp_path))
    rec = records.Recorder(env={"gpu": "g"}, run_id="env")
    rec.append([required_row()])
    assert rec.path.parent == tmp_path / "results"
    assert list(records.load()["run_id"]) == ["env"]
