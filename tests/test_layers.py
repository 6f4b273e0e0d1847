"""The layers contract (pyproject's [tool.importlinter], checked by `lint-imports` in
`make lint`) places every module of the package: a new module must name its layer."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib")  # Python >= 3.11


def test_every_module_has_a_layer_and_appears_once():
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in conf["contracts"] if c["type"] == "layers"]
    placed = [m.strip() for layer in layers for m in layer.split(":")]
    modules = sorted(f"decodekit.{p.stem}" for p in (ROOT / "decodekit").glob("*.py")
                     if p.stem != "__init__")  # fmt: skip
    assert sorted(placed) == modules


def test_the_contracts_hold():
    from importlinter.cli import lint_imports

    assert lint_imports(config_filename=str(ROOT / "pyproject.toml")) == 0
