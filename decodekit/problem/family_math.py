"""The family's math: :func:`decode` (fp64, the oracle; fp32, the torch reference) and
:func:`reference`, the fp32 torch reference as an implementation. The formulas are those of
:mod:`decodekit.problem.family`'s docstring, per value head and token, with the state held
in the same layouts (dense or a pool read through slot indices).

>>> from decodekit.problem.family import SERVING, cases, make_inputs
>>> x = make_inputs(cases(SERVING[0], (2,))[0])
>>> decode(SERVING[0], x["q"], x["k"], x["v"], x["state"], x["A_log"], x["a"],
...        x["dt_bias"], x["b"], state_indices=x["state_indices"])[0].shape
torch.Size([2, 1, 8, 128])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from decodekit.problem.family import (
    L2_EPS,
    Member,
    check_intermediate_states,
    validate_indices,
)
from decodekit.problem.spec import resolve_scale


def _l2(x, on: bool):
    return x * torch.rsqrt((x * x).sum(-1, keepdim=True) + L2_EPS) if on else x


def decode(member: Member, q, k, v, state, A_log, a, dt_bias, b, scale=None,
           state_indices=None, *, dtype=torch.float64,
           intermediates: bool = False) -> tuple:  # fmt: skip
    """The family's math in ``dtype`` (float64: the oracle; float32: the torch reference).

    Returns ``(output [B, T, HV, V], state_out)``: ``state_out`` the new dense state
    ``[B, HV, V, K]``, or for a pool a copy of the pool with the live slots updated (padding
    rows output 0 and touch nothing): the state after the T tokens whatever ``member.update``
    says (a member that does not update stores none of it). ``intermediates=True`` returns
    ``(output, state_out, states [B, T, HV, V, K])`` too: row b's state after each token t,
    by batch row (a padding row's are zeros). Stored back in the state's dtype only by
    callers."""
    B, T = q.shape[0], q.shape[1]
    rep = member.v_heads // member.qk_heads
    scale = resolve_scale(scale)
    if member.layout == "pool":
        live = torch.nonzero(state_indices >= 0).flatten()
        S = state[state_indices[live].long()].to(dtype)
    else:
        live = torch.arange(B, device=q.device)
        S = state.to(dtype)
    out = torch.zeros(B, T, member.v_heads, member.head_size, dtype=dtype, device=q.device)
    if intermediates:
        inter = torch.zeros(B, T, *S.shape[1:], dtype=dtype, device=q.device)
    A = torch.exp(A_log.to(dtype))
    for t in range(T):
        qh = _l2(q[live, t].to(dtype), member.l2norm).repeat_interleave(rep, dim=1)
        kh = _l2(k[live, t].to(dtype), member.l2norm).repeat_interleave(rep, dim=1)
        g = torch.exp(-A * F.softplus(a[live, t].to(dtype) + dt_bias.to(dtype)))
        beta = torch.sigmoid(b[live, t].to(dtype))
        S = g[..., None, None] * S
        delta = beta[..., None] * (v[live, t].to(dtype) - torch.einsum("bhvk,bhk->bhv", S, kh))
        S = S + delta[..., :, None] * kh[..., None, :]
        out[live, t] = scale * torch.einsum("bhvk,bhk->bhv", S, qh)
        if intermediates:
            inter[live, t] = S
    if member.layout == "pool":
        new = state.to(dtype).clone()
        new[state_indices[live].long()] = S
        S = new
    return (out, S, inter) if intermediates else (out, S)


def reference(member: Member):
    """The torch fp32 reference of ``member`` as an implementation: writes ``output``, the
    state (``new_state``; for a pool, the pool in place) unless the member leaves it as it
    was, and an intermediate member's ``intermediate_states`` (live rows only), in the
    member's dtypes."""

    def run(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state, state_indices=None,
            intermediate_states=None):  # fmt: skip
        if state_indices is not None:
            validate_indices(state_indices, state.shape[0])
        check_intermediate_states(member, intermediate_states, q.shape[0])
        o, s, *inter = decode(member, q, k, v, state, A_log, a, dt_bias, b, scale,
                              state_indices, dtype=torch.float32,
                              intermediates=member.intermediate)  # fmt: skip
        output.copy_(o.to(output.dtype))
        if member.layout == "pool":
            rows = torch.nonzero(state_indices >= 0).flatten()
            slots = state_indices[rows].long()
        else:
            rows = slots = torch.arange(q.shape[0], device=q.device)
        if member.intermediate:
            intermediate_states[rows] = inter[0][rows].to(intermediate_states.dtype)
        if member.update:
            new_state[slots] = s[slots].to(new_state.dtype)

    return run
