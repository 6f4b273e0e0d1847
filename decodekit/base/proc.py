"""Child processes that end whole: a tool run (ncu, compute-sanitizer) is started in its own
process group, and a timeout kills the group, so the profiled program never outlives it and
no wait runs past the deadline.

>>> import sys
>>> run([sys.executable, "-c", "print('ok')"], timeout=30).stdout.strip()
'ok'
"""

from __future__ import annotations

import os
import signal
import subprocess
import time


def start(cmd: list[str], **kw) -> subprocess.Popen:
    """``Popen`` in a new process group (text mode, output captured unless given)."""
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(cmd, text=True, start_new_session=True, **kw)


def finish(proc: subprocess.Popen, deadline: float | None) -> tuple[str, str, bool]:
    """``(stdout, stderr, timed_out)``: wait until ``deadline`` (``time.monotonic()``),
    then kill the process's whole group and collect what it wrote."""
    left = None if deadline is None else max(0.0, deadline - time.monotonic())
    try:
        out, err = proc.communicate(timeout=left)
        return out or "", err or "", False
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
        return out or "", err or "", True


def run(cmd: list[str], timeout: float | None, **kw) -> subprocess.CompletedProcess:
    """Like ``subprocess.run(capture_output=True, text=True)``; on timeout the whole group is
    killed and ``subprocess.TimeoutExpired`` raised."""
    proc = start(cmd, **kw)
    deadline = None if timeout is None else time.monotonic() + timeout
    out, err, timed_out = finish(proc, deadline)
    if timed_out:
        raise subprocess.TimeoutExpired(cmd, timeout, output=out, stderr=err)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
