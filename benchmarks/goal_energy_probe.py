"""What the goal energy weighs: the arm's pose or the cube's place? (issue 22 diagnostic)

For each seed of Push or PickPlace it renders four frames and scores each with the planner's energy
(mean L1 between layer-normed encoder features of the frame and of the env's goal image):

- ``start``: the episode's first frame;
- ``arm_at_goal``: the arm posed as in the goal image, the cube where it starts (the trap of flat
  planning: nothing pushed);
- ``cube_at_goal``: the cube on the target, the arm where it starts (the task done, arm elsewhere);
- ``goal``: the goal configuration re-rendered (0 up to rendering noise).

If ``arm_at_goal`` scores lower than ``cube_at_goal``, the energy prefers moving the arm into the
goal image's pose over moving the cube: a planner minimising it (flat or hierarchical) is pulled to
the trap unless something else in the features shows the cube. The env's state is set directly:
this is a probe of the energy, not a protocol.

    python benchmarks/goal_energy_probe.py --env simjepa/Push-v0 --seeds 500-519 --out benchmarks/results/hierarchy/goal_energy_push.json

``cube_share``: the cube-only-wrong energy as a share of the start's, under three reads of the per-token
energies (:func:`cube_shares`). ``--encoder E`` scores with another frozen encoder (the energy needs no predictor),
e.g. a random init or a longer-pretrained encoder, at that encoder's own frame size and the model's token pooling.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import mujoco
import numpy as np
import torch

from envs.registration import make_env
from planning.energy import normalize_reps
from world_model import load_world_model
from world_model.checkpoints import weights_hash
from world_model.encoder_loading import load_encoder
from world_model.frozen_encoder import FrozenEncoder
from world_model.model_file import WorldModel


def frames_of(env, seed: int) -> dict[str, np.ndarray]:
    base = env.unwrapped
    obs, info = env.reset(seed=seed)
    out = {"start": obs["pixels"], "goal_image": info["goal"]["pixels"]}
    saved = base._save()
    base._goal_configuration()  # arm and cube as in the goal image
    arm_q = base.data.qpos.copy()
    out["goal"] = base._obs()["pixels"]
    cube = base.model.jnt_qposadr[base.model.joint("cube").id]
    base._restore(saved)
    start_cube = base.data.qpos[cube : cube + 7].copy()
    qpos = arm_q.copy()
    qpos[cube : cube + 7] = start_cube
    base.data.qpos[:] = qpos
    mujoco.mj_forward(base.model, base.data)
    out["arm_at_goal"] = base._obs()["pixels"]
    base._restore(saved)
    qpos = base.data.qpos.copy()
    qpos[cube : cube + 7] = arm_q[cube : cube + 7]
    base.data.qpos[:] = qpos
    mujoco.mj_forward(base.model, base.data)
    out["cube_at_goal"] = base._obs()["pixels"]
    base._restore(saved)
    return out


def cube_shares(per_token: torch.Tensor) -> dict[str, float]:
    """How much of the start's energy is left when only the cube is wrong (``arm_at_goal`` / ``start``),
    under three reads of the per-token energies ``[start, arm_at_goal, ...]`` x tokens: the planner's mean
    over tokens; a mean weighted by how much each token differs between start and goal (a weighting a
    planner could compute from its observation and the goal image); the mean of the 4 largest tokens."""
    w = per_token[0] / per_token[0].sum()
    reads = {"mean": per_token.mean(1), "start_goal_weighted": (per_token * w).sum(1),
             "top4_tokens": per_token.topk(4, dim=1).values.mean(1)}
    return {k: float(v[1] / v[0]) for k, v in reads.items()}


def scoring_model(wm: WorldModel, encoder_path: str | None) -> tuple[WorldModel, int]:
    """The model whose encoder scores, and the frame size to render: ``encoder_path``'s encoder at its own frame
    size (a 128 px, patch-16 encoder has the model's 8x8 grid only at 128 px) with the model's token pooling."""
    if not encoder_path:
        return wm, wm.image_size
    encoder = load_encoder(encoder_path)
    size = encoder.config.image_size
    return replace(wm, encoder=FrozenEncoder(encoder, image_size=size, token_pool=wm.token_pool)), size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="simjepa/Push-v0")
    ap.add_argument("--seeds", default="500-519", help="first-last (tuning seeds)")
    ap.add_argument("--model", default="default")
    ap.add_argument("--encoder", default=None, help="score with this encoder instead of the model's own")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    lo, hi = (int(x) for x in args.seeds.split("-"))
    wm = load_world_model(args.model)
    wm, render_size = scoring_model(wm, args.encoder)
    env = make_env(args.env, render_size=render_size)
    rows = []
    names = ("start", "arm_at_goal", "cube_at_goal", "goal")
    for seed in range(lo, hi + 1):
        fr = frames_of(env, seed)
        with torch.no_grad():
            z = normalize_reps(wm.encode(np.stack([fr["goal_image"], *(fr[n] for n in names)])).float())
        per_token = (z[1:] - z[:1]).abs().mean(-1)  # [4, N]: each frame's energy on each token
        e = per_token.mean(1).tolist()
        rows.append({"seed": seed, **dict(zip(names, e)), "cube_share": cube_shares(per_token)})
    env.close()
    summary = {n: float(np.mean([r[n] for r in rows])) for n in names}
    trap = float(np.mean([r["arm_at_goal"] < r["cube_at_goal"] for r in rows]))
    shares = {k: float(np.mean([r["cube_share"][k] for r in rows])) for k in rows[0]["cube_share"]}
    # the hash names the encoder that scored, whether it was --encoder or the model's own
    result = {"env": args.env, "model": args.model, "encoder": args.encoder or "the model's",
              "encoder_hash": weights_hash(wm.encoder.encoder.state_dict()), "seeds": [lo, hi],
              "mean_energy": summary, "share_arm_at_goal_below_cube_at_goal": trap, "cube_share": shares, "rows": rows}
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=1))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
