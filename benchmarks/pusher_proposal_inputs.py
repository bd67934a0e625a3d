"""What Pusher-v5's proposal needs: validation L1 of the proposal's MLP with different proprio inputs and output ranges.

Why: the shipped proposal saw only ``state[:7]`` (Pusher: joint angles, no velocity) and squashed its
outputs into [-1, 1], while Pusher's torques reach 2. This sweep separates the two, and checks whether the
object's true position (privileged, offline only) would help, i.e. whether the image features are the limit.

    python benchmarks/pusher_proposal_inputs.py --features runs/pusher/feats_expert [--features ...] \
        --bound 2 q q+dq q+dq+obj

Inputs (``kinds``): ``q`` = state[:7]; ``q+qvel`` = + joint velocities state[7:14]; ``q+dq`` = + change of
state[:7] since the previous step (what ``train-proposal --proprio-delta`` feeds); ``q+dq+obj`` = + the
object's position state[17:20]. The network (``ProposalNet``), pooling (1 + 4x4), hindsight-goal batches
(``sample_batch``) and L1 loss are the proposal's, each kind's input standing in for its proprio; 1500 steps
of batch 256 (one-cycle lr 1e-3), episodes split 90 / 10, one JSON line per kind.
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
from world_model.proposal import (PooledEpisode, ProposalNet, ProposalNetConfig, masked_l1, open_caches,  # noqa: E402
                                  pool_features, sample_batch)

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

    for kind in args.kinds:
        torch.manual_seed(0)
        t0 = time.time()
        # each step's input of this kind stands in for the proposal's proprio
        eps = [PooledEpisode(P[e], torch.stack([state_input(kind, S[e], t) for t in range(S[e].shape[0])]), A[e])
               for e in range(len(P))]
        ref = torch.stack([eps[e].proprio[t] for e in train_ids[:300] for t in range(0, A[e].shape[0], 5)])
        net = ProposalNet(ProposalNetConfig(feat_dim=caches[0].dim, grid=grid, state_dim=ref.shape[1], horizon=H, pool_grid=4,
                                            action_bound=args.bound))
        net.state_mean.copy_(ref.mean(0))
        net.state_std.copy_(ref.std(0).clamp_min(1e-3))
        opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, 1e-3, total_steps=args.steps, pct_start=0.05)

        def batch(ids, size, seed):
            return sample_batch(eps, ids, size, H, 0.5, torch.Generator().manual_seed(seed))

        for step in range(args.steps):
            c, s, g, a, m = batch(train_ids, 256, step)
            loss = masked_l1(net(c, s, g), a, m)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        with torch.no_grad():
            c, s, g, a, m = batch(val_ids, 2048, 999)
            val = float(masked_l1(net(c, s, g), a, m))
        print(json.dumps({"kind": kind, "bound": args.bound, "val_l1": round(val, 4), "seconds": round(time.time() - t0)}), flush=True)


if __name__ == "__main__":
    main()
