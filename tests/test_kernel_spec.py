"""Kernel specs (decodekit.impls.kernel_spec, declared in decodekit.impls.variants): the search space,
best's entries and its Nsight Compute filter derive from them; a define the kernel file does
not declare is an error wherever it is named; a skip rule drops candidates; adding a kernel
is one declaration. No GPU needed."""

import json
import re

import pytest

from decodekit.build.compile import compile_kernel, declared_defines
from decodekit.impls import kernel_spec
from decodekit.impls.kernel_spec import Axis, KernelSpec, Skip, Sweep, fixed, only
from decodekit.impls.registry import get, names
from decodekit.impls.tuning_space import QUICK_SEEDS
from decodekit.impls.variants import HINTS, split_shape
from decodekit.measure import tuning

ROW_COPY = dict(source="row_copy.cu", entry="row_copy", launch_shape=split_shape,
                description="a throwaway spec of an existing file")  # fmt: skip
WR = ("WARPS", "ROWS_PER_WARP")


@pytest.fixture
def throwaway():
    """Declares specs through ``declare(spec)`` and withdraws them afterwards."""
    get("best")  # the registry loaded: best is there to follow the declarations
    made = []

    def declare(spec):
        made.append(spec.name)
        return kernel_spec.declare(spec)

    yield declare
    for name in made:
        if name in kernel_spec.spec_names():
            kernel_spec.withdraw(name)


def test_the_spaces_keep_their_size_and_builds():
    quick, full = tuning.search_space("quick"), tuning.search_space("full")
    assert (len(quick), len(full)) == (49, 136)
    # full names six builds twice: rowsplit's shapes and streaming's at LOAD/STORE_HINT 0
    assert len({tuning.canonical(v, d) for v, d in quick}) == 49
    assert len({tuning.canonical(v, d) for v, d in full}) == 130
    key = lambda space: {(v, tuple(sorted(d.items()))) for v, d in space}  # noqa: E731
    assert key(quick) <= key(full)


def test_every_candidate_is_a_declared_build_of_its_spec():
    for variant, defines in tuning.search_space("full"):
        spec = kernel_spec.spec_of(variant)
        assert get(variant).meta["spec"] is spec
        assert set(defines) <= set(declared_defines(spec.source)), (variant, defines)


def test_best_runs_and_profiles_the_entries_of_the_tunable_specs():
    from decodekit.impls.best import ncu_kernel_regex, tunable_entries

    entries = [s.entry for s in kernel_spec.specs() if s.tunable]
    assert tunable_entries() == entries and "gdn_decode_baseline" not in entries
    pattern = re.compile(get("best").meta["ncu_kernel"])
    assert get("best").meta["ncu_kernel"] == ncu_kernel_regex()
    assert all(pattern.match(e) for e in entries)
    assert not pattern.match("gdn_decode_baseline") and not pattern.match("gdn_decode_rowsplit2")
    for variant, _ in tuning.search_space("full"):
        assert pattern.match(get(variant).meta["entry"]), variant


def test_a_variant_is_its_spec_and_its_defaults():
    rowsplit, streaming = get("rowsplit"), get("streaming")
    assert rowsplit.meta["spec"] is streaming.meta["spec"]
    assert streaming.meta["defines"] == {"WARPS": 4, "ROWS_PER_WARP": 4, "LOAD_HINT": 1,
                                         "STORE_HINT": 0}  # fmt: skip
    assert streaming.meta["launch_shape"](1) == ((64,), (128,), 0)
    assert "shape_for" not in get("baseline").meta  # no sweeps: not tunable
    assert get("baseline").meta["launch_shape"](2) == ((16,), (128,), 0)


def test_adding_a_spec_is_one_declaration(throwaway):
    sweep = Sweep((Axis("shape", ((4, 4), (4, 8)), WR), fixed(LOAD_HINT=3)))
    throwaway(KernelSpec("rowcopy-t", **ROW_COPY, defaults={"LOAD_HINT": 1}, sweeps=(sweep,)))
    got = [d for v, d in tuning.search_space("full") if v == "rowcopy-t"]
    assert got == [{"WARPS": 4, "ROWS_PER_WARP": 4, "LOAD_HINT": 3},
                   {"WARPS": 4, "ROWS_PER_WARP": 8, "LOAD_HINT": 3}]  # fmt: skip
    assert len(tuning.search_space("quick")) == 49 + 2
    assert "rowcopy-t" in names() and re.match(get("best").meta["ncu_kernel"], "row_copy")
    run = tuning.build("rowcopy-t", got[1], arch="sm_90a")  # compile only
    assert run.launch_shape(1) == ((32,), (128,), 0) and run.build.usage().registers > 0
    kernel_spec.withdraw("rowcopy-t")
    assert "rowcopy-t" not in names() and len(tuning.search_space("full")) == 136
    assert not re.match(get("best").meta["ncu_kernel"], "row_copy")


def test_a_skip_rule_drops_candidates_and_says_why(throwaway):
    odd = Skip("no odd warps", lambda d: d["WARPS"] % 2 == 1)
    sweep = Sweep(
        (Axis("WARPS", (1, 2, 3, 4)), Axis("LOAD_HINT", (None, 3))),
        quick=(only(("LOAD_HINT",), (3,), "quick: LOAD_HINT 3"),),
    )
    spec = KernelSpec("rowcopy-t", **ROW_COPY, defaults={"ROWS_PER_WARP": 8}, sweeps=(sweep,),
                      skips=(odd, Skip("must divide", lambda d: 128 % (d["WARPS"] * 8))))  # fmt: skip
    throwaway(spec)
    skipped = []
    full = [d for v, d in kernel_spec.space("full", skipped) if v == "rowcopy-t"]
    assert full == [{"WARPS": 2}, {"WARPS": 2, "LOAD_HINT": 3}, {"WARPS": 4},
                    {"WARPS": 4, "LOAD_HINT": 3}]  # fmt: skip
    mine = [(d, why) for v, d, why in skipped if v == "rowcopy-t"]
    assert ({"WARPS": 3}, "no odd warps") in mine and len(mine) == 4
    quick = [d for v, d in tuning.search_space("quick") if v == "rowcopy-t"]
    assert quick == [{"WARPS": 2, "LOAD_HINT": 3}, {"WARPS": 4, "LOAD_HINT": 3}]


def test_the_kits_skip_rules_mirror_the_static_asserts():
    skipped = []
    kernel_spec.space("full", skipped)
    # the one product that reaches a build a file rejects: subwarp's 4 lanes x (8, 4) shape
    assert {(v, d["LANES_PER_ROW"], d["ROWS_PER_WARP"], why) for v, d, why in skipped} == {
        ("subwarp", 4, 4, "ROWS_PER_WARP must be a multiple of 32 / LANES_PER_ROW")
    }
    assert len(skipped) == len(HINTS)
    (whole,) = [r for r in kernel_spec.spec_of("subwarp").skips if "32 / LANES" in r.reason]
    assert whole.when({"ROWS_PER_WARP": 4, "LANES_PER_ROW": 4})  # 8 rows per load
    assert not whole.when({"ROWS_PER_WARP": 8, "LANES_PER_ROW": 4})


@pytest.mark.parametrize(
    "make, argument",
    [
        (lambda: KernelSpec("rowcopy-t", **ROW_COPY, defaults={"DELTA_FMA": 1}), "defaults"),
        (
            lambda: KernelSpec(
                "rowcopy-t", **ROW_COPY, sweeps=(Sweep((Axis("DELTA_FMA", (0, 1)),)),)
            ),
            "sweeps",
        ),  # fmt: skip
    ],
)
def test_a_spec_naming_an_undeclared_define_is_an_error(throwaway, make, argument):
    with pytest.raises(ValueError, match=rf"argument '{argument}': .*row_copy.cu declares no "
                       r"DELTA_FMA \(it declares WARPS, ROWS_PER_WARP, LOAD_HINT"):  # fmt: skip
        throwaway(make())
    assert "rowcopy-t" not in names()


def test_a_variant_naming_an_undeclared_define_is_an_error():
    spec = kernel_spec.spec_of("subwarp")
    with pytest.raises(ValueError, match="argument 'defines': variant 'x': gdn_decode_subwarp.cu "
                       "declares no DELTA_FMA"):  # fmt: skip
        kernel_spec.variant("x", spec, {"DELTA_FMA": 1}, parent=None, description="")
    assert "x" not in names()


def test_a_spec_needs_its_entry_and_its_own_file(throwaway):
    with pytest.raises(ValueError, match="argument 'entry': row_copy.cu has no .* nope"):
        throwaway(KernelSpec("rowcopy-t", **{**ROW_COPY, "entry": "nope"}))
    with pytest.raises(ValueError, match="gdn_decode_rowsplit.cu has a spec already"):
        throwaway(KernelSpec("rowsplit2", **{**ROW_COPY, "source": "gdn_decode_rowsplit.cu",
                                             "entry": "gdn_decode_rowsplit"}))  # fmt: skip
    with pytest.raises(ValueError, match="axis 'shape' sets WARPS, ROWS_PER_WARP"):
        Axis("shape", ((4, 4), (4,)), WR)


def test_a_compile_with_an_undeclared_define_fails_naming_it():
    with pytest.raises(ValueError) as e:
        compile_kernel("gdn_decode_subwarp.cu", "sm_90a", {"WARPS": 2, "DELTA_FMA": 1})
    msg = str(e.value)
    assert msg.startswith("argument 'defines': gdn_decode_subwarp.cu declares no DELTA_FMA "
                          "(it declares WARPS, ROWS_PER_WARP, LANES_PER_ROW")  # fmt: skip
    assert "FAST_GATES" in msg and "\n" not in msg  # the header's knobs too; one line


def test_declared_defines_follow_local_includes_whatever_their_names(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "k.cu").write_text('#include "sub/a.cuh"\n#ifndef ONE\n#define ONE 1\n#endif\n'
                                   'extern "C" __global__ void k() {}\n')  # fmt: skip
    (tmp_path / "sub" / "a.cuh").write_text('#pragma once\n#include "b.cuh"\n#include <x.h>\n'
                                            "#ifndef TWO\n#define TWO 2\n#endif\n")  # fmt: skip
    (tmp_path / "sub" / "b.cuh").write_text(
        "#pragma once\n#ifndef THREE\n#define THREE -3\n#endif\n"
    )
    assert declared_defines("k.cu", tmp_path) == {"ONE": 1, "TWO": 2, "THREE": -3}
    with pytest.raises(ValueError, match=r"k.cu declares no FOUR \(it declares ONE, TWO, THREE\)"):
        compile_kernel("k.cu", "sm_90a", {"THREE": 1, "FOUR": 4}, kernels_dir=tmp_path)


def _write(path, doc):
    path.write_text(json.dumps(doc))
    return path


def test_a_search_space_file_with_a_removed_define_fails_naming_file_entry_and_define(tmp_path):
    f = _write(tmp_path / "space.json", [
        {"variant": "ordered", "defines": {"WARPS": 2}},
        {"variant": "ordered", "defines": {"WARPS": 2, "GUARD": 2}},
    ])  # fmt: skip
    with pytest.raises(ValueError, match=r"argument 'configs': entry 1 of .*space.json: "
                       r"gdn_decode_ordered.cu declares no GUARD \(it declares WARPS"):  # fmt: skip
        tuning.load_configs(f)
    with pytest.raises(ValueError, match="entry 0 of .*: no kit variant 'nope'"):
        tuning.load_configs(_write(tmp_path / "v.json", [{"variant": "nope", "defines": {}}]))
    with pytest.raises(ValueError, match="candidate 0: gdn_decode_ordered.cu declares no GUARD"):
        tuning.candidates(None, [("ordered", {"GUARD": 2})])


def test_a_recorded_table_with_a_removed_define_loads_but_quick_space_leaves_it_out(tmp_path):
    stale = {"variant": "ordered", "defines": {"WARPS": 2, "DELTA_FMA": 1}}
    env = {"compute_capability": "9.0"}
    p = _write(tmp_path / "h100.json", {"gpu": "H100", "environment": env,
                                        "table": {"1": stale}})  # fmt: skip
    assert tuning.load_table(p) == {1: stale}  # views read it as recorded
    with pytest.warns(UserWarning, match=r"h100.json B=1: gdn_decode_ordered.cu declares no "
                      "DELTA_FMA"):  # fmt: skip
        space = tuning.quick_space("9.0", tmp_path)
    assert len(space) == len(QUICK_SEEDS)
    with pytest.raises(ValueError, match="DELTA_FMA"):  # building from it fails naming it
        tuning.dispatcher(p).resolve(1)
