"""The family kernel's tuning without a GPU: its space builds for sm_90a with no spills for
every serving member, tables round-trip, ``best`` picks by batch size (nearest tuned size at
or below, else above) and says when it runs the kernel's defaults, ``tune_member`` with a
stand-in timer checks, times, records and keeps the kernel's defaults unless beaten by more
than the margin, and ``decodekit tune --definition`` refuses bad arguments in one line."""

import json
from dataclasses import replace

import pytest
import torch

from decodekit import records
from decodekit.build.compile import CompileError, compile_kernel
from decodekit.build.family_launch import ENTRY, SOURCE, member_defines
from decodekit.cli import main
from decodekit.impls import family_tuning as ft
from decodekit.measure import family_check
from decodekit.measure.family_tune import tune_member
from decodekit.measure.trial import Samples
from decodekit.problem import family, family_math
from decodekit.problem.family import SERVING

POOL = SERVING[0]  # pool qk4/v8 l2norm fp32
CPU = {"name": "cpu", "capability": None}


# ---- the space ---------------------------------------------------------------------------


def test_the_space_is_small_and_every_candidate_a_legal_shape():
    space = ft.search_space("full")
    assert len(space) == 162 and len(ft.unique(space)) == 162
    chained = [d for d in space if d["CHAIN_SUMS"]]  # the plain row layout, FMA-chained too
    assert len(chained) == 60 and all(dict(d, CHAIN_SUMS=0) in space for d in chained)
    assert ft.kernel_defaults() in space
    assert all(d in space for d in ft.search_space("quick"))
    for d in space:
        w, r, n = d["WARPS"], d["ROWS_PER_WARP"], d["LANES_PER_ROW"]
        assert 128 % (w * r) == 0 and r % (32 // n) == 0, d  # the kernel's static_asserts
        assert (d["LOAD_HINT"], d["STORE_HINT"]) in ft.HINTS + ft.WIDE_HINTS
        # the reduce-scatter where a lane holds several rows, within L lanes
        if d["REDUCE"] and not d["PREFETCH"]:
            steps = r * n // 32
            hints = ft.REDUCE_HINTS + (ft.WIDE_HINTS if (w, r, n) in ft.WIDE_SHAPES else ())
            assert 1 < steps <= n and (d["LOAD_HINT"], d["STORE_HINT"]) in hints, d
    assert sum(d["REDUCE"] for d in space) == 66  # 46, and 20 of them again FMA-chained
    piped = [d for d in space if d["PREFETCH"]]
    strided = [d for d in piped if not d["CONSECUTIVE"] and d["PREFETCH"] == 1]
    assert len(strided) == 12 and {d["ITEMS"] for d in strided} == set(ft.PIPELINE_ITEMS)
    rows = [d for d in space if d["ROW_STREAM"]]  # an item's rows one at a time from its tile
    assert len(rows) == 4 and all(d["PREFETCH"] == 2 and d["ITEMS"] == 1 and not d["REDUCE"]
                                  for d in rows)  # fmt: skip
    tiles = [d for d in space if d["BLOCK_TILES"]]  # block-wide tiles, one item a block
    assert len(tiles) == 10 and all(d["LANES_PER_ROW"] == 32 and d["ITEMS"] == 1 and
                                    not (d["PREFETCH"] or d["REDUCE"]) for d in tiles)  # fmt: skip
    full = [d for d in space if d["MIN_BLOCKS"] and not d["BLOCK_TILES"]]  # every warp slot
    assert len(full) == 6 and all(d["MIN_BLOCKS"] * d["WARPS"] * 32 == 2048 for d in full)
    assert sum(d["PREFETCH"] == 2 and not d["HEAD_TOKENS"] and not d["ROW_STREAM"]
               for d in space) == 5  # per-lane copies  # fmt: skip
    head = [d for d in space if d["HEAD_TOKENS"]]  # a streamed head's token once: T = 1
    assert len(head) == 6 and all(d["CONSECUTIVE"] and d["PREFETCH"] for d in head)
    assert all(128 // (d["WARPS"] * d["ROWS_PER_WARP"]) % d["ITEMS"] == 0 for d in head)
    for d in (d for d in piped if d["CONSECUTIVE"]):  # one block streams a whole head
        assert d["ITEMS"] * d["WARPS"] * d["ROWS_PER_WARP"] == 128, d
    assert all(d["ITEMS"] == 1 for d in space if not d["PREFETCH"])
    for d in piped:  # two tiles a warp (one with one item) of fp32 state in 48 KiB
        tiles = 2 if d["ITEMS"] > 1 else 1
        assert d["WARPS"] * tiles * d["ROWS_PER_WARP"] * 128 * 4 <= 48 * 1024, d
    with pytest.raises(ValueError, match="argument 'space': expected 'full', 'quick'"):
        ft.search_space("huge")
    # bf16 state at T = 1: twice the rows a lane as well, with the reduce-scatter
    bf16 = ft.search_space("full", family.Member(4, 8, layout="pool", state_dtype="bfloat16"))
    rows16 = [d for d in bf16 if d not in space]
    assert len(bf16) == 186 and len(rows16) == 24 and all(d["REDUCE"] for d in rows16)
    assert {d["ROWS_PER_WARP"] * d["LANES_PER_ROW"] // 32 for d in rows16} == {8, 16}  # rows a lane
    t4 = ft.search_space("full", family.Member(4, 8, seq_len=4, layout="pool"))
    multi = [d for d in t4 if d["GATES_ONCE"]]
    assert len(t4) == 201 and len(multi) == 68 and all(d["REDUCE"] for d in multi)
    lean = [d for d in t4 if d["UNROLL_TOKENS"]]
    assert len(lean) == 12 and all(d["CHAIN_SUMS"] and d["LAZY_DECAY"] for d in lean)
    assert {d["MIN_BLOCKS"] * d["WARPS"] for d in lean} == {0, 32}  # 64 registers or ptxas's
    shared = [d for d in lean if d["TOKENS_ONCE"]]
    assert len(shared) == 6 and not any(d["GATES_ONCE"] for d in shared)
    solve = [d for d in t4 if d["SOLVE"]]  # the kernel's static_assert: REDUCE 1, no loop knobs
    mma = [d for d in solve if d["MMA"]]  # on the fragment layout: 4 lanes a row, 16 rows a warp
    assert len(solve) == 51 and all(d["REDUCE"] for d in solve)
    gram = [d for d in solve if d["GRAM_MMA"]]  # the Gram terms on the tensor cores: SOLVE's rows
    assert len(gram) == 12 and not any(d["MMA"] or d["BLOCK_TILES"] for d in gram)
    tiled = [d for d in solve if d["BLOCK_TILES"]]  # block-wide tiles: one item, no PREFETCH
    assert len(tiled) == 17 and all(d["ITEMS"] == 1 and not d["PREFETCH"] and d["MMA"] != 1
                                   for d in tiled)  # fmt: skip
    assert all(d["WARPS"] * d["ROWS_PER_WARP"] % d["BLOCK_TILES"] == 0 for d in tiled)
    assert all(d["CHAIN_SUMS"] for d in solve if not d["MMA"])
    assert len(mma) == 9 and all(d["LANES_PER_ROW"] == 4 for d in mma)
    assert all(d["ROWS_PER_WARP"] == (32 if d["BLOCK_TILES"] else 16) for d in mma)
    assert all(
        d["MIN_BLOCKS"] * d["WARPS"] == 16 for d in mma if d["MMA"] == 2 and not d["BLOCK_TILES"]
    )
    assert not any(d["GATES_ONCE"] or d["LAZY_DECAY"] or d["UNROLL_TOKENS"] or d["TOKENS_ONCE"]
                   for d in solve)  # fmt: skip
    # T = 1: no such knobs
    assert not any(d["GATES_ONCE"] or d["LAZY_DECAY"] or d["UNROLL_TOKENS"] or d["TOKENS_ONCE"]
                   or d["SOLVE"] or d["MMA"] for d in space)  # fmt: skip
    assert not any(d["HEAD_TOKENS"] or d["ROW_STREAM"] for d in t4)  # T > 1: neither


def _usage(member, defines):
    return compile_kernel(SOURCE, "sm_90a", {**member_defines(member), **defines}).usage(ENTRY)


@pytest.mark.parametrize("member", SERVING, ids=lambda m: m.name)
def test_every_shape_builds_without_spills(member):
    for w, r, n in ft.SHAPES:
        use = _usage(member, {"WARPS": w, "ROWS_PER_WARP": r, "LANES_PER_ROW": n})
        assert use.spills == 0 and use.stack_bytes == 0 and use.registers <= 128, (w, r, n, use)


def test_gram_mma_builds_16_rows_a_warp_at_128_registers_without_spills():
    # GRAM_FULL_SHAPES' reason to be: SOLVE alone spills at 128 registers with 16 rows a warp
    t4 = family.Member(4, 8, seq_len=4, layout="pool")
    for w, r, n, mb in ft.GRAM_FULL_SHAPES:
        d = {"WARPS": w, "ROWS_PER_WARP": r, "LANES_PER_ROW": n, "MIN_BLOCKS": mb}
        use = _usage(t4, ft.full({**d, **ft.GRAM_TOKENS}))
        assert use.spills == 0 and use.stack_bytes == 0 and use.registers <= 128, (d, use)
        assert _usage(t4, ft.full({**d, **ft.SOLVE_TOKENS})).spills > 0  # without it


def test_reg_prefetch_builds_without_spills_and_refuses_what_it_cannot_do():
    # the next item's rows in registers: twice the state a lane, 8 rows a warp in 168
    t4 = family.Member(4, 8, seq_len=4, layout="pool")
    d = {"WARPS": 2, "ROWS_PER_WARP": 8, "LANES_PER_ROW": 16, "REDUCE": 1, "SOLVE": 1,
         "CHAIN_SUMS": 1, "ITEMS": 2, "REG_PREFETCH": 1}  # fmt: skip
    use = _usage(t4, ft.full(d))
    assert use.spills == 0 and use.stack_bytes == 0 and use.registers <= 168, use
    for bad, member in (({"PREFETCH": 2}, t4), ({}, replace(t4, state_dtype="bfloat16")),
                        ({"ITEMS": 1, "BLOCK_TILES": 8, "SOLVE": 1, "MMA": 0}, t4)):  # fmt: skip
        with pytest.raises(CompileError, match="REG_PREFETCH"):
            _usage(member, ft.full({**d, **bad}))


def test_mma2_builds_at_128_registers_without_spills():
    # MMA 2's reason to be: the 16-row warp tile in 128 registers (MMA 1 takes 168)
    t4 = family.Member(4, 8, seq_len=4, layout="pool")
    for w, r, n, mb in ft.MMA2_SHAPES:
        d = {"WARPS": w, "ROWS_PER_WARP": r, "LANES_PER_ROW": n, "MIN_BLOCKS": mb, **ft.MMA2_TOKENS}
        use = _usage(t4, ft.full(d))
        assert use.spills == 0 and use.stack_bytes == 0 and use.registers <= 128, (d, use)


@pytest.mark.slow
@pytest.mark.parametrize("member", SERVING, ids=lambda m: m.name)
def test_every_candidate_builds_without_spills(member):
    for d in ft.search_space("full", member):  # T > 1: GATES_ONCE / LAZY_DECAY too
        use = _usage(member, d)
        assert use.spills == 0 and use.stack_bytes == 0, (d, use)


# ---- tables and the dispatcher -----------------------------------------------------------

TABLE = {4: {"defines": {"WARPS": 2, "ROWS_PER_WARP": 4}}, 64: {"defines": {"WARPS": 8}}}


class Made:
    """A stand-in launcher: what it was built with, and the batch sizes it ran."""

    def __init__(self, member, defines):
        self.defines, self.calls = defines, []

    def __call__(self, q, *rest):
        self.calls.append(q.shape[0])
        self.rest = rest


def _call(run, B):
    run(torch.empty(B, 1, 4, 128), *[None] * 10)


def test_best_picks_the_nearest_tuned_size_at_or_below_else_above():
    made = []
    run = ft.best(POOL, TABLE, make=lambda m, d: made.append(Made(m, d)) or made[-1])
    for B in (1, 4, 8, 63, 64, 300, 1):
        _call(run, B)
    assert [m.defines["WARPS"] for m in made] == [2, 8]  # one build per distinct choice
    assert made[0].calls == [1, 4, 8, 63, 1] and made[1].calls == [64, 300]
    assert run.defines_for(1) == {**ft.kernel_defaults(), "WARPS": 2, "ROWS_PER_WARP": 4}
    assert run.source == SOURCE and run.note is None
    buffer = torch.empty(1)
    run(torch.empty(2, 1, 4, 128), *[None] * 10, state_indices=None, intermediate_states=buffer)
    assert made[0].rest[-1] is buffer  # a verify call's buffer goes through to the launcher


def test_best_builds_the_family_kernel_per_tuned_size():
    from decodekit.build.family_launch import FamilyLauncher

    run = ft.best(POOL, TABLE, make=lambda m, d: FamilyLauncher(m, d, arch="sm_90a"))
    small, large = run.resolve(1), run.resolve(100)  # compile-only: no launch
    assert small.launch_shape(1) == ((8 * 16,), (64,)) and large.launch_shape(1) == (
        (8 * 2,),
        (256,),
    )
    assert small.defines["LANES_PER_ROW"] == 16 and small.build.usage(ENTRY).spills == 0


def test_best_keeps_the_family_calling_convention():
    # the torch reference stands in for each build: the checker calls best with keywords
    run = ft.best(POOL, TABLE, make=lambda m, d: family_math.reference(m))
    for case in family.cases(POOL, (1, 8)):
        res = family_check.check(run, case)
        assert res.passed, res.summary()


def test_an_untuned_gpu_runs_the_kernel_defaults_and_says_so(tmp_path):
    gpu = {"name": "NVIDIA H200", "capability": "9.0"}
    with pytest.warns(UserWarning, match="untuned on NVIDIA H200: best for gdn_decode_pool"):
        run = ft.best(POOL, gpu=gpu, directory=tmp_path, make=Made)
    assert run.note.startswith("untuned on NVIDIA H200") and "--definition" in run.note
    assert run.tuning == {"tuning_table": "kernel defaults", "tuned_on": None, "tuned": False}
    assert run.defines_for(1) == ft.kernel_defaults() == run.defines_for(256)
    assert ft.untuned_note(POOL, gpu, tmp_path) == run.note


def test_table_round_trip_and_bad_tables_are_named(tmp_path):
    path = ft.table_path(POOL, "NVIDIA H200", tmp_path)
    assert path == tmp_path / "h200" / f"{POOL.name}.json"
    path.parent.mkdir(parents=True)
    doc = {"definition": POOL.name, "gpu": "NVIDIA H200", "table": {str(b): c for b, c in TABLE.items()}}  # fmt: skip
    path.write_text(json.dumps(doc))
    assert ft.read_table(path, POOL) == TABLE
    run = ft.best(POOL, gpu={"name": "NVIDIA H200"}, directory=tmp_path, make=Made)
    assert run.table == TABLE and run.tuning["tuned"] and run.note is None
    assert ft.untuned_note(POOL, {"name": "NVIDIA H200"}, tmp_path) is None
    with pytest.raises(ValueError, match="is the table of .*, not of gdn_decode_pool_qk16"):
        ft.read_table(path, SERVING[1])
    for bad, match in ((TABLE | {8: {"defines": {"V_HEADS": 16}}}, "B=8: expected {knob: int}"),
                       ({"x": {"defines": {}}}, "expected batch size"), ({}, "non-empty")):  # fmt: skip
        path.write_text(json.dumps({"table": bad}))
        with pytest.raises(ValueError, match=f"argument 'table': {path}.*{match}"):
            ft.read_table(path)
    with pytest.raises(ValueError, match="no such file"):
        ft.best(POOL, tmp_path / "none.json")


# ---- tune_member with a stand-in timer ---------------------------------------------------

FAST = {"WARPS": 2, "ROWS_PER_WARP": 4, "LANES_PER_ROW": 16}  # 20% faster than the defaults
CLOSE = {"WARPS": 8, "ROWS_PER_WARP": 8}  # 0.5% faster: inside the 1% margin
WRONG = {"WARPS": 4, "ROWS_PER_WARP": 4}  # its output is off: must never be timed
BROKEN = {"WARPS": 4, "ROWS_PER_WARP": 1, "LANES_PER_ROW": 32}  # does not build


class Clock:
    """Times from the build's defines (10 µs for the defaults); notes what it timed."""

    def __init__(self, us):
        self.us, self.timed = us, []

    def unavailable(self, method, device):
        return None

    def trial(self, method, target, n_warmup, n_iter):
        target()
        self.timed.append(ft.label(target.fn.defines))
        return Samples([self.us(target.fn.defines)] * n_iter)


def _make(member, defines):
    if defines["ROWS_PER_WARP"] == 1:
        raise ValueError("does not build")
    good = family_math.reference(member)

    def run(**kw):
        good(**kw)
        if defines["WARPS"] == 4 and defines["ROWS_PER_WARP"] == 4:
            kw["output"].add_(1.0)

    run.defines = defines
    return run


def _us(defines):
    return {2: 8.0, 8: 9.95}.get(defines["WARPS"], 10.0)


def _tune(tmp_path, sizes=(1, 4), space=(FAST, CLOSE, WRONG, BROKEN), us=_us):
    clock = Clock(us)
    table = tune_member(POOL, "quick", sizes, list(space), timer=clock, device="cpu",
                        out_dir=tmp_path, make=_make, verbose=False)  # fmt: skip
    return table, clock


def test_tune_member_checks_times_records_and_writes_the_winners(tmp_path):
    table, clock = _tune(tmp_path)
    assert {b: c["defines"] for b, c in table.items()} == {1: ft.full(FAST), 4: ft.full(FAST)}
    assert table[1]["latency_us"] == 8.0
    assert ft.label(WRONG) not in clock.timed and ft.label(BROKEN) not in clock.timed
    path = ft.table_path(POOL, "cpu", tmp_path)
    doc = json.loads(path.read_text())
    assert doc["definition"] == POOL.name and doc["environment"]["gpu"] == "cpu"
    assert doc["incumbent"] == ft.kernel_defaults() and doc["source"] == SOURCE
    assert ft.read_table(path, POOL) == table
    recs = records.load(tmp_path / "records")
    assert set(recs["run_id"]) == {doc["records"]} and len(recs) == 2 * 5  # defaults joined
    (packed,) = (tmp_path / "records").iterdir()  # the finished sweep gzipped
    assert packed.name.endswith(f"_{doc['records']}.jsonl.gz")
    status = dict(zip(recs["config"], recs["status"], strict=False))
    assert (
        status[ft.label(WRONG)] == "check-failed" and status[ft.label(BROKEN)] == "compile-failed"
    )
    assert recs[recs["status"] != "ok"]["latency_us"].isna().all()
    assert set(recs["definition"]) == {POOL.name} and set(recs["impl_kind"]) == {"tune-candidate"}
    # the table it wrote is the one best finds for this GPU
    run = ft.best(POOL, gpu=CPU, directory=tmp_path, make=Made)
    assert run.defines_for(2) == ft.full(FAST) and run.tuning["tuned"]


def test_the_kernel_defaults_stay_unless_beaten_by_more_than_the_margin(tmp_path):
    table, _ = _tune(tmp_path, sizes=(1,), space=(CLOSE,))
    assert table[1]["defines"] == ft.kernel_defaults() and "kept" in table[1]
    assert table[1]["latency_us"] == 10.0


def test_the_tables_entry_stays_unless_beaten_by_more_than_the_margin(tmp_path):
    _tune(tmp_path, sizes=(1, 4))  # FAST is the table's entry at both sizes
    near = {"WARPS": 16, "ROWS_PER_WARP": 4, "LANES_PER_ROW": 16}  # 0.5% faster than FAST

    def us(d):
        return {16: 7.96, 2: 8.0}.get(d["WARPS"], 10.0) if d["LANES_PER_ROW"] == 16 else 10.0

    table, _ = _tune(tmp_path, sizes=(1, 4), space=(FAST, near), us=us)
    assert {b: c["defines"] for b, c in table.items()} == {1: ft.full(FAST), 4: ft.full(FAST)}
    assert "incumbent" in table[1]["kept"] and table[1]["latency_us"] == 8.0
    doc = json.loads(ft.table_path(POOL, "cpu", tmp_path).read_text())
    assert doc["incumbents"] == {"1": "table", "4": "table"}
    # fresh: the kernel's defaults are the incumbent, and the faster build takes the size
    table = tune_member(POOL, "quick", (1,), [FAST, near], timer=Clock(us), device="cpu",
                        out_dir=tmp_path, make=_make, verbose=False, fresh=True)  # fmt: skip
    assert table[1]["defines"] == ft.full(near)
    # an entry this run does not time cannot be the incumbent: the defaults are
    table, _ = _tune(tmp_path, sizes=(1,), space=(CLOSE,))
    assert table[1]["defines"] == ft.kernel_defaults() and "kept" in table[1]
    doc = json.loads(ft.table_path(POOL, "cpu", tmp_path).read_text())
    assert doc["incumbents"] == {"1": "defaults"}


def test_a_sweep_of_some_sizes_keeps_the_others(tmp_path):
    _tune(tmp_path, sizes=(1, 4))
    first = json.loads(ft.table_path(POOL, "cpu", tmp_path).read_text())
    table, _ = _tune(tmp_path, sizes=(1,), us=lambda d: 10.0 if d["WARPS"] == 4 else 12.0)
    assert table[1]["defines"] == ft.kernel_defaults() and "kept" not in table[1]
    assert table[4]["defines"] == ft.full(FAST) and first["date"] in table[4]["kept"]
    assert table[4]["records"] == first["records"] != table[1]["records"]


def test_tune_member_refuses_bad_arguments_before_any_timing(tmp_path):
    kw = dict(timer=Clock(_us), device="cpu", out_dir=tmp_path, make=_make, verbose=False)
    with pytest.raises(ValueError, match="argument 'batch_sizes': expected ints >= 1, got 0"):
        tune_member(POOL, "quick", [0], **kw)
    with pytest.raises(ValueError, match="argument 'space': entry 0: expected {knob: int}"):
        tune_member(POOL, "quick", [1], [{"QK_HEADS": 4}], **kw)
    with pytest.raises(KeyError, match="argument 'preset'"):
        tune_member(POOL, "nope", [1], **kw)
    assert not any(tmp_path.iterdir())


# ---- the command line --------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra, match",
    [(["--definition", "gdn_decode_nope"], "argument 'definition': expected gdn_decode"),
     (["--batch-sizes", "1,x"], "argument '--batch-sizes': expected comma-separated batch sizes"),
     (["--batch-sizes", "0"], "argument '--batch-sizes'"),
     (["--variants", "subwarp"], "argument '--variants': expected nothing with --definition"),
     (["--per-batch", "3"], "argument '--per-batch'"),
     (["--preset", "nope"], "argument 'preset'")],
)  # fmt: skip
def test_tune_definition_argument_errors_are_one_line(extra, match, capsys):
    assert main(["tune", "--definition", POOL.name, *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err and "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="the no-GPU path")
def test_tune_definition_without_a_gpu_is_one_line(capsys):
    assert main(["tune", "--definition", POOL.name, "--quick"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs a CUDA GPU" in err


def test_candidate_files_are_read_and_bad_ones_named(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps([{"variant": "family", "defines": {"WARPS": 2, "MMA": 0}},
                                {"defines": {"SOLVE": 1, "REDUCE": 1}}]))  # fmt: skip
    assert ft.load_candidates(good) == [{"WARPS": 2, "MMA": 0}, {"SOLVE": 1, "REDUCE": 1}]
    for text, match in (("{", "cannot read .* as JSON"), ("{}", ".* must hold a non-empty JSON list"),
                        ('[{"variant": "subwarp", "defines": {}}]', "entry 0 of .*: expected"),
                        ('[{"defines": {"NOPE": 1}}]', "entry 0 of .*: expected {knob: int}"),
                        ('[{"defines": {"WARPS": 2}}, 3]', "entry 1 of")):  # fmt: skip
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        with pytest.raises(ValueError, match="argument '--configs': " + match):
            ft.load_candidates(bad)


def test_tune_definition_takes_a_candidate_file(tmp_path, monkeypatch, capsys):
    from decodekit.measure import family_tune

    seen = {}
    monkeypatch.setattr(family_tune, "tune_member",
                        lambda member, preset, sizes, space, **kw: seen.update(space=space) or {})  # fmt: skip
    f = tmp_path / "c.json"
    f.write_text(json.dumps([{"defines": {"WARPS": 2}}]))
    main(["tune", "--definition", POOL.name, "--configs", str(f), "--batch-sizes", "1"])
    assert seen["space"] == [{"WARPS": 2}]
    main(["tune", "--definition", POOL.name, "--batch-sizes", "1"])
    assert seen["space"] == "full"
    main(["tune", "--definition", POOL.name, "--configs", "quick", "--batch-sizes", "1"])
    assert seen["space"] == "quick"
    assert main(["tune", "--definition", POOL.name, "--configs", str(f), "--quick"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "argument '--quick': expected no candidate file" in err
