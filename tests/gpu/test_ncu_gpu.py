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
