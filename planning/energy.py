"""Goal energy: how far imagined futures are from the goal, in the encoder's feature space.

V-JEPA 2-AC plans by minimising ``E(a_1:T) = mean |LN(P(a_1:T; z_t, s_t)) - LN(z_goal)|``: an L1
distance between layer-normed (no affine) predicted and goal features, averaged over tokens and
channels. Layer norm matters: the predictor is trained on layer-normed targets (``normalize_reps``),
so un-normalised distances would mostly measure feature scale, not content.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

Metric = Literal["l1", "l2"]


@dataclass
class EnergyConfig:
    """How imagined futures are scored.

    ``metric``: ``l1`` (V-JEPA 2-AC) or ``l2`` (mean squared). ``all_steps``: average the feature
    distance over every predicted step instead of only the last one (rewards getting there early).
    ``state_weight``: alpha of the optional proprioceptive term ``alpha * mean|s_T - s_goal|``, used
    only when the goal state is known (0 disables it, as in the official planner).
    """

    metric: Metric = "l1"
    all_steps: bool = False
    state_weight: float = 0.0


def normalize_reps(feats: torch.Tensor) -> torch.Tensor:
    """Layer norm over channels without affine parameters, in fp32 (bf16 LN loses the energy's precision)."""
    return F.layer_norm(feats.float(), (feats.shape[-1],))


def _distance(a: torch.Tensor, b: torch.Tensor, metric: Metric) -> torch.Tensor:
    diff = a - b
    if metric == "l1":
        return diff.abs()
    if metric == "l2":
        return diff.square()
    raise ValueError(f"unknown energy metric {metric!r}; use 'l1' or 'l2'")


def feature_energy(pred: torch.Tensor, goal: torch.Tensor, metric: Metric = "l1", all_steps: bool = False) -> torch.Tensor:
    """Distance of layer-normed predictions to layer-normed goal features.

    ``pred [S, T, N, D]`` (already layer-normed), ``goal [N, D]`` (already layer-normed) -> ``[S]``.
    """
    scored = pred if all_steps else pred[:, -1:]  # [S, T', N, D]
    return _distance(scored, goal[None, None], metric).mean(dim=(1, 2, 3))


def state_energy(states: torch.Tensor, goal_state: torch.Tensor, metric: Metric = "l1", all_steps: bool = False) -> torch.Tensor:
    """Proprioceptive distance: ``states [S, T, K]``, ``goal_state [K]`` -> ``[S]``."""
    scored = states if all_steps else states[:, -1:]  # [S, T', K]
    return _distance(scored, goal_state[None, None], metric).mean(dim=(1, 2))


def energy(
    pred: torch.Tensor,
    goal: torch.Tensor,
    config: EnergyConfig,
    pred_states: torch.Tensor | None = None,
    goal_state: torch.Tensor | None = None,
) -> torch.Tensor:
    """Total energy per candidate: ``[S]``. The state term is added only if both states are given."""
    e = feature_energy(pred, goal, config.metric, config.all_steps)
    if config.state_weight and pred_states is not None and goal_state is not None:
        k = goal_state.shape[-1]
        e = e + config.state_weight * state_energy(pred_states[..., :k].float(), goal_state.float(), config.metric, config.all_steps)
    return e
