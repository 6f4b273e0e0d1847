"""The family's peers on a GPU, each in its native call (decodekit.impls.family_peers), pass
decodekit.measure.family_check.check on every serving member they support (and FLA on the
serving members' dense twins, its only layout) at B 1, 8 and 64: output and live slots
against fp64, unnamed slots bit-identical, padding rows zero, except where a peer declares
its padding rows park in the null slot (FlashInfer's bf16 state), which the result notes.
A peer whose package is missing skips with the reason."""

from dataclasses import replace

import pytest

from decodekit.impls.family_peers import PEERS, peer, supports, why_not
from decodekit.measure import family_check
from decodekit.problem.family import SERVING, VERIFY, cases

pytestmark = pytest.mark.gpu

BATCH_SIZES = (1, 8, 64)
MEMBERS = (*SERVING, *(replace(m, layout="dense") for m in SERVING), *VERIFY,
           *(replace(m, state_dtype="bfloat16") for m in VERIFY))  # fmt: skip
PAIRS = [(name, m) for name in PEERS for m in MEMBERS if supports(name, m) is None]


@pytest.mark.parametrize("B", BATCH_SIZES)
@pytest.mark.parametrize("name, member", PAIRS, ids=[f"{n}-{m.name}" for n, m in PAIRS])
def test_peer_passes_the_members_contracts(name, member, B):
    why = why_not(name, member)
    if why:
        pytest.skip(why)
    run = peer(name, member)
    (case,) = cases(member, (B,))
    res = family_check.check(run, case, "cuda")
    assert res.passed, res.summary()
    parks = getattr(run, "padding_uses_null_slot", False) and case.padding > 0
    assert bool(res.notes) == parks, res.summary()
