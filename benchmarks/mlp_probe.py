"""Diagnostic: can a small MLP read the cube from the same frozen features as `simjepa probe`'s ridge?

The issue's probe is linear; this one-hidden-layer MLP (512 GELU units, dropout 0.2, AdamW, 40
epochs, the epoch with the best validation R^2 kept) on the same features, episodes and 60/20/20
split tells "the features lack the cube" (both low) from "a linear map cannot read it" (MLP high).

    .venv/bin/python benchmarks/mlp_probe.py --encoder default --pool 8
    .venv/bin/python benchmarks/mlp_probe.py --encoder default --pool 8 --random-init
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from world_model.encoder import random_init_like
from world_model.encoder_loading import load_encoder
from planning.probe_episodes import collect_probe_episodes
from world_model.probe import encode_frames, in_scene, r2_score, split_episodes


def fit_mlp(x: list[torch.Tensor], y: list[torch.Tensor], epochs: int = 40, seed: int = 0) -> tuple[float, float]:
    """``x``, ``y`` = [train, val, test] features and targets -> (best val R^2, test R^2 at that epoch)."""
    torch.manual_seed(seed)
    mu, sd = x[0].mean(0), x[0].std(0) + 1e-6
    x = [(v - mu) / sd for v in x]
    ym, ys = y[0].mean(0), y[0].std(0)
    net = torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(x[0].shape[1], 512), torch.nn.GELU(),
                              torch.nn.Linear(512, y[0].shape[1]))
    opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=0.05)
    best, best_state = -np.inf, None
    for _ in range(epochs):
        net.train()
        perm = torch.randperm(len(x[0]))
        for i in range(0, len(perm), 256):
            b = perm[i : i + 256]
            loss = ((net(x[0][b]) - (y[0][b] - ym) / ys) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            r2 = r2_score(y[1].numpy(), (net(x[1]) * ys + ym).numpy())
        if r2 > best:
            best, best_state = r2, {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    with torch.no_grad():
        return best, r2_score(y[2].numpy(), (net(x[2]) * ys + ym).numpy())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder", default="default")
    ap.add_argument("--random-init", action="store_true", help="a random init of the same shape (seed 0)")
    ap.add_argument("--env", default="simjepa/Push-v0")
    ap.add_argument("--episodes", type=int, default=300)
    ap.add_argument("--seed-start", type=int, default=5000)
    ap.add_argument("--pool", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(1)
    enc = load_encoder(args.encoder)
    if args.random_init:
        enc = random_init_like(enc)
    size = enc.config.image_size
    eps = [e for e in collect_probe_episodes(args.env, args.episodes, args.seed_start, size) if in_scene(e)]
    split = split_episodes(len(eps))
    feats = [encode_frames(enc, e.frames, size, args.pool) for e in eps]
    x = [torch.tensor(np.concatenate([feats[i] for i in idx])) for idx in split]
    for key in ("ee", "obj"):
        y = [torch.tensor(np.concatenate([getattr(eps[i], key) for i in idx])) for idx in split]
        val, test = fit_mlp(x, y)
        print(f"{args.env} {key}: MLP probe R^2 val {val:.3f}, test {test:.3f} "
              f"({len(eps)} episodes, pool {args.pool}, {'random init' if args.random_init else args.encoder})")


if __name__ == "__main__":
    main()
