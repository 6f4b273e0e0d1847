"""Baselines sit in the registry beside the kit's kernels; a missing optional one says why."""

import importlib.util

import pytest

from decodekit.impls import baselines
from decodekit.impls.registry import get, names
from decodekit.measure.check import check


def test_registry_lists_kernels_and_baselines():
    assert {"torch-fp32", "torch-loop", "fla", "flashinfer"} <= set(names("baseline"))
    assert {"baseline", "rowsplit", "streaming", "best"} <= set(names("kernel"))


@pytest.mark.parametrize("name", ["torch-fp32", "torch-loop"])
def test_torch_references_pass_the_checker_on_cpu(name):
    assert check(get(name), 3, profile="extreme").passed


@pytest.mark.skipif(importlib.util.find_spec("flashinfer") is not None, reason="installed")
def test_missing_flashinfer_names_the_package():
    assert "pip install flashinfer-python" in baselines._flashinfer_missing()


@pytest.mark.skipif(importlib.util.find_spec("fla") is not None, reason="installed")
def test_missing_fla_names_the_package():
    assert "fla-core==0.6.0" in get("fla").requires()
