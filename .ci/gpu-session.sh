#!/usr/bin/env bash
# One session on a GPU machine: compile, GPU tests, tuning, full-54 bench, Nsight Compute
# profiles and sanitizer runs, in stages (STAGES=env,compile,test,tune,bench,ncu,sanitize).
# Records land in data/; with $OUT set (the lent device machine) they are packed into it.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/decodekit-out}; mkdir -p "$OUT"
PY=${PY:-python3}
if ls .whl/*.whl >/dev/null 2>&1; then
  # wheels carried to a machine without network (fla-core, cupti-python, nvtx)
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
STAGES=${STAGES:-env,compile,test,tune,bench,ncu,sanitize}
WORKLOADS=${WORKLOADS:-contest}
IMPLS=${IMPLS:-best fla torch-fp32 baseline}
has() { [[ ",$STAGES," == *",$1,"* ]]; }
run() { echo "=== $* ($(date +%T))"; "$@" 2>&1 | tee -a "$OUT/log.txt"; echo "=== exit ${PIPESTATUS[0]}"; }

if has env; then
  run nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,memory.total --format=csv
  run $PY -c "import torch, cupy, triton; print(torch.__version__, cupy.__version__, triton.__version__)"
  run $PY -c "import fla, cupti; print('fla', fla.__version__, 'cupti ok')"
fi
has compile && run $PY -m decodekit compile
has compile && run $PY -m decodekit compile --arch sm_100a
has test && run $PY -m pytest -q -x -p no:cacheprovider tests/gpu ${PYTEST_ARGS:-}
has tune && run $PY -m decodekit tune --preset ${TUNE_PRESET:-quick}
has bench && run $PY -m decodekit bench --impl $IMPLS --workloads "$WORKLOADS" \
  --preset ${PRESET:-contest} --methods graph-hot,host-dispatch,wall
if has ncu; then
  for impl in ${NCU_IMPLS:-best fla baseline}; do
    run $PY -m decodekit ncu --impl "$impl" --workloads "$WORKLOADS"
  done
fi
if has sanitize; then
  for impl in $($PY -c "from decodekit.registry import names; print(' '.join(names('kernel')))"); do
    run $PY -m decodekit sanitize --impl "$impl"
  done
fi
tar czf "$OUT/data.tgz" data/results data/ncu data/tuning 2>/dev/null
echo "=== done $(date +%T)"
