"""Energy landscape: the planner's objective over a 2-D slice (first action's dx, dy).

A well-shaped world model gives a single basin around the direction of the goal; flat or
multi-modal landscapes explain planner failures better than success rates do.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from simjepa_core.atomic import atomic_path
from .agent import Agent, _check_state, _split
from .imagine import Context


@dataclass
class Landscape:
    """``energy [n, n]`` over ``dx`` (columns) and ``dy`` (rows), normalised action units."""

    dx: np.ndarray
    dy: np.ndarray
    energy: np.ndarray


def energy_landscape(agent: Agent, obs: dict[str, Any], goal: Any, n: int = 21, span: float = 1.0) -> Landscape:
    """Score every ``(dx, dy)`` on an ``n x n`` grid (other dims and later steps 0) in one batch
    (per camera, averaged over the model's cameras like the planner's energy)."""
    frames, _ = _split(obs, "observation", agent.cameras)
    goal_frames, goal_state = agent.goal_inputs(goal)  # the goal's state only under the privileged protocol
    state = _check_state(obs["state"], "observation", agent.state_dim)
    goal_state = None if goal_state is None else torch.from_numpy(goal_state).float()
    ticks = np.linspace(-span, span, n, dtype=np.float32)
    gx, gy = np.meshgrid(ticks, ticks)  # [n, n]
    actions = torch.zeros(n * n, agent.config.cem.horizon, agent.action_dim)  # [n*n, H, A]
    actions[:, 0, 0] = torch.from_numpy(gx.reshape(-1))
    actions[:, 0, 1] = torch.from_numpy(gy.reshape(-1))
    feats = agent.encode_views(frames)  # [V, N, D]
    contexts = [Context(f[None], torch.from_numpy(state).float()[None], torch.zeros(0, agent.action_dim)) for f in feats]
    goals = [agent.goal_features(g) for g in goal_frames]
    e = agent.planner.score_views(contexts, goals, goal_state, actions)
    return Landscape(ticks, ticks, e.reshape(n, n).numpy())


def plot_landscape(land: Landscape, path: str | Path, title: str = "") -> None:
    """Heat map with the minimum marked, written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 3.6), dpi=120)
    im = ax.imshow(land.energy, origin="lower", extent=[land.dx[0], land.dx[-1], land.dy[0], land.dy[-1]], cmap="viridis")
    iy, ix = np.unravel_index(np.argmin(land.energy), land.energy.shape)
    ax.plot(land.dx[ix], land.dy[iy], "r+", markersize=12)
    ax.set_xlabel("first action dx")
    ax.set_ylabel("first action dy")
    ax.set_title(title, fontsize=8)
    fig.colorbar(im, ax=ax, label="energy")
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
