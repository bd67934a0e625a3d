"""Measurements behind README "Environments": ``python -m envs.bench speed|experts|proprio``.

speed    env steps/s including rendering, per task and render size (random actions)
experts  scripted expert success rate (final step) over seeds 0..N-1 per task
proprio  how far advance_state's prediction is from the env's next proprio state
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

import envs
from envs.experts import make_expert
from envs.proprio import advance_state


def speed(sizes: list[int], steps: int) -> dict:
    out = {}
    for env_id in envs.ENV_IDS:
        for size in sizes:
            env = envs.make_env(env_id, render_size=size, max_episode_steps=10**6)
            env.reset(seed=0)
            env.step(env.action_space.sample())  # renderer creation outside the timing
            acts = np.random.default_rng(0).uniform(-1, 1, (steps, 7)).astype(np.float32)
            t = time.perf_counter()
            for a in acts:
                env.step(a)
            out[f"{env_id}@{size}"] = round(steps / (time.perf_counter() - t), 1)
            env.close()
    return out


def experts(seeds: int, size: int) -> dict:
    out = {}
    for env_id in envs.ENV_IDS:
        env = envs.make_env(env_id, render_size=size)
        expert = make_expert(env)
        wins = []
        for seed in range(seeds):
            obs, info = env.reset(seed=seed)
            expert.reset()
            trunc = False
            while not trunc:
                obs, _, _, trunc, info = env.step(expert.act(obs))
            wins.append(info["success"])
        out[env_id] = {"success_rate": float(np.mean(wins)), "failed_seeds": [i for i, w in enumerate(wins) if not w]}
        env.close()
    return out


def proprio(episodes: int) -> dict:
    """Mean/95th-percentile |advance_state - next state| under OU random actions on Reach."""
    from envs.collect import CollectPolicy

    env = envs.make_env("simjepa/Reach-v0", render_size=64)
    scale = env.unwrapped.action_scale
    from envs.arm import WORKSPACE_HIGH, WORKSPACE_LOW

    errs, inside = [], []
    for seed in range(episodes):
        obs, _ = env.reset(seed=seed)
        pol = CollectPolicy("random", env, seed)
        trunc = False
        while not trunc:
            a = pol.act(obs)
            pred = advance_state(obs["state"][:7], a, scale)
            inside.append(bool(np.all((pred[:6] > WORKSPACE_LOW) & (pred[:6] < WORKSPACE_HIGH))))
            obs, _, _, trunc, _ = env.step(a)
            errs.append(np.abs(pred - obs["state"][:7]))
    e, free = np.array(errs), np.array(inside)

    def summary(x: np.ndarray) -> dict:
        return {"mean_abs": x.mean(0).astype(np.float64).round(4).tolist(), "p95_abs": np.percentile(x.astype(np.float64), 95, axis=0).round(4).tolist(),
                "steps": len(x)}

    return {"order": ["x", "y", "z", "roll", "pitch", "yaw", "gripper"], "all": summary(e),
            "inside_workspace": summary(e[free])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["speed", "experts", "proprio"])
    p.add_argument("--sizes", default="64,128,256")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--seeds", type=int, default=50)
    p.add_argument("--render-size", type=int, default=64)
    p.add_argument("--episodes", type=int, default=20)
    args = p.parse_args()
    if args.what == "speed":
        res = speed([int(s) for s in args.sizes.split(",")], args.steps)
    elif args.what == "experts":
        res = experts(args.seeds, args.render_size)
    else:
        res = proprio(args.episodes)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
