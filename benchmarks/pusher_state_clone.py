"""Is Pusher-v5's scripted controller clonable at all? Behaviour cloning and DAgger from the true state.

A privileged diagnostic, not a product row: the clone reads the simulator's state vector (joint angles
and velocities, tip, object and goal positions), which the image-goal protocol never sees. What it
separates: if a clone that sees everything exactly fails in closed loop, the image proposal's failure
is the teacher's (compounding errors of a cloned controller), not the features'. Round 0 trains on the
scripted episodes of a feature cache's ``.npz`` files (their states and actions); each further round
drives ``--episodes`` new episodes with the current clone (the controller's action executed with
probability ``--beta`` in the first DAgger round only), labels every visited state with the
controller's action, and retrains from scratch on everything. Closed loop on ``--seeds`` after each
round; frames are never rendered.

    python benchmarks/pusher_state_clone.py --cache feats/pusher3/expert --rounds 4 \
        --json benchmarks/results/adapter/pusher_state_clone_dagger.json
    python benchmarks/pusher_state_clone.py --cache feats/pusher3/expert --rounds 4 --inputs proprio-delta \
        --json benchmarks/results/adapter/pusher_state_clone_dagger_proprio_delta.json
    python benchmarks/pusher_state_clone.py --cache feats/pusher3/expert --rounds 4 --inputs proprio-delta \
        --goal hindsight --json benchmarks/results/adapter/pusher_state_clone_dagger_hindsight.json
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


INPUTS = ("full", "proprio-delta")
GOALS = ("true", "hindsight")


def features(state: np.ndarray, prev: np.ndarray | None = None, inputs: str = "full") -> np.ndarray:
    """``full``: Pusher-v5's 23-D observation (qpos 7, qvel 7, tip 3, object 3, goal 3) plus object - tip and
    goal - object. ``proprio-delta``: what the image proposal can get at best: qpos, its change since the
    previous step (``prev``; zero at the start) instead of qvel, and the object's and goal's positions."""
    s = np.asarray(state, np.float32)
    if inputs == "full":
        return np.concatenate([s[:20], s[17:20] - s[14:17], s[20:23] - s[17:20]])
    p = s if prev is None else np.asarray(prev, np.float32)
    goal = np.array([s[20], s[21], s[19]], np.float32)  # the goal as a goal image shows it: the object on it
    return np.concatenate([s[:7], s[:7] - p[:7], s[17:20], goal, goal - s[17:20]])


def hindsight(x: np.ndarray, objects: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One episode's ``proprio-delta`` features ``[T, F]`` with the goal replaced as ``train-proposal`` picks goal
    frames: where the object is at a later step of the same episode (the last one with probability 0.5, else
    uniform); ``objects [T+1, 3]``. The labels still aim at the env's goal, as DAgger's do."""
    x = x.copy()
    n = len(x)
    for t in range(n):
        g = n if rng.random() < 0.5 else int(rng.integers(t + 1, n + 1))
        x[t, 17:20] = objects[g]
        x[t, 20:23] = objects[g] - x[t, 14:17]
    return x


def episode_features(states: np.ndarray, inputs: str) -> np.ndarray:
    """Features of every step but the last of one recorded episode."""
    return np.stack([features(states[t], states[t - 1] if t else None, inputs) for t in range(len(states) - 1)])


def fit(x: np.ndarray, y: np.ndarray, steps: int, hidden: int, seed: int, inputs: str) -> tuple:
    """An MLP ``features -> torques`` in [-2, 2], L1, AdamW with a cosine schedule; returns (policy, last L1)."""
    xt, yt = torch.tensor(x), torch.tensor(y)
    mu, sd = xt.mean(0), xt.std(0).clamp_min(1e-3)
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(xt.shape[1], hidden), torch.nn.GELU(), torch.nn.Linear(hidden, hidden),
                              torch.nn.GELU(), torch.nn.Linear(hidden, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, 7))
    opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=1e-4)
    loss = torch.tensor(0.0)
    for i in range(steps):
        for g in opt.param_groups:
            g["lr"] = 1e-3 * 0.5 * (1 + np.cos(np.pi * i / steps))
        b = torch.randint(len(xt), (512,))
        loss = (2 * torch.tanh(net((xt[b] - mu) / sd)) - yt[b]).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    def policy(state: np.ndarray, prev: np.ndarray | None) -> np.ndarray:
        with torch.no_grad():
            return (2 * torch.tanh(net((torch.from_numpy(features(state, prev, inputs))[None] - mu) / sd)))[0].numpy()

    return policy, float(loss.detach())


def run(env, expert, policy, seeds, beta: float = 0.0, rng=None, record: bool = False) -> tuple[int, list, list]:
    """Episodes driven by ``policy`` (the expert's action with probability ``beta``); successes and, with
    ``record``, per episode its states ``[T+1, 23]`` and the expert's actions ``[T, 7]`` at the first T."""
    episodes, labels, successes = [], [], 0
    for seed in seeds:
        obs, info = env.reset(seed=int(seed))
        expert.reset()
        ok, prev = False, None
        states, actions = [], []
        for _ in range(100):
            label = expert.act()
            states.append(obs["state"])
            actions.append(label)
            a = label if rng is not None and rng.random() < beta else policy(obs["state"], prev)
            prev = obs["state"]
            obs, _, term, trunc, info = env.step(a)
            ok = ok or bool(info["success"])
            if term or trunc:
                break
        successes += ok
        if record:
            episodes.append(np.array([*states, obs["state"]], np.float32))
            labels.append(np.array(actions, np.float32))
    return successes, episodes, labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", required=True, help="Feature cache (or dataset) of scripted Pusher-v5 episodes.")
    ap.add_argument("--rounds", type=int, default=4, help="DAgger rounds after plain cloning (0: cloning only).")
    ap.add_argument("--episodes", type=int, default=200, help="New episodes per DAgger round.")
    ap.add_argument("--beta", type=float, default=0.3, help="Expert's share of actions in the first DAgger round.")
    ap.add_argument("--seed-start", type=int, default=300000, help="Seeds of DAgger episodes (training seeds).")
    ap.add_argument("--seeds", default="500-519", help="Closed-loop seeds after each round (tuning seeds).")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--inputs", choices=INPUTS, default="full", help="What the clone reads (see features()).")
    ap.add_argument("--goal", choices=GOALS, default="true",
                    help="hindsight (with --inputs proprio-delta): train on goals picked as train-proposal picks goal "
                         "frames, a later object position of the same episode, while acting sees the env's goal.")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)

    import gymnasium as gym

    from benchmarks.adapter_experts import BlindAdapter, seed_range
    from envs.adapter_experts import make_adapter_expert

    files = sorted(glob.glob(os.path.join(args.cache, "episode_*.npz")))
    if not files:
        sys.exit(f"error: no episode_*.npz in {args.cache}")
    if args.goal == "hindsight" and args.inputs != "proprio-delta":
        sys.exit("error: --goal hindsight needs --inputs proprio-delta (the full inputs hold no goal position)")
    rng = np.random.default_rng(0)

    def inputs(states: np.ndarray) -> np.ndarray:
        """One episode's training inputs from its states ``[T+1, 23]`` (goals relabelled with ``--goal hindsight``)."""
        x = episode_features(states, args.inputs)
        return hindsight(x, states[:, 17:20], rng) if args.goal == "hindsight" else x

    arrays = [np.load(f) for f in files]
    x = np.concatenate([inputs(a["states"]) for a in arrays])
    y = np.concatenate([a["actions"] for a in arrays]).astype(np.float32)
    env = BlindAdapter(gym.make("Pusher-v5"), render_size=16)
    expert = make_adapter_expert(env)
    seeds = seed_range(args.seeds)
    rows, t0 = [], time.perf_counter()
    for rnd in range(args.rounds + 1):
        policy, l1 = fit(x, y, args.steps, args.hidden, seed=rnd, inputs=args.inputs)
        success, _, _ = run(env, expert, policy, seeds)
        rows.append({"round": rnd, "samples": int(len(x)), "train_l1": l1, "success": success, "episodes": len(seeds),
                     "seconds": round(time.perf_counter() - t0, 1)})
        print(json.dumps(rows[-1]), flush=True)
        if rnd == args.rounds:
            break
        start = args.seed_start + args.episodes * rnd
        _, states, labels = run(env, expert, policy, range(start, start + args.episodes),
                                beta=args.beta if rnd == 0 else 0.0, rng=rng, record=True)
        x = np.concatenate([x, *(inputs(st) for st in states)])
        y = np.concatenate([y, *labels])
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"command": "python " + " ".join(sys.argv), "cache_episodes": len(files), "seeds": args.seeds,
                       "inputs": args.inputs, "goal": args.goal,
                       "protocol": "privileged (true state; diagnostic)", "rounds": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
