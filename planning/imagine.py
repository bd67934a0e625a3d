"""Autoregressive latent rollouts ("imagination") of many candidate action sequences at once.

Rollout step ``k`` feeds the predictor the context frames plus its own ``k`` previous predictions
(layer-normed, as V-JEPA 2-AC does in training and planning) and keeps only the prediction for the
newest frame. The proprioceptive state of imagined frames is advanced from the planned actions with
the environment's kinematic model, as the official planner does (``compute_new_pose``), because the
predictor is conditioned on states it cannot predict itself.

Every predictor call carries ALL candidates in its batch: ``horizon`` calls per scoring, never a
Python loop over candidates.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .energy import normalize_reps
from .protocols import Predictor, StateAdvancer


@dataclass
class Context:
    """What the planner conditions on: the latest ``C`` observed frames.

    ``feats [C, N, D]`` (layer-normed when the planner normalises reps), ``states [C, K]``,
    ``actions [C - 1, A]``: the actions executed between consecutive context frames.
    """

    feats: torch.Tensor
    states: torch.Tensor
    actions: torch.Tensor

    def __post_init__(self) -> None:
        c = self.feats.shape[0]
        if self.states.shape[0] != c or self.actions.shape[0] != c - 1:
            raise ValueError(
                f"context needs C frames, C states and C-1 actions; got {c}, {self.states.shape[0]}, {self.actions.shape[0]}"
            )


def advance_states(start: torch.Tensor, actions: torch.Tensor, advance: StateAdvancer) -> torch.Tensor:
    """Integrate the kinematic model: ``start [K]``, ``actions [S, H, A]`` -> ``[S, H, K]`` states after each action."""
    s, h, _ = actions.shape
    state = np.broadcast_to(start.detach().cpu().numpy().astype(np.float64), (s, start.shape[0])).copy()  # [S, K]
    acts = actions.detach().cpu().numpy().astype(np.float64)
    out = np.empty((s, h, start.shape[0]), dtype=np.float32)
    for k in range(h):
        state = np.asarray(advance(state, acts[:, k]), dtype=np.float64)
        out[:, k] = state
    return torch.from_numpy(out)


def imagine(
    predictor: Predictor,
    context: Context,
    actions: torch.Tensor,
    advance: StateAdvancer | None,
    normalize_inputs: bool = True,
    use_autocast: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Roll ``actions [S, H, A]`` out from ``context``.

    Returns predicted features ``[S, H, N, D]`` (fp32, always layer-normed, ready for the energy) and
    the states of the predicted frames ``[S, H, K]`` (``advance`` None keeps the last observed state).
    ``normalize_inputs``: feed predictions back layer-normed, matching a predictor trained on
    layer-normed features (V-JEPA 2-AC); the context must then be layer-normed too.
    """
    s, h, _ = actions.shape
    c = context.feats.shape[0]
    device = context.feats.device  # the predictor's device: the agent puts features there
    last_state = context.states[-1].float().cpu()
    if advance is None:
        pred_states = last_state.expand(s, h, -1).clone()  # [S, H, K]
    else:
        pred_states = advance_states(last_state, actions, advance)  # [S, H, K]
    pred_states = pred_states.to(device)
    ctx_feats = context.feats.float().expand(s, *context.feats.shape)  # [S, C, N, D]
    all_actions = torch.cat([context.actions.float().to(device).expand(s, c - 1, -1), actions.float().to(device)], dim=1)  # [S, C-1+H, A]
    all_states = torch.cat([context.states.float().to(device).expand(s, c, -1), pred_states[:, :-1]], dim=1)  # [S, C+H-1, K]

    feats = ctx_feats
    preds = []
    for k in range(h):
        t = c + k  # frames fed this step
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_autocast), torch.no_grad():
            out = predictor(feats, all_actions[:, :t], all_states[:, :t])  # [S, t, N, D]
        raw = out[:, -1:].float()  # [S, 1, N, D]: prediction of frame t
        normed = normalize_reps(raw)
        preds.append(normed)
        if k + 1 < h:
            feats = torch.cat([feats, normed if normalize_inputs else raw], dim=1)  # [S, t+1, N, D]
    return torch.cat(preds, dim=1), pred_states
