"""The decode family on the CPU: names, the fp64 oracle, manifests, the pool contracts, the
speculative-verify calls (every token's state, no update) and the drift of a state fed
back."""

from dataclasses import replace

import pytest
import torch

from decodekit.measure import family_check
from decodekit.problem import family
from decodekit.problem.family import Member, cases, make_inputs, parse
from decodekit.problem.family_math import _l2, decode, reference
from decodekit.problem.reference import gdn_decode_oracle
from decodekit.problem.spec import DEFINITION, SpecError
from decodekit.problem.workloads import make_inputs as contest_inputs


def test_names_round_trip_and_the_contest_keeps_its_name():
    assert Member().name == DEFINITION.name
    for m in (Member(), *family.SERVING, Member(16, 64, state_dtype="bfloat16")):
        assert parse(m.name) == m
    with pytest.raises(SpecError, match="argument 'definition'"):
        parse("gdn_prefill_qk4")
    with pytest.raises(SpecError, match="argument 'v_heads'"):
        Member(4, 6)


# the names of the members before the verify calls, as records and manifests hold them
OLD_NAMES = (
    "gdn_decode_qk4_v8_d128_k_last",
    "gdn_decode_pool_qk4_v8_d128_k_last_l2norm",
    "gdn_decode_pool_qk16_v32_d128_k_last_l2norm",
    "gdn_decode_pool_qk4_v8_d128_k_last_t4_l2norm",
    "gdn_decode_pool_qk4_v8_d128_k_last_bf16state_l2norm",
    "gdn_decode_pool_qk4_v8_d128_k_last_t4_bf16state",
)


def test_verify_calls_are_named_after_t_and_round_trip():
    assert [m.name for m in (Member(), *family.SERVING)] == list(OLD_NAMES[:5])
    assert all(parse(n).name == n and parse(n).update and not parse(n).intermediate
               for n in OLD_NAMES)  # fmt: skip
    t4 = "gdn_decode_pool_qk4_v8_d128_k_last_t4"
    suffixes = [m.name.removeprefix(t4) for m in family.VERIFY]
    assert suffixes == ["_inter_l2norm", "_noupdate_l2norm", "_inter_noupdate_l2norm"]
    both = [replace(m, state_dtype=dt, layout=lay) for m in family.VERIFY
            for dt in ("float32", "bfloat16") for lay in ("pool", "dense")]  # fmt: skip
    assert len({m.name for m in both}) == len(both) == 12
    for m in both:
        assert parse(m.name) == m
    assert parse(f"{t4}_inter_bf16state").state_dtype == "bfloat16"
    with pytest.raises(SpecError, match="argument 'definition'"):
        parse(f"{t4}_noupdate_inter")  # one order only


@pytest.mark.parametrize(
    "change, arg",
    [(dict(intermediate=True), "intermediate"), (dict(update=False), "update")],
    ids=["intermediate", "update"],
)
def test_verify_calls_need_more_than_one_token(change, arg):
    with pytest.raises(SpecError, match=rf"^argument '{arg}': expected .* seq_len 1") as e:
        Member(layout="pool", **change)
    assert "\n" not in str(e.value)
    with pytest.raises(SpecError, match=f"argument '{arg}'"):
        parse("gdn_decode_pool_qk4_v8_d128_k_last" + ("_inter" if arg == "intermediate" else
                                                      "_noupdate"))  # fmt: skip


def test_the_contest_member_is_the_contest_oracle():
    x = contest_inputs(3)
    out, state = decode(Member(), **{**x, "state_indices": None})
    ref_out, ref_state = gdn_decode_oracle(**x)
    assert torch.allclose(out, ref_out, rtol=0, atol=1e-12)
    assert torch.allclose(state, ref_state, rtol=0, atol=1e-12)


def test_t_tokens_are_t_single_steps_and_l2norm_normalises():
    m2, m1 = Member(seq_len=2), Member()
    x = make_inputs(cases(m2, (4,))[0])
    out2, s2 = decode(m2, **x)
    one = {n: (v[:, :1] if n in ("q", "k", "v", "a", "b") else v) for n, v in x.items()}
    o_a, s_a = decode(m1, **one)
    two = {**{n: (v[:, 1:] if n in ("q", "k", "v", "a", "b") else v) for n, v in x.items()},
           "state": s_a}  # fmt: skip
    o_b, s_b = decode(m1, **two)
    assert torch.allclose(out2[:, 0], o_a[:, 0]) and torch.allclose(out2[:, 1], o_b[:, 0])
    assert torch.allclose(s2, s_b)
    ml = Member(l2norm=True)
    y = make_inputs(cases(ml, (2,))[0])
    unit = {**y, "q": _l2(y["q"].double(), True), "k": _l2(y["k"].double(), True)}
    assert torch.allclose(decode(ml, **y)[0], decode(Member(), **unit)[0])


def test_manifests_hold_the_members_workloads():
    for m in (*family.SERVING, *family.VERIFY):
        path = family.manifest_path(m)
        assert path.read_text() == family.manifest_lines(m), f"regenerate {path.name}"
        got = family.load_cases(m)
        assert [c.batch_size for c in got] == list(family.BATCH_SIZES)
        assert all(c.pool_size == 2 * c.batch_size for c in got)
        assert [c.padding for c in got] == [0, 1, 1, 2, 4, 8, 16, 32]
        assert all(c.null_slot == 0 for c in got) and '"null_slot": 0' in path.read_text()
        assert len({c.uuid for c in got}) == len(got)
    assert all(c.null_slot is None for c in cases(Member(), (1, 8)))  # dense: no pool


def test_pool_inputs_scatter_over_the_pool_with_padding():
    c = cases(Member(layout="pool"), (32,))[0]
    idx = make_inputs(c)["state_indices"]
    assert (idx == -1).sum() == 4 and len(set(idx[idx >= 0].tolist())) == 28
    assert idx[idx >= 0].max() < 64 and torch.equal(idx, make_inputs(c)["state_indices"])


@pytest.mark.parametrize("member", family.SERVING, ids=lambda m: m.name)
def test_live_rows_never_name_the_null_slot(member):
    for case in cases(member):
        idx = make_inputs(case)["state_indices"]
        assert case.null_slot == 0 and 0 not in idx.tolist()
        assert (idx >= 0).sum() == case.batch_size - case.padding
    b1 = make_inputs(cases(member, (1,))[0])["state_indices"]  # P = 2: slot 1 is the only live one
    assert b1.tolist() == [1]


def test_a_manifest_line_without_a_null_slot_keeps_the_old_rule(tmp_path, monkeypatch):
    import json
    import uuid as uuidlib

    m = family.SERVING[0]
    path = tmp_path / f"{m.name}.jsonl"
    path.write_text(json.dumps({"uuid": "old-rule", "batch_size": 8, "pool_size": 16,
                                "padding": 1}) + "\n")  # fmt: skip
    monkeypatch.setattr(family, "manifest_path", lambda member: path)
    (old,) = family.load_cases(m)
    assert old.null_slot is None
    # the indices the rule before null slots drew for this uuid (slot 0 may be live)
    assert make_inputs(old)["state_indices"].tolist() == [13, 6, 5, 7, 14, -1, 11, 8]
    # a case with a null slot is named apart from the one at the same B without it
    was = str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"decodekit/{m.name}/B8"))
    assert cases(m, (8,))[0].uuid != was


def test_a_null_slot_must_be_a_pool_slot():
    pool = Member(layout="pool")
    with pytest.raises(SpecError, match="argument 'null_slot': expected None for the dense"):
        family.Case(Member(), 4, 4, 0, "u", 0)
    with pytest.raises(SpecError, match="argument 'null_slot': expected a slot of 0..7"):
        family.Case(pool, 4, 8, 1, "u", 8)
    with pytest.raises(SpecError, match="leaving 4 others"):
        family.Case(pool, 4, 4, 1, "u", 0)  # 3 slots left for 4 rows


@pytest.mark.parametrize("member", family.SERVING, ids=lambda m: m.name)
def test_the_reference_passes_every_contract(member):
    for case in cases(member, (1, 8)):
        res = family_check.check(reference(member), case)
        assert res.passed, res.summary()


def _bad(kind):
    m = Member(layout="pool")
    ok = reference(m)

    def run(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state, state_indices=None):
        ok(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state, state_indices)
        free = sorted(set(range(state.shape[0])) - set(state_indices.tolist()))
        if kind == "touches":
            new_state[free[0]] += 1e-3
        elif kind == "padding":
            output[(state_indices < 0).nonzero().flatten()] = 1.0

    return m, run


INTER, NOUPDATE, INTER_NOUPDATE = family.VERIFY
TOKENS = ("q", "k", "v", "a", "b")


def test_the_oracle_returns_every_tokens_state_when_asked():
    (case,) = cases(INTER, (8,))
    x = make_inputs(case)
    out, state, inter = decode(INTER, **x, intermediates=True)
    assert inter.shape == (8, 4, 8, 128, 128) and inter.dtype == torch.float64
    idx = x["state_indices"]
    rows, pad = torch.nonzero(idx >= 0).flatten(), torch.nonzero(idx < 0).flatten()
    assert len(pad) and (inter[pad] == 0).all()  # padding rows have none
    assert torch.equal(inter[rows, -1], state[idx[rows].long()])  # the last is the final state
    for t in range(3):  # S_t: the state after the first t + 1 tokens
        head = {n: (v[:, : t + 1] if n in TOKENS else v) for n, v in x.items()}
        _, s_t = decode(replace(INTER, seq_len=t + 1, intermediate=False), **head)
        assert torch.allclose(inter[rows, t], s_t[idx[rows].long()], rtol=0, atol=1e-12)
    # the same math whatever the call stores; current members keep their 2-tuple
    final = replace(INTER, intermediate=False)
    two = decode(final, **x)
    assert len(two) == 2 and torch.equal(two[0], out) and torch.equal(two[1], state)
    assert all(torch.equal(a, b) for a, b in zip(decode(NOUPDATE, **x), two, strict=True))
    (dense,) = cases(replace(INTER, layout="dense"), (2,))
    _, d_state, d_inter = decode(dense.member, **make_inputs(dense), intermediates=True)
    assert d_inter.shape == (2, 4, 8, 128, 128) and torch.equal(d_inter[:, -1], d_state)


VERIFY_BOTH = [replace(m, state_dtype=dt) for m in family.VERIFY for dt in ("float32", "bfloat16")]


@pytest.mark.parametrize("member", VERIFY_BOTH, ids=lambda m: m.name)
def test_the_reference_passes_the_verify_contracts(member):
    for case in cases(member, (1, 8)):
        res = family_check.check(reference(member), case)
        assert res.passed and not res.findings, res.summary()
        names = [r.name for r in res.reports]
        assert ("new_state" in names) == member.update
        assert ("intermediate_states" in names) == member.intermediate


def test_only_an_intermediate_member_gets_the_poisoned_buffer():
    (case,) = cases(INTER, (4,))
    x = make_inputs(case)
    buf = family_check._outputs(case, x)["intermediate_states"]
    assert buf.shape == (4, 4, 8, 128, 128) and buf.dtype == torch.float32 and buf.isnan().all()
    (bf,) = cases(replace(INTER, state_dtype="bfloat16"), (4,))
    assert family_check._outputs(bf, make_inputs(bf))["intermediate_states"].dtype == torch.bfloat16
    for m in (NOUPDATE, family.SERVING[2]):
        (c,) = cases(m, (4,))
        assert "intermediate_states" not in family_check._outputs(c, make_inputs(c))


def test_the_reference_refuses_a_buffer_that_does_not_fit():
    (case,) = cases(INTER, (4,))
    x = make_inputs(case)
    dests = family_check._outputs(case, x)
    run = reference(INTER)
    with pytest.raises(SpecError, match="argument 'intermediate_states': expected a float32"):
        run(**x, **{**dests, "intermediate_states": None})
    short = r"expected torch.float32 \[4, 4, 8, 128, 128\], got torch.float32 \[4, 3, 8, 128, 128\]"
    with pytest.raises(SpecError, match="argument 'intermediate_states': " + short):
        run(**x, **{**dests, "intermediate_states": dests["intermediate_states"][:, :3]})
    (c,) = cases(NOUPDATE, (4,))
    y = make_inputs(c)
    with pytest.raises(SpecError, match="argument 'intermediate_states': expected None"):
        reference(NOUPDATE)(**y, **family_check._outputs(c, y), intermediate_states=dests[
            "intermediate_states"])  # fmt: skip


def _wrong_verify(member, kind):
    """A verify call that breaks one contract (the others kept, as the reference does)."""
    ok = reference(member)

    def run(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state, state_indices=None,
            intermediate_states=None):  # fmt: skip
        keep = state.clone()
        ok(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state, state_indices,
           intermediate_states)  # fmt: skip
        pad = torch.nonzero(state_indices < 0).flatten()
        if kind == "last state for all":  # every token's slot gets the final state
            rows = torch.nonzero(state_indices >= 0).flatten()
            final = reference(replace(member, intermediate=False, update=True))
            scratch = keep.clone()  # the pool before the call
            final(q, k, v, scratch, A_log, a, dt_bias, b, scale, torch.empty_like(output),
                  scratch, state_indices)  # fmt: skip
            intermediate_states[rows] = scratch[state_indices[rows].long()][:, None].to(
                intermediate_states.dtype)  # fmt: skip
        elif kind == "padding rows":  # zeros to the padding rows' intermediate rows
            intermediate_states[pad] = 0
        elif kind == "no final store":  # FlashInfer's bf16 wide_vec path when it caches
            state.copy_(keep)
        elif kind == "updates":  # a no-update call that stores the final state anyway
            reference(replace(member, update=True))(q, k, v, state, A_log, a, dt_bias, b, scale,
                                                    output, new_state, state_indices,
                                                    intermediate_states)  # fmt: skip
        elif kind == "null slot":  # a no-update call that parks padding rows in slot 0
            state[0] += 1.0

    return run


@pytest.mark.parametrize(
    "member, kind, finding",
    [
        (INTER, "last state for all", "intermediate_states"),
        (INTER, "padding rows", "wrote intermediate states"),
        (INTER, "no final store", "new_state"),
        (NOUPDATE, "updates", "written by a call that does not update"),
        (INTER_NOUPDATE, "updates", "written by a call that does not update"),
        (NOUPDATE, "null slot", "1 state slots were written"),
    ],
    ids=lambda x: x if isinstance(x, str) and " " in x and "written" not in x else "",
)  # fmt: skip
def test_a_verify_call_that_breaks_its_contract_fails(member, kind, finding):
    run = _wrong_verify(member, kind)
    run.padding_uses_null_slot = kind == "null slot"  # declared: the pool still may not change
    res = family_check.check(run, cases(member, (8,))[0])
    failed = [r.name for r in res.reports if not r.passed]
    assert not res.passed and (finding in failed or any(finding in f for f in res.findings)), (
        res.summary()
    )


def test_a_write_to_an_unnamed_slot_or_to_a_padding_row_fails():
    for kind, finding in (("touches", "pool slots no index names were written"),
                          ("padding", "padding rows")):  # fmt: skip
        m, run = _bad(kind)
        res = family_check.check(run, cases(m, (8,))[0])
        assert not res.passed and any(finding in f for f in res.findings), res.summary()


def test_bad_indices_are_rejected_before_the_call():
    with pytest.raises(SpecError, match="slot 3 is named by rows"):
        family.validate_indices(torch.tensor([3, 1, 3]), 8)
    with pytest.raises(SpecError, match="expected -1 .padding. or 0..7, got 8"):
        family.validate_indices(torch.tensor([0, 8]), 8)
    family.validate_indices(torch.tensor([-1, -1, 0]), 8)  # two padding rows are fine
    calls = []
    m = Member(layout="pool")
    c = cases(m, (4,))[0]
    orig = family_check.make_inputs

    def dup(case, device="cpu", **kw):
        x = orig(case, device, **kw)
        x["state_indices"][1] = x["state_indices"][0] = 2
        return x

    family_check.make_inputs = dup
    try:
        res = family_check.check(lambda **kw: calls.append(1), c)
    finally:
        family_check.make_inputs = orig
    assert not res.passed and "argument 'state_indices'" in res.error and not calls


def test_drift_over_many_steps_shows_fp32_and_bf16_state_side_by_side():
    df = family_check.drift(reference, Member(), batch_size=2, steps=48)
    assert len(df) == 96 and set(df["state_dtype"]) == {"float32", "bfloat16"}
    last = df[df["step"] == 48].set_index("state_dtype")["state_rel"]
    assert last["float32"] < 1e-5 < last["bfloat16"] < 5e-2
    assert df["state_rel"].notna().all() and (df["output_rel"] < 5e-2).all()


def test_drift_of_one_state_dtype_and_a_clear_error_for_an_unknown_one():
    df = family_check.drift(reference, Member(), batch_size=2, steps=3, state_dtypes=("float32",))
    assert len(df) == 3 and set(df["state_dtype"]) == {"float32"}
    with pytest.raises(ValueError, match=r"argument 'state_dtypes': expected .*'float16'"):
        family_check.drift(reference, Member(), state_dtypes=("float16",))


def test_cli_checks_a_member_and_prints_its_drift(capsys):
    from decodekit.cli import main

    name = "gdn_decode_pool_qk4_v8_d128_k_last_l2norm"
    assert main(["check", "--definition", name, "--impl", "torch-fp32", "--workloads", "B4"]) == 0
    out = capsys.readouterr().out
    assert "B=4    pass" in out and f"{name} torch-fp32: all passed" in out
    assert main(["check", "--definition", name, "--impl", "nope"]) == 2
    assert "expected one of kit, best, torch-fp32" in capsys.readouterr().err
    if not torch.cuda.is_available():  # the kit's kernels need one: said in a line
        assert main(["check", "--definition", name, "--impl", "best"]) == 2
        assert "runs on a CUDA GPU" in capsys.readouterr().err
    assert main(["drift", "--steps", "16", "--batch-size", "1"]) == 0
    assert "bfloat16" in capsys.readouterr().out


def test_fresh_inputs_are_the_seeded_draw_and_never_share_a_buffer():
    from decodekit.measure.family_check import fresh_inputs

    (case,) = family.cases(family.SERVING[0], (8,))
    a, b = fresh_inputs(case), fresh_inputs(case)
    drawn = family.make_inputs(case)
    for n, t in drawn.items():
        if isinstance(t, torch.Tensor):
            assert torch.equal(a[n], t) and a[n].data_ptr() != b[n].data_ptr(), n
    a["state"] += 1.0  # what an in-place call does to its pool
    assert torch.equal(fresh_inputs(case)["state"], drawn["state"])
