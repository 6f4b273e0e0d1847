"""flashinfer-bench out: the exported Solution and Traces load with flashinfer-bench's own
schema (its pip package, imported without its GPU-only package root)."""

import ast
import importlib.util
import json
import sys
import types

import pytest

from decodekit import views
from decodekit.build.compile import compile_kernel
from decodekit.views import export


@pytest.fixture
def fib(monkeypatch):
    spec = importlib.util.find_spec("flashinfer_bench")
    if spec is None:
        pytest.skip("flashinfer-bench not installed (make env installs it: pip install --no-deps)")
    # its package root imports FlashInfer and TVM-FFI; the data models need only pydantic
    pkg = types.ModuleType("flashinfer_bench")
    pkg.__path__ = list(spec.submodule_search_locations)
    monkeypatch.setitem(sys.modules, "flashinfer_bench", pkg)
    for name in [m for m in sys.modules if m.startswith("flashinfer_bench.")]:
        monkeypatch.delitem(sys.modules, name)
    import flashinfer_bench.data as data

    return data


TABLE = {
    1: {"variant": "ordered", "defines": {"WARPS": 2, "ROWS_PER_WARP": 4}},
    64: {"variant": "persistent", "defines": {}},
}


def test_the_solution_round_trips_through_flashinfer_bench(fib, tmp_path):
    doc = export.solution("best", "sm_90a", table=TABLE)
    path = tmp_path / "s.json"
    export.write_json(path, doc)
    sol = fib.Solution.model_validate(json.loads(path.read_text()))
    assert sol.definition == "gdn_decode_qk4_v8_d128_k_last" and sol.get_entry_symbol() == "run"
    assert sol.spec.destination_passing_style and "sm_90a" in sol.spec.target_hardware
    assert json.loads(sol.model_dump_json(exclude_none=True)) == {
        **doc,
        "spec": {**doc["spec"], "language": "python"},
    }
    names = {s.path for s in sol.sources}
    assert {"main.py", "gdn_decode_ordered.cu", "gdn_decode_persistent.cu", "gdn.cuh"} <= names


def test_the_exported_entry_point_is_python_and_its_builds_compile():
    doc = export.solution("best", "sm_100a", table=TABLE)
    main = next(s["content"] for s in doc["sources"] if s["path"] == "main.py")
    tree = ast.parse(main)  # valid Python
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    args = [a.arg for a in funcs["run"].args.args]
    assert args == ["q", "k", "v", "state", "A_log", "a", "dt_bias", "b", "scale", "output",
                    "new_state"]  # fmt: skip
    consts = {n.targets[0].id: ast.literal_eval(n.value) for n in tree.body
              if isinstance(n, ast.Assign) and n.targets[0].id in ("ARCH", "TABLE")}  # fmt: skip
    assert consts["ARCH"] == "sm_100a" and sorted(consts["TABLE"]) == [1, 64]
    for c in consts["TABLE"].values():  # every build main.py makes, with the same defines
        compile_kernel(c["source"], "sm_100a", c["defines"])
    single = export.solution("subwarp", "sm_90a")
    assert "one build" in single["description"]
    with pytest.raises(ValueError, match="argument 'impl': 'fla' is a baseline"):
        export.solution("fla")


def test_traces_of_a_recorded_run_load_with_flashinfer_bench(fib):
    df = views.load_records()
    rows = export.traces(df, "6960f6c8", "best")
    traces = [fib.Trace.model_validate_json(json.dumps(t)) for t in rows]
    assert len(traces) == 54 and all(t.evaluation.status == "PASSED" for t in traces)
    t = traces[0]
    mine = df[(df["run_id"] == "6960f6c8") & (df["impl"] == "best")
              & (df["uuid"] == t.workload.uuid) & (df["method"] == "cupti-cold")]  # fmt: skip
    assert t.evaluation.performance.latency_ms == pytest.approx(mine["latency_us"].iloc[0] / 1e3)
    assert t.evaluation.performance.speedup_factor > 1 and t.evaluation.environment.hardware
    with pytest.raises(ValueError, match="no recorded run"):
        export.traces(df, "nosuchrun")
