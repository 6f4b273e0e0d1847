"""The family's peers on the CPU, with fake flashinfer, fla and vllm modules standing in for the
packages: which entry point each calls, with which arguments, what each member gets, and the
null-slot path of the check (an impl that parks padding rows in slot 0 passes only when it
says so, and only on a case that reserves the slot), and the speculative-verify calls
(``intermediate_states_buffer``, ``disable_state_update``) where each peer has them."""

import importlib.machinery
import sys
import types
from dataclasses import replace

import pytest
import torch

from decodekit.impls import family_peers
from decodekit.impls.family_peers import PEERS, peer, supports, why_not
from decodekit.measure import family_check
from decodekit.problem import family
from decodekit.problem.family import SERVING, VERIFY, Member, cases
from decodekit.problem.family_math import decode, reference
from decodekit.problem.spec import SpecError, resolve_scale

POOL, POOL16, POOL_T4, POOL_BF16 = SERVING
DENSE = [replace(m, layout="dense") for m in SERVING]
INTER, NOUPDATE, INTER_NOUPDATE = VERIFY
VERIFY_BF16 = [replace(m, state_dtype="bfloat16") for m in VERIFY]


def _module(monkeypatch, name: str, **attrs):
    """A fake module in sys.modules (with a spec, so importlib.util.find_spec sees it)."""
    mod = types.ModuleType(name)
    mod.__spec__ = importlib.machinery.ModuleSpec(name, None)
    mod.__dict__.update(attrs)
    monkeypatch.setitem(sys.modules, name, mod)
    return mod


def _step(member, q, k, v, pool, A_log, a, dt_bias, b, scale, idx):
    """The fakes' math: the family's fp32 reference on the rows ``idx`` names, and every
    token's state."""
    return decode(member, q, k, v, pool, A_log, a, dt_bias, b, scale, idx, dtype=torch.float32,
                  intermediates=True)  # fmt: skip


def _pool_member(q, v, pool, l2: bool):
    H, HV, T = q.shape[2], v.shape[2], q.shape[1]
    return Member(H, HV, q.shape[3], T, str(pool.dtype).split(".")[1], "pool", l2)


@pytest.fixture
def fake_flashinfer(monkeypatch):
    """FlashInfer's two entry points as 0.7.2.post1 documents them: the pretranspose pool
    call (fp32: -1 skipped, output 0; bf16: -1 redirected to slot 0, output undefined) and
    the MTP call (-1 skipped, output left as the caller's), each with the verify call's
    ``intermediate_states_buffer`` (by batch row) and ``disable_state_update``. The bf16
    MTP kernel's wide_vec path (B * HV >= 128) skips the final store when it caches."""
    calls = []

    def pretranspose(q, k, v, state, A_log, a, dt_bias, b, scale=None, output=None,
                     use_qk_l2norm=True, initial_state=None, initial_state_indices=None,
                     intermediate_states_buffer=None, disable_state_update=False,
                     **rest):  # fmt: skip
        calls.append(("pretranspose", dict(state=state, scale=scale, output=output,
                      use_qk_l2norm=use_qk_l2norm, initial_state=initial_state,
                      initial_state_indices=initial_state_indices,
                      intermediate_states_buffer=intermediate_states_buffer,
                      disable_state_update=disable_state_update, **rest)))  # fmt: skip
        pool, idx = initial_state, initial_state_indices
        B, T, HV = v.shape[:3]
        if T == 1 and (intermediate_states_buffer is not None or disable_state_update):
            raise ValueError("intermediate_states_buffer / disable_state_update: T > 1 only")
        m = _pool_member(q, v, pool, use_qk_l2norm)
        if pool.dtype == torch.bfloat16:  # the null buffer: padding reads and writes slot 0
            idx = torch.where(idx < 0, 0, idx)
            rows = torch.arange(B)
        else:
            rows = torch.nonzero(idx >= 0).flatten()
        out, new, inter = _step(m, q, k, v, pool, A_log, a, dt_bias, b, scale, idx)
        output.copy_(out)
        if intermediate_states_buffer is not None:
            intermediate_states_buffer[rows] = inter[rows].to(pool.dtype)
            disable_state_update |= B * HV >= 128  # wide_vec: effective_disable_final
        if not disable_state_update:
            pool[idx[rows].long()] = new[idx[rows].long()].to(pool.dtype)
        return output, pool

    def mtp(q, k, v, initial_state, initial_state_indices, A_log, a, dt_bias, b, scale=None,
            output=None, intermediate_states_buffer=None, disable_state_update=None,
            use_qk_l2norm=True, **rest):  # fmt: skip
        calls.append(("mtp", dict(scale=scale, output=output, use_qk_l2norm=use_qk_l2norm,
                      intermediate_states_buffer=intermediate_states_buffer,
                      disable_state_update=disable_state_update, **rest)))  # fmt: skip
        assert initial_state.dtype == torch.float32  # its standalone entry point: fp32 only
        pool, idx = initial_state, initial_state_indices
        out, new, inter = _step(_pool_member(q, v, pool, use_qk_l2norm), q, k, v, pool, A_log, a,
                                dt_bias, b, scale, idx)  # fmt: skip
        rows = torch.nonzero(idx >= 0).flatten()
        output[rows] = out[rows].to(output.dtype)  # padding rows: the caller's values
        if intermediate_states_buffer is not None:  # padding rows: skipped
            intermediate_states_buffer[rows] = inter[rows]
        if not disable_state_update:
            pool[idx[rows].long()] = new[idx[rows].long()]
        return output, pool

    _module(monkeypatch, "flashinfer")
    _module(monkeypatch, "flashinfer.gdn_decode", gated_delta_rule_decode_pretranspose=pretranspose,
            gated_delta_rule_mtp=mtp, _PRETRANSPOSE_AVAILABLE=True, _MTP_AVAILABLE=True,
            _GDN_DECODE_BF16_STATE_AVAILABLE=True)  # fmt: skip
    return calls


@pytest.fixture
def fake_fla(monkeypatch):
    """fla-core 0.6.0's fused recurrent kernel: ``kernel[grid](**launch)``."""
    launches = []

    class Kernel:
        def __getitem__(self, grid):
            def launch(**kw):
                launches.append((grid, kw))
                q, v, h0 = kw["q"], kw["v"], kw["h0"]
                m = Member(q.shape[2], v.shape[2], q.shape[3], q.shape[1],
                           str(h0.dtype).split(".")[1], "dense", kw["USE_QK_L2NORM_IN_KERNEL"])  # fmt: skip
                out, ht = decode(m, q, kw["k"], v, h0, kw["A_log"], kw["g"], kw["dt_bias"],
                                 kw["beta"], kw["scale"], dtype=torch.float32)  # fmt: skip
                kw["o"].copy_(out)
                kw["ht"].copy_(ht)

            return launch

    for name in ("fla", "fla.ops", "fla.ops.gated_delta_rule"):
        _module(monkeypatch, name)
    _module(monkeypatch, "fla.ops.gated_delta_rule.fused_recurrent",
            fused_recurrent_gated_delta_rule_fwd_kernel=Kernel())  # fmt: skip
    return launches


@pytest.fixture
def fake_vllm(monkeypatch):
    """vLLM's fused_sigmoid_gating_delta_rule_update: varlen tokens, a pool in place through
    ssm_state_indices, rows with an index <= 0 skipped (their output left unwritten)."""
    calls = []

    def update(A_log, a, b, dt_bias, q, k, v, beta=1.0, threshold=20.0, scale=None,
               initial_state=None, inplace_final_state=True, cu_seqlens=None,
               ssm_state_indices=None, num_accepted_tokens=None, use_qk_l2norm_in_kernel=False,
               is_kda=False):  # fmt: skip
        calls.append(dict(q=q.shape, a=a.shape, scale=scale, initial_state=initial_state,
                          inplace_final_state=inplace_final_state, cu_seqlens=cu_seqlens,
                          ssm_state_indices=ssm_state_indices,
                          use_qk_l2norm_in_kernel=use_qk_l2norm_in_kernel))  # fmt: skip
        N = len(cu_seqlens) - 1
        H, HV, K = q.shape[2], v.shape[2], q.shape[3]
        pool = initial_state
        idx = torch.where(ssm_state_indices <= 0, -1, ssm_state_indices)
        m = Member(H, HV, K, 1, str(pool.dtype).split(".")[1], "pool", use_qk_l2norm_in_kernel)
        out, new, _ = _step(m, q.view(N, 1, H, K), k.view(N, 1, H, K), v.view(N, 1, HV, K),
                         pool, A_log, a.view(N, 1, HV), dt_bias, b.view(N, 1, HV), scale, idx)  # fmt: skip
        o = torch.full((1, N, HV, K), float("nan"), dtype=q.dtype)
        rows = torch.nonzero(idx >= 0).flatten()
        o[0, rows] = out[rows, 0].to(q.dtype)
        pool[idx[rows].long()] = new[idx[rows].long()].to(pool.dtype)
        return o, pool

    _module(monkeypatch, "vllm")
    _module(monkeypatch, "vllm.model_executor.layers.fla.ops",
            fused_sigmoid_gating_delta_rule_update=update)  # fmt: skip
    return calls


def test_what_each_peer_runs_of_the_serving_members():
    assert [supports("flashinfer", m) for m in SERVING] == [None] * 4
    assert all("takes no state indices: no pool" in supports("fla", m) for m in SERVING)
    assert [supports("vllm", m) is None for m in SERVING] == [True, True, False, True]
    assert "spec decode" in supports("vllm", POOL_T4)
    assert all(supports("fla", m) is None for m in DENSE)
    assert all("destination-passing" in supports("flashinfer", m) for m in DENSE)
    assert "K = V = 128" in supports("flashinfer", replace(POOL_BF16, head_size=64))
    with pytest.raises(SpecError, match="argument 'impl': expected one of flashinfer, fla, vllm"):
        supports("triton", POOL)


def test_a_missing_package_is_a_reason_not_an_import_error(monkeypatch):
    for name in ("flashinfer", "fla", "vllm"):
        monkeypatch.setitem(sys.modules, name, None)  # find_spec: not installed
    assert "pip install flashinfer-python" in why_not("flashinfer", POOL)
    assert "fla-core==0.6.0" in why_not("fla", DENSE[0])
    assert "'vllm' not installed" in why_not("vllm", POOL)
    assert why_not("fla", POOL) == supports("fla", POOL)  # the API's reason comes first
    for name, m in (("flashinfer", POOL), ("fla", POOL), ("vllm", POOL_T4)):
        with pytest.raises(SpecError, match=rf"^argument 'impl': {name} cannot run {m.name}: "):
            peer(name, m)


def test_flashinfer_fp32_t1_is_the_pretranspose_pool_call(fake_flashinfer):
    run = peer("flashinfer", POOL)
    res = family_check.check(run, cases(POOL, (8,))[0])
    assert res.passed and not res.notes, res.summary()
    ((api, kw),) = fake_flashinfer
    assert api == "pretranspose" and kw["state"] is None
    assert kw["use_qk_l2norm"] is True and kw["scale"] == resolve_scale(None)
    assert kw["output"].dtype == torch.bfloat16 and kw["initial_state_indices"].dtype == torch.int32
    assert not run.padding_uses_null_slot


def test_flashinfer_fp32_t4_is_mtp_with_state_updates_and_a_zeroed_output(fake_flashinfer):
    run = peer("flashinfer", POOL_T4)
    res = family_check.check(run, cases(POOL_T4, (8,))[0])  # NaN-poisoned output
    assert res.passed and not res.notes, res.summary()  # padding rows read 0
    ((api, kw),) = fake_flashinfer
    assert api == "mtp" and kw["disable_state_update"] is False and kw["use_qk_l2norm"] is True
    assert run.api.endswith("gated_delta_rule_mtp")


def test_what_each_peer_runs_of_the_verify_members():
    assert [supports("flashinfer", m) for m in VERIFY] == [None] * 3
    bf_inter, *bf_rest = VERIFY_BF16
    assert "skips the final state store" in supports("flashinfer", bf_inter)
    assert [supports("flashinfer", m) for m in bf_rest] == [None, None]
    assert all("no pool" in supports("fla", m) for m in VERIFY)
    dense = [replace(m, layout="dense") for m in VERIFY]
    assert "no per-token states" in supports("fla", dense[0])
    assert "no no-update call" in supports("fla", dense[1])
    assert all("spec decode" in supports("vllm", m) for m in (*VERIFY, *VERIFY_BF16))


@pytest.mark.parametrize("member", VERIFY, ids=lambda m: m.name)
def test_flashinfer_fp32_verify_is_mtp_with_its_buffer_and_update_flag(fake_flashinfer, member):
    run = peer("flashinfer", member)
    for B in (8, 32):
        res = family_check.check(run, cases(member, (B,))[0])  # padding intermediate rows NaN
        assert res.passed and not res.notes, res.summary()
    (api, kw), _ = fake_flashinfer
    assert api == "mtp" and kw["disable_state_update"] is (not member.update)
    buf = kw["intermediate_states_buffer"]
    assert (buf is not None) == member.intermediate
    if buf is not None:
        assert buf.shape == (8, 4, 8, 128, 128) and buf.dtype == torch.float32


@pytest.mark.parametrize("member", VERIFY_BF16[1:], ids=lambda m: m.name)
def test_flashinfer_bf16_verify_is_pretranspose_with_its_buffer(fake_flashinfer, member):
    run = peer("flashinfer", member)
    assert run.padding_uses_null_slot
    for B in (8, 16):  # B * HV 64 (its ILP4 path), 128 (wide_vec)
        res = family_check.check(run, cases(member, (B,))[0])
        assert res.passed and "null slot 0" in res.notes[0], res.summary()
        assert "the slot" not in res.notes[0]  # no update: the pool is checked whole
    (api, kw), _ = fake_flashinfer
    assert api == "pretranspose" and kw["disable_state_update"] is True
    assert (kw["intermediate_states_buffer"] is not None) == member.intermediate


def test_flashinfer_bf16_intermediate_with_update_would_fail_where_it_skips_the_store(
    fake_flashinfer,
):
    bf_inter = VERIFY_BF16[0]
    with pytest.raises(SpecError, match="skips the final state store"):
        peer("flashinfer", bf_inter)
    run = family_peers._flashinfer(bf_inter)  # past supports: what the table note is about
    assert family_check.check(run, cases(bf_inter, (8,))[0]).passed  # ILP4: the state stored
    res = family_check.check(run, cases(bf_inter, (16,))[0])  # wide_vec: the pool as it was
    assert not res.passed and [r.name for r in res.reports if not r.passed] == ["new_state"]


def test_flashinfer_refuses_a_buffer_its_member_does_not_write(fake_flashinfer):
    x = family.make_inputs(cases(POOL_T4, (4,))[0])
    out = torch.empty(4, 4, 8, 128, dtype=torch.bfloat16)
    buf = torch.empty(4, 4, 8, 128, 128)
    with pytest.raises(SpecError, match="argument 'intermediate_states': expected None"):
        peer("flashinfer", POOL_T4)(**x, output=out, new_state=x["state"],
                                    intermediate_states=buf)  # fmt: skip
    assert not fake_flashinfer


def test_flashinfer_bf16_parks_padding_in_the_null_slot(fake_flashinfer):
    run = peer("flashinfer", POOL_BF16)
    assert run.padding_uses_null_slot
    res = family_check.check(run, cases(POOL_BF16, (8,))[0])
    assert res.passed and res.notes and "null slot 0" in res.notes[0], res.summary()
    ((api, kw),) = fake_flashinfer
    assert api == "pretranspose" and kw["initial_state"].dtype == torch.bfloat16
    b1 = family_check.check(run, cases(POOL_BF16, (1,))[0])  # no padding: the full contract
    assert b1.passed and not b1.notes


def test_flashinfer_wants_the_pool_in_place(fake_flashinfer):
    x = family.make_inputs(cases(POOL, (4,))[0])
    out = torch.empty(4, 1, 8, 128, dtype=torch.bfloat16)
    with pytest.raises(SpecError, match="argument 'new_state': expected the pool itself"):
        peer("flashinfer", POOL)(**x, output=out, new_state=x["state"].clone())


def test_a_kernel_that_did_not_import_is_a_reason(fake_flashinfer):
    mod = sys.modules["flashinfer.gdn_decode"]
    mod._GDN_DECODE_BF16_STATE_AVAILABLE = False
    assert "bf16-state decode kernel did not import" in why_not("flashinfer", POOL_BF16)
    assert why_not("flashinfer", POOL) is None and why_not("flashinfer", POOL_T4) is None
    mod._MTP_AVAILABLE = False
    assert "MTP kernel did not import" in why_not("flashinfer", POOL_T4)
    mod._PRETRANSPOSE_AVAILABLE = False
    assert "_PRETRANSPOSE_AVAILABLE is False" in why_not("flashinfer", POOL)


@pytest.mark.parametrize("member", DENSE, ids=lambda m: m.name)
def test_fla_launches_its_kernel_into_the_kits_buffers(fake_fla, member):
    res = family_check.check(peer("fla", member), cases(member, (4,))[0])
    assert res.passed, res.summary()
    ((grid, kw),) = fake_fla
    assert grid == (128 // 8 * 4 * member.v_heads,)
    assert kw["USE_QK_L2NORM_IN_KERNEL"] is True and kw["STATE_V_FIRST"] is True
    assert kw["APPLY_BETA_SIGMOID"] is True and kw["BK"] == 128 and kw["BV"] == 8
    assert kw["ht"].dtype == member.dtype  # a bf16 state is stored as bf16 by the kernel


def test_fla_writes_output_and_ht_in_place_of_allocating(fake_fla):
    m = DENSE[0]
    x = family.make_inputs(cases(m, (2,))[0])
    out = torch.empty(2, 1, 8, 128, dtype=torch.bfloat16)
    new = torch.empty_like(x["state"])
    peer("fla", m)(**x, output=out, new_state=new)
    ((_, kw),) = fake_fla
    assert kw["o"] is out and kw["ht"] is new and kw["h0"] is x["state"]


@pytest.mark.parametrize("member", [POOL, POOL16, POOL_BF16], ids=lambda m: m.name)
def test_vllm_is_the_varlen_pool_call_in_place(fake_vllm, member):
    run = peer("vllm", member)
    assert run.api == "vllm.model_executor.layers.fla.ops.fused_sigmoid_gating_delta_rule_update"
    res = family_check.check(run, cases(member, (8,))[0])
    assert res.passed and not res.notes, res.summary()  # padding output zeroed by the wrapper
    (kw,) = fake_vllm
    assert kw["q"] == (1, 8, member.qk_heads, 128) and kw["a"] == (8, member.v_heads)
    assert kw["inplace_final_state"] is True and kw["use_qk_l2norm_in_kernel"] is True
    assert kw["cu_seqlens"].tolist() == list(range(9))
    assert kw["initial_state"] is res.inputs["state"]


def _parks_in_slot0(member: Member):
    """A pool impl that sends padding rows to slot 0 and leaves their output garbage."""
    ok = reference(member)

    def run(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state, state_indices=None):
        ok(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state, state_indices)
        pad = torch.nonzero(state_indices < 0).flatten()
        new_state[0] += 1.0
        output[pad] = 7.0

    return run


def test_the_null_slot_is_excused_only_when_the_impl_says_so():
    case = cases(POOL, (8,))[0]
    run = _parks_in_slot0(POOL)
    res = family_check.check(run, case)
    assert not res.passed and not res.notes, res.summary()
    assert any("pool slots no index names were written" in f for f in res.findings)
    assert any("padding rows" in f for f in res.findings)
    run.padding_uses_null_slot = True
    res = family_check.check(run, case)
    assert res.passed and "null slot 0" in res.notes[0] and not res.findings, res.summary()
    assert "note: padding rows" in res.summary()


def test_a_null_slot_impl_on_a_case_without_one_is_refused_before_the_call():
    calls = []
    old = replace(cases(POOL, (8,))[0], null_slot=None)  # the old rule: slot 0 may be live

    def run(**kw):
        calls.append(1)

    run.padding_uses_null_slot = True
    res = family_check.check(run, old)
    assert not res.passed and not calls
    assert res.error.startswith("argument 'impl': declares padding_uses_null_slot, but case B=8")
    assert "\n" not in res.error
    b1 = replace(cases(POOL, (1,))[0], null_slot=None)  # no padding rows: nothing to park
    assert family_check.check(reference(POOL), b1).passed


def test_the_kits_reference_keeps_the_null_slot_untouched():
    for member in SERVING:
        case = cases(member, (8,))[0]
        res = family_check.check(reference(member), case)
        assert res.passed and not res.notes, res.summary()
        assert 0 not in res.inputs["state_indices"].tolist()


def test_peers_are_named_once():
    assert PEERS == ("flashinfer", "fla", "vllm") and set(family_peers._TABLE) == set(PEERS)
