"""What a timer is handed and what it gives back: a bound call (:class:`Target`), one trial's
samples (:class:`Samples`) and the :class:`Timer` protocol every timing method implements
(:mod:`decodekit.measure.timing`, :mod:`decodekit.measure.cupti_timer`, the tests' stand-ins).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch


@dataclass
class Target:
    """A call with its arguments bound: ``fn(**kwargs)`` on ``device``."""

    fn: Callable[..., Any]
    kwargs: dict
    device: torch.device

    def __call__(self) -> Any:
        return self.fn(**self.kwargs)

    def cloned(self) -> dict:
        return {n: x.clone() if isinstance(x, torch.Tensor) else x for n, x in self.kwargs.items()}


@dataclass
class Samples:
    """One trial's samples (µs), plus per-sample extras some methods provide."""

    us: list[float]
    extra: dict[str, list[float]] = field(default_factory=dict)
    kernels: list[tuple[str, ...]] | None = None  # per sample, the GPU activities' names


class Timer(Protocol):
    def unavailable(self, method: str, device: torch.device) -> str | None: ...

    # ``before`` (a hook run after each L2 flush, untimed) is passed only when a caller has
    # one, so a timer without flushes need not take it.
    def trial(self, method: str, target: Target, n_warmup: int, n_iter: int) -> Samples: ...
