"""The definition ``gdn_decode_qk4_v8_d128_k_last`` as data, and a validator for it.

Axes, tensor specs and constraints follow flashinfer-bench's definition vocabulary. Launch
parameters never live here.

>>> DEFINITION.name
'gdn_decode_qk4_v8_d128_k_last'
>>> DEFINITION.shape("state", batch_size=2)
(2, 8, 128, 128)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch


class SpecError(ValueError):
    """An input does not match the definition; the message names the argument."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[str, ...]  # axis names; resolved with the axis values
    dtype: torch.dtype
    description: str = ""
    optional: bool = False


@dataclass(frozen=True)
class Definition:
    name: str
    const_axes: Mapping[str, int]
    var_axes: tuple[str, ...]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    scalars: tuple[str, ...]
    constraints: tuple[str, ...] = field(default_factory=tuple)
    layout: str = "k-last: state[b, h, v, k]"

    def tensor(self, name: str) -> TensorSpec:
        for t in self.inputs + self.outputs:
            if t.name == name:
                return t
        raise KeyError(f"no tensor named {name!r} in {self.name}")

    def shape(self, name: str, batch_size: int) -> tuple[int, ...]:
        axes = dict(self.const_axes, batch_size=batch_size)
        return tuple(axes[a] for a in self.tensor(name).shape)


NUM_Q_HEADS = 4
NUM_K_HEADS = 4
NUM_V_HEADS = 8
HEAD_SIZE = 128
SEQ_LEN = 1
DEFAULT_SCALE = 1.0 / math.sqrt(HEAD_SIZE)

DEFINITION = Definition(
    name="gdn_decode_qk4_v8_d128_k_last",
    const_axes={
        "seq_len": SEQ_LEN,
        "num_q_heads": NUM_Q_HEADS,
        "num_k_heads": NUM_K_HEADS,
        "num_v_heads": NUM_V_HEADS,
        "head_size": HEAD_SIZE,
    },
    var_axes=("batch_size",),
    inputs=(
        TensorSpec("q", ("batch_size", "seq_len", "num_q_heads", "head_size"), torch.bfloat16),
        TensorSpec("k", ("batch_size", "seq_len", "num_k_heads", "head_size"), torch.bfloat16),
        TensorSpec("v", ("batch_size", "seq_len", "num_v_heads", "head_size"), torch.bfloat16),
        TensorSpec(
            "state",
            ("batch_size", "num_v_heads", "head_size", "head_size"),
            torch.float32,
            "k-last recurrent state [B, H, V, K]; absent means zeros",
            optional=True,
        ),
        TensorSpec("A_log", ("num_v_heads",), torch.float32, "learned log decay rate"),
        TensorSpec("a", ("batch_size", "seq_len", "num_v_heads"), torch.bfloat16, "decay input"),
        TensorSpec("dt_bias", ("num_v_heads",), torch.float32, "learned decay bias"),
        TensorSpec("b", ("batch_size", "seq_len", "num_v_heads"), torch.bfloat16, "update gate"),
    ),
    outputs=(
        TensorSpec("output", ("batch_size", "seq_len", "num_v_heads", "head_size"), torch.bfloat16),
        TensorSpec(
            "new_state", ("batch_size", "num_v_heads", "head_size", "head_size"), torch.float32
        ),
    ),
    scalars=("scale",),
    constraints=(
        "batch_size >= 1",
        "num_v_heads % num_q_heads == 0 (value head h uses q/k head h // 2)",
        "scale == 0 or None means 1/sqrt(head_size)",
    ),
)

INPUT_NAMES = tuple(t.name for t in DEFINITION.inputs)
OUTPUT_NAMES = tuple(t.name for t in DEFINITION.outputs)


def resolve_scale(scale: float | None) -> float:
    """``0`` or ``None`` means ``1/sqrt(head_size)``; anything else must be a finite real
    number (a bool, a string, NaN or inf is an error naming the argument).

    >>> resolve_scale(None) == resolve_scale(0.0) == DEFAULT_SCALE
    True
    >>> resolve_scale(float("nan"))
    Traceback (most recent call last):
    ...
    decodekit.problem.spec.SpecError: argument 'scale': expected a finite float or None, got nan
    """
    if scale is None:
        return DEFAULT_SCALE
    if isinstance(scale, (bool, str, bytes)) or not hasattr(scale, "__float__"):
        raise SpecError(f"argument 'scale': expected a finite float or None, got {scale!r}")
    try:
        value = float(scale)
    except (TypeError, ValueError, RuntimeError):  # e.g. a tensor of more than one element
        raise SpecError(
            f"argument 'scale': expected a finite float or None, got {_describe(scale)}"
        ) from None
    if not math.isfinite(value):
        raise SpecError(f"argument 'scale': expected a finite float or None, got {value!r}")
    return DEFAULT_SCALE if value == 0.0 else value


def _describe(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"shape {tuple(x.shape)}, dtype {x.dtype}, device {x.device}"
    return f"{type(x).__name__} {x!r}"[:80]


def batch_size_of(tensors: Mapping[str, Any]) -> int:
    """Batch size read off ``q``, validated as >= 1."""
    q = tensors.get("q")
    if not isinstance(q, torch.Tensor) or q.dim() != 4:
        raise SpecError(
            f"argument 'q': expected a tensor of shape [batch_size, 1, 4, 128], got {_describe(q)}"
        )
    B = int(q.shape[0])
    if B < 1:
        raise SpecError(f"argument 'q': expected batch_size >= 1, got batch_size {B}")
    return B


def validate(
    tensors: Mapping[str, Any],
    *,
    device: torch.device | str | None = None,
    names: tuple[str, ...] = INPUT_NAMES,
    require_contiguous: bool = False,
) -> int:
    """Check tensors against the definition; return the batch size.

    Raises :class:`SpecError` naming the argument, what was expected and what came.
    ``device`` (e.g. ``"cuda"``) requires every tensor on that device type.

    >>> from decodekit.problem.workloads import make_inputs
    >>> validate(make_inputs(3))
    3
    """
    B = batch_size_of(tensors)
    want_dev = torch.device(device).type if device is not None else None
    first_dev = None
    for name in names:
        spec = DEFINITION.tensor(name)
        if name not in tensors:
            raise SpecError(f"argument {name!r}: missing; expected a tensor {spec.shape}")
        x = tensors[name]
        if x is None and spec.optional:
            continue
        if not isinstance(x, torch.Tensor):
            raise SpecError(f"argument {name!r}: expected a torch.Tensor, got {_describe(x)}")
        shape = DEFINITION.shape(name, B)
        if tuple(x.shape) != shape:
            raise SpecError(
                f"argument {name!r}: expected shape {shape} ({', '.join(spec.shape)}) "
                f"for batch_size {B}, got {_describe(x)}"
            )
        if x.dtype != spec.dtype:
            raise SpecError(f"argument {name!r}: expected dtype {spec.dtype}, got {_describe(x)}")
        if want_dev is not None and x.device.type != want_dev:
            raise SpecError(f"argument {name!r}: expected device {want_dev}, got {_describe(x)}")
        if first_dev is None:
            first_dev = x.device
        elif x.device != first_dev:
            raise SpecError(
                f"argument {name!r}: expected device {first_dev} like the other tensors, "
                f"got {_describe(x)}"
            )
        if require_contiguous and not x.is_contiguous():
            raise SpecError(
                f"argument {name!r}: expected a contiguous tensor, got strides {x.stride()}"
            )
    if "scale" in tensors:
        s = tensors["scale"]
        if s is not None and not isinstance(s, (int, float)):
            if not (isinstance(s, torch.Tensor) and s.numel() == 1):
                raise SpecError(f"argument 'scale': expected a float or None, got {_describe(s)}")
    return B


def bytes_moved(batch_size: int) -> dict[str, int]:
    """Bytes one call must move through device memory, each tensor once.

    >>> bytes_moved(64)["state_read"]
    33554432
    """
    B = batch_size
    d = DEFINITION
    out: dict[str, int] = {}
    for t in d.inputs + d.outputs:
        n = math.prod(d.shape(t.name, B)) * t.dtype.itemsize
        out[
            "state_read"
            if t.name == "state"
            else ("state_write" if t.name == "new_state" else t.name)
        ] = n
    out["total"] = sum(out.values())
    return out
