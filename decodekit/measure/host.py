"""Host cost per call, steady state: an implementation against a bare CuPy launch.

:func:`host_overhead` times, in one run, the implementation's call, the kit's launch of the
empty kernel (same path), a bare ``cupy.RawKernel`` call of it and a raw ``cuLaunchKernel``
(``cuda.bindings``); ``ratio_vs_bare`` is the figure issue 17 holds to 1.5x.
:func:`record_host_overhead` writes them as records (``decodekit overhead``). Benchmarks for
records, not tests.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from decodekit.build.launch import bare_cupy_empty, empty_launcher
from decodekit.measure import Preset, measure
from decodekit.problem.workloads import empty_outputs, make_inputs, synthetic


def per_call_us(fn: Callable, kwargs: dict, n: int, workload=None, check: bool = False) -> float:
    """Median host time of one call in steady state: ``host-steady`` samples of 50 calls
    back to back (``n`` calls in all), through :func:`decodekit.measure.measure`."""
    protocol = Preset("steady", "host-steady", 20, max(1, n // 50), 1, "median")
    rec = measure(fn, workload, protocol, device="cuda", check=check, inputs=kwargs)
    if not rec.ok:
        raise RuntimeError(f"{getattr(fn, 'name', fn)!r}: {rec.status.value}: {rec.note}")
    return rec.latency_us


def host_overhead(impl_name: str = "baseline", n: int = 2000, batch_size: int = 1) -> dict:
    """Host microseconds per call, all measured in this one run: the implementation (checked
    first on fresh inputs), the kit's empty launch (same path, empty kernel), a bare CuPy empty
    launch and a raw ``cuLaunchKernel`` (cuda.bindings) of the empty kernel. ``ratio_vs_bare``
    is the issue's figure (target <= 1.5). This is a benchmark for records, not a test."""
    from decodekit.impls import registry

    impl = registry.get(impl_name)
    why = impl.unavailable()
    if why:
        raise RuntimeError(f"implementation {impl_name!r} cannot run here: {why}")
    w = synthetic(batch_size)
    kwargs = {**make_inputs(w, "cuda"), **empty_outputs(batch_size, "cuda", poison=False)}
    empty = empty_launcher()
    empty(**kwargs)  # loads the module and binds cuLaunchKernel
    fptr, one = empty._function(torch.cuda.current_device()).kernel.ptr, (1, 1, 1)
    stream = torch.cuda.current_stream().cuda_stream
    raw = functools.partial(empty._driver_launch, fptr, *one, *one, 0, stream, 0, 0)
    res = {
        "impl": impl_name,
        "batch_size": batch_size,
        "n": n,
        "device": torch.cuda.get_device_name(),
        "impl_us": per_call_us(impl, kwargs, n, workload=w, check=True),
        "kit_empty_us": per_call_us(empty, kwargs, n),
        "bare_cupy_empty_us": per_call_us(bare_cupy_empty(), {}, n),
        "driver_empty_us": per_call_us(raw, {}, n),
    }
    res["ratio_vs_bare"] = res["impl_us"] / res["bare_cupy_empty_us"]
    return res


def record_host_overhead(impls=("streaming", "best"), n: int = 20000, out_dir=None) -> list[dict]:
    """Run :func:`host_overhead` for each implementation and append the figures to
    ``data/results/`` as records (method ``host-steady``: back-to-back calls, steady state, :mod:`decodekit.measure.timing`;
    floor ``host-bare-cupy`` for the bare CuPy launch measured beside it)."""
    from decodekit import records
    from decodekit.records import env

    rec = records.Recorder(records.AUTO if out_dir is None else out_dir, env.capture("cuda"))
    rows = []
    for name in impls:
        r = host_overhead(name, n=n)
        base = dict(uuid="B1", workload="B1", batch_size=1, status="ok", n_iter=n, preset="steady")
        note = f"{r['ratio_vs_bare']:.2f}x a bare CuPy empty launch; raw cuLaunchKernel {r['driver_empty_us']:.2f} us"
        rows.append(dict(base, impl=name, method="host-steady", latency_us=r["impl_us"], note=note))
        rows.append(
            dict(base, impl="empty-kernel", impl_kind="floor", floor="host-bare-cupy",
                 method="host-steady", latency_us=r["bare_cupy_empty_us"])
        )  # fmt: skip
    return rec.append(rows)
