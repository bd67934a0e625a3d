"""DAgger data for a learned proposal: episodes driven by the proposal, labelled by the env's scripted expert.

Why: a proposal cloned from expert episodes (even with DART noise) drifts off the expert's path within
~20 steps on Pusher-v5 and, once there, has never seen what to do (docs/gymnasium-envs.md). DAgger
(Ross et al. 2011) records the states the *proposal* visits, each labelled with the expert's action
there, so the next proposal learns to recover from its own mistakes. Each step executes the expert's
action with probability ``--beta``, else the proposal's (DAgger's mixture policy).

The output is a dataset in the `simjepa collect` format (``actions`` = what was executed,
``expert_actions`` = the labels; manifest policy ``dagger``) for `simjepa encode` and
`simjepa train-proposal --labels expert`. The expert reads the simulator: this is how the training data
is made, the proposal it trains still sees only the image-goal protocol's inputs.

    python benchmarks/dagger_collect.py --env Pusher-v5 --proposal runs/p.pt --episodes 300 \
        --seed-start 120000 --out runs/dagger1
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--env", required=True, help="An env with a scripted expert (Pusher-v5, Reacher-v5, simjepa/*).")
    ap.add_argument("--proposal", required=True, help="Proposal file (`simjepa train-proposal`).")
    ap.add_argument("--model", default="default", help="World model whose encoder the proposal was trained on.")
    ap.add_argument("--episodes", type=int, required=True)
    ap.add_argument("--seed-start", type=int, required=True, help="Episode i resets with seed S+i (use training seeds).")
    ap.add_argument("--beta", type=float, default=0.3, help="Per-step probability of executing the expert's action.")
    ap.add_argument("--render-size", type=int, default=64)
    ap.add_argument("--max-steps", type=int, default=None, help="Steps per episode [default: the env's limit].")
    ap.add_argument("--out", required=True, help="Dataset directory (resumed: finished episodes are kept).")
    args = ap.parse_args()
    if not 0.0 <= args.beta <= 1.0 or args.episodes < 1:
        ap.error("--beta must be in [0, 1] and --episodes >= 1")

    from tqdm import tqdm

    from envs import make_env
    from envs.experts import make_expert
    from planning.evaluate import make_policy
    from envs.collect import check_existing_dataset, record_episode
    from simjepa_core.episodes import (FORMAT_VERSION, MANIFEST, complete_episode_indices, read_manifest, write_episode,
                                       write_manifest)
    from simjepa_core.errors import SimjepaError

    env = make_env(args.env, render_size=args.render_size)
    policy = make_policy("proposal", None, args.model, {}, args.env, False, args.proposal)
    os.makedirs(args.out, exist_ok=True)
    limit = args.max_steps or (env.spec.max_episode_steps if env.spec and env.spec.max_episode_steps else 100)
    obs, _ = env.reset(seed=args.seed_start)
    manifest = {"version": FORMAT_VERSION, "env_id": args.env, "render_size": args.render_size, "episodes": 0,
                "action_dim": int(env.action_space.shape[0]), "state_dim": int(obs["state"].shape[0]),
                "policy": "dagger", "seed_start": args.seed_start, "max_episode_steps": int(limit), "camera": "front",
                "dagger": {"proposal": os.path.abspath(args.proposal), "beta": args.beta, "model": args.model}}
    try:  # resuming is only safe into a dataset of the same options (collect's rule, plus the DAgger ones)
        check_existing_dataset(args.out, manifest)
    except SimjepaError as exc:
        sys.exit(f"error: {exc}")
    if os.path.exists(os.path.join(args.out, MANIFEST)) and read_manifest(args.out).get("dagger") != manifest["dagger"]:
        sys.exit(f"error: {args.out} holds DAgger episodes of another proposal, beta or model; use a new --out")
    done = set(complete_episode_indices(args.out))
    successes = 0
    for i in tqdm([i for i in range(args.episodes) if i not in done], desc="dagger episodes", unit="ep"):
        seed = args.seed_start + i
        rng = np.random.default_rng([seed, 4242])
        obs, info = env.reset(seed=seed)
        goal = {"pixels": info["goal"]["pixels"]}
        expert = make_expert(env)
        policy.reset()

        def act(o: dict) -> tuple[np.ndarray, np.ndarray]:
            label = np.asarray(expert.act(o), np.float32)
            mine = policy.act(o, goal)
            a = label if rng.random() < args.beta else np.clip(mine, env.action_space.low, env.action_space.high)
            return np.asarray(a, np.float32), label

        episode = record_episode(env, seed, obs, info, act, limit)
        write_episode(args.out, i, episode)
        successes += bool(np.any(episode.success))
        manifest["episodes"] = len(complete_episode_indices(args.out))
        write_manifest(args.out, manifest)
    print(f"{manifest['episodes']} episodes in {args.out} ({successes} of this call's reached success)")


if __name__ == "__main__":
    main()
