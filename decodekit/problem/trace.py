"""Read a flashinfer-trace dataset folder, so captured workloads can drive checks and benches.

Layout (as flashinfer-trace publishes it): ``definitions/**/<name>.json`` and
``workloads/**/<name>.jsonl``, each line a Trace with a ``workload`` (or a bare Workload):
``{"uuid", "axes": {"batch_size"}, "inputs": {name: {"type": "random" | "scalar" |
"safetensors", "value" | "path", "tensor_key"}}}``. Random inputs are drawn by
:func:`decodekit.problem.workloads.make_inputs` from the uuid; safetensors paths are relative to the
dataset root. The kit's own manifest stays the default; select these with
``workloads.select("trace:/path/to/dataset")``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from decodekit.problem.spec import DEFINITION, INPUT_NAMES, SpecError


def find_files(root: str | Path, name: str = DEFINITION.name) -> tuple[Path | None, Path]:
    """The definition JSON (if present) and the workloads JSONL for ``name`` under ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise SpecError(
            f"argument 'dataset': expected a flashinfer-trace folder, got {str(root)!r}"
        )
    defs = sorted(root.glob(f"definitions/**/{name}.json"))
    wls = sorted(root.glob(f"workloads/**/{name}.jsonl"))
    if not wls:
        raise SpecError(
            f"argument 'dataset': no workloads/**/{name}.jsonl under {str(root)!r}; "
            "expected the flashinfer-trace layout (definitions/, workloads/)"
        )
    return (defs[0] if defs else None), wls[0]


def check_definition(path: Path) -> dict:
    """Load the dataset's definition and make sure it is the one the kit implements."""
    d = json.loads(path.read_text())
    if d.get("name") != DEFINITION.name:
        raise SpecError(
            f"definition {path}: expected name {DEFINITION.name!r}, got {d.get('name')!r}"
        )
    for axis, want in DEFINITION.const_axes.items():
        got = d.get("axes", {}).get(axis, {}).get("value", want)
        if got != want:
            raise SpecError(f"definition {path}: axis {axis!r} expected {want}, got {got}")
    return d


def load(root: str | Path) -> list[tuple[str, int, str]]:
    """The workloads of the dataset at ``root``: ``(uuid, batch_size, trace)`` each, ``trace``
    the JSON :func:`materialize` reads (``workloads.select("trace:...")`` makes them
    :class:`decodekit.problem.workloads.Workload` objects)."""
    root = Path(root).resolve()
    dpath, wpath = find_files(root)
    if dpath is not None:
        check_definition(dpath)
    out = []
    for n, line in enumerate(wpath.read_text().splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        w = row.get("workload", row)
        try:
            B = int(w["axes"]["batch_size"])
            uuid = str(w["uuid"])
            inputs = w.get("inputs", {})
        except (KeyError, TypeError, ValueError) as e:
            raise SpecError(f"{wpath}:{n}: expected uuid, axes.batch_size and inputs ({e})") from e
        unknown = set(inputs) - set(INPUT_NAMES) - {"scale"}
        if unknown:
            raise SpecError(f"{wpath}:{n}: inputs {sorted(unknown)} are not in the definition")
        out.append((uuid, B, json.dumps({"root": str(root), "inputs": inputs})))
    return out


def materialize(workload, tensors: dict, device: str | torch.device = "cpu") -> dict:
    """Replace the random ``tensors`` drawn for ``workload`` by its scalar and safetensors inputs."""
    info = json.loads(workload.trace)
    root = Path(info["root"])
    out = dict(tensors)
    for name, desc in info["inputs"].items():
        kind = desc.get("type")
        if kind == "random":
            continue
        if kind == "scalar":
            out[name] = desc["value"]
        elif kind == "safetensors":
            from safetensors.torch import load_file

            path = Path(desc["path"])
            path = path if path.is_absolute() else root / path
            if not path.exists():
                raise SpecError(
                    f"input {name!r} of workload {workload.uuid}: no file {str(path)!r}"
                )
            out[name] = load_file(str(path))[desc["tensor_key"]].to(device)
        else:
            raise SpecError(
                f"input {name!r} of workload {workload.uuid}: expected type random, scalar or "
                f"safetensors, got {kind!r}"
            )
    return out
