"""The GDN decode math in plain torch: fp32 (the at-scale check) and fp64 (the oracle).

Per batch row ``b`` and value head ``h`` (q/k head ``j = h // 2``)::

    g     = exp(-exp(A_log[h]) * softplus(a[b,0,h] + dt_bias[h]))
    beta  = sigmoid(b[b,0,h])
    S     = g * state[b, h]                   # [V, K]
    delta = beta * (v[b,0,h] - S @ k[b,0,j])
    S_new = S + outer(delta, k[b,0,j])
    out   = scale * (S_new @ q[b,0,j])

>>> from decodekit.problem.workloads import make_inputs
>>> out, new_state = gdn_decode(**make_inputs(2))
>>> tuple(out.shape), out.dtype, tuple(new_state.shape)
((2, 1, 8, 128), torch.bfloat16, (2, 8, 128, 128))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from decodekit.problem.spec import HEAD_SIZE, NUM_Q_HEADS, NUM_V_HEADS, resolve_scale


def gates(A_log, a, dt_bias, b, dtype=torch.float32):
    """Decay ``g`` and update gate ``beta``, each ``[B, H]`` in ``dtype``."""
    x = a[:, 0].to(dtype) + dt_bias.to(dtype)
    g = torch.exp(-torch.exp(A_log.to(dtype)) * F.softplus(x))
    beta = torch.sigmoid(b[:, 0].to(dtype))
    return g, beta


def gdn_decode(
    q, k, v, state, A_log, a, dt_bias, b, scale=None, *, dtype=torch.float32, round_output=True
):
    """One decode step, vectorised over batch and heads.

    Returns ``(output, new_state)``: output ``[B, 1, 8, 128]`` (bf16 when ``round_output``,
    else ``dtype``), new_state ``[B, 8, 128, 128]`` k-last in ``dtype``. ``state=None`` means
    zeros; ``scale`` 0 or None means ``1/sqrt(128)``.
    """
    B = q.shape[0]
    rep = NUM_V_HEADS // NUM_Q_HEADS
    with _no_tf32():
        qh = q[:, 0].to(dtype).repeat_interleave(rep, dim=1)  # [B, H, K]
        kh = k[:, 0].to(dtype).repeat_interleave(rep, dim=1)  # [B, H, K]
        vh = v[:, 0].to(dtype)  # [B, H, V]
        if state is None:
            S = torch.zeros(B, NUM_V_HEADS, HEAD_SIZE, HEAD_SIZE, dtype=dtype, device=q.device)
        else:
            S = state.to(dtype)
        g, beta = gates(A_log, a, dt_bias, b, dtype)
        S = g[..., None, None] * S  # [B, H, V, K]
        u = torch.einsum("bhvk,bhk->bhv", S, kh)
        delta = beta[..., None] * (vh - u)
        S_new = S + delta[..., :, None] * kh[..., None, :]
        out = resolve_scale(scale) * torch.einsum("bhvk,bhk->bhv", S_new, qh)
    out = out[:, None]  # [B, 1, H, V]
    if round_output:
        out = out.to(torch.bfloat16)
    return out, S_new


def gdn_decode_oracle(q, k, v, state, A_log, a, dt_bias, b, scale=None):
    """The fp64 oracle: ``(output, new_state)`` both float64, output not rounded."""
    return gdn_decode(
        q, k, v, state, A_log, a, dt_bias, b, scale, dtype=torch.float64, round_output=False
    )


def gdn_decode_loop(q, k, v, state, A_log, a, dt_bias, b, scale=None, dtype=torch.float64):
    """The definition written literally, one (batch, value head) at a time, on the inputs'
    device. Tests prove the vectorised form equals it; the ``torch-loop`` baseline times it
    in fp32 as the contest's reference. Slow by design."""
    B, H, D, dev = q.shape[0], NUM_V_HEADS, HEAD_SIZE, q.device
    scale = resolve_scale(scale)
    out = torch.empty(B, 1, H, D, dtype=dtype, device=dev)
    new_state = torch.empty(B, H, D, D, dtype=dtype, device=dev)
    with _no_tf32():
        for bi in range(B):
            for h in range(H):
                j = h // 2
                x = a[bi, 0, h].to(dtype) + dt_bias[h].to(dtype)
                g = torch.exp(-torch.exp(A_log[h].to(dtype)) * F.softplus(x))
                beta = torch.sigmoid(b[bi, 0, h].to(dtype))
                if state is None:
                    S = torch.zeros(D, D, dtype=dtype, device=dev)
                else:
                    S = state[bi, h].to(dtype)
                S = g * S
                kj, qj = k[bi, 0, j].to(dtype), q[bi, 0, j].to(dtype)
                delta = beta * (v[bi, 0, h].to(dtype) - S @ kj)
                S_new = S + torch.outer(delta, kj)
                out[bi, 0, h] = scale * (S_new @ qj)
                new_state[bi, h] = S_new
    return out, new_state


class _no_tf32:
    """Turn TF32 off for the block (reference math is true fp32)."""

    def __enter__(self):
        self._mm = torch.backends.cuda.matmul.allow_tf32
        self._cd = torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False

    def __exit__(self, *exc):
        torch.backends.cuda.matmul.allow_tf32 = self._mm
        torch.backends.cudnn.allow_tf32 = self._cd
