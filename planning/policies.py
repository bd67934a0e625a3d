"""Baseline policies with the agent's ``act(obs, goal)`` / ``reset()`` interface, for evaluation."""
from __future__ import annotations

from typing import Any

import numpy as np


class RandomPolicy:
    """Uniform actions in the env's action box (lower bound for every metric). Seeded per episode."""

    def __init__(self, env: Any, seed: int = 0) -> None:
        space = env.action_space
        self.low = np.asarray(space.low, dtype=np.float32)
        self.high = np.asarray(space.high, dtype=np.float32)
        self.seed = seed
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(self.seed if seed is None else seed)

    def act(self, obs: Any, goal: Any) -> np.ndarray:
        return self.rng.uniform(self.low, self.high).astype(np.float32)


class ExpertPolicy:
    """The env's scripted expert (``envs.experts.make_expert``): the upper-bound baseline.

    It reads the simulator state, so it ignores the goal image; ``reset`` must follow ``env.reset``.
    """

    def __init__(self, env: Any) -> None:
        from envs.experts import make_expert

        self.expert = make_expert(env)

    def reset(self, seed: int | None = None) -> None:
        self.expert.reset()

    def act(self, obs: Any, goal: Any) -> np.ndarray:
        return np.asarray(self.expert.act(obs), dtype=np.float32)
