"""The tuning table and the ``best`` dispatcher without a GPU: choice per batch size, file
round trip, one build per distinct choice, defaults when no table exists, and every
candidate of the quick search space compiling for sm_90a and sm_100a without spills."""

import json

import pandas as pd
import pytest
import torch

from decodekit.impls.registry import get
from decodekit.impls.variants import split_shape
from decodekit.measure import tuning

TABLE = {
    1: {"variant": "bulk", "defines": {"WARPS": 1, "ROWS_PER_WARP": 4}},
    8: {"variant": "subwarp", "defines": {"WARPS": 4, "ROWS_PER_WARP": 8}},
    64: {"variant": "streaming", "defines": {"WARPS": 4, "ROWS_PER_WARP": 8}},
}


@pytest.mark.parametrize(
    "B, expected", [(1, 1), (2, 8), (8, 8), (9, 64), (64, 64), (65, 64), (257, 64)]
)
def test_choose_smallest_tuned_size_at_or_above(B, expected):
    assert tuning.choose(TABLE, B) is TABLE[expected]


def test_choose_accepts_json_string_keys_and_rejects_empty():
    as_json = {str(b): c for b, c in TABLE.items()}
    assert tuning.choose(as_json, 3)["variant"] == "subwarp"
    with pytest.raises(ValueError, match="empty"):
        tuning.choose({}, 1)


def test_load_table_round_trip(tmp_path):
    path = tmp_path / "h100-80gb-hbm3.json"
    path.write_text(json.dumps({"gpu": "NVIDIA H100 80GB HBM3", "table": TABLE}))
    assert tuning.load_table(path) == TABLE  # JSON's string keys come back as ints
    assert tuning.load_table(tmp_path / "missing.json") is None


def test_table_path_uses_gpu_slug(tmp_path):
    assert tuning.table_path("NVIDIA H100 80GB HBM3", tmp_path).name == "h100-80gb-hbm3.json"


class FakeLauncher:
    def __init__(self, variant, defines):
        self.variant, self.defines, self.calls = variant, defines, []

    def __call__(self, q, *rest):
        self.calls.append(q.shape[0])


def _call(d, B):
    q = torch.empty(B, 1, 4, 128)
    d(q, None, None, None, None, None, None, None, None, None, None)


def test_dispatcher_builds_each_choice_once_and_routes_by_batch_size():
    made = []

    def make(variant, defines):
        made.append((variant, defines))
        return FakeLauncher(variant, defines)

    d = tuning.Dispatcher(TABLE, make=make)
    for B in (1, 3, 5, 8, 64, 100, 3):
        _call(d, B)
    assert [v for v, _ in made] == ["bulk", "subwarp", "streaming"]
    assert d.resolve(5).calls == [3, 5, 8, 3]
    assert d.resolve(100) is d.resolve(64)


def test_dispatcher_without_table_warns_and_uses_defaults(tmp_path):
    with pytest.warns(UserWarning, match="built-in defaults"):
        d = tuning.dispatcher(tmp_path / "none.json")
    assert d.table == tuning.DEFAULT_TABLE and d.origin == "built-in defaults"


def test_dispatcher_reads_a_table_file(tmp_path):
    path = tmp_path / "gpu.json"
    path.write_text(json.dumps({"table": {str(b): c for b, c in TABLE.items()}}))
    d = tuning.dispatcher(path)
    assert d.table == TABLE and d.origin == str(path)


def test_winners_take_the_fastest_passing_candidate():
    d1, d2 = {"WARPS": 1, "ROWS_PER_WARP": 4}, {"WARPS": 4, "ROWS_PER_WARP": 8}
    df = pd.DataFrame(
        [
            dict(batch_size=1, variant="rowsplit", defines=d1, status="ok", latency_us=5.0),
            dict(batch_size=1, variant="bulk", defines=d2, status="ok", latency_us=4.0),
            dict(
                batch_size=1, variant="subwarp", defines=d2, status="check-failed", latency_us=None
            ),
            dict(batch_size=64, variant="bulk", defines=d2, status="ok", latency_us=30.0),
        ]
    )
    assert tuning.winners(df) == {
        1: {"variant": "bulk", "defines": d2, "latency_us": 4.0},
        64: {"variant": "bulk", "defines": d2, "latency_us": 30.0},
    }


def test_write_table_records_gpu_method_and_environment(tmp_path):
    d = {"WARPS": 4, "ROWS_PER_WARP": 8}
    df = pd.DataFrame(
        [
            dict(
                batch_size=4,
                variant="bulk",
                config="bulk[...]",
                defines=d,
                status="ok",
                latency_us=6.5,
                note=None,
            )
        ]
    )
    path = tuning.write_table(
        df, torch.device("cpu"), method="events-cold", preset="quick", out_dir=tmp_path
    )
    doc = json.loads(path.read_text())
    assert doc["method"] == "events-cold" and doc["environment"]["gpu"] == doc["gpu"]
    assert tuning.load_table(path) == {4: {"variant": "bulk", "defines": d, "latency_us": 6.5}}


def test_write_table_keeps_the_batch_sizes_this_sweep_did_not_time(tmp_path):
    d = {"WARPS": 4, "ROWS_PER_WARP": 8}

    def df(B, variant, us):
        row = dict(batch_size=B, workload=f"w{B}", variant=variant, config=f"{variant}[x]",
                   defines=d, status="ok", latency_us=us, note=None)  # fmt: skip
        return pd.DataFrame([row])

    kw = dict(method="cupti-cold", preset="contest", out_dir=tmp_path)
    first = tuning.write_table(pd.concat([df(1, "bulk", 3.0), df(64, "bulk", 30.0)]),
                               torch.device("cpu"), **kw)  # fmt: skip
    doc = json.loads(first.read_text())
    date = doc["date"] = "2000-01-01T00:00:00+00:00"  # the sweep that timed B=64
    first.write_text(json.dumps(doc))
    path = tuning.write_table(df(1, "rowsplit", 2.0), torch.device("cpu"), **kw)
    doc = json.loads(path.read_text())
    assert list(doc["table"]) == ["1", "64"]
    assert doc["table"]["1"]["variant"] == "rowsplit" and "kept" not in doc["table"]["1"]
    assert doc["table"]["64"]["variant"] == "bulk" and date in doc["table"]["64"]["kept"]
    assert sorted(c["batch_size"] for c in doc["candidates"]) == [1, 64]
    assert doc["workloads"] == ["w1", "w64"]
    assert tuning.choose(tuning.load_table(path), 48)["variant"] == "bulk"
    # a later partial sweep still names the sweep that timed B=64, not the one that kept it
    path = tuning.write_table(df(1, "bulk", 1.5), torch.device("cpu"), **kw)
    kept = json.loads(path.read_text())["table"]["64"]
    assert kept["swept"] == date and date in kept["kept"]


def test_search_space_is_well_formed():
    for name in ("quick", "full"):
        space = tuning.search_space(name)
        assert len({(v, tuple(sorted(d.items()))) for v, d in space}) == len(space)
        for variant, defines in space:
            assert "shape_for" in get(variant).meta
            grid, block, smem = split_shape(defines)(3)
            assert grid[0] % 24 == 0 and block[0] % 32 == 0 and smem == 0
    assert {v for v, _ in tuning.candidates(["bulk"])} == {"bulk"}
    with pytest.raises(ValueError, match="configs"):
        tuning.search_space("huge")


def test_candidates_from_a_json_file(tmp_path):
    f = tmp_path / "space.json"
    f.write_text(
        '[{"variant": "subwarp", "defines": {"WARPS": 4, "LANES_PER_ROW": 16}},'
        ' {"variant": "rowsplit", "defines": {"WARPS": 1}}]'
    )
    assert tuning.candidates(None, str(f)) == [
        ("subwarp", {"WARPS": 4, "LANES_PER_ROW": 16}),
        ("rowsplit", {"WARPS": 1}),
    ]
    assert tuning.candidates(["rowsplit"], f) == [("rowsplit", {"WARPS": 1})]


@pytest.mark.parametrize(
    "text, match",
    [
        ("[{", "cannot read"),
        ("[]", "non-empty JSON list"),
        ('[{"variant": "subwarp", "defines": {"WARPS": "4"}}]', "entry 0"),
        ('[{"defines": {}}]', "entry 0"),
    ],
)
def test_bad_candidate_files_are_named(tmp_path, text, match):
    f = tmp_path / "space.json"
    f.write_text(text)
    with pytest.raises(ValueError, match=match):
        tuning.candidates(None, str(f))


def test_a_missing_candidate_file_is_named(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        tuning.candidates(None, str(tmp_path / "nope.json"))


def test_split_shape_rejects_rows_that_do_not_divide_the_head():
    with pytest.raises(ValueError, match="divide 128"):
        split_shape({"WARPS": 3, "ROWS_PER_WARP": 4})


@pytest.mark.parametrize("arch", ["sm_90a", "sm_100a"])
def test_every_quick_candidate_compiles_without_spills(arch):
    from decodekit.build.compile import compile_kernel

    for variant, defines in tuning.search_space("quick"):
        use = compile_kernel(get(variant).source, arch, defines).usage()
        assert use.spills == 0 and use.stack_bytes == 0, (variant, defines, use)


class FakeTimer:
    """Times from a table keyed on the launcher's variant; no GPU needed."""

    def __init__(self, us):
        self.us = us

    def unavailable(self, method, device):
        return None

    def trial(self, method, target, n_warmup, n_iter):
        from decodekit.measure.timing import Samples

        return Samples([self.us[target.fn.variant]] * n_iter)


def _fake_make(variant, defines):
    from decodekit.problem.reference import gdn_decode

    if variant == "subwarp":
        raise ValueError("does not build")

    def run(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state):
        o, s = gdn_decode(q, k, v, state, A_log, a, dt_bias, b, scale)
        output.copy_(o)
        # 'streaming' forgets the decay: the check must reject it before any timing
        new_state.copy_(s if variant != "streaming" else s + 1)

    run.variant = variant
    return run


def test_tune_checks_times_and_writes_the_winners(tmp_path):
    configs = [
        ("rowsplit", {"WARPS": 4, "ROWS_PER_WARP": 4}),
        ("bulk", {"WARPS": 2, "ROWS_PER_WARP": 8}),
        ("streaming", {"WARPS": 4, "ROWS_PER_WARP": 8}),
        ("subwarp", {"WARPS": 4, "ROWS_PER_WARP": 8}),
    ]
    timer = FakeTimer({"rowsplit": 5.0, "bulk": 4.0, "streaming": 1.0})
    df = tuning.tune(
        None,
        (1, 3),
        configs,
        device="cpu",
        out_dir=tmp_path,
        timer=timer,
        make=_fake_make,
        verbose=False,
    )
    status = dict(zip(df["config"].str.split("[").str[0], df["status"], strict=False))
    assert status == {
        "rowsplit": "ok",
        "bulk": "ok",
        "streaming": "check-failed",
        "subwarp": "compile-failed",
    }
    assert df[df["status"] != "ok"]["latency_us"].isna().all()
    table = tuning.load_table(tmp_path / "cpu.json")
    assert {b: c["variant"] for b, c in table.items()} == {1: "bulk", 3: "bulk"}
    assert table[1]["latency_us"] == 4.0
    # the candidates are records of one run, through the store; the table names the run
    from decodekit import records

    recs = records.load(tmp_path / "records")
    doc = json.loads((tmp_path / "cpu.json").read_text())
    assert len(recs) == len(df) and set(recs["run_id"]) == {doc["records"]}
    assert set(recs["status"]) == {"ok", "check-failed", "compile-failed"}
    assert recs[recs["status"] == "ok"]["latency_us"].notna().all()


def test_dispatcher_repeat_with_same_q_keeps_routing_right():
    d = tuning.Dispatcher(TABLE, make=lambda v, defines: FakeLauncher(v, defines))
    q1, q64 = torch.empty(1, 1, 4, 128), torch.empty(64, 1, 4, 128)
    for q in (q1, q1, q64, q64, q1):
        d(q, None, None, None, None, None, None, None, None, None, None)
    assert d.resolve(1).calls.count(1) == 3 and d.resolve(64).calls.count(64) == 2


def _row(B, wl, variant, defines, us, spread=0.0, status="ok"):
    return dict(
        batch_size=B,
        workload=wl,
        variant=variant,
        config=f"{variant}[{tuning._label(defines)}]",
        defines=defines,
        status=status,
        latency_us=us if status == "ok" else None,
        spread=spread,
    )


def test_winners_rank_by_mean_over_workloads_and_need_every_check_passed():
    d1, d2, d3 = _wr(1, 4), _wr(4, 8), _wr(2, 8)
    df = pd.DataFrame(
        [
            _row(1, "w1", "rowsplit", d1, 2.0),
            _row(1, "w2", "rowsplit", d1, 4.0),  # mean 3.0
            _row(1, "w1", "subwarp", d2, 2.9),
            _row(1, "w2", "subwarp", d2, 2.9),  # mean 2.9: the winner
            _row(1, "w1", "bulk", d3, 1.0),
            _row(1, "w2", "bulk", d3, None, status="check-failed"),  # fails one workload
        ]
    )
    assert tuning.winners(df)[1] == {"variant": "subwarp", "defines": d2, "latency_us": 2.9}


def test_winners_keep_the_incumbent_unless_beaten_by_more_than_margin_and_spread():
    d_old, d_new = _wr(4, 4), _wr(2, 4)
    inc = {
        1: {"variant": "rowsplit", "defines": d_old},
        4: {"variant": "rowsplit", "defines": d_old},
    }
    df = pd.DataFrame(
        [
            _row(1, "w", "rowsplit", d_old, 2.00),
            _row(1, "w", "rowsplit", d_new, 1.99),  # 0.5% faster: inside the 1% margin
            _row(4, "w", "rowsplit", d_old, 3.00, spread=0.01),
            _row(4, "w", "rowsplit", d_new, 2.80, spread=0.01),  # 6.7% faster: replaces it
        ]
    )
    got = tuning.winners(df, inc, margin=0.01)
    assert got[1]["defines"] == d_old and "kept" in got[1] and got[1]["latency_us"] == 2.0
    assert got[4] == {"variant": "rowsplit", "defines": d_new, "latency_us": 2.8}
    # a spread larger than the lead keeps the incumbent too
    noisy = df.assign(spread=0.10)
    assert tuning.winners(noisy, inc, margin=0.01)[4]["defines"] == d_old
    assert tuning.winners(df)[1]["defines"] == d_new  # no incumbent: plain fastest


def test_tune_times_several_workloads_and_remeasures_the_incumbent(tmp_path):
    timer = FakeTimer({"rowsplit": 5.0, "bulk": 4.0})
    inc = {1: {"variant": "rowsplit", "defines": _wr(4, 4)}}
    df = tuning.tune(
        None,
        (1,),
        [("bulk", _wr(2, 8))],
        per_batch=2,
        incumbent=inc,
        device="cpu",
        out_dir=tmp_path,
        timer=timer,
        make=_fake_make,
        verbose=False,
    )
    assert len(set(df["workload"])) == 2 and set(df["variant"]) == {"bulk", "rowsplit"}
    doc = json.loads((tmp_path / "cpu.json").read_text())
    assert doc["table"]["1"]["variant"] == "bulk" and len(doc["workloads"]) == 2
    with pytest.raises(ValueError, match="per_batch"):
        tuning.tune_workloads(1, 0)


def _wr(w, r):
    return {"WARPS": w, "ROWS_PER_WARP": r}


def test_build_uses_the_file_and_variant_defaults():
    run = tuning.build("rowsplit", {}, arch="sm_90a")  # was KeyError: 'WARPS'
    # rowsplit's registry entry: 4 warps x 4 rows, so 8 blocks share a head
    assert run.launch_shape(1) == ((8 * 8,), (128,), 0)
    assert run.build.usage().registers > 0


def test_build_rejects_a_define_the_file_does_not_declare():
    with pytest.raises(ValueError, match="DELTA_FMA not declared in gdn_decode_ordered.cu"):
        tuning.build("ordered", {"WARPS": 2, "ROWS_PER_WARP": 4, "DELTA_FMA": 1}, arch="sm_90a")


H100 = {"name": "NVIDIA H100 80GB HBM3", "capability": "9.0", "sm_count": 132,
        "l2_bytes": 50 << 20}  # fmt: skip


def _table_file(directory, gpu, capability, table=TABLE, sm_count=132):
    env = {"compute_capability": capability, "sm_count": sm_count, "l2_bytes": 50 << 20}
    doc = {"gpu": gpu, "environment": env, "table": {str(b): c for b, c in table.items()}}
    path = tuning.table_path(gpu, directory)
    path.write_text(json.dumps(doc))
    return path


def test_an_untuned_gpu_takes_the_nearest_table_of_its_architecture_and_says_so(tmp_path):
    _table_file(tmp_path, "NVIDIA H100 80GB HBM3", "9.0")
    _table_file(tmp_path, "NVIDIA H100 PCIe", "9.0", {1: {"variant": "rowsplit"}}, sm_count=114)
    _table_file(tmp_path, "NVIDIA B200", "10.0", {1: {"variant": "bulk"}})
    h200 = {"name": "NVIDIA H200", "capability": "9.0", "sm_count": 132, "l2_bytes": 60 << 20}
    with pytest.warns(UserWarning, match="untuned on NVIDIA H200: 'best' uses the table of "
                      "NVIDIA H100 80GB HBM3.*decodekit tune --quick"):  # fmt: skip
        d = tuning.dispatcher(gpu=h200, directory=tmp_path)
    assert d.table == TABLE
    assert d.tuning == {"tuning_table": "h100-80gb-hbm3.json",
                        "tuned_on": "NVIDIA H100 80GB HBM3", "tuned": False}  # fmt: skip


def test_a_tuned_gpu_uses_its_own_table_quietly(tmp_path, recwarn):
    _table_file(tmp_path, "NVIDIA H100 80GB HBM3", "9.0")
    d = tuning.dispatcher(gpu=H100, directory=tmp_path)
    assert d.tuning["tuned"] is True and d.table == TABLE and not recwarn.list


def test_a_gpu_of_an_unrecorded_architecture_gets_defaults_and_a_warning(tmp_path):
    _table_file(tmp_path, "NVIDIA H100 80GB HBM3", "9.0")
    b200 = {"name": "NVIDIA B200", "capability": "10.0", "sm_count": 148, "l2_bytes": 1}
    with pytest.warns(UserWarning, match="untuned on NVIDIA B200: 'best' uses built-in"):
        d = tuning.dispatcher(gpu=b200, directory=tmp_path)
    assert d.table == tuning.DEFAULT_TABLE and d.tuning["tuned"] is False


def test_quick_space_joins_the_seeds_and_the_recorded_winners_once(tmp_path):
    extra = {1: {"variant": "rowsplit", "defines": {"WARPS": 8, "ROWS_PER_WARP": 8}}}
    _table_file(tmp_path, "NVIDIA H100 80GB HBM3", "9.0", extra)
    _table_file(tmp_path, "NVIDIA B200", "10.0", {1: {"variant": "bulk", "defines": {}}})
    space = tuning.quick_space("9.0", tmp_path)
    assert ("rowsplit", {"WARPS": 8, "ROWS_PER_WARP": 8}) in space
    assert ("bulk", {}) not in space
    assert len(space) == len(tuning.QUICK_SEEDS) + 1
    for variant, defines in tuning.quick_space("9.0"):  # every seed builds (no stray knobs)
        tuning.build(variant, defines, arch="sm_90a")


def test_table_geomean_reads_a_tables_choices_from_a_sweep():
    a, b = {"WARPS": 2, "ROWS_PER_WARP": 4}, {"WARPS": 4, "ROWS_PER_WARP": 8}
    df = pd.DataFrame([
        dict(batch_size=1, variant="ordered", defines=a, status="ok", latency_us=2.0),
        dict(batch_size=4, variant="ordered", defines=a, status="ok", latency_us=8.0),
        dict(batch_size=4, variant="ordered", defines=b, status="ok", latency_us=4.0),
    ])  # fmt: skip
    spelled_out = {**a, "FENCE": 0, "STORE_HINT": 0}  # the same build, other spelling
    table = {
        1: {"variant": "ordered", "defines": a},
        4: {"variant": "ordered", "defines": spelled_out},
    }
    assert tuning.table_geomean(df, table) == pytest.approx(4.0)
    assert tuning.table_geomean(df, {1: {"variant": "ordered", "defines": b}}) is None


def test_tune_without_a_gpu_is_one_clear_error(monkeypatch, capsys):
    from decodekit.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["tune", "--quick"]) == 2
    err = capsys.readouterr().err
    assert "tune needs a CUDA GPU" in err and "Traceback" not in err


def test_recorded_views_and_the_bench_headline_say_untuned():
    from decodekit import records, views
    from decodekit.measure import sweep

    row = dict(impl="best", uuid="u", batch_size=1, method="cupti-cold", status="ok",
               latency_us=2.0, gpu="NVIDIA H200", timestamp="2026-12-01T00:00:00+00:00",
               run_id="r", tuned=False, tuned_on="NVIDIA H100 80GB HBM3",
               tuning_table="h100-80gb-hbm3.json")  # fmt: skip
    df = records.to_frame([row])
    note = sweep.tuning_note(df)
    assert note.startswith("untuned on NVIDIA H200: best ran the table of NVIDIA H100 80GB HBM3")
    assert "decodekit tune --quick" in note
    assert "untuned on NVIDIA H200" in views.banner(df, live=False)
    assert sweep.tuning_note(records.to_frame([dict(row, tuned=True)])) is None


def test_best_ncu_filter_matches_every_variant_the_sweep_can_pick():
    """best's Nsight Compute kernel filter derives from the registered variants: a new
    tunable variant is profiled without editing a regex."""
    import re

    pattern = re.compile(get("best").meta["ncu_kernel"])
    for variant, _ in tuning.search_space("full"):
        assert pattern.match(get(variant).meta["entry"]), variant
    assert not pattern.match("gdn_decode_baseline") and not pattern.match("row_copy")
