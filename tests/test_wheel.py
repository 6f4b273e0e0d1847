"""The kit installs anywhere: the wheel carries kernels/, the workload manifest, the notebooks
and the recorded tuning tables, and runs from a fresh virtual environment outside the repo."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(cmd, cwd, env=None, timeout=1200):
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.slow
def test_the_wheel_installs_and_runs_outside_the_repo(tmp_path):
    # a copy of what the wheel is built from, so the build leaves nothing in the checkout
    src = tmp_path / "src"
    for part in ("pyproject.toml", "README.md", "decodekit", "kernels", "notebooks",
                 "data/workloads", "data/tuning"):  # fmt: skip
        target = src / part
        if (ROOT / part).is_dir():
            shutil.copytree(ROOT / part, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / part, target)
    wheels = tmp_path / "wheels"
    rc, log = _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(wheels), str(src)], tmp_path)  # fmt: skip
    assert rc == 0, log[-3000:]
    (wheel,) = wheels.glob("decodekit-*.whl")
    venv = tmp_path / "venv"
    assert _run([sys.executable, "-m", "venv", str(venv)], tmp_path)[0] == 0
    py = venv / "bin" / "python"
    # the CPU build of torch this machine has, then the wheel with the NVRTC extra
    torch_pin = f"torch=={__import__('torch').__version__.split('+')[0]}"
    rc, log = _run([str(py), "-m", "pip", "install", "-q", torch_pin, f"{wheel}[gpu]"], tmp_path)
    if rc != 0 and ("No matching distribution" in log or "Could not find" in log):
        pytest.skip(f"the wheel's dependencies are not installable here: {log[-500:]}")
    assert rc == 0, log[-3000:]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DECODEKIT_DATA")}
    env.update(HOME=str(tmp_path / "home"), XDG_DATA_HOME=str(tmp_path / "xdg"))
    exe = str(venv / "bin" / "decodekit")
    rc, log = _run([exe, "compile", "--arch", "sm_100a"], "/tmp", env)
    assert rc == 0 and "gdn_decode_ordered.cu" in log and "sm_100a" in log, log[-3000:]
    rc, log = _run([exe, "check", "--impl", "torch-fp32", "--workloads", "B1"], "/tmp", env)
    assert rc == 0 and "all passed" in log, log[-3000:]
    rc, log = _run([str(py), "-c", "import decodekit.base.paths as p, decodekit.problem.workloads as w; "
                    "print(p.in_checkout(), len(w.select('contest')), p.data_dir())"],
                   "/tmp", env)  # fmt: skip
    assert rc == 0 and log.split()[:2] == ["False", "54"], log[-3000:]
    assert log.split()[2] == str(tmp_path / "xdg" / "decodekit")
