"""Records round trip and the summaries (seed report, speedups, contest score, breakdown)
on a synthetic DataFrame over the 54 contest workloads."""

import gzip
import json

import numpy as np
import pandas as pd
import pytest

from decodekit import records
from decodekit.problem.workloads import select
from decodekit.views import score

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
    bad = required_row(uuid="B3", batch_size=3, latency_us=float("nan"))
    with pytest.raises(ValueError, match="status ok with latency_us nan"):
        rec.append([required_row(), bad])  # what the reader would skip is never written
    assert not rec.path.exists() and rec.rows == []
    rec.append([required_row(), dict(bad, status="error", latency_us=None)])
    assert rec.path.name.endswith("_h100-80gb-hbm3_r1.jsonl")
    assert rec.path.name[:10] == rec.started[:10]
    lines = [json.loads(x) for x in rec.path.read_text().splitlines()]
    # schema 2 and on: the environment once, in the run header; rows hold only what differs
    assert len(lines) == 3 and lines[0]["kind"] == "run" and lines[0]["sm_count"] == 132
    assert "gpu" not in lines[1] and lines[2]["latency_us"] is None
    rec.append([required_row(uuid="B4", batch_size=4)])  # later batches add no header
    assert sum('"kind": "run"' in x for x in rec.path.read_text().splitlines()) == 1
    df = records.load(tmp_path)
    assert df["uuid"].tolist() == ["B1", "B3", "B4"] and (df["schema"] == records.SCHEMA).all()
    assert df["status"].tolist() == ["ok", "error", "ok"]
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


# records that must never be used, and never crash a view ----------------------------------


def _line(**kw):
    r = dict(required_row(), gpu="G", timestamp="2026-01-01T00:00:00+00:00")
    r.update(kw)
    return json.dumps(r)


@pytest.mark.parametrize(
    "bad, why",
    [
        (_line(latency_us=float("nan")).replace("NaN", '"NaN"'), "not finite and positive"),
        (_line(latency_us=-1.0), "not finite and positive"),
        (_line(latency_us="fast"), "not a number"),
        (_line(latency_us=None), "not a number"),
        (_line(timestamp="yesterday"), "does not parse"),
        (_line(batch_size=0), "not an int >= 1"),
        (_line(gpu=""), "is not a GPU name"),
        (_line(status="check-failed", latency_us=2.0), "with a latency"),
        ("[1, 2, 3]", "a JSON list, not a record object"),
        ("42", "a JSON int, not a record object"),
        ('{"impl": "half', "not a JSON record"),
    ],
)
def test_a_bad_row_is_skipped_with_its_file_and_line(tmp_path, bad, why):
    f = tmp_path / "r.jsonl"
    f.write_text(_line() + "\n" + bad + "\n" + _line(uuid="B3", batch_size="3") + "\n")
    with pytest.warns(UserWarning, match=rf"r\.jsonl:2: .*{why}"):
        df = records.load(tmp_path)
    assert df["uuid"].tolist() == ["B1", "B3"] and df["batch_size"].tolist() == [1, 3]


def test_a_partly_written_line_does_not_swallow_the_next_record(tmp_path):
    rec = records.Recorder(tmp_path, env={"gpu": "G"}, run_id="r")
    rec.append([required_row()])
    with open(rec.path, "a") as f:
        f.write('{"impl": "kit", "uuid": "B2", "batch')  # the disk filled up mid-line
    rec.append([required_row(uuid="B3", batch_size=3)])
    with pytest.warns(UserWarning, match=":3: not a JSON record"):  # line 1: the run header
        df = records.load(tmp_path)
    assert df["uuid"].tolist() == ["B1", "B3"]


def test_a_failed_append_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    rec = records.Recorder(tmp_path, env={"gpu": "G"}, run_id="r")
    rec.append([required_row()])
    before = rec.path.read_bytes()
    calls = []

    def short_then_full(fd, data):
        calls.append(len(data))
        if len(calls) == 1:
            return real(fd, data[:10])  # part of the batch lands...
        raise OSError(28, "No space left on device")  # ...then the disk is full

    real = records.os.write
    monkeypatch.setattr(records.os, "write", short_then_full)
    with pytest.raises(OSError):
        rec.append([required_row(uuid="B3"), required_row(uuid="B4")])
    monkeypatch.undo()
    assert rec.path.read_bytes() == before


def test_json_files_are_replaced_whole(tmp_path, monkeypatch):
    path = records.write_json(tmp_path / "t.json", {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}

    def boom(*a, **kw):
        raise OSError("disk full")

    monkeypatch.setattr(records.os, "replace", boom)
    with pytest.raises(OSError):
        records.write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 1} and list(tmp_path.iterdir()) == [path]


def test_table_and_report_survive_a_non_object_line(tmp_path, monkeypatch, capsys):
    from decodekit.views import kernel_table, report

    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "r.jsonl").write_text('[1, 2]\n"text"\n' + _line(impl="best") + "\n")
    monkeypatch.setenv("DECODEKIT_DATA", str(tmp_path))
    with pytest.warns(UserWarning, match="not a record object"):
        df = records.load(tmp_path / "results")
        html = report._index([], {}, False)
    assert len(df) == 1 and "decodekit reports" in html
    assert isinstance(kernel_table.markdown(df), str)


def test_schema_1_records_still_load(tmp_path):
    old = dict(required_row(), schema=1, run_id="old", gpu="G", sm_count=132,
               timestamp="2026-01-01T00:00:00+00:00")  # fmt: skip
    (tmp_path / "old.jsonl").write_text(json.dumps(old) + "\n")
    df = records.load(tmp_path)
    assert df["gpu"].tolist() == ["G"] and df["schema"].tolist() == [1]


def test_an_unknown_status_is_neither_written_nor_read(tmp_path):
    rec = records.Recorder(tmp_path, env={"gpu": "G"}, run_id="r")
    with pytest.raises(ValueError, match="status .fine. is not one of ok, check-failed"):
        rec.append([required_row(status="fine")])
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps({**required_row(status="fine"), "gpu": "G",
                                "timestamp": "2026-12-01T00:00:00+00:00"}) + "\n")  # fmt: skip
    with pytest.warns(UserWarning, match="x.jsonl:1: .*status 'fine'"):
        assert records.read(path) == []


def test_schema_2_floor_rows_load_as_schema_3(tmp_path):
    """Schema 2 named a floor in ``method`` and its timing method in ``timing``; read back,
    ``floor`` names it and ``method`` is what timed it, as the kit writes them now."""
    head = {"schema": 2, "kind": "run", "run_id": "r2", "gpu": "G"}
    ts = "2026-12-01T00:00:00+00:00"
    rows = [
        dict(schema=2, run_id="r2", timestamp=ts, impl="torch-copy", impl_kind="floor",
             method="copy-floor", timing="cupti-cold", uuid="B1", batch_size=1, latency_us=2.0,
             status="ok"),
        dict(schema=2, run_id="r2", timestamp=ts, impl="empty-kernel", impl_kind="floor",
             method="host-dispatch", timing="host-dispatch", latency_us=5.0, status="ok"),
        dict(schema=2, run_id="r2", timestamp=ts, impl="empty-kernel", impl_kind="floor",
             method="host-steady-bare-cupy", uuid="B1", batch_size=1, latency_us=3.0,
             status="ok"),
    ]  # fmt: skip
    path = tmp_path / "two.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [head, *rows]))
    df = records.load(tmp_path)
    assert df[["floor", "method"]].values.tolist() == [
        ["copy-floor", "cupti-cold"],
        ["empty-kernel", "host-dispatch"],
        ["host-bare-cupy", "host-steady"],
    ]
    assert "timing" not in df.columns


def test_a_record_is_typed_and_checked():
    from decodekit.records.schema import Record, Status

    r = Record.from_row(required_row())
    assert r.status is Status.OK and r.row()["status"] == "ok" and r.ok
    with pytest.raises(ValueError, match="argument 'status'"):
        Record(impl="x", method="m", status="fine")
    with pytest.raises(ValueError, match="carries no latency"):
        Record(impl="x", method="m", status="error", latency_us=1.0)
    with pytest.raises(ValueError, match="finite positive latency"):
        Record(impl="x", method="m", status="ok", latency_us=-1.0)
    with pytest.raises(ValueError, match="not a valid record .missing uuid"):
        Record.from_row({"impl": "x", "method": "m", "status": "ok", "latency_us": 1.0,
                         "batch_size": 1})  # fmt: skip
    with pytest.raises(ValueError, match="Record attributes"):
        Record(impl="x", method="m", status="error", fields={"status": "ok"})


def test_select_is_one_gpu_newest_ok_rows_of_one_method():
    from decodekit import views

    ts = "2026-12-01T00:00:0{}+00:00"
    rows = [
        dict(required_row(method="cupti-cold", latency_us=2.0), gpu="A", timestamp=ts.format(1)),
        dict(required_row(method="cupti-cold", latency_us=1.0), gpu="A", timestamp=ts.format(2)),
        dict(required_row(method="wall", latency_us=9.0), gpu="A", timestamp=ts.format(2)),
        dict(required_row(method="cupti-cold", latency_us=None, status="error"), gpu="A",
             timestamp=ts.format(3), uuid="B2", batch_size=2),
        dict(required_row(method="cupti-cold", latency_us=5.0), gpu="B", timestamp=ts.format(0)),
    ]  # fmt: skip
    df = records.to_frame(rows)
    d, m = views.select(df)
    assert m == "cupti-cold" and d["latency_us"].tolist() == [1.0] and set(d["gpu"]) == {"A"}
    d, m = views.select(df, "wall")
    assert d["latency_us"].tolist() == [9.0]
    d, _ = views.select(df, gpu="B")
    assert d["latency_us"].tolist() == [5.0]
    d, _ = views.select(df, only_ok=False)
    assert sorted(d["status"]) == ["error", "ok"]


def test_a_packed_run_reads_as_it_was_and_takes_no_more_rows(tmp_path):
    rec = records.Recorder(tmp_path, env={"gpu": "G"}, run_id="p")
    rec.append([required_row(), required_row(uuid="B2", batch_size=2)])
    plain = records.load(tmp_path).drop(columns=["source_file"])
    first = rec.pack()
    assert first.name.endswith("_p.jsonl.gz") and not first.with_suffix("").exists()
    assert records.read(first) == records.read(first) and len(records.read(first)) == 2
    pd.testing.assert_frame_equal(records.load(tmp_path).drop(columns=["source_file"]), plain)
    assert records.load(first)["source_file"].tolist() == [first.name] * 2
    with pytest.raises(ValueError, match="argument 'rows': run p is packed"):
        rec.append([required_row()])
    again = records.Recorder(tmp_path / "again", env={"gpu": "G"}, run_id="p")
    again.started = rec.started
    again.path = tmp_path / "again" / first.name[: -len(".gz")]
    again.path.parent.mkdir()
    again.path.write_bytes(gzip.decompress(first.read_bytes()))
    assert again.pack().read_bytes() == first.read_bytes()  # the same records, the same bytes
    with pytest.raises(ValueError, match="argument 'path': expected a .jsonl file"):
        records.pack(first)
    assert records.Recorder(None).pack() is None
