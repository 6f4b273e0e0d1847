"""Baselines in the registry: the torch fp32 reference, FLA's Triton decode, FlashInfer.

Optional dependencies are looked up lazily; a missing one makes the baseline unavailable
with a message (``Impl.unavailable()``), never an import error.
"""

from __future__ import annotations

import importlib
import importlib.util

import torch

from decodekit.impls.impl import Impl, register
from decodekit.problem.reference import gdn_decode, gdn_decode_loop
from decodekit.problem.spec import resolve_scale


def _torch_fp32():
    def run(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state):
        o, s = gdn_decode(q, k, v, state, A_log, a, dt_bias, b, scale)
        output.copy_(o)
        new_state.copy_(s)

    return run


register(
    Impl(
        name="torch-fp32",
        kind="baseline",
        device="any",
        factory=_torch_fp32,
        inplace_ok=True,
        kernels_per_call=None,  # many small torch kernels by design
        description="decodekit.problem.reference in fp32 torch ops (vectorised; many small kernels)",
    )
)


def _torch_loop():
    def run(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state):
        # The definition as the contest's reference runs it: a Python loop over batch rows
        # and value heads, fp32 torch ops on the inputs' device, one small kernel per step.
        o, s = gdn_decode_loop(q, k, v, state, A_log, a, dt_bias, b, scale, dtype=torch.float32)
        output.copy_(o)
        new_state.copy_(s)

    return run


register(
    Impl(
        name="torch-loop",
        kind="baseline",
        device="any",
        factory=_torch_loop,
        inplace_ok=True,
        kernels_per_call=None,
        description="the definition's literal per-(batch, head) loop in fp32 torch: the contest's reference",
    )
)


def _missing(module: str, pip: str):
    def why():
        if importlib.util.find_spec(module) is None:
            return f"package {module!r} not installed (pip install {pip})"
        return None

    return why


def _fla():
    import triton
    from fla.ops.gated_delta_rule.fused_recurrent import (
        fused_recurrent_gated_delta_rule_fwd_kernel as kernel,
    )

    def run(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state):
        # The launch of fla-core 0.6.0's fused_recurrent_gated_delta_rule_fwd (gate and beta
        # sigmoid fused, state_v_first = k-last [B, H, V, K]) with the kit's destination
        # buffers as o and ht, so FLA's one Triton kernel is timed without extra copies.
        B, T, H, K = k.shape
        HV, V = v.shape[2], v.shape[3]
        BV = min(8, triton.next_power_of_2(V))
        kernel[(triton.cdiv(V, BV) * B * HV,)](
            q=q, k=k, v=v, g=a, gk=None, gv=None, beta=b, A_log=A_log, dt_bias=dt_bias,
            o=output, h0=state, ht=new_state, cu_seqlens=None, scale=resolve_scale(scale),
            T=T, H=H, HV=HV, K=K, V=V, BK=triton.next_power_of_2(K), BV=BV,
            IS_BETA_HEADWISE=b.ndim != v.ndim, USE_QK_L2NORM_IN_KERNEL=False,
            APPLY_BETA_SIGMOID=True, ALLOW_NEG_EIGVAL=False, STATE_V_FIRST=True,
            num_warps=1, num_stages=3,
        )  # fmt: skip

    return run


register(
    Impl(
        name="fla",
        kind="baseline",
        factory=_fla,
        requires=_missing("fla", "fla-core==0.6.0"),
        probe=True,
        description="flash-linear-attention fused_recurrent_gated_delta_rule kernel (Triton, fla-core 0.6.0), writing the kit's buffers",
        meta={"ncu_kernel": "fused_recurrent"},
    )
)


def _flashinfer_decode():
    from flashinfer.gdn_decode import gated_delta_rule_decode_pretranspose

    return gated_delta_rule_decode_pretranspose


def _flashinfer():
    decode = _flashinfer_decode()

    def run(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state):
        # As FlashInfer's users call it: the dense k-last state [B, HV, V, K] updated in
        # place (the contract "inplace": new_state is state), one decode kernel per call.
        decode(
            q, k, v, new_state, A_log, a, dt_bias, b, scale=resolve_scale(scale),
            output=output, use_qk_l2norm=False,
        )  # fmt: skip

    return run


def _flashinfer_pool():
    decode = _flashinfer_decode()
    slots: dict = {}  # (B, device) -> identity slot indices, made once outside the timing

    def run(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state):
        # FlashInfer's pool API as vLLM and SGLang call it: the state pool with per-request
        # slot indices, updated in place; a pool of B slots with identity indices here.
        key = (q.shape[0], q.device)
        idx = slots.get(key)
        if idx is None:
            idx = slots[key] = torch.arange(q.shape[0], dtype=torch.int32, device=q.device)
        decode(
            q, k, v, None, A_log, a, dt_bias, b, scale=resolve_scale(scale), output=output,
            use_qk_l2norm=False, initial_state=new_state, initial_state_indices=idx,
        )  # fmt: skip

    return run


def _flashinfer_missing():
    if importlib.util.find_spec("flashinfer") is None:
        return "package 'flashinfer' not installed (pip install flashinfer-python)"
    try:
        mod = importlib.import_module("flashinfer.gdn_decode")
    except Exception as e:  # its CuTe DSL kernels need a supported GPU and cutlass
        return f"flashinfer.gdn_decode unavailable here: {type(e).__name__}: {e}"
    if not getattr(mod, "_PRETRANSPOSE_AVAILABLE", True):
        return (
            "FlashInfer's CuTe DSL decode kernel did not import "
            "(flashinfer.gdn_decode._PRETRANSPOSE_AVAILABLE is False: is nvidia-cutlass-dsl "
            "installed and cutlass.cute importable?)"
        )
    return None


for _name, _factory, _contract, _how in (
    ("flashinfer", _flashinfer, "inplace", "dense k-last state updated in place"),
    ("flashinfer-pool", _flashinfer_pool, "pool", "state pool + slot indices, in place"),
):
    register(
        Impl(
            name=_name,
            kind="baseline",
            factory=_factory,
            requires=_flashinfer_missing,
            inplace_ok=True,
            contracts=(_contract,),
            probe=True,
            description=f"FlashInfer gated_delta_rule_decode_pretranspose (CuTe DSL), {_how}",
            meta={"ncu_kernel": "gdn"},
        )
    )
