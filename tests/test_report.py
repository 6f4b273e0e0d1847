"""``decodekit report`` writes self-contained HTML whose first screen states provenance, and
headless Chromium renders it without script errors and with its figures visible."""

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import numpy as np
import pytest

from decodekit.views import report

ROOT = Path(__file__).resolve().parent.parent
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

_spec = importlib.util.spec_from_file_location(
    "fake_data", Path(__file__).parent / "fixtures" / "fake_data.py"
)
fake = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fake)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Every notebook executed headless in recorded mode over fake records."""
    data = fake.write(tmp_path_factory.mktemp("fake_data"))
    out = tmp_path_factory.mktemp("reports")
    old = os.environ.get("DECODEKIT_DATA")
    os.environ["DECODEKIT_DATA"] = str(data)
    try:
        params = dict(impl="baseline", workloads="representative", preset="quick", live=False)
        paths = report.build_report(None, out, params)
    finally:
        if old is None:
            os.environ.pop("DECODEKIT_DATA")
        else:
            os.environ["DECODEKIT_DATA"] = old
    return paths, out


@pytest.mark.slow
def test_report_writes_one_html_per_notebook_and_an_index(built):
    paths, out = built
    assert paths[-1] == out / "index.html"
    names = [p.stem for p in report.notebook_paths()]
    assert sorted(p.stem for p in out.glob("*.html")) == sorted(names + ["index"])
    index = (out / "index.html").read_text()
    for name in names:
        assert f"href='{name}.html'" in index
    assert "failed" not in index


@pytest.mark.slow
def test_report_is_self_contained_with_embedded_figures(built):
    _, out = built
    for page in out.glob("[0-9]*.html"):
        text = page.read_text()
        assert not re.search(r"""(src|href)=["']https?://""", text), page.name
        assert text.count('src="data:image/png;base64,') >= 1, page.name
    assert (
        "interactive panel: open this notebook in JupyterLab"
        in (out / "02_batch_sweep.html").read_text()
    )


@pytest.mark.slow
def test_first_screen_states_provenance_of_every_number(built):
    _, out = built
    text = (out / "04_latency_breakdown.html").read_text()
    first_cell = text.index("04 · Latency breakdown")
    head = text[:first_cell]
    for needed in (
        f": showing recorded data from {fake.GPU} 2026-01-02",
        "executed top to bottom without errors",
        "fake-run-1",
        "0000000000",  # the records' commit
        "cupti-cold",  # methods of the run
        "GPU here",
    ):
        assert needed in head, needed
    assert re.search("impl=(&#x27;|')baseline", head), "the parameters the report ran with"


@pytest.mark.slow
def test_failing_notebook_is_reported_not_hidden(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3"}}
    nb.cells = [nbformat.v4.new_code_cell("raise ValueError('kaput')")]
    path = tmp_path / "99_broken.ipynb"
    nbformat.write(nb, path)
    assert report.cli_report(tmp_path / "out", [str(path)]) == 1
    html = (tmp_path / "out" / "99_broken.html").read_text()
    assert "notebook failed" in html and "kaput" in html


def _chromium() -> str:
    for exe in BROWSERS:
        if shutil.which(exe):
            return shutil.which(exe)
    script = ROOT / ".ci" / "install-chromium.sh"
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["sh", str(script)], capture_output=True, timeout=900)
    for exe in BROWSERS:
        if shutil.which(exe):
            return shutil.which(exe)
    pytest.skip(f"chromium not installed and {script} could not install it (needs root + apt)")


def _chrome(profile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--user-data-dir={profile}", *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def _screenshot(url: str, png: Path, profile: Path, height: int = 4000) -> str:
    proc = _chrome(profile, "--enable-logging=stderr", "--v=0", f"--window-size=1280,{height}",
                   f"--screenshot={png}", url)  # fmt: skip
    assert png.exists(), proc.stderr[-2000:]
    return proc.stderr


# Appended to a copy of a report: after load, record how many images decoded to a real size.
PROBE = (
    "<script>window.addEventListener('load', () => { const i = [...document.images];"
    " document.body.dataset.images = i.filter(x => x.complete && x.naturalWidth > 0).length"
    " + '/' + i.length; });</script></body>"
)


def _decoded_images(html: Path, tmp_path: Path) -> tuple[int, int]:
    probe = tmp_path / "probe.html"
    probe.write_text(html.read_text().replace("</body>", PROBE))
    dom = _chrome(tmp_path / "profile", "--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    found = re.search(r'data-images="(\d+)/(\d+)"', dom.stdout)
    assert found, dom.stderr[-2000:]
    return int(found.group(1)), int(found.group(2))


def _pixels(png: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(png).convert("RGB")).astype(int)


@pytest.mark.slow
@pytest.mark.parametrize("page", report.notebook_paths(), ids=lambda p: p.stem)
def test_chromium_renders_report_with_figures_visible(built, page, tmp_path):
    _, out = built
    html = out / f"{page.stem}.html"
    png = tmp_path / "page.png"
    log = _screenshot(html.as_uri(), png, tmp_path / "profile")
    console = [line for line in log.splitlines() if "CONSOLE" in line]
    assert not [line for line in console if "Uncaught" in line or "rror" in line], console
    assert "Failed to load resource" not in log
    px = _pixels(png)
    assert px.std() > 20, "blank screenshot"
    figures = html.read_text().count('src="data:image/png;base64,')
    assert _decoded_images(html, tmp_path) == (figures, figures) and figures >= 1
    # The same page with its images removed looks different: the figures are drawn on screen.
    bare = tmp_path / "bare.html"
    bare.write_text(re.sub(r'src="data:image/png;base64,[^"]*"', 'src=""', html.read_text()))
    _screenshot(bare.as_uri(), tmp_path / "bare.png", tmp_path / "profile")
    changed = (np.abs(px - _pixels(tmp_path / "bare.png")).sum(-1) > 30).mean()
    assert changed > 0.005, f"figures not visible: {changed:.4f} of the page depends on them"


@pytest.mark.slow
def test_chromium_renders_index(built, tmp_path):
    _, out = built
    png = tmp_path / "index.png"
    _screenshot((out / "index.html").as_uri(), png, tmp_path / "profile", height=900)
    assert _pixels(png).std() > 5


def test_chromium_index_headline_matches_the_records_it_names(tmp_path):
    """The index opens with a headline per recorded GPU; every number in its table is the
    mean, over that batch size's workloads, of the one run its section names."""
    from decodekit import records, views

    page = tmp_path / "index.html"
    page.write_text(report._index([("01_quickstart", None, 1.0)], {}, False))
    png = tmp_path / "index.png"
    _screenshot(page.as_uri(), png, tmp_path / "profile", height=1600)
    assert _pixels(png).std() > 5
    dom = _chrome(tmp_path / "profile", "--dump-dom", page.as_uri()).stdout
    sections = re.findall(r"<section class=\"headline\" data-gpu=\"([^\"]+)\" data-run=\"(\w+)\">"
                          r"(.*?)</section>", dom, re.S)  # fmt: skip
    recorded = records.load(views.data_dir() / "results")
    assert {gpu for gpu, _, _ in sections} >= {"NVIDIA H100 80GB HBM3", "NVIDIA H200"}
    for gpu, run, body in sections:
        assert f"run {run}" in body
        head = re.findall(r"<th>(.*?)</th>", body)
        rows = [re.findall(r"<td>(.*?)</td>", r) for r in re.findall(r"<tr>(.*?)</tr>", body, re.S)]
        rows = [r for r in rows if r]
        col = head.index("best µs")
        mine = recorded[(recorded["run_id"] == run) & (recorded["impl"] == "best")
                        & (recorded["method"] == "cupti-cold") & (recorded["status"] == "ok")]  # fmt: skip
        want = mine.groupby(mine["batch_size"].astype(int))["latency_us"].mean().round(2)
        got = {int(r[0]): float(r[col]) for r in rows}
        assert got == want.to_dict(), (gpu, run)
