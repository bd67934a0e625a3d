#!/usr/bin/env bash
# Two-level planning (issue 22), as run for docs/hierarchy.md: data -> encode (shipped encoder) -> macro-step
# model (initialised from the shipped one-step predictor) -> evaluations on tuning seeds.
# Every step resumes when re-run after a kill. One torch thread per process (2-core machine).
# STAGES picks steps: data macro tune (default: all). Settings of the tuning runs were fixed before any ran.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
WORK=${WORK:-runs/h}
K=${K:-5}
STAGES=${STAGES:-"data macro tune"}
export OMP_NUM_THREADS=1 MUJOCO_GL=${MUJOCO_GL:-egl}
HIGH=(--macro-model "$WORK/macro$K" --macro-samples 100 --macro-iters 3 --macro-horizon 4)
for stage in $STAGES; do case $stage in
  data)
    for spec in push:Push:300 pickplace:PickPlace:300 reach:Reach:200; do
      IFS=: read -r dir task n <<<"$spec"
      "$BIN/simjepa" collect --env "simjepa/$task-v0" --episodes "$n" --out "$WORK/data/$dir" --policy mixed \
        --render-size 64 --seed-start 200000 --quiet
      "$BIN/simjepa" encode --data "$WORK/data/$dir" --encoder world_model/assets/default_encoder.pt --token-pool 1 \
        --out "$WORK/feats/$dir" --threads 1 --quiet
    done ;;
  macro)
    "$BIN/simjepa" train --features "$WORK/feats/push" --features "$WORK/feats/pickplace" --features "$WORK/feats/reach" \
      --out "$WORK/macro$K" --config mini --steps 1500 --batch-size 32 --macro-steps "$K" --init default \
      --ckpt-every 250 --workers 1 --plan-seconds 0 --quiet --threads 1 ;;
  tune)
    "$BIN/simjepa" evaluate --env simjepa/Push-v0 --episodes 10 --seed-start 500 "${HIGH[@]}" --out "$WORK/eval/push-2level-500" --threads 1
    "$BIN/simjepa" evaluate --env simjepa/PickPlace-v0 --episodes 10 --seed-start 500 "${HIGH[@]}" --out "$WORK/eval/pickplace-2level-500" --threads 1
    "$BIN/simjepa" evaluate --env simjepa/Reach-v0 --episodes 5 --seed-start 500 "${HIGH[@]}" --out "$WORK/eval/reach-2level-500" --threads 1 ;;
esac; done
