"""Sweeps over several workers (issue 20), on the CPU: the sharding, the merge, a worker that
raises or dies, with local worker processes and with a local Ray cluster with fake GPUs."""

import json
import os
from pathlib import Path

import pytest

from decodekit import records
from decodekit.measure import fleet, tuning

TESTS = Path(__file__).resolve().parent
CONFIGS = [
    ("rowsplit", {"WARPS": 4, "ROWS_PER_WARP": 4}),
    ("bulk", {"WARPS": 2, "ROWS_PER_WARP": 8}),
]
HOOKS = {"timer": "fleet_fakes:Timer", "make": "fleet_fakes:make"}


@pytest.fixture(autouse=True)
def worker_path(monkeypatch):
    """Workers (and this process) import the stand-ins from tests/ by name."""
    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    )


def _tune_params(**hooks):
    return dict(configs=[list(c) for c in CONFIGS], preset="quick", device="cpu",
                hooks={**HOOKS, **hooks})  # fmt: skip


def test_shards_keep_every_candidate_of_a_batch_size_together():
    shards = fleet.tune_shards([1, 4, 1, 64], configs="full")
    assert [s.batch_size for s in shards] == [1, 4, 64]
    assert all(s.params == {"configs": "full"} for s in shards)
    bench = fleet.bench_shards("contest")
    from decodekit.problem.workloads import select

    assert sorted(len(s.workloads) for s in bench) == sorted(
        [sum(w.batch_size == s.batch_size for w in select("contest")) for s in bench]
    )
    assert len({s.batch_size for s in bench}) == len(bench) == 7
    again = fleet.Shard.from_json(bench[0].to_json())
    assert again == bench[0] and again.workloads == bench[0].workloads


def test_local_workers_tune_gives_the_one_process_table(tmp_path):
    one = tuning.tune(None, (1, 3), CONFIGS, device="cpu", out_dir=tmp_path / "one",
                      timer=fleet._hook(HOOKS["timer"]), make=fleet._hook(HOOKS["make"]),
                      verbose=False)  # fmt: skip
    df, failed = fleet.tune((1, 3), devices=["0", "0"], out_dir=tmp_path / "two", **_tune_params())
    assert failed == [] and len(df) == len(one)
    a = json.loads((tmp_path / "one" / "cpu.json").read_text())["table"]
    b = json.loads((tmp_path / "two" / "cpu.json").read_text())["table"]
    assert {k: (v["variant"], v["defines"]) for k, v in a.items()} == {
        k: (v["variant"], v["defines"]) for k, v in b.items()
    }
    assert all(":cuda0" in v["timed_on"] for v in b.values())  # which GPU timed each entry


def test_local_workers_bench_is_one_run_with_the_gpu_of_every_row(tmp_path):
    df, failed = fleet.bench("B1,B3,B5", devices=["0", "0"], out_dir=tmp_path,
                             impls=["torch-fp32"], preset="quick", device="cpu",
                             hooks={"timer": "fleet_fakes:Timer"})  # fmt: skip
    assert failed == []
    (path,) = tmp_path.glob("*.jsonl")
    rows = records.read(path)
    assert len({r["run_id"] for r in rows}) == 1
    assert sorted(r["batch_size"] for r in rows) == [1, 3, 5]
    assert all(r["status"] == "ok" and r["timed_on"].endswith(":cuda0") for r in rows)
    # the records a one-GPU run writes: no view labels or derived columns
    assert not {"impl_name", "provenance", "recorded"} & set().union(*rows)
    assert {r["impl"] for r in rows} == {"torch-fp32"}
    assert df.attrs["path"] == str(path)


def test_a_worker_that_raises_is_reported_and_its_shard_requeued_once(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("FLEET_MARKER", str(tmp_path / "marker"))
    df, failed = fleet.tune((1, 3), devices=["0"], out_dir=tmp_path,
                            **_tune_params(timer="fleet_fakes:FlakyTimer"))  # fmt: skip
    err = capsys.readouterr().err
    assert failed == [] and sorted(set(df["batch_size"])) == [1, 3]
    assert "failed on gdn_decode_qk4_v8_d128_k_last B=1" in err and "re-queued" in err
    assert "flaky worker: failed on purpose" in err


def test_a_worker_that_dies_loses_nothing_already_recorded(tmp_path, capsys):
    df, failed = fleet.bench("B1,B4", devices=["0"], out_dir=tmp_path, impls=["torch-fp32"],
                             preset="quick", device="cpu",
                             hooks={"timer": "fleet_fakes:DyingTimer"})  # fmt: skip
    assert [(s.batch_size, why.split(":")[0]) for s, why in failed] == [(4, "exit 3")]
    (path,) = tmp_path.glob("*.jsonl")
    assert [r["batch_size"] for r in records.read(path)] == [1]
    err = capsys.readouterr().err
    assert "re-queued" in err and "giving up on it" in err


def test_bad_devices_name_the_argument():
    with pytest.raises(ValueError, match="argument '--devices'.*got 'a,1'"):
        fleet.parse_devices("a,1")
    with pytest.raises(ValueError, match=r"argument '--devices'.*\(1 visible\), got '0,1'"):
        fleet.parse_devices("0,1", available=1)
    with pytest.raises(ValueError, match="argument '--devices'"):
        fleet.pool(["0"], "auto")


def test_ray_tasks_over_a_local_cluster_with_fake_gpus(tmp_path):
    ray = pytest.importorskip("ray", reason="pip install 'decodekit[ray]'")
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}})  # fmt: skip
    try:
        df, failed = fleet.tune((1, 3), ray="local", out_dir=tmp_path, **_tune_params())
        assert failed == [] and sorted(set(df["batch_size"])) == [1, 3]
        table = json.loads((tmp_path / "cpu.json").read_text())["table"]
        assert {v["timed_on"].split(":cuda")[1][:1] for v in table.values()} <= {"0", "1"}
    finally:
        ray.shutdown()


def test_ctrl_c_stops_every_worker(tmp_path, monkeypatch):
    import _thread
    import threading
    import time

    monkeypatch.setenv("FLEET_MARKER", str(tmp_path))
    pids = lambda: [int(p.name) for p in tmp_path.iterdir() if p.name.isdigit()]  # noqa: E731

    def press_ctrl_c():
        deadline = time.monotonic() + 60
        while len(pids()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        _thread.interrupt_main()

    threading.Thread(target=press_ctrl_c, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        fleet.tune((1, 3), devices=["0", "0"], out_dir=tmp_path / "t",
                   **_tune_params(timer="fleet_fakes:SleepyTimer"))  # fmt: skip
    assert len(pids()) == 2
    for pid in pids():  # killed and reaped
        assert not Path(f"/proc/{pid}").exists(), pid
    assert not (tmp_path / "t").exists()
