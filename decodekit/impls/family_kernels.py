"""The kit's kernel for the decode family's members (:mod:`decodekit.problem.family`).

``kit_kernel(member)`` is ``kernels/gdn_decode_family.cu`` built for ``member``
(:class:`decodekit.build.family_launch.FamilyLauncher`), one build per member and defines, in
the family's calling convention: ``impl(q, k, v, state, A_log, a, dt_bias, b, scale, output,
new_state, state_indices=None)``, which is what :func:`decodekit.measure.family_check.check`
and ``drift`` call. Not in the contest registry: the contest's one member has its variants.

>>> from decodekit.problem.family import SERVING, Member
>>> supports(Member(16, 32, seq_len=4, layout="pool", l2norm=True)) is None
True
>>> supports(Member(head_size=64))
'head_size 64: the kernel holds rows of 128 (gdn::kDim)'
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

from decodekit.build.family_launch import ENTRY, ROW_COPY, SOURCE, FamilyLauncher
from decodekit.problem.family import SERVING, VERIFY, Member
from decodekit.problem.spec import SpecError

# The members the tests hold the kit kernel to: the serving ones and the dense contest and
# qk16/v32 shapes, each at T 1 and 4 with fp32 and bf16 state; and the T=4 pool's verify
# calls (every token's state, no update, both), fp32 and bf16 state.
CHECKED = tuple(
    dict.fromkeys(
        [
            *(replace(m, seq_len=T, state_dtype=dt)
              for m in (*SERVING, Member(), Member(16, 32))
              for T in (1, 4)
              for dt in ("float32", "bfloat16")),
            *(replace(m, state_dtype=dt) for m in VERIFY for dt in ("float32", "bfloat16")),
        ]
    )
)  # fmt: skip


def supports(member: Member) -> str | None:
    """Why the family kernel cannot run ``member``, or None if it can."""
    if member.head_size != 128:
        return f"head_size {member.head_size}: the kernel holds rows of 128 (gdn::kDim)"
    if member.qk_heads < 1 or member.v_heads % member.qk_heads:
        return f"v_heads {member.v_heads} is not a multiple of qk_heads {member.qk_heads}"
    if not 1 <= member.seq_len <= 16:
        return f"seq_len {member.seq_len}: the kernel takes 1..16 tokens per call"
    if member.state_dtype not in ("float32", "bfloat16"):
        return f"state_dtype {member.state_dtype!r}: float32 or bfloat16 only"
    if member.layout not in ("dense", "pool"):
        return f"layout {member.layout!r}: dense or pool only"
    return None


def kit_kernel(member: Member, defines: dict | None = None, *, arch: str | None = None):
    """``member``'s :class:`FamilyLauncher` (tuning ``defines`` on top of the member's), built
    once per (member, defines, arch); ``arch`` defaults to the GPU's."""
    why = supports(member)
    if why is not None:
        raise SpecError(f"argument 'member': {member.name} is not supported: {why}")
    return _launcher(member, tuple(sorted((defines or {}).items())), arch, ENTRY)


def row_copy(member: Member, defines: dict | None = None, *, arch: str | None = None):
    """``member``'s row-copy floor (``kernels/family_row_copy.cu``): the kit kernel's grid,
    slots and state loads and stores with none of its math, called as the kit kernel is."""
    why = supports(member)
    if why is not None:
        raise SpecError(f"argument 'member': {member.name} has no row-copy floor: {why}")
    return _launcher(member, tuple(sorted((defines or {}).items())), arch, ROW_COPY[1])


@lru_cache(maxsize=256)
def _launcher(member: Member, defines: tuple, arch: str | None, entry: str) -> FamilyLauncher:
    source = ROW_COPY[0] if entry == ROW_COPY[1] else SOURCE
    return FamilyLauncher(member, dict(defines), arch, source=source, entry=entry)


# the kit kernel; the family's torch fp32 reference; the peers, each in its native call
IMPLEMENTATIONS = ("kit", "best", "torch-fp32", "flashinfer", "fla", "vllm")
# one build of the kit kernel by its name in tuning records and tables: family[KNOB=v,...]
BUILD = re.compile(r"family\[([^\]]*)\]")


def is_kit(name: str) -> bool:
    """Whether ``name`` is one of the kit's own kernels (``kit``, ``best``, ``family[...]``)."""
    return name in ("kit", "best") or BUILD.fullmatch(name) is not None


def needs_gpu(name: str) -> str | None:
    """Why ``name`` cannot run on this machine: a kit kernel (:func:`is_kit`) with no CUDA GPU
    visible, with the way forward; None otherwise."""
    import torch

    if not is_kit(name) or torch.cuda.is_available():
        return None
    return (f"{name} (kernels/gdn_decode_family.cu) runs on a CUDA GPU and none is visible; "
            "--impl torch-fp32 runs the family's reference here")  # fmt: skip


def build_defines(name: str) -> dict[str, int]:
    """The tuning knobs of a build's name ``family[KNOB=v,...]`` (a record's ``config``; knobs
    left out keep the kernel's defaults), every knob named; a one-line error otherwise."""
    from decodekit.impls.family_tuning import KNOBS, check_defines, full

    m = BUILD.fullmatch(name)
    pairs = [x.split("=") for x in m.group(1).split(",") if x.strip()] if m else None
    if not pairs or any(len(x) != 2 or not re.fullmatch(r"-?\d+", x[1].strip()) for x in pairs):
        raise SpecError(f"argument '--impl': expected family[KNOB=int,...] (knobs of "
                        f"{', '.join(KNOBS)}), got {name!r}")  # fmt: skip
    try:
        return full(check_defines({k.strip(): int(v) for k, v in pairs}, "argument '--impl'"))
    except ValueError as e:
        raise SpecError(str(e)) from None


def implementation(name: str, member: Member):
    """The implementation ``name`` of ``member``: ``kit`` (:func:`kit_kernel`, its defaults),
    ``best`` (the kit kernel as this GPU's table for the member says,
    :func:`decodekit.impls.family_tuning.best`), ``torch-fp32``
    (:func:`decodekit.problem.family_math.reference`), a peer
    (:func:`decodekit.impls.family_peers.peer`) or one build of the kit kernel by its name in
    the tuning records, ``family[KNOB=v,...]`` (:func:`build_defines`); errors name the
    argument and say why."""
    from decodekit.impls import family_peers, family_tuning
    from decodekit.problem import family_math

    if name in ("torch-fp32", "reference"):
        return family_math.reference(member)
    if name == "kit":
        return kit_kernel(member)
    if name == "best":
        return family_tuning.best(member, make=kit_kernel)
    if name.startswith("family["):
        return kit_kernel(member, build_defines(name))
    if name in family_peers.PEERS:
        try:
            return family_peers.peer(name, member)
        except SpecError as e:
            raise SpecError(str(e).replace("argument 'impl'", "argument '--impl'", 1)) from None
    raise SpecError(
        f"argument '--impl': expected one of {', '.join(IMPLEMENTATIONS)} or family[KNOB=v,...] "
        f"for {member.name}, "
        f"got {name!r}"
    )


def sass_builds(step: int = 20, directory: str | Path | None = None) -> list[dict]:
    """The family kernel's builds a kernel change should leave alone (every define named,
    the member's included): every entry of every member's table on every GPU in ``directory``
    (default :func:`~decodekit.impls.family_tuning.family_dir`), and every ``step``-th
    candidate of each member the tests check (:data:`CHECKED`); for ``decodekit sass
    --against``."""
    from decodekit.build.family_launch import member_defines
    from decodekit.impls.family_tuning import family_dir, full, search_space
    from decodekit.problem.family import parse

    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise ValueError(f"argument 'step': expected an int >= 1, got {step!r}")
    out = []
    for f in sorted(Path(directory or family_dir()).glob("*/*.json")):
        doc = json.loads(f.read_text())
        m = parse(doc["definition"])
        out += [{**member_defines(m), **full(e["defines"])} for e in doc["table"].values()]
    for m in CHECKED:
        out += [{**member_defines(m), **d} for d in search_space("full", m, (9, 0))[::step]]
    return list({tuple(sorted(d.items())): d for d in out}.values())
