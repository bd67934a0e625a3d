"""What a linear probe can read from the frame itself: ceilings for issue 21's cube and gripper targets.

Why: issue 21 asks a linear probe of frozen encoder features for the cube position at R^2 >= 0.90 and
the gripper opening at >= 0.90. Every encoder here, random or pretrained, reads the cube at 0.6-0.75 and
the gripper at <= 0.05. Before asking pretraining for more, this measures what the same probe (the same
episodes, in-scene filter, episode split, ridge and alpha choice as ``simjepa probe``) reads from
read-outs of the pixels that no pretraining shaped:

- ``rgb``: the raw frame, area-averaged to 64 px (12,288 numbers): the identity encoder.
- ``red_pixels``: each pixel's redness at 64 px (the cube is the only red thing in the scene): a
  perfect cube detector at pixel resolution, what an ideal token that kept its patch's layout holds.
- ``red_tokens``: the redness of each cell of the model's 8x8 token grid (64 numbers): an ideal
  "how much cube is in this token" feature, no position inside the token.
- ``red_pooled``: those 64 as ``simjepa probe`` pools tokens (mean + 4x4 cells; 17 numbers).
- ``red_centroid``: the centroid of the red pixels at render size, its area and a visible flag,
  through a cubic polynomial: not linear in pixels; what the frame says of the cube given occlusion.
- ``cnn``: a small convolutional net trained on the 64 px frames (``--cnn-size``: larger; fit episodes,
  the epoch chosen on the validation episodes; ``train_cnn``): a learned, non-linear read-out of the
  pixels, which may also learn where a hidden cube tends to be. Not a linear probe: a rough ceiling for
  any read-out of one frame.

With ``--encoder E`` (``--random-init`` for its seeded random init) the read-out ``encoder`` adds E's
features in ``simjepa probe``'s layout (mean + 4x4 pooled tokens; ``--pool 8``: every token) on the same
frames and views.

The gap between ``red_centroid`` and 1 is what occlusion and the table's perspective cost any read-out;
the gap between ``red_pixels`` / ``red_tokens`` / ``red_pooled`` and it is what a *linear* read-out of
perfectly cube-aware features loses at each granularity. Targets: cube for every read-out; end effector
and gripper for ``rgb`` and ``cnn``. ``--also DIR`` adds a second camera's dataset of the same seeds (``simjepa collect
--camera side``): each read-out then sees both views' features side by side, as a two-camera model would.

Usage (datasets written by ``simjepa collect``, the probe sets of docs/encoder-v3.md):
    OMP_NUM_THREADS=1 MUJOCO_GL=egl .venv/bin/python benchmarks/probe_ceiling.py --data data/probe/push400k \
        --out benchmarks/results/probe/ceiling_push400k_64.json
    ... --data data/probe/push400k --also data/probe_side/push400k --out ..._front_side.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from planning.probe_episodes import load_probe_episodes  # noqa: E402
from planning.provenance import command_line  # noqa: E402
from simjepa_core.atomic import write_json  # noqa: E402
from simjepa_core.errors import SimjepaError  # noqa: E402
from world_model.probe import ProbeEpisode, in_scene, pooled_features, probe_features  # noqa: E402

GRID = 8  # the model's token grid (64 px / patch 8, 128 / 16, 256 / 32)
POOL = 4  # simjepa probe's pooled cells
PIXELS = 64  # the size rgb and red_pixels are read at


def redness(frames: np.ndarray) -> np.ndarray:
    """``[T, H, W, 3]`` uint8 -> ``[T, H, W]`` in [0, 1]: how far red exceeds green and blue.

    The cube (rgba 0.86 0.12 0.1) renders with R - max(G, B) of 100-190; the table (0.62 0.47 0.3) about 40,
    the arm, hand and green target below 0: a margin of 60 keeps only the cube.
    """
    f = frames.astype(np.float32)
    return np.clip((f[..., 0] - np.maximum(f[..., 1], f[..., 2]) - 60.0) / 100.0, 0.0, 1.0)


def _area(x: np.ndarray, size: int) -> np.ndarray:
    """``[T, H, W, C]`` -> ``[T, size, size, C]`` by area averaging (H a multiple of size)."""
    t = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2)
    return F.adaptive_avg_pool2d(t, size).permute(0, 2, 3, 1).numpy()


def rgb(frames: np.ndarray) -> np.ndarray:
    return _area(frames.astype(np.float32) / 255.0, PIXELS).reshape(len(frames), -1)


def red_pixels(frames: np.ndarray) -> np.ndarray:
    return _area(redness(frames)[..., None], PIXELS).reshape(len(frames), -1)


def red_tokens(frames: np.ndarray) -> np.ndarray:
    return _area(redness(frames)[..., None], GRID).reshape(len(frames), -1)


def red_pooled(frames: np.ndarray) -> np.ndarray:
    """The 8x8 cells' redness as one-channel tokens, pooled by the probe's own ``pooled_features``."""
    return pooled_features(torch.from_numpy(red_tokens(frames))[..., None], (GRID, GRID), POOL).numpy()


def red_centroid(frames: np.ndarray) -> np.ndarray:
    """Cubic in the red centroid (u, v in [0, 1]), times a visible flag; plus the flag and the red area."""
    red = redness(frames)  # [T, H, W]
    h, w = red.shape[1:]
    mass = red.sum((1, 2))
    vis = (mass > 0).astype(np.float64)
    safe = np.where(mass > 0, mass, 1.0)
    u = (red * (np.arange(w) + 0.5)[None, None, :]).sum((1, 2)) / safe / w
    v = (red * (np.arange(h) + 0.5)[None, :, None]).sum((1, 2)) / safe / h
    poly = [u ** i * v ** j for i in range(4) for j in range(4 - i) if i + j > 0]  # 9 monomials
    return np.stack([p * vis for p in poly] + [vis, mass / (h * w)], 1)


CNN_EPOCHS = 30


def train_cnn(frames: list[np.ndarray], targets: dict[str, list[np.ndarray]], epochs: int = CNN_EPOCHS,
              batch_size: int = 128, seed: int = 0) -> dict[str, dict[str, float]]:
    """Fit a 4-layer conv net from ``frames`` (per episode ``[T, S, S, C]`` float) to every target at once.

    Episodes split as the ridge probe splits them; targets standardised on the fit episodes; AdamW; the
    epoch with the best validation R^2 (mean over targets) is scored on the test episodes.
    """
    from world_model.probe import r2_score, split_episodes

    torch.manual_seed(seed)
    names = list(targets)
    tr, va, te = split_episodes(len(frames))

    def stack(idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(np.concatenate([frames[i] for i in idx])).permute(0, 3, 1, 2).float()  # [N, C, S, S]
        y = torch.from_numpy(np.concatenate([np.concatenate([targets[k][i] for k in names], 1) for i in idx])).float()
        return x, y

    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = stack(tr), stack(va), stack(te)
    mu, sd = y_tr.mean(0), y_tr.std(0).clamp_min(1e-6)
    widths = [x_tr.shape[1], 32, 64, 128, 128]
    layers: list[torch.nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [torch.nn.Conv2d(a, b, 3, stride=2, padding=1), torch.nn.GELU()]  # 64 px -> 32 -> 16 -> 8 -> 4
    net = torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(4),  # 4x4 already at 64 px; larger frames pool to it
                              torch.nn.Flatten(), torch.nn.Linear(128 * 16, 256), torch.nn.GELU(),
                              torch.nn.Linear(256, y_tr.shape[1]))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    cols = np.cumsum([0] + [targets[k][0].shape[1] for k in names])

    def predict(x: torch.Tensor) -> np.ndarray:
        net.eval()
        with torch.no_grad():
            out = torch.cat([net(x[i:i + 512]) for i in range(0, len(x), 512)]) * sd + mu
        net.train()
        return out.numpy()

    def scores(y: torch.Tensor, y_hat: np.ndarray) -> dict[str, float]:
        return {k: r2_score(y.numpy()[:, a:b], y_hat[:, a:b]) for k, a, b in zip(names, cols[:-1], cols[1:])}

    best: tuple[float, dict[str, float], int] = (-np.inf, {}, -1)
    for epoch in tqdm(range(epochs), desc="cnn read-out"):
        for idx in torch.randperm(len(x_tr)).split(batch_size):
            loss = torch.nn.functional.mse_loss(net(x_tr[idx]), (y_tr[idx] - mu) / sd)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        val = float(np.mean(list(scores(y_va, predict(x_va)).values())))
        if val > best[0]:
            best = (val, scores(y_te, predict(x_te)), epoch)
    return {k: {"r2": r, "best_epoch": best[2], "val_r2_mean": best[0]} for k, r in best[1].items()}


def cnn_input(frames: np.ndarray, size: int = PIXELS) -> np.ndarray:
    return _area(frames.astype(np.float32) / 255.0, size)  # [T, size, size, 3]


READOUTS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], tuple[str, ...]]] = {
    "rgb": (rgb, ("cube", "ee", "gripper")),
    "red_pixels": (red_pixels, ("cube",)),
    "red_tokens": (red_tokens, ("cube",)),
    "red_pooled": (red_pooled, ("cube",)),
    "red_centroid": (red_centroid, ("cube",)),
    "cnn": (cnn_input, ("cube", "ee", "gripper")),  # trained by train_cnn, not by the ridge
}


def encoder_readout(name: str, random_init: bool, seed: int,
                    pool: int = POOL) -> tuple[Callable[[np.ndarray], np.ndarray], dict]:
    """Frames -> ``simjepa probe``'s features of encoder ``name`` (its random init with ``random_init``;
    ``pool`` 8: every token of the 8x8 grid), and the encoder's identity (name, weights hash) for the result file."""
    from world_model.encoder import random_init_like
    from world_model.encoder_loading import encoder_identity, load_encoder
    from world_model.probe import encode_frames

    encoder = load_encoder(name)
    if random_init:
        encoder = random_init_like(encoder, seed=seed)
    identity = {**encoder_identity(encoder), "requested": name, "random_init": random_init,
                "init_seed": seed if random_init else None, "pool": pool}
    return (lambda frames: encode_frames(encoder, frames, pool=pool)), identity


def load_views(data: str, also: str | None, episodes: int | None) -> tuple[str, list[list[ProbeEpisode]], int]:
    """The in-scene episodes of ``data`` (and of ``also``, the same seeds from another camera), per view, and
    how many episodes were dropped because the cube left the table."""
    env_id, first = load_probe_episodes(data, episodes)
    if any(e.obj is None for e in first):
        raise SimjepaError(f"{data} ({env_id}) has no object to probe; use a Push or PickPlace dataset")
    views = [first]
    if also:
        also_env, second = load_probe_episodes(also, len(first))
        if also_env != env_id or any(not np.allclose(a.ee, b.ee, atol=1e-5) or not np.allclose(a.obj, b.obj, atol=1e-5)
                                     for a, b in zip(first, second)):
            raise SimjepaError(f"{also} is not {data} seen from another camera (env or states differ); collect it "
                               f"with the same --env, --seed-start, --policy and --episodes")
        views.append(second)
    keep = [i for i, e in enumerate(first) if in_scene(e)]
    return env_id, [[v[i] for i in keep] for v in views], len(first) - len(keep)


def hidden_fractions(views: list[list[ProbeEpisode]]) -> dict[str, object]:
    """Share of frames in which no pixel of the cube shows, per view and in every view at once."""
    hidden = [np.concatenate([redness(e.frames).sum((1, 2)) == 0 for e in v]) for v in views]  # per view [N]
    return {"per_view": [float(h.mean()) for h in hidden], "every_view": float(np.logical_and.reduce(hidden).mean())}


def ridge_row(feats: list[np.ndarray], goals: tuple[str, ...], targets: dict[str, list[np.ndarray]],
              arm: list[np.ndarray]) -> dict:
    """``simjepa probe``'s ridge from ``feats`` to each target (the cube's error also by distance to the arm)."""
    row: dict = {"features": int(feats[0].shape[1])}
    for target in goals:
        print(f"ridge on {sum(len(f) for f in feats)} frames x {feats[0].shape[1]} features -> {target}", flush=True)
        r = probe_features(feats, targets[target], arm_distance=arm if target == "cube" else None)
        keys = ("r2", "r2_clipped", "rmse_m", "alpha", "frames", "rmse_by_arm_distance")
        row[target] = {k: r[k] for k in keys if k in r}
        print(f"  {target}: R^2 {r['r2']:.3f} (clipped {r['r2_clipped']:.3f}), rmse {r['rmse_m']:.4f}", flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="a `simjepa collect` dataset of Push or PickPlace episodes")
    ap.add_argument("--also", help="the same episodes from another camera (`simjepa collect --camera side`)")
    ap.add_argument("--episodes", type=int, default=None, help="the first N complete episodes (default: all)")
    ap.add_argument("--readouts", nargs="+", choices=sorted(READOUTS) + ["encoder"], default=None,
                    help="default: every pixel read-out, then `encoder` if --encoder is given")
    ap.add_argument("--encoder", help="also probe this encoder's features (a file or name as `simjepa probe` takes)")
    ap.add_argument("--random-init", action="store_true", help="with --encoder: its seeded random init instead")
    ap.add_argument("--init-seed", type=int, default=0, help="with --random-init: the init's seed")
    ap.add_argument("--pool", type=int, default=POOL, help="with --encoder: pooled cells per side (8: every token)")
    ap.add_argument("--cnn-size", type=int, default=PIXELS,
                    help="frame size the cnn read-out trains on (<= the render size)")
    ap.add_argument("--targets", nargs="+", choices=["cube", "ee", "gripper"], default=None,
                    help="probe only these targets (default: each read-out's own list)")
    ap.add_argument("--out", type=Path, required=True, help="JSON file; rewritten after each read-out")
    args = ap.parse_args()
    try:
        run(args)
    except SimjepaError as exc:
        sys.exit(f"error: {exc}")


def run(args: argparse.Namespace) -> None:
    readouts = dict(READOUTS)
    readouts["cnn"] = (lambda frames: cnn_input(frames, args.cnn_size), readouts["cnn"][1])
    identity = None
    if args.encoder:
        fn, identity = encoder_readout(args.encoder, args.random_init, args.init_seed, args.pool)
        readouts["encoder"] = (fn, ("cube", "ee", "gripper"))
    elif args.readouts and "encoder" in args.readouts:
        raise SimjepaError("the encoder read-out needs --encoder")
    env_id, views, dropped = load_views(args.data, args.also, args.episodes)
    kept = views[0]
    render = int(kept[0].frames.shape[1])
    if args.cnn_size > render:
        raise SimjepaError(f"--cnn-size {args.cnn_size} is larger than the frames ({render} px)")
    targets = {"cube": [e.obj for e in kept], "ee": [e.ee for e in kept], "gripper": [e.gripper for e in kept]}
    arm = [np.linalg.norm(e.ee[:, :2] - e.obj[:, :2], axis=1) for e in kept]
    hidden = hidden_fractions(views)
    print(f"cube hidden in {100 * hidden['every_view']:.1f} % of frames (per view: "
          f"{', '.join(f'{100 * h:.1f} %' for h in hidden['per_view'])})")
    result: dict = {"data": [args.data] + ([args.also] if args.also else []), "env": env_id, "render_size": render,
                    "episodes_used": len(kept), "episodes_dropped_object_left_scene": dropped,
                    "cube_hidden_fraction": hidden, "readouts": {},
                    **({"encoder": identity} if identity else {}), "command": command_line(), "complete": False}
    names = args.readouts or list(readouts)
    for name in names:
        fn, goals = readouts[name]
        goals = tuple(g for g in goals if args.targets is None or g in args.targets)
        if not goals:
            continue
        print(f"{name}:", flush=True)
        t0 = time.perf_counter()
        if name == "cnn":  # views side by side as channels
            x = [np.concatenate([fn(v[i].frames) for v in views], -1) for i in range(len(kept))]
            row = {"input": list(x[0].shape[1:]), **train_cnn(x, {k: targets[k] for k in goals})}
            for target in goals:
                print(f"  {target}: R^2 {row[target]['r2']:.3f} (cnn, epoch {row[target]['best_epoch']})", flush=True)
        else:
            row = ridge_row([np.concatenate([fn(v[i].frames) for v in views], 1) for i in range(len(kept))],
                            goals, targets, arm)
        result["readouts"][name] = {**row, "seconds": round(time.perf_counter() - t0, 1)}
        result["complete"] = name == names[-1]
        write_json(args.out, result)  # a killed run keeps the read-outs it finished
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
