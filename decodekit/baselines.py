"""Baselines in the registry: the torch fp32 reference, FLA's Triton decode, FlashInfer.

Optional dependencies are looked up lazily; a missing one makes the baseline unavailable
with a message (``Impl.unavailable()``), never an import error.
"""

from __future__ import annotations

import importlib.util

import torch

from decodekit.reference import gdn_decode
from decodekit.registry import Impl, register
from decodekit.spec import resolve_scale


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
        description="decodekit.reference in fp32 torch ops (vectorised; many small kernels)",
    )
)


def _missing(module: str, pip: str):
    def why():
        if importlib.util.find_spec(module) is None:
            return f"package {module!r} not installed (pip install {pip})"
        return None

    return why


def _fla():
    from fla.ops.gated_delta_rule import fused_recurrent_gated_delta_rule

    def run(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state):
        # fla-core 0.6.0 computes this exact definition in one Triton kernel: raw a as g and
        # raw b as beta, with the gate and the sigmoid fused; state_v_first means [B,H,V,K].
        init = state if state is not None else torch.zeros_like(new_state)
        o, s = fused_recurrent_gated_delta_rule(
            q=q,
            k=k,
            v=v,
            g=a,
            beta=b,
            scale=resolve_scale(scale),
            initial_state=init,
            output_final_state=True,
            use_qk_l2norm_in_kernel=False,
            use_gate_in_kernel=True,
            A_log=A_log,
            dt_bias=dt_bias,
            use_beta_sigmoid_in_kernel=True,
            state_v_first=True,
        )
        output.copy_(o)
        new_state.copy_(s)

    return run


register(
    Impl(
        name="fla",
        kind="baseline",
        factory=_fla,
        requires=_missing("fla", "fla-core==0.6.0"),
        description="flash-linear-attention fused_recurrent_gated_delta_rule (Triton, fla-core 0.6.0)",
    )
)
