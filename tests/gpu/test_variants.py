"""Every kit kernel variant (and ``best``) against the fp64 oracle on the GPU: chosen batch
sizes, the extreme profile, a null state, in-place update where declared; every candidate of
the quick tuning space; and a dispatcher mixing variants across batch sizes."""

import pytest
import torch

from decodekit.impls.registry import all_impls, get
from decodekit.measure import tuning
from decodekit.measure.check import TOLERANCES, check, compare
from decodekit.problem.reference import gdn_decode_oracle
from decodekit.problem.workloads import make_inputs

pytestmark = pytest.mark.gpu

KERNELS = [i.name for i in all_impls("kernel")]
BATCH_SIZES = (1, 3, 17, 100, 257)


@pytest.mark.parametrize("B", BATCH_SIZES)
@pytest.mark.parametrize("name", KERNELS)
def test_random_inputs(name, B):
    res = check(get(name), B, device="cuda")
    assert res.passed, res.summary()


@pytest.mark.parametrize("B", (1, 17, 64))
@pytest.mark.parametrize("name", KERNELS)
def test_extreme_gates_and_large_state(name, B):
    res = check(get(name), B, device="cuda", profile="extreme")
    assert res.passed, res.summary()


@pytest.mark.parametrize("name", KERNELS)
def test_null_state_reads_zeros(name):
    x = make_inputs(3, "cuda")
    x["state"] = None
    res = check(get(name), 3, device="cuda", inputs=x)
    assert res.passed, res.summary()


@pytest.mark.parametrize("B", (1, 17, 64))
@pytest.mark.parametrize("name", [n for n in KERNELS if get(n).inplace_ok])
def test_in_place_update(name, B):
    x = make_inputs(B, "cuda")
    ref_out, ref_state = gdn_decode_oracle(
        **{k: v.cpu() if torch.is_tensor(v) else v for k, v in x.items()}
    )
    output = torch.full(ref_out.shape, float("nan"), dtype=torch.bfloat16, device="cuda")
    get(name)(**x, output=output, new_state=x["state"])
    torch.cuda.synchronize()
    reports = [
        compare("output", output, ref_out, TOLERANCES.output_rel),
        compare("new_state", x["state"], ref_state, TOLERANCES.state_rel),
    ]
    assert all(r.passed for r in reports), [r.summary() for r in reports]


@pytest.mark.parametrize(
    "variant, defines",
    tuning.search_space("quick"),
    ids=lambda x: x if isinstance(x, str) else tuning._label(x),
)
def test_every_quick_candidate(variant, defines):
    fn = tuning.build(variant, defines)
    for B, profile in ((1, "random"), (17, "random"), (5, "extreme")):
        res = check(fn, B, device="cuda", profile=profile)
        assert res.passed, res.summary()


def _table_entries():
    table = tuning.load_table() if torch.cuda.is_available() else None
    return sorted((table or {}).items())


@pytest.mark.parametrize("B, choice", _table_entries(), ids=lambda x: str(x)[:40])
def test_every_entry_of_this_gpus_tuning_table(B, choice):
    """What ``best`` runs at each tuned batch size: random and extreme inputs at that size,
    and in place (best is registered in-place capable)."""
    fn = tuning.build(choice["variant"], choice.get("defines", {}))
    for profile in ("random", "extreme"):
        res = check(fn, B, device="cuda", profile=profile)
        assert res.passed, res.summary()
    x = make_inputs(B, "cuda")
    ref_out, ref_state = gdn_decode_oracle(
        **{k: v.cpu() if torch.is_tensor(v) else v for k, v in x.items()}
    )
    output = torch.full(ref_out.shape, float("nan"), dtype=torch.bfloat16, device="cuda")
    fn(**x, output=output, new_state=x["state"])
    torch.cuda.synchronize()
    assert compare("output", output, ref_out, TOLERANCES.output_rel).passed
    assert compare("new_state", x["state"], ref_state, TOLERANCES.state_rel).passed


def test_dispatcher_mixing_variants():
    table = {
        1: {"variant": "bulk", "defines": {"WARPS": 1, "ROWS_PER_WARP": 4, "BULK_STORE": 1}},
        8: {"variant": "subwarp", "defines": {"WARPS": 4, "ROWS_PER_WARP": 8, "LANES_PER_ROW": 8}},
        64: {
            "variant": "streaming",
            "defines": {"WARPS": 4, "ROWS_PER_WARP": 8, "LOAD_HINT": 3, "STORE_HINT": 0},
        },
    }
    d = tuning.Dispatcher(table)
    for B in (1, 5, 8, 64, 100, 1):
        res = check(d, B, device="cuda")
        assert res.passed, (B, res.summary())
