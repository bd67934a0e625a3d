#!/bin/bash
# Reacher-v5 end to end as a new user would run it (issue 24), second attempt: a trained predictor.
# One torch thread per stage; stage wall times in the log (the machine ran other jobs: see log.txt).
# Usage: bash benchmarks/results/adapter/reacher_pipeline_v2/reacher_job.sh [stage...]  (collect encode train eval)
set -uo pipefail
cd "$(dirname "$0")/../../../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 MUJOCO_GL=egl
S=.venv/bin/simjepa
R=${R:-runs/reacher2}
STAGES=${*:-collect encode train}
stamp() { echo "[$(date -u +%H:%M:%S)] $*"; }
stage() { local name=$1; shift; local t0=$(date +%s); stamp "start $name: $*"; "$@"; local rc=$?; stamp "end $name rc=$rc wall_s=$(( $(date +%s) - t0 ))"; return $rc; }
stamp "git $(git rev-parse --short HEAD); $(grep -m1 'model name' /proc/cpuinfo); nproc $(nproc --all); load $(cut -d' ' -f1-3 /proc/loadavg)"
for st in $STAGES; do case $st in
  collect) stage collect $S collect --env Reacher-v5 --episodes 300 --policy mixed --render-size 64 --seed-start 100000 --out $R/data --quiet || exit 1 ;;
  encode) stage encode $S encode --data $R/data --encoder default --out $R/feats --threads 1 --quiet || exit 1 ;;
  train) stage train $S train --features $R/feats --out $R/model --config mini --steps 2000 --batch-size 16 --workers 1 --threads 1 --quiet || exit 1 ;;
  tune) stage tune $S evaluate --env Reacher-v5 --episodes 10 --seed-start 500 --model $R/model --out $R/tune --threads 1 || exit 1 ;;
  eval) for p in random expert; do stage eval_$p $S evaluate --env Reacher-v5 --episodes 50 --seed-start 1000 --policy $p --out $R/eval_$p; done
        stage eval_planner $S evaluate --env Reacher-v5 --episodes 50 --seed-start 1000 --model $R/model --out $R/eval_planner --workers ${WORKERS:-1} ;;
esac; done
stamp done
