"""Peers of the family kernel (:mod:`decodekit.problem.family`), each called as its users call it.

Every peer gives the family's calling convention, ``impl(q, k, v, state, A_log, a, dt_bias,
b, scale, output, new_state, state_indices=None, intermediate_states=None)`` (a pool:
``new_state is state``, updated in place; ``state_indices[b] = -1`` a padding row;
``intermediate_states`` an intermediate member's buffer, else None), from the entry point its
users call:

- ``flashinfer`` (0.7.2.post1): a pool through ``gated_delta_rule_decode_pretranspose``'s
  ``initial_state`` + ``initial_state_indices`` (fp32 T=1: its legacy kernel; bf16 state:
  its bf16-state kernel, whose padding rows park in slot 0, the null slot; T>1 its bf16 MTP
  kernel), fp32 T>1 through ``gated_delta_rule_mtp``; a verify member's buffer as
  ``intermediate_states_buffer`` and ``disable_state_update=not member.update`` to either.
- ``fla`` (fla-core 0.6.0): ``fused_recurrent_gated_delta_rule``'s kernel, ``h0 -> ht``; it
  takes no state indices, so dense members only.
- ``vllm``: ``fused_sigmoid_gating_delta_rule_update`` on its state pool through
  ``ssm_state_indices``, in place, at T=1.

:func:`supports` says why a peer's API cannot run a member (a table note), :func:`why_not`
adds why it cannot run here (a missing package), :func:`peer` gives the callable. Packages
are imported when a peer is built, never when this module is.

>>> from decodekit.problem.family import SERVING, VERIFY, Member
>>> [supports("flashinfer", m) for m in SERVING]
[None, None, None, None]
>>> [supports("flashinfer", m) for m in VERIFY]
[None, None, None]
>>> supports("fla", SERVING[0])
"fla-core 0.6.0's fused_recurrent_gated_delta_rule takes no state indices: no pool"
>>> supports("fla", Member(16, 32, seq_len=4, state_dtype="bfloat16")) is None
True
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable

import torch

from decodekit.impls.baselines import _flashinfer_missing
from decodekit.problem.family import Member, check_intermediate_states
from decodekit.problem.spec import SpecError, resolve_scale

PEERS = ("flashinfer", "fla", "vllm")


def _pow2(n: int) -> int:
    """``triton.next_power_of_2`` (the launch geometry is plain ints; no triton import here)."""
    return 1 << (n - 1).bit_length()


def _need_pool(new_state, state, who: str) -> None:
    if new_state is not state:
        raise SpecError(
            f"argument 'new_state': expected the pool itself ({who} updates it in place), "
            "got another tensor"
        )


def supports_flashinfer(member: Member) -> str | None:
    """Why FlashInfer's GDN decode cannot run ``member``, or None."""
    d = member.head_size
    if member.layout != "pool":
        return (
            "FlashInfer updates its state in place: a dense member is destination-passing "
            "(its pool call is the native one)"
        )
    if member.bf16 and d != 128:
        return f"head_size {d}: FlashInfer's bf16-state kernel needs K = V = 128"
    if not member.bf16 and member.seq_len == 1 and (d < 128 or d % 8):
        return f"head_size {d}: FlashInfer's fp32 T=1 kernel needs K, V >= 128, V % 8 == 0"
    if not member.bf16 and member.seq_len > 1 and (d < 128 or d % 64):
        # its MTP kernel asserts V % tile_v == 0, tile_v up to 64 by batch size
        return f"head_size {d}: FlashInfer's fp32 MTP kernel needs K, V >= 128, V % 64 == 0"
    if member.bf16 and member.intermediate and member.update:
        # gdn_decode_bf16_state.py: the wide_vec MTP path (B * HV >= 128) sets
        # effective_disable_final when it caches; its ILP4 path (smaller B) stores the state
        return (
            "FlashInfer's bf16 MTP kernel skips the final state store when it caches "
            "intermediate states (at B * HV >= 128): its bf16 verify leaves the pool as it was"
        )
    return None


def _flashinfer(member: Member):
    from flashinfer.gdn_decode import gated_delta_rule_decode_pretranspose as decode
    from flashinfer.gdn_decode import gated_delta_rule_mtp as mtp

    l2, no_update = member.l2norm, not member.update
    if member.bf16 or member.seq_len == 1:

        def run(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state,
                state_indices=None, intermediate_states=None):  # fmt: skip
            # FlashInfer's pool call, as serving engines make it: the pool and its slot
            # indices, updated in place, the output written into the caller's bf16 buffer. backend stays "auto": on
            # sm_90 that is FlashInfer's own kernels (its Cake GDN rows are sm_100a/sm_103a).
            # fp32 T=1 runs the legacy pretranspose kernel (-1: skipped, output 0); bf16
            # state its bf16-state kernel (-1: redirected to slot 0, read and written unless
            # the state is not updated, the row's output and intermediate states undefined),
            # T>1 too (its bf16 MTP kernel, which takes the verify call's two arguments).
            _need_pool(new_state, state, "FlashInfer")
            check_intermediate_states(member, intermediate_states, q.shape[0])
            decode(
                q, k, v, None, A_log, a, dt_bias, b, scale=resolve_scale(scale),
                output=output, use_qk_l2norm=l2, initial_state=new_state,
                initial_state_indices=state_indices,
                intermediate_states_buffer=intermediate_states, disable_state_update=no_update,
            )  # fmt: skip

        run.api = "flashinfer.gdn_decode.gated_delta_rule_decode_pretranspose"
        # FlashInfer's bf16 path needs a null slot: slot 0, never a live request's
        run.padding_uses_null_slot = member.bf16
        return run

    def run_mtp(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state,
                state_indices=None, intermediate_states=None):  # fmt: skip
        # fp32 T>1 (speculative verify): the MTP kernel, where pretranspose routes it.
        # Padding rows skip read and write (their intermediate rows too) and leave "the
        # output slot as the caller-allocated value", so the output is zeroed first: what
        # FlashInfer's own output=None default does (torch.zeros). disable_state_update is
        # always passed: its default is still True (deprecated, to change in 0.8.0).
        _need_pool(new_state, state, "FlashInfer")
        check_intermediate_states(member, intermediate_states, q.shape[0])
        output.zero_()
        mtp(
            q, k, v, initial_state=new_state, initial_state_indices=state_indices,
            A_log=A_log, a=a, dt_bias=dt_bias, b=b, scale=resolve_scale(scale),
            output=output, intermediate_states_buffer=intermediate_states,
            disable_state_update=no_update, use_qk_l2norm=l2,
        )  # fmt: skip

    run_mtp.api = "flashinfer.gdn_decode.gated_delta_rule_mtp"
    run_mtp.padding_uses_null_slot = False
    run_mtp.kernels_per_call = 2  # the zeroing memset and its kernel
    return run_mtp


def _flashinfer_here(member: Member) -> str | None:
    why = _flashinfer_missing()
    if why:
        return why
    # the kernel module member's path needs; pretranspose's own is _flashinfer_missing's
    flag, kernel = (
        ("_GDN_DECODE_BF16_STATE_AVAILABLE", "bf16-state decode") if member.bf16
        else ("_MTP_AVAILABLE", "MTP") if member.seq_len > 1
        else (None, None)
    )  # fmt: skip
    if flag and not getattr(importlib.import_module("flashinfer.gdn_decode"), flag, True):
        return (
            f"FlashInfer's {kernel} kernel did not import (flashinfer.gdn_decode.{flag} is False)"
        )
    return None


FLA_VERSION = "fla-core 0.6.0"


def supports_fla(member: Member) -> str | None:
    """Why FLA's fused recurrent kernel cannot run ``member``, or None (fp32 or bf16 state:
    the kernel loads ``h0`` into fp32 and stores ``ht`` in its tensor's dtype)."""
    if member.layout == "pool":
        return f"{FLA_VERSION}'s fused_recurrent_gated_delta_rule takes no state indices: no pool"
    if member.intermediate:
        return f"{FLA_VERSION}'s fused_recurrent_gated_delta_rule returns no per-token states"
    if not member.update:
        return "the kit's FLA peer launches its kernel with the final state (ht): no no-update call"
    return None


def _fla(member: Member):
    from fla.ops.gated_delta_rule.fused_recurrent import (
        fused_recurrent_gated_delta_rule_fwd_kernel as kernel,
    )

    l2 = member.l2norm

    def run(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state,
            state_indices=None, intermediate_states=None):  # fmt: skip
        # The launch fused_recurrent_gated_delta_rule_fwd makes (grid, BK, BV, 1 warp,
        # 3 stages; gate and beta sigmoid fused: use_gate_in_kernel, use_beta_sigmoid_in_kernel;
        # state_v_first: the k-last [B, HV, V, K] state), as baselines' `fla` launches it,
        # with the kit's buffers as o and ht. The public function would allocate o and an
        # fp32 final state: two more copies per call (and a cast for a bf16 state) the
        # kit's kernel does not make. The kernel itself reads h0 into fp32 and stores ht in
        # ht's dtype, so a bf16 state runs as it is.
        check_intermediate_states(member, intermediate_states, q.shape[0])
        B, T, H, K = k.shape
        HV, V = v.shape[2], v.shape[3]
        BV = min(8, _pow2(V))
        kernel[(-(-V // BV) * B * HV,)](
            q=q, k=k, v=v, g=a, gk=None, gv=None, beta=b, A_log=A_log, dt_bias=dt_bias,
            o=output, h0=state, ht=new_state, cu_seqlens=None, scale=resolve_scale(scale),
            T=T, H=H, HV=HV, K=K, V=V, BK=_pow2(K), BV=BV,
            IS_BETA_HEADWISE=b.ndim != v.ndim, USE_QK_L2NORM_IN_KERNEL=l2,
            APPLY_BETA_SIGMOID=True, ALLOW_NEG_EIGVAL=False, STATE_V_FIRST=True,
            num_warps=1, num_stages=3,
        )  # fmt: skip

    run.api = "fla.ops.gated_delta_rule.fused_recurrent.fused_recurrent_gated_delta_rule_fwd_kernel"
    return run


def _fla_here(member: Member) -> str | None:
    if importlib.util.find_spec("fla") is None:
        return "package 'fla' not installed (pip install fla-core==0.6.0)"
    return None


# vLLM's GDN decode op, where its releases keep FLA's copy (the newer path first)
_VLLM_OPS = ("vllm.third_party.flash_linear_attention.ops", "vllm.model_executor.layers.fla.ops")


def supports_vllm(member: Member) -> str | None:
    """Why vLLM's GDN decode call cannot run ``member``, or None."""
    if member.layout != "pool":
        return "vLLM calls its GDN decode on its state pool only (ssm_state_indices): no dense call"
    if member.seq_len > 1:
        return (
            "vLLM's T>1 call (spec decode) writes each token's state to its own slot "
            "([B, T] ssm_state_indices, num_accepted_tokens), not the final state to one"
        )
    return None


def _vllm_ops():
    for name in _VLLM_OPS:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ImportError(f"none of {', '.join(_VLLM_OPS)} imports")


def _vllm(member: Member):
    ops = _vllm_ops()
    update = ops.fused_sigmoid_gating_delta_rule_update
    l2 = member.l2norm
    seqlens: dict = {}  # (B, device) -> cu_seqlens, made once outside the timing
    zeros: dict = {}  # (dtype, device) -> the 0 padding rows read

    def run(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state,
            state_indices=None, intermediate_states=None):  # fmt: skip
        # As vLLM's GDN layer calls it for decode (vllm-project/vllm: the op in
        # vllm/model_executor/layers/fla/ops/fused_sigmoid_gating.py @2baf56c, moved to
        # vllm/third_party/flash_linear_attention/ops/ @9510047, same signature; the call as
        # in tests/.../test_fused_sigmoid_gating_delta_rule_update_non_spec): tokens packed
        # as one varlen sequence [1, B, H, K] with cu_seqlens, a and b [B, HV], the k-last
        # pool [P, HV, V, K] read and written in place through ssm_state_indices. Its kernel
        # skips a row whose index is < 0 (@2baf56c) or <= 0 (@9510047: NULL_BLOCK_ID = 0,
        # its pools reserve block 0), so live rows must avoid slot 0: the family's cases
        # reserve it (Case.null_slot). A skipped row's output is left unwritten in the
        # buffer the op allocates; the kit's contract reads zeros there, so the copy into
        # ``output`` keeps live rows only (one torch.where, no host sync).
        _need_pool(new_state, state, "vLLM")
        check_intermediate_states(member, intermediate_states, q.shape[0])
        B, _, H, K = q.shape
        HV, V = v.shape[2], v.shape[3]
        cu = seqlens.get((B, q.device))
        if cu is None:
            cu = seqlens[B, q.device] = torch.arange(B + 1, dtype=torch.int32, device=q.device)
        zero = zeros.get((output.dtype, q.device))
        if zero is None:
            zero = zeros[output.dtype, q.device] = output.new_zeros(())
        o, _ = update(
            A_log=A_log, a=a.view(B, HV), b=b.view(B, HV), dt_bias=dt_bias,
            q=q.view(1, B, H, K), k=k.view(1, B, H, K), v=v.view(1, B, HV, V),
            scale=resolve_scale(scale), initial_state=new_state, inplace_final_state=True,
            cu_seqlens=cu, ssm_state_indices=state_indices, use_qk_l2norm_in_kernel=l2,
        )  # fmt: skip
        live = (state_indices >= 0).view(B, 1, 1, 1)
        torch.where(live, o.view(B, 1, HV, V), zero, out=output)

    run.api = f"{ops.__name__}.fused_sigmoid_gating_delta_rule_update"
    run.kernels_per_call = None  # its kernel, the live-row mask and the where
    return run


def _vllm_here(member: Member) -> str | None:
    if importlib.util.find_spec("vllm") is None:
        return "package 'vllm' not installed (pip install vllm)"
    try:
        _vllm_ops()
    except Exception as e:  # an install without the GDN ops, or one that fails to import
        return f"vLLM's GDN decode op unavailable here: {type(e).__name__}: {e}"
    return None


_TABLE: dict[str, tuple[Callable, Callable, Callable]] = {  # supports, here, factory
    "flashinfer": (supports_flashinfer, _flashinfer_here, _flashinfer),
    "fla": (supports_fla, _fla_here, _fla),
    "vllm": (supports_vllm, _vllm_here, _vllm),
}


def _entry(name: str):
    if name not in _TABLE:
        raise SpecError(f"argument 'impl': expected one of {', '.join(PEERS)}, got {name!r}")
    return _TABLE[name]


def supports(name: str, member: Member) -> str | None:
    """Why peer ``name``'s API cannot run ``member`` (phrased for a table note), or None."""
    return _entry(name)[0](member)


def why_not(name: str, member: Member) -> str | None:
    """Why peer ``name`` cannot run ``member`` here: its API (:func:`supports`), then its
    package; None if it can."""
    supported, here, _ = _entry(name)
    return supported(member) or here(member)


def peer(name: str, member: Member):
    """Peer ``name`` for ``member`` in the family's calling convention; a
    :class:`~decodekit.problem.spec.SpecError` naming the argument if it cannot run it."""
    why = why_not(name, member)
    if why is not None:
        raise SpecError(f"argument 'impl': {name} cannot run {member.name}: {why}")
    return _entry(name)[2](member)
