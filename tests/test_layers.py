"""The layers contract (pyproject's [tool.importlinter], checked by `lint-imports` in
`make lint`, which `make test` runs): decodekit's modules live in one subpackage per layer,
each importing only the layers below it. A new module goes into its layer's folder."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "decodekit"
tomllib = pytest.importorskip("tomllib")  # Python >= 3.11


def _layers() -> list[str]:
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in conf["contracts"] if c["type"] == "layers"]
    return [m.strip() for layer in layers for m in layer.split(":")]


def test_every_module_lives_in_a_layer_package():
    placed = set(_layers())
    loose = sorted(p.name for p in PKG.glob("*.py") if p.stem not in ("__init__", "__main__"))
    assert loose == [], f"modules outside a layer package: {loose}"
    for p in PKG.rglob("*.py"):
        rel = p.relative_to(PKG)
        if len(rel.parts) == 1:
            continue
        assert len(rel.parts) == 2, f"{rel}: one level of packages"
        assert f"decodekit.{rel.parts[0]}" in placed, f"{rel}: its package names no layer"
    dirs = {p.name for p in PKG.iterdir() if p.is_dir() and not p.name.startswith("__")}
    assert {f"decodekit.{d}" for d in dirs} <= placed


def test_the_contracts_hold():
    from importlinter.cli import lint_imports

    assert lint_imports(config_filename=str(ROOT / "pyproject.toml")) == 0
