"""Attentive vs linear probe of frozen features: do they hold the cube, or can a linear read-out not find it?

Why: every pretrained encoder tried reads the cube no better than a random init of its shape under a
LINEAR probe of pooled tokens (docs/encoder-v3.md). V-JEPA evaluates frozen features with an attentive
probe (learned queries over every token). This script fits both on the same episodes of a feature
cache, so "the features do not hold the cube" and "a linear read-out cannot find it" can be told apart:

    python benchmarks/attentive_probe.py --features runs/pushprop/feats_expert --episodes 300 --out FILE.json

Episodes split 60 / 20 / 20 (fit / model choice / scored), every ``--every``-th frame. Targets: the
cube (state[7:10]), the end effector (state[0:3]) and the gripper opening (state[6]). The attentive
probe (``world_model.attentive.AttentivePool`` + a linear layer, MSE on standardised targets, AdamW)
keeps the weights of its best validation step; the ridge read-out of every token uses the same split.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from world_model.attentive import AttentivePool  # noqa: E402
from world_model.feature_cache import FeatureCache  # noqa: E402
from world_model.probe import fit_ridge, r2_score  # noqa: E402

TARGETS = {"cube": slice(7, 10), "ee": slice(0, 3), "gripper": slice(6, 7)}


def load(cache: FeatureCache, ids: list[int], every: int) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for i in ids:
        feats, _, states = cache.episode(i)
        xs.append(np.asarray(feats, np.float16)[::every])
        ys.append(np.concatenate([np.asarray(states, np.float64)[::every, sl] for sl in TARGETS.values()], 1))
    return np.concatenate(xs), np.concatenate(ys)


def scores(y: np.ndarray, pred: np.ndarray) -> dict:
    out, col = {}, 0
    for name, sl in TARGETS.items():
        k = sl.stop - sl.start
        yt, yp = y[:, col:col + k], pred[:, col:col + k]
        out[name] = {"r2": float(r2_score(yt, yp)), "mean_error": float(np.linalg.norm(yt - yp, axis=1).mean())}
        col += k
    return out


def attentive(splits: dict, queries: int, steps: int, batch: int, lr: float, seed: int) -> tuple[dict, dict]:
    torch.manual_seed(seed)
    (x_fit, y_fit), (x_val, y_val), (x_test, y_test) = splits["fit"], splits["val"], splits["test"]
    mu, sd = y_fit.mean(0), y_fit.std(0) + 1e-6
    n, d = x_fit.shape[1:]
    model = nn.Sequential(AttentivePool(d, n, queries=queries), nn.Linear(queries * d, y_fit.shape[1]))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-2)
    xf, yf = torch.from_numpy(x_fit), torch.from_numpy(((y_fit - mu) / sd).astype(np.float32))
    gen = torch.Generator().manual_seed(seed)

    def predict(x: np.ndarray) -> np.ndarray:
        model.eval()
        with torch.no_grad():
            out = torch.cat([model(torch.from_numpy(x[i:i + 1024]).float()) for i in range(0, len(x), 1024)])
        model.train()
        return out.numpy() * sd + mu

    best, best_state, curve = -np.inf, None, []
    for step in range(1, steps + 1):
        lr_now = lr * min(1.0, step / 100) * 0.5 * (1 + np.cos(np.pi * step / steps))
        for g in opt.param_groups:
            g["lr"] = lr_now
        idx = torch.randint(len(xf), (batch,), generator=gen)
        loss = F.mse_loss(model(xf[idx].float()), yf[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 250 == 0 or step == steps:
            val = r2_score(y_val, predict(x_val))
            curve.append({"step": step, "train_mse": float(loss.detach()), "val_r2": float(val)})
            print(f"  step {step}: train mse {float(loss.detach()):.4f}, val R^2 (all targets) {val:.3f}", flush=True)
            if val > best:
                best, best_state = val, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return scores(y_test, predict(x_test)), {"curve": curve, "params": sum(p.numel() for p in model.parameters())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--features", type=Path, required=True, help="a `simjepa encode` cache of Push or PickPlace episodes")
    ap.add_argument("--episodes", type=int, default=300)
    ap.add_argument("--every", type=int, default=3, help="keep every N-th frame of an episode")
    ap.add_argument("--queries", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-ridge", action="store_true", help="only the attentive probe")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cache = FeatureCache.open(args.features)
    ids = list(cache.episodes)[: args.episodes]
    n = len(ids)
    cut1, cut2 = int(0.6 * n), int(0.8 * n)
    splits = {name: load(cache, ids[a:b], args.every) for name, (a, b) in
              (("fit", (0, cut1)), ("val", (cut1, cut2)), ("test", (cut2, n)))}
    result = {"features": str(args.features), "encoder": cache.encoder, "episodes": n, "every": args.every,
              "frames": {k: int(len(v[1])) for k, v in splits.items()}, "targets": {k: [s.start, s.stop] for k, s in TARGETS.items()}}
    if not args.skip_ridge:
        t0 = time.perf_counter()
        flat = {k: (x.reshape(len(x), -1), y) for k, (x, y) in splits.items()}
        probe = fit_ridge(flat["fit"][0], flat["fit"][1], flat["val"][0], flat["val"][1])
        result["ridge_every_token"] = {**scores(flat["test"][1], probe.predict(flat["test"][0])), "alpha": probe.alpha,
                                       "seconds": time.perf_counter() - t0}
        print("ridge, every token:", json.dumps(result["ridge_every_token"]))
    t0 = time.perf_counter()
    att, extra = attentive(splits, args.queries, args.steps, args.batch, args.lr, args.seed)
    result["attentive"] = {**att, **extra, "queries": args.queries, "steps": args.steps, "batch": args.batch, "lr": args.lr,
                           "seconds": time.perf_counter() - t0}
    print("attentive:", json.dumps(att))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
