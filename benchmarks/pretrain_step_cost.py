"""Seconds per pretraining step for each input / patch / clip length, and the steps that fit a budget.

Why: issue 21 asks for a recipe that pretrains in <= 2 h on this 2-core machine, so each candidate
recipe's length is set by its measured step cost here (docs/encoder-v3.md). Run it on a quiet machine;
the ratios between rows are what carries over to another CPU.

    .venv/bin/python benchmarks/pretrain_step_cost.py --data runs/push128 --batch 64 --budget-s 6500
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from world_model.pretrain import ClipSampler, PretrainConfig, _Trainer, load_episode_frames

# image_size:patch_size:frames:masks, the shapes of the GPU ablation in docs/encoder-v3.md
DEFAULT_SHAPES = "64:8:2:official,64:8:8:official,128:16:4:grid,128:16:8:grid,128:8:4:official,128:8:8:official"


def step_seconds(data: list[str], size: int, patch: int, frames: int, masks: str, batch: int, reps: int) -> float:
    episodes = load_episode_frames(data, size)
    trainer = _Trainer(PretrainConfig(image_size=size, patch_size=patch, frames=frames, masks=masks, batch_size=batch,
                                      encoder_overrides={"depth": 6}, steps=100, warmup_steps=10))
    sampler = ClipSampler(episodes, frames, 1, trainer.c.still_fraction)
    for _ in range(2):  # warm-up: allocator, oneDNN kernels
        trainer.train_step(sampler)
    t0 = time.perf_counter()
    for _ in range(reps):
        trainer.train_step(sampler)
    return (time.perf_counter() - t0) / reps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", action="append", required=True, help="episode directory (simjepa collect), repeatable")
    ap.add_argument("--shapes", default=DEFAULT_SHAPES, help="comma list of image_size:patch:frames:masks")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--budget-s", type=float, default=6500.0, help="training seconds (2 h less data collection)")
    ap.add_argument("--out", help="write the rows as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), platform.processor())
    rows = []
    for spec in args.shapes.split(","):
        size, patch, frames, masks = spec.split(":")
        s = step_seconds(args.data, int(size), int(patch), int(frames), masks, args.batch, args.reps)
        rows.append({"image_size": int(size), "patch": int(patch), "frames": int(frames), "masks": masks,
                     "ms_per_step": round(1000 * s, 1), "steps_in_budget": int(args.budget_s / s)})
        print(f"{spec:>22s}  {1000 * s:8.0f} ms/step  {int(args.budget_s / s):6d} steps in {args.budget_s:.0f} s", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"cpu": cpu, "threads": args.threads, "batch": args.batch, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
