"""Checks of the family's contracts (:mod:`decodekit.problem.family`), and the drift of a state fed
back over many steps.

:func:`check` runs an implementation on a case's seeded inputs with NaN-poisoned outputs and
asks, besides the fp64 comparison of the output and of every live slot (in fp64 on the
device the call ran on, oracle included): are the pool slots
no index names bit-identical after the call (nothing lost)? Do padding rows give zero output?
Bad indices (out of range, a live slot named twice) are rejected before the call.

A verify member (T > 1) that writes every token's state (``member.intermediate``) gets a
NaN-poisoned ``intermediate_states`` buffer ``[B, T, HV, V, K]``: every live row's T states
are compared with the fp64 ones (the state's tolerance), and a padding row's must be left
as they were (still NaN). One that leaves the state as it was (``member.update`` False) must
leave the whole state (the pool) bit-identical, and its ``new_state`` is not compared.

An implementation that parks padding rows in the pool's null slot (FlashInfer's bf16-state
kernel sends ``-1`` to slot 0, reads and writes it and leaves the row's output undefined)
says so with ``impl.padding_uses_null_slot = True``: on a case with a null slot
(:class:`decodekit.problem.family.Case`) that slot leaves the bit-identical test and padding
rows the zero-output test (and the untouched-intermediate-rows test), and the result's
``notes`` say so; on a case without one (slot 0 may be a live request's) the check refuses it
before the call. A member that does not update keeps the whole pool, null slot included.

:func:`drift` feeds the implementation's own ``new_state`` back for ``steps`` calls with fresh
tokens each step and reports, per step, the relative error of its state and output against
the fp64 trajectory from the same start: fp32 and bf16 state side by side.

>>> from decodekit.problem.family import Member, cases
>>> from decodekit.problem.family_math import reference
>>> m = Member(4, 8, layout="pool")
>>> check(reference(m), cases(m, (8,))[0]).passed
True
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache

import pandas as pd
import torch

from decodekit.measure.check import TOLERANCES, TensorReport, compare
from decodekit.problem.family import Case, Member, make_inputs, validate_indices
from decodekit.problem.family_math import decode
from decodekit.problem.spec import SpecError

BF16_STATE_REL = 1e-2  # a bf16 state rounds every element to 8 bits of mantissa


@dataclass
class FamilyResult:
    case: Case
    reports: list[TensorReport] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)  # broken contracts
    notes: list[str] = field(default_factory=list)  # contracts relaxed as the impl declared
    error: str | None = None
    inputs: dict | None = None  # the seeded inputs it ran on (decodekit.measure times them)

    @property
    def passed(self) -> bool:
        ok = all(r.passed for r in self.reports)
        return self.error is None and bool(self.reports) and ok and not self.findings

    def summary(self) -> str:
        head = f"{self.case.member.name} B={self.case.batch_size}: "
        if self.error:
            return head + f"ERROR {self.error}"
        notes = [f"note: {n}" for n in self.notes]
        return head + "; ".join([*(r.summary() for r in self.reports), *self.findings, *notes])


def _outputs(case: Case, inputs: dict) -> dict:
    """The call's destinations, NaN-poisoned: ``output``, ``new_state`` (a pool: the pool
    itself) and, for a member that writes every token's state, ``intermediate_states``."""
    m = case.member
    dev = inputs["q"].device
    B = case.batch_size
    out = torch.full(m.output_shape(B), float("nan"), dtype=torch.bfloat16, device=dev)
    if m.layout == "pool":
        dests = {"output": out, "new_state": inputs["state"]}  # in place
    else:
        dests = {"output": out, "new_state": torch.full_like(inputs["state"], float("nan"))}
    if m.intermediate:
        dests["intermediate_states"] = torch.full(
            m.intermediate_shape(B), float("nan"), dtype=m.dtype, device=dev
        )
    return dests


@lru_cache(maxsize=1)
def oracle(case: Case, device: str = "cpu") -> tuple[torch.Tensor, ...]:
    """The fp64 output and state of ``case``'s seeded call (and an intermediate member's
    states after every token, a third element), computed in fp64 on ``device``
    (:func:`make_inputs` draws the same inputs on every device); the last case's is kept, so
    a sweep (every tuning candidate on one case, then the next) computes it once per case.
    Callers only read it."""
    m = case.member
    return decode(m, **_drawn(case, device), intermediates=m.intermediate)  # reads, no writes


@lru_cache(maxsize=1)
def _drawn(case: Case, device: str) -> dict:
    return make_inputs(case, device)


def fresh_inputs(case: Case, device: str = "cpu") -> dict:
    """:func:`make_inputs` of ``case`` on ``device``: drawn once per case and device (a pool
    of a gigabyte takes seconds to draw on the CPU) and handed out as copies, so every call
    gets the same seeded bytes and none sees what another wrote."""
    x = _drawn(case, str(torch.device(device)))
    return {n: t.clone() if isinstance(t, torch.Tensor) else t for n, t in x.items()}


def check(impl, case: Case, device: str = "cpu") -> FamilyResult:
    m = case.member
    inputs = fresh_inputs(case, device)
    res = FamilyResult(case, inputs=inputs)
    idx = inputs["state_indices"]
    if idx is not None:
        try:
            validate_indices(idx, case.pool_size)
        except SpecError as e:
            res.error = str(e)
            return res
    # the slot left to the impl's padding rows (None: the full contract)
    parks = bool(getattr(impl, "padding_uses_null_slot", False)) and case.padding > 0
    null = case.null_slot if parks else None
    if parks and null is None:
        res.error = (
            f"argument 'impl': declares padding_uses_null_slot, but case B={case.batch_size} "
            f"({case.uuid}) has {case.padding} padding rows and no null slot: they would land "
            "in a slot a request may own"
        )
        return res
    dev = torch.device(device)
    ref_out, ref_state, *ref_inter = oracle(case, str(dev))
    before = inputs["state"].clone()
    dests = _outputs(case, inputs)
    try:
        impl(**inputs, **dests)
        if str(device).startswith("cuda"):
            torch.cuda.synchronize()
    except Exception as e:  # the implementation's failure is the check's finding
        res.error = f"{type(e).__name__}: {e}"
        return res
    state_rel = BF16_STATE_REL if m.bf16 else TOLERANCES.state_rel
    # on the device the call ran on: a pool of gigabytes is compared where it lies
    out, state = dests["output"], dests["new_state"]
    rows = torch.arange(case.batch_size, device=dev)  # the live batch rows; dense: all
    if not m.update:  # outputs only: the state (the pool) as it was, null slot included
        if not torch.equal(inputs["state"], before):
            changed = (inputs["state"] != before).flatten(1).any(1).sum()
            res.findings.append(
                f"{int(changed)} state slots were written by a call that does not update"
            )
    if idx is not None:
        idx = idx.long()
        live, pad = idx[idx >= 0], torch.nonzero(idx < 0).flatten()
        rows = torch.nonzero(idx >= 0).flatten()
        untouched = torch.ones(case.pool_size, dtype=torch.bool, device=dev)
        untouched[live] = False
        if null is not None:
            untouched[null] = False
            # a call that does not update keeps the slot checked with the rest of the pool
            what = [*(["the slot"] if m.update else []), "their output",
                    *(["intermediate states"] if m.intermediate else [])]  # fmt: skip
            res.notes.append(
                f"padding rows {pad.tolist()} use null slot {null} (padding_uses_null_slot): "
                f"not checked: {', '.join(what)}"
            )
        if m.update and not torch.equal(state[untouched], before[untouched]):
            changed = torch.nonzero((state[untouched] != before[untouched]).flatten(1).any(1))
            res.findings.append(f"{len(changed)} pool slots no index names were written")
        if len(pad) and null is None and not (out[pad] == 0).all():
            res.findings.append(f"padding rows {pad.tolist()} gave a non-zero output")
        if m.intermediate and len(pad) and null is None:
            written = ~dests["intermediate_states"][pad].flatten(1).isnan().all(1)
            if written.any():
                res.findings.append(
                    f"padding rows {pad[written].tolist()} wrote intermediate states"
                )
        slots = live
    else:
        slots = rows
    res.reports = [compare("output", out[rows], ref_out[rows], TOLERANCES.output_rel, on=dev)]
    if m.update:
        res.reports.append(compare("new_state", state[slots], ref_state[slots], state_rel, on=dev))
    if m.intermediate:
        got = dests["intermediate_states"][rows]
        res.reports.append(compare("intermediate_states", got, ref_inter[0][rows], state_rel,
                                   on=dev))  # fmt: skip
    return res


def drift(impl_for, member: Member, *, batch_size: int = 4, steps: int = 256,
          device: str = "cpu", state_dtypes: tuple[str, ...] = ("float32", "bfloat16"),
          ) -> pd.DataFrame:  # fmt: skip
    """Per step: relative error of the state and the output of ``impl_for(member)`` fed its
    own state back, against the fp64 trajectory. A dense member of the same heads and T that
    writes its final state only (a verify call's intermediate states and the choice not to
    update change no math), fp32 and bf16 state side by side (``state_dtype`` column), or
    only those of ``state_dtypes`` (a build that exists for one of them)."""
    from decodekit.problem.family import STATE_DTYPES, cases

    bad = [d for d in state_dtypes if d not in STATE_DTYPES]
    if bad or not state_dtypes:
        raise ValueError(
            f"argument 'state_dtypes': expected some of {STATE_DTYPES}, got {state_dtypes!r}"
        )
    rows = []
    for dt in state_dtypes:
        m = replace(member, state_dtype=dt, layout="dense", intermediate=False, update=True)
        case = cases(m, (batch_size,))[0]
        fn = impl_for(m)
        first = make_inputs(case, device)
        state = first["state"].clone()
        exact = state.to(torch.float64).cpu()
        for step in range(steps):
            x = make_inputs(case, device, step=step) if step else first
            x = {**x, "state": state}
            out = torch.empty(m.output_shape(batch_size), dtype=torch.bfloat16, device=device)
            new = torch.empty_like(state)
            fn(**x, output=out, new_state=new)
            ref_out, exact = decode(m, **{**{n: _cpu(v) for n, v in x.items()}, "state": exact})
            state = new
            rows.append(dict(
                step=step + 1, state_dtype=dt,
                state_rel=_rel(new.cpu().double(), exact), output_rel=_rel(out.cpu().double(), ref_out),
            ))  # fmt: skip
    return pd.DataFrame(rows)


def _rel(x: torch.Tensor, ref: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(x - ref) / torch.linalg.vector_norm(ref).clamp_min(1e-30))


def _cpu(x):
    return x.cpu() if isinstance(x, torch.Tensor) else x
