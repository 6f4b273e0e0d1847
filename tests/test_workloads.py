"""The manifest is the 54 contest workloads; inputs are reproducible from the uuid."""

from collections import Counter

import pytest
import torch

from decodekit.problem.spec import SpecError
from decodekit.problem.workloads import load_manifest, make_inputs, seed_of, select, synthetic


def test_manifest_has_the_54():
    ws = load_manifest()
    assert len(ws) == 54
    assert len({w.uuid for w in ws}) == 54
    counts = Counter(w.batch_size for w in ws)
    assert counts == {1: 10, 4: 8, 8: 7, 16: 7, 32: 7, 48: 7, 64: 8}


def test_representative_subset():
    rep = select("representative")
    assert len(rep) == 8
    assert {w.batch_size for w in rep} == {1, 4, 8, 16, 32, 48, 64}


def test_select_forms():
    assert [w.batch_size for w in select("B1,B3,17")] == [1, 3, 17]
    assert select("901e5104")[0].batch_size == 1
    with pytest.raises(SpecError, match="'workloads'"):
        select("nonsense")
    with pytest.raises(SpecError, match="'batch_size'"):
        synthetic(0)


def test_generation_reproducible_and_distinct():
    w1, w2 = select("contest")[:2]
    a, b, c = make_inputs(w1), make_inputs(w1), make_inputs(w2)
    for name in ("q", "k", "v", "state", "a", "b"):
        assert torch.equal(a[name], b[name])
        assert not torch.equal(a[name], c[name])
    assert seed_of(w1.uuid) != seed_of(w2.uuid)


def test_realistic_magnitudes_never_zeros():
    x = make_inputs(16)
    assert 0.8 < float(x["q"].float().std()) < 1.2
    assert float(x["k"].float().std()) < 0.2
    assert 0.1 < float(x["state"].std()) < 0.6
    assert all(float(x[n].float().abs().sum()) > 0 for n in ("q", "k", "v", "state", "a", "b"))


def test_bad_profile_named():
    with pytest.raises(SpecError, match="'profile'"):
        make_inputs(1, profile="zeros")
