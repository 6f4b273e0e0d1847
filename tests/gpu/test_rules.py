"""Contest rule guards, on every kit kernel: scale honoured, no global state left changed,
state updated in place only when asked, destination buffers are the ones written."""

import pytest
import torch

from decodekit.impls.registry import all_impls
from decodekit.measure.check import check
from decodekit.problem.workloads import empty_outputs, make_inputs

pytestmark = pytest.mark.gpu


def kernels():
    return [i.name for i in all_impls("kernel")]


def _global_state():
    """Device-wide settings a kernel call must not change, read through cuda-python."""
    rt = pytest.importorskip("cuda.bindings.runtime")
    stream = torch.cuda.current_stream().cuda_stream
    _, l2 = rt.cudaDeviceGetLimit(rt.cudaLimit.cudaLimitPersistingL2CacheSize)
    _, flags = rt.cudaGetDeviceFlags()
    _, cfg = rt.cudaDeviceGetCacheConfig()
    ids = rt.cudaStreamAttrID
    window_id = (
        getattr(ids, "cudaStreamAttributeAccessPolicyWindow", None)
        or ids.cudaLaunchAttributeAccessPolicyWindow
    )
    _, window = rt.cudaStreamGetAttribute(stream, window_id)
    w = window.accessPolicyWindow
    return (int(l2), int(flags), int(cfg), int(w.base_ptr or 0), int(w.num_bytes))


@pytest.mark.parametrize("name", kernels())
def test_non_default_scale_is_honoured(name):
    from decodekit.impls.registry import get

    impl = get(name)
    for scale in (0.5, 2.0):
        x = make_inputs(3, "cuda")
        x["scale"] = scale
        res = check(impl, 3, device="cuda", inputs=x)
        assert res.passed, res.summary()


@pytest.mark.parametrize("name", kernels())
def test_no_global_state_changed(name):
    from decodekit.impls.registry import get

    impl = get(name)
    before = _global_state()
    for B in (1, 64):
        assert check(impl, B, device="cuda").passed
    torch.cuda.synchronize()
    assert _global_state() == before


@pytest.mark.parametrize("name", kernels())
def test_state_untouched_unless_aliased_and_destinations_written(name):
    from decodekit.impls.registry import get

    impl = get(name)
    x = make_inputs(5, "cuda")
    state0 = x["state"].clone()
    inputs0 = {k: v.clone() for k, v in x.items() if isinstance(v, torch.Tensor)}
    out = empty_outputs(5, "cuda")
    impl(**x, **out)
    torch.cuda.synchronize()
    assert torch.equal(x["state"], state0), "state changed without being asked"
    for k, v in inputs0.items():
        assert torch.equal(x[k], v), f"input {k} changed"
    assert not out["output"].isnan().any() and not out["new_state"].isnan().any()
    if impl.inplace_ok:
        ref = empty_outputs(5, "cuda")
        impl(**x, **ref)
        impl(
            **dict(x, state=None) | {"state": x["state"]},
            output=out["output"],
            new_state=x["state"],
        )
        torch.cuda.synchronize()
        assert torch.equal(x["state"], ref["new_state"]), "in-place update differs"
