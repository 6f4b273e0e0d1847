"""The workload manifest and deterministic inputs drawn from each workload's uuid.

The manifest (``data/workloads/gdn_decode_qk4_v8_d128_k_last.jsonl``) is the only list of
contest workloads. Any other batch size is a synthetic workload named ``B<n>``.

>>> len(select("contest")), len(select("representative"))
(54, 8)
>>> [w.name for w in select("B1,B3")]
['B1', 'B3']
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from decodekit.base.paths import ROOT, manifest_dir  # noqa: E402,F401
from decodekit.problem.spec import DEFINITION, HEAD_SIZE, NUM_Q_HEADS, NUM_V_HEADS, SpecError

MANIFEST = manifest_dir() / f"{DEFINITION.name}.jsonl"
PROFILES = ("random", "extreme")


@dataclass(frozen=True)
class Workload:
    uuid: str
    batch_size: int
    representative: bool = False
    trace: str | None = (
        None  # JSON of a flashinfer-trace workload's inputs (decodekit.problem.trace)
    )

    @property
    def name(self) -> str:
        """Short label: the uuid's first 8 characters, or ``B<n>`` for synthetic ones."""
        return self.uuid if self.uuid.startswith("B") else self.uuid[:8]

    @property
    def synthetic(self) -> bool:
        return self.uuid.startswith("B")


def synthetic(batch_size: int) -> Workload:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise SpecError(f"argument 'batch_size': expected an int >= 1, got {batch_size!r}")
    return Workload(uuid=f"B{batch_size}", batch_size=batch_size)


@lru_cache(maxsize=4)
def load_manifest(path: str | Path = MANIFEST) -> tuple[Workload, ...]:
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return tuple(
        Workload(r["uuid"], int(r["batch_size"]), bool(r.get("representative"))) for r in rows
    )


def select(which: str | Iterable = "representative") -> list[Workload]:
    """Workloads by name: ``contest`` (all 54), ``representative`` (8), a uuid or its prefix,
    batch sizes ``"B1,B3,17"``, ``"trace:/path/to/flashinfer-trace"`` (a dataset folder), or a
    list mixing ints, uuids and Workloads."""
    if isinstance(which, Workload):
        return [which]
    if isinstance(which, int):
        return [synthetic(which)]
    if isinstance(which, str):
        if which == "contest":
            return list(load_manifest())
        if which == "representative":
            return [w for w in load_manifest() if w.representative]
        if which.startswith("trace:"):
            from decodekit.problem.trace import load

            return [Workload(u, b, trace=t) for u, b, t in load(which[len("trace:") :])]
        parts = [p.strip() for p in which.split(",") if p.strip()]
        if not parts:
            raise SpecError(
                "argument 'workloads': expected contest, representative or B1,B3,...; got ''"
            )
        return [w for p in parts for w in _one(p)]
    return [w for item in which for w in select(item)]


def _one(token: str) -> list[Workload]:
    t = token[1:] if token[:1] in "Bb" and token[1:].isdigit() else token
    if t.isdigit():
        return [synthetic(int(t))]
    hits = [w for w in load_manifest() if w.uuid.startswith(token)]
    if not hits:
        raise SpecError(
            f"argument 'workloads': {token!r} is not contest, representative, a batch size "
            "(B3) or a uuid in the manifest"
        )
    return hits


def seed_of(uuid: str) -> int:
    """A 63-bit seed derived from the uuid (stable across machines and runs).

    >>> seed_of("B1") == seed_of("B1")
    True
    """
    return int.from_bytes(hashlib.sha256(uuid.encode()).digest()[:8], "little") >> 1


def make_inputs(
    workload: Workload | int,
    device: str | torch.device = "cpu",
    *,
    profile: str = "random",
    seed: int | None = None,
) -> dict:
    """Inputs of one call, drawn on the CPU from the workload's seed, then moved to ``device``.

    ``random``: q, v ~ N(0, 1); k ~ N(0, 1)/sqrt(128) (unit-norm scale); state ~ N(0, 0.3);
    gates spread so that the decay g covers (0, 1) and beta covers (0, 1).
    ``extreme``: decay near 0 on some heads and near 1 on others, beta near 0 and 1, and
    state values in the hundreds.
    """
    w = synthetic(workload) if isinstance(workload, int) else workload
    if profile not in PROFILES:
        raise SpecError(f"argument 'profile': expected one of {PROFILES}, got {profile!r}")
    gen = torch.Generator().manual_seed(seed_of(w.uuid) if seed is None else seed)
    B, H, Hk, D = w.batch_size, NUM_V_HEADS, NUM_Q_HEADS, HEAD_SIZE

    def randn(*shape, std=1.0):
        return torch.randn(*shape, generator=gen) * std

    def unif(lo, hi, *shape):
        return lo + (hi - lo) * torch.rand(*shape, generator=gen)

    q = randn(B, 1, Hk, D)
    k = randn(B, 1, Hk, D, std=D**-0.5)
    v = randn(B, 1, H, D)
    if profile == "random":
        state = randn(B, H, D, D, std=0.3)
        A_log = unif(-1.0, 1.5, H)
        dt_bias = unif(-2.0, 1.0, H)
        a = randn(B, 1, H, std=2.0)
        b = randn(B, 1, H, std=2.0)
    else:
        state = randn(B, H, D, D, std=100.0)
        # even heads decay to ~0 (g ~ e^-200), odd heads keep ~everything (g ~ 1 - 1e-6)
        A_log = torch.tensor([3.0, -8.0] * (H // 2))
        dt_bias = torch.tensor([10.0, -10.0] * (H // 2))
        a = randn(B, 1, H, std=0.5) + torch.tensor([30.0, -10.0] * (H // 2))
        b = torch.where(torch.rand(B, 1, H, generator=gen) < 0.5, -12.0, 12.0) + randn(B, 1, H)
    bf = torch.bfloat16
    tensors = dict(
        q=q.to(bf),
        k=k.to(bf),
        v=v.to(bf),
        state=state.float(),
        A_log=A_log.float(),
        a=a.to(bf),
        dt_bias=dt_bias.float(),
        b=b.to(bf),
    )
    out = {name: t.to(device) for name, t in tensors.items()}
    out["scale"] = None
    if w.trace is not None:
        from decodekit.problem.trace import materialize

        out = materialize(w, out, device)
    return out


def empty_outputs(batch_size: int, device: str | torch.device = "cpu", poison: bool = True) -> dict:
    """Output buffers, filled with NaN when ``poison`` so unwritten elements fail the check."""
    out = {}
    for t in DEFINITION.outputs:
        x = torch.empty(DEFINITION.shape(t.name, batch_size), dtype=t.dtype, device=device)
        out[t.name] = x.fill_(float("nan")) if poison else x
    return out
