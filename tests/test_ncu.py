"""decodekit.measure.ncu on a CPU: parsing exports into tables, and every error path with a fake ncu.

The fake (tests/fixtures/ncu/ncu) stands in for Nsight Compute on PATH; FAKE_NCU_MODE picks
its behaviour. Real exports recorded on a GPU (data/ncu/*.csv) are parsed as fixtures when
present.
"""

import json
import math
import os
from pathlib import Path

import pandas as pd
import pytest
import torch

from decodekit.impls.registry import _REGISTRY, Impl
from decodekit.measure import ncu, ncu_runner
from decodekit.problem.spec import bytes_moved
from decodekit.problem.workloads import ROOT, select
from decodekit.records import ncu_parse

FAKE = Path(__file__).parent / "fixtures" / "ncu"
REAL = sorted((ROOT / "data" / "ncu").glob("*.csv"))


@pytest.fixture
def fake_ncu(monkeypatch):
    monkeypatch.setenv("PATH", f"{FAKE}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(ncu_parse, "_ncu_report", lambda ncu="ncu": None)

    def mode(name):
        monkeypatch.setenv("FAKE_NCU_MODE", name)

    return mode


def test_profile_end_to_end_with_fake_ncu(fake_ncu, tmp_path):
    fake_ncu("ok")
    df = ncu.profile("torch-fp32", "B1,B3,B64", kernel_regex="regex:elementwise", out_dir=tmp_path)
    assert list(df["uuid"]) == ["B1", "B3", "B64"]
    assert list(df["batch_size"]) == [1, 3, 64]
    assert df["duration_us"].tolist() == pytest.approx([5.0, 6.0, 7.0])
    assert df["dram_read_bytes"].tolist() == [2e6] * 3
    assert df["dram_write_bytes"].tolist() == [1e6] * 3
    assert df["dram_throughput_pct"].tolist() == [40.0, 41.0, 42.0]
    assert df["registers_per_thread"].tolist() == [64] * 3
    assert df["grid_size"].tolist() == [8] * 3 and df["block_size"].tolist() == [128] * 3
    # fake DRAM peak: 64 byte/cycle x 2.5 cycle/ns = 160 GB/s
    floor_us = bytes_moved(64)["total"] / 160e9 * 1e6
    assert df["floor_us"].iloc[2] == pytest.approx(floor_us)
    assert df["pct_of_floor"].iloc[2] == pytest.approx(100 * floor_us / 7.0)
    assert set(df["floor_basis"]) == {"dram_peak"} and set(df["impl"]) == {"torch-fp32"}

    stem = tmp_path / "torch-fp32_B1-B3-B64"
    for ext in (".ncu-rep", ".csv", ".json"):
        assert stem.with_suffix(ext).exists()
    meta = json.loads(stem.with_suffix(".json").read_text())
    assert meta["ncu_version"] == "2025.3.1.0"
    assert (meta["clock_control"], meta["cache_control"]) == ("base", "all")
    assert meta["kernel_regex"] == "regex:elementwise" and len(meta["source_digest"]) == 16
    cmd = meta["command"]
    assert cmd[cmd.index("--clock-control") + 1] == "base"
    assert [cmd[i + 1] for i, a in enumerate(cmd) if a == "--nvtx-include"] == [
        "B1/",
        "B3/",
        "B64/",
    ]
    assert cmd[cmd.index("-m") + 1] == "decodekit.measure.ncu_runner"
    report = json.loads(stem.with_suffix(".ncu-rep").read_text())
    assert report["target"][-6:] == [
        "--impl",
        "torch-fp32",
        "--workloads",
        "B1,B3,B64",
        "--profile",
        "random",
    ]

    assert ncu.load(stem.with_suffix(".csv"))["duration_us"].tolist() == df["duration_us"].tolist()
    assert ncu.load("torch-fp32", out_dir=tmp_path)["uuid"].tolist() == ["B1", "B3", "B64"]
    folder = ncu.load(tmp_path)
    assert len(folder) == 3 and set(folder["gpu"].isna()) == {True}
    fast = ncu.load(stem.with_suffix(".csv"), copy_gbps=3000.0)
    assert set(fast["floor_basis"]) == {"copy"}
    assert fast["floor_us"].iloc[0] == pytest.approx(bytes_moved(1)["total"] / 3e12 * 1e6)


def test_tag_marks_non_default_controls(fake_ncu, tmp_path):
    fake_ncu("ok")
    df = ncu.profile(
        "torch-fp32", "B2", clock_control="none", cache_control="none", out_dir=tmp_path
    )
    assert df.attrs["export"].endswith("torch-fp32_B2_clock-none_cache-none")
    assert df.attrs["meta"]["clock_control"] == "none"


def test_sections_are_asked_for_named_in_the_export_and_checked(fake_ncu, tmp_path):
    fake_ncu("ok")
    df = ncu.profile("torch-fp32", "B2", sections=["WarpStateStats", "SchedulerStats"],
                     out_dir=tmp_path)  # fmt: skip
    assert df.attrs["export"].endswith("torch-fp32_B2_WarpStateStats-SchedulerStats")
    meta = df.attrs["meta"]
    assert meta["sections"] == ["WarpStateStats", "SchedulerStats"]
    cmd = meta["command"]
    assert cmd[cmd.index("--section") + 1] == "WarpStateStats" and cmd.count("--section") == 2
    with pytest.raises(ValueError, match=r"argument 'sections': .* got 'Warp State'"):
        ncu.profile("torch-fp32", "B2", sections=["Warp State"], out_dir=tmp_path)
    # a long list is counted with its digest, so two lists never share an export
    six = ["SpeedOfLight", "MemoryWorkloadAnalysis", "Occupancy", "LaunchStats",
           "SchedulerStats", "WarpStateStats"]  # fmt: skip
    tags = {ncu._tag("B2", "base", "all", x) for x in (six, [*six, "SourceCounters"])}
    assert len(tags) == 2 and all("-sections-" in t and len(t) < 40 for t in tags), tags


def test_stalls_of_a_profile_with_warp_states_and_the_command_prints_them(fake_ncu, tmp_path,
                                                                          capsys):  # fmt: skip
    fake_ncu("ok")
    df = ncu.profile("torch-fp32", "B2,B5", sections=["WarpStateStats"], out_dir=tmp_path)
    st = ncu.stalls(df)
    assert st["batch_size"].tolist() == [2, 5] and st["issue_active_pct"].tolist() == [45.0, 45.0]
    assert st.columns[-2:].tolist() == ["stall_long_scoreboard", "stall_selected"]  # largest first
    assert st["stall_long_scoreboard"].tolist() == [3.0, 4.0]
    assert ncu.stalls(df.attrs["export"] + ".csv").equals(st)
    plain = ncu.profile("torch-fp32", "B2", out_dir=tmp_path)
    with pytest.raises(ValueError, match="no stall metrics .* --section WarpStateStats"):
        ncu.stalls(plain)
    assert ncu.cli_ncu("torch-fp32", "B2", sections=["WarpStateStats"], out_dir=tmp_path) == 0
    out = capsys.readouterr().out
    assert "where warps wait" in out and "stall_long_scoreboard" in out


def test_recorded_stalls_gather_every_export_with_warp_states(tmp_path):
    st = ncu.recorded_stalls(ROOT / "data" / "ncu", top=3)
    t4 = st[(st["definition"] == "gdn_decode_pool_qk4_v8_d128_k_last_t4_l2norm")
            & (st["impl"] == "best") & (st["clock_control"] == "base")]  # fmt: skip
    assert t4["batch_size"].tolist() == [32, 256] and set(st["gpu"]) == {"NVIDIA H200"}
    reasons = [c for c in st.columns if c.startswith("stall_")]
    assert len(reasons) == 3 and "stall_selected" not in reasons
    assert reasons[0] == "stall_long_scoreboard"  # the largest over these exports
    assert ncu.recorded_stalls(tmp_path).empty


def test_stalls_of_a_recorded_h200_profile_are_its_raw_metrics():
    import csv

    stems = sorted((ROOT / "data" / "ncu").glob("*_t4_l2norm_best_32-256_*WarpSta*_h200.csv"))
    assert stems, "the H200 profile with WarpStateStats of 2026-12-04 is missing from data/ncu"
    st = ncu.stalls(stems[0])
    rows = list(csv.reader(stems[0].read_text().splitlines()))
    col = rows[0].index("smsp__average_warps_issue_stalled_long_scoreboard_per_issue_active.ratio")
    raw = sorted(float(r[col]) for r in rows[2:])
    assert sorted(st["stall_long_scoreboard"]) == pytest.approx(raw)
    assert st["batch_size"].tolist() == [32, 256] and (st["issue_active_pct"] > 0).all()


def test_ncu_not_installed(tmp_path):
    with pytest.raises(ncu.NcuError, match="not found on PATH.*load"):
        ncu.profile("torch-fp32", "B1", out_dir=tmp_path, ncu="no-such-ncu-here")


def test_no_permission_for_counters(fake_ncu, tmp_path):
    fake_ncu("perm")
    with pytest.raises(ncu.NcuError, match="ERR_NVGPUCTRPERM.*root"):
        ncu.profile("torch-fp32", "B1", out_dir=tmp_path)


def test_no_kernel_matched_the_filter(fake_ncu, tmp_path):
    fake_ncu("nokernels")
    with pytest.raises(ncu.NcuError, match="no kernel matched.*regex:nope.*kernel_regex"):
        ncu.profile("torch-fp32", "B1", kernel_regex="regex:nope", out_dir=tmp_path)


def test_profiled_program_failed_shows_its_stderr(fake_ncu, tmp_path):
    fake_ncu("appfail")
    with pytest.raises(ncu.NcuError, match="profiled program failed") as e:
        ncu.profile("torch-fp32", "B1", input_profile="bogus", out_dir=tmp_path)
    assert "invalid choice: 'bogus'" in str(e.value)


def test_kernel_filter_defaults():
    assert ncu.kernel_regex_for("baseline") == "regex:^gdn_decode_baseline$"
    assert ncu.kernel_regex_for("fla") == "regex:fused_recurrent"
    assert ncu.kernel_regex_for("torch-fp32") is None


def test_units_and_numbers():
    assert ncu_parse.to_si(3, "msecond") == 0.003
    assert ncu_parse.to_si(2, "Gbyte/second") == 2e9
    assert ncu_parse.to_si(1.98, "Ghz") == 1.98e9
    assert ncu_parse.to_si(64, "register/thread") == 64
    assert ncu_parse.to_si(12.5, "%") == 12.5
    assert ncu_parse.number("1,234.5") == 1234.5 and math.isnan(ncu_parse.number("n/a"))


def test_csv_with_program_output_and_kernels_outside_ranges():
    nvtx = "thread Domain:Push/Pop_Range:PL_Type:PL_Value:CLR_Type:Color:Msg_Type:Msg"
    text = "\n".join(
        [
            "==PROF== Connected to process 1",
            "ncu_runner: torch-fp32 B1 B=1 profiled",
            f'"ID","Kernel Name","{nvtx}","Grid Size","gpu__time_duration.sum","dram__bytes_read.sum"',
            '"","","","","nsecond","Kbyte"',
            '"0","a","1  ""<default domain>:B17:none"" ","(4, 2, 1)","1,000","3"',
            '"1","b","1  ""<default domain>:B17:none"" ","(4, 2, 1)","3,000","1"',
            '"2","c","","(1, 1, 1)","500","1"',
        ]
    )
    df = ncu_parse.frame(ncu_parse.kernels_from_csv(text))
    b17 = df.set_index("uuid").loc["B17"]
    assert b17["n_kernels"] == 2 and b17["kernel"] == "a+b" and b17["batch_size"] == 17
    assert b17["duration_us"] == pytest.approx(4.0) and b17["dram_read_bytes"] == 4000
    assert b17["grid_size"] == 8  # from the longest kernel's Grid Size column
    assert "#2" in set(df["uuid"])  # kept, under its ncu ID


def test_order_names_kernels_when_there_is_no_nvtx_column():
    text = (
        '"ID","Kernel Name","gpu__time_duration.sum"\n"","","usecond"\n"0","k","2"\n"1","k","3"\n'
    )
    ws = [dict(uuid=w.uuid, batch_size=w.batch_size) for w in select("representative")[:2]]
    df = ncu_parse.frame(ncu_parse.kernels_from_csv(text), ws, "baseline")
    assert df["uuid"].tolist() == [w["uuid"] for w in ws]


def test_not_a_raw_csv():
    with pytest.raises(ValueError, match="not an Nsight Compute raw CSV"):
        ncu_parse.kernels_from_csv("==ERROR== something\n")


def test_report_reader_with_a_stand_in_ncu_report():
    class Metric:
        def __init__(self, v, u):
            self.v, self.u = v, u

        def value(self):
            return self.v

        def unit(self):
            return self.u

    class Domain:
        def push_pop_ranges(self):
            return ("B4",)

    class State:
        def domains(self):
            return [0]

        def domain_by_id(self, i):
            return Domain()

    class Action:
        m = {
            "gpu__time_duration.sum": Metric(9000, "nsecond"),
            "launch__grid_size": Metric(32, ""),
            "device__attribute_display_name": Metric("NVIDIA H100", ""),
        }

        def name(self):
            return "gdn_decode_baseline"

        def metric_names(self):
            return tuple(self.m)

        def metric_by_name(self, n):
            return self.m.get(n)

        def nvtx_state(self):
            return State()

    class Range:
        def num_actions(self):
            return 1

        def action_by_idx(self, i):
            return Action()

    class Context:
        def num_ranges(self):
            return 1

        def range_by_idx(self, i):
            return Range()

    class Module:
        @staticmethod
        def load_report(path):
            return Context()

    df = ncu_parse.frame(ncu_parse.kernels_from_report("x.ncu-rep", Module))
    assert df[["uuid", "batch_size", "duration_us", "grid_size"]].iloc[0].tolist() == [
        "B4",
        4,
        9.0,
        32,
    ]


def test_rep_without_ncu_report_or_csv(tmp_path, monkeypatch):
    monkeypatch.setattr(ncu_parse, "_ncu_report", lambda ncu="ncu": None)
    (tmp_path / "baseline_x.ncu-rep").write_text("")
    with pytest.raises(ncu.NcuError, match="ncu_report.*--csv --page raw"):
        ncu.load(tmp_path / "baseline_x.ncu-rep")
    with pytest.warns(UserWarning, match="skipped"):
        assert ncu.load(tmp_path).empty
    with pytest.raises(ncu.NcuError, match="decodekit ncu --impl fla"):
        ncu.load("fla", out_dir=tmp_path)


def _frame(impl, scale):
    rows = [
        dict(
            impl=impl,
            uuid=w.uuid,
            batch_size=w.batch_size,
            duration_us=scale * (6 + 0.4 * w.batch_size),
            dram_gbps=100.0,
            pct_of_floor=50.0,
        )
        for w in select("contest")
    ]
    return pd.DataFrame(rows)


def test_seed_table_and_its_text():
    df = _frame("baseline", 1.0)
    t = ncu.seed_table(df)
    assert len(t) == 55 and t["axes"].iloc[0] == "batch_size=1"
    assert t["duration_us"].iloc[-1] == pytest.approx(df["duration_us"].mean())
    text = ncu.format_seed_table(df).splitlines()
    assert text[0] == "UUID axes duration_us"
    assert text[1] == f"{df['uuid'].iloc[0]} batch_size=1 6.400"
    assert text[-1].startswith("Arithmetic mean over 54/54 workloads: ") and text[-1].endswith(
        " us"
    )
    with pytest.raises(ValueError, match="side_by_side"):
        ncu.seed_table(pd.concat([df, _frame("fla", 2.0)]))


def test_by_batch_size_and_side_by_side():
    a, b = _frame("baseline", 1.0), _frame("fla", 2.0)
    g = ncu.by_batch_size(pd.concat([a, b]))
    assert len(g) == 14 and g["n"].sum() == 108
    assert g.set_index(["impl", "batch_size"]).loc[("fla", 64), "duration_us"] == pytest.approx(
        2 * 31.6
    )
    s = ncu.side_by_side({"baseline": a, "fla": b})
    assert list(s.columns) == ["uuid", "baseline", "fla", "speedup fla"]
    assert len(s) == 55 and s["uuid"].iloc[-1] == "mean"
    assert s["speedup fla"].tolist() == pytest.approx([0.5] * 55)
    per_b = ncu.side_by_side(pd.concat([a, b]), by="batch_size")
    assert per_b["batch_size"].tolist() == [
        "B=1",
        "B=4",
        "B=8",
        "B=16",
        "B=32",
        "B=48",
        "B=64",
        "mean",
    ]


def test_runner_dry_run_on_cpu(capsys):
    assert ncu_runner.main(["--impl", "torch-fp32", "--workloads", "B1,B3", "--device", "cpu"]) == 0
    assert capsys.readouterr().out.count("profiled") == 2


def test_runner_stops_on_a_failed_check(monkeypatch, capsys):
    def no_decay(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state):
        output.zero_()
        new_state.copy_(state)

    monkeypatch.setitem(
        _REGISTRY,
        "test-wrong",
        Impl(
            name="test-wrong",
            kind="baseline",
            description="known wrong",
            device="any",
            factory=lambda: no_decay,
        ),
    )
    assert ncu_runner.main(["--impl", "test-wrong", "--workloads", "B3", "--device", "cpu"]) == 3
    assert "failed the check" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
def test_runner_without_gpu(capsys):
    assert ncu_runner.main(["--impl", "torch-fp32", "--workloads", "B1"]) == 4
    assert "no CUDA GPU" in capsys.readouterr().err


@pytest.mark.parametrize("path", REAL or [None], ids=[p.name for p in REAL] or ["none"])
def test_recorded_exports_parse(path):
    """Exports recorded on a GPU (data/ncu/) parse into one row per profiled workload."""
    if path is None:
        pytest.skip("no recorded Nsight Compute export in data/ncu/ yet")
    df = ncu.load(path)
    meta = df.attrs["meta"]
    assert len(df) > 0 and df["uuid"].is_unique
    assert (df["duration_us"] > 0).all() and (df["n_kernels"] >= 1).all()
    assert df["registers_per_thread"].notna().all() and df["grid_size"].notna().all()
    if meta.get("workloads"):
        assert df["uuid"].tolist() == [w["uuid"] for w in meta["workloads"]]
    for key in ("ncu_version", "clock_control", "cache_control", "gpu", "date", "command"):
        assert meta.get(key), key
    t = ncu.seed_table(df)
    assert t["duration_us"].iloc[-1] == pytest.approx(df["duration_us"].mean())
    if meta["cache_control"] == "all":
        # caches flushed: the state (about half the bytes a call moves) comes from DRAM; a
        # family member's are its live slots' (its heads, T and state dtype)
        moved = df["batch_size"].map(lambda b: bytes_moved(int(b))["total"])
        if meta.get("definition") and meta["definition"] != "gdn_decode_qk4_v8_d128_k_last":
            from decodekit.measure.family_bench import live_bytes
            from decodekit.problem import family

            have = {c.batch_size: c for c in family.load_cases(family.parse(meta["definition"]))}
            moved = df["batch_size"].map(lambda b: live_bytes(have[int(b)]))
        assert (df["dram_read_bytes"] > 0.4 * moved).all()


def test_recorded_ncu_rep_opens_without_nsight_compute():
    """The ``ncu-report`` package from PyPI reads a recorded ``.ncu-rep`` on a machine with no
    Nsight Compute; its rows match the CSV export made from the same report."""
    pytest.importorskip("ncu_report", reason="pip install ncu-report (in the test extra)")
    stem = ncu_parse.DATA / "best_contest_h200"
    from_rep = ncu_parse.load(stem.with_suffix(".ncu-rep"))
    from_csv = ncu_parse.load(stem.with_suffix(".csv"))
    assert len(from_rep) == len(from_csv) == 54
    cols = ["uuid", "batch_size", "kernel", "duration_us", "dram_read_bytes", "dram_write_bytes",
            "registers_per_thread", "grid_size", "block_size", "floor_us", "gpu"]  # fmt: skip
    pd.testing.assert_frame_equal(from_rep[cols], from_csv[cols], check_dtype=False, rtol=1e-6)


def test_profile_a_family_member_names_its_cases_and_floors(fake_ncu, tmp_path):
    from decodekit.measure.family_bench import live_bytes
    from decodekit.problem.family import SERVING, load_cases

    fake_ncu("ok")
    member = SERVING[0]
    df = ncu.profile("torch-fp32", "1,64", definition=member.name, out_dir=tmp_path)
    cases = [c for c in load_cases(member) if c.batch_size in (1, 64)]
    assert df["uuid"].tolist() == [c.uuid for c in cases] and df["batch_size"].tolist() == [1, 64]
    # the floor is the case's live state bytes over the DRAM peak (160 GB/s in the fake)
    assert df["floor_us"].iloc[1] == pytest.approx(live_bytes(cases[1]) / 160e9 * 1e6)
    meta = df.attrs["meta"]
    assert meta["definition"] == member.name and meta["kernel_regex"] is None
    cmd = meta["command"]
    assert cmd[cmd.index("--definition") + 1] == member.name and cmd[-1] == "1,64"
    assert Path(df.attrs["export"]).name.startswith(f"{member.name}_torch-fp32_")
    assert ncu.load(tmp_path).empty  # the contest's view leaves the member's profiles out
    assert len(ncu.load(tmp_path, definition=member.name)) == 2
    assert len(ncu.load("torch-fp32", out_dir=tmp_path, definition=member.name)) == 2
    with pytest.raises(ncu.NcuError, match="no Nsight Compute export"):
        ncu.load("torch-fp32", out_dir=tmp_path)


def test_profile_a_build_by_its_record_name(fake_ncu, tmp_path, monkeypatch):
    from decodekit.impls import family_kernels
    from decodekit.problem import family_math
    from decodekit.problem.family import SERVING

    fake_ncu("ok")
    member = SERVING[0]
    made = {}

    def kit(m, d):  # a build on the CPU: the reference, named for the defines it was given
        made.update(d=d)
        return family_math.reference(m)

    monkeypatch.setattr(family_kernels, "kit_kernel", kit)
    name = "family[WARPS=2,ROWS_PER_WARP=16]"
    df = ncu.profile(name, "1", definition=member.name, out_dir=tmp_path)
    stem = Path(df.attrs["export"]).name
    assert stem.startswith(f"{member.name}_build-") and "[" not in stem
    assert df.attrs["meta"]["impl"] == name and made["d"]["ROWS_PER_WARP"] == 16
    assert len(ncu.load(name, out_dir=tmp_path, definition=member.name)) == 1


def test_profile_a_family_member_refuses_bad_arguments_in_a_line(fake_ncu, tmp_path):
    from decodekit.problem.family import SERVING
    from decodekit.problem.spec import SpecError

    fake_ncu("ok")
    name = SERVING[0].name
    with pytest.raises(ValueError, match=r"argument 'workloads': .* no case at B=3"):
        ncu.profile("torch-fp32", "1,3", definition=name, out_dir=tmp_path)
    with pytest.raises(
        ValueError, match="argument 'workloads': expected comma-separated batch sizes"
    ):
        ncu.profile("torch-fp32", "representative", definition=name, out_dir=tmp_path)
    with pytest.raises(SpecError, match="argument '--impl'"):
        ncu.profile("nope", "1", definition=name, out_dir=tmp_path)


def test_runner_dry_run_of_a_family_member_on_cpu(capsys):
    from decodekit.problem.family import SERVING

    argv = ["--impl", "torch-fp32", "--definition", SERVING[0].name, "--workloads", "1,4"]
    assert ncu_runner.main([*argv, "--device", "cpu"]) == 0
    assert capsys.readouterr().out.count("profiled") == 2
