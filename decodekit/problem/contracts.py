"""Calling contracts: how a caller hands the state to an implementation.

Every implementation is called as ``impl(q, k, v, state, A_log, a, dt_bias, b, scale, output,
new_state)``; a contract says which buffers those names are bound to:

===========  ==========================================================================
contract     binding
===========  ==========================================================================
``dps``      destination-passing, the contest's definition: ``new_state`` is a separate
             buffer and ``state`` is left as it was
``inplace``  ``new_state`` *is* ``state``: the implementation updates the state where it
             lies (FlashInfer's and the serving engines' dense call)
``pool``     in place through a state pool and per-request slot indices (FlashInfer's
             ``initial_state`` + ``initial_state_indices``); here a pool of ``B`` slots
             with identity indices, so the bytes moved are the same as ``inplace``
===========  ==========================================================================

An implementation declares the contracts it supports (:class:`decodekit.impls.registry.Impl`);
records carry the one they were measured in, and tables never put two contracts in one row.

>>> import torch
>>> s = torch.ones(1, 8, 128, 128)
>>> kw = bind("inplace", {"state": s}, {"output": None, "new_state": torch.empty_like(s)})
>>> kw["state"] is kw["new_state"], kw["state"] is s
(True, False)
"""

from __future__ import annotations

CONTRACTS = ("dps", "inplace", "pool")
IN_PLACE = ("inplace", "pool")


def check_contract(contract: str) -> str:
    if contract not in CONTRACTS:
        raise ValueError(f"argument 'contract': expected one of {CONTRACTS}, got {contract!r}")
    return contract


def bind(contract: str, inputs: dict, outputs: dict) -> dict:
    """Keyword arguments of one call under ``contract``: ``inputs`` are never written (an
    in-place contract gets a copy of ``state``, which it then updates)."""
    check_contract(contract)
    if contract == "dps":
        return {**inputs, **outputs}
    s = inputs.get("state")
    state = s.clone() if s is not None else outputs["new_state"].zero_()  # no state: zeros
    return {**inputs, "state": state, "output": outputs["output"], "new_state": state}
