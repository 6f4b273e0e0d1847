#!/usr/bin/env bash
# One session on a GPU machine, in stages (STAGES=env,compile,test,tune,loop,bench,variants,
# fidelity,ncu,sanitize,host,report): compile, GPU tests, tuning, the full-54 bench, every variant on the
# representative workloads, the contest / fib-0.1.2 / seed timing methods, Nsight Compute
# profiles and compute-sanitizer. Records land in data/; with $OUT set they are packed there.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/decodekit-out}; mkdir -p "$OUT"
PY=${PY:-python3}
if ls .whl/*.whl >/dev/null 2>&1; then
  # wheels carried to a machine without network (fla-core, cupti-python, nvtx, ...)
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl >/dev/null 2>&1 && export PYTHONPATH=/tmp/site \
    JUPYTER_PATH=/tmp/site/share/jupyter
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
STAGES=${STAGES:-env,compile,test,tune,loop,bench,variants,fidelity,ncu,sanitize,host}
WORKLOADS=${WORKLOADS:-contest}
has() { [[ ",$STAGES," == *",$1,"* ]]; }
run() { echo "=== $* ($(date +%T))"; timeout "${LIMIT:-900}" "$@" 2>&1 | grep -v "it/s\]" | tee -a "$OUT/log.txt"; }

if has env; then
  run nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem --format=csv
  run $PY -c "import torch, cupy, triton, fla; print(torch.__version__, cupy.__version__, triton.__version__, fla.__version__)"
fi
has compile && run $PY -m decodekit compile
has test && run $PY -m pytest -q -p no:cacheprovider tests/gpu -k "not every_kit_kernel" ${PYTEST_ARGS:-}
has tune && run $PY -m decodekit tune --preset contest --per-batch 3
has loop && run $PY -m decodekit bench --impl torch-loop --workloads "$WORKLOADS" --preset contest-short
has bench && run $PY -m decodekit bench --impl best fla torch-fp32 --workloads "$WORKLOADS" \
  --preset contest --methods graph-hot,host-dispatch,wall
if has variants; then
  kernels=$($PY -c "from decodekit.registry import names; print(' '.join(names('kernel')))")
  run $PY -m decodekit bench --impl $kernels fla --workloads representative --preset contest
fi
if has fidelity; then
  for preset in fib-0.1.2 seed; do
    run $PY -m decodekit bench --impl best fla --workloads representative --preset $preset
  done
fi
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
has host && run $PY -m decodekit bench --impl best streaming fla --workloads B1 --preset quick \
  --methods host-dispatch
if has report; then
  run $PY -m decodekit report --out "$OUT/reports" --workloads representative --preset quick
  (cd "$OUT" && tar czf reports.tgz reports && rm -rf reports)
fi
tar czf "$OUT/data.tgz" data/results data/ncu data/tuning 2>/dev/null
echo "=== done $(date +%T)"
