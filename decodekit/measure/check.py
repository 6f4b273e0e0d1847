"""Check an implementation's ``output`` and ``new_state`` against the fp64 oracle.

Tolerances live in :data:`TOLERANCES`, nowhere else. Two tests, both must pass, per output:

* elementwise (the contest's): ``|x - ref| <= atol + rtol * |ref|`` for every element,
  NaN and Inf fail;
* relative error ``||x - ref|| / ||ref||`` under ``output_rel`` (bf16 output) or
  ``state_rel`` (fp32 state).

Outputs are poisoned with NaN before the implementation runs, so unwritten elements fail.

>>> from decodekit.problem.reference import gdn_decode
>>> def torch_fp32(q, k, v, state, A_log, a, dt_bias, b, scale, output, new_state):
...     o, s = gdn_decode(q, k, v, state, A_log, a, dt_bias, b, scale)
...     output.copy_(o); new_state.copy_(s)
>>> check(torch_fp32, 3).passed
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import torch

from decodekit.problem.contracts import bind
from decodekit.problem.reference import gdn_decode_oracle
from decodekit.problem.workloads import Workload, empty_outputs, make_inputs, synthetic


@dataclass(frozen=True)
class Tolerances:
    atol: float = 1e-2
    rtol: float = 1e-2
    output_rel: float = 1e-2  # bf16 rounding alone gives about 2e-3
    state_rel: float = 1e-4


TOLERANCES = Tolerances()


@dataclass
class TensorReport:
    name: str
    max_abs: float
    max_rel: float
    rel_err: float  # norm of the difference over norm of the reference
    nan: int
    inf: int
    n_bad: int  # elements failing the elementwise test (NaN/Inf included)
    first_bad: list[tuple[int, ...]]
    rel_limit: float
    passed: bool

    def summary(self) -> str:
        s = (
            f"{self.name}: {'ok' if self.passed else 'FAIL'} max_abs={self.max_abs:.3g} "
            f"rel_err={self.rel_err:.3g} (limit {self.rel_limit:g}) nan={self.nan} inf={self.inf} "
            f"bad={self.n_bad}"
        )
        return s + (f" first_bad={self.first_bad}" if self.first_bad else "")


@dataclass
class CheckResult:
    workload: Workload
    reports: list[TensorReport] = field(default_factory=list)
    error: str | None = None  # the implementation raised
    inputs: dict | None = field(default=None, repr=False)  # what it ran on (bench times these)

    @property
    def passed(self) -> bool:
        return self.error is None and bool(self.reports) and all(r.passed for r in self.reports)

    def summary(self) -> str:
        head = f"{self.workload.name} (B={self.workload.batch_size}): "
        if self.error:
            return head + f"ERROR {self.error}"
        return head + "; ".join(r.summary() for r in self.reports)

    def row(self) -> dict:
        d = {
            "workload": self.workload.name,
            "uuid": self.workload.uuid,
            "batch_size": self.workload.batch_size,
            "passed": self.passed,
            "error": self.error,
        }
        for r in self.reports:
            d.update(
                {
                    f"{r.name}_max_abs": r.max_abs,
                    f"{r.name}_rel_err": r.rel_err,
                    f"{r.name}_bad": r.n_bad,
                }
            )
        return d


class CheckFailed(AssertionError):
    """Raised by :func:`require` when an implementation fails the check."""


def compare(
    name: str,
    got: torch.Tensor,
    ref: torch.Tensor,
    rel_limit: float,
    tol: Tolerances = TOLERANCES,
    max_report: int = 5,
    on: str | torch.device = "cpu",
) -> TensorReport:
    """Compare one output with its fp64 reference, in fp64 on device ``on`` (the CPU, or the
    GPU that holds both: the same math, without moving a state of gigabytes)."""
    x = got.detach().to(on, torch.float64)
    r = ref.detach().to(on, torch.float64)
    if x.shape != r.shape:
        raise ValueError(
            f"argument {name!r}: expected shape {tuple(r.shape)}, got {tuple(x.shape)}"
        )
    nan = int(torch.isnan(x).sum())
    inf = int(torch.isinf(x).sum())
    diff = (x - r).abs()
    finite = torch.isfinite(x)
    bad = ~finite | (diff > tol.atol + tol.rtol * r.abs())
    d = torch.where(finite, diff, torch.zeros_like(diff))
    max_abs = float(d.max()) if d.numel() else 0.0
    max_rel = float((d / r.abs().clamp_min(1e-30)).max()) if d.numel() else 0.0
    rnorm = float(torch.linalg.vector_norm(r))
    rel_err = (
        float(torch.linalg.vector_norm(x - r)) / max(rnorm, 1e-30)
        if not (nan or inf)
        else float("inf")
    )
    first = [tuple(int(i) for i in ix) for ix in torch.nonzero(bad)[:max_report]]
    n_bad = int(bad.sum())
    return TensorReport(
        name,
        max_abs,
        max_rel,
        rel_err,
        nan,
        inf,
        n_bad,
        first,
        rel_limit,
        passed=n_bad == 0 and rel_err <= rel_limit,
    )


def check(
    impl: Callable,
    workload: Workload | int,
    *,
    device: str = "cpu",
    profile: str = "random",
    inputs: dict | None = None,
    tol: Tolerances = TOLERANCES,
    contract: str = "dps",
) -> CheckResult:
    """Run ``impl`` (``impl(**inputs, output=..., new_state=...)``, its buffers bound as
    ``contract`` says: :mod:`decodekit.problem.contracts`) on fresh inputs of ``workload`` and
    compare both outputs with the fp64 oracle. In place, the updated state is compared."""
    w = synthetic(workload) if isinstance(workload, int) else workload
    if inputs is None:
        inputs = make_inputs(w, device, profile=profile)
        ref_out, ref_state = _oracle_of(w, profile)
    else:
        ref_out, ref_state = gdn_decode_oracle(**{n: _cpu(t) for n, t in inputs.items()})
    kwargs = bind(contract, inputs, empty_outputs(w.batch_size, device, poison=True))
    dests = {"output": kwargs["output"], "new_state": kwargs["new_state"]}
    result = CheckResult(w, inputs=inputs)
    try:
        impl(**kwargs)
        if str(device).startswith("cuda"):
            torch.cuda.synchronize()
    except Exception as e:  # the implementation's failure is the check's finding
        result.error = f"{type(e).__name__}: {e}"
        return result
    result.reports = [
        compare("output", dests["output"], ref_out, tol.output_rel, tol),
        compare("new_state", dests["new_state"], ref_state, tol.state_rel, tol),
    ]
    return result


def require(impl: Callable, workload: Workload | int, **kw) -> CheckResult:
    """:func:`check`, raising :class:`CheckFailed` with the summary when it fails."""
    res = check(impl, workload, **kw)
    if not res.passed:
        raise CheckFailed(res.summary())
    return res


@lru_cache(maxsize=2)
def _oracle_of(w: Workload, profile: str):
    """The oracle of a workload's own seeded inputs; sweeps check several implementations on
    one workload in a row, so the fp64 pass runs once per workload."""
    return gdn_decode_oracle(**make_inputs(w, "cpu", profile=profile))


def _cpu(x):
    return x.cpu() if isinstance(x, torch.Tensor) else x
