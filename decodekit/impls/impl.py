"""One implementation's declaration (:class:`Impl`) and the table that holds them.

This module only defines and stores: the kit's variants (:mod:`decodekit.impls.variants`), its
dispatcher (:mod:`decodekit.impls.best`) and the baselines (:mod:`decodekit.impls.baselines`) register
here when imported; :mod:`decodekit.impls.registry` imports them all and is where the rest of the
kit looks implementations up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from decodekit.problem.contracts import bind, check_contract
from decodekit.problem.spec import DEFINITION


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
    contracts: tuple[str, ...] = ()  # supported contracts, native first; () -> from inplace_ok
    kernels_per_call: int | None = 1  # GPU activities per call; None: declared multi-kernel
    probe: bool = False  # call the real entry point once (B=1) before saying "available"
    _fn: Callable | None = field(default=None, repr=False)
    _probed: str | None | bool = field(default=False, repr=False)  # False: not probed yet

    def __post_init__(self):
        if not self.contracts:
            self.contracts = ("dps", "inplace") if self.inplace_ok else ("dps",)
        for c in self.contracts:
            check_contract(c)

    @property
    def contract(self) -> str:
        """The native contract: the one its users call it in."""
        return self.contracts[0]

    def unavailable(self) -> str | None:
        """Why this implementation cannot run here (missing GPU or package, or a probe call
        that failed), or None."""
        if self.device == "cuda" and not torch.cuda.is_available():
            return "no CUDA GPU visible (torch.cuda.is_available() is False)"
        why = self.requires()
        if why or not self.probe:
            return why
        if self._probed is False:
            self._probed = self._probe_call()
        return self._probed

    def _probe_call(self) -> str | None:
        from decodekit.problem.workloads import empty_outputs, make_inputs

        try:
            fn = self.factory()
            dev = "cuda" if self.device == "cuda" else "cpu"
            kw = bind(self.contract, make_inputs(1, dev), empty_outputs(1, dev, poison=False))
            fn(**kw)
            if dev == "cuda":
                torch.cuda.synchronize()
        except Exception as e:  # the probe's whole point: any failure means "cannot run"
            return f"a B=1 call of its entry point failed: {type(e).__name__}: {e}"
        self._fn = fn
        return None

    @property
    def fn(self) -> Callable:
        if self._fn is None:
            why = self.unavailable()
            if why:
                raise RuntimeError(f"implementation {self.name!r} cannot run here: {why}")
            if self._fn is None:  # a probe may have built it already
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


def registered(name: str) -> Impl:
    """An implementation already registered (no loading): for the modules that register them."""
    if name not in _REGISTRY:
        raise KeyError(
            f"argument 'variant': no kit variant {name!r}; known: {', '.join(_REGISTRY)}"
        )
    return _REGISTRY[name]
