"""What the planner needs from a world model, as structural types.

The planner is written against these protocols rather than ``world_model`` classes so it can be
tested with toy dynamics whose optimum is known, and so any predictor with the V-JEPA 2-AC call
signature (official weights, ours, a user's) plugs in unchanged.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np
import torch


class Predictor(Protocol):
    """Action-conditioned latent predictor with the V-JEPA 2-AC signature.

    ``feats [B, T, N, D]``, ``actions [B, T, A]``, ``states [B, T, S]`` -> ``[B, T, N, D]`` where output
    ``t`` predicts the features of step ``t + 1`` and attention is block-causal in ``t``.
    """

    def __call__(self, feats: torch.Tensor, actions: torch.Tensor, states: torch.Tensor) -> torch.Tensor: ...


class StateAdvancer(Protocol):
    """Proprioceptive model: the state after applying ``action`` (batched numpy, ``[B, 7]``)."""

    def __call__(self, state: np.ndarray, action: np.ndarray) -> np.ndarray: ...


class FrameEncoder(Protocol):
    """Frozen encoder: ``frames uint8 [B, H, W, 3]`` -> ``[B, N, D]`` float features."""

    def __call__(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor: ...
