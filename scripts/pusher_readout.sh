#!/usr/bin/env bash
# Pusher-v5 from the goal image, fifth round (issue 24): the object read-out proposal and DAgger on its own
# episodes, replaying the measured path (docs/gymnasium-envs.md, "Fifth round"). It starts where the
# earlier rounds left their data, so run them first (hours on 2 cores, each resumable):
#   STEPS=4000 bash scripts/pusher_proposal.sh      # 1200 scripted episodes -> feats/pusher3/expert, proposal 0
#   bash scripts/pusher_dagger.sh                   # 4 image-DAgger rounds -> feats/pusher4/dagger{0..3}{a,b}
# Then this script: (1) the object-head proposal of round 4, (2) 600 episodes it drives with the controller's
# action in 30 % of steps (seeds 140000+), (3) proposal 0 of the read-out on all of it, (4) DAgger rounds of
# 400 episodes driven by the read-out proposal alone (seeds 150000+; the last round trains 4000 steps), each
# tuned on seeds 500-519. Every stage resumes when re-run after a kill.
# STAGES picks stages (default: "object collect readout dagger"); ROUNDS the DAgger rounds (default "0 1 2 3 4").
# shellcheck source=scripts/pusher_paths.sh
source "$(dirname "$0")/pusher_paths.sh"
STAGES=${STAGES:-"object collect readout dagger"}
ROUNDS=${ROUNDS:-"0 1 2 3 4"}
earlier=(--features "$EXPERT_FEATS")
for k in 0 1 2 3; do earlier+=(--features "$FEATS/dagger${k}a" --features "$FEATS/dagger${k}b"); done
common=(--head attentive --queries 4 --proprio-delta --labels expert --quiet)
for stage in $STAGES; do case $stage in
  object)
    OMP_NUM_THREADS=1 "$BIN/simjepa" train-proposal "${earlier[@]}" --out "$WORK/prop_dagger4_obj.pt" "${common[@]}" \
      --locate-object 0.2 --steps 4000 --threads 1 ;;
  collect)
    for part in a b; do
      s=$([ $part = a ] && echo 140000 || echo 140300)
      OMP_NUM_THREADS=1 "$PY" benchmarks/dagger_collect.py --env Pusher-v5 --proposal "$WORK/prop_dagger4_obj.pt" \
        --episodes 300 --seed-start "$s" --beta 0.3 --out "$DATA/dagger4$part" > "$WORK/collect4$part.log" 2>&1 &
    done
    wait
    for part in a b; do
      OMP_NUM_THREADS=2 "$BIN/simjepa" encode --data "$DATA/dagger4$part" --encoder default --token-pool 1 \
        --out "$FEATS/dagger4$part" --threads 2 --quiet
    done ;;
  readout)
    OMP_NUM_THREADS=2 "$BIN/simjepa" train-proposal "${earlier[@]}" --features "$FEATS/dagger4a" --features "$FEATS/dagger4b" \
      --out "$WORK/prop_ro1.pt" "${common[@]}" --locate-object 1 --readout object --steps 2500 --threads 2 ;;
  dagger)
    extra=""
    for k in 0 1 2 3 4; do extra+="$FEATS/dagger${k}a $FEATS/dagger${k}b "; done
    for k in $ROUNDS; do
      steps=$([ "$k" = 4 ] && echo 4000 || echo 2500)
      TAG=rodag SEED0=150000 BETA0=0 N=400 ROUNDS="$k" STEPS=$steps P0="$WORK/prop_ro1.pt" EXTRA_FEATURES="$extra" \
        TRAIN_FLAGS="--locate-object 1 --readout object" WORK="$WORK" DATA="$DATA" FEATS="$FEATS" \
        EXPERT_FEATS="$EXPERT_FEATS" BIN="$BIN" PY="$PY" bash scripts/pusher_dagger.sh
    done ;;
  *) echo "unknown stage $stage (use: object collect readout dagger)" >&2; exit 2 ;;
esac; done
