#!/usr/bin/env bash
# The recipe of the shipped default model: collect -> pretrain-encoder -> encode -> train -> ship.
# Every step resumes when re-run after a kill, so `make default-model` can simply be run again.
# Runs on a 2-core CPU; one torch thread per process was fastest on a shared machine.
# SIZE / TOKEN_POOL change the frame size and token pooling (the 128 px / pool 2 variant in README:
# SIZE=128 TOKEN_POOL=2 WORK=runs/default128 DATA=data/default128 FEATS=feats/default128 SHIP=0).
# SHIP=0 stops before installing the result as the shipped default model.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
WORK=${WORK:-runs/default}
DATA=${DATA:-data/default}
FEATS=${FEATS:-feats/default}
SIZE=${SIZE:-64}
TOKEN_POOL=${TOKEN_POOL:-1}
SHIP=${SHIP:-1}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
TASKS="reach:Reach:200 push:Push:300 pickplace:PickPlace:300"

for spec in $TASKS; do
  IFS=: read -r dir task n <<<"$spec"
  "$BIN/simjepa" collect --env "simjepa/$task-v0" --episodes "$n" --out "$DATA/$dir" --policy mixed \
    --render-size "$SIZE" --seed-start 200000 --quiet
done

"$BIN/simjepa" pretrain-encoder --data "$DATA/reach" --data "$DATA/push" --data "$DATA/pickplace" \
  --config vit_tiny --depth 6 --image-size "$SIZE" --patch-size 8 --steps 1200 --batch-size 32 --lr 5e-4 \
  --warmup 60 --threads 1 --quiet --out "$WORK/encoder.pt"

for spec in $TASKS; do
  IFS=: read -r dir task n <<<"$spec"
  "$BIN/simjepa" encode --data "$DATA/$dir" --encoder "$WORK/encoder.pt" --token-pool "$TOKEN_POOL" \
    --out "$FEATS/$dir" --threads 1 --quiet
done

"$BIN/simjepa" train --features "$FEATS/reach" --features "$FEATS/push" --features "$FEATS/pickplace" \
  --out "$WORK/model" --config mini --steps 2000 --batch-size 32 --ckpt-every 200 --quiet

[ "$SHIP" = 1 ] || { echo "trained $WORK/model (not shipped: SHIP=$SHIP)"; exit 0; }
"$BIN/python" scripts/ship_default_model.py --run "$WORK/model" --encoder "$WORK/encoder.pt"
