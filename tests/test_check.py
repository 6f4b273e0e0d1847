"""The checker accepts the reference and rejects each known-wrong implementation."""

import pytest
import torch

from decodekit.measure.check import CheckFailed, check, compare, require
from decodekit.problem.reference import gdn_decode
from decodekit.problem.spec import HEAD_SIZE


def torch_fp32(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state):
    o, s = gdn_decode(q, k, v, state, A_log, a, dt_bias, b, scale)
    output.copy_(o)
    new_state.copy_(s)


def no_decay(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state):
    huge = torch.full_like(a, -100.0)  # softplus -> 0, so g = 1: the decay is skipped
    torch_fp32(q, k, v, state, A_log, huge, dt_bias, b, scale, output, new_state)


def half_rows(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state):
    o, s = gdn_decode(q, k, v, state, A_log, a, dt_bias, b, scale)
    output[..., : HEAD_SIZE // 2].copy_(o[..., : HEAD_SIZE // 2])
    new_state[:, :, : HEAD_SIZE // 2].copy_(s[:, :, : HEAD_SIZE // 2])


def heads_mod_4(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state):
    for h in range(8):
        j = [h % 4] * 4  # every q/k head slot holds head h % 4, so h // 2 reads it
        o, s = gdn_decode(q[:, :, j], k[:, :, j], v, state, A_log, a, dt_bias, b, scale)
        output[:, :, h] = o[:, :, h]
        new_state[:, h] = s[:, h]


def bf16_accumulation(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state):
    o, s = gdn_decode(q, k, v, state.bfloat16().float(), A_log, a, dt_bias, b, scale)
    output.copy_(o)
    new_state.copy_(s.bfloat16().float())


def raises(*args, **kw):
    raise RuntimeError("kernel launch failed")


@pytest.mark.parametrize("B", [1, 3, 64])
def test_reference_passes(B):
    res = check(torch_fp32, B)
    assert res.passed, res.summary()


def test_reference_passes_extreme_gates():
    assert check(torch_fp32, 3, profile="extreme").passed


@pytest.mark.parametrize("wrong", [no_decay, half_rows, heads_mod_4, bf16_accumulation])
@pytest.mark.parametrize("B", [1, 3])
def test_known_wrong_rejected(wrong, B):
    res = check(wrong, B)
    assert not res.passed, f"{wrong.__name__} passed: {res.summary()}"


def test_unwritten_elements_fail_with_indices():
    res = check(half_rows, 1)
    out = res.reports[0]
    assert out.nan == 1 * 8 * 64 and out.first_bad[0] == (0, 0, 0, 64)
    assert "FAIL" in res.summary() and "first_bad" in res.summary()


def test_implementation_error_is_reported():
    res = check(raises, 1)
    assert not res.passed and "kernel launch failed" in res.summary()
    with pytest.raises(CheckFailed, match="kernel launch failed"):
        require(raises, 1)


def test_compare_relative_error_gate():
    ref = torch.ones(1000, dtype=torch.float64)
    assert compare("x", ref * (1 + 5e-5), ref, rel_limit=1e-4).passed
    r = compare("x", ref * (1 + 5e-3), ref, rel_limit=1e-4)
    assert not r.passed and r.n_bad == 0  # elementwise ok, relative gate catches it
    r = compare("x", ref + 0.5, ref, rel_limit=1.0)
    assert not r.passed and r.n_bad == 1000
