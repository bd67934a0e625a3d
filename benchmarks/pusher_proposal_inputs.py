"""What Pusher-v5's proposal needs: validation L1 of the proposal's MLP with different proprio inputs and output ranges.

Why: the shipped proposal saw only ``state[:7]`` (Pusher: joint angles, no velocity) and squashed its
outputs into [-1, 1], while Pusher's torques reach 2. This sweep separates the two, and checks whether the
object's true position (privileged, offline only) would help, i.e. whether the image features are the limit.

    python benchmarks/pusher_proposal_inputs.py --features runs/pusher/feats_expert [--features ...] \
        --bound 2 q q+dq q+dq+obj

Inputs (``kinds``): ``q`` = state[:7]; ``q+qvel`` = + joint velocities state[7:14]; ``q+dq`` = + change of
state[:7] since the previous step (what ``train-proposal --proprio-delta`` feeds); ``q+dq+obj`` = + the
object's position state[17:20]. The MLP, pooling (1 + 4x4), hindsight goals and L1 loss are the proposal's;
1500 steps of batch 256 (one-cycle lr 1e-3), episodes split 90 / 10, one JSON line per kind.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from world_model.data import split_episodes  # noqa: E402
from world_model.proposal import masked_l1, open_caches, pool_features  # noqa: E402

H = 4


def state_input(kind: str, s: torch.Tensor, t: int) -> torch.Tensor:
    st, prev = s[t], s[max(t - 1, 0)]
    parts = {"q": [st[:7]], "q+qvel": [st[:14]], "q+dq": [st[:7], st[:7] - prev[:7]],
             "q+dq+obj": [st[:7], st[:7] - prev[:7], st[17:20]]}
    return torch.cat(parts[kind])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--features", action="append", required=True, help="a `simjepa encode` cache of Pusher-v5 episodes")
    ap.add_argument("--bound", type=float, default=2.0, help="outputs lie in [-bound, bound]")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("kinds", nargs="+", choices=["q", "q+qvel", "q+dq", "q+dq+obj"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    caches = open_caches(args.features)
    grid = tuple(caches[0].grid)
    P, S, A = [], [], []
    for c in caches:
        for i in c.episodes:
            f, a, s = c.episode(i)
            with torch.no_grad():
                P.append(pool_features(torch.from_numpy(np.asarray(f, np.float32)), grid, 4).half())
            S.append(torch.from_numpy(np.asarray(s, np.float32)))
            A.append(torch.from_numpy(np.asarray(a, np.float32)))
    train_ids, val_ids = split_episodes(range(len(P)), 0.1, 0)

    def batch(ids, size, kind, gen):
        pick, u = torch.randint(len(ids), (size,), generator=gen), torch.rand(size, 3, generator=gen)
        cur, st, goal, act, mask = [], [], [], [], []
        for b in range(size):
            e = ids[int(pick[b])]
            n = A[e].shape[0]
            t = min(int(u[b, 0] * n), n - 1)
            g = n if float(u[b, 1]) < 0.5 else t + 1 + min(int(u[b, 2] * (n - t)), n - t - 1)
            a = A[e][t:t + H]
            m = torch.zeros(H)
            m[: a.shape[0]] = 1
            if a.shape[0] < H:
                a = torch.cat([a, a.new_zeros(H - a.shape[0], a.shape[1])])
            cur.append(P[e][t]); goal.append(P[e][g]); st.append(state_input(kind, S[e], t)); act.append(a); mask.append(m)
        return torch.stack(cur).float(), torch.stack(st), torch.stack(goal).float(), torch.stack(act), torch.stack(mask)

    for kind in args.kinds:
        torch.manual_seed(0)
        t0 = time.time()
        ex = state_input(kind, S[0], 1).shape[0]
        ref = torch.stack([state_input(kind, S[e], t) for e in train_ids[:300] for t in range(0, A[e].shape[0], 5)])
        mu, sd = ref.mean(0), ref.std(0).clamp_min(1e-3)
        p = P[0].shape[-1]
        layers = [torch.nn.Linear(3 * p + ex, 512), torch.nn.LayerNorm(512), torch.nn.GELU()]
        for _ in range(2):
            layers += [torch.nn.Linear(512, 512), torch.nn.LayerNorm(512), torch.nn.GELU()]
        net = torch.nn.Sequential(*layers, torch.nn.Linear(512, H * 7))
        opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, 1e-3, total_steps=args.steps, pct_start=0.05)

        def f(c, s, g):
            return (args.bound * torch.tanh(net(torch.cat([c, g, g - c, (s - mu) / sd], -1)))).reshape(-1, H, 7)

        for step in range(args.steps):
            c, s, g, a, m = batch(train_ids, 256, kind, torch.Generator().manual_seed(step))
            loss = masked_l1(f(c, s, g), a, m)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        with torch.no_grad():
            val = float(masked_l1(*(lambda c, s, g, a, m: (f(c, s, g), a, m))(*batch(val_ids, 2048, kind, torch.Generator().manual_seed(999)))))
        print(json.dumps({"kind": kind, "bound": args.bound, "val_l1": round(val, 4), "seconds": round(time.time() - t0)}), flush=True)


if __name__ == "__main__":
    main()
