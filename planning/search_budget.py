"""Planner defaults sized for the machine a model was trained on (``simjepa train`` records them).

A model fresh out of training would otherwise plan with the official search (400 samples x 10
iterations, horizon 2), which takes tens of seconds per action on a CPU. :func:`size_search` times
the model's predictor on candidate batches under bf16 autocast (as the planner runs it) and picks
the largest search from :data:`LADDER` whose estimated cost per action is at most ``target_s``,
never above the official one. Users trade speed for success with ``--samples/--iters/--horizon``.

The estimate: one CEM iteration scores ``samples`` candidates with one batched predictor pass over
``1 + horizon`` frames (the cached rollout the planner uses costs about as much: each frame's tokens
are computed once); per action = ``iterations * (a + b * samples)``, ``a`` and ``b`` fitted from two
timed batch sizes. Encoding the observation, the energy and the CEM bookkeeping are not counted.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

OFFICIAL = {"samples": 400, "iterations": 10, "horizon": 2, "topk": 10}
# (samples, iterations) from the official search down; the first that fits wins (horizon 2, then 1).
LADDER: tuple[tuple[int, int], ...] = (
    (400, 10), (300, 10), (200, 10), (200, 8), (150, 8), (100, 8), (100, 6), (80, 6), (64, 5), (48, 5),
    (32, 4), (24, 3), (16, 3),
)
PROBE_SAMPLES = (16, 64)


@dataclass(frozen=True)
class SearchBudget:
    """The chosen search and what it was sized against (``estimated_s``: seconds per action)."""

    samples: int
    iterations: int
    horizon: int
    topk: int
    estimated_s: float
    target_s: float

    def planner_defaults(self) -> dict[str, int]:
        """The keys ``world_model.model_file.with_planner_defaults`` records (PlannerConfig names)."""
        return {"samples": self.samples, "iterations": self.iterations, "horizon": self.horizon, "topk": self.topk}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def predictor_timer(world_model: Any, reps: int = 3) -> Callable[[int, int], float]:
    """``timer(samples, horizon) -> seconds``: best of ``reps`` predictor passes over ``samples``
    candidates of ``1 + horizon`` frames of random features, under bf16 autocast, no grad."""
    predictor = world_model.predictor
    cfg = predictor.config
    grid = tuple(int(g) for g in world_model.grid)
    n = grid[0] * grid[1]
    param = next(predictor.parameters())
    device = param.device
    gen = torch.Generator().manual_seed(0)

    def timer(samples: int, horizon: int) -> float:
        t = 1 + horizon
        feats = torch.randn(samples, t, n, cfg.embed_dim, generator=gen).to(device)
        actions = torch.rand(samples, t, cfg.action_dim, generator=gen).to(device)
        states = torch.rand(samples, t, cfg.state_dim, generator=gen).to(device)
        best = float("inf")
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
            for i in range(reps + 1):  # the first pass warms up kernels and allocations
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                predictor(feats, actions, states, grid=grid)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                if i:
                    best = min(best, time.perf_counter() - start)
        return best

    return timer


def choose(cost: Callable[[int, int, int], float], target_s: float) -> SearchBudget:
    """The first rung of :data:`LADDER` (horizon 2, then 1) with ``cost(samples, iterations, horizon)
    <= target_s``; the smallest search when none fits."""
    for horizon in (OFFICIAL["horizon"], 1):
        for samples, iterations in LADDER:
            est = cost(samples, iterations, horizon)
            if est <= target_s:
                return SearchBudget(samples, iterations, horizon, _topk(samples), float(est), float(target_s))
    samples, iterations = LADDER[-1]
    return SearchBudget(samples, iterations, 1, _topk(samples), float(cost(samples, iterations, 1)), float(target_s))


def _topk(samples: int) -> int:
    """The official 10 elites of 400, at most a quarter of the samples for small searches."""
    return max(2, min(OFFICIAL["topk"], samples // 4))


def size_search(world_model: Any, target_s: float = 1.0, timer: Callable[[int, int], float] | None = None) -> SearchBudget:
    """Largest search whose estimated time per action on this machine is at most ``target_s`` seconds.

    ``world_model``: a loaded ``world_model.WorldModel`` (the encoder is not needed). ``timer``: as
    :func:`predictor_timer` returns (tests pass a synthetic one).
    """
    if target_s <= 0:
        raise ValueError(f"target_s must be positive, got {target_s}")
    timer = timer or predictor_timer(world_model)
    fits: dict[int, tuple[float, float]] = {}
    lo, hi = PROBE_SAMPLES
    for horizon in (OFFICIAL["horizon"], 1):
        t_lo, t_hi = timer(lo, horizon), timer(hi, horizon)
        b = max((t_hi - t_lo) / (hi - lo), 0.0)
        a = max(t_lo - b * lo, 0.0)
        fits[horizon] = (a, b)

    def cost(samples: int, iterations: int, horizon: int) -> float:
        a, b = fits[horizon]
        return iterations * (a + b * samples)

    return choose(cost, target_s)
