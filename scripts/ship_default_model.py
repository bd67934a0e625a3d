"""Install a trained run as the shipped default model, with its tuned planner defaults and recipe.

Writes world_model/assets/default_model.pt (predictor + embedded encoder + planner defaults) and
world_model/assets/default_encoder.pt (the frozen encoder alone, for `--encoder default`).
``--planner-only`` rewrites just the planner defaults of the shipped model (weights untouched).
"""
from __future__ import annotations

import argparse
import shutil
import subprocess

from world_model.model_file import load_world_model, with_planner_defaults
from world_model.encoder_loading import DEFAULT_ENCODER_PATH
from world_model.predictor import DEFAULT_MODEL

# The planner defaults of the image-goal protocol: a search SIZE per task is fair (a user knows which task
# they run); a rule that sets an action dimension per task (a gripper command, a yaw) is not, and none is
# recorded. Reach gets the bigger search (tuned on seeds 500-549, docs "Default model").
PLANNER = dict(samples=100, iterations=3, topk=10, horizon=2, per_env={
    "simjepa/Reach-v0": dict(samples=300, iterations=5),
})


def _commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--run", help="training run directory (its final.pt)")
    ap.add_argument("--encoder", help="the encoder checkpoint the features were made with")
    ap.add_argument("--planner-only", action="store_true",
                    help="only replace the shipped model's planner defaults with PLANNER (weights stay bit-identical)")
    args = ap.parse_args()
    if args.planner_only:
        recipe = dict(load_world_model(DEFAULT_MODEL, with_encoder=False).info.get("recipe") or {})
        recipe["planner"] = {"command": "python scripts/ship_default_model.py --planner-only", "commit": _commit()}
        with_planner_defaults(DEFAULT_MODEL, DEFAULT_MODEL, {"per_env": {}, **PLANNER}, recipe)
        print(f"planner defaults of {DEFAULT_MODEL} replaced")
        return
    if not args.run or not args.encoder:
        ap.error("--run and --encoder are required (or --planner-only)")
    recipe = {"command": "make default-model", "script": "scripts/default_model.sh", "commit": _commit()}
    with_planner_defaults(args.run, DEFAULT_MODEL, PLANNER, recipe)
    shutil.copyfile(args.encoder, DEFAULT_ENCODER_PATH)
    print(f"shipped {DEFAULT_MODEL} and {DEFAULT_ENCODER_PATH}")


if __name__ == "__main__":
    main()
