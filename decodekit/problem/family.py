"""The GDN decode family: the calls serving engines make, as data, beside the contest's one.

A :class:`Member` names q/k and value heads, head size, tokens per call (``T``: 1 for decode,
2..8 for speculative verify), the state's dtype (fp32 or bf16, fp32 math inside), its layout
(``dense`` ``[B, HV, V, K]`` or a ``pool`` ``[P, HV, V, K]`` read and written in place through
per-request slot indices, ``-1`` a padding row) and whether q and k are L2-normalised in the
kernel. A call of T > 1 (speculative verify) may also write every token's state
(``intermediate``: ``S_t``, the state after token t, to a caller's buffer ``[B, T, HV, V, K]``
indexed by batch row, so the engine can commit the accepted prefix) and may leave the state
as it was (``update=False``: outputs only), as FlashInfer's ``gated_delta_rule_mtp`` does with
``intermediate_states_buffer`` and ``disable_state_update``. Its name is flashinfer-bench's
vocabulary; the contest definition is the default member and keeps its name exactly.

Per value head ``h`` (q/k head ``h // (HV / H)``) and token ``t``::

    q, k  = l2norm(q[t]), l2norm(k[t])       # only with l2norm: x / sqrt(sum x^2 + 1e-6)
    g     = exp(-exp(A_log[h]) * softplus(a[t,h] + dt_bias[h]));  beta = sigmoid(b[t,h])
    S     = g * S;  S = S + outer(beta * (v[t,h] - S @ k), k);  out[t,h] = scale * S @ q

>>> Member().name
'gdn_decode_qk4_v8_d128_k_last'
>>> Member(16, 32, layout="pool", l2norm=True).name
'gdn_decode_pool_qk16_v32_d128_k_last_l2norm'
>>> parse("gdn_decode_pool_qk4_v8_d128_k_last_t4_bf16state") == Member(
...     4, 8, seq_len=4, state_dtype="bfloat16", layout="pool")
True
>>> Member(4, 8, seq_len=4, layout="pool", l2norm=True, intermediate=True, update=False).name
'gdn_decode_pool_qk4_v8_d128_k_last_t4_inter_noupdate_l2norm'
"""

from __future__ import annotations

import re
import uuid as uuidlib
from dataclasses import dataclass, replace

import torch

from decodekit.problem.spec import SpecError

BATCH_SIZES = (1, 4, 8, 16, 32, 64, 128, 256)
L2_EPS = 1e-6
_NAME_RE = re.compile(
    r"^gdn_decode(?P<pool>_pool)?_qk(?P<h>\d+)_v(?P<hv>\d+)_d(?P<d>\d+)_k_last"
    r"(?:_t(?P<t>\d+))?(?P<inter>_inter)?(?P<noup>_noupdate)?(?P<bf16>_bf16state)?"
    r"(?P<l2>_l2norm)?$"
)


STATE_DTYPES = ("float32", "bfloat16")  # the state dtypes a member may name


@dataclass(frozen=True)
class Member:
    qk_heads: int = 4
    v_heads: int = 8
    head_size: int = 128
    seq_len: int = 1
    state_dtype: str = "float32"
    layout: str = "dense"
    l2norm: bool = False
    intermediate: bool = False  # also write S_t for every token t (T > 1 only)
    update: bool = True  # write the final state back (False: outputs only, T > 1 only)

    def __post_init__(self):
        if self.v_heads % self.qk_heads or self.qk_heads < 1:
            raise SpecError(
                f"argument 'v_heads': expected a multiple of qk_heads={self.qk_heads}, "
                f"got {self.v_heads}"
            )
        if self.state_dtype not in STATE_DTYPES:
            raise SpecError(
                f"argument 'state_dtype': expected float32 or bfloat16, got {self.state_dtype!r}"
            )
        if self.layout not in ("dense", "pool"):
            raise SpecError(f"argument 'layout': expected dense or pool, got {self.layout!r}")
        if not 1 <= self.seq_len <= 16:
            raise SpecError(f"argument 'seq_len': expected 1..16, got {self.seq_len!r}")
        for arg, value, plain in (("intermediate", self.intermediate, False),
                                  ("update", self.update, True)):  # fmt: skip
            if value != plain and self.seq_len == 1:
                raise SpecError(
                    f"argument {arg!r}: expected {plain} at seq_len 1 (a verify call has "
                    f"seq_len > 1), got {value!r}"
                )

    @property
    def name(self) -> str:
        pool = "_pool" if self.layout == "pool" else ""
        t = f"_t{self.seq_len}" if self.seq_len > 1 else ""
        t += ("_inter" if self.intermediate else "") + ("" if self.update else "_noupdate")
        bf = "_bf16state" if self.state_dtype == "bfloat16" else ""
        l2 = "_l2norm" if self.l2norm else ""
        head = f"qk{self.qk_heads}_v{self.v_heads}_d{self.head_size}_k_last"
        return f"gdn_decode{pool}_{head}{t}{bf}{l2}"

    @property
    def contract(self) -> str:
        """A pool is updated in place; a dense member is the contest's DPS call."""
        return "pool" if self.layout == "pool" else "dps"

    @property
    def dtype(self) -> torch.dtype:
        return getattr(torch, self.state_dtype)

    def output_shape(self, batch_size: int) -> tuple[int, ...]:
        """``output`` of a call of ``batch_size`` rows: ``[B, T, HV, V]`` (bf16)."""
        return (batch_size, self.seq_len, self.v_heads, self.head_size)

    def intermediate_shape(self, batch_size: int) -> tuple[int, ...]:
        """``intermediate_states`` of a verify call: ``[B, T, HV, V, K]`` (the state's dtype)."""
        return (*self.output_shape(batch_size), self.head_size)

    def state_bytes(self, batch_size: int) -> int:
        """Bytes of state one call of ``batch_size`` rows reads and writes (the floor's
        traffic): each row's state read once, written back unless ``update`` is False, and
        with ``intermediate`` written T more times (S_0 .. S_{T-1}).

        >>> m, one = Member(seq_len=4, layout="pool"), 8 * 128 * 128 * 4  # one fp32 state
        >>> [replace(m, intermediate=i, update=u).state_bytes(1) // one
        ...  for i, u in ((False, True), (True, True), (False, False), (True, False))]
        [2, 6, 1, 5]
        """
        per = self.v_heads * self.head_size * self.head_size * (2 if self.bf16 else 4)
        writes = int(self.update) + (self.seq_len if self.intermediate else 0)
        return batch_size * per * (1 + writes)

    @property
    def bf16(self) -> bool:
        return self.state_dtype == "bfloat16"


def parse(name: str) -> Member:
    m = _NAME_RE.match(name)
    if not m:
        raise SpecError(
            f"argument 'definition': expected gdn_decode[_pool]_qk<H>_v<HV>_d<D>_k_last"
            f"[_t<T>[_inter][_noupdate]][_bf16state][_l2norm], got {name!r}"
        )
    return Member(int(m["h"]), int(m["hv"]), int(m["d"]), int(m["t"] or 1),
                  "bfloat16" if m["bf16"] else "float32", "pool" if m["pool"] else "dense",
                  bool(m["l2"]), bool(m["inter"]), not m["noup"])  # fmt: skip


# The members the serving engines call (issue: pool fp32 qk4/v8 with l2norm, pool qk16/v32,
# T=4 verify, bf16-state pool), beside the contest's own.
SERVING = (
    Member(4, 8, layout="pool", l2norm=True),
    Member(16, 32, layout="pool", l2norm=True),
    Member(4, 8, seq_len=4, layout="pool", l2norm=True),
    Member(4, 8, state_dtype="bfloat16", layout="pool", l2norm=True),
)

# The speculative-verify calls of the T=4 serving member (FlashInfer's gated_delta_rule_mtp
# with intermediate_states_buffer and / or disable_state_update): every token's state and the
# final one, outputs only, and every token's state with the pool left as it was (SGLang's
# verify, which then commits the accepted prefix from the buffer).
VERIFY = tuple(
    replace(SERVING[2], intermediate=i, update=u)
    for i, u in ((True, True), (False, False), (True, False))
)


@dataclass(frozen=True)
class Case:
    """One workload of a member: batch size, pool size, padding rows, a stable uuid, and the
    pool's null slot (``None``: every slot may be live).

    A null slot is a slot no request owns, as serving engines reserve one (vLLM v1's block
    pool keeps block 0 as its null block; FlashInfer's bf16-state kernel sends ``-1`` rows to
    slot 0): live indices never name it, so an implementation that parks padding rows there
    loses no request's state."""

    member: Member
    batch_size: int
    pool_size: int
    padding: int
    uuid: str
    null_slot: int | None = None

    def __post_init__(self):
        if self.null_slot is None:
            return
        if self.member.layout != "pool":
            raise SpecError(
                f"argument 'null_slot': expected None for the dense member {self.member.name}, "
                f"got {self.null_slot!r}"
            )
        if not 0 <= self.null_slot < self.pool_size or self.pool_size - 1 < self.batch_size:
            raise SpecError(
                f"argument 'null_slot': expected a slot of 0..{self.pool_size - 1} leaving "
                f"{self.batch_size} others for the live rows, got {self.null_slot!r}"
            )


NULL_SLOT = 0  # the slot the pool members' cases reserve


def parse_batch_sizes(text, argument: str) -> list[int]:
    """Batch sizes as a command line names them: ``"1,64"`` (``"B1,B64"`` too) or a sequence
    of ints, each once, in order; else a one-line error naming ``argument``.

    >>> parse_batch_sizes("B1, 64,1", "--workloads")
    [1, 64]
    """
    items = text.split(",") if isinstance(text, str) else text
    try:
        sizes = [int(str(x).strip().lstrip("Bb")) for x in items]
    except (TypeError, ValueError):
        sizes = []
    if not sizes or min(sizes) < 1:
        raise ValueError(f"argument {argument!r}: expected comma-separated batch sizes >= 1 "
                         f"like '1,64', got {text!r}")  # fmt: skip
    return list(dict.fromkeys(sizes))


def cases(member: Member, batch_sizes=BATCH_SIZES) -> list[Case]:
    """The member's workloads: pools of 2B slots with slot 0 reserved as the null slot (live
    indices from 1..2B-1) and ``max(1, B // 8)`` padding rows for B >= 4 (none at B=1); a
    dense member has neither. Uuids from the name, B and the null slot, so a record made on
    the inputs of a case without one never names the new inputs."""
    out = []
    for B in batch_sizes:
        pool = member.layout == "pool"
        pad = (max(1, B // 8) if B >= 4 else 0) if pool else 0
        null = NULL_SLOT if pool else None
        tail = f"/null{null}" if null is not None else ""
        u = str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"decodekit/{member.name}/B{B}{tail}"))
        out.append(Case(member, B, 2 * B if pool else B, pad, u, null))
    return out


def manifest_path(member: Member):
    from decodekit.base.paths import manifest_dir

    return manifest_dir() / f"{member.name}.jsonl"


def manifest_lines(member: Member) -> str:
    """The member's workloads as manifest lines (what ``data/workloads/<name>.jsonl`` holds)."""
    import json

    return "".join(
        json.dumps({"uuid": c.uuid, "batch_size": c.batch_size, "pool_size": c.pool_size,
                    "padding": c.padding,
                    **({"null_slot": c.null_slot} if c.null_slot is not None else {})}) + "\n"
        for c in cases(member)
    )  # fmt: skip


def load_cases(member: Member) -> list[Case]:
    """The member's workloads from its manifest (the only list of them); a member without
    one gets :func:`cases`, generated the same way."""
    import json

    path = manifest_path(member)
    if not path.is_file():
        return cases(member)
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    # the contest's manifest has no pool: one slot per row, no padding; a line without
    # "null_slot" has none (its inputs are those it was recorded on)
    return [
        Case(member, r["batch_size"], r.get("pool_size", r["batch_size"]), r.get("padding", 0),
             r["uuid"], r.get("null_slot"))
        for r in rows
    ]  # fmt: skip


def make_inputs(case: Case, device="cpu", *, step: int = 0) -> dict:
    """Seeded inputs of one call (``step`` > 0: the next tokens of the same requests; the
    state and weights stay those of step 0). Pool: ``state`` is the pool and
    ``state_indices`` a scattered choice of slots (never the case's null slot), ``padding``
    of them -1."""
    from decodekit.problem.workloads import seed_of

    m, B, T = case.member, case.batch_size, case.member.seq_len
    H, HV, D = m.qk_heads, m.v_heads, m.head_size
    gen0 = torch.Generator().manual_seed(seed_of(case.uuid))
    gen = torch.Generator().manual_seed(seed_of(case.uuid) + step)
    bf = torch.bfloat16
    A_log = -1.0 + 2.5 * torch.rand(HV, generator=gen0)
    dt_bias = -2.0 + 3.0 * torch.rand(HV, generator=gen0)
    state = torch.randn(case.pool_size, HV, D, D, generator=gen0) * 0.3
    if case.null_slot is None:
        perm = torch.randperm(case.pool_size, generator=gen0)[:B].to(torch.int32)
    else:  # the same draw over the slots other than the null one
        slots = torch.arange(case.pool_size)[torch.arange(case.pool_size) != case.null_slot]
        perm = slots[torch.randperm(case.pool_size - 1, generator=gen0)[:B]].to(torch.int32)
    if case.padding:
        perm[torch.randperm(B, generator=gen0)[: case.padding]] = -1
    k_std = 1.0 if m.l2norm else D**-0.5
    out = dict(
        q=torch.randn(B, T, H, D, generator=gen).to(bf),
        k=(torch.randn(B, T, H, D, generator=gen) * k_std).to(bf),
        v=torch.randn(B, T, HV, D, generator=gen).to(bf),
        state=state.to(m.dtype),
        A_log=A_log.float(),
        a=(torch.randn(B, T, HV, generator=gen) * 2.0).to(bf),
        dt_bias=dt_bias.float(),
        b=(torch.randn(B, T, HV, generator=gen) * 2.0).to(bf),
    )
    out = {n: t.to(device) for n, t in out.items()}
    out["scale"] = None
    out["state_indices"] = perm.to(device) if m.layout == "pool" else None
    return out


def validate_indices(indices: torch.Tensor, pool_size: int) -> None:
    """Reject, before any launch, slot indices out of range (``-1`` is padding) and live
    indices that repeat (two requests would write one slot)."""
    idx = indices.detach().to("cpu", torch.int64)
    bad = idx[(idx < -1) | (idx >= pool_size)]
    if len(bad):
        raise SpecError(
            f"argument 'state_indices': expected -1 (padding) or 0..{pool_size - 1}, "
            f"got {int(bad[0])}"
        )
    live = idx[idx >= 0]
    uniq, counts = torch.unique(live, return_counts=True)
    if (counts > 1).any():
        slot = int(uniq[counts > 1][0])
        rows = torch.nonzero(idx == slot).flatten().tolist()
        raise SpecError(
            f"argument 'state_indices': slot {slot} is named by rows {rows}; live indices "
            "must be distinct"
        )


def check_intermediate_states(member: Member, buffer, batch_size: int) -> None:
    """Reject an ``intermediate_states`` argument that does not fit ``member``: None unless
    the member writes every token's state, else a tensor ``[B, T, HV, V, K]`` of the state's
    dtype (layout, device and alignment are a launcher's to check)."""
    m = member
    shape = m.intermediate_shape(batch_size)
    if not m.intermediate:
        if buffer is not None:
            got = list(buffer.shape) if isinstance(buffer, torch.Tensor) else type(buffer).__name__
            raise SpecError(
                f"argument 'intermediate_states': expected None ({m.name} writes no "
                f"intermediate states), got {got}"
            )
        return
    if not isinstance(buffer, torch.Tensor):
        raise SpecError(
            f"argument 'intermediate_states': expected a {m.state_dtype} buffer {list(shape)} "
            f"({m.name} writes every token's state), got {type(buffer).__name__}"
        )
    if buffer.dtype != m.dtype or tuple(buffer.shape) != shape:
        raise SpecError(
            f"argument 'intermediate_states': expected {m.dtype} {list(shape)}, got "
            f"{buffer.dtype} {list(buffer.shape)}"
        )


def with_state(member: Member, state_dtype: str) -> Member:
    return replace(member, state_dtype=state_dtype)
