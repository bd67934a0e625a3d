#!/bin/bash
# Reacher-v5 as a new user would run it (issue 24 item 6). One thread; the machine is shared with 5 other helpers.
cd /work/wt-adapter
export PYTHONPATH=$PWD OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 MUJOCO_GL=egl
S=.venv/bin/simjepa
R=runs/reacher
END_TRAIN=$(date -d "02:50" +%s)   # UTC today
END_EVAL=$(date -d "03:18" +%s)
stamp() { echo "[$(date -u +%H:%M:%S)] $*"; }
stage() { local name=$1; shift; local t0=$(date +%s); stamp "start $name: $*"; "$@"; local rc=$?; stamp "end $name rc=$rc wall_s=$(( $(date +%s) - t0 ))"; return $rc; }
stamp "git $(git rev-parse --short HEAD); nproc $(nproc); load $(cut -d' ' -f1-3 /proc/loadavg)"
stage collect $S collect --env Reacher-v5 --episodes 300 --policy mixed --render-size 64 --seed-start 100000 --out $R/data --quiet || exit 1
stage encode $S encode --data $R/data --encoder default --out $R/feats --threads 1 --quiet || exit 1
# training speed probe (30 steps, separate dir) -> as many steps as fit before END_TRAIN, at most 2000
t0=$(date +%s)
stage train_probe $S train --features $R/feats --out $R/probe --config small --steps 30 --workers 0 --plan-seconds 0 --quiet || exit 1
per=$(python3 -c "print(max(($(date +%s)-$t0)/30, 0.01))")
left=$(( END_TRAIN - $(date +%s) ))
STEPS=$(python3 -c "print(max(100, min(2000, int($left*0.85/$per))))")
stamp "probe: ${per} s/step (incl. start-up and validation), $left s left -> --steps $STEPS"
stage train $S train --features $R/feats --out $R/model --config small --steps $STEPS --workers 0 --quiet || exit 1
cp $R/model/val.json $R/val.json
# evaluation: seeds 1000-1049 in chunks of 5 (each chunk a complete results.json) until END_EVAL
for p in random expert; do stage eval_$p $S evaluate --env Reacher-v5 --episodes 50 --seed-start 1000 --policy $p --out $R/eval_$p; done
for start in $(seq 1000 5 1045); do
  if [ $(date +%s) -gt $END_EVAL ]; then stamp "stop: no time for seeds $start-1049"; break; fi
  stage eval_planner_$start $S evaluate --env Reacher-v5 --episodes 5 --seed-start $start --model $R/model --policy planner --out $R/eval_planner/$start
done
stamp done
