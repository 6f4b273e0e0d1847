"""Peers as their users call them: contracts, the kernel-set flag, and probes that call."""

import sys
import types

import pytest
import torch

from decodekit import records
from decodekit.impls import baselines
from decodekit.impls.registry import Impl, get
from decodekit.measure import bench, sweep
from decodekit.measure.check import check
from decodekit.measure.timing import Samples
from decodekit.problem.contracts import bind
from decodekit.problem.reference import gdn_decode


def reference(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state):
    o, s = gdn_decode(q, k, v, state, A_log, a, dt_bias, b, scale)
    output.copy_(o)
    new_state.copy_(s)


class KernelTimer:
    """A fake timer whose every call 'launches' the given GPU activities."""

    def __init__(self, per_call=(("k",),)):
        self.per_call = list(per_call)

    def unavailable(self, method, device):
        return None

    def trial(self, method, target, n_warmup, n_iter):
        target()
        kernels = [self.per_call[i % len(self.per_call)] for i in range(n_iter)]
        return Samples([5.0] * n_iter, {"n_kernels": [float(len(k)) for k in kernels]}, kernels)


def run(timer):
    return bench.open_run("cpu", out_dir=None, timer=timer, floors=False)


def impl(name="fake", **kw):
    return Impl(name=name, kind="baseline", description="test", factory=lambda: reference,
                device="any", **kw)  # fmt: skip


def test_inplace_binding_updates_a_copy_and_leaves_the_inputs_alone():
    inputs = {"state": torch.rand(1, 8, 128, 128)}
    before = inputs["state"].clone()
    kw = bind("inplace", inputs, {"output": torch.empty(1), "new_state": torch.empty(1)})
    kw["new_state"].add_(1.0)
    assert kw["state"] is kw["new_state"] and torch.equal(inputs["state"], before)
    with pytest.raises(ValueError, match="argument 'contract'"):
        bind("scatter", inputs, {})


def test_the_check_compares_the_state_updated_in_place():
    seen = []

    def inplace_only(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state):
        seen.append(state is new_state)
        reference(q, k, v, state.clone(), A_log, a, dt_bias, b, scale, output, new_state)

    assert check(inplace_only, 2, contract="inplace").passed and seen == [True]
    assert check(inplace_only, 2).passed and seen[-1] is False


def test_one_kernel_per_call_is_clean_and_a_two_kernel_call_is_flagged():
    row = bench.bench(impl(), 1, preset="standard", run=run(KernelTimer()))[0]
    assert row["status"] == "ok" and row["n_kernels"] == 1 and row["kernel_flag"] is None
    two = bench.bench(impl("copy-then-decode"), 1, preset="standard",
                      run=run(KernelTimer([("memcpy", "decode")])))[0]  # fmt: skip
    assert two["n_kernels"] == 2 and two["kernels"] == ["memcpy", "decode"]
    assert "launches 2 GPU activities per call (declared 1)" in two["kernel_flag"]
    t = sweep.table(records.to_frame([row, two]), "cupti-cold")
    assert list(t.index) == ["copy-then-decode" + records.FLAG, "fake"]


def test_a_changing_kernel_set_is_flagged_even_when_declared_multi_kernel():
    multi = impl("multi", kernels_per_call=None)
    row = bench.bench(multi, 1, preset="standard", run=run(KernelTimer([("a", "b")])))[0]
    assert row["kernel_flag"] is None  # declared: many kernels are its contract
    row = bench.bench(multi, 1, preset="standard", run=run(KernelTimer([("a",), ("a", "b")])))[0]
    assert row["kernel_flag"] == "the kernel set changed between calls (2 sets)"


def test_the_contract_round_trips_through_records_and_tables(tmp_path):
    both = impl("k", inplace_ok=True)
    assert (
        both.contracts == ("dps", "inplace")
        and impl("fi", contracts=("inplace",)).contract == "inplace"
    )
    rec = records.Recorder(tmp_path, env={"gpu": "G"}, run_id="r")
    r = bench.Run(torch.device("cpu"), KernelTimer(), rec)
    rows = [*bench.bench(both, 1, preset="standard", run=r),
            *bench.bench(both, 1, preset="standard", run=r, contract="inplace")]  # fmt: skip
    back = records.load(tmp_path)
    assert back["contract"].tolist() == ["dps", "inplace"]
    assert back["impl"].tolist() == ["k", "k [inplace]"]
    assert back["impl_name"].tolist() == ["k", "k"]
    assert list(sweep.table(back, "cupti-cold").index) == ["k", "k [inplace]"]
    assert records.label(back) is back  # labelling twice changes nothing
    assert [x["contract"] for x in rows] == ["dps", "inplace"]


def test_an_unsupported_contract_is_refused_not_timed():
    row = bench.bench(impl("dps-only"), 1, run=run(KernelTimer()), contract="pool")[0]
    assert row["status"] == "unsupported" and "supports dps" in row["note"]


def test_a_probe_that_fails_makes_the_peer_unavailable_with_the_reason():
    def broken():
        def fn(*args, **kw):
            raise TypeError("'NoneType' object is not callable")

        return fn

    peer = Impl(name="p", kind="baseline", description="t", factory=broken, device="any",
                probe=True)  # fmt: skip
    why = peer.unavailable()
    assert "B=1 call of its entry point failed: TypeError" in why
    row = bench.bench(peer, 1, run=run(KernelTimer()))[0]
    assert row["status"] == "unavailable" and row.get("latency_us") is None
    ok = Impl(name="q", kind="baseline", description="t", factory=lambda: reference,
              device="any", probe=True)  # fmt: skip
    assert ok.unavailable() is None and ok.fn is reference


def test_flashinfer_whose_cute_backend_failed_to_import_is_unavailable(monkeypatch):
    fake = types.ModuleType("flashinfer")
    gdn = types.ModuleType("flashinfer.gdn_decode")
    gdn._PRETRANSPOSE_AVAILABLE = False
    monkeypatch.setitem(sys.modules, "flashinfer", fake)
    monkeypatch.setitem(sys.modules, "flashinfer.gdn_decode", gdn)
    monkeypatch.setattr(baselines.importlib.util, "find_spec", lambda name: object())
    why = baselines._flashinfer_missing()
    assert "_PRETRANSPOSE_AVAILABLE is False" in why


def test_flashinfer_peers_declare_their_native_contracts():
    assert get("flashinfer").contracts == ("inplace",)
    assert get("flashinfer-pool").contracts == ("pool",)
    assert get("fla").contracts == ("dps",) and get("best").contracts == ("dps", "inplace")
    assert get("torch-fp32").kernels_per_call is None


def test_speedups_set_each_peer_against_best_in_the_peers_own_contract():
    def rec(impl, contract, uuid, B, us):
        return dict(impl=impl, contract=contract, uuid=uuid, batch_size=B, method="cupti-cold",
                    status="ok", latency_us=us, impl_kind="baseline")  # fmt: skip

    rows = [
        rec("best", "dps", "u1", 1, 2.0), rec("best", "dps", "u2", 4, 3.0),
        rec("best", "inplace", "u1", 1, 1.0), rec("best", "inplace", "u2", 4, 2.0),
        rec("fla", "dps", "u1", 1, 3.0), rec("fla", "dps", "u2", 4, 3.0),
        rec("fi", "inplace", "u1", 1, 2.0), rec("fi", "inplace", "u2", 4, 2.0),
        rec("fi-pool", "pool", "u1", 1, 4.0),
    ]  # fmt: skip
    t = sweep.speedups(records.to_frame(rows))
    assert t.loc["fla", 1] == 1.5 and t.loc["fla", 4] == 1.0 and t.loc["fla", "vs"] == "best"
    assert t.loc["fi [inplace]", 1] == 2.0 and t.loc["fi [inplace]", "min"] == 1.0
    assert t.loc["fi [inplace]", "vs"] == "best [inplace]"
    assert t.loc["fi-pool [pool]", 1] == 4.0 and t.loc["fi-pool [pool]", "vs"] == "best [inplace]"
