# Sourced by scripts/pusher_dagger.sh and scripts/pusher_readout.sh: the Pusher-v5 rounds' tools and
# folders (each overridable from the environment), run from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
PY=${PY:-$BIN/python}
WORK=${WORK:-runs/pusher4}
DATA=${DATA:-data/pusher4}
FEATS=${FEATS:-feats/pusher4}
EXPERT_FEATS=${EXPERT_FEATS:-feats/pusher3/expert}
export MUJOCO_GL=${MUJOCO_GL:-egl}
mkdir -p "$WORK"
