#!/usr/bin/env bash
# One session on a GPU machine, in stages (STAGES=env,compile,test,tunequick,tune,loop,bench,
# variants,fidelity,ncu,sanitize,host,report, and for the decode family familytest,familytune,
# familybench,familyncu over $FAMILY, default the serving members, and familyverify: the
# T=4 verify calls): compile, GPU tests, tuning, the full-54 bench of
# best (dps and in place) beside its peers in their native contracts (FLA, FlashInfer in place
# and through its pool API), every variant on the representative workloads, the contest /
# fib-0.1.2 / seed timing methods, Nsight Compute profiles and compute-sanitizer. Records
# land in data/; with $OUT set they are packed there.
#
# FlashInfer is larger than one call of the device tool carries. ../shared/tools/
# flashinfer-bundle.sh cuts it into .fi/1 .. .fi/N; carry one folder per call, back to back
# (the machine keeps /tmp while warm): this script copies each carried part to /tmp/fi and,
# once the last part is there, unpacks it and puts FlashInfer on PYTHONPATH (later calls on
# the same warm machine find it there). Records and tuning tables written by an earlier
# call of the same warm machine are restored from /tmp/dk first, so a session split over
# several calls builds on itself.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/decodekit-out}; mkdir -p "$OUT"
PY=${PY:-python3}
if ls .whl/*.whl >/dev/null 2>&1; then
  # wheels carried to a machine without network (fla-core, cupti-python, pyelftools, nvtx)
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl >/dev/null 2>&1
fi
[[ -d /tmp/site ]] && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} \
  JUPYTER_PATH=/tmp/site/share/jupyter
# FlashInfer, part by part (see above)
mkdir -p /tmp/fi
for d in .fi/[0-9]*; do [[ -d $d ]] && cp "$d"/* /tmp/fi/ && echo "flashinfer: part $d kept in /tmp/fi"; done
if [[ ! -f /tmp/fi/.ready && -f /tmp/fi/flashinfer-py.tar.xz ]]; then
  (cd /tmp/fi && cat cutlass-cu13.part-* | xz -d | tar x && tar xJf flashinfer-py.tar.xz &&
   for w in *.whl; do $PY -m zipfile -e "$w" .; done && touch .ready) ||
    echo "flashinfer: unpacking failed (a part missing? run the calls back to back)"
fi
if [[ -f /tmp/fi/.ready ]]; then
  export PYTHONPATH=/tmp/fi:/tmp/fi/nvidia_cutlass_dsl/dsl_packages:$PYTHONPATH
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
# what an earlier call on this warm machine recorded
[[ -d /tmp/dk/data ]] && cp -r /tmp/dk/data/. data/ && echo "restored data/ from /tmp/dk"
STAGES=${STAGES:-env,compile,test,tune,loop,bench,variants,fidelity,ncu,sanitize,host}
WORKLOADS=${WORKLOADS:-contest}
PEERS=${PEERS:-fla flashinfer flashinfer-pool}
has() { [[ ",$STAGES," == *",$1,"* ]]; }
# What the session recorded so far, kept after every command: a call that runs out of time
# (the device tool kills it) still brings back everything finished before (its $OUT).
save() {
  mkdir -p /tmp/dk/data && cp -r data/results data/ncu data/tuning /tmp/dk/data/ 2>/dev/null
  tar czf "$OUT/data.tgz.part" data/results data/ncu data/tuning 2>/dev/null &&
    mv "$OUT/data.tgz.part" "$OUT/data.tgz"
}
run() {
  echo "=== $* ($(date +%T))"; timeout "${LIMIT:-900}" "$@" 2>&1 | grep -v "it/s\]" | tee -a "$OUT/log.txt"
  save
}
timed() { local t0=$SECONDS; run "$@"; echo "=== took $((SECONDS - t0)) s: $*" | tee -a "$OUT/log.txt"; }

if has env; then
  run nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem --format=csv
  run $PY -c "import torch, cupy, triton, fla; print(torch.__version__, cupy.__version__, triton.__version__, fla.__version__)"
  run $PY -c "import flashinfer, flashinfer.gdn_decode as g; print('flashinfer', flashinfer.__version__, 'pretranspose', g._PRETRANSPOSE_AVAILABLE)"
fi
has compile && run $PY -m decodekit compile
has test && run $PY -m pytest -q -p no:cacheprovider tests/gpu -k "not every_kit_kernel" ${PYTEST_ARGS:-}
if has tunequick; then
  # the quick sweep alone, timed, into a scratch folder: compared with the full sweep below
  timed $PY -m decodekit tune --quick --fresh --out-dir /tmp/dk/quick
  mkdir -p "$OUT" && cp /tmp/dk/quick/*.json "$OUT/" 2>/dev/null
fi
has tune && timed $PY -m decodekit tune --preset contest --configs "${TUNE_CONFIGS:-full}" \
  --per-batch "${TUNE_PER_BATCH:-3}"
has loop && run $PY -m decodekit bench --impl torch-loop --workloads "$WORKLOADS" --preset contest-short
if has bench; then
  for i in $(seq "${BENCH_RUNS:-1}"); do
    timed $PY -m decodekit bench --impl best $PEERS --workloads "$WORKLOADS" --preset contest \
      --contracts native,inplace
  done
fi
if has variants; then
  kernels=$($PY -c "from decodekit.impls.registry import names; print(' '.join(names('kernel')))")
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
  for impl in $($PY -c "from decodekit.impls.registry import names; print(' '.join(names('kernel')))"); do
    run $PY -m decodekit sanitize --impl "$impl"
  done
fi
has host && run $PY -m decodekit overhead --impl streaming best
FAMILY=${FAMILY:-$($PY -c "from decodekit.problem.family import SERVING; print(' '.join(m.name for m in SERVING))")}
FAMILY_PEERS=${FAMILY_PEERS:-flashinfer fla vllm}
has familytest && run $PY -m pytest -q -p no:cacheprovider tests/gpu -k "family" ${PYTEST_ARGS:-}
if has familytune; then
  for d in $FAMILY; do timed $PY -m decodekit tune --definition "$d" --preset contest; done
fi
if has familybench; then
  for d in $FAMILY; do
    timed $PY -m decodekit bench --definition "$d" --impl best kit $FAMILY_PEERS --preset contest
  done
fi
if has familyverify; then  # the T=4 verify calls (intermediate states, no update), untuned
  for d in $($PY -c "from decodekit.problem.family import VERIFY; print(' '.join(m.name for m in VERIFY))"); do
    timed $PY -m decodekit bench --definition "$d" --impl best kit $FAMILY_PEERS --preset contest
  done
fi
if has familyncu; then
  for d in $FAMILY; do
    for impl in ${FAMILY_NCU_IMPLS:-best flashinfer}; do
      run $PY -m decodekit ncu --definition "$d" --impl "$impl" --workloads "${FAMILY_NCU_B:-1,64,256}"
    done
  done
fi
if has report; then
  run $PY -m decodekit report --out "$OUT/reports" --workloads representative --preset quick
  (cd "$OUT" && tar czf reports.tgz reports && rm -rf reports)
fi
save
echo "=== done $(date +%T)"
