"""Every plot renders from records (synthetic, clearly fake) and shows an empty state without."""

import importlib.util
import io
from pathlib import Path

import matplotlib
import pandas as pd
import pytest

matplotlib.use("Agg")

from decodekit import views
from decodekit.views import plots, widgets  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "fake_data", Path(__file__).parent / "fixtures" / "fake_data.py"
)
fake = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fake)

RECORD_PLOTS = [
    plots.latency_vs_batch,
    plots.workload_bars,
    plots.latency_breakdown,
    plots.bandwidth_vs_batch,
    plots.speedup,
    plots.method_comparison,
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return fake.write(tmp_path_factory.mktemp("fake_data"))


@pytest.fixture(scope="module")
def records(data_dir):
    return views.load_records(data_dir / "results")


def _render(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _texts(fig) -> str:
    return " ".join(t.get_text() for t in fig.findobj(matplotlib.text.Text))


@pytest.mark.parametrize("plot", RECORD_PLOTS, ids=lambda f: f.__name__)
def test_plot_renders_with_gpu_method_units_and_provenance(plot, records):
    fig = plot(records)
    assert len(_render(fig)) > 10_000
    ax = fig.axes[0]
    assert fake.GPU in ax.get_title()
    assert "µs" in ax.get_ylabel() or "GB/s" in ax.get_ylabel() or "x" in ax.get_ylabel()
    assert ax.get_xlabel()
    assert f"recorded 2026-01-02 on {fake.GPU}" in _texts(fig)


@pytest.mark.parametrize("plot", RECORD_PLOTS, ids=lambda f: f.__name__)
def test_plot_without_records_shows_empty_state(plot):
    fig = plot(views.empty_records())
    assert fig.axes[0].get_title().endswith("no data")
    _render(fig)


@pytest.mark.parametrize("plot", RECORD_PLOTS, ids=lambda f: f.__name__)
def test_plot_with_only_failed_checks_shows_empty_state(plot, records):
    failed = records[records["impl"] == "broken"]
    assert (failed["status"] == "check-failed").all()
    assert plot(failed).axes[0].get_title().endswith("no data")


def test_titles_name_the_method_and_keep_the_newest_run(records):
    fig = plots.latency_vs_batch(records, method="graph-hot")
    assert "[graph-hot]" in fig.axes[0].get_title()
    assert "fake-run-1" in _texts(fig) and "fake-run-0" not in _texts(fig)
    missing = plots.latency_vs_batch(records, method="no-such-method")
    assert missing.axes[0].get_title().endswith("no data")


def test_named_implementation_without_records_is_an_empty_state(records):
    fig = plots.workload_bars(records, impl="not-recorded")
    assert "not-recorded" in _texts(fig)


def test_workload_bars_cover_the_54_with_the_mean(records):
    fig = plots.workload_bars(records, impl="baseline", method="cupti-cold")
    assert len(fig.axes[0].patches) == 54
    assert "mean over 54 workloads" in _texts(fig)


def test_breakdown_without_host_or_wall_draws_kernel_and_floor(records):
    only_kernel = records[~records["method"].isin(["host-dispatch", "wall"])]
    fig = plots.latency_breakdown(only_kernel, impl="baseline")
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert sorted(labels) == [
        "kernel (cupti-cold)",
        "torch-copy floor (same run): the kernel's memory time",
    ]
    assert "(run fake-run-1; not in this run: host dispatch, wall)" in fig.axes[0].get_title()


def test_method_comparison_adds_the_seed_range_on_request(records):
    labels = plots.method_comparison(records, seed=True).axes[0].get_legend_handles_labels()[1]
    assert "seed document (B200, Nsight Compute)" in labels
    assert {"cupti-cold", "graph-hot", "fib-0.1.2"} <= set(labels)


def test_ncu_metrics_from_recorded_exports_and_empty(data_dir):
    prof = views.load_ncu(data_dir / "ncu")
    fig = plots.ncu_metrics(prof)
    assert len(fig.axes) == len(plots.NCU_METRICS)
    assert fake.GPU in fig.axes[0].get_title()
    _render(fig)
    assert (
        plots.ncu_metrics(views.load_ncu(data_dir / "nothing"))
        .axes[0]
        .get_title()
        .endswith("no data")
    )


def test_views_provenance_banner_and_table(records):
    newest = views.latest(records)
    assert set(newest["run_id"]) == {"fake-run-1"}
    # "no GPU: ..." here, "recorded mode (live=False): ..." on a GPU machine
    assert views.banner(newest, live=False).endswith(
        f": showing recorded data from {fake.GPU} 2026-01-02"
    )
    assert "fake-run-1" in views.provenance(newest) and "commit 0000000000" in views.provenance(
        newest
    )
    table = views.table(records)
    assert table.loc["broken", 1] == "check-failed"
    assert list(table.columns) == [1, 4, 8, 16, 32, 48, 64]
    assert float(table.loc["baseline", 64]) > float(table.loc["baseline", 1])
    methods = views.method_table(records, "baseline")
    assert {"cupti-cold", "graph-hot", "wall"} <= set(methods.index)


def test_a_peer_unavailable_in_a_newer_run_keeps_its_last_measurement(records):
    fla = views.latest(records)
    fla = fla[fla["impl"] == "fla"]
    later = fla.assign(status="unavailable", latency_us=float("nan"), run_id="fake-run-2",
                       timestamp=pd.Timestamp("2027-01-01", tz="UTC"))  # fmt: skip
    shown = views.latest(pd.concat([records, later]))
    shown = shown[shown["impl"] == "fla"]
    assert len(shown) == len(fla) and set(shown["status"]) == {"ok"}
    assert set(shown["run_id"]) == set(fla["run_id"])  # named with its own run
    failed = later.assign(status="failed")  # a newer failure still replaces the measurement
    assert set(views.latest(pd.concat([records, failed])).query("impl == 'fla'")["status"]) == {
        "failed"
    }
    alone = views.latest(later)  # nothing measured: the unavailable rows show
    assert len(alone) == len(fla) and set(alone["status"]) == {"unavailable"}


def test_records_of_another_gpu_are_not_mixed(records):
    other = records.assign(gpu="OTHER-GPU", timestamp=pd.Timestamp("2027-01-01", tz="UTC"))
    both = pd.concat([records, other[other["impl"] == "fla"]])
    assert set(views.latest(both)["gpu"]) == {"OTHER-GPU"}
    assert set(views.latest(both, gpu=fake.GPU)["gpu"]) == {fake.GPU}
    cpu = records.assign(gpu="cpu", timestamp=pd.Timestamp("2028-01-01", tz="UTC"))
    assert set(views.latest(pd.concat([records, cpu]))["gpu"]) == {fake.GPU}


def test_panel_without_gpu_browses_recorded_runs(records):
    p = widgets.panel(records=records, live=False)
    assert p.run_button.disabled
    assert "showing recorded data from FAKE-GPU" in p.label.value
    assert {"fake-run-0", "fake-run-1"} <= {v for _, v in p.recorded_run.options}
    assert p.method() == "cupti-cold"
    p.mode.value = "hot"
    assert p.method() == "graph-hot"
    assert "[graph-hot]" in p.figures()[0].axes[0].get_title()
    # recorded mode: the slider snaps to the recorded sizes and picks the one shown in detail
    assert list(p.batch.options) == [1, 4, 8, 16, 32, 48, 64]
    p.mode.value = "cold"
    p.batch.value = 64
    assert p.detail().columns.name == "B=64 [cupti-cold], µs" and len(p.detail().columns) == 8
    p.workloads.value = "representative"  # the workloads box filters the records
    from decodekit.problem.workloads import select

    kept = set(p.selection().loc[p.selection()["impl_kind"] != "floor", "uuid"])
    assert kept == {w.uuid for w in select("representative")}
    p.workloads.value = "all"
    assert p.preset.options == ("any", "quick")
    p.preset.value = "quick"
    assert len(p.selection()) > 0
    label = dict((v, k) for k, v in p.recorded_run.options)["fake-run-1"]
    assert label.startswith("2026-01-02 03:04 FAKE-GPU") and "0000000" in label
    p.mode.value = "hot"
    p.recorded_run.value = "fake-run-0"
    assert "fake-run-0" in _texts(p.figures()[0])
    p.impls.value = ("torch-fp32",)
    assert set(p.selection()["impl"]) - {"torch-copy", "empty-kernel"} == {"torch-fp32"}


def test_panel_with_no_records_at_all():
    p = widgets.panel(records=views.empty_records(), live=False)
    assert "no recorded results" in p.label.value
    assert p.figures()[0].axes[0].get_title().endswith("no data")


def test_panel_run_button_calls_the_sweep_and_redraws(records, data_dir, monkeypatch):
    """The GPU path with the sweep replaced: arguments pass through, records reload."""
    from decodekit.measure import sweep

    calls = []

    def fake_sweep(impls, workloads, **kw):
        calls.append((impls, workloads, kw))
        return records[records["run_id"] == "fake-run-0"]

    monkeypatch.setattr(sweep, "run", fake_sweep)
    monkeypatch.setenv("DECODEKIT_DATA", str(data_dir))
    p = widgets.panel(records=records.head(0), live=False)
    p.live, p.run_button.disabled = True, False  # as on a GPU machine
    p.impls.value = ("baseline",)
    p.workloads.value = "B1,B3,700"
    p.mode.value = "hot"
    p.run()
    impls, workloads, kw = calls[0]
    assert (impls, workloads) == (["baseline"], "B1,B3,700")
    assert kw["methods"] == ("graph-hot",) and kw["preset"] == p.preset.value
    assert kw["out_dir"] == data_dir / "results"
    assert len(p.records) == len(views.load_records(data_dir / "results"))
    assert not p.run_button.disabled
    assert p.recorded_run.value == "fake-run-0"  # the panel shows the run just made
    assert "fake-run-0" in _texts(p.figures()[0])


def test_latency_floors_use_the_kernels_timing_method(records):
    """The empty-kernel line is the launch floor measured with the plotted method, and the
    row-copy floor gets its own line when recorded."""
    import pandas as pd

    base = records[records["floor"] == "empty-kernel"].iloc[0]
    other = base.copy()
    other["method"], other["latency_us"] = "events-cold", 50.0  # another method's launch floor
    rc = records[records["floor"] == "copy-floor"].copy()
    rc["floor"], rc["impl"] = "row-copy-floor", "row-copy"
    df = pd.concat([records, pd.DataFrame([other]), rc], ignore_index=True)
    fig = plots.latency_vs_batch(df, method="cupti-cold")
    ax = fig.axes[0]
    flat = [ln for ln in ax.get_lines() if len(set(ln.get_ydata())) == 1]
    assert [ln.get_ydata()[0] for ln in flat] == [base["latency_us"]]
    assert any("row-copy floor" in t.get_text() for t in ax.get_legend().get_texts())


def test_recorded_strings_are_escaped_in_the_panel_and_the_report(records, tmp_path, monkeypatch):
    from decodekit.views import report

    evil = records.assign(gpu="<img src=x onerror=alert(1)>")
    p = widgets.panel(records=evil, live=False)
    assert "<img" not in p.label.value and "&lt;img" in p.label.value
    for html_text in (report.headlines_html(evil), report._index([], {}, False)):
        assert "<img src=x" not in html_text


def test_latency_of_a_family_member_draws_its_own_floors(tmp_path):
    from decodekit.measure.family_bench import bench_member
    from decodekit.measure.trial import Samples
    from decodekit.problem import family, family_math

    class Clock:
        def unavailable(self, method, device):
            return None

        def trial(self, method, target, n_warmup, n_iter):
            target()
            return Samples([3.0 if target.fn is not family_bench_copy else 2.0] * n_iter)

    from decodekit.measure.floors import copy as family_bench_copy

    m = family.SERVING[0]
    bench_member(m, {"torch-fp32": family_math.reference(m)}, "quick", batch_sizes=(1, 4),
                 out_dir=tmp_path, timer=Clock(), device="cpu")  # fmt: skip
    df = views.load_records(tmp_path)
    assert "no recorded results" in _texts(plots.latency_vs_batch(df))  # the contest's: none
    fig = plots.latency_vs_batch(df, definition=m.name)
    text = _texts(fig)
    assert m.name in text and "torch-copy floor" in text and "run " in text
