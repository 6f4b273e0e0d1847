"""The family kernel without a GPU: kernels/gdn_decode_family.cu builds with NVRTC for every
serving member and the dense ones (T 1 and 4, fp32 and bf16 state) and the T=4 pool's verify
calls with no spills, its knobs are the ones declared, and FamilyLauncher rejects bad
arguments (the verify calls' intermediate_states too) before any CUDA work."""

from dataclasses import replace

import pytest
import torch

from decodekit.build import family_launch
from decodekit.build.compile import CompileError, compile_kernel, declared_defines
from decodekit.build.family_launch import ENTRY, SOURCE, FamilyLauncher, member_defines
from decodekit.impls.family_kernels import CHECKED, kit_kernel, supports
from decodekit.measure.family_check import _outputs
from decodekit.problem.family import SERVING, VERIFY, Member, cases, make_inputs
from decodekit.problem.spec import SpecError

ARCHS = ("sm_90a", "sm_100a")
MEMBERS = list(CHECKED)
POOL = SERVING[0]  # pool qk4/v8 l2norm fp32
DENSE = Member()


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("member", MEMBERS, ids=lambda m: m.name)
def test_every_member_builds_without_spills(member, arch):
    build = compile_kernel(SOURCE, arch, member_defines(member))
    r = build.usage(ENTRY)
    assert r.spills == 0 and r.stack_bytes == 0, (member.name, r)
    assert 0 < r.registers <= 128, (member.name, r)


def test_knobs_are_declared_with_their_defaults():
    knobs = declared_defines(SOURCE)
    own = dict(QK_HEADS=4, V_HEADS=8, SEQ_LEN=1, POOL=0, L2NORM=0, STATE_BF16=0, INTERMEDIATE=0,
               UPDATE=1, WARPS=4, ROWS_PER_WARP=8, LANES_PER_ROW=16, LOAD_HINT=1, STORE_HINT=0,
               REDUCE=0, GATES_ONCE=0, LAZY_DECAY=0, ITEMS=1, PREFETCH=0, REG_PREFETCH=0, UNROLL_TOKENS=0,
               CHAIN_SUMS=0, MIN_BLOCKS=0, TOKENS_ONCE=0, CONSECUTIVE=0, SOLVE=0, MMA=0, GRAM_MMA=0, SCALARS_FIRST=0, HEAD_TOKENS=0,
               ROW_STREAM=0, BLOCK_TILES=0, TILE_BUFFERS=2)  # fmt: skip
    assert {n: knobs[n] for n in own} == own
    assert set(knobs) == {*own, "FAST_GATES"}  # gdn.cuh's, which must stay 0


def test_reduce_scatter_builds_and_needs_few_enough_rows():
    m = Member(4, 8, seq_len=4, layout="pool", l2norm=True)
    for shape in (dict(WARPS=4, ROWS_PER_WARP=8, LANES_PER_ROW=16),
                  dict(WARPS=4, ROWS_PER_WARP=4, LANES_PER_ROW=32)):  # fmt: skip
        r = FamilyLauncher(m, {**shape, "REDUCE": 1}, arch="sm_90a").build.usage(ENTRY)
        assert r.spills == 0 and r.stack_bytes == 0, (shape, r)
    # 2 lanes per row hold 16 rows a step: 4 steps of rows cannot scatter over 2 lanes
    with pytest.raises(Exception, match="REDUCE 1 needs"):
        FamilyLauncher(m, dict(WARPS=1, ROWS_PER_WARP=64, LANES_PER_ROW=2, REDUCE=1),
                       arch="sm_90a")  # fmt: skip


def test_launcher_builds_the_members_defines_and_shape():
    m = Member(16, 32, seq_len=4, state_dtype="bfloat16", layout="pool", l2norm=True)
    run = FamilyLauncher(m, {"WARPS": 2, "ROWS_PER_WARP": 16}, arch="sm_90a")
    assert run.defines == dict(QK_HEADS=16, V_HEADS=32, SEQ_LEN=4, POOL=1, L2NORM=1,
                               STATE_BF16=1, INTERMEDIATE=0, UPDATE=1, WARPS=2,
                               ROWS_PER_WARP=16)  # fmt: skip
    assert run.launch_shape(3) == ((3 * 32 * 4,), (64,))
    assert run.build.usage(ENTRY).spills == 0


def test_pipelined_builds_take_items_in_turn_through_shared_tiles():
    m = Member(4, 8, layout="pool", l2norm=True)
    run = FamilyLauncher(m, {"PREFETCH": 1, "ITEMS": 4}, arch="sm_90a")
    # 3 * 8 heads * 4 row blocks = 96 items, 4 a block; a partial last block rounds up
    assert run.launch_shape(3) == ((24,), (128,)) and run.launch_shape(1) == ((8,), (128,))
    assert FamilyLauncher(m, {"ITEMS": 5}, arch="sm_90a").launch_shape(1) == ((7,), (128,))
    use = run.build.usage(ENTRY)  # two tiles a warp of 8 rows of fp32, and their barriers
    assert use.shared_bytes >= 4 * 2 * 8 * 128 * 4 and use.spills == 0
    with pytest.raises(CompileError, match="48 KiB"):  # 8 x 8 rows, 2 items: 64 KiB of tiles
        compile_kernel(SOURCE, "sm_90a", {"PREFETCH": 1, "WARPS": 8, "ROWS_PER_WARP": 8,
                                          "ITEMS": 2})  # fmt: skip
    one = compile_kernel(SOURCE, "sm_90a", {"PREFETCH": 1, "WARPS": 8, "ROWS_PER_WARP": 8})
    assert one.usage(ENTRY).shared_bytes < 48 * 1024  # one item a block: one tile a warp
    with pytest.raises(CompileError, match="sm_90 or later"):
        compile_kernel(SOURCE, "sm_80", {"PREFETCH": 1})
    with pytest.raises(CompileError, match="ITEMS must be 1..64"):
        compile_kernel(SOURCE, "sm_90a", {"ITEMS": 0})


def test_the_verify_calls_are_two_member_defines():
    flags = [(member_defines(m)["INTERMEDIATE"], member_defines(m)["UPDATE"]) for m in VERIFY]
    assert flags == [(1, 1), (0, 0), (1, 0)]
    assert all(member_defines(m)["SEQ_LEN"] == 4 for m in VERIFY)
    assert {"INTERMEDIATE", "UPDATE"} <= set(family_launch.MEMBER_DEFINES)
    with pytest.raises(ValueError, match="argument 'defines': INTERMEDIATE come from the member"):
        FamilyLauncher(VERIFY[0], {"INTERMEDIATE": 0}, arch="sm_90a")
    # the kernel refuses a verify call of one token
    with pytest.raises(CompileError, match="static assertion"):
        compile_kernel(SOURCE, "sm_90a", {"SEQ_LEN": 1, "UPDATE": 0})


def test_an_undeclared_define_is_refused():
    with pytest.raises(ValueError, match="gdn_decode_family.cu declares no NOT_A_KNOB"):
        compile_kernel(SOURCE, "sm_90a", {"NOT_A_KNOB": 1})
    with pytest.raises(ValueError, match="declares no NOT_A_KNOB"):
        FamilyLauncher(DENSE, {"NOT_A_KNOB": 1}, arch="sm_90a")


def test_member_defines_are_not_tuning_defines():
    with pytest.raises(ValueError, match="argument 'defines': V_HEADS come from the member"):
        FamilyLauncher(DENSE, {"V_HEADS": 16}, arch="sm_90a")


def test_bad_knob_values_fail_to_compile():
    for bad in (
        {"FAST_GATES": 1},
        {"LANES_PER_ROW": 3},
        {"WARPS": 3},
        {"SEQ_LEN": 17},
        {"SEQ_LEN": 4, "INTERMEDIATE": 2},
        {"SEQ_LEN": 4, "UPDATE": 2},
    ):
        with pytest.raises(CompileError, match="static assertion"):
            compile_kernel(SOURCE, "sm_90a", bad)


def test_supports_and_kit_kernel():
    assert all(supports(m) is None for m in MEMBERS)
    assert "head_size 64" in supports(Member(head_size=64))
    with pytest.raises(SpecError, match="argument 'member'.*head_size 64"):
        kit_kernel(Member(head_size=64), arch="sm_90a")
    run = kit_kernel(POOL, arch="sm_90a")
    assert run is kit_kernel(POOL, arch="sm_90a") and isinstance(run, FamilyLauncher)
    assert run is not kit_kernel(POOL, {"WARPS": 2}, arch="sm_90a")


def test_a_build_by_its_record_name_is_that_kit_kernel(monkeypatch):
    from decodekit.impls import family_kernels, family_tuning

    name = "family[WARPS=1, ROWS_PER_WARP=16,SOLVE=1]"
    want = family_tuning.full({"WARPS": 1, "ROWS_PER_WARP": 16, "SOLVE": 1})
    assert family_kernels.build_defines(name) == want
    full_name = family_tuning.label(want)  # what the tuning records call it
    assert family_kernels.build_defines(full_name) == want
    made = {}
    monkeypatch.setattr(family_kernels, "kit_kernel", lambda m, d: made.update(m=m, d=d) or "k")
    assert family_kernels.implementation(full_name, POOL) == "k"
    assert made == {"m": POOL, "d": want}
    assert family_kernels.is_kit(full_name) and family_kernels.is_kit("best")
    assert not family_kernels.is_kit("flashinfer")
    for bad, match in [("family[]", "expected family\\[KNOB=int"),
                       ("family[WARPS=two]", "expected family\\[KNOB=int"),
                       ("family[NOPE=1]", "got {'NOPE': 1}"),
                       ("famly[WARPS=1]", "or family\\[KNOB=v,...\\] for")]:  # fmt: skip
        with pytest.raises(SpecError, match="argument '--impl': " + ".*" + match):
            family_kernels.implementation(bad, POOL)


# ---- argument checks before any CUDA work (CPU tensors) ----------------------------------


def _call(member, B=8, **change):
    case = cases(member, (B,))[0]
    x = make_inputs(case)
    x.update(_outputs(case, x))
    x.update(change)
    run = kit_kernel(member, arch="sm_90a")
    return run, x


def _raises(member, match, **change):
    run, x = _call(member, **change)
    with pytest.raises(SpecError, match=match):
        run(**x)


def test_a_well_formed_call_on_the_cpu_is_refused_for_its_device():
    _raises(POOL, r"argument 'q': expected a CUDA tensor, got shape \(8, 1, 4, 128\)")
    _raises(DENSE, "argument 'q': expected a CUDA tensor", state=None)  # None: zeros


@pytest.mark.parametrize(
    "name, bad, match",
    [
        ("q", lambda x: x.float(), r"argument 'q': expected dtype torch.bfloat16, got .*float32"),
        ("k", lambda x: x[:, :, :2], r"argument 'k': expected shape \(8, 1, 4, 128\), got"),
        ("v", lambda x: x.repeat(1, 4, 1, 1), r"argument 'v': expected shape \(8, 1, 8, 128\)"),
        ("A_log", lambda x: x[:4], r"argument 'A_log': expected shape \(8,\)"),
        ("dt_bias", lambda x: x.double(), "argument 'dt_bias': expected dtype torch.float32"),
        ("a", lambda x: x[:4], r"argument 'a': expected shape \(8, 1, 8\)"),
        ("b", lambda x: x.float(), "argument 'b': expected dtype torch.bfloat16"),
        ("output", lambda x: torch.empty(8, 1, 8, 256, dtype=x.dtype)[..., :128],
         "argument 'output': expected a contiguous tensor"),
        ("state", lambda x: x.to(torch.bfloat16), "argument 'state': expected dtype torch.float32"),
        ("state_indices", lambda x: x.long(), "argument 'state_indices': expected dtype torch.int32"),
        ("state_indices", lambda x: x[:4], r"argument 'state_indices': expected shape \(8,\)"),
        ("state_indices", lambda x: None, "argument 'state_indices': expected a torch.Tensor"),
        ("new_state", lambda x: x.clone(), "argument 'new_state': expected the pool itself"),
        ("state", lambda x: None, "argument 'state': expected the pool"),
    ],
    ids=lambda x: x if isinstance(x, str) and " " not in x else "",
)  # fmt: skip
def test_pool_argument_errors_name_the_argument(name, bad, match):
    run, x = _call(POOL)
    x[name] = bad(x[name])
    with pytest.raises(SpecError, match=match):
        run(**x)


def test_dense_argument_errors():
    m = Member(16, 32, seq_len=4, state_dtype="bfloat16")
    _raises(
        m, r"argument 'state': expected dtype torch.bfloat16", state=torch.zeros(8, 32, 128, 128)
    )
    _raises(m, r"argument 'new_state': expected shape \(8, 32, 128, 128\)",
            new_state=torch.zeros(4, 32, 128, 128, dtype=torch.bfloat16))  # fmt: skip
    _raises(m, "argument 'state_indices': expected None", state_indices=torch.arange(8).int())
    _raises(m, r"argument 'q': expected a tensor \[B>=1, 4, 16, 128\]", q=torch.zeros(8, 16))


def test_indices_are_validated_once_per_tensor_version(monkeypatch):
    calls = []
    real = family_launch.validate_indices
    monkeypatch.setattr(family_launch, "validate_indices",
                        lambda idx, P: calls.append(P) or real(idx, P))  # fmt: skip
    run = FamilyLauncher(POOL, arch="sm_90a")
    idx = torch.tensor([3, -1, 0, 5], dtype=torch.int32)
    for _ in range(3):
        run._check_indices(idx, 8)
    assert calls == [8]
    run._check_indices(idx, 6)  # another pool size: checked again
    assert calls == [8, 6]
    idx[1] = 3  # in place: a new version, a duplicate live slot
    with pytest.raises(SpecError, match=r"slot 3 is named by rows \[0, 1\]"):
        run._check_indices(idx, 8)
    with pytest.raises(SpecError, match="expected -1 .* got 8"):
        run._check_indices(torch.tensor([8, 0], dtype=torch.int32), 8)


# ---- the verify calls' buffer ---------------------------------------------------------------

INTER, NOUPDATE, _ = VERIFY


def test_a_well_formed_verify_call_on_the_cpu_is_refused_for_its_device():
    for m in (INTER, replace(INTER, state_dtype="bfloat16")):
        _raises(m, r"argument 'q': expected a CUDA tensor")
    _raises(NOUPDATE, r"argument 'q': expected a CUDA tensor")


@pytest.mark.parametrize(
    "member, bad, match",
    [
        (INTER, lambda x: None, r"argument 'intermediate_states': expected a float32 buffer "
         r"\[8, 4, 8, 128, 128\] \(gdn_decode_pool_qk4_v8_d128_k_last_t4_inter_l2norm writes"),
        (INTER, lambda x: x.to(torch.bfloat16), r"argument 'intermediate_states': expected "
         r"torch.float32 \[8, 4, 8, 128, 128\], got torch.bfloat16"),
        (INTER, lambda x: x[:4], r"argument 'intermediate_states': expected torch.float32 "
         r"\[8, 4, 8, 128, 128\], got torch.float32 \[4, 4, 8, 128, 128\]"),
        (INTER, lambda x: x.transpose(3, 4), "argument 'intermediate_states': expected a "
         "contiguous tensor"),
        (NOUPDATE, lambda x: torch.empty(8, 4, 8, 128, 128), "argument 'intermediate_states': "
         "expected None .* writes no intermediate states"),
        (POOL, lambda x: torch.empty(8, 1, 8, 128, 128), "argument 'intermediate_states': "
         "expected None"),
    ],
    ids=["none", "dtype", "rows", "strides", "noupdate", "final"],
)  # fmt: skip
def test_intermediate_states_errors_name_the_argument(member, bad, match):
    run, x = _call(member)
    x["intermediate_states"] = bad(x.get("intermediate_states"))
    with pytest.raises(SpecError, match=match) as e:
        run(**x)
    assert "\n" not in str(e.value)
