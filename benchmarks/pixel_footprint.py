"""How many pixels the probe's targets move in a frame: the gripper's full travel and the cube, per render size.

Why: issue 21 asks a linear probe for the gripper opening (state[6]) and the cube position. Every encoder,
random or pretrained, reads the gripper at R^2 <= 0.05 at 64 px. This measures what a frame can carry at
all: for each seed the arm runs the same random arm actions twice, once with the gripper held open and once
closed (the arm's path is the same: the end effector agrees to 1e-6 m), and the script counts the pixels
whose colour changes by more than ``--threshold`` (of 255 on any channel) between the two renders. The
cube's footprint is the count of its red pixels (R > 150, G and B < 90) in the open render.

Usage: MUJOCO_GL=egl .venv/bin/python benchmarks/pixel_footprint.py [--seeds 500:520] [--steps 15]
       [--sizes 64 128 256] [--out benchmarks/results/probe/pixel_footprint.json]
Tuning seeds by default (500-519); Push-v0 (its cube rests on the table).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import envs
from planning.provenance import command_line


def _rollout(env, seed: int, steps: int, grip: float) -> tuple[np.ndarray, np.ndarray]:
    """The last frame and state after ``steps`` random arm actions with the gripper command fixed to ``grip``."""
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    for _ in range(steps):
        a = np.zeros(7, np.float32)
        a[:3] = rng.uniform(-0.5, 0.5, 3)
        a[6] = grip
        obs, *_ = env.step(a)
    return obs["pixels"].astype(np.int16), obs["state"]


def footprint(env, seed: int, steps: int, threshold: int) -> dict[str, float]:
    open_px, open_state = _rollout(env, seed, steps, -1.0)
    shut_px, shut_state = _rollout(env, seed, steps, 1.0)
    changed = np.abs(open_px - shut_px).max(-1) > threshold
    r, g, b = open_px[..., 0], open_px[..., 1], open_px[..., 2]
    cube = (r > 150) & (g < 90) & (b < 90)
    return {"gripper_pixels": int(changed.sum()), "cube_pixels": int(cube.sum()),
            "ee_gap_m": float(np.abs(open_state[:3] - shut_state[:3]).max()),
            "grip_open": float(open_state[6]), "grip_closed": float(shut_state[6])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="500:520", help="start:stop (tuning seeds)")
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--threshold", type=int, default=10)
    ap.add_argument("--out", default="benchmarks/results/probe/pixel_footprint.json")
    args = ap.parse_args()
    start, stop = (int(v) for v in args.seeds.split(":"))
    rows = []
    for size in args.sizes:
        env = envs.make_env("simjepa/Push-v0", render_size=size)
        try:
            per_seed = [footprint(env, s, args.steps, args.threshold) for s in range(start, stop)]
        finally:
            env.close()
        grip = np.array([p["gripper_pixels"] for p in per_seed])
        cube = np.array([p["cube_pixels"] for p in per_seed])
        rows.append({"size": size, "frame_pixels": size * size,
                     "gripper_pixels_median": float(np.median(grip)), "gripper_pixels_min": int(grip.min()),
                     "gripper_pixels_max": int(grip.max()), "cube_pixels_median": float(np.median(cube)),
                     "cube_pixels_min": int(cube.min()), "cube_pixels_max": int(cube.max()),
                     "ee_gap_m_max": max(p["ee_gap_m"] for p in per_seed), "per_seed": per_seed})
        print(f"{size:>4} px: gripper open->closed changes {np.median(grip):.0f} px (median; {grip.min()}-{grip.max()}) "
              f"of {size * size}; cube {np.median(cube):.0f} px ({cube.min()}-{cube.max()})")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"command": command_line(), "seeds": [start, stop], "steps": args.steps,
                                          "threshold": args.threshold, "rows": rows}, indent=1))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
