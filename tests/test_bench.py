"""CPU tests of the harness: statistics, byte counting, the gate, presets, floors and sweeps,
with a fake timer and a fake clock standing in for the GPU."""

import math

import pytest
import torch

from decodekit import measure
from decodekit.impls.registry import Impl
from decodekit.measure import bench, cupti_timer, floors, sweep
from decodekit.measure.stats import NOISE_THRESHOLD, memory_figures, spread, summarize
from decodekit.measure.timing import DeviceTimer, Samples, Target
from decodekit.problem.reference import gdn_decode
from decodekit.problem.spec import bytes_moved
from decodekit.views import commands


def correct(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state):
    o, s = gdn_decode(q, k, v, state, A_log, a, dt_bias, b, scale)
    output.copy_(o)
    new_state.copy_(s)


def no_decay_writes_zeros(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state):
    output.zero_()
    new_state.zero_()


class FakeTimer:
    """Returns fixed samples per method; ``missing`` methods are unavailable."""

    def __init__(self, samples=None, missing=(), fail=()):
        self.samples = samples or {}
        self.missing = set(missing)
        self.fail = set(fail)
        self.calls = []

    def unavailable(self, method, device):
        return f"{method} missing (fake)" if method in self.missing else None

    def trial(self, method, target, n_warmup, n_iter):
        self.calls.append((method, n_warmup, n_iter))
        if method in self.fail:
            raise RuntimeError("boom")
        target()  # the call itself runs, as it would under a real timer
        us = self.samples.get(method, [10.0, 11.0, 12.0])
        return Samples(list(us), {"sum_us": [5.0] * len(us)} if method == "cupti-cold" else {})


class FakeClock:
    """Advances ``step`` seconds each time it is read."""

    def __init__(self, step):
        self.t, self.step = 0.0, step

    def __call__(self):
        self.t += self.step
        return self.t


def cpu_run(timer, **kw):
    return bench.open_run("cpu", out_dir=None, timer=timer, **kw)


# statistics -------------------------------------------------------------------------------


def test_summarize_fixed_arrays():
    s = summarize([[1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 3.0, 4.0, 5.0, 6.0]])
    assert s.median_us == 3.5 and s.mean_us == 3.5 and s.min_us == 1.0
    assert s.p10_us == pytest.approx(1.9) and s.p90_us == pytest.approx(5.1)
    assert s.trial_medians_us == (3.0, 4.0)
    assert s.spread == pytest.approx(1.0 / 3.5) and s.noisy
    assert s.n_samples == 10


def test_headline_statistics():
    trials = [[10.0, 10.0, 40.0], [12.0, 12.0, 12.0]]
    assert summarize(trials, statistic="median").latency_us == 12.0
    assert summarize(trials, statistic="mean").latency_us == pytest.approx(96.0 / 6)
    assert summarize(trials, statistic="median-then-mean").latency_us == 11.0
    with pytest.raises(ValueError, match="statistic"):
        summarize(trials, statistic="max")
    with pytest.raises(ValueError, match="trials"):
        summarize([[]])


def test_noise_flag_threshold():
    assert spread([10.0]) == 0.0
    quiet = summarize([[100.0], [100.0 * (1 + NOISE_THRESHOLD / 2)]])
    loud = summarize([[100.0], [100.0 * (1 + 2 * NOISE_THRESHOLD)]])
    assert not quiet.noisy and loud.noisy
    assert summarize([[100.0], [103.0]], threshold=0.01).noisy


def test_memory_figures():
    m = memory_figures(67_000_000, 27.0, copy_us=27.0, peak_gbps=3000.0)
    assert m["gbps"] == pytest.approx(67e6 / 27e3)
    assert m["pct_copy"] == pytest.approx(100.0)
    assert m["pct_peak"] == pytest.approx(100 * m["gbps"] / 3000.0)
    assert memory_figures(10, 1.0)["pct_copy"] is None


def test_bytes_counting():
    b = bytes_moved(64)
    state = 64 * 8 * 128 * 128 * 4
    assert b["state_read"] == b["state_write"] == state
    small = 2 * (64 * 4 * 128 * 2) + 2 * (64 * 8 * 128 * 2) + 2 * 64 * 8 * 2 + 2 * 8 * 4
    assert b["total"] == 2 * state + small
    assert bytes_moved(3)["total"] < bytes_moved(4)["total"]


# presets ----------------------------------------------------------------------------------


def test_presets_reproduce_protocols():
    c, s, f = measure.PRESETS["contest"], measure.PRESETS["seed"], measure.PRESETS["fib-0.1.2"]
    assert (c.method, c.n_warmup, c.n_iter, c.n_trials) == ("cupti-cold", 10, 50, 3)
    assert c.statistic == "median-then-mean" and c.fallback == "events-cold"
    assert (s.method, s.n_warmup, s.n_iter, s.n_trials, s.statistic) == (
        "fib-0.1.2",
        3,
        100,
        5,
        "mean",
    )
    assert (f.n_warmup, f.n_iter, f.n_trials, f.statistic) == (10, 50, 3, "mean")
    assert {"quick", "standard"} <= set(measure.PRESETS)
    with pytest.raises(KeyError, match="preset"):
        measure.get_preset("nope")


def test_contest_falls_back_honestly_without_cupti():
    timer = FakeTimer(missing={"cupti-cold"})
    rows = bench.bench(correct, 3, preset="contest", run=cpu_run(timer))
    assert [r["method"] for r in rows] == ["events-cold"]
    assert "cupti-cold unavailable" in rows[0]["note"] and rows[0]["status"] == "ok"
    assert timer.calls == [("events-cold", 10, 50)] * 3


# the gate ---------------------------------------------------------------------------------


def test_bench_times_after_passing_check():
    timer = FakeTimer({"events-cold": [4.0, 5.0, 6.0]})
    rows = bench.bench(correct, 3, preset="quick", methods=["wall"], run=cpu_run(timer))
    r = rows[0]
    assert r["status"] == "ok" and r["check"] == "passed" and r["method"] == "events-cold"
    assert r["latency_us"] == 5.0 and r["n_trials"] == 2 and r["batch_size"] == 3
    assert r["bytes"] == bytes_moved(3)["total"]
    assert r["gbps"] == pytest.approx(r["bytes"] / 5e3)
    assert rows[1]["method"] == "wall" and rows[1]["gbps"] is None


def test_gate_refuses_wrong_implementation():
    timer = FakeTimer()
    rows = bench.bench(
        no_decay_writes_zeros, 3, preset="quick", methods=["wall"], run=cpu_run(timer)
    )
    assert [r["status"] for r in rows] == ["check-failed", "check-failed"]
    assert all(r["latency_us"] is None for r in rows)
    assert "FAIL" in rows[0]["note"]
    assert timer.calls == []


def test_unavailable_impl_and_method():
    missing = Impl(
        "needs-pkg",
        "baseline",
        "",
        factory=lambda: correct,
        device="any",
        requires=lambda: "package 'x' not installed",
    )
    rows = bench.bench(missing, 1, run=cpu_run(FakeTimer()))
    assert rows[0]["status"] == "unavailable" and "not installed" in rows[0]["note"]
    rows = bench.bench(
        correct, 1, methods=["graph-hot"], run=cpu_run(FakeTimer(missing={"graph-hot"}))
    )
    assert [r["status"] for r in rows] == ["ok", "unavailable"]


def test_timer_error_is_recorded():
    rows = bench.bench(correct, 1, run=cpu_run(FakeTimer(fail={"events-cold"})))
    assert rows[0]["status"] == "error" and "boom" in rows[0]["note"]


def test_cupti_extras_recorded():
    rows = bench.bench(correct, 1, preset="standard", run=cpu_run(FakeTimer()))
    assert rows[0]["method"] == "cupti-cold" and rows[0]["sum_us"] == 5.0


# floors -----------------------------------------------------------------------------------


def test_floors_measured_once_and_used():
    timer = FakeTimer({"events-cold": [20.0]})
    run = cpu_run(timer, floors=True, peak_bytes=1 << 16)
    rows = bench.bench(correct, 2, run=run) + bench.bench(correct, 2, run=run)
    by = {(r["impl"], r.get("floor")): r for r in rows}
    assert by[("torch-copy", "copy-floor")]["batch_size"] == 2
    assert by[("torch-copy", "copy-floor")]["method"] == "events-cold"  # what timed it
    assert by[("torch-copy", "copy-peak")]["bytes"] == 2 << 16
    assert by[("empty-kernel", "empty-kernel")]["status"] in ("unavailable", "ok", "error")
    assert sum(r.get("floor") == "copy-floor" for r in rows) == 1
    impl = [r for r in rows if r["impl_kind"] == "adhoc"]
    assert len(impl) == 2 and impl[0]["pct_copy"] == pytest.approx(100.0)
    assert impl[0]["pct_peak"] is not None
    assert [r.get("floor") for r in rows].count("row-copy-floor") == 1


def test_row_copy_floor_keeps_the_fastest_build(monkeypatch):
    import decodekit.build.launch

    def fake_kernel_impl(source, entry, shape, defines, **kw):
        assert source == "row_copy.cu" and entry == "row_copy"
        return correct

    monkeypatch.setattr(decodekit.build.launch, "kernel_impl", fake_kernel_impl)
    run = cpu_run(FakeTimer({"events-cold": [20.0]}), floors=True, peak_bytes=1 << 16)
    rows = bench.bench(correct, 2, run=run)
    rc = [r for r in rows if r.get("floor") == "row-copy-floor"]
    assert len(rc) == 1 and rc[0]["impl"] == "row-copy" and rc[0]["batch_size"] == 2
    assert rc[0]["status"] == "ok" and rc[0]["configs_tried"] == len(floors.ROW_COPY_CONFIGS)
    assert rc[0]["defines"] in floors.ROW_COPY_CONFIGS and rc[0]["selected_us"] == 20.0
    impl = next(r for r in rows if r["impl_kind"] == "adhoc")
    assert impl["pct_row_copy"] == pytest.approx(100.0)


def test_row_copy_floor_unavailable_is_recorded_not_raised(monkeypatch):
    import decodekit.build.launch

    def no_nvrtc(*a, **k):
        raise RuntimeError("no NVRTC here")

    monkeypatch.setattr(decodekit.build.launch, "kernel_impl", no_nvrtc)
    run = cpu_run(FakeTimer({"events-cold": [20.0]}), floors=True, peak_bytes=1 << 16)
    rows = bench.bench(correct, 2, run=run)
    rc = next(r for r in rows if r.get("floor") == "row-copy-floor")
    assert rc["status"] == "unavailable" and "no NVRTC here" in rc["note"]
    impl = next(r for r in rows if r["impl_kind"] == "adhoc")
    assert impl["status"] == "ok" and impl["pct_row_copy"] is None


# the device timer's host methods with a fake clock ----------------------------------------


def test_host_methods_with_fake_clock():
    t = Target(lambda: None, {}, torch.device("cpu"))
    timer = DeviceTimer(clock=FakeClock(5e-6))
    assert timer.trial("host-dispatch", t, 2, 4).us == pytest.approx([5.0] * 4)
    assert timer.trial("wall", t, 0, 3).us == pytest.approx([5.0] * 3)
    assert "CUDA" in timer.unavailable("events-cold", torch.device("cpu"))
    assert "unknown" in timer.unavailable("nope", torch.device("cpu"))


def test_cupti_spans_correlate_by_launch():
    api = [(100, 1), (150, 2), (400, 3)]
    gpu = [(1000, 3000, 1), (3500, 4000, 2), (9000, 9100, 3)]
    span, total, count, names = cupti_timer.spans(api, gpu, [(90, 200), (390, 410)])
    assert span == [3.0, 0.1] and total == [2.5, 0.1] and count == [2.0, 1.0]
    assert names == [("?", "?"), ("?",)]
    with pytest.raises(RuntimeError, match="no GPU activity"):
        cupti_timer.spans(api, gpu, [(0, 50)])


# sweeps -----------------------------------------------------------------------------------


def test_sweep_plumbing_writes_records(tmp_path):
    df = sweep.run(
        [correct, no_decay_writes_zeros],
        "B1,B3,5",
        preset="quick",
        out_dir=tmp_path,
        progress=False,
        device="cpu",
        timer=FakeTimer({"events-cold": [7.0]}),
    )
    assert len(df) == 6
    assert set(df["status"]) == {"ok", "check-failed"}
    ok = df[df["status"] == "ok"]
    assert list(ok["batch_size"]) == [1, 3, 5] and (ok["latency_us"] == 7.0).all()
    files = list(tmp_path.glob("*.jsonl"))
    assert len(files) == 1 and len(files[0].read_text().splitlines()) == 1 + 6  # header + rows
    t = sweep.table(df, "events-cold")
    assert t.loc["correct", 3] == "7.0" and t.loc["no_decay_writes_zeros", 5] == "check-failed"


def test_cli_bench_prints_table(tmp_path, capsys):
    rc = commands.bench(["torch-fp32"], "B1", preset="quick", methods=["wall"], out_dir=tmp_path)
    out = capsys.readouterr().out
    assert rc == 0 and "torch-fp32" in out and "records:" in out
    with pytest.raises(KeyError, match="argument 'preset'"):
        commands.bench(["torch-fp32"], "B1", preset="bogus", out_dir=tmp_path)


def test_stats_row_is_json_ready():
    r = summarize([[1.0, 2.0]]).row()
    assert isinstance(r["trial_medians_us"], list) and not math.isnan(r["latency_us"])


def test_sweep_methods_string_and_hot():
    timer = FakeTimer()
    df = sweep.run(
        [correct],
        "B2",
        out_dir=None,
        progress=False,
        device="cpu",
        timer=timer,
        methods="wall,host-dispatch",
        hot=True,
    )
    assert list(df["method"]) == ["events-cold", "wall", "host-dispatch", "graph-hot"]


def test_reset_persisting_l2_names_the_driver_error(monkeypatch):
    import contextlib
    import enum
    import sys
    import types

    from decodekit.measure import timing

    class CUresult(enum.Enum):
        CUDA_SUCCESS = 0
        CUDA_ERROR_NOT_SUPPORTED = 801

    calls = []
    fake = types.SimpleNamespace(CUresult=CUresult,
                                 cuCtxResetPersistingL2Cache=lambda: calls.append(1) or (result,))  # fmt: skip
    bindings = types.ModuleType("cuda.bindings")
    bindings.driver = fake
    monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
    monkeypatch.setattr(torch.cuda, "device", lambda d: contextlib.nullcontext())
    result = CUresult.CUDA_SUCCESS
    timing.reset_persisting_l2(torch.device("cuda", 0))
    result = CUresult.CUDA_ERROR_NOT_SUPPORTED
    with pytest.raises(
        RuntimeError, match="cuCtxResetPersistingL2Cache on cuda:0: CUDA_ERROR_NOT_SUPPORTED"
    ):
        timing.reset_persisting_l2(torch.device("cuda", 0))
    assert calls == [1, 1]
