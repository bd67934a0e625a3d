"""What a token grid costs planning: encoder time per frame and predictor time per candidate-step.

Usage: .venv/bin/python benchmarks/encoder_grid_cost.py [--threads 1] [--samples 100] [--reps 3]
Random weights of the default model's shapes (encoder vit_tiny depth 6; predictor width 192, depth 4,
3 heads); speed does not depend on weight values. Encoder: frames/s of FrozenEncoder.encode (bf16
autocast, each frame a 2-frame clip) at each (image size, patch, token pool). Predictor: one scoring of
``samples`` candidates over ``horizon`` steps with the planner's fast path (planning.imagine), divided by
samples x horizon. Prints a markdown table (docs/encoder.md).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from planning.energy import normalize_reps
from planning.imagine import Context, imagine
from world_model.encoder import build_encoder
from world_model.frozen_encoder import FrozenEncoder
from world_model.predictor import ACPredictor, PredictorConfig

GRIDS = [(64, 8, 1), (128, 16, 1), (256, 32, 1), (128, 8, 2), (128, 8, 1)]  # (px, patch, token pool)


def best_of(fn, reps: int) -> float:
    fn()
    return min(_timed(fn) for _ in range(reps))


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--horizon", type=int, default=2)
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    pred = ACPredictor(PredictorConfig(embed_dim=192, width=192, depth=4, num_heads=3)).eval()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); predictor: {args.samples} samples x horizon "
          f"{args.horizon}")
    print("| input | patch | token pool | tokens/frame (predictor) | encoder ms/frame | predictor ms/candidate-step |")
    print("|---|---|---|---:|---:|---:|")
    rng = np.random.default_rng(0)
    pred_cache: dict[int, float] = {}
    for px, patch, pool in GRIDS:
        enc = build_encoder("vit_tiny", depth=6, image_size=px, patch_size=patch)
        fe = FrozenEncoder(enc, px, batch_size=args.frames, token_pool=pool)
        frames = rng.integers(0, 255, size=(args.frames, 256, 256, 3), dtype=np.uint8)
        enc_ms = 1000 * best_of(lambda: fe.encode(frames), args.reps) / args.frames
        n = fe.tokens_per_frame
        if n not in pred_cache:
            ctx = Context(normalize_reps(torch.randn(1, n, 192, generator=g)), torch.randn(1, 7, generator=g),
                          torch.zeros(0, 7))
            acts = torch.rand(args.samples, args.horizon, 7, generator=g) * 2 - 1
            with torch.inference_mode():
                sec = best_of(lambda: imagine(pred, ctx, acts, None), args.reps)
            pred_cache[n] = 1000 * sec / (args.samples * args.horizon)
        print(f"| {px} px | {patch} | {pool} | {n} ({fe.grid[0]}x{fe.grid[1]}) | {enc_ms:.2f} | {pred_cache[n]:.3f} |")


if __name__ == "__main__":
    main()
