"""docs/images/adapter_<env>.png: the start frame | goal image of an adapted env at the default view.

Run: ``python scripts/adapter_images.py [--size 64] [--seed 0]`` (frames upscaled x4, nearest neighbour).
"""
from __future__ import annotations

import argparse

import numpy as np
from PIL import Image

from envs import make_env


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    for env_id, name in (("Reacher-v5", "reacher"), ("Pusher-v5", "pusher")):
        env = make_env(env_id, render_size=args.size)
        obs, info = env.reset(seed=args.seed)
        gap = np.full((args.size, 2, 3), 255, np.uint8)
        pair = np.concatenate([obs["pixels"], gap, info["goal"]["pixels"]], axis=1)
        img = Image.fromarray(pair)
        img.resize((img.width * 4, img.height * 4), Image.NEAREST).save(f"docs/images/adapter_{name}.png", optimize=True)
        env.close()


if __name__ == "__main__":
    main()
