"""Nsight Compute end to end on a GPU: the kit baseline (and FLA when installed) on two
workloads, profiled into a temporary folder and read back."""

import shutil

import pytest

from decodekit.impls.registry import get
from decodekit.measure import ncu
from decodekit.problem.workloads import select

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(shutil.which("ncu") is None, reason="Nsight Compute (ncu) not on PATH"),
]


def two_workloads():
    contest = select("contest")
    return [contest[0], next(w for w in contest if w.batch_size == 64)]


@pytest.mark.parametrize(
    "impl, kernel", [("baseline", "gdn_decode_baseline"), ("fla", "fused_recurrent")]
)
def test_profile_two_workloads(impl, kernel, tmp_path):
    why = get(impl).unavailable()
    if why:
        pytest.skip(why)
    ws = two_workloads()
    df = ncu.profile(impl, ws, out_dir=tmp_path, timeout_s=600)
    assert df["uuid"].tolist() == [w.uuid for w in ws]
    assert df["batch_size"].tolist() == [1, 64]
    assert (df["n_kernels"] == 1).all() and df["kernel"].str.contains(kernel).all()
    assert (df["duration_us"] > 0).all() and (df["duration_us"] < 1000).all()
    assert df["registers_per_thread"].notna().all() and (df["grid_size"] > 0).all()
    assert df["dram_throughput_pct"].between(0, 100).all()
    assert df["pct_of_floor"].between(0, 100).all() and set(df["floor_basis"]) == {"dram_peak"}
    meta = df.attrs["meta"]
    assert meta["gpu"] and meta["ncu_version"] and meta["clock_control"] == "base"
    again = ncu.load(df.attrs["export"] + ".csv")
    assert again["duration_us"].tolist() == df["duration_us"].tolist()
    print(df.T.to_string())
    print(ncu.format_seed_table(df))


def test_a_family_build_by_name_profiled_with_its_warp_states(tmp_path):
    from decodekit.impls.family_tuning import label
    from decodekit.problem.family import SERVING

    member = SERVING[0]
    name = label({"WARPS": 2, "ROWS_PER_WARP": 8, "LANES_PER_ROW": 16, "REDUCE": 1})
    df = ncu.profile(name, "1,64", definition=member.name, out_dir=tmp_path, timeout_s=600,
                     sections=["WarpStateStats", "SchedulerStats"])  # fmt: skip
    assert df["batch_size"].tolist() == [1, 64] and (df["duration_us"] > 0).all()
    assert df.attrs["meta"]["impl"] == name and "[" not in df.attrs["export"]
    st = ncu.stalls(df)
    assert st["batch_size"].tolist() == [1, 64]
    assert st["issue_active_pct"].between(0, 100).all() and (st["eligible_per_cycle"] > 0).all()
    assert {"stall_long_scoreboard", "stall_selected"} <= set(st.columns)
    print(st.T.to_string())
