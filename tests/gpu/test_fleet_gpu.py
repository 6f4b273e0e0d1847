"""On one GPU: two workers sharing device 0 give the table one process gives (issue 20)."""

import json

import pytest

from decodekit.measure import fleet, tuning

pytestmark = pytest.mark.gpu
SPACE = [
    ("rowsplit", {"WARPS": 4, "ROWS_PER_WARP": 8}),
    ("rowsplit", {"WARPS": 1, "ROWS_PER_WARP": 1}),
]
# far apart (16x the blocks of one row each): the same winner in any run


def test_two_workers_on_device_0_give_the_one_process_table(tmp_path):
    tuning.tune(None, (16, 64), SPACE, "quick", out_dir=tmp_path / "one", verbose=False)
    df, failed = fleet.tune((16, 64), devices=["0", "0"], out_dir=tmp_path / "two",
                            configs=[list(c) for c in SPACE], preset="quick")  # fmt: skip
    assert failed == [] and (df["status"] == "ok").all(), df[["config", "status", "note"]]
    (one,), (two,) = (tmp_path / "one").glob("*.json"), (tmp_path / "two").glob("*.json")
    a, b = (json.loads(p.read_text()) for p in (one, two))
    assert a["gpu"] == b["gpu"] and one.name == two.name
    pick = lambda t: {k: (v["variant"], v["defines"]) for k, v in t["table"].items()}  # noqa: E731
    assert pick(a) == pick(b)
    assert all("cuda0" in v["timed_on"] for v in b["table"].values())
