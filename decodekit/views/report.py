"""``decodekit report``: execute the notebooks headless and export self-contained HTML.

Each notebook runs through papermill with its ``parameters`` cell overridden (``impl``,
``workloads``, ``preset``, ``live``), in a kernel of this Python. The executed notebook gets a
first cell that states the provenance of its numbers (live or recorded, GPU, date, commit,
method, software), then nbconvert writes ``<out>/<notebook>.html`` with figures embedded as
base64 PNG. ``<out>/index.html`` opens with the headline of every recorded GPU (one run each:
:mod:`decodekit.views.headline`) and links them. Nothing is fetched from the network to view them.

>>> [p.stem for p in notebook_paths(["01", "04_latency_breakdown"])]
['01_quickstart', '04_latency_breakdown']
"""

from __future__ import annotations

import contextlib
import html
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import nbformat
import pandas as pd

from decodekit import views
from decodekit.base import paths

NOTEBOOKS = paths.notebooks_dir()
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;"
    "text-align:left;font-size:90%}.fail{color:#b00020}.ok{color:#1b5e20}"
)


def notebook_paths(names: list[str] | None = None) -> list[Path]:
    """The numbered notebooks, or those named by number, stem, file name or path."""
    every = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if not names:
        return every
    out = []
    for name in names:
        if name.endswith(".ipynb") and Path(name).exists():
            out.append(Path(name))
            continue
        hits = [n for n in every if name in (n.stem, n.name) or n.stem.startswith(f"{name}_")]
        if not hits:
            raise FileNotFoundError(f"argument 'notebooks': no notebook {name!r} in {NOTEBOOKS}")
        out.extend(hits)
    return out


@contextlib.contextmanager
def _kernel_env():
    """Let the notebook kernel import this checkout of decodekit even when not pip-installed."""
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(paths.ROOT), old]))
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def execute(path: Path, out: Path, params: dict, timeout: int = 1800) -> str | None:
    """Run ``path`` with ``params`` into ``out`` (an .ipynb); the error text, or None if it ran."""
    import papermill as pm

    try:
        with _kernel_env():
            pm.execute_notebook(
                str(path),
                str(out),
                parameters=params,
                kernel_name="python3",
                cwd=str(path.parent),
                progress_bar=False,
                execution_timeout=timeout,
            )
    except pm.PapermillExecutionError as e:
        return f"cell {e.exec_count}: {e.ename}: {e.evalue}"
    except Exception as e:  # a cell timeout or a dead kernel: report it, go on to the next
        return f"{type(e).__name__}: {e}"
    return None


def _table(rows: dict) -> str:
    cells = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in rows.items()
    )
    return f"<table>{cells}</table>"


def environment(params: dict) -> dict:
    """Where and how the report itself ran (the GPU here, if any, and the software)."""
    import torch

    from decodekit.records.env import git

    g = git()
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none (CPU only)"
    return {
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "GPU here": gpu,
        "decodekit commit": f"{(g['git_commit'] or '?')[:10]}{' (dirty)' if g['git_dirty'] else ''}",
        "python / torch / CUDA": f"{platform.python_version()} / {torch.__version__} / "
        f"{torch.version.cuda}",
        "parameters": ", ".join(f"{k}={v!r}" for k, v in params.items()) or "notebook defaults",
    }


RUN_COLUMNS = ["run_id", "gpu", "date", "git_commit", "driver", "cuda", "torch", "preset",
               "methods", "rows"]  # fmt: skip


def provenance_html(name: str, params: dict, live: bool, error: str | None,
                    definition: str | None = None) -> str:  # fmt: skip
    """The first screen of a report: what ran, where, and which recorded runs its numbers are.
    ``definition``: a family member the notebook is about; its runs are then every family
    member's latest (notebook 06 sets the members side by side), not the contest's."""
    everything = views.load_records()
    if definition and definition != views.DEFINITION.name and "definition" in everything:
        members = [d for d in everything["definition"].dropna().unique()
                   if d != views.DEFINITION.name]  # fmt: skip
        recs = pd.concat([views.latest(everything, definition=d) for d in members] or
                         [everything.iloc[:0]], ignore_index=True)  # fmt: skip
    else:
        recs = views.latest(everything)
    runs = views.runs(recs)
    about = definition or views.DEFINITION.name
    if error:
        status = f"<p class='fail'><b>notebook failed</b>: {html.escape(error)}</p>"
    else:
        status = "<p class='ok'>executed top to bottom without errors</p>"
    if runs.empty:
        numbers = "<p>No recorded results: the figures below are empty states.</p>"
    else:
        shown = runs[RUN_COLUMNS].assign(
            date=runs["date"].dt.strftime("%Y-%m-%d %H:%M UTC"),
            git_commit=runs["git_commit"].astype(str).str[:10],
        )
        numbers = shown.to_html(index=False, border=0, na_rep="?")
    ncu_dir = views.data_dir() / "ncu"
    ncu = sorted(p.name for p in ncu_dir.glob("*")) if ncu_dir.exists() else []
    text = (
        f"<div><style>{STYLE}</style><h1>decodekit report: {html.escape(name)}</h1>"
        f"<p><b>{html.escape(views.banner(recs, live, about))}</b></p>{status}"
        f"{_table(environment(params))}"
        "<h3>Every performance number below comes from these recorded runs</h3>"
        f"{numbers}<p>Timing method: named in each figure's title and table's "
        f"<code>method</code> column. Nsight Compute exports: "
        f"{html.escape(', '.join(ncu) or 'none')}. Records folder: "
        f"<code>{html.escape(paths.relative(views.data_dir()))}</code>.</p></div>"
    )
    # One line of HTML: markdown would turn the table's indented lines into code blocks.
    return text.replace("\n", "")


def _static(nb) -> None:
    """Drop live-widget views (they need a running kernel) and say where the panel lives."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_VIEW in data:
                out["data"] = {
                    "text/plain": "[interactive panel: open this notebook in "
                    "JupyterLab to use it; static figures follow]"
                }


# JupyterLab's look without the scripts it loads from CDNs (require.js, MathJax, mermaid): a
# report must open offline, and its figures are PNGs that need no script.
OFFLINE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""


def to_html(nb, exclude_input: bool = False) -> str:
    """Self-contained HTML of an executed notebook: figures inline as base64, no remote scripts."""
    import jinja2
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        template_name="lab",
        template_file="offline.html.j2",
        extra_loaders=[jinja2.DictLoader({"offline.html.j2": OFFLINE_TEMPLATE})],
        exclude_input=exclude_input,
        embed_images=True,
    )
    body, _ = exporter.from_notebook_node(nb)
    return body


def build_report(
    notebooks: list[str] | None = None,
    out_dir: str | Path = "reports",
    params: dict | None = None,
    exclude_input: bool = False,
    timeout: int = 1800,
) -> list[Path]:
    """Execute ``notebooks`` (default: all) with ``params`` and write one HTML each plus an
    ``index.html`` into ``out_dir``; returns the written HTML paths, index last."""
    return _build(notebooks, out_dir, params, exclude_input, timeout)[0]


def _build(notebooks, out_dir, params, exclude_input=False, timeout=1800):
    out_dir = Path(out_dir)
    (out_dir / "executed").mkdir(parents=True, exist_ok=True)
    params = {k: v for k, v in (params or {}).items() if v is not None}
    live = views.resolve_live(params.get("live", "auto"))
    written, summary = [], []
    for path in notebook_paths(notebooks):
        start = time.monotonic()
        executed = out_dir / "executed" / path.name
        error = execute(path, executed, params, timeout)
        nb = nbformat.read(executed if executed.exists() else path, as_version=4)
        _static(nb)
        own = notebook_parameters(path)  # a notebook about one member names it there
        about = params.get("definition", own["definition"]) if "definition" in own else None
        head = nbformat.v4.new_markdown_cell(provenance_html(path.stem, params, live, error, about))
        nb.cells.insert(0, head)
        target = out_dir / f"{path.stem}.html"
        target.write_text(to_html(nb, exclude_input), encoding="utf-8")
        written.append(target)
        summary.append((path.stem, error, time.monotonic() - start))
        print(f"{path.stem}: {'FAILED ' + error if error else 'ok'} -> {target}", file=sys.stderr)
    index = out_dir / "index.html"
    index.write_text(_index(summary, params, live), encoding="utf-8")
    return written + [index], summary


def notebook_parameters(path: str | Path) -> dict:
    """The literal defaults of a notebook's ``parameters`` cell (``name = value`` lines)."""
    import ast

    nb = nbformat.read(path, as_version=4)
    cell = next((c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])),
                None)  # fmt: skip
    try:
        body = ast.parse(cell.source).body if cell is not None else []
    except SyntaxError:  # a cell with IPython syntax: no literal defaults to read
        return {}
    out = {}
    for node in body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            with contextlib.suppress(ValueError, TypeError):
                out[node.targets[0].id] = ast.literal_eval(node.value)
    return out


def _png(fig) -> str:
    import base64
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return base64.b64encode(buf.getvalue()).decode()


def headlines_html(records: pd.DataFrame) -> str:
    """Per GPU, newest first: the headline table of one run (:mod:`decodekit.views.headline`), its
    caption naming that run, and one figure drawn from that run alone."""
    from decodekit.views import headline, plots

    parts = []
    for gpu, run in headline.runs_by_gpu(records).items():
        t = headline.headline(records, gpu, run)
        if t.empty:
            continue
        one = records[(records["gpu"] == gpu) & (records["run_id"] == run)]
        fig = plots.latency_vs_batch(one, method=t.attrs["method"])
        parts.append(
            f"<section class='headline' data-gpu='{html.escape(gpu)}' data-run='{html.escape(run)}'>"
            f"<h2>{html.escape(gpu)}</h2><p>{html.escape(headline.caption(t))}</p>"
            f"{t.reset_index().to_html(index=False, border=0, na_rep='', float_format=lambda x: f'{x:g}')}"
            f"<img alt='latency vs batch size, run {html.escape(run)}' "
            f"src='data:image/png;base64,{_png(fig)}'></section>"
        )  # fmt: skip
    return "".join(parts) or "<p>No recorded run of the kit's kernels yet.</p>"


def compare_html(records: pd.DataFrame, impl: str = "best") -> str:
    """Per GPU: the two newest runs that timed ``impl``, compared (:mod:`decodekit.views.compare`):
    the verdict per batch size and overall, naming both runs."""
    from decodekit.views import compare, headline

    parts = []
    for gpu in headline.runs_by_gpu(records):
        pair = compare.latest_pair(records, impl, gpu)
        if pair is None:
            continue
        try:
            _, per_b = compare.compare(records, *pair, impl_a=impl)
        except ValueError as e:  # nothing paired (other workloads or methods): say so
            parts.append(f"<p>{html.escape(gpu)}: {html.escape(str(e))}</p>")
            continue
        per_b = per_b[per_b["impl"] == impl].drop(columns=["impl"])
        head = (f"{gpu}: run {pair[1]} (B) against run {pair[0]} (A), {impl}, "
                f"{per_b.attrs['method']}; ratio B / A, 95% bootstrap interval")  # fmt: skip
        parts.append(f"<h3>{html.escape(head)}</h3>{per_b.to_html(index=False, border=0)}")
    if not parts:
        return ""
    return "<h2>Did the last change help?</h2>" + "".join(parts)


def _index(summary: list[tuple[str, str | None, float]], params: dict, live: bool) -> str:
    everything = views.load_records()
    recs = views.latest(everything)
    rows = pd.DataFrame(
        [
            {
                "report": f"<a href='{name}.html'>{name}</a>",
                "status": f"<span class='fail'>failed: {html.escape(err)}</span>"
                if err
                else "<span class='ok'>ok</span>",
                "seconds": f"{secs:.0f}",
            }
            for name, err, secs in summary
        ]
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>decodekit reports</title>"
        f"<style>{STYLE}</style></head><body><h1>decodekit reports</h1>"
        f"<p><b>{html.escape(views.banner(recs, live))}</b></p>"
        f"{headlines_html(everything)}{compare_html(everything)}<h2>Notebooks</h2>"
        f"{rows.to_html(index=False, escape=False, border=0)}{_table(environment(params))}"
        f"<h3>Recorded runs</h3><pre>{html.escape(views.provenance(recs))}</pre></body></html>"
    )


def clean(nb) -> bool:
    """Strip ``nb`` in place to what git keeps: sources, the kernelspec, cell tags. True if
    anything was removed (outputs, execution counts, other metadata)."""
    before = nbformat.writes(nb)
    nb.metadata = {k: v for k, v in nb.metadata.items() if k == "kernelspec"}
    for cell in nb.cells:
        cell.metadata = {k: v for k, v in cell.metadata.items() if k == "tags"}
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nbformat.writes(nb) != before


def strip_notebooks(paths: list[str | Path] | None = None) -> list[Path]:
    """Clean the notebooks (default: every ``notebooks/NN_*.ipynb``) in place; returns those
    that changed. Run before committing a notebook you executed in JupyterLab."""
    changed = []
    for path in map(Path, paths or notebook_paths()):
        nb = nbformat.read(path, as_version=4)
        if clean(nb):
            nbformat.write(nb, path)
            changed.append(path)
    return changed


def cli_report(
    out_dir: str | Path = "reports",
    notebooks: list[str] | None = None,
    impl: str | None = None,
    workloads: str | None = None,
    preset: str | None = None,
    definition: str | None = None,
) -> int:
    """``decodekit report``: 0 when every notebook ran, 1 when one failed (its HTML says where).
    ``definition``: the decode-family member the serving notebook (06) shows."""
    if definition is not None:
        from decodekit.problem.family import parse

        parse(definition)  # a name that is no member fails here, in one line
    params = {"impl": impl, "workloads": workloads, "preset": preset, "definition": definition}
    paths, summary = _build(notebooks, out_dir, params)
    failed = [name for name, err, _ in summary if err]
    print(f"wrote {len(paths) - 1} reports ({len(failed)} failed); open {paths[-1]}")
    return 1 if failed else 0
