"""Frozen-encoder throughput (frames/s) and feature-cache size per frame, for the README table.

Usage: .venv/bin/python benchmarks/encoder_speed.py [--reps 3] [--threads N]
Random weights (speed does not depend on their values); each frame is one 2-frame clip, as in
``simjepa encode``. Prints a markdown table.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from world_model.encoder import build_encoder
from world_model.frozen_encoder import FrozenEncoder

CASES = [("vit_tiny", 64, 32), ("vit_tiny", 128, 32), ("vit_small", 64, 32), ("vit_small", 128, 32), ("vit_large", 256, 4)]


def frames_per_s(fe: FrozenEncoder, frames: np.ndarray, reps: int) -> float:
    fe.encode(frames[: fe.batch_size])  # warm-up (allocations, oneDNN kernels)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fe.encode(frames)
        best = min(best, time.perf_counter() - t0)
    return len(frames) / best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| encoder | px | tokens x dim | fp32 frames/s | bf16 frames/s | cache KiB/frame (fp16) |")
    print("|---|---|---|---|---|---|")
    for name, px, n in CASES:
        enc = build_encoder(name, image_size=px)
        frames = np.random.default_rng(0).integers(0, 256, (n, 256, 256, 3), dtype=np.uint8)
        speeds = [frames_per_s(FrozenEncoder(enc, batch_size=n, precision=p), frames, args.reps) for p in ("fp32", "bf16")]
        tokens = (px // 16) ** 2
        kib = tokens * enc.config.embed_dim * 2 / 1024
        print(f"| {name} | {px} | {tokens} x {enc.config.embed_dim} | {speeds[0]:.1f} | {speeds[1]:.1f} | {kib:.1f} |", flush=True)


if __name__ == "__main__":
    main()
