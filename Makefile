# Two commands do all the set-up on a fresh machine:
#   make report   the main job: a report of the kernels on the workloads (live on a GPU,
#                 from recorded data without one; the report says which)
#   make test     lint + the test suite (GPU tests skip cleanly without a GPU)
# Both create the virtual environment .venv on first use.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU-only machines get the CPU build of torch (fast to install); GPU machines the CUDA one.
TORCH ?= $(if $(shell command -v nvidia-smi 2>/dev/null),torch,torch==2.13.0)
# GPU machines also get the baselines (FLA); cupti-python (the contest timing method) is in gpu.
EXTRAS ?= gpu,notebooks,test$(if $(shell command -v nvidia-smi 2>/dev/null),$(comma)baselines,)
comma := ,

.PHONY: env report test test-gpu lint format compile clean

env: $(VENV)/.ready

$(VENV)/.ready: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	$(PY) -m pip install -q --no-deps "flashinfer-bench==0.1.2"
	$(PY) -m ipykernel install --sys-prefix --name decodekit --display-name "decodekit" >/dev/null
	touch $@

report: env
	$(PY) -m decodekit report --out reports

lint: env
	$(PY) -m ruff check decodekit tests
	$(PY) -m ruff format --check decodekit tests

test: env lint
	bash .ci/install-chromium.sh || echo "chromium could not be installed: the report screenshot test will skip"
	$(PY) -m pytest -q

test-gpu: env
	$(PY) -m pytest -q -m gpu tests/gpu

compile: env
	$(PY) -m decodekit compile

format: env
	$(PY) -m ruff check --fix decodekit tests
	$(PY) -m ruff format decodekit tests

clean:
	rm -rf $(VENV) reports .pytest_cache
