"""The validator names the argument, what it expected and what came."""

import pytest
import torch

from decodekit.problem.spec import DEFINITION, SpecError, bytes_moved, validate
from decodekit.problem.workloads import make_inputs


def test_valid_inputs_any_batch_size():
    for B in (1, 3, 64, 257):
        assert validate(make_inputs(B)) == B


@pytest.mark.parametrize(
    "name, bad, words",
    [
        (
            "k",
            torch.zeros(2, 1, 8, 128, dtype=torch.bfloat16),
            ["'k'", "(2, 1, 4, 128)", "(2, 1, 8, 128)"],
        ),
        ("v", torch.zeros(2, 1, 8, 128, dtype=torch.float32), ["'v'", "bfloat16", "float32"]),
        ("state", torch.zeros(2, 8, 128, 64), ["'state'", "(2, 8, 128, 128)", "(2, 8, 128, 64)"]),
        ("A_log", torch.zeros(8, dtype=torch.float64), ["'A_log'", "float32", "float64"]),
        ("b", [0.0] * 8, ["'b'", "torch.Tensor", "list"]),
    ],
)
def test_wrong_shape_or_dtype_named(name, bad, words):
    x = make_inputs(2)
    x[name] = bad
    with pytest.raises(SpecError) as e:
        validate(x)
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_missing_argument():
    x = make_inputs(2)
    del x["dt_bias"]
    with pytest.raises(SpecError, match="'dt_bias': missing"):
        validate(x)


def test_state_may_be_absent():
    assert validate(dict(make_inputs(2), state=None)) == 2


def test_batch_size_zero_rejected():
    x = make_inputs(1)
    x["q"] = x["q"][:0]
    with pytest.raises(SpecError, match="batch_size >= 1, got batch_size 0"):
        validate(x)


def test_wrong_device_named():
    with pytest.raises(SpecError, match="'q': expected device cuda, got .*device cpu"):
        validate(make_inputs(1), device="cuda")


def test_non_contiguous_rejected_when_asked():
    x = make_inputs(2)
    x["state"] = x["state"].transpose(2, 3)
    assert validate(x) == 2  # same shape; contiguity is the launcher's business
    with pytest.raises(SpecError, match="'state': expected a contiguous"):
        validate(x, require_contiguous=True)


def test_bytes_moved_is_state_dominated():
    m = bytes_moved(64)
    assert m["state_read"] == m["state_write"] == 64 * 8 * 128 * 128 * 4
    assert m["state_read"] + m["state_write"] > 0.99 * m["total"]
    assert DEFINITION.shape("output", 5) == (5, 1, 8, 128)
