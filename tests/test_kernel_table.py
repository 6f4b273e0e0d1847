"""The generated variant table of kernels/README.md: kernels, FLA and the floors of a run."""

import pandas as pd

from decodekit import kernel_table


def _rec(impl, method, B, us, *, timing=None, run="r1", ts="2026-01-01T00:00:00", **kw):
    return dict(
        impl=impl, uuid=f"u{B}", batch_size=B, method=method, status="ok", latency_us=us,
        gbps=1000.0, pct_copy=90.0, gpu="G", timestamp=ts, timing=timing, run_id=run, **kw,
    )  # fmt: skip


def test_floor_rows_come_from_the_newest_run_with_the_kernels_method():
    df = pd.DataFrame(
        [
            _rec("rowsplit", "cupti-cold", 1, 2.2),
            _rec("rowsplit", "cupti-cold", 64, 25.0),
            _rec("torch-copy", "copy-floor", 1, 2.0, timing="cupti-cold"),
            _rec("torch-copy", "copy-floor", 64, 24.5, timing="cupti-cold"),
            _rec("row-copy", "row-copy-floor", 1, 1.9, timing="cupti-cold"),
            _rec("row-copy", "row-copy-floor", 1, 9.9, timing="events-cold"),  # other method
            _rec("row-copy", "row-copy-floor", 1, 1.5, timing="cupti-cold", run="r0",
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
