#!/usr/bin/env bash
# Two-level planning with default model v3.1 (issue 22's "+ hierarchy" and "both" rows), as run for
# docs/hierarchy.md: a macro-step model trained on the v3 caches of scripts/default_model.sh (encoded by the
# shipped encoder), then tuning on seeds 500-509 and one run per row on 1000-1049.
# STAGES picks steps: macro tune eval (default: all). LANE=a|b splits tune / eval between two processes
# (one torch thread each, a 2-core machine); without LANE one process runs everything. Every evaluate
# resumes after a kill (re-run the same stage).
# Rows: "+ hierarchy" = flat CEM 100 x 3 (no proposal) under the macro model; "both" = the CEM 8 x 1 seeded
# by the v3.1 proposal (the "+ proposal" row) under the macro model. The high level: 100 samples x 3
# iterations over 4 macro-steps of k = 5, as in the first two-level runs; EVERY (env steps between
# high-level searches) was chosen on the tuning stage.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
WORK=${WORK:-runs/h31}
FEATS=${FEATS:-feats/v3}
EVERY=${EVERY:-5}
STAGES=${STAGES:-"macro tune eval"}
LANE=${LANE:-all}
export OMP_NUM_THREADS=1 MUJOCO_GL=${MUJOCO_GL:-egl}
MACRO=(--macro-model "$WORK/macro5" --macro-samples 100 --macro-iters 3 --macro-horizon 4)
FLAT=(--proposal none --search cem --horizon 2 --samples 100 --iters 3 --topk 10)
PROP=(--search cem --horizon 2 --samples 8 --iters 1 --topk 4)

ev() {  # lane task seed_start episodes name flags...
  local lane=$1 task=$2 seed=$3 n=$4 name=$5; shift 5
  if [ "$LANE" = all ] || [ "$LANE" = "$lane" ]; then
    "$BIN/simjepa" evaluate --env "simjepa/$task-v0" --episodes "$n" --seed-start "$seed" --model default \
      --out "$WORK/eval/$name" --workers 1 --threads 1 "$@"
  fi
}

for stage in $STAGES; do case $stage in
  macro)
    "$BIN/simjepa" train --features "$FEATS/push" --features "$FEATS/pickplace" --features "$FEATS/reach600" \
      --features "$FEATS/expert-push" --features "$FEATS/expert-pickplace" --out "$WORK/macro5" --config mini \
      --steps 2000 --batch-size 32 --macro-steps 5 --init default --ckpt-every 250 --workers 1 --plan-seconds 0 \
      --quiet --threads 1 ;;
  tune)
    for every in 1 5; do
      ev a Push 500 10 "Push-both-every$every-tuning-500-509" "${PROP[@]}" "${MACRO[@]}" --macro-every "$every"
      ev b PickPlace 500 10 "PickPlace-both-every$every-tuning-500-509" "${PROP[@]}" "${MACRO[@]}" --macro-every "$every"
    done ;;
  eval)
    ev a Push 1000 50 "Push-v3.1-hierarchy-cem100x3" "${FLAT[@]}" "${MACRO[@]}" --macro-every "$EVERY"
    ev a Push 1000 50 "Push-v3.1-both-cem8x1-proposal" "${PROP[@]}" "${MACRO[@]}" --macro-every "$EVERY"
    ev a Reach 1000 50 "Reach-v3.1-hierarchy-cem100x3" "${FLAT[@]}" "${MACRO[@]}" --macro-every "$EVERY"
    ev a Reach 1000 50 "Reach-v3.1-both-cem8x1-proposal" "${PROP[@]}" "${MACRO[@]}" --macro-every "$EVERY"
    ev a PickPlace 1000 50 "PickPlace-v3.1-both-cem8x1-proposal" "${PROP[@]}" "${MACRO[@]}" --macro-every "$EVERY"
    ev b PickPlace 1000 50 "PickPlace-v3.1-hierarchy-cem100x3" "${FLAT[@]}" "${MACRO[@]}" --macro-every "$EVERY" ;;
esac; done
