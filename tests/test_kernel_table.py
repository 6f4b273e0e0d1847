"""The generated variant table of kernels/README.md: kernels, FLA and the floors of a run."""

import pandas as pd

from decodekit.views import kernel_table


def _rec(impl, method, B, us, *, floor=None, run="r1", ts="2026-01-01T00:00:00", **kw):
    return dict(
        impl=impl, uuid=f"u{B}", batch_size=B, method=method, status="ok", latency_us=us,
        gbps=1000.0, pct_copy=90.0, gpu="G", timestamp=ts, floor=floor, run_id=run, **kw,
    )  # fmt: skip


def test_floor_rows_come_from_the_newest_run_with_the_kernels_method():
    df = pd.DataFrame(
        [
            _rec("rowsplit", "cupti-cold", 1, 2.2),
            _rec("rowsplit", "cupti-cold", 64, 25.0),
            _rec("torch-copy", "cupti-cold", 1, 2.0, floor="copy-floor"),
            _rec("torch-copy", "cupti-cold", 64, 24.5, floor="copy-floor"),
            _rec("row-copy", "cupti-cold", 1, 1.9, floor="row-copy-floor"),
            _rec("row-copy", "events-cold", 1, 9.9, floor="row-copy-floor"),  # other method
            _rec("row-copy", "cupti-cold", 1, 1.5, floor="row-copy-floor", run="r0",
                 ts="2025-01-01T00:00:00"),  # an older run
        ]
    )  # fmt: skip
    t = kernel_table.table(df)
    assert list(t.index) == ["rowsplit", "torch-copy", "row-copy"]
    assert t.loc["row-copy", "B=1 µs"] == 1.9 and pd.isna(t.loc["row-copy", "B=64 µs"])
    assert t.loc["torch-copy", "B=64 µs"] == 24.5
    md = kernel_table.markdown(df)
    assert "| row-copy |  | floor: kernels/row_copy.cu" in md


def test_no_floor_records_leaves_only_the_kernels():
    df = pd.DataFrame([_rec("rowsplit", "cupti-cold", 1, 2.2)])
    assert list(kernel_table.table(df).index) == ["rowsplit"]


def test_one_table_per_gpu_each_naming_its_date_and_runs():
    df = pd.DataFrame(
        [
            _rec("rowsplit", "cupti-cold", 1, 2.2, gpu_name="x", run="old1"),
            _rec("rowsplit", "cupti-cold", 1, 1.9, run="new1", ts="2026-02-01T00:00:00"),
            _rec("best", "cupti-cold", 1, 1.8, run="new2", ts="2026-02-02T00:00:00"),
        ]
    )  # fmt: skip
    df.loc[0, "gpu"] = "NVIDIA H100"
    df.loc[1:, "gpu"] = "NVIDIA H200"
    md = kernel_table.markdown(df)
    h200, h100 = md.index("### NVIDIA H200"), md.index("### NVIDIA H100")
    assert h200 < h100  # the newest GPU first
    assert "2026-02-02" in md[h200:h100] and "runs new1, new2" in md[h200:h100]
    assert "runs old1" in md[h100:] and "| 2.2 |" in md[h100:] and "| 2.2 |" not in md[:h100]
