"""CLI conventions: --version, choices and defaults in --help, --json, one-line errors, and
a command that measured nothing writes nothing."""

import json

import pytest
import torch

from decodekit import __version__
from decodekit.cli import main

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="the no-GPU paths")


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"decodekit {__version__}"


def test_help_lists_choices_and_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "flashinfer-pool" in out and "best" in out  # --impl choices
    assert "contest (cupti-cold 10/50/3)" in out and "(default: quick)" in out  # --preset
    assert "representative (8)" in out and "(default: representative)" in out  # --workloads


@pytest.mark.parametrize("cmd", [["tune", "--quick"], ["overhead"], ["ncu", "--impl", "best"],
                                 ["sanitize", "--impl", "best"]])  # fmt: skip
def test_gpu_commands_without_a_gpu_are_one_line(cmd, capsys):
    assert main(cmd) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs a CUDA GPU" in err and "Traceback" not in err


def test_bench_without_a_gpu_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DECODEKIT_DATA", str(tmp_path))
    assert main(["bench", "--impl", "best", "--workloads", "B1"]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err
    # host methods run on the CPU, but an implementation that cannot run measures nothing
    assert main(["bench", "--impl", "fla", "--workloads", "B1", "--methods", "wall"]) == 1
    assert "nothing was measured" in capsys.readouterr().out
    assert not list(tmp_path.rglob("*.jsonl"))


def test_family_kit_kernels_without_a_gpu_are_one_line_and_write_nothing(tmp_path, monkeypatch,
                                                                          capsys):  # fmt: skip
    monkeypatch.setenv("DECODEKIT_DATA", str(tmp_path))
    name = "gdn_decode_pool_qk4_v8_d128_k_last_l2norm"
    for cmd in (["check", "--definition", name, "--impl", "family[WARPS=2]"],
                ["bench", "--definition", name, "--impl", "torch-fp32", "family[WARPS=2]"],
                ["bench", "--definition", name, "--impl", "kit"]):  # fmt: skip
        assert main(cmd) == 2, cmd
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "CUDA GPU" in err and "torch-fp32" in err, err
    assert main(["bench", "--definition", name, "--impl", "family[NOPE=1]"]) == 2
    assert "argument '--impl'" in capsys.readouterr().err
    assert not list(tmp_path.rglob("*.jsonl"))


def test_json_outputs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DECODEKIT_DATA", str(tmp_path))
    assert main(["check", "--impl", "torch-fp32", "--workloads", "B1,B2", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["passed"] for r in rows] == [True, True] and rows[0]["impl"] == "torch-fp32"
    args = ["bench", "--impl", "torch-fp32", "--workloads", "B1", "--methods", "wall", "--json"]
    assert main(args) == 0
    recs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert {r["method"]: r["status"] for r in recs} == {"events-cold": "unavailable", "wall": "ok"}
    assert main(["table", "--json"]) == 0
    assert isinstance(json.loads(capsys.readouterr().out), list)


def test_data_dir_option_redirects_records(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DECODEKIT_DATA", "unset-at-teardown")  # main() sets it: restore after
    monkeypatch.delenv("DECODEKIT_DATA")
    args = ["--data-dir", str(tmp_path), "bench", "--impl", "torch-fp32", "--workloads", "B1",
            "--methods", "wall"]  # fmt: skip
    assert main(args) == 0
    assert len(list((tmp_path / "results").glob("*.jsonl"))) == 1
    assert main(["--data-dir", str(tmp_path / "empty"), "table", "--print-only"]) == 0
    assert "No recorded runs" in capsys.readouterr().out


def test_ncu_and_report_take_a_definition_and_refuse_a_bad_one_in_a_line(capsys, monkeypatch):
    from decodekit.measure import ncu

    seen = {}

    def fake(impl, workloads, **kw):
        seen.update(impl=impl, workloads=workloads, **kw)
        return 0

    monkeypatch.setattr(ncu, "cli_ncu", fake)
    name = "gdn_decode_pool_qk4_v8_d128_k_last_l2norm"
    assert main(["ncu", "--impl", "best", "--definition", name]) == 0
    assert seen["definition"] == name and seen["workloads"] == "all"
    assert seen["sections"] is None and seen["metrics"] is None
    argv = ["ncu", "--impl", "best", "--definition", name, "--section", "WarpStateStats",
            "--section", "Occupancy", "--metrics", "sm__cycles_active.avg, dram__bytes.sum"]  # fmt: skip
    assert main(argv) == 0
    assert seen["sections"] == ["WarpStateStats", "Occupancy"]
    assert seen["metrics"] == ["sm__cycles_active.avg", "dram__bytes.sum"]
    assert main(["report", "--definition", "gdn_decode_nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "argument 'definition'" in err[0]
