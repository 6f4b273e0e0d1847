# Two commands do all the set-up on a fresh machine:
#   make report   the main job: a report of the kernels on the workloads (live on a GPU,
#                 from recorded data without one; the report says which)
#   make test     lint + the test suite (GPU tests skip cleanly without a GPU)
# Both create the virtual environment .venv on first use.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# tools/setup-env.sh makes .venv (or fills a conda env: VENV=$$CONDA_PREFIX): a CPU build of
# torch on machines without nvidia-smi, the CUDA one otherwise, then the kit and its extras.
# GPU machines also get the baselines (FLA); cupti-python (the contest timing method) is in gpu.
EXTRAS ?= gpu,notebooks,test$(if $(shell command -v nvidia-smi 2>/dev/null),$(comma)baselines,)
comma := ,

.PHONY: env report test test-gpu lint format compile clean

env: $(VENV)/.ready

$(VENV)/.ready: pyproject.toml tools/setup-env.sh
	PYTHON=$(PYTHON) EXTRAS=$(EXTRAS) bash tools/setup-env.sh $(VENV)
	touch $@

report: env
	$(PY) -m decodekit report --out reports

lint: env
	$(PY) -m ruff check decodekit tests experiments
	$(PY) -m ruff format --check decodekit tests experiments
	$(VENV)/bin/lint-imports

test: env lint
	bash .ci/install-chromium.sh || echo "chromium could not be installed: the report screenshot test will skip"
	$(PY) -m pytest -q

test-gpu: env
	$(PY) -m pytest -q -m gpu tests/gpu

compile: env
	$(PY) -m decodekit compile

format: env
	$(PY) -m ruff check --fix decodekit tests experiments
	$(PY) -m ruff format decodekit tests experiments

clean:
	rm -rf $(VENV) reports .pytest_cache
