"""Every implementation, kit kernel or baseline, behind one calling convention.

Destination-passing: ``impl(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state)``
writes ``output`` [B, 1, 8, 128] bf16 and ``new_state`` [B, 8, 128, 128] fp32 (k-last) on the
inputs' device and returns nothing. ``impl.allocating(...)`` returns ``(output, new_state)``.

Kit kernels come from :mod:`decodekit.variants` (one entry per ``kernels/*.cu``); baselines
from :mod:`decodekit.baselines`. Benches, checks, NCU runs and reports list implementations
here and never name one in their own code.

>>> "torch-fp32" in names()
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from decodekit.spec import DEFINITION


@dataclass
class Impl:
    name: str
    kind: str  # "kernel" (kit variant in kernels/) or "baseline"
    description: str
    factory: Callable[[], Callable]  # builds the DPS callable (compiles, imports) on first use
    parent: str | None = None
    source: str | None = None  # kernels/<file>.cu for kit variants
    inplace_ok: bool = False  # new_state may alias state
    device: str = "cuda"  # where it runs: "cuda" or "any"
    requires: Callable[[], str | None] = lambda: None  # reason it cannot run here, or None
    meta: dict = field(default_factory=dict)
    _fn: Callable | None = field(default=None, repr=False)

    def unavailable(self) -> str | None:
        """Why this implementation cannot run here (missing GPU or package), or None."""
        if self.device == "cuda" and not torch.cuda.is_available():
            return "no CUDA GPU visible (torch.cuda.is_available() is False)"
        return self.requires()

    @property
    def fn(self) -> Callable:
        if self._fn is None:
            why = self.unavailable()
            if why:
                raise RuntimeError(f"implementation {self.name!r} cannot run here: {why}")
            self._fn = self.factory()
        return self._fn

    def __call__(self, q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state):
        # the hot path of every timed call: one attribute read once built
        fn = self._fn or self.fn
        return fn(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state)

    def allocating(self, q, k, v, state, A_log, a, dt_bias, b, scale=None):
        B = q.shape[0]
        output = torch.empty(DEFINITION.shape("output", B), dtype=torch.bfloat16, device=q.device)
        new_state = torch.empty(
            DEFINITION.shape("new_state", B), dtype=torch.float32, device=q.device
        )
        self(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state)
        return output, new_state


_REGISTRY: dict[str, Impl] = {}
_LOADED = False


def register(impl: Impl) -> Impl:
    if impl.kind not in ("kernel", "baseline"):
        raise ValueError(f"argument 'kind': expected 'kernel' or 'baseline', got {impl.kind!r}")
    _REGISTRY[impl.name] = impl
    return impl


def _load() -> None:
    global _LOADED
    if not _LOADED:
        _LOADED = True
        from decodekit import baselines, variants  # noqa: F401  (they register themselves)


def names(kind: str | None = None) -> list[str]:
    _load()
    return [n for n, i in _REGISTRY.items() if kind is None or i.kind == kind]


def get(name: str) -> Impl:
    _load()
    if name not in _REGISTRY:
        raise KeyError(
            f"argument 'impl': no implementation {name!r}; known: {', '.join(_REGISTRY)}"
        )
    return _REGISTRY[name]


def all_impls(kind: str | None = None) -> list[Impl]:
    return [get(n) for n in names(kind)]
