"""A flashinfer-trace dataset folder drives the same checks as the kit's manifest."""

import json

import pytest
import torch
from safetensors.torch import save_file

from decodekit.measure.check import check
from decodekit.problem.reference import gdn_decode
from decodekit.problem.spec import SpecError
from decodekit.problem.workloads import make_inputs, select

NAME = "gdn_decode_qk4_v8_d128_k_last"


def torch_fp32(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state):
    o, s = gdn_decode(q, k, v, state, A_log, a, dt_bias, b, scale)
    output.copy_(o)
    new_state.copy_(s)


@pytest.fixture
def dataset(tmp_path):
    (tmp_path / "definitions/gdn").mkdir(parents=True)
    (tmp_path / "workloads/gdn").mkdir(parents=True)
    (tmp_path / "blob").mkdir()
    axes = {"num_q_heads": {"type": "const", "value": 4}, "batch_size": {"type": "var"}}
    (tmp_path / f"definitions/gdn/{NAME}.json").write_text(json.dumps({"name": NAME, "axes": axes}))
    captured = torch.randn(2, 8, 128, 128, generator=torch.Generator().manual_seed(7))
    save_file({"state": captured}, str(tmp_path / "blob/w1.safetensors"))
    rows = [
        {
            "definition": NAME,
            "workload": {
                "uuid": "w1",
                "axes": {"batch_size": 2},
                "inputs": {
                    "q": {"type": "random"},
                    "state": {
                        "type": "safetensors",
                        "path": "blob/w1.safetensors",
                        "tensor_key": "state",
                    },
                    "scale": {"type": "scalar", "value": 0.25},
                },
            },
            "solution": None,
            "evaluation": None,
        },
        {"uuid": "w2", "axes": {"batch_size": 3}, "inputs": {"q": {"type": "random"}}},
    ]
    (tmp_path / f"workloads/gdn/{NAME}.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    return tmp_path, captured


def test_trace_workloads_load_and_materialize(dataset):
    root, captured = dataset
    ws = select(f"trace:{root}")
    assert [(w.uuid, w.batch_size) for w in ws] == [("w1", 2), ("w2", 3)]
    x = make_inputs(ws[0])
    assert torch.equal(x["state"], captured) and x["scale"] == 0.25
    assert x["q"].shape == (2, 1, 4, 128)
    assert check(torch_fp32, ws[0]).passed and check(torch_fp32, ws[1]).passed


def test_wrong_definition_rejected(dataset):
    root, _ = dataset
    p = root / f"definitions/gdn/{NAME}.json"
    d = json.loads(p.read_text())
    d["axes"]["num_q_heads"]["value"] = 16
    p.write_text(json.dumps(d))
    with pytest.raises(SpecError, match="num_q_heads"):
        select(f"trace:{root}")


def test_missing_folder_and_bad_type(dataset, tmp_path):
    with pytest.raises(SpecError, match="'dataset'"):
        select(f"trace:{tmp_path / 'nope'}")
    root, _ = dataset
    p = root / f"workloads/gdn/{NAME}.jsonl"
    p.write_text(
        json.dumps({"uuid": "w3", "axes": {"batch_size": 1}, "inputs": {"q": {"type": "npz"}}})
    )
    with pytest.raises(SpecError, match="random, scalar or safetensors"):
        make_inputs(select(f"trace:{root}")[0])
