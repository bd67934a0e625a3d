#!/bin/bash
# Reacher-v5 end to end as a new user would run it (issue 24), third run: a predictor trained on mixed and
# scripted episodes, and a goal-conditioned proposal (pool grid 4) trained on the same caches.
# One torch thread per stage; stage wall times in the log.
# Usage: bash benchmarks/results/adapter/reacher_pipeline_v3/reacher_job.sh [stage...]
#   stages: collect encode train proposal tune eval   (default: collect encode train proposal)
set -uo pipefail
cd "$(dirname "$0")/../../../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 MUJOCO_GL=egl
S=.venv/bin/simjepa
R=${R:-runs/reacher3}
E="--env Reacher-v5"
STAGES=${*:-collect encode train proposal}
stamp() { echo "[$(date -u +%H:%M:%S)] $*"; }
stage() { local name=$1; shift; local t0=$(date +%s); stamp "start $name: $*"; "$@"; local rc=$?; stamp "end $name rc=$rc wall_s=$(( $(date +%s) - t0 ))"; return $rc; }
stamp "git $(git rev-parse --short HEAD); $(grep -m1 'model name' /proc/cpuinfo); nproc $(nproc --all); load $(cut -d' ' -f1-3 /proc/loadavg)"
for st in $STAGES; do case $st in
  collect)
    stage collect_mixed $S collect $E --episodes 300 --policy mixed --render-size 64 --seed-start 100000 --out $R/data_mixed --quiet || exit 1
    stage collect_expert $S collect $E --episodes 300 --policy expert --render-size 64 --seed-start 101000 --out $R/data_expert --quiet || exit 1
    stage collect_expert2 $S collect $E --episodes 1000 --policy expert --render-size 64 --seed-start 102000 --out $R/data_expert2 --quiet || exit 1 ;;
  encode) for d in mixed expert expert2; do
    stage encode_$d $S encode --data $R/data_$d --encoder default --out $R/feats_$d --threads 1 --quiet || exit 1; done ;;
  train) stage train $S train --features $R/feats_mixed --features $R/feats_expert --out $R/model --config mini --steps 2000 --batch-size 16 --workers 1 --threads 1 --quiet || exit 1 ;;
  proposal) stage proposal $S train-proposal --features $R/feats_mixed --features $R/feats_expert --features $R/feats_expert2 --out $R/proposal.pt --steps 3000 --pool-grid 4 --threads 1 --quiet || exit 1 ;;
  tune)  # tuning seeds 500-549 (the proposal alone) and 500-519 (search seeded by the proposal)
    stage tune_proposal $S evaluate $E --episodes 50 --seed-start 500 --policy proposal --proposal $R/proposal.pt --model $R/model --out $R/tune_proposal --threads 1 || exit 1
    stage tune_planner_proposal $S evaluate $E --episodes 20 --seed-start 500 --model $R/model --proposal $R/proposal.pt --out $R/tune_planner_proposal --threads 1 || exit 1 ;;
  eval)  # evaluation seeds 1000-1049, once per row
    for p in random expert; do stage eval_$p $S evaluate $E --episodes 50 --seed-start 1000 --policy $p --out $R/eval_$p; done
    stage eval_proposal $S evaluate $E --episodes 50 --seed-start 1000 --policy proposal --proposal $R/proposal.pt --model $R/model --out $R/eval_proposal --threads 1
    stage eval_planner_proposal $S evaluate $E --episodes 50 --seed-start 1000 --model $R/model --proposal $R/proposal.pt --out $R/eval_planner_proposal --threads 1
    stage eval_planner $S evaluate $E --episodes 50 --seed-start 1000 --model $R/model --out $R/eval_planner --threads 1 ;;
esac; done
stamp done
