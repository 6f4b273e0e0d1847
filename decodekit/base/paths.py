"""Where the kit's files are: one statement of every folder, in a checkout and installed.

In a checkout (``pyproject.toml`` and ``kernels/`` beside the package) everything is the
checkout's own: ``kernels/``, ``notebooks/``, ``data/``. Installed from a wheel, the kernel
sources, the workload manifest, the notebooks and the recorded tuning tables ship inside the
package (``decodekit._kernels``, ``._manifest``, ``._notebooks``, ``._tuning``, read through
:mod:`importlib.resources`), and records go to a data directory of the user's:
``$DECODEKIT_DATA`` (or ``decodekit --data-dir``) if set, else ``$XDG_DATA_HOME/decodekit``
(``~/.local/share/decodekit``).

>>> kernels_dir().joinpath("gdn.cuh").is_file()
True
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout, when running from one
DATA_ENV = "DECODEKIT_DATA"


def in_checkout() -> bool:
    """True when the package runs from a source checkout (editable install or PYTHONPATH)."""
    return (ROOT / "pyproject.toml").is_file() and (ROOT / "kernels").is_dir()


def _shipped(folder: str) -> Path:
    # files() of the regular package is a real folder for any installed wheel; the data
    # folders themselves have no __init__.py (namespace packages would give a MultiplexedPath)
    return Path(str(resources.files("decodekit"))) / folder


def kernels_dir() -> Path:
    """The CUDA sources: the checkout's ``kernels/``, else the copy in the wheel."""
    return ROOT / "kernels" if in_checkout() else _shipped("_kernels")


def manifest_dir() -> Path:
    """The workload manifest: ``data/workloads/`` of the checkout, else the wheel's copy."""
    return ROOT / "data" / "workloads" if in_checkout() else _shipped("_manifest")


def notebooks_dir() -> Path:
    return ROOT / "notebooks" if in_checkout() else _shipped("_notebooks")


def user_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "decodekit"


def data_dir() -> Path:
    """Where records are written and read: ``$DECODEKIT_DATA``, else the checkout's
    ``data/``, else :func:`user_data_dir`."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    return ROOT / "data" if in_checkout() else user_data_dir()


def tuning_dirs() -> list[Path]:
    """Where tuning tables are looked up, first match wins: the data directory's
    ``tuning/`` (where ``decodekit tune`` writes), then the tables shipped in the wheel."""
    dirs = [data_dir() / "tuning"]
    if not in_checkout():
        dirs.append(_shipped("_tuning"))
    return dirs


def relative(path: str | os.PathLike) -> str:
    """``path`` as recorded: relative to the checkout (or the data directory) where it lies
    inside one, so no record, export or report holds a machine's own paths."""
    p = Path(path).resolve()
    for base in (ROOT, data_dir().resolve()):
        if p.is_relative_to(base):
            return str(p.relative_to(base))
    return str(p)
