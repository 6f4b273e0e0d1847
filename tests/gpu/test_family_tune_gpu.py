"""tune_member on a GPU: a serving member tuned at B = 1 and 64 over the quick space (every
candidate checked, built without spills and timed, one run of records), then ``best`` over
that table passes decodekit.measure.family_check.check on CUDA at the tuned sizes and
between them."""

import json

import pytest
import torch

from decodekit import records
from decodekit.impls import family_tuning as ft
from decodekit.measure import family_check
from decodekit.measure.family_tune import tune_member
from decodekit.problem.family import SERVING, load_cases

pytestmark = pytest.mark.gpu
MEMBER = SERVING[0]  # pool qk4/v8 l2norm fp32


def test_tune_then_best_passes_the_check(tmp_path):
    table = tune_member(MEMBER, "quick", (1, 64), "quick", out_dir=tmp_path, verbose=False)
    assert set(table) == {1, 64}
    recs = records.load(tmp_path / "records")
    assert (recs["status"] == "ok").all(), recs[["config", "status", "note"]]
    assert (recs["registers"] > 0).all() and (recs["spills"] == 0).all()
    path = ft.table_path(MEMBER, torch.cuda.get_device_name(), tmp_path)
    assert json.loads(path.read_text())["records"] == recs["run_id"].iloc[0]
    run = ft.best(MEMBER, directory=tmp_path)
    assert run.note is None and run.tuning["tuned"]
    assert run.defines_for(8) == table[1]["defines"]
    for case in (c for c in load_cases(MEMBER) if c.batch_size in (1, 8, 64)):
        res = family_check.check(run, case, "cuda")
        assert res.passed, res.summary()
