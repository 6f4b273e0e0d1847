"""An ipywidgets panel for batch-size sweeps: pick B, implementations, preset, cold or hot, run.

On a GPU the run button calls :func:`decodekit.measure.sweep.run`, which checks, times and writes
records; the panel then reloads the records and redraws the same plots a recorded run gets.
Without a GPU the button is off and the panel browses recorded runs, saying so at the top:
the B slider snaps to the recorded batch sizes and marks the chosen one (with a table of
its workloads), the workloads box and the preset filter the records, and the runs are
listed by date, GPU, commit and what they hold.

>>> p = panel(records=views.empty_records(), live=False)
>>> p.run_button.disabled, p.workloads.value, p.batch.options
(True, 'all', (1,))
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import ipywidgets as w
import pandas as pd

from decodekit import records as dk_records
from decodekit import views
from decodekit.measure.timing import DEFAULT_METHODS
from decodekit.views import plots

COLD = tuple(m for m in DEFAULT_METHODS if m != "graph-hot")  # the default order, cold
HOT = ("graph-hot",)


def _presets() -> list[str]:
    from decodekit.measure import PRESETS

    return list(PRESETS)


def _impl_options(records: pd.DataFrame) -> list[str]:
    from decodekit.impls import registry

    recorded = records.loc[~dk_records.is_floor(records), "impl"].dropna()
    return list(dict.fromkeys([*registry.names(), *sorted(recorded.unique())]))


class Panel(w.VBox):
    """The sweep panel; :func:`panel` builds one. Controls are attributes for scripting."""

    def __init__(
        self,
        records: pd.DataFrame | None = None,
        live: bool | str = "auto",
        impls: Sequence[str] | None = None,
        preset: str | None = None,
    ):
        self.live = views.resolve_live(live)
        self.records = views.load_records() if records is None else views.normalize(records)
        options = _impl_options(self.records)
        recorded = [i for i in options if i in set(views.ok(self.records)["impl"])]
        chosen = [i for i in impls or recorded[:4] or ["baseline"] if i in options]
        presets = _presets()

        sizes = sorted({int(b) for b in views.ok(self.records)["batch_size"].dropna()})
        if self.live:  # any size can be measured; the recorded ones are on the track too
            sizes = sorted(set(sizes) | {2**i for i in range(10)})
        self.batch = w.SelectionSlider(
            options=sizes or [1], value=(sizes or [1])[0], description="B",
            continuous_update=False,
        )  # fmt: skip
        self.workloads = w.Text(
            "B1" if self.live else "all",
            description="workloads",
            placeholder="B1,B3,700 | representative | contest | all",
        )
        self.impls = w.SelectMultiple(options=options, value=chosen, description="impls", rows=5)
        if self.live:
            default = preset or ("quick" if "quick" in presets else presets[0])
            self.preset = w.Dropdown(options=presets, value=default, description="preset")
        else:  # recorded: a filter over the presets the records hold
            have = sorted(set(self.records["preset"].dropna()))
            self.preset = w.Dropdown(options=["any", *have], value=preset if preset in have
                                     else "any", description="preset")  # fmt: skip
        self.mode = w.ToggleButtons(options=["cold", "hot"], description="L2")
        self.run_button = w.Button(
            description="run sweep",
            button_style="primary",
            icon="play",
            disabled=not self.live,
            tooltip="check, time and record on this GPU" if self.live else "no GPU here",
        )
        self.recorded_run = w.Dropdown(description="recorded", options=self._run_options())
        self.label = w.HTML()
        self.out = w.Output()

        # Live, the slider writes the text so the text is the one statement of what runs
        # (typing "B1,B3,700" or "contest" there reaches any batch size). Recorded, the slider
        # picks the batch size shown in detail and the text filters the records.
        if self.live:
            self.batch.observe(
                lambda ch: setattr(self.workloads, "value", f"B{ch['new']}"), "value"
            )
        controls = [self.impls, self.mode, self.recorded_run]
        if not self.live:
            controls += [self.batch, self.workloads, self.preset]
        for control in controls:
            control.observe(lambda _: self.redraw(), "value")
        self.run_button.on_click(lambda _: self.run())

        controls = w.HBox(
            [w.VBox([self.batch, self.workloads, self.preset, self.mode]), self.impls]
        )
        buttons = w.HBox([self.run_button, self.recorded_run])
        super().__init__([self.label, controls, buttons, self.out])
        self.redraw()

    def _run_options(self) -> list[tuple[str, str | None]]:
        table = views.runs(self.records)
        items = [("newest per row", None)]
        for r in table.itertuples():
            date = r.date.strftime("%Y-%m-%d %H:%M") if not pd.isna(r.date) else "?"
            commit = str(r.git_commit)[:7] if not pd.isna(r.git_commit) else "no commit"
            items.append((f"{date} {r.gpu} {commit} {r.run_id}: {r.impls} [{r.methods}]",
                          r.run_id))  # fmt: skip
        return items

    def _workload_filter(self, df: pd.DataFrame) -> pd.DataFrame:
        """Recorded mode: the records of the workloads the text names (their uuids where the
        records hold them, else their batch sizes); ``all`` keeps every one."""
        from decodekit.problem.workloads import select

        text = self.workloads.value.strip()
        if not text or text == "all":
            return df
        try:
            ws = select(text)
        except (ValueError, KeyError):
            return df.iloc[0:0]
        uuids = {x.uuid for x in ws}
        if df["uuid"].isin(uuids).any():
            return df[df["uuid"].isin(uuids) | dk_records.is_floor(df)]
        return df[df["batch_size"].isin({x.batch_size for x in ws})]

    def selection(self) -> pd.DataFrame:
        """The records the panel shows: chosen recorded run (if any), implementations, and
        in recorded mode the workloads and preset filters."""
        df = self.records
        if self.recorded_run.value is not None:
            df = df[df["run_id"] == self.recorded_run.value]
        if not self.live:
            df = self._workload_filter(df)
            if self.preset.value != "any":
                df = df[(df["preset"] == self.preset.value) | dk_records.is_floor(df)]
        keep = df["impl"].isin(self.impls.value) | dk_records.is_floor(df)
        return df[keep]

    def detail(self) -> pd.DataFrame:
        """Recorded mode: the chosen batch size's workloads, µs per implementation (rows)."""
        df, m = self.selection(), self.method()
        d = views.ok(views.latest(df))
        d = d[(d["method"] == m) & (d["batch_size"] == self.batch.value)]
        d = d[~dk_records.is_floor(d)]
        if d.empty:
            return pd.DataFrame()
        t = d.pivot_table(index="impl", columns="workload", values="latency_us").round(2)
        t.columns.name = f"B={self.batch.value} [{m}], µs"
        return t

    def method(self) -> str | None:
        have = set(self.selection()["method"].dropna())
        return next((m for m in (COLD if self.mode.value == "cold" else HOT) if m in have), None)

    def figures(self) -> list:
        """The figures for the current selection (what :meth:`redraw` shows)."""
        df, m = self.selection(), self.method()
        if m is None:
            missing = f"no {self.mode.value} timing recorded for {list(self.impls.value)}"
            return [plots.empty("latency vs batch size", missing)]
        figs = [
            plots.latency_vs_batch(df, method=m, impls=list(self.impls.value)),
            plots.bandwidth_vs_batch(df, method=m, impls=list(self.impls.value)),
        ]
        if not self.live and figs[0].axes and figs[0].axes[0].has_data():
            figs[0].axes[0].axvline(self.batch.value, color="0.5", lw=6, alpha=0.2)
        return figs

    def redraw(self) -> None:
        # recorded strings (a GPU name, a run id) are data, never markup
        self.label.value = f"<b>{html.escape(views.banner(self.selection(), self.live))}</b>"
        # Appended as display data, not displayed inside ``with self.out``, so a panel built
        # outside a kernel (a script, a doctest) prints nothing.
        self.out.outputs = ()
        for fig in self.figures():
            self.out.append_display_data(fig)
        if not self.live:
            detail = self.detail()
            if not detail.empty:
                self.out.append_display_data(detail)

    def run(self) -> pd.DataFrame | None:
        """Sweep the chosen implementations over the chosen workloads (GPU only), then show
        that run. In a kernel an error shows in the panel's output (and returns None)."""
        from decodekit.measure import sweep

        self.run_button.disabled = True
        self.out.clear_output()
        new = None
        try:
            with self.out:
                new = sweep.run(
                    list(self.impls.value),
                    self.workloads.value,
                    preset=self.preset.value,
                    methods=("graph-hot",) if self.mode.value == "hot" else (),
                    out_dir=views.data_dir() / "results",
                    progress=True,
                )
        finally:
            self.run_button.disabled = not self.live
        if new is None:
            return None
        self.records = views.load_records()
        self.recorded_run.options = self._run_options()
        run_ids = set(new.get("run_id", pd.Series(dtype=object)).dropna())
        # Show the run just made, not older records of the same implementations.
        self.recorded_run.value = run_ids.pop() if len(run_ids) == 1 else None
        self.redraw()
        return new


def panel(
    records: pd.DataFrame | None = None,
    live: bool | str = "auto",
    impls: Sequence[str] | None = None,
    preset: str | None = None,
) -> Panel:
    """The sweep panel: live on a GPU (``live="auto"``), else browsing recorded runs."""
    return Panel(records=records, live=live, impls=impls, preset=preset)
