"""decodekit.build.sass: SASS of a kernel build without a GPU (cuobjdump + nvdisasm from the gpu
extra), and a clear message where the tools are missing."""

import pytest

from decodekit import cli
from decodekit.build import sass


def _tools_or_skip():
    try:
        sass.find_tools()
    except sass.ToolMissing as e:
        pytest.skip(str(e))


def test_subwarp_build_shows_its_state_loads_and_defines_change_the_code():
    _tools_or_skip()
    d = {"WARPS": 2, "ROWS_PER_WARP": 4, "LOAD_HINT": 1}
    wide = sass.disassemble("gdn_decode_subwarp.cu", "sm_90a", {**d, "LANES_PER_ROW": 16})
    narrow = sass.disassemble("gdn_decode_subwarp.cu", "sm_90a", {**d, "LANES_PER_ROW": 8})
    loads = [i for i in sass.skeleton(wide, ("LDG",)) if ".128" in i.opcode]
    assert len(loads) == 4  # 2 steps x 2 chunks of 16 bytes per lane
    assert all(i.opcode.startswith("LDG.E.EF") for i in loads)  # LOAD_HINT 1: evict-first
    shuffles = [len(sass.skeleton(x, ("SHFL",))) for x in (wide, narrow)]
    assert shuffles[0] != shuffles[1]  # 4 butterfly levels against 3
    assert [i.index for i in wide] == list(range(len(wide)))
    assert wide[-1].offset == 16 * (len(wide) - 1)


def test_cli_prints_the_skeleton(capsys):
    _tools_or_skip()
    rc = cli.main(["sass", "row_copy.cu", "--arch", "sm_100a", "-D", "ROWS_PER_WARP=8",
                   "--only", "LDG,STG"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0 and out.count("LDG.E") >= 8 and "STG.E.128" in out
    assert "instructions)" in out.splitlines()[-1]


def test_missing_tools_give_a_way_forward_not_a_traceback(monkeypatch, capsys):
    from decodekit.build import tools

    monkeypatch.setattr(tools, "_pathfinder", lambda: None)
    monkeypatch.setattr(tools, "cuda_home", lambda: None)
    monkeypatch.setattr(tools.shutil, "which", lambda tool: None)
    with pytest.raises(sass.ToolMissing, match="nvidia-cuda-cuobjdump"):
        sass.find_tools()
    rc = cli.main(["sass", "row_copy.cu", "--arch", "sm_90a"])
    err = capsys.readouterr().err
    assert rc == 1 and "cuobjdump not found" in err and "Traceback" not in err


def test_bad_define_and_unknown_kernel_name_the_argument(capsys):
    assert cli.main(["sass", "row_copy.cu", "--arch", "sm_90a", "-D", "=3"]) == 2
    assert "argument '-D'" in capsys.readouterr().err
    assert cli.main(["sass", "no_such_kernel.cu", "--arch", "sm_90a"]) == 1
    assert "no kernel 'no_such_kernel.cu'" in capsys.readouterr().err


def test_compare_tells_the_same_code_from_a_change_and_from_a_side_that_fails(tmp_path):
    import shutil

    from decodekit.build.compile import KERNELS_DIR

    _tools_or_skip()
    theirs = tmp_path / "kernels"
    shutil.copytree(KERNELS_DIR, theirs)
    builds = [{"WARPS": 2}, {"WARPS": 3}]  # 3 does not divide 128: neither side builds
    assert [s for _, s in sass.compare("gdn_decode_rowsplit.cu", "sm_90a", builds, theirs)] == [
        "same", "fails both"]  # fmt: skip
    src = theirs / "gdn_decode_rowsplit.cu"
    src.write_text(src.read_text().replace("float out_lane = 0.f;", "float out_lane = 1.f;"))
    got = sass.compare("gdn_decode_rowsplit.cu", "sm_90a", builds[:1], theirs)
    assert got == [(builds[0], "differs")]
    # a knob added here: left out there at its default, and a build with it set fails there
    src.write_text(src.read_text().replace("#define LOAD_HINT", "#define LOAD_HINT_GONE"))
    assert sass.compare("gdn_decode_rowsplit.cu", "sm_90a", [{"LOAD_HINT": 1}], theirs)[0][1] \
        == "fails there"  # fmt: skip


def test_cli_against_a_revision(capsys):
    _tools_or_skip()
    args = ["sass", "gdn_decode_rowsplit.cu", "--arch", "sm_90a", "-D", "WARPS=2"]
    assert cli.main([*args, "--against", "HEAD"]) == 0
    assert "against HEAD: 1 builds: 1 same" in capsys.readouterr().out
    assert cli.main([*args, "--against", "no-such-rev"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "argument '--against'" in err
