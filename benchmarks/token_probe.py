"""How much more of the cube's position the full token map holds than the proposal's pooled input.

Why: the Push proposal (world_model/proposal.py) sees each frame as the patch mean plus a 4x4 grid of cell
means; a per-token head was the next idea for Push. If a linear read-out of ALL tokens locates the cube no
better than one of the pooled input, a per-token head is not the fix and the encoder is (issue 21).

    python benchmarks/token_probe.py --features runs/pushprop/feats_expert --episodes 300 --out FILE.json

Episodes split 60 / 20 / 20 (ridge fit / alpha choice / scored), every ``--every``-th frame; the same split
for both inputs. Prints the mean distance error (m) and R^2 for the cube (state[7:10]) and the end effector
(state[0:3]); ``--layout pusher`` reads Pusher-v5's object (state[17:20]) and arm tip (state[14:17]).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from world_model.feature_cache import FeatureCache  # noqa: E402
from world_model.probe import fit_ridge, r2_score  # noqa: E402
from world_model.proposal import pool_features  # noqa: E402

LAYOUTS = {"push": {"cube": slice(7, 10), "ee": slice(0, 3)},  # our Push / PickPlace states
           "pusher": {"object": slice(17, 20), "tip": slice(14, 17)}}  # Pusher-v5: qpos 7, qvel 7, tip, object, goal


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--features", type=Path, required=True, help="a `simjepa encode` cache of Push or PickPlace episodes")
    ap.add_argument("--episodes", type=int, default=300)
    ap.add_argument("--every", type=int, default=3, help="keep every N-th frame of an episode")
    ap.add_argument("--layout", choices=sorted(LAYOUTS), default="push", help="which state entries are the targets")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    targets = LAYOUTS[args.layout]
    cache = FeatureCache.open(args.features)
    ids = list(cache.episodes)[: args.episodes]
    grid = tuple(int(g) for g in cache.grid)
    inputs = {"pooled 1 + 4x4 (the proposal's input)": 4, f"every token ({grid[0]}x{grid[1]})": grid[0]}
    x = {name: [] for name in inputs}
    y = []
    for i in ids:
        feats, _, states = cache.episode(i)
        f = torch.from_numpy(np.asarray(feats, np.float32))[:: args.every]  # [T', N, D]
        for name, g in inputs.items():
            x[name].append(pool_features(f, grid, g).numpy())
        y.append(np.asarray(states, np.float64)[:: args.every])
    n = len(ids)
    cut1, cut2 = int(0.6 * n), int(0.8 * n)
    result = {"features": str(args.features), "layout": args.layout, "episodes": n, "every": args.every, "inputs": {}}
    for name in inputs:
        fit, val, test = (np.concatenate(x[name][a:b]) for a, b in ((0, cut1), (cut1, cut2), (cut2, n)))
        y_fit, y_val, y_test = (np.concatenate(y[a:b]) for a, b in ((0, cut1), (cut1, cut2), (cut2, n)))
        row = {"dim": int(fit.shape[1])}
        for target, sl in targets.items():
            probe = fit_ridge(fit, y_fit[:, sl], val, y_val[:, sl])
            pred = probe.predict(test)
            row[target] = {"mean_error_m": float(np.linalg.norm(pred - y_test[:, sl], axis=1).mean()),
                           "r2": float(r2_score(y_test[:, sl], pred)), "alpha": probe.alpha}
        result["inputs"][name] = row
        print(f"{name:40s} dim {row['dim']:6d}: " + "; ".join(
            f"{t} {row[t]['mean_error_m'] * 100:.2f} cm (R^2 {row[t]['r2']:.3f})" for t in targets))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
