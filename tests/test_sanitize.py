"""The sanitizer wrapper reads summaries, fails on errors and explains a missing tool."""

import os
from pathlib import Path

import pytest

from decodekit.measure import sanitize

FAKE = Path(__file__).parent / "fixtures" / "sanitizer" / "compute-sanitizer"


def test_parse_summary():
    assert sanitize.parse_summary("========= ERROR SUMMARY: 3 errors") == 3
    assert sanitize.parse_summary("========= RACECHECK SUMMARY: 2 hazards displayed") == 2
    assert sanitize.parse_summary("Traceback ...") is None


def test_clean_and_failing_runs(monkeypatch, capsys):
    monkeypatch.setenv("FAKE_SANITIZER_TOOL", "racecheck")
    runs = sanitize.sanitize("torch-fp32", (1,), exe=str(FAKE))
    assert [r.tool for r in runs] == list(sanitize.TOOLS)
    assert [r.clean for r in runs] == [True, False, True, True]
    assert runs[1].errors == 1


def test_missing_sanitizer_is_a_clear_message(capsys):
    code = sanitize.cli_sanitize("torch-fp32", [1], ["memcheck"], exe="no-such-sanitizer")
    assert code == 2
    err = capsys.readouterr().err
    assert "not found on PATH" in err and "no-such-sanitizer" in err


def test_unknown_tool_named():
    with pytest.raises(ValueError, match="'tools'"):
        sanitize.sanitize("torch-fp32", (1,), tools=("leakcheck",), exe=str(FAKE))


@pytest.mark.gpu
def test_every_kit_kernel_is_clean():
    from decodekit.impls.registry import all_impls

    for impl in all_impls("kernel"):
        runs = sanitize.sanitize(impl.name, (1, 3, 64))
        assert all(r.clean for r in runs), [(r.tool, r.errors, r.tail[-500:]) for r in runs]


def test_a_timeout_ends_the_whole_process_group(tmp_path):
    """A tool whose child outlives it (as ncu's profiled program would) is killed with it,
    and the wait ends at the deadline."""
    import subprocess
    import sys
    import time

    from decodekit.base import proc

    marker = tmp_path / "child.pid"
    script = (f"import subprocess, sys, time; c = subprocess.Popen([sys.executable, '-c', "
              f"'import time; time.sleep(60)']); open({str(marker)!r}, 'w').write(str(c.pid)); "
              "time.sleep(60)")  # fmt: skip
    t0 = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        proc.run([sys.executable, "-c", script], timeout=2)
    assert time.monotonic() - t0 < 10
    child = int(marker.read_text())
    time.sleep(0.2)
    try:
        os.kill(child, 0)
        alive = open(f"/proc/{child}/stat").read().split()[2] not in ("Z", "X")
    except (ProcessLookupError, FileNotFoundError):
        alive = False
    assert not alive, "the grandchild outlived the timeout"
