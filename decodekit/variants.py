"""The kit's kernel variants: one entry per ``kernels/gdn_decode_<technique>.cu``.

Every kernel has the same C signature (see ``kernels/common.cuh``)::

    extern "C" __global__ void <entry>(const bf16* q, const bf16* k, const bf16* v,
        const float* state /* may be null: zeros */, const float* A_log, const bf16* a,
        const float* dt_bias, const bf16* b, float scale /* resolved */, bf16* output,
        float* new_state, int batch_size)

and a launch-shape function ``batch_size -> (grid, block, shared_mem_bytes)`` lives beside its
entry here. Adding a kernel = one ``.cu`` file + one ``variant(...)`` call below; checks,
benches, NCU runs and reports pick it up through :mod:`decodekit.registry`.
"""

from __future__ import annotations

from collections.abc import Callable

from decodekit.registry import Impl, register

Shape = tuple[tuple[int, ...], tuple[int, ...], int]


def variant(
    name: str,
    source: str,
    entry: str,
    launch_shape: Callable[[int], Shape],
    *,
    parent: str | None,
    description: str,
    defines: dict | None = None,
    inplace_ok: bool = False,
) -> Impl:
    def factory():
        from decodekit.launch import kernel_impl

        return kernel_impl(source, entry, launch_shape, defines=defines or {})

    return register(
        Impl(
            name=name,
            kind="kernel",
            description=description,
            factory=factory,
            parent=parent,
            source=source,
            inplace_ok=inplace_ok,
            meta={"entry": entry, "defines": dict(defines or {}), "launch_shape": launch_shape},
        )
    )


variant(
    "baseline",
    "gdn_decode_baseline.cu",
    "gdn_decode_baseline",
    lambda B: ((B * 8,), (128,), 0),
    parent=None,
    inplace_ok=True,
    description="one block per (batch, value head), one thread per state row, one-pass math",
)
