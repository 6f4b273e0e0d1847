"""Notebooks are clean in git and run top to bottom headless on a CPU (recorded mode)."""

from pathlib import Path

import nbformat
import pytest

from decodekit.views import report

NOTEBOOKS = report.notebook_paths()
EXPECTED = [
    "01_quickstart",
    "02_batch_sweep",
    "03_ncu_profile",
    "04_latency_breakdown",
    "05_variants_vs_baselines",
    "06_serving_contracts",
]


def test_numbered_reading_order():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_clean_in_git(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert not report.clean(nb), (
        f"{path.name} carries outputs or metadata; run "
        "python -c 'from decodekit.views.report import strip_notebooks; strip_notebooks()'"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_first_code_cell_is_the_papermill_parameters(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert tagged == code[:1]
    for name in ("impl", "workloads", "preset", "live"):
        assert f"{name} = " in tagged[0].source
    assert 'live = "auto"' in tagged[0].source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_thin(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert len(cell.source.splitlines()) <= 10, cell.source


def _run(path: Path, tmp_path: Path) -> nbformat.NotebookNode:
    out = tmp_path / path.name
    error = report.execute(path, out, {"live": False}, timeout=300)
    assert error is None, f"{path.name} failed headless on CPU: {error}"
    return nbformat.read(out, as_version=4)


def _errors(nb) -> list[str]:
    return [
        o.get("ename", "") + ": " + o.get("evalue", "")
        for c in nb.cells
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_headless_on_cpu_from_repository_data(path, tmp_path, monkeypatch):
    """Recorded mode over whatever data/ holds (nothing yet, or a GPU run's records)."""
    monkeypatch.delenv("DECODEKIT_DATA", raising=False)
    nb = _run(path, tmp_path)
    assert not _errors(nb)
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "recorded data from" in text or "no recorded results" in text or "03" in path.stem


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_headless_with_no_records_at_all(path, tmp_path, monkeypatch):
    monkeypatch.setenv("DECODEKIT_DATA", str(tmp_path / "empty"))
    nb = _run(path, tmp_path)
    pngs = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    # every figure is an empty state that says what is missing; none is a traceback
    assert not _errors(nb)
    assert pngs
