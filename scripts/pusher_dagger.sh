#!/usr/bin/env bash
# Pusher-v5 from the goal image, fourth round (issue 24): DAgger rounds for the attentive proposal.
# Round k drives N episodes with proposal k (the scripted controller's action executed with probability
# BETA0 in round 0, never after: the episodes are the proposal's own), labels every visited state with
# the controller's action, encodes them, and trains proposal k+1 on the scripted episodes plus every
# DAgger round so far (--labels expert); then the proposal alone on tuning seeds 500-519.
# Proposal 0 is the third round's (scripts/pusher_proposal.sh, STEPS=4000). Training seeds: 130000+.
# Two collection processes run at once (one thread each). Every stage resumes when re-run after a kill.
# ROUNDS: which rounds to run (default "0 1 2 3"); N: episodes per round; STEPS: optimizer steps per proposal.
# Another chain beside this one: TAG names its files (proposals $WORK/prop_${TAG}K.pt, data ${TAG}K{a,b}),
# SEED0 its first seed (round k uses SEED0 + 1000 k ...), EXTRA_FEATURES caches every proposal also trains on,
# TRAIN_FLAGS extra train-proposal flags (e.g. "--locate-object 1 --readout object").
# shellcheck source=scripts/pusher_paths.sh
source "$(dirname "$0")/pusher_paths.sh"
P0=${P0:-runs/pusher3/prop_att_q4_delta_4000.pt}
ROUNDS=${ROUNDS:-"0 1 2 3"}
N=${N:-200}
STEPS=${STEPS:-2500}
BETA0=${BETA0:-0.3}
THREADS=${THREADS:-2}
TAG=${TAG:-dagger}
SEED0=${SEED0:-130000}
EXTRA_FEATURES=${EXTRA_FEATURES:-}
TRAIN_FLAGS=${TRAIN_FLAGS:-}
proposal() { if [ "$1" = 0 ]; then echo "$P0"; else echo "$WORK/prop_$TAG$1.pt"; fi; }
for k in $ROUNDS; do
  prop=$(proposal "$k"); next=$WORK/prop_$TAG$((k + 1)).pt
  beta=$([ "$k" = 0 ] && echo "$BETA0" || echo 0)
  half=$((N / 2)); seed=$((SEED0 + 1000 * k))
  for part in a b; do
    s=$([ $part = a ] && echo $seed || echo $((seed + half)))
    OMP_NUM_THREADS=1 "$PY" benchmarks/dagger_collect.py --env Pusher-v5 --proposal "$prop" --episodes "$half" \
      --seed-start "$s" --beta "$beta" --out "$DATA/$TAG$k$part" > "$WORK/collect_$TAG$k$part.log" 2>&1 &
  done
  wait
  tail -n 1 "$WORK/collect_$TAG${k}a.log" "$WORK/collect_$TAG${k}b.log"
  for part in a b; do
    OMP_NUM_THREADS=$THREADS "$BIN/simjepa" encode --data "$DATA/$TAG$k$part" --encoder default --token-pool 1 \
      --out "$FEATS/$TAG$k$part" --threads "$THREADS" --quiet
  done
  caches=(--features "$EXPERT_FEATS")
  for f in $EXTRA_FEATURES; do caches+=(--features "$f"); done
  for j in $(seq 0 "$k"); do caches+=(--features "$FEATS/$TAG${j}a" --features "$FEATS/$TAG${j}b"); done
  # shellcheck disable=SC2086  # TRAIN_FLAGS is a list of flags
  OMP_NUM_THREADS=$THREADS "$BIN/simjepa" train-proposal "${caches[@]}" --out "$next" --head attentive --queries 4 \
    --proprio-delta --labels expert --steps "$STEPS" --threads "$THREADS" --quiet $TRAIN_FLAGS
  tune=$WORK/tune_$TAG$((k + 1))
  if [ ! -f "$tune/results.json" ]; then
    OMP_NUM_THREADS=1 "$BIN/simjepa" evaluate --env Pusher-v5 --episodes 20 --seed-start 500 --policy proposal \
      --proposal "$next" --model default --workers 2 --threads 1 --out "$tune" > "$tune.log" 2>&1
    tail -n 1 "$tune.log"
  fi
done
