#!/usr/bin/env bash
# The recipe of the learned proposal (issue 22): collect -> encode with the shipped encoder -> train-proposal.
# Same data settings as scripts/default_model.sh (64 px, --policy mixed, training seeds 200000+), fewer episodes
# (sized for a shared 2-core CPU). Every step resumes when re-run after a kill.
# Use the result with `--proposal $OUT` on plan-episode / evaluate, or `evaluate --policy proposal --proposal $OUT`.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
WORK=${WORK:-runs/prop}
OUT=${OUT:-$WORK/proposal.pt}
TASKS=${TASKS:-"push:Push:200 pickplace:PickPlace:200 reach:Reach:80"}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
FEATURES=()
for spec in $TASKS; do
  IFS=: read -r dir task n <<<"$spec"
  "$BIN/simjepa" collect --env "simjepa/$task-v0" --episodes "$n" --out "$WORK/data/$dir" --policy mixed \
    --render-size 64 --seed-start 200000 --quiet
  "$BIN/simjepa" encode --data "$WORK/data/$dir" --encoder world_model/assets/default_encoder.pt --token-pool 1 \
    --out "$WORK/feats/$dir" --threads 1 --quiet
  FEATURES+=(--features "$WORK/feats/$dir")
done
"$BIN/simjepa" train-proposal "${FEATURES[@]}" --out "$OUT" --steps "${STEPS:-2000}" --batch-size 256 --threads 1 --quiet
