"""An ipywidgets panel for batch-size sweeps: pick B, implementations, preset, cold or hot, run.

On a GPU the run button calls :func:`decodekit.sweep.run`, which checks, times and writes
records; the panel then reloads the records and redraws the same plots a recorded run gets.
Without a GPU the button is off and the panel browses recorded runs, saying so at the top.

>>> p = panel(records=views.empty_records(), live=False)
>>> p.run_button.disabled, p.workloads.value
(True, 'B1')
"""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as w
import pandas as pd

from decodekit import plots, views

COLD = ("cupti-cold", "events-cold", "fib-0.1.2", "wall")
HOT = ("graph-hot",)


def _presets() -> list[str]:
    from decodekit.bench import PRESETS

    return list(PRESETS)


def _impl_options(records: pd.DataFrame) -> list[str]:
    from decodekit import registry

    recorded = records.loc[records["impl_kind"].fillna("") != "floor", "impl"].dropna()
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

        self.batch = w.IntSlider(1, min=1, max=512, description="B", continuous_update=False)
        self.workloads = w.Text(
            "B1", description="workloads", placeholder="B1,B3,700 | representative | contest"
        )
        self.impls = w.SelectMultiple(options=options, value=chosen, description="impls", rows=5)
        default = preset or ("quick" if "quick" in presets else presets[0])
        self.preset = w.Dropdown(options=presets, value=default, description="preset")
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

        # The slider writes the text so the text is the one statement of what runs; typing
        # "B1,B3,700" or "contest" there reaches any batch size, not only the slider's range.
        self.batch.observe(lambda ch: setattr(self.workloads, "value", f"B{ch['new']}"), "value")
        for control in (self.impls, self.mode, self.recorded_run):
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
            date = r.date.strftime("%Y-%m-%d") if not pd.isna(r.date) else "?"
            items.append((f"{r.gpu} {date} ({r.run_id}, {r.rows} rows)", r.run_id))
        return items

    def selection(self) -> pd.DataFrame:
        """The records the panel shows: chosen recorded run (if any) and implementations."""
        df = self.records
        if self.recorded_run.value is not None:
            df = df[df["run_id"] == self.recorded_run.value]
        keep = df["impl"].isin(self.impls.value) | (df["impl_kind"] == "floor")
        return df[keep]

    def method(self) -> str | None:
        have = set(self.selection()["method"].dropna())
        return next((m for m in (COLD if self.mode.value == "cold" else HOT) if m in have), None)

    def figures(self) -> list:
        """The figures for the current selection (what :meth:`redraw` shows)."""
        df, m = self.selection(), self.method()
        if m is None:
            missing = f"no {self.mode.value} timing recorded for {list(self.impls.value)}"
            return [plots.empty("latency vs batch size", missing)]
        return [
            plots.latency_vs_batch(df, method=m, impls=list(self.impls.value)),
            plots.bandwidth_vs_batch(df, method=m, impls=list(self.impls.value)),
        ]

    def redraw(self) -> None:
        self.label.value = f"<b>{views.banner(self.selection(), self.live)}</b>"
        # Appended as display data, not displayed inside ``with self.out``, so a panel built
        # outside a kernel (a script, a doctest) prints nothing.
        self.out.outputs = ()
        for fig in self.figures():
            self.out.append_display_data(fig)

    def run(self) -> pd.DataFrame | None:
        """Sweep the chosen implementations over the chosen workloads (GPU only), then show
        that run. In a kernel an error shows in the panel's output (and returns None)."""
        from decodekit import sweep

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
