"""One MPC planning step: score candidate action sequences by imagined goal energy, search with CEM."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .cem import YAW_DIM, CEMConfig, CEMResult, cem, gripper_dims, initial_mean
from .energy import EnergyConfig, energy
from .errors import InvalidObservationError, PlannerConfigError
from .imagine import Context, imagine
from .protocols import Predictor, StateAdvancer

# Short names accepted by CLIs and ``Agent.from_pretrained(**overrides)``, and the official planner's names.
ALIASES = {"iters": "iterations", "energy": "metric", "steps_per_plan": "execute_steps", "cem_steps": "iterations", "rollout": "horizon"}


@dataclass
class PlannerConfig:
    """Everything the agent's planner is tuned by.

    ``context_frames``: observed frames given to the predictor (1 = the current frame, as the
    official planner). ``execute_steps``: MPC executes this many planned actions before re-planning.
    ``normalize_inputs``: predictor inputs are layer-normed (V-JEPA 2-AC ``normalize_reps``).
    ``autocast``: bf16 autocast for predictor calls (3-5x faster matmuls on CPUs with AMX).
    ``reference``: score the official V-JEPA 2 way (fp32, whole prefix re-run each rollout step,
    per-call RoPE); the benchmark's baseline, same plans within bf16 tolerance but several times slower.
    ``compile``: ``torch.compile`` the predictor's cached rollout step for large searches (~25%
    faster after a one-off compile of 15-30 s; searches under ``COMPILE_MIN_NUMEL`` activations per
    step, e.g. <= 250 samples at the default size, stay eager; falls back to eager if compiling fails).
    ``gripper_from_goal``: do not search the gripper; hold its command at the goal's own gripper state
    (closed where ``goal_state[6] > -0.5``, else open). The small default encoder barely sees the
    fingers, so a searched gripper wanders with the sampling noise (on PickPlace it closed on top of
    the cube before the arm was down); with demo sub-goals the gripper then follows the demonstration
    while the energy plans the arm. Needs the goal's state.
    ``yaw_from_goal``: turn the hand towards the goal's yaw (``goal_state[5]``) at up to full rate
    instead of holding rotation at 0 (rotation stays out of the search either way). Push sub-goals
    show the hand turned so the fingers spread across the push (``envs.scene.pusher_yaw``); at yaw 0
    a push along y meets the cube with one finger's edge and turns it off the line. Needs the goal's
    state and the kinematic model (the agent's ``action_scale``) for the yaw one action turns.
    """

    cem: CEMConfig = field(default_factory=CEMConfig)
    energy: EnergyConfig = field(default_factory=EnergyConfig)
    context_frames: int = 1
    execute_steps: int = 1
    normalize_inputs: bool = True
    autocast: bool = True
    reference: bool = False
    compile: bool = True
    gripper_from_goal: bool = False
    yaw_from_goal: bool = False

    def validate(self) -> None:
        self.cem.validate()
        if self.energy.metric not in ("l1", "l2"):
            raise PlannerConfigError(f"energy metric {self.energy.metric!r} is unknown; use 'l1' or 'l2'")
        if self.energy.state_weight < 0:
            raise PlannerConfigError(f"state_weight={self.energy.state_weight} must be >= 0")
        if self.yaw_from_goal and not self.cem.translation_only:
            raise PlannerConfigError("yaw_from_goal plans the rotation itself; it needs translation_only=True")
        if self.context_frames < 1:
            raise PlannerConfigError(f"context_frames={self.context_frames} must be >= 1")
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
    ``predictor_calls`` made while planning."""

    actions: np.ndarray
    energy: float
    iteration_energies: list[float]
    predictor_calls: int
    cem: CEMResult


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
    ) -> PlanResult:
        """Search a plan from ``context`` towards layer-normed ``goal_feats [N, D]``.

        Several cameras: one context and one goal per camera; a plan's energy is the mean over the
        cameras of its energy in each (one predictor imagines every view).
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

        cem_config = self.config.cem
        gripper = gripper_dims(action_dim)
        hold_gripper = self.config.gripper_from_goal and bool(gripper)
        turn_yaw = self.config.yaw_from_goal and action_dim == 7
        if hold_gripper or turn_yaw:  # these set part of the initial mean; the search keeps them
            init_mean = initial_mean(cem_config, action_dim) if init_mean is None else init_mean.clone()
        if hold_gripper:
            if goal_state is None:
                raise InvalidObservationError("gripper_from_goal needs the goal's state (goal['state'] with the "
                                              "gripper closure at index 6); pass the env's goal dict")
            init_mean[:, gripper] = 1.0 if float(goal_state[gripper[0]]) > -0.5 else -1.0
            cem_config = dataclasses.replace(cem_config, gripper_init_std=0.0)
        if turn_yaw:
            init_mean[:, YAW_DIM] = self._turn_to_goal_yaw(contexts[0].states[-1], goal_state, cem_config)
        res = cem(score, action_dim, cem_config, init_mean=init_mean, generator=generator)
        return PlanResult(res.plan.numpy().astype(np.float32), res.energy, res.iteration_energies, calls, res)

    def _turn_to_goal_yaw(self, state: torch.Tensor, goal_state: torch.Tensor | None, cem_config: CEMConfig) -> torch.Tensor:
        """dyaw actions ``[H]`` that turn from ``state``'s yaw to the goal's, as fast as the action bounds allow."""
        if goal_state is None:
            raise InvalidObservationError("yaw_from_goal needs the goal's state (goal['state'] with the yaw at "
                                          "index 5); pass the env's goal dict")
        if self.advance is None:
            raise PlannerConfigError("yaw_from_goal needs the kinematic model: give the agent the env's action_scale "
                                     "(agent.reset(action_scale=env.unwrapped.action_scale))")
        start = state.detach().cpu().numpy().astype(np.float64)
        unit = np.zeros((1, 7))
        unit[0, YAW_DIM] = 1.0
        rate = float(np.asarray(self.advance(start[None], unit))[0, YAW_DIM] - start[YAW_DIM])  # rad per unit dyaw
        if rate <= 0:
            raise PlannerConfigError(f"yaw_from_goal: the kinematic model turns {rate} rad per unit dyaw; expected > 0")
        left = float(goal_state[YAW_DIM]) - float(start[YAW_DIM])
        out = torch.zeros(cem_config.horizon)
        for k in range(cem_config.horizon):
            out[k] = float(np.clip(left / rate, cem_config.action_low, cem_config.action_high))
            left -= float(out[k]) * rate
        return out
