#!/usr/bin/env bash
# Pusher-v5 from the goal image with the learned proposal, third round (issue 24): the attentive head that
# made our Push and PickPlace work (never tried on Pusher before), with the joint-velocity input Pusher's
# torque control needs (--proprio-delta). Scripted episodes on training seeds 100000+, the shipped encoder,
# the proposal alone on tuning seeds 500-519. Every step resumes when re-run after a kill.
# STAGES picks steps: collect encode proposal tune (default: all). N: scripted episodes; STEPS: optimizer steps.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
WORK=${WORK:-runs/pusher3}
DATA=${DATA:-data/pusher3}
FEATS=${FEATS:-feats/pusher3}
N=${N:-1200}
STEPS=${STEPS:-6000}
STAGES=${STAGES:-"collect encode proposal tune"}
export OMP_NUM_THREADS=1 MUJOCO_GL=${MUJOCO_GL:-egl}
PROP="$WORK/prop_att_q4_delta_${STEPS}.pt"
for stage in $STAGES; do case $stage in
  collect)
    "$BIN/simjepa" collect --env Pusher-v5 --episodes "$N" --out "$DATA/expert" --policy expert --render-size 64 \
      --seed-start 100000 --quiet ;;
  encode)
    "$BIN/simjepa" encode --data "$DATA/expert" --encoder default --token-pool 1 --out "$FEATS/expert" --threads 1 --quiet ;;
  proposal)
    "$BIN/simjepa" train-proposal --features "$FEATS/expert" --out "$PROP" --head attentive --queries 4 --proprio-delta \
      --steps "$STEPS" --threads 1 --quiet ;;
  tune)
    "$BIN/simjepa" evaluate --env Pusher-v5 --episodes 20 --seed-start 500 --policy proposal --proposal "$PROP" \
      --model default --workers 1 --threads 1 --out "$WORK/tune_att_q4_delta_${STEPS}" ;;
esac; done
