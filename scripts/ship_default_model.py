"""Install a trained run as the shipped default model, or check that a rebuild matches the shipped one.

Writes world_model/assets/default_model.pt (predictor + embedded encoder + embedded proposal + planner
defaults) and world_model/assets/default_encoder.pt (the frozen encoder alone, for `--encoder default`).
``--check`` prints the weights hashes of a rebuild next to the shipped files' and exits 1 when any differs
(the end of `make default-model`). ``--planner-only`` rewrites just the planner defaults of the shipped
model (weights untouched).
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys

from world_model.checkpoints import weights_hash
from world_model.encoder_loading import DEFAULT_ENCODER_PATH, load_encoder
from world_model.model_file import embedded_weight_hashes, load_world_model, with_planner_defaults
from world_model.predictor import DEFAULT_MODEL
from world_model.proposal import load_proposal

# The planner defaults of the image-goal protocol, one setting per task (a user knows which task they run);
# no setting fixes an action dimension (a gripper command, a yaw) and none reads the goal's state. Each was
# chosen on seeds 500-549 only (docs/default-model-v3.md): Reach, the smallest search around the embedded
# proposal that solved every tuning seed; Push and PickPlace, the proposal alone (the world model's energy
# overrode its pushes and grasps), executing 2 actions per proposal on Push and averaging the last 2
# proposals' actions for each step on PickPlace (v3.1's proposal; v3's was best with 4). Other envs: a
# 100 x 3 search seeded by the proposal.
PLANNER = dict(samples=100, iterations=3, topk=10, horizon=2, per_env={
    "simjepa/Reach-v0": dict(samples=8, iterations=1, topk=4),
    "simjepa/Push-v0": dict(search="none", horizon=4, execute_steps=2),
    "simjepa/PickPlace-v0": dict(search="none", horizon=4, ensemble_plans=2),
})


def _commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()


def rebuild_hashes(run: str, encoder: str, proposal: str | None) -> dict[str, str]:
    """The weights hashes a rebuild would ship, named like :func:`embedded_weight_hashes`'s."""
    hashes = embedded_weight_hashes(run)
    hashes["encoder"] = weights_hash(load_encoder(encoder).state_dict())
    if proposal is not None:
        hashes["proposal"] = weights_hash(load_proposal(proposal).state_dict())
    return hashes


def shipped_hashes() -> dict[str, str]:
    if not DEFAULT_MODEL.is_file():
        return {}
    hashes = embedded_weight_hashes(DEFAULT_MODEL)
    if DEFAULT_ENCODER_PATH.is_file():
        hashes["encoder file"] = weights_hash(load_encoder(str(DEFAULT_ENCODER_PATH)).state_dict())
    return hashes


def compare(rebuilt: dict[str, str], shipped: dict[str, str]) -> list[str]:
    """Print both sets of hashes; return the parts that differ (the encoder file must match the embedded one)."""
    rebuilt = {**rebuilt, "encoder file": rebuilt["encoder"]}
    differ = []
    print(f"{'part':<14}{'rebuilt':<20}{'shipped':<20}")
    for part in ("encoder", "encoder file", "predictor", "proposal"):
        a, b = rebuilt.get(part, "-"), shipped.get(part, "-")
        print(f"{part:<14}{a:<20}{b:<20}{'same' if a == b else 'DIFFERENT'}")
        if a != b:
            differ.append(part)
    return differ


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", help="training run directory (its final.pt)")
    ap.add_argument("--encoder", help="the encoder checkpoint the features were made with")
    ap.add_argument("--proposal", help="a `simjepa train-proposal` file trained on that encoder's features, to embed")
    ap.add_argument("--check", action="store_true", help="compare the rebuild's weights hashes with the shipped files; "
                                                         "exit 1 if any differs (nothing is written)")
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
    if args.check:
        differ = compare(rebuild_hashes(args.run, args.encoder, args.proposal), shipped_hashes())
        if differ:
            print(f"the rebuild differs from the shipped default model in: {', '.join(differ)}")
            sys.exit(1)
        print("the rebuild is bit-identical to the shipped default model")
        return
    recipe = {"command": "make default-model", "script": "scripts/default_model.sh", "commit": _commit()}
    with_planner_defaults(args.run, DEFAULT_MODEL, PLANNER, recipe, proposal=args.proposal)
    shutil.copyfile(args.encoder, DEFAULT_ENCODER_PATH)
    print(f"shipped {DEFAULT_MODEL} and {DEFAULT_ENCODER_PATH}")


if __name__ == "__main__":
    from simjepa_core.errors import SimjepaError

    try:
        main()
    except SimjepaError as exc:  # a missing or mismatched file: one line, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
