"""Diagnostic: how far could a planner get on an encoder's energy if its predictor were perfect?

The closed-loop planner's failures mix two causes: the predictor imagines the future wrongly, or the
energy (L1 between the encoded frame and the goal image) has its minimum, or a local basin, in the
wrong place. This script removes the first. It replaces the predictor with the simulator and plans
greedily (horizon 1): at every step it tries each translation move of one action (the 26 directions
of {-1, 0, 1}^3 at full action scale, 3 cm, and with ``--fine`` also at a third of it), simulates each
one from the saved state, encodes the real front frame and takes the move with the lowest energy
(``--cameras front side``: the sum of both views' energies, as a two-view world model plans).
Reach plans towards the goal image. Push and PickPlace plan through dense waypoints, every
``--stride``-th observation of the expert's demonstration of that seed, ``--per`` steps each (the last
one until the episode ends), because one goal image cannot say "go behind the cube first".

The gripper is held open for Reach and closed for Push (as their goal images show it); PickPlace also
searches over open / closed. Success is the env's own, at any step within its step limit.

    .venv/bin/python benchmarks/oracle_search.py --env simjepa/Reach-v0 --episodes 30 --seed-start 500
    .venv/bin/python benchmarks/oracle_search.py --env simjepa/Reach-v0 --random-init
    .venv/bin/python benchmarks/oracle_search.py --env simjepa/Reach-v0 --energy pixels
    .venv/bin/python benchmarks/oracle_search.py --env simjepa/Reach-v0 --cameras front side
    .venv/bin/python benchmarks/oracle_search.py --env simjepa/Push-v0 --episodes 10 --fine
"""
from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from envs import make_env
from simjepa_core.atomic import write_json
from simjepa_core.errors import SimjepaError
from envs.scene import pixels_key
from planning.energy import feature_energy, normalize_reps
from planning.policies import ExpertPolicy
from planning.rollout import rollout
from world_model.encoder import random_init_like
from world_model.encoder_loading import load_encoder
from world_model.frozen_encoder import FrozenEncoder

GRIPPER = {"reach": (-1.0,), "push": (1.0,), "pickplace": (-1.0, 1.0)}


def candidate_actions(task: str, fine: bool) -> np.ndarray:
    """[K, 7] actions: every non-zero translation direction, at full scale (and a third with ``fine``),
    times the task's gripper commands; rotation stays 0."""
    scales = (1.0, 1.0 / 3.0) if fine else (1.0,)
    dirs = [np.array(d, float) for d in itertools.product((-1, 0, 1), repeat=3) if any(d)]
    return np.array([np.concatenate([k * d, np.zeros(3), [g]]) for g in GRIPPER[task] for k in scales for d in dirs])


def make_featurizer(energy: str, encoder: str, random_init: bool, size: int):
    """uint8 frames [B, H, W, 3] -> tokens [B, N, C] compared with L1 (layer-normed encoder tokens, or
    8 x 8 average-pooled RGB in [0, 1] for ``pixels``)."""
    if energy == "pixels":
        def pixels(frames: np.ndarray) -> torch.Tensor:
            x = torch.as_tensor(frames).float().permute(0, 3, 1, 2) / 255.0  # [B, 3, H, W]
            return F.avg_pool2d(x, 8).flatten(2).transpose(1, 2)  # [B, (H/8)*(W/8), 3]
        return pixels
    model = load_encoder(encoder)
    if random_init:
        model = random_init_like(model)
    enc = FrozenEncoder(model, size)
    return lambda frames: normalize_reps(enc.encode(frames))  # [B, N, D]


def demo_waypoints(env_id: str, seed: int, size: int, stride: int, camera: str = "front") -> list[dict[str, np.ndarray]]:
    """Every ``stride``-th observation of the expert's demonstration of ``seed`` (seen by ``camera``),
    always ending on its last one, as the goal dicts ``rollout`` takes for sub-goals."""
    env = make_env(env_id, render_size=size, cameras=(camera,))
    demo = rollout(env, ExpertPolicy(env), seed, record=True)
    env.close()
    frames = [obs for obs, _ in demo["frames"][1:]]  # the observation after each expert step
    picked = frames[stride - 1 :: stride]
    if not picked or picked[-1] is not frames[-1]:
        picked.append(frames[-1])
    return [{"pixels": f} for f in picked]


class GreedyOracle:
    """A policy for :func:`planning.rollout.rollout` that plans with the simulator as its predictor.

    Each ``act`` tries every candidate action from the current state on the unwrapped env (so the
    time limit does not count the trials), restores the state, and returns the action whose next front
    frame has the lowest L1 energy against the goal image.
    """

    def __init__(self, env, featurize, actions: np.ndarray) -> None:
        self.sim, self.featurize, self.actions = env.unwrapped, featurize, actions
        self.views = [pixels_key(self.sim.cameras, i) for i in range(len(self.sim.cameras))]
        self._goal_pixels, self._goal = None, None

    def act(self, obs: dict, goal: dict) -> np.ndarray:
        if goal["pixels"] is not self._goal_pixels:  # a new (sub-)goal: encode it once
            self._goal_pixels = goal["pixels"]
            self._goal = {v: self.featurize(goal[v][None])[0] for v in self.views}  # view -> [N, C]
        saved = self.sim._save()
        frames: dict[str, list[np.ndarray]] = {v: [] for v in self.views}
        for a in self.actions:
            self.sim._restore(saved)
            nxt = self.sim.step(a)[0]
            for v in self.views:
                frames[v].append(nxt[v])
        self.sim._restore(saved)
        e = sum(feature_energy(self.featurize(np.stack(frames[v]))[:, None], self._goal[v]) for v in self.views)
        return self.actions[int(torch.argmin(e))]  # the mean energy over views has the same argmin as the sum


def search_episode(env, featurize, actions: np.ndarray, seed: int, stride: int, per: int) -> dict:
    """One greedy episode (towards the goal image, or through demo waypoints when ``stride`` > 0, ``per``
    steps each); returns seed, success, final distance and steps."""
    sim = env.unwrapped
    waypoints = demo_waypoints(env.spec.id, seed, sim.render_size, stride, sim.cameras[0]) if stride > 0 else None
    out = rollout(env, GreedyOracle(env, featurize, actions), seed, subgoals=waypoints, subgoal_steps=per)
    return {"seed": seed, "success": out["success"], "final_distance": round(out["final_distance"], 4), "steps": out["steps"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", default="simjepa/Reach-v0", help="simjepa/Reach-v0, Push-v0 or PickPlace-v0")
    ap.add_argument("--episodes", type=int, default=30)
    ap.add_argument("--seed-start", type=int, default=500, help="default: the planner-tuning seeds")
    ap.add_argument("--energy", choices=("encoder", "pixels"), default="encoder")
    ap.add_argument("--encoder", default="default", help="encoder name or file (with --energy encoder)")
    ap.add_argument("--random-init", action="store_true", help="a random init of the encoder's shape (seed 0)")
    ap.add_argument("--render-size", type=int, default=64)
    ap.add_argument("--cameras", nargs="+", default=["front"], help="views whose energies are summed "
                    "(e.g. front side; more than one only towards the goal image, --stride 0)")
    ap.add_argument("--stride", type=int, default=None, help="waypoint stride (0: goal image only; "
                    "default 0 for Reach, 2 otherwise)")
    ap.add_argument("--per", type=int, default=5, help="steps per waypoint")
    ap.add_argument("--fine", action="store_true", help="also try moves of a third of the action scale")
    ap.add_argument("--out", type=Path, default=None, help="write per-seed results and the summary as JSON")
    args = ap.parse_args()
    torch.set_num_threads(1)

    if args.episodes < 1 or args.per < 1 or (args.stride is not None and args.stride < 0):
        ap.error("--episodes and --per must be >= 1, --stride >= 0")
    try:
        env = make_env(args.env, render_size=args.render_size, cameras=tuple(args.cameras))
    except SimjepaError as err:
        ap.error(str(err))
    task = getattr(env.unwrapped, "task", None)
    if task not in GRIPPER:
        ap.error(f"{args.env} has no expert or goal layout this search knows; use one of the simjepa tasks")
    stride = args.stride if args.stride is not None else (0 if task == "reach" else 2)
    if stride > 0 and len(args.cameras) > 1:
        ap.error("demo waypoints are one camera's frames; use one camera with --stride > 0")
    try:
        featurize = make_featurizer(args.energy, args.encoder, args.random_init, args.render_size)
    except SimjepaError as err:
        ap.error(str(err))
    actions = candidate_actions(task, args.fine)
    rows, t0 = [], time.perf_counter()
    for seed in range(args.seed_start, args.seed_start + args.episodes):
        rows.append(search_episode(env, featurize, actions, seed, stride, args.per))
        print(json.dumps(rows[-1]), flush=True)
    wins = sum(r["success"] for r in rows)
    summary = {
        "env": args.env, "energy": args.energy, "encoder": None if args.energy == "pixels" else args.encoder,
        "random_init": args.random_init, "render_size": args.render_size, "cameras": args.cameras, "stride": stride, "per": args.per,
        "fine": args.fine, "candidates": len(actions), "episodes": len(rows), "successes": wins,
        "mean_final_distance": round(float(np.mean([r["final_distance"] for r in rows])), 4),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print(f"{args.env}: {wins}/{len(rows)} reached with the simulator as predictor, mean final distance "
          f"{summary['mean_final_distance']:.3f} m ({args.energy}{'' if args.energy == 'pixels' else ' ' + args.encoder}"
          f"{', random init' if args.random_init else ''}, {'+'.join(args.cameras)}, {len(actions)} candidate moves)")
    if args.out is not None:
        write_json(args.out, {**summary, "episodes_detail": rows})


if __name__ == "__main__":
    main()
