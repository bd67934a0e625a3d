"""A learned proposal in planning: the CEM's initial-mean provider, and the proposal alone as a policy.

The proposal (``world_model.proposal``, trained by ``simjepa train-proposal``) maps the current
frame's features, the arm's proprioception ``state[:7]`` and the goal image's features to the next
actions. :class:`ProposalPrior` is the agent's hook: called once per re-plan, its actions become the
CEM's initial mean and the anchor some samples are drawn around; the planner's energy still picks the
plan. With the planner setting ``search="none"`` the agent executes the proposal's plan with no world
model call at all (``evaluate --policy proposal``: the baseline row that shows what the world model
adds; the default model's setting for tasks where its search only overrides the proposal).

Both see only the image-goal protocol's inputs: the observation's pixels and ``state[:7]``, and the
goal's pixels (a goal dict's ``state`` is never read). Multi-camera models: the proposal uses the
first camera.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from .errors import PlannerConfigError


class InitialMeanProvider(Protocol):
    """``(feats [N, D], state [S], goal_feats [N, D], horizon, prev_state [S] | None) -> actions [horizon, A]``:
    where a search starts. ``prev_state``: the previous observation's state (``None`` at an episode's start)."""

    def __call__(self, feats: torch.Tensor, state: np.ndarray, goal_feats: torch.Tensor, horizon: int,
                 prev_state: np.ndarray | None = None) -> torch.Tensor: ...


def fit_horizon(actions: torch.Tensor, horizon: int) -> torch.Tensor:
    """``[H', A]`` -> ``[horizon, A]``: cut, or pad by repeating the last proposed action."""
    if actions.shape[0] >= horizon:
        return actions[:horizon].clone()
    pad = actions[-1:].expand(horizon - actions.shape[0], -1)
    return torch.cat([actions, pad])


class ProposalPrior:
    """The initial-mean provider backed by a trained proposal network."""

    def __init__(self, net: Any, path: str | None = None) -> None:
        self.net = net
        self.path = path

    def __call__(self, feats: torch.Tensor, state: np.ndarray, goal_feats: torch.Tensor, horizon: int,
                 prev_state: np.ndarray | None = None) -> torch.Tensor:
        with torch.no_grad():
            return fit_horizon(self.net.propose(feats, state, goal_feats, prev_state), horizon)

    def identity(self) -> dict[str, Any]:
        from world_model.checkpoints import weights_hash

        return {"path": self.path, "weights_hash": weights_hash(self.net.state_dict())}


def embedded_prior(world_model: Any, where: str) -> ProposalPrior | None:
    """The proposal embedded in ``world_model``'s file (``WorldModel.proposal``) as the agent's hook, or None."""
    net = getattr(world_model, "proposal", None)
    return None if net is None else ProposalPrior(net, f"embedded in {where}")


def load_prior(path: str | Path, world_model: Any) -> ProposalPrior:
    """Load a proposal file for ``world_model``: refused when it was trained on another encoder's features."""
    from world_model.checkpoints import weights_hash
    from world_model.proposal import load_proposal

    net = load_proposal(path)
    encoder = getattr(world_model, "encoder", None)
    module = getattr(encoder, "encoder", encoder)
    want = (getattr(net, "encoder", {}) or {}).get("weights_hash")
    if callable(getattr(module, "state_dict", None)) and want is not None:
        got = weights_hash(module.state_dict())
        if got != want:
            raise PlannerConfigError(
                f"proposal {path} was trained on features of encoder [{want}], but this world model's encoder is "
                f"[{got}]; train the proposal on caches encoded with the model's encoder"
            )
    grid = tuple(getattr(world_model, "grid", net.config.grid))
    if tuple(net.config.grid) != grid:
        raise PlannerConfigError(f"proposal {path} expects a {net.config.grid} token grid, the world model has {grid}")
    return ProposalPrior(net, str(path))
