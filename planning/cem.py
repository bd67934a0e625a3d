"""Cross-entropy method over action sequences.

Defaults follow the official V-JEPA 2-AC planner (``notebooks/utils/world_model_wrapper.py``):
horizon 2, 10 iterations, 400 samples, top-10 elites, momentum 0.15 on mean and std, translation and
gripper searched with rotation fixed at 0, initial std equal to the full translation range
(official: ``maxnorm`` = 0.05 m, which is our normalised action 1.0).

Differences, on purpose: the current mean is scored as candidate 0 of every iteration and the best
candidate ever scored is returned (so more iterations can never end worse, same seed), and the
search can be warm-started from the previous plan shifted by one step.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from simjepa_core.state_layout import GRIPPER, PROPRIO_DIM, ROTATION_DIMS

from .errors import PlannerConfigError


@dataclass
class CEMConfig:
    """Search settings. Actions live in the env's normalised box ``[action_low, action_high]``."""

    samples: int = 400
    iterations: int = 10
    topk: int = 10
    horizon: int = 2
    init_std: float = 1.0
    gripper_init_mean: float = 0.0
    gripper_init_std: float = 1.0
    momentum_mean: float = 0.15
    momentum_std: float = 0.15
    momentum_mean_gripper: float = 0.15
    momentum_std_gripper: float = 0.15
    min_std: float = 0.0
    action_low: float = -1.0
    action_high: float = 1.0
    translation_only: bool = True
    # the action is the arm's 7-D [translation, rotation, gripper] (rotation frozen by translation_only, a gripper
    # dim); False for any other action space, e.g. an adapted env's 7 torques, where every dim is searched alike
    arm_actions: bool = True
    warm_start: bool = True
    seed: int = 0
    # seeding by a proposal (``cem(..., anchor=...)``): this fraction of each iteration's samples is drawn
    # around the anchor with ``anchor_std`` instead of around the mean; unused without an anchor
    anchor_fraction: float = 0.25
    anchor_std: float = 0.2

    def validate(self) -> None:
        for name in ("samples", "iterations", "topk", "horizon"):
            if int(getattr(self, name)) < 1:
                raise PlannerConfigError(f"CEM {name}={getattr(self, name)} must be >= 1; pass a positive integer")
        if self.topk > self.samples:
            raise PlannerConfigError(f"CEM topk={self.topk} exceeds samples={self.samples}; use topk <= samples")
        if self.topk < 2:
            raise PlannerConfigError(f"CEM topk={self.topk} cannot estimate a std; use topk >= 2")
        for name in ("momentum_mean", "momentum_std", "momentum_mean_gripper", "momentum_std_gripper"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise PlannerConfigError(f"CEM {name}={getattr(self, name)} must be in [0, 1)")
        if not 0.0 <= self.anchor_fraction <= 1.0 or self.anchor_std < 0:
            raise PlannerConfigError(f"CEM anchor_fraction={self.anchor_fraction} must be in [0, 1] and "
                                     f"anchor_std={self.anchor_std} >= 0")
        if self.init_std <= 0 or self.gripper_init_std < 0 or self.min_std < 0:
            raise PlannerConfigError("CEM init_std must be > 0 and gripper_init_std, min_std >= 0")
        if not self.action_low < self.action_high:
            raise PlannerConfigError(f"CEM action bounds [{self.action_low}, {self.action_high}] are empty")
        if not self.action_low <= self.gripper_init_mean <= self.action_high:
            raise PlannerConfigError(f"CEM gripper_init_mean={self.gripper_init_mean} lies outside the action bounds "
                                     f"[{self.action_low}, {self.action_high}]")


@dataclass
class CEMResult:
    """``plan [H, A]``: best sequence scored; ``energy``: its energy; ``iteration_energies``: best
    energy found in each iteration; ``mean``/``std`` ``[H, A]``: final sampling distribution."""

    plan: torch.Tensor
    energy: float
    iteration_energies: list[float]
    mean: torch.Tensor
    std: torch.Tensor
    scored: int = 0
    extras: dict = field(default_factory=dict)


def frozen_dims(action_dim: int, translation_only: bool, arm: bool = True) -> list[int]:
    """Dims not searched: rotation for the 7-D V-JEPA 2-AC action (other action spaces search everything).
    They are held at the initial mean's values (0 without an ``init_mean``)."""
    return list(ROTATION_DIMS) if translation_only and arm and action_dim == PROPRIO_DIM else []


def gripper_dims(action_dim: int, arm: bool = True) -> list[int]:
    """The gripper command's dim of the 7-D V-JEPA 2-AC action (other action spaces have none)."""
    return [GRIPPER] if arm and action_dim == PROPRIO_DIM else []


def initial_mean(config: CEMConfig, action_dim: int) -> torch.Tensor:
    """Where a search without a warm start begins ``[H, A]``: no motion, the gripper at ``gripper_init_mean``."""
    mean = torch.zeros(config.horizon, action_dim)
    mean[:, gripper_dims(action_dim, config.arm_actions)] = float(config.gripper_init_mean)
    return mean


def shift_plan(plan: torch.Tensor, arm: bool = True) -> torch.Tensor:
    """Warm start for the next MPC step: drop the executed action, repeat the gripper, zero the motion."""
    nxt = torch.zeros_like(plan)
    nxt[:-1] = plan[1:]
    g = gripper_dims(plan.shape[-1], arm)
    nxt[-1, g] = plan[-1, g]
    return nxt


def cem(
    score: Callable[[torch.Tensor], torch.Tensor],
    action_dim: int,
    config: CEMConfig,
    init_mean: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    anchor: torch.Tensor | None = None,
) -> CEMResult:
    """Minimise ``score(actions [S, H, A]) -> [S]`` (one call per iteration, all candidates at once).

    ``anchor [H, A]``: a proposed plan (e.g. a learned proposal's actions); the last
    ``anchor_fraction`` of each iteration's samples are drawn around it with ``anchor_std`` (the same
    noise, rescaled), so the search keeps looking near the proposal while the energy decides.

    Deterministic given ``generator`` (seeded from ``config.seed`` when None). Iteration ``i`` draws
    the same noise whatever the total iteration count, so a longer search only adds candidates.
    """
    config.validate()
    h, a, s = config.horizon, action_dim, config.samples
    if generator is None:
        generator = torch.Generator().manual_seed(int(config.seed))
    frozen = frozen_dims(a, config.translation_only, config.arm_actions)
    gripper = gripper_dims(a, config.arm_actions)
    is_gripper = torch.zeros(a, dtype=torch.bool)
    is_gripper[gripper] = True

    mean = initial_mean(config, a) if init_mean is None else init_mean.detach().float().clone().reshape(h, a)
    mean = mean.clamp(config.action_low, config.action_high)  # frozen dims stay at init_mean (0 without one)
    std = torch.full((h, a), float(config.init_std))
    std[:, gripper] = float(config.gripper_init_std)
    std[:, frozen] = 0.0
    mom_mean = torch.where(is_gripper, config.momentum_mean_gripper, config.momentum_mean)  # [A]
    mom_std = torch.where(is_gripper, config.momentum_std_gripper, config.momentum_std)  # [A]

    n_anchor = 0 if anchor is None else min(s - 1, int(round(config.anchor_fraction * s)))
    if anchor is not None:
        anchor = anchor.detach().float().reshape(h, a).clamp(config.action_low, config.action_high)

    best_plan, best_energy = mean.clone(), float("inf")
    per_iter: list[float] = []
    for _ in range(config.iterations):
        noise = torch.randn(s, h, a, generator=generator)  # [S, H, A]
        cand = mean + std * noise
        cand[0] = mean  # the current mean is always scored
        if n_anchor:
            cand[s - n_anchor:] = anchor + config.anchor_std * noise[s - n_anchor:]
            cand[s - n_anchor] = anchor  # the proposal itself is always scored
        cand = cand.clamp(config.action_low, config.action_high)
        cand[..., frozen] = mean[:, frozen]
        e = score(cand).float()  # [S]
        if e.shape != (s,):
            raise ValueError(f"score returned shape {tuple(e.shape)}, expected ({s},)")
        e = torch.nan_to_num(e, nan=float("inf"))
        elite_e, idx = torch.topk(e, config.topk, largest=False)
        elites = cand[idx]  # [K, H, A]
        per_iter.append(float(elite_e[0]))
        if float(elite_e[0]) < best_energy:
            best_energy, best_plan = float(elite_e[0]), elites[0].clone()
        mean = (1.0 - mom_mean) * elites.mean(0) + mom_mean * mean
        std = ((1.0 - mom_std) * elites.std(0) + mom_std * std).clamp_min(config.min_std)
        std[:, frozen] = 0.0
    return CEMResult(best_plan, best_energy, per_iter, mean, std, scored=s * config.iterations)
