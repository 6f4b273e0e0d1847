"""Compile-only tests: every kernel builds for sm_90a and sm_100a with no GPU present.

Also the build cache (hit when nothing changed, rebuild after an edit), compile-error messages,
arch checks, and the launcher's argument checks that run before anything touches a GPU.
"""

import ctypes
import shutil
import types

import pytest
import torch

from decodekit.build import compile as dk_compile
from decodekit.build import launch as dk_launch
from decodekit.build.compile import (
    CompileError,
    cli_compile,
    compile_kernel,
    cubin_arch,
    kernel_files,
)
from decodekit.build.launch import NAMES, kernel_impl
from decodekit.impls.registry import resource_usage
from decodekit.problem.spec import SpecError
from decodekit.problem.workloads import empty_outputs, make_inputs

ARCHS = ("sm_90a", "sm_100a")
KERNELS = [f.name for f in kernel_files()]
BROKEN_LINE = 4
BROKEN = """#include "gdn.cuh"
extern "C" __global__ void broken(float* y) {
    float x = 1.f;
    y[0] = x + not_declared;
}
"""


@pytest.fixture
def counted(monkeypatch):
    """Counts real NVRTC compiles (the disk cache off, so each build is NVRTC's)."""
    monkeypatch.setenv("DECODEKIT_CACHE", "off")
    calls = []
    real = dk_compile._nvrtc_compile

    def spy(*args):
        calls.append(args[0])
        return real(*args)

    monkeypatch.setattr(dk_compile, "_nvrtc_compile", spy)
    return calls


@pytest.fixture
def tmp_kernels(tmp_path):
    """A private copy of kernels/ to edit."""
    for name in ("gdn.cuh", "gdn_decode_baseline.cu"):
        shutil.copy(dk_compile.KERNELS_DIR / name, tmp_path / name)
    return tmp_path


def test_kernels_found():
    assert "gdn_decode_baseline.cu" in KERNELS and "empty.cu" in KERNELS


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("kernel", KERNELS)
def test_every_kernel_compiles_for_both_archs(kernel, arch):
    build = compile_kernel(kernel, arch=arch)
    assert build.arch == arch
    assert build.arch_from_cubin == arch == cubin_arch(build.cubin)
    assert build.cubin[:4] == b"\x7fELF"
    assert build.resources, "ptxas -v reported no entry point"
    assert all(r.registers > 0 for r in build.resources.values())
    assert "-lineinfo" in build.options and "-std=c++17" in build.options


def test_baseline_resources_reported():
    r = resource_usage("baseline", arch="sm_90a")
    assert r.registers > 0 and r.shared_bytes == 2 * 128 * 4  # q and k staged as fp32
    assert (
        resource_usage("gdn_decode_baseline.cu", arch="sm_100a")["gdn_decode_baseline"].spills == 0
    )


def test_cubin_arch_reads_sm_number_and_suffix():
    sm90 = compile_kernel("empty.cu", arch="sm_90").cubin
    assert cubin_arch(sm90) == "sm_90"
    assert cubin_arch(compile_kernel("empty.cu", arch="sm_90a").cubin) == "sm_90a"
    with pytest.raises(ValueError, match="not a 64-bit CUDA ELF"):
        cubin_arch(b"not an elf" * 10)


def test_cache_hit_when_unchanged(tmp_kernels, counted):
    first = compile_kernel("gdn_decode_baseline.cu", "sm_90a", kernels_dir=tmp_kernels)
    again = compile_kernel("gdn_decode_baseline.cu", "sm_90a", kernels_dir=tmp_kernels)
    assert again is first and len(counted) == 1


def test_touch_without_change_reuses_build(tmp_kernels, counted):
    src = tmp_kernels / "gdn_decode_baseline.cu"
    first = compile_kernel(src, "sm_90a")
    src.write_text(src.read_text())  # new mtime, same text
    again = compile_kernel(src, "sm_90a")
    assert again.digest == first.digest and len(counted) == 1
    assert not again.stale


@pytest.mark.parametrize("edited", ["gdn_decode_baseline.cu", "gdn.cuh"])
def test_edit_rebuilds(tmp_kernels, counted, edited):
    first = compile_kernel("gdn_decode_baseline.cu", "sm_90a", kernels_dir=tmp_kernels)
    path = tmp_kernels / edited
    path.write_text(path.read_text() + "\n// edited\n")
    assert first.stale
    again = compile_kernel("gdn_decode_baseline.cu", "sm_90a", kernels_dir=tmp_kernels)
    assert again.digest != first.digest and len(counted) == 2
    assert not again.stale


def test_defines_change_the_build():
    plain = compile_kernel("empty.cu", "sm_90a")
    defined = compile_kernel("empty.cu", "sm_90a", defines={"ROWS_PER_BLOCK": 4, "FAST": True})
    assert defined.digest != plain.digest
    assert "-DROWS_PER_BLOCK=4" in defined.options and "-DFAST" in defined.options
    with pytest.raises(ValueError, match="argument 'defines'"):
        compile_kernel("empty.cu", "sm_90a", defines={"NOT AN ID": 1})


def test_compile_error_names_file_and_line(tmp_kernels):
    bad = tmp_kernels / "gdn_decode_broken.cu"
    bad.write_text(BROKEN)
    with pytest.raises(CompileError) as info:
        compile_kernel(bad, "sm_100a")
    err = info.value
    assert err.line == BROKEN_LINE and err.file.endswith("gdn_decode_broken.cu")
    msg = str(err)
    assert f"gdn_decode_broken.cu:{BROKEN_LINE}: error" in msg and "not_declared" in msg
    assert len(msg.splitlines()) < 10, "the message should be the error, not the whole log"


def test_fixing_the_error_recovers(tmp_kernels):
    bad = tmp_kernels / "gdn_decode_broken.cu"
    bad.write_text(BROKEN)
    with pytest.raises(CompileError):
        compile_kernel(bad, "sm_90a")
    bad.write_text(BROKEN.replace("not_declared", "2.f"))
    assert compile_kernel(bad, "sm_90a").resources["broken"].registers > 0


@pytest.mark.parametrize("arch", ["sm_91", "90a", "compute_90", "sm_100x"])
def test_bad_arch_is_a_clear_error(arch):
    with pytest.raises(ValueError, match=r"argument 'arch'.*sm_90a"):
        compile_kernel("empty.cu", arch=arch)


def test_no_gpu_and_no_arch_says_what_to_pass(monkeypatch):
    monkeypatch.setattr(dk_compile, "_gpu_arch", lambda: None)
    with pytest.raises(ValueError, match=r'arch="sm_90a".*arch="sm_100a"'):
        compile_kernel("empty.cu")


def test_unknown_kernel_lists_known_ones():
    with pytest.raises(FileNotFoundError, match="gdn_decode_baseline.cu"):
        compile_kernel("no_such_kernel.cu", "sm_90a")


def test_cli_compile_table(capsys):
    assert cli_compile(["gdn_decode_baseline.cu", "empty"], "sm_90a,sm_100a") == 0
    out = capsys.readouterr().out
    rows = [ln for ln in out.splitlines() if ln.startswith("gdn_decode_baseline.cu")]
    assert len(rows) == 2 and all(ln.rstrip().endswith("ok") for ln in rows)
    assert "sm_100a  sm_100a" in out


def test_cli_compile_fails_on_a_broken_kernel(tmp_kernels, capsys):
    bad = tmp_kernels / "gdn_decode_broken.cu"
    bad.write_text(BROKEN)
    assert cli_compile([str(bad)], "sm_90a") == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and f"gdn_decode_broken.cu:{BROKEN_LINE}" in out


def _args(B=3, **override):
    inputs, outputs = make_inputs(B), empty_outputs(B)
    args = {**inputs, **outputs, **override}
    return [args[n] for n in NAMES[:8]] + [args["scale"], args["output"], args["new_state"]]


@pytest.fixture(scope="module")
def launcher():
    return kernel_impl(
        "gdn_decode_baseline.cu",
        "gdn_decode_baseline",
        lambda B: ((B * 8,), (128,), 0),
        arch="sm_90a",
    )


@pytest.mark.parametrize(
    "override, argument",
    [
        ({}, "q"),  # CPU tensors
        ({"q": torch.zeros(3, 1, 4, 64, dtype=torch.bfloat16)}, "q"),
        ({"scale": "big"}, "scale"),
    ],
)
def test_launcher_rejects_bad_arguments_before_any_launch(launcher, override, argument):
    with pytest.raises(SpecError, match=f"argument '{argument}'"):
        launcher(*_args(**override))
    assert not launcher._functions, "nothing may be loaded or launched"


class _CType(ctypes.Structure):
    _fields_ = [(n, ctypes.c_void_p) for n in NAMES[:8]] + [("scale", ctypes.c_float)]
    _fields_ += [(n, ctypes.c_void_p) for n in NAMES[8:]] + [("batch_size", ctypes.c_int)]


def _unpack(raw: bytes) -> _CType:
    return _CType.from_buffer_copy(raw.ljust(ctypes.sizeof(_CType), b"\0"))  # C tail padding


def test_packed_arguments_follow_the_c_abi():
    offsets = tuple(getattr(_CType, name).offset for name, _ in _CType._fields_)
    assert dk_launch._ARG_OFFSETS == offsets
    assert dk_launch._SCALE_OFFSET == _CType.scale.offset


@pytest.fixture
def cpu_launch(monkeypatch):
    """A baseline launcher whose GPU side is replaced by a recorder, so the host path (checks,
    packing, launch arguments) runs on CPU tensors."""
    real_validate = dk_launch.validate
    monkeypatch.setattr(
        dk_launch, "validate", lambda t, device=None, **kw: real_validate(t, device=None, **kw)
    )
    monkeypatch.setattr(dk_launch, "_get_device", lambda: -1)
    monkeypatch.setattr(dk_launch, "_raw_stream", lambda dev: 777)
    calls = []

    def make(inplace_ok=False):
        run = kernel_impl(
            "gdn_decode_baseline.cu",
            "gdn_decode_baseline",
            lambda B: ((B * 8,), (128,), 0),
            arch="sm_90a",
            inplace_ok=inplace_ok,
        )
        run._function = lambda dev: types.SimpleNamespace(kernel=types.SimpleNamespace(ptr=1234))
        # cuda.bindings returns (CUresult,): 0 is CUDA_SUCCESS
        run._driver_launch = lambda *a: (calls.append((a, _unpack(run._buf.raw))), (0,))[1]
        return run

    return make, calls


def test_host_path_packs_pointers_scale_and_batch(cpu_launch):
    make, calls = cpu_launch
    run, args = make(), _args(B=5)
    run(*args)
    (fptr, gx, gy, gz, bx, by, bz, smem, stream, argv, extra), packed = calls[-1]
    assert (fptr, gx, gy, gz, bx, by, bz, smem, stream, extra) == (
        1234,
        40,
        1,
        1,
        128,
        1,
        1,
        0,
        777,
        0,
    )
    tensors = dict(zip(NAMES[:8], args[:8], strict=True)) | {
        "output": args[9],
        "new_state": args[10],
    }
    for name, t in tensors.items():
        assert getattr(packed, name) == t.data_ptr(), name
    assert packed.batch_size == 5 and packed.scale == pytest.approx(128**-0.5)
    run(*args[:8], 0.5, *args[9:])  # same tensors: fast path, new scale
    assert calls[-1][1].scale == 0.5 and len(calls) == 2
    run(*args[:8], None, *args[9:])  # back to the default, still on the fast path
    assert calls[-1][1].scale == pytest.approx(128**-0.5) and len(calls) == 3
    for bad in (float("nan"), float("inf"), True, "0.1"):  # rejected on every call
        with pytest.raises(SpecError, match="argument 'scale'"):
            run(*args[:8], bad, *args[9:])
    assert len(calls) == 3
    run(*_args(B=2, state=None))
    assert calls[-1][1].state is None and calls[-1][1].batch_size == 2


def test_host_path_aliasing_rules(cpu_launch):
    make, calls = cpu_launch
    args = _args()
    state = args[3]
    aliased = args[:10] + [state]
    with pytest.raises(SpecError, match="argument 'new_state'.*inplace_ok"):
        make(inplace_ok=False)(*aliased)
    make(inplace_ok=True)(*aliased)
    assert len(calls) == 1
    with pytest.raises(SpecError, match="argument 'output': overlaps argument 'v'"):
        make()(*args[:9], args[2], args[10])
    with pytest.raises(SpecError, match="argument 'q'.*aligned"):
        buf = torch.zeros(3 * 4 * 128 + 1, dtype=torch.bfloat16)
        make()(buf[1:].view(3, 1, 4, 128), *args[1:])
    with pytest.raises(SpecError, match="argument 'state'.*contiguous"):
        make()(*args[:3], state.transpose(2, 3), *args[4:])


def test_cubins_are_complete_elf_images():
    """The whole ELF image, up to the end of its tables (CuPy's private getCUBIN dropped the
    last byte, which cuobjdump and nvdisasm reject; cuda.bindings sizes it from NVRTC)."""
    import struct

    from decodekit.build.compile import compile_kernel

    cubin = compile_kernel("gdn_decode_rowsplit.cu", "sm_90a", {}).cubin
    phoff, shoff = struct.unpack_from("<QQ", cubin, 0x20)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", cubin, 0x36)
    assert len(cubin) >= max(phoff + phentsize * phnum, shoff + shentsize * shnum)


# resources from the cubin itself (issue: tune failed when a driver query came back empty) --


@pytest.mark.parametrize("arch", ["sm_90a", "sm_100a"])
def test_resources_are_read_from_the_cubin_without_a_log(arch):
    from decodekit.build.cubin import elf_resources, parse_ptxas

    for f in kernel_files():
        build = compile_kernel(f.name, arch=arch)
        from_elf = elf_resources(build.cubin)  # no log: what NVRTC 13.0 gives
        logged = parse_ptxas(build.log)
        assert set(from_elf) == set(build.resources) and from_elf, f.name
        for entry, r in from_elf.items():
            assert r.registers > 0 and r.stack_bytes == 0 and r.spills == 0, (f.name, r)
            if entry in logged:  # where ptxas prints them, the two agree exactly
                assert r == logged[entry], (f.name, r, logged[entry])


def test_resources_match_cuobjdump_res_usage(tmp_path):
    import re
    import subprocess

    from decodekit.build.cubin import RESERVED_SMEM
    from decodekit.build.sass import ToolMissing, find_tools

    try:
        cuobjdump, _ = find_tools()
    except ToolMissing as e:
        pytest.skip(str(e))
    for name in ("gdn_decode_baseline.cu", "gdn_decode_bulk.cu", "gdn_decode_ordered.cu"):
        build = compile_kernel(name, arch="sm_90a")
        path = tmp_path / "k.cubin"
        path.write_bytes(build.cubin)
        out = subprocess.run([str(cuobjdump), "-res-usage", str(path)], capture_output=True,
                             text=True, check=True).stdout  # fmt: skip
        for m in re.finditer(r"Function (\w+):\s+REG:(\d+) STACK:(\d+) SHARED:(\d+)", out):
            r = build.resources[m[1]]
            shared = int(m[4]) - (RESERVED_SMEM if int(m[4]) else 0)
            assert (r.registers, r.stack_bytes, r.shared_bytes) == (int(m[2]), int(m[3]), shared)


def test_a_cubin_without_resource_notes_is_an_error_that_says_why(tmp_path, monkeypatch):
    (tmp_path / "k.cu").write_text('extern "C" __global__ void k(int* x) { x[0] = 1; }\n')
    monkeypatch.setattr(dk_compile, "elf_resources", lambda cubin, log="": {})
    with pytest.raises(CompileError, match=r"no resource notes .*entry k"):
        compile_kernel("k.cu", arch="sm_90a", kernels_dir=tmp_path)


def test_declared_defines_and_define_values():
    from decodekit.build.compile import declared_defines

    knobs = declared_defines("gdn_decode_ordered.cu")
    assert knobs["FENCE"] == 0 and knobs["LANES_PER_ROW"] == 16
    assert knobs["FAST_GATES"] == 0  # declared in the included gdn.cuh
    with pytest.raises(ValueError, match="argument 'defines': WARPS must be an int"):
        compile_kernel("gdn_decode_rowsplit.cu", arch="sm_90a", defines={"WARPS": "4;evil"})


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), True, "0.1", [1.0]])
def test_a_bad_scale_is_rejected_on_every_call(bad):
    from decodekit.problem.spec import resolve_scale

    with pytest.raises(SpecError, match="argument 'scale'"):
        resolve_scale(bad)
    run = kernel_impl("gdn_decode_baseline.cu", "gdn_decode_baseline",
                      lambda B: ((B * 8,), (128,), 0), arch="sm_90a")  # fmt: skip
    x = make_inputs(1)
    for _ in range(2):  # not only the first call: the hot path checks it too
        with pytest.raises(SpecError, match="argument 'scale'"):
            run(**{**x, "scale": bad}, **empty_outputs(1))


def test_launch_shapes_past_cuda_limits_and_int32_batch_are_rejected():
    run = kernel_impl("gdn_decode_rowsplit.cu", "gdn_decode_rowsplit",
                      lambda B: ((B * 8 * 8,), (128,), 0), arch="sm_90a")  # fmt: skip
    assert run._shape(4) == ((256, 1, 1), (128, 1, 1), 0)
    with pytest.raises(SpecError, match=r"past CUDA's limits"):
        run._shape(2**26)
    with pytest.raises(SpecError, match="int32 batch_size"):
        run._shape(2**31)


# the disk cache (issue 17: a second tune process does not recompile what the first built) --

_BUILD_IN_CHILD = """
import json, sys
from decodekit.build.compile import compile_kernel
b = compile_kernel("gdn_decode_rowsplit.cu", "sm_100a", {"WARPS": 2})
print(json.dumps([b.from_cache, b.digest, b.cubin.hex()[:64], len(b.cubin)]))
"""


def test_a_second_process_takes_the_cubin_from_disk(tmp_path):
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "DECODEKIT_CACHE": str(tmp_path)}
    runs = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", _BUILD_IN_CHILD], env=env, check=True,
                capture_output=True, text=True,
            ).stdout
        )
        for _ in range(2)
    ]  # fmt: skip
    assert [r[0] for r in runs] == [False, True]
    assert runs[0][1:] == runs[1][1:]
    assert [p.name for p in tmp_path.iterdir()] == [f"{runs[0][1]}.cubin"]


def test_a_damaged_cache_file_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("DECODEKIT_CACHE", str(tmp_path))
    dk_compile._MEMO.clear(), dk_compile._BY_DIGEST.clear()
    first = compile_kernel("empty.cu", "sm_90a", {"X": 1})
    path = tmp_path / f"{first.digest}.cubin"
    path.write_bytes(path.read_bytes()[:-7])  # a truncated write
    dk_compile._MEMO.clear(), dk_compile._BY_DIGEST.clear()
    again = compile_kernel("empty.cu", "sm_90a", {"X": 1})
    assert not again.from_cache and again.cubin == first.cubin
    assert (tmp_path / f"{first.digest}.cubin").read_bytes() == path.read_bytes()


def test_rawmodule_options_leave_out_what_cupy_adds():
    from decodekit.build.nvrtc import CUPY_ADDS

    b = compile_kernel("empty.cu", "sm_90a")
    assert set(CUPY_ADDS) <= set(b.options)
    assert not set(CUPY_ADDS) & set(b.rawmodule_options)
    assert "--gpu-architecture=sm_90a" in b.rawmodule_options
    assert b.code.splitlines()[1] == '#line 1 "kernels/empty.cu"'


def test_a_changed_header_changes_the_text_cupy_is_keyed_on(tmp_kernels):
    """CuPy's cache is keyed on the text and options only: the build's text names the digest
    of the source and its headers, so an edited header is a new RawModule build."""
    first = compile_kernel("gdn_decode_baseline.cu", "sm_90a", kernels_dir=tmp_kernels)
    hdr = tmp_kernels / "gdn.cuh"
    hdr.write_text(hdr.read_text() + "\n// edited\n")
    again = compile_kernel("gdn_decode_baseline.cu", "sm_90a", kernels_dir=tmp_kernels)
    assert again.digest != first.digest and again.code != first.code
    assert again.code.splitlines()[2:] == first.code.splitlines()[2:]  # the .cu is unchanged
