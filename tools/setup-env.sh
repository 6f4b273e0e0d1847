#!/usr/bin/env bash
# Make (or bring up to date) the environment the Makefile runs in: $1 (default .venv).
#   a plain folder or none: a venv; torch first (on machines without nvidia-smi the CPU build:
#     from $TORCH_CPU_INDEX, PyTorch's CPU wheel index, where it is set, else the pin of the CPU
#     build this workplace keeps; it says which, and which build it got), with pip's progress
#     shown, then the kit with its extras ($EXTRAS).
#   a conda environment (VENV=$CONDA_PREFIX, made from environment.yml): conda already holds
#     every dependency, so only the kit itself (--no-deps) and the pip-only packages go in.
set -euo pipefail
VENV=${1:-.venv}
PYTHON=${PYTHON:-python3}
EXTRAS=${EXTRAS:-gpu,notebooks,test}
PY=$VENV/bin/python
PIP_ONLY=("flashinfer-bench==0.1.2")  # installed --no-deps: its root pulls in FlashInfer

if [[ -d $VENV/conda-meta ]]; then
  echo "setup: conda environment $VENV: the kit (--no-deps) and the pip-only packages"
  "$PY" -m pip install -q --no-deps -e .
  "$PY" -m pip install -q "cupti-python>=13" "ncu-report>=2025.3"
  "$PY" -m pip install -q --no-deps "${PIP_ONLY[@]}"
else
  [[ -x $PY ]] || { echo "setup: creating $VENV"; "$PYTHON" -m venv "$VENV"; }
  "$PY" -m pip install -q --upgrade pip
  if ! "$PY" -c "import torch" 2>/dev/null; then
    if command -v nvidia-smi >/dev/null 2>&1; then
      echo "setup: GPU machine: the CUDA build of torch from PyPI (a few GB)"
      "$PY" -m pip install --progress-bar on "torch>=2.11"
    elif [[ -n ${TORCH_CPU_INDEX:-} ]]; then
      echo "setup: no GPU: torch's CPU build from PyTorch's CPU wheel index ($TORCH_CPU_INDEX)"
      "$PY" -m pip install --progress-bar on --index-url "$TORCH_CPU_INDEX" "torch>=2.11"
    else
      echo "setup: no GPU: torch==2.13.0 from PyPI (the CPU build where this machine keeps a"
      echo "       copy of it; plain PyPI's is the CUDA build, several GB: set TORCH_CPU_INDEX"
      echo "       to PyTorch's CPU wheel index where it is reachable)"
      "$PY" -m pip install --progress-bar on "torch==2.13.0"
    fi
    "$PY" -c "import torch; c = torch.version.cuda; print('setup: torch', torch.__version__, '(CUDA ' + c + ' build)' if c else '(CPU build)')"
  fi
  echo "setup: the kit with [$EXTRAS]"
  "$PY" -m pip install -q -e ".[$EXTRAS]"
  "$PY" -m pip install -q --no-deps "${PIP_ONLY[@]}"
fi
"$PY" -m ipykernel install --sys-prefix --name decodekit --display-name "decodekit" >/dev/null
echo "setup: ready ($(du -sh "$VENV" 2>/dev/null | cut -f1) in $VENV)"
