"""GPU tests of the harness: every timing method on the kit's ``baseline`` variant, CUPTI
spans, the presets, the gate refusing a wrong implementation, the FLA adapter, a sweep.

Performance is never asserted here; only that each method measures and records."""

import importlib.util

import pytest

from decodekit import records
from decodekit.impls import registry
from decodekit.measure import bench, sweep
from decodekit.measure.check import check
from decodekit.problem.spec import bytes_moved

pytestmark = pytest.mark.gpu


def no_decay_writes_zeros(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state):
    output.zero_()
    new_state.zero_()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return bench.open_run("cuda", out_dir=tmp_path_factory.mktemp("results"))


def impl_rows(rows, name):
    return {r["method"]: r for r in rows if r["impl"] == name}


def test_every_method_on_baseline_variant(run):
    rows = bench.bench(
        "baseline",
        "B64",
        preset="quick",
        run=run,
        methods=["graph-hot", "host-dispatch", "wall", "fib-0.1.2"],
    )
    by = impl_rows(rows, "baseline")
    assert set(by) == {"events-cold", "graph-hot", "host-dispatch", "wall", "fib-0.1.2"}
    for r in by.values():
        assert r["status"] == "ok", r.get("note")
        assert r["check"] == "passed" and r["latency_us"] > 0
    cold = by["events-cold"]
    assert cold["bytes"] == bytes_moved(64)["total"] and cold["gbps"] > 0
    assert cold["pct_copy"] > 0 and cold["pct_peak"] > 0
    # the launch was pre-queued behind the sleep in (nearly) every sample
    assert cold["prequeue_missed"] <= 0.1
    floors = {r["floor"]: r for r in rows if r["impl_kind"] == "floor"}
    assert {"copy-floor", "row-copy-floor", "copy-peak", "empty-kernel"} <= set(floors)
    assert floors["copy-floor"]["status"] == "ok" and floors["copy-peak"]["gbps"] > 0
    assert floors["row-copy-floor"]["status"] == "ok", floors["row-copy-floor"].get("note")
    assert cold["pct_row_copy"] > 0


@pytest.mark.parametrize("B", [1, 3, 64])
def test_row_copy_floor_kernel_copies_every_row(B):
    """The floor kernel does the state traffic exactly: new_state is state, output zero."""
    import torch

    from decodekit.build.launch import kernel_impl
    from decodekit.impls.variants import split_shape
    from decodekit.measure.floors import ROW_COPY_CONFIGS
    from decodekit.problem.workloads import empty_outputs, make_inputs

    x = make_inputs(B, "cuda")
    for d in ROW_COPY_CONFIGS:
        out = empty_outputs(B, "cuda")  # NaN-poisoned
        kernel_impl("row_copy.cu", "row_copy", split_shape(d), d)(**x, **out)
        torch.cuda.synchronize()
        assert torch.equal(out["new_state"], x["state"]), d
        assert (out["output"] == 0).all(), d


def test_cupti_span_of_one_and_many_kernels(run):
    why = run.timer.unavailable("cupti-cold", run.device)
    if why:
        pytest.skip(why)
    kit = impl_rows(bench.bench("baseline", "B8", preset="standard", run=run), "baseline")
    r = kit["cupti-cold"]
    assert r["status"] == "ok" and r["n_kernels"] == 1
    assert r["kernels"] == ["gdn_decode_baseline"] and r["kernel_flag"] is None
    assert r["sum_us"] == pytest.approx(r["latency_us"], rel=1e-6)
    ref = impl_rows(bench.bench("torch-fp32", "B8", preset="standard", run=run), "torch-fp32")
    r = ref["cupti-cold"]
    assert r["status"] == "ok" and r["n_kernels"] > 1 and r["sum_us"] <= r["latency_us"]
    assert r["kernel_flag"] is None  # declared multi-kernel, and the same set every call


def test_contest_and_seed_presets(run):
    contest = impl_rows(bench.bench("baseline", "B1", preset="contest", run=run), "baseline")
    (r,) = contest.values()
    assert r["status"] == "ok" and r["method"] in ("cupti-cold", "events-cold")
    assert (r["n_warmup"], r["n_iter"], r["n_trials"]) == (10, 50, 3)
    assert r["statistic"] == "median-then-mean" and len(r["trial_medians_us"]) == 3
    seed = impl_rows(bench.bench("baseline", "B1", preset="seed", run=run), "baseline")
    assert seed["fib-0.1.2"]["status"] == "ok" and seed["fib-0.1.2"]["statistic"] == "mean"


def test_gate_refuses_wrong_implementation_on_gpu(run):
    rows = bench.bench(no_decay_writes_zeros, "B3", methods=["wall"], run=run)
    assert [r["status"] for r in rows] == ["check-failed", "check-failed"]
    assert all(r["latency_us"] is None for r in rows)


@pytest.mark.skipif(importlib.util.find_spec("fla") is None, reason="fla-core not installed")
@pytest.mark.parametrize("B", [1, 3, 64])
def test_fla_adapter_matches_the_oracle(B):
    res = check(registry.get("fla"), B, device="cuda")
    assert res.passed, res.summary()


def test_sweep_records_round_trip(tmp_path):
    df = sweep.run(
        ["baseline", "torch-fp32"],
        "B1,B3",
        preset="quick",
        methods="wall",
        out_dir=tmp_path,
        progress=False,
    )
    mine = df[df["impl_kind"] != "floor"]
    assert len(mine) == 8 and (mine["status"] == "ok").all()
    loaded = records.load(tmp_path)
    assert len(loaded) == len(df) and loaded["recorded"].all()
    assert loaded["gpu"].iloc[0] != "cpu" and loaded["sm_count"].iloc[0] > 0


def test_flush_after_an_evict_last_store():
    """The timer's flush (device drained, persisting L2 lines reset, L2 zeroed) runs after a
    row copy that stored with an L2 evict_last policy (STORE_HINT 3), and that copy is exact."""
    import torch

    from decodekit.build.launch import kernel_impl
    from decodekit.impls.variants import split_shape
    from decodekit.measure.timing import DeviceTimer
    from decodekit.problem.workloads import empty_outputs, make_inputs

    d = {"WARPS": 4, "ROWS_PER_WARP": 8, "LOAD_HINT": 1, "STORE_HINT": 3}
    x, out = make_inputs(16, "cuda"), empty_outputs(16, "cuda")
    kernel_impl("row_copy.cu", "row_copy", split_shape(d), d)(**x, **out)
    DeviceTimer().flush(torch.device("cuda", 0))  # raises if the driver refuses the reset
    assert torch.equal(out["new_state"], x["state"])
