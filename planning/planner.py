"""One MPC planning step: score candidate action sequences by imagined goal energy, search with CEM."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .cem import CEMConfig, CEMResult, cem
from .energy import EnergyConfig, energy
from .errors import PlannerConfigError
from .imagine import Context, imagine
from .protocols import Predictor, StateAdvancer

# Short names accepted by CLIs and ``Agent.from_pretrained(**overrides)``, and the official planner's names.
SEARCHES = ("cem", "none")
ALIASES = {"iters": "iterations", "energy": "metric", "steps_per_plan": "execute_steps", "cem_steps": "iterations"}


@dataclass
class PlannerConfig:
    """Everything the agent's planner is tuned by.

    ``context_frames``: observed frames given to the predictor (1 = the current frame, as the
    official planner). ``execute_steps``: MPC executes this many planned actions before re-planning.
    ``normalize_inputs``: predictor inputs are layer-normed (V-JEPA 2-AC ``normalize_reps``).
    ``autocast``: bf16 autocast for predictor calls (3-5x faster matmuls on CPUs with AMX).
    ``reference``: score the official V-JEPA 2 way (fp32, whole prefix re-run each imagined step,
    per-call RoPE); the benchmark's baseline, same plans within bf16 tolerance but several times slower.
    ``compile``: ``torch.compile`` the predictor's cached unroll step for large searches (~25%
    faster after a one-off compile of 15-30 s; searches under ``COMPILE_MIN_NUMEL`` activations per
    step, e.g. <= 250 samples at the default size, stay eager; falls back to eager if compiling fails).
    ``search``: ``"cem"`` searches with the world model; ``"none"`` executes the learned proposal's plan
    with no search at all (the world model is not called; needs a proposal). A task whose search only
    overrides its proposal can record ``"none"`` as its setting, like any other search size.
    ``ensemble_plans``: with ``search="none"`` and one action executed per plan, the action executed is the
    mean of what the last ``ensemble_plans`` proposals planned for this step (temporal ensembling of
    action chunks, as in ACT): the plan made ``j`` steps ago contributes its ``j``-th action. 1: off. A
    search (``"cem"``) does not use it, so ``search="cem"`` works on a task whose recorded setting has it.
    """

    cem: CEMConfig = field(default_factory=CEMConfig)
    energy: EnergyConfig = field(default_factory=EnergyConfig)
    context_frames: int = 1
    execute_steps: int = 1
    normalize_inputs: bool = True
    autocast: bool = True
    reference: bool = False
    compile: bool = True
    search: str = "cem"
    ensemble_plans: int = 1

    def validate(self) -> None:
        self.cem.validate()
        if self.search not in SEARCHES:
            raise PlannerConfigError(f"search={self.search!r} is unknown; use one of {', '.join(SEARCHES)}")
        if self.energy.metric not in ("l1", "l2"):
            raise PlannerConfigError(f"energy metric {self.energy.metric!r} is unknown; use 'l1' or 'l2'")
        if self.energy.state_weight < 0:
            raise PlannerConfigError(f"state_weight={self.energy.state_weight} must be >= 0")
        if self.context_frames < 1:
            raise PlannerConfigError(f"context_frames={self.context_frames} must be >= 1")
        if self.ensemble_plans < 1 or (self.search == "none" and self.ensemble_plans > 1 and not (
                self.execute_steps == 1 and self.ensemble_plans <= self.cem.horizon)):
            raise PlannerConfigError(f"ensemble_plans={self.ensemble_plans} averages the proposal's plans: it needs "
                                     f"execute_steps=1 and at most the horizon ({self.cem.horizon}) plans")
        if not 1 <= self.execute_steps <= self.cem.horizon:
            raise PlannerConfigError(
                f"execute_steps={self.execute_steps} must be between 1 and the horizon ({self.cem.horizon})"
            )

    @classmethod
    def from_flat(cls, *layers: dict[str, Any] | None) -> "PlannerConfig":
        """Build from flat ``{name: value}`` dicts (later layers win), routing each name to its sub-config.

        Unknown names raise :class:`PlannerConfigError` listing the valid ones, so a typo in a CLI
        flag or a model's tuned defaults is not silently ignored.
        """
        cfg = cls()
        owners = {f.name: cfg.cem for f in dataclasses.fields(CEMConfig)}
        owners.update({f.name: cfg.energy for f in dataclasses.fields(EnergyConfig)})
        owners.update({f.name: cfg for f in dataclasses.fields(cls) if f.name not in ("cem", "energy")})
        for layer in layers:
            for key, value in (layer or {}).items():
                if value is None:
                    continue
                name = ALIASES.get(key, key)
                if name not in owners:
                    raise PlannerConfigError(f"unknown planner setting {key!r}; valid: {', '.join(sorted(owners))}")
                owner = owners[name]
                current = getattr(owner, name)
                if isinstance(current, bool):
                    value = bool(value)
                elif isinstance(current, int):
                    value = int(value)
                elif isinstance(current, float):
                    value = float(value)
                setattr(owner, name, value)
        cfg.validate()
        return cfg

    @classmethod
    def known_names(cls) -> set[str]:
        names = {f.name for f in dataclasses.fields(CEMConfig)} | {f.name for f in dataclasses.fields(EnergyConfig)}
        return names | {f.name for f in dataclasses.fields(cls) if f.name not in ("cem", "energy")} | set(ALIASES)

    def to_flat(self) -> dict[str, Any]:
        flat = dataclasses.asdict(self.cem) | dataclasses.asdict(self.energy)
        flat.update({k: v for k, v in dataclasses.asdict(self).items() if k not in ("cem", "energy")})
        return flat


@dataclass
class PlanResult:
    """``actions [H, A]`` float32; ``energy`` of that plan; ``iteration_energies`` per CEM iteration;
    ``predictor_calls`` made while planning. ``cem`` is None for a plan no search made (``search="none"``)."""

    actions: np.ndarray
    energy: float
    iteration_energies: list[float]
    predictor_calls: int
    cem: CEMResult | None


class LatentPlanner:
    """CEM over the imagined goal energy of a predictor (no encoder: works on features)."""

    def __init__(self, predictor: Predictor, advance: StateAdvancer | None, config: PlannerConfig | None = None) -> None:
        self.predictor = predictor
        self.advance = advance
        self.config = config or PlannerConfig()
        self.config.validate()
        if self.config.compile and not self.config.reference and callable(getattr(predictor, "compile_decode", None)):
            predictor.compile_decode()

    def score(self, context: Context, goal_feats: torch.Tensor, goal_state: torch.Tensor | None, actions: torch.Tensor) -> torch.Tensor:
        """Energy of each candidate ``actions [S, H, A]`` -> ``[S]``."""
        cfg = self.config
        pred, states = imagine(self.predictor, context, actions, self.advance, cfg.normalize_inputs, cfg.autocast, cfg.reference)
        goal_state = None if goal_state is None else goal_state.to(pred.device)
        return energy(pred, goal_feats.to(pred.device), cfg.energy, states, goal_state).cpu()

    def score_views(self, contexts: Sequence[Context], goals: Sequence[torch.Tensor], goal_state: torch.Tensor | None,
                    actions: torch.Tensor) -> torch.Tensor:
        """Mean over cameras of each camera's energy of ``actions [S, H, A]`` -> ``[S]``."""
        return sum(self.score(c, g, goal_state, actions) for c, g in zip(contexts, goals)) / len(contexts)

    def plan(
        self,
        context: Context | Sequence[Context],
        goal_feats: torch.Tensor | Sequence[torch.Tensor],
        action_dim: int,
        goal_state: torch.Tensor | None = None,
        init_mean: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        anchor: torch.Tensor | None = None,
    ) -> PlanResult:
        """Search a plan from ``context`` towards layer-normed ``goal_feats [N, D]``.

        Several cameras: one context and one goal per camera; a plan's energy is the mean over the
        cameras of its energy in each (one predictor imagines every view). ``anchor [H, A]``: a proposed
        plan some samples are drawn around (see :func:`planning.cem.cem`).
        """
        contexts = [context] if isinstance(context, Context) else list(context)
        goals = [goal_feats] if isinstance(goal_feats, torch.Tensor) else list(goal_feats)
        if not contexts or len(contexts) != len(goals):
            raise PlannerConfigError(f"plan needs one goal per context (camera), got {len(contexts)} and {len(goals)}")
        calls = 0
        goals = [g.to(c.feats.device) for g, c in zip(goals, contexts)]  # once per plan, not per CEM iteration

        def score(actions: torch.Tensor) -> torch.Tensor:
            nonlocal calls
            calls += actions.shape[1] * len(contexts)  # imagine() makes one batched predictor call per horizon step
            return self.score_views(contexts, goals, goal_state, actions)

        res = cem(score, action_dim, self.config.cem, init_mean=init_mean, generator=generator, anchor=anchor)
        return PlanResult(res.plan.numpy().astype(np.float32), res.energy, res.iteration_energies, calls, res)
