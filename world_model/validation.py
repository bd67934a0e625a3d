"""Held-out scores of a trained predictor: multi-step rollout error against the copy-last-frame baseline."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .data import EpisodeSource, load_windows
from .losses import feature_loss, rollout
from .predictor import ACPredictor, normalize_reps
from .training_loop import autocast


@torch.no_grad()
def validate(
    predictor: ACPredictor,
    source: EpisodeSource,
    episodes: Sequence[int],
    lengths: Mapping[int, int],
    state_dim: int,
    context: int,
    steps: int,
    device: torch.device,
    max_windows: int = 256,
    batch_size: int = 16,
    stride: int = 1,
) -> dict[str, Any]:
    """Per-step L1 and L2 (mean squared error; layer-normed features) of 1..``steps``-step rollouts from
    one true frame, and of the copy-last-frame baseline (predict that nothing changes), on held-out
    episodes. Both metrics, so predictors trained with different losses are compared on neutral ground.

    Windows start every ``steps`` frames; a window near an episode end contributes fewer steps, so
    each step's mean is over the windows that reach it (counts in ``windows_per_step``). ``stride`` k:
    a macro-step model's steps, each k env frames (:func:`world_model.data.load_windows`).
    """
    groups: dict[int, list[tuple[int, int]]] = {}
    n_windows = 0
    for e in episodes:
        for start in range(0, lengths[e] - stride, steps * stride):
            if n_windows >= max_windows:
                break
            k = min(steps, (lengths[e] - 1 - start) // stride)
            groups.setdefault(k, []).append((e, start))
            n_windows += 1
    sums_model, sums_copy, counts = np.zeros(steps), np.zeros(steps), np.zeros(steps, dtype=np.int64)
    sq_model, sq_copy = np.zeros(steps), np.zeros(steps)
    tf_sum, tf_count = 0.0, 0
    predictor.eval()
    for k, wins in sorted(groups.items()):
        for i in range(0, len(wins), batch_size):
            chunk = np.array(wins[i : i + batch_size], dtype=np.int64)
            feats, actions, states = load_windows(source, chunk, k + 1, state_dim, stride)
            z = normalize_reps(feats.to(device))  # [b, k+1, N, D]
            actions, states = actions.to(device), states.to(device)
            with autocast(device):
                preds = rollout(predictor, z[:, :1], actions, states, k, window=context)  # [b, k, N, D]
                c = min(context, k)
                tf = normalize_reps(predictor(z[:, :c], actions[:, :c], states[:, :c]))
            diff, still = preds.float() - z[:, 1:], z[:, :1] - z[:, 1:]  # [b, k, N, D]
            sums_model[:k] += diff.abs().mean(dim=(2, 3)).sum(0).cpu().numpy()
            sums_copy[:k] += still.abs().mean(dim=(2, 3)).sum(0).cpu().numpy()
            sq_model[:k] += diff.square().mean(dim=(2, 3)).sum(0).cpu().numpy()
            sq_copy[:k] += still.square().mean(dim=(2, 3)).sum(0).cpu().numpy()
            counts[:k] += len(chunk)
            tf_sum += float(feature_loss(tf, z[:, 1 : c + 1], "l1")) * len(chunk)
            tf_count += len(chunk)
    reached = [j for j in range(steps) if counts[j] > 0]
    return {
        "episodes": [int(e) for e in episodes],
        "windows": n_windows,
        "context_frames": 1,
        "macro_steps": stride,
        "predictor_window": context,
        "rollout_l1": {str(j + 1): float(sums_model[j] / counts[j]) for j in reached},
        "copy_last_l1": {str(j + 1): float(sums_copy[j] / counts[j]) for j in reached},
        "rollout_l2": {str(j + 1): float(sq_model[j] / counts[j]) for j in reached},
        "copy_last_l2": {str(j + 1): float(sq_copy[j] / counts[j]) for j in reached},
        "windows_per_step": {str(j + 1): int(counts[j]) for j in reached},
        "teacher_forcing_l1": tf_sum / tf_count if tf_count else None,
    }
