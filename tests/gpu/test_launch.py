"""The launch path on a GPU: the baseline kernel against the oracle, both calling forms,
in-place update, null state, CUDA graph capture, argument checks before any launch, and
picking up an edited kernel file without a restart."""

import time

import pytest
import torch

from decodekit.build import launch
from decodekit.impls.registry import get
from decodekit.measure.check import check
from decodekit.problem.spec import SpecError
from decodekit.problem.workloads import empty_outputs, make_inputs, select

pytestmark = pytest.mark.gpu

ORDER = ("q", "k", "v", "state", "A_log", "a", "dt_bias", "b", "scale")


def _call_args(inputs, outputs):
    return [inputs[n] for n in ORDER] + [outputs["output"], outputs["new_state"]]


@pytest.fixture(scope="module")
def baseline():
    return get("baseline")


@pytest.mark.parametrize("workload", select("contest"), ids=lambda w: w.name)
def test_baseline_passes_every_contest_workload(baseline, workload):
    res = check(baseline, workload, device="cuda")
    assert res.passed, res.summary()


@pytest.mark.parametrize("profile", ["random", "extreme"])
@pytest.mark.parametrize("B", [1, 3, 17, 64, 100])
def test_baseline_any_batch_size(baseline, B, profile):
    res = check(baseline, B, device="cuda", profile=profile)
    assert res.passed, res.summary()


def test_null_state_means_zeros(baseline):
    x = make_inputs(3, "cuda")
    x["state"] = None
    res = check(baseline, 3, device="cuda", inputs=x)
    assert res.passed, res.summary()


def test_dps_and_allocating_agree(baseline):
    x = make_inputs(17, "cuda")
    dests = empty_outputs(17, "cuda")
    baseline(*_call_args(x, dests))
    out, new_state = baseline.allocating(**x)
    assert torch.equal(out, dests["output"]) and torch.equal(new_state, dests["new_state"])


def test_in_place_update_matches_separate_output(baseline):
    assert baseline.inplace_ok
    x = make_inputs(17, "cuda")
    expected_out, expected_state = baseline.allocating(**x)
    dests = empty_outputs(17, "cuda")
    dests["new_state"] = x["state"]  # update the state where it lies
    baseline(*_call_args(x, dests))
    assert torch.equal(dests["output"], expected_out)
    assert torch.equal(x["state"], expected_state)


def test_aliasing_refused_unless_declared():
    run = launch.kernel_impl(
        "gdn_decode_baseline.cu", "gdn_decode_baseline", lambda B: ((B * 8,), (128,), 0)
    )
    x = make_inputs(3, "cuda")
    dests = empty_outputs(3, "cuda")
    dests["new_state"] = x["state"]
    with pytest.raises(SpecError, match="argument 'new_state'.*inplace_ok"):
        run(*_call_args(x, dests))


@pytest.mark.parametrize("name", ["state", "q", "new_state", "output"])
def test_non_contiguous_rejected_by_name(baseline, name):
    x = make_inputs(3, "cuda")
    dests = empty_outputs(3, "cuda")
    both = {**x, **dests}
    t = both[name]
    # same shape and values, transposed strides in the last two axes
    both[name] = t.transpose(-1, -2).contiguous().transpose(-1, -2)
    assert not both[name].is_contiguous()
    with pytest.raises(SpecError, match=f"argument '{name}'.*contiguous"):
        baseline(*_call_args(both, both))


@pytest.mark.parametrize(
    "name, bad",
    [
        ("q", lambda t: t[:, :, :2]),  # wrong shape
        ("k", lambda t: t.float()),  # wrong dtype
        ("state", lambda t: t.cpu()),  # wrong device
        ("A_log", lambda t: t.half()),
        ("output", lambda t: t.float()),
        ("new_state", lambda t: t[:2]),  # batch size of another call
    ],
)
def test_bad_argument_raises_before_any_launch(baseline, name, bad):
    x = make_inputs(3, "cuda")
    dests = empty_outputs(3, "cuda")  # NaN-poisoned
    both = {**x, **dests}
    both[name] = bad(both[name])
    with pytest.raises(SpecError, match=f"argument '{name}'"):
        baseline(*_call_args(both, both))
    torch.cuda.synchronize()
    assert torch.isnan(dests["output"].float()).all(), "a kernel ran despite the error"


def test_cuda_graph_capture_and_replay(baseline):
    x = make_inputs(8, "cuda")
    dests = empty_outputs(8, "cuda")
    args = _call_args(x, dests)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        baseline(*args)  # warm-up: module load and argument checks outside capture
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        baseline(*args)
    fresh = make_inputs(8, "cuda", seed=123)
    for n in ORDER[:-1]:
        x[n].copy_(fresh[n])
    dests["output"].fill_(float("nan"))
    graph.replay()
    torch.cuda.synchronize()
    out, new_state = baseline.allocating(**fresh)
    assert torch.equal(dests["output"], out) and torch.equal(dests["new_state"], new_state)


def test_runs_on_torch_current_stream(baseline):
    x = make_inputs(64, "cuda")
    dests = empty_outputs(64, "cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())  # inputs and NaN poison are ready
    with torch.cuda.stream(side):
        baseline(*_call_args(x, dests))
        got = dests["output"].clone()  # ordered after the kernel only on the same stream
    torch.cuda.synchronize()
    assert torch.equal(got, dests["output"])


ECHO = """#include "gdn.cuh"
using gdn::bf16;
extern "C" __global__ void echo(const bf16* q, const bf16* k, const bf16* v,
    const float* state, const float* A_log, const bf16* a, const float* dt_bias,
    const bf16* b, float scale, bf16* output, float* new_state, int batch_size) {
    output[blockIdx.x * gdn::kDim + threadIdx.x] = __float2bfloat16_rn(VALUE);
}
"""


def test_edited_kernel_is_reloaded_without_restart(tmp_path):
    src = tmp_path / "echo.cu"
    src.write_text(ECHO.replace("VALUE", "1.f"))  # gdn.cuh comes from kernels/
    run = launch.kernel_impl(str(src), "echo", lambda B: ((B * 8,), (128,), 0))
    x = make_inputs(2, "cuda")
    dests = empty_outputs(2, "cuda")
    run(*_call_args(x, dests))
    torch.cuda.synchronize()
    assert (dests["output"] == 1).all()
    src.write_text(ECHO.replace("VALUE", "2.f"))
    time.sleep(launch.RECHECK_S + 0.05)
    run(*_call_args(x, dests))
    torch.cuda.synchronize()
    assert (dests["output"] == 2).all()


def test_driver_agrees_with_ptxas(baseline):
    run = baseline.fn
    attrs = run.func_attributes()
    usage = run.build.usage(run.entry)
    assert attrs["num_regs"] == usage.registers
    assert attrs["shared_size_bytes"] == usage.shared_bytes
    assert run.build.arch == run.build.arch_from_cubin


def test_host_overhead_reports_all_figures():
    from decodekit.measure import host

    res = host.host_overhead("baseline", n=200)
    for key in ("impl_us", "kit_empty_us", "bare_cupy_empty_us", "driver_empty_us"):
        assert res[key] > 0, key
