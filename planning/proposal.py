"""A learned proposal in planning: the CEM's initial-mean provider, and the proposal alone as a policy.

The proposal (``world_model.proposal``, trained by ``simjepa train-proposal``) maps the current
frame's features, the arm's proprioception ``state[:7]`` and the goal image's features to the next
actions. :class:`ProposalPrior` is the agent's hook: called once per re-plan, its actions become the
CEM's initial mean and the anchor some samples are drawn around; the planner's energy still picks the
plan. :class:`ProposalPolicy` executes the proposal's first action with no world model at all (the
baseline row that shows what the world model adds).

Both see only the image-goal protocol's inputs: the observation's pixels and ``state[:7]``, and the
goal's pixels (a goal dict's ``state`` is never read). Multi-camera models: the proposal uses the
first camera.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
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
        return fit_horizon(self.net.propose(feats, state, goal_feats, prev_state), horizon)

    def identity(self) -> dict[str, Any]:
        from world_model.checkpoints import weights_hash

        return {"path": self.path, "weights_hash": weights_hash(self.net.state_dict())}


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


class ProposalPolicy:
    """The proposal alone: encode the frame and the goal image, execute the first proposed action."""

    def __init__(self, world_model: Any, prior: ProposalPrior) -> None:
        self.world_model = world_model
        self.prior = prior
        self.cameras = ("front",)
        self.last_energy = None
        self._goal_cache: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self._prev_state: np.ndarray | None = None

    def reset(self, seed: int | None = None) -> None:
        self.last_energy = None
        self._prev_state = None

    def _feats(self, pixels: np.ndarray) -> torch.Tensor:
        return self.world_model.encode(np.asarray(pixels)[None])[0].float()

    def act(self, obs: Mapping[str, Any], goal: Any) -> np.ndarray:
        from .agent import _check_frame, _check_state, as_goal

        if not isinstance(obs, Mapping) or "pixels" not in obs or obs.get("state") is None:
            raise PlannerConfigError("observation must be the env's dict with 'pixels' and 'state'")
        pixels = _check_frame(obs["pixels"], "observation")
        state = _check_state(obs["state"], "observation", self.prior.net.config.state_dim)
        gpix = as_goal(goal)
        if not isinstance(gpix, Mapping) or "pixels" not in gpix:
            raise PlannerConfigError("goal must be an image or a dict with 'pixels'")
        gpix = _check_frame(gpix["pixels"], "goal")  # only the goal's image is read
        key = (gpix.shape, hashlib.blake2b(np.ascontiguousarray(gpix).tobytes(), digest_size=16).hexdigest())
        if key not in self._goal_cache:
            self._goal_cache[key] = self._feats(gpix)
            while len(self._goal_cache) > 8:
                self._goal_cache.popitem(last=False)
        with torch.no_grad():
            actions = self.prior(self._feats(pixels), state, self._goal_cache[key], 1, self._prev_state)
        self._prev_state = state
        return actions[0].numpy().astype(np.float32)
