"""The bench of one family member (:mod:`decodekit.problem.family`): every case of its
manifest, each implementation checked with the member's contracts and timed through
:func:`decodekit.measure.measure`, beside the member's own copy floor, in one run.

Two floors per batch size, timed with the same method in the same run:

* ``copy-floor`` (impl ``torch-copy``): a torch copy of the bytes the call must move, the
  live rows' state read and written (:func:`live_bytes`: bf16 state halves them), dense.
* ``row-copy-floor`` (impl ``row-copy``): ``kernels/family_row_copy.cu`` on the case itself:
  the kit kernel's grid, the live slots read and written in place from where the indices
  scatter them, padding rows skipped, zeros for the output; no math. The fastest of
  :data:`ROW_COPY_CONFIGS` is the floor (its build in ``defines``): what the kit kernel
  would take if its math were free. The issue's goal is judged against it (``pct_row_copy``).
  The fastest of 30-40 noisy timings is biased low (the minimum of many draws), where the
  kit's best is one timing of a build chosen in an earlier run, so the chosen build is timed
  again and that timing is the floor; the selection's is kept as ``selected_us``.

Records carry ``definition``; the contest's views
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
from decodekit.impls.family_kernels import is_kit
from decodekit.impls.family_tuning import ASYNC_SHAPES, FULL_SHAPES, STREAM_SHAPES, TILE_SHAPES
from decodekit.measure import as_device, get_preset, measure
from decodekit.measure.floors import copy
from decodekit.measure.timing import DeviceTimer, Timer
from decodekit.problem.family import Case, Member, load_cases
from decodekit.records.schema import Record, Status


def _build(w: int, r: int, lanes: int, **more) -> dict:
    return dict(WARPS=w, ROWS_PER_WARP=r, LANES_PER_ROW=lanes, **more)


# Launch shapes (WARPS, ROWS_PER_WARP, LANES_PER_ROW) and state load hints tried for the
# row-copy floor: the kit kernel's default grid and the ones its tuning space reaches for
# (2 x 4 x 16: the shape the tuned intermediate-state verify calls take at B = 256, where
# they ran under the floor's 24 builds of runs 063898e9 and 221461a1),
# with its pipelined state (PREFETCH 1, ITEMS work items a block, and the tuning space's
# STREAM_SHAPES: a head streamed by one block; and PREFETCH 2's per-lane copies on the
# tuning space's ASYNC_SHAPES, and with one item a block on its row-streamed FULL_SHAPES; at
# T = 1 through the block-wide tiles of its TILE_SHAPES, FlashInfer's state path) too,
# so the floor stays the fastest copy of the member's bytes that the kit's own grid knows;
# the plain shapes and the tiles with new_state stored with an L2 evict_last policy too
# (STORE_HINT 3: the written lines stay in L2 and drain after the call), so a kit build never
# beats the floor by a store policy the floor was not offered (timed cold since the flush
# resets persisting lines: data/experiments/2026-12-04_store-evict-last/).
ROW_COPY_CONFIGS = (
    *(_build(*shape, LOAD_HINT=h, STORE_HINT=sh)
      for shape in ((4, 8, 16), (4, 4, 16), (8, 4, 16), (4, 4, 32), (4, 8, 8), (2, 4, 16))
      for h, sh in ((1, 0), (3, 0), (1, 3), (4, 3))),
    *(_build(*shape, PREFETCH=1, ITEMS=items)
      for shape in ((4, 8, 16), (4, 4, 32)) for items in (2, 4, 8)),
    *(_build(w, r, lanes, PREFETCH=1, ITEMS=items, CONSECUTIVE=1)
      for w, r, lanes, items in STREAM_SHAPES),
    *(_build(w, r, lanes, PREFETCH=2, ITEMS=items, CONSECUTIVE=c)
      for w, r, lanes, items, c in ASYNC_SHAPES),
    *(_build(w, r, lanes, PREFETCH=2, ITEMS=1) for w, r, lanes, rs in FULL_SHAPES if rs),
)  # fmt: skip
# T = 1 only (BLOCK_TILES builds one item a block of one token): the tiled copies
TILE_COPY_CONFIGS = tuple(_build(w, r, 32, BLOCK_TILES=t, MIN_BLOCKS=mb, STORE_HINT=sh)
                          for w, r, t, mb in TILE_SHAPES for sh in (0, 3))  # fmt: skip


def copy_configs(member: Member) -> tuple[dict, ...]:
    """The row-copy builds of ``member``'s floor: :data:`ROW_COPY_CONFIGS`, and at T = 1
    :data:`TILE_COPY_CONFIGS` too."""
    return ROW_COPY_CONFIGS + (TILE_COPY_CONFIGS if member.seq_len == 1 else ())


def floor_buffers(member: Member, batch_size: int, device="cpu") -> dict:
    """Source and destination of the member's copy floor at ``batch_size``: one state's worth
    of the member's state dtype each (read + write = ``member.state_bytes``)."""
    n = member.state_bytes(batch_size) // 2 // (2 if member.bf16 else 4)  # verify calls: theirs
    src = torch.randn(n, device=device).to(member.dtype)
    return {"src": src, "dst": torch.empty_like(src)}


def live_bytes(case: Case) -> int:
    """State bytes the case's call reads and writes: its live rows' (padding moves none),
    each row's state read, written back unless the member does not update, and written T
    times more by an intermediate member (:meth:`~decodekit.problem.family.Member.state_bytes`)."""
    return case.member.state_bytes(case.batch_size - case.padding)


def row_copies(member: Member, device: torch.device) -> tuple[list, str | None]:
    """The :func:`copy_configs` builds of ``member``'s row copy, or none and why."""
    if device.type != "cuda":
        return [], f"the row-copy floor is a CUDA kernel; this run is on {device.type}"
    try:
        from decodekit.impls.family_kernels import row_copy

        return [(d, row_copy(member, d)) for d in copy_configs(member)], None
    except Exception as e:  # no cupy / NVRTC / GPU here: recorded, the run goes on
        return [], f"row-copy kernel unavailable: {type(e).__name__}: {e}"


def row_copy_floor(case: Case, preset, builds: list, why: str | None, *, timer, device,
                   fields: dict) -> Record:  # fmt: skip
    """The fastest of ``builds`` (``row_copies``) on ``case``, unchecked (a floor computes
    nothing), timed once more as the floor's record (``selected_us``: its time when chosen,
    ``configs_tried``); an unavailable one when there are none."""
    tag = dict(fields, bytes=live_bytes(case))
    floor = dict(impl="row-copy", impl_kind="floor", floor="row-copy-floor")
    if not builds:
        return Record(**floor, method=get_preset(preset).method, status=Status.UNAVAILABLE,
                      note=why, uuid=case.uuid, batch_size=case.batch_size, fields=tag)  # fmt: skip

    def timed(d, fn):
        return measure(fn, case, preset, timer=timer, device=device, check=False,
                       fields=dict(tag, defines=d)).replace(**floor)  # fmt: skip

    tried = [timed(d, fn) for d, fn in builds]
    ok = [i for i, r in enumerate(tried) if r.ok]
    if not ok:
        return tried[0].replace(configs_tried=len(tried))
    i = min(ok, key=lambda i: tried[i].latency_us)
    again = timed(*builds[i])  # a fresh draw: the minimum's own is biased low
    best = again if again.ok else tried[i]
    return best.replace(configs_tried=len(tried), selected_us=tried[i].latency_us)


def bench_member(
    member: Member,
    impls: dict[str, Callable],
    preset: str = "contest",
    *,
    batch_sizes: Iterable[int] | None = None,
    out_dir=records.AUTO,
    timer: Timer | None = None,
    device: str | None = None,
    cannot: dict[str, tuple[Status, str]] | None = None,
) -> list[dict]:
    """Measure each of ``impls`` (name -> implementation of ``member``) on every case of the
    member's manifest (``batch_sizes`` keeps some), and the two floors of each case with the
    same method; one run, its records returned. ``cannot`` (name -> (status, why)): the
    implementations that cannot run the member (a peer whose API has no such call:
    ``unsupported``; a missing package: ``unavailable``), recorded per case with why."""
    from decodekit.records.env import capture

    p, dev = get_preset(preset), as_device(device)
    timer = timer or DeviceTimer()
    rec = records.Recorder(out_dir, env=capture(dev))
    wanted = set(batch_sizes) if batch_sizes is not None else None
    floors: dict[int, float | None] = {}
    builds, why = row_copies(member, dev)
    for case in load_cases(member):
        B = case.batch_size
        if wanted is not None and B not in wanted:
            continue
        tag = {"definition": member.name}
        if B not in floors:
            live = floor_buffers(member, B - case.padding, dev)  # the live rows' bytes
            f = measure(copy, case, p, timer=timer, device=dev, check=False, inputs=live,
                        fields=tag)  # fmt: skip
            f = f.replace(impl="torch-copy", impl_kind="floor", floor="copy-floor",
                          bytes=live_bytes(case))  # fmt: skip
            floors[B] = f.latency_us
            rec.append([f])
        rc = row_copy_floor(case, p, builds, why, timer=timer, device=dev, fields=tag)
        rec.append([rc])
        rows = []
        for name, fn in impls.items():
            tuned = dict(getattr(fn, "tuning", {}))  # best: which table, tuned on which GPU
            if hasattr(fn, "defines_for"):
                tuned["defines"] = fn.defines_for(B)  # and the build it runs at this B
            r = measure(fn, case, p, timer=timer, device=dev, fields={**tag, **tuned})
            kind = "kernel" if is_kit(name) else "baseline"
            r = r.replace(impl=name, impl_kind=kind, bytes=live_bytes(case))
            if r.ok:
                r = r.replace(gbps=live_bytes(case) / (r.latency_us * 1e3))
                if floors[B]:
                    r = r.replace(pct_copy=100 * floors[B] / r.latency_us)
                if rc.ok:
                    r = r.replace(pct_row_copy=100 * rc.latency_us / r.latency_us)
            rows.append(r)
        for name, (status, reason) in (cannot or {}).items():
            rows.append(Record(impl=name, method=p.method, status=status, note=reason, uuid=case.uuid,
                               batch_size=B, impl_kind="kernel" if is_kit(name) else "baseline",
                               fields=dict(tag, contract=member.contract)))  # fmt: skip
        rec.append(rows)
    return rec.rows
