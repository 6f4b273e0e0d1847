"""The bench of one family member (:mod:`decodekit.problem.family`): every case of its
manifest, each implementation checked with the member's contracts and timed through
:func:`decodekit.measure.measure`, beside the member's own copy floor, in one run.

The floor is a torch copy of the bytes the call must move: the state it reads and writes
(``member.state_bytes``: bf16 state halves them; a pool moves the same bytes as a dense
state of B rows, from scattered slots). Records carry ``definition``; the contest's views
leave them out (:func:`decodekit.views.latest`); :mod:`decodekit.views.family_tables`
shows them.

>>> from decodekit.problem.family import Member
>>> floor_buffers(Member(4, 8, state_dtype="bfloat16"), 2)["src"].numel() * 2
524288
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from decodekit import records
from decodekit.measure import as_device, get_preset, measure
from decodekit.measure.floors import copy
from decodekit.measure.timing import DeviceTimer, Timer
from decodekit.problem.family import Member, load_cases


def floor_buffers(member: Member, batch_size: int, device="cpu") -> dict:
    """Source and destination of the member's copy floor at ``batch_size``: one state's worth
    of the member's state dtype each (read + write = ``member.state_bytes``)."""
    n = batch_size * member.v_heads * member.head_size * member.head_size
    src = torch.randn(n, device=device).to(member.dtype)
    return {"src": src, "dst": torch.empty_like(src)}


def bench_member(
    member: Member,
    impls: dict[str, Callable],
    preset: str = "contest",
    *,
    batch_sizes: Iterable[int] | None = None,
    out_dir=records.AUTO,
    timer: Timer | None = None,
    device: str | None = None,
) -> list[dict]:
    """Measure each of ``impls`` (name -> implementation of ``member``) on every case of the
    member's manifest (``batch_sizes`` keeps some), and the copy floor of each batch size
    with the same method; one run, its records returned."""
    from decodekit.records.env import capture

    p, dev = get_preset(preset), as_device(device)
    timer = timer or DeviceTimer()
    rec = records.Recorder(out_dir, env=capture(dev))
    wanted = set(batch_sizes) if batch_sizes is not None else None
    floors: dict[int, float | None] = {}
    for case in load_cases(member):
        B = case.batch_size
        if wanted is not None and B not in wanted:
            continue
        tag = {"definition": member.name}
        if B not in floors:
            f = measure(copy, case, p, timer=timer, device=dev, check=False,
                        inputs=floor_buffers(member, B, dev), fields=tag)  # fmt: skip
            f = f.replace(impl="torch-copy", impl_kind="floor", floor="copy-floor",
                          bytes=member.state_bytes(B))  # fmt: skip
            floors[B] = f.latency_us
            rec.append([f])
        rows = []
        for name, fn in impls.items():
            r = measure(fn, case, p, timer=timer, device=dev, fields=tag)
            r = r.replace(impl=name, impl_kind="kernel" if name == "kit" else "baseline",
                          bytes=member.state_bytes(B))  # fmt: skip
            if r.ok:
                r = r.replace(gbps=member.state_bytes(B) / (r.latency_us * 1e3))
                if floors[B]:
                    r = r.replace(pct_copy=100 * floors[B] / r.latency_us)
            rows.append(r)
        rec.append(rows)
    return rec.rows
