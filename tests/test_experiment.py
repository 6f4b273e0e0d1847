import json

import pytest

from decodekit.measure import experiment


def test_record_names_its_sources_and_environment(tmp_path, monkeypatch):
    src = tmp_path / "k.cu"
    src.write_text("// kernel")
    monkeypatch.setenv("DECODEKIT_GIT_COMMIT", "abc1234")
    rec = experiment.record("2026-11-26_x", {"us": {"a": 1.5}}, [src], {"gpu": "G"})
    assert rec["experiment"] == "2026-11-26_x" and rec["us"] == {"a": 1.5}
    assert rec["git_commit"] == "abc1234" and rec["environment"] == {"gpu": "G"}
    assert set(rec["source_digests"]) == {"k.cu"} and len(rec["source_digests"]["k.cu"]) == 16
    assert "cupti-cold" in rec["method"]


def test_write_goes_to_out_when_set(tmp_path, monkeypatch):
    here, out = tmp_path / "here", tmp_path / "out"
    here.mkdir()
    out.mkdir()
    monkeypatch.delenv("OUT", raising=False)
    assert experiment.write(here, {"x": 1}) == here / "results.json"
    monkeypatch.setenv("OUT", str(out))
    dest = experiment.write(here, {"x": 2})
    assert dest == out / "results.json" and json.loads(dest.read_text()) == {"x": 2}


def test_bad_counts_are_named():
    with pytest.raises(ValueError, match="argument 'counts'"):
        experiment.cold_us(lambda: None, {}, None, counts=(10, 0, 3))
