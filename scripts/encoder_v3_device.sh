#!/usr/bin/env bash
# Issue 21 on a lent GPU machine (see scripts/encoder_v3_experiment.py). Run from the repo root with the
# code under .exp21/ and wheels under .whl/. TINY=1: toy scale on the local CPU (a dry run of every stage).
set -u
ROOT=$PWD
OUTDIR=${OUT:-/tmp/exp21_out}
WORK=${WORK:-/tmp/exp21}
mkdir -p "$OUTDIR" "$WORK"
if [ "${TINY:-0}" = 1 ]; then
  PY=${PY:-python3}
  ARGS="--device cpu --workers 2 --probe-workers 2 --pretrain-episodes 2 --probe-episodes 6 --steps 3 --batch 4 --train-budget 300 --deadline 400 --hard-stop 500 --variants base_64p8_f2,clip8_grid_128p16"
  STOP=600
else
  if ls .gl/*.deb >/dev/null 2>&1; then for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig; fi
  f=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json; [ -f $f ] && export __EGL_VENDOR_LIBRARY_FILENAMES=$f
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
  export PYTHONPATH=/tmp/site:$ROOT/.exp21 MUJOCO_GL=egl PYTHONUNBUFFERED=1
  PY=python3
  ARGS="--device cuda --train-budget 285 --deadline 420 --hard-stop 455"
  STOP=${STOP:-470}
  nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader
  nproc; free -g | head -2
fi
$PY -c "import torch, mujoco, gymnasium; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'mujoco', mujoco.__version__)" || exit 4
$PY -c "from envs import make_env; e = make_env('simjepa/Push-v0', render_size=64); o, _ = e.reset(seed=0); print('render ok', o['pixels'].shape, o['pixels'].mean())" || exit 5
timeout -k 5 $STOP $PY .exp21/scripts/encoder_v3_experiment.py --out "$WORK/out" --data "$WORK/data" $ARGS 2>&1 | tee "$OUTDIR/run.log"
echo "experiment exit ${PIPESTATUS[0]}"
$PY .exp21/scripts/encoder_v3_experiment.py --stage plots --out "$WORK/out" --data "$WORK/data" || true
$PY .exp21/scripts/encoder_v3_experiment.py --stage pack --out "$WORK/out" --data "$WORK/data" --dest "$OUTDIR" 2>&1 | tee -a "$OUTDIR/run.log"
ls -la "$OUTDIR"
