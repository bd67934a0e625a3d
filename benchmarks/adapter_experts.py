"""Success of an adapted env's scripted controller (``envs.adapter_experts``) on a range of seeds.

Each seed is one episode of the env's default length from ``reset(seed=s)``; success is the
adapter's ``info["success"]`` (Pusher-v5: object within 0.05 m of the goal) at any step, as
``simjepa evaluate`` counts it. ``--set NAME=VALUE`` overrides one of the controller's gains
(``PusherExpert`` / ``ReacherExpert`` keyword arguments), which is how the gains were tuned on
seeds 500-519. ``--policy mixed`` runs ``simjepa collect``'s mixed policy around the controller
(default gains), to see how much of a mixed dataset solves the task:

    python benchmarks/adapter_experts.py --env Pusher-v5 --seeds 500-519
    python benchmarks/adapter_experts.py --env Pusher-v5 --seeds 500-519 --set depth=0.062 --set yaw=35
    python benchmarks/adapter_experts.py --env Pusher-v5 --seeds 1000-1049 --json runs/pusher_expert.json
    python benchmarks/adapter_experts.py --env Pusher-v5 --seeds 500-519 --policy mixed

Frames are not rendered (the controllers never look at them, and software rendering would take
most of the time); the adapter's goal, distance and success are computed as usual.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time

import gymnasium as gym
import numpy as np

from envs.adapter import GymMujocoAdapter
from envs.adapter_experts import make_adapter_expert
from envs.collect import CollectPolicy
from simjepa_core.errors import SimjepaError


class BlindAdapter(GymMujocoAdapter):
    """The adapter with blank frames: same states, goals and success, no rendering."""

    def _pixels(self) -> np.ndarray:
        return np.zeros((self.render_size, self.render_size, 3), np.uint8)


def seed_range(text: str) -> list[int]:
    """``"500-519"`` -> [500, ..., 519]; ``"7"`` -> [7]."""
    try:
        lo, _, hi = text.partition("-")
        seeds = list(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        seeds = []
    if not seeds:
        raise SimjepaError(f"--seeds takes FIRST-LAST (e.g. 500-519), got {text!r}")
    return seeds


def gain(text: str) -> tuple[str, float]:
    name, _, value = text.partition("=")
    try:
        return name, float(value)
    except ValueError:
        raise SimjepaError(f"--set takes NAME=NUMBER (e.g. depth=0.06), got {text!r}") from None


def run_seeds(env_id: str, seeds: list[int], gains: dict[str, float] | None = None,
              policy: str = "expert") -> list[dict]:
    """One row per seed: ``success`` (at any step), ``steps`` (first successful step, None if never),
    ``final_distance`` and ``phases`` (how many steps the controller spent in each phase).

    ``policy="mixed"``: exactly what ``simjepa collect --policy mixed`` runs for that seed."""
    if policy not in ("expert", "mixed"):
        raise SimjepaError(f"--policy takes expert or mixed, got {policy!r}")
    if policy == "mixed" and gains:
        raise SimjepaError("--set tunes --policy expert; mixed runs the default gains, as simjepa collect does")
    try:
        env = BlindAdapter(gym.make(env_id), render_size=16)
    except gym.error.Error as exc:
        raise SimjepaError(f"cannot make {env_id}: {exc}") from None
    try:
        expert = make_adapter_expert(env, **(gains or {}))
    except TypeError as exc:
        raise SimjepaError(f"unknown gain for {env_id}'s controller ({exc})") from None
    rows = []
    for seed in seeds:
        obs, info = env.reset(seed=seed)
        expert.reset()
        act = expert.act
        if policy == "mixed":
            mixed = CollectPolicy("mixed", env, seed)
            expert, act = mixed.expert, mixed.act
        first, phases, done = None, {}, False
        step = 0
        while not done:
            obs, _, terminated, truncated, info = env.step(act(obs))
            step += 1
            phase = getattr(expert, "phase", "act")
            phases[phase] = phases.get(phase, 0) + 1
            if info["success"] and first is None:
                first = step
            done = terminated or truncated
        rows.append({"seed": seed, "success": first is not None, "steps": first,
                     "final_distance": float(info["distance"]), "phases": phases})
    env.close()
    return rows


def summary(rows: list[dict]) -> dict:
    hits = [r["steps"] for r in rows if r["success"]]
    return {"episodes": len(rows), "successes": len(hits), "success_rate": len(hits) / len(rows),
            "mean_steps_to_success": float(np.mean(hits)) if hits else None,
            "mean_final_distance": float(np.mean([r["final_distance"] for r in rows]))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", default="Pusher-v5")
    ap.add_argument("--seeds", default="500-519", help="FIRST-LAST, inclusive")
    ap.add_argument("--policy", default="expert", help="expert, or mixed (collect's noisy policy around it)")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override a gain (repeatable)")
    ap.add_argument("--json", help="also write the per-seed rows and the summary here")
    ap.add_argument("--quiet", action="store_true", help="only the summary line")
    argv = sys.argv[1:] if argv is None else argv
    args = ap.parse_args(argv)
    try:
        seeds, gains = seed_range(args.seeds), dict(gain(g) for g in args.set)
        t0 = time.perf_counter()
        rows = run_seeds(args.env, seeds, gains, args.policy)
    except SimjepaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for r in [] if args.quiet else rows:
        phases = " ".join(f"{k} {v}" for k, v in r["phases"].items())
        print(f"seed {r['seed']}: {'success at step ' + str(r['steps']) if r['success'] else 'fail'}, "
              f"final distance {r['final_distance']:.3f} m ({phases})")
    s = summary(rows)
    steps = f"{s['mean_steps_to_success']:.1f}" if s["mean_steps_to_success"] is not None else "-"
    print(f"{args.env} {args.policy} seeds {args.seeds} {gains or ''}: success {s['successes']}/{s['episodes']}, "
          f"mean steps to success {steps}, mean final distance {s['mean_final_distance']:.3f} m "
          f"({time.perf_counter() - t0:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            command = " ".join(["python benchmarks/adapter_experts.py", *map(shlex.quote, argv)])
            json.dump({"env": args.env, "policy": args.policy, "command": command, "gains": gains, **s,
                       "episodes": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
