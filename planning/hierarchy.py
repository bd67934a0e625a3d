"""Two-level latent planning: a macro-step model picks the next latent sub-goal, the flat planner reaches it.

Flat CEM over a 2-step horizon sees 0.2 s of the future: too little to see a push happen, so its
energy pulls the arm towards the goal image's arm pose. A macro-step model (``simjepa train
--macro-steps k``) predicts the frame k env steps ahead from a macro-action (the mean of the k
actions, the gripper's last command; :func:`world_model.data.macro_actions`). The high level runs
CEM over ``horizon`` macro-steps (k x horizon env steps ahead) against the goal image, and the
predicted features after its first macro-step become the goal of the existing low-level search.
The low level re-plans at every MPC step; the high level every ``replan_every`` env steps (1: every
MPC step, as the low level; k: once per macro-step, holding its sub-goal in between, which costs a
k-th of the high-level search; HWM, "hierarchical planning with latent world models").

:func:`load_high_level` averages the high level's energy over its macro-steps (``all_steps``): with
the last step alone, any first macro-step that can still be undone later scores the same, and the
sub-goal wanders. It starts each search from "keep still" (no warm start). When the observed frame
or the plan's first macro-step is closer to the goal than any later macro-step, the goal is within
one macro-step and the low level aims at the goal image itself.

Image-goal protocol: the high level sees exactly what the flat planner sees (the observed frames'
features, ``state[:7]``, the goal image's features).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .agent import tuned_planner_defaults
from .cem import gripper_dims, initial_mean
from .energy import feature_energy, normalize_reps
from .errors import PlannerConfigError
from .imagine import Context, imagine
from .planner import LatentPlanner, PlannerConfig, PlanResult
from .protocols import Predictor, StateAdvancer


def macro_advance(advance: StateAdvancer, macro_steps: int) -> StateAdvancer:
    """The kinematic model of one macro-step: the env's one-step model applied k times with the macro-action
    (for "pose += action * scale" that is the summed motion of the k actions the macro-action averages)."""

    def step(state: np.ndarray, action: np.ndarray) -> np.ndarray:
        for _ in range(macro_steps):
            state = advance(state, action)
        return state

    return step


@dataclass
class HighLevelResult:
    """``subgoals``: the low level's goal per camera ``[N, D]``; ``plan``: the macro-plan's search result;
    ``step_energies``: the plan's imagined energy after each macro-step (mean over cameras);
    ``arrived``: the observed frame or the plan's first macro-step is closer to the goal than any later
    step, so the goal image itself is the low level's goal (a sub-goal would only add the macro
    model's error near the goal)."""

    subgoals: list[torch.Tensor]
    plan: PlanResult
    step_energies: list[float]
    arrived: bool


class HighLevelPlanner:
    """CEM over macro-actions with a macro-step predictor; its first imagined macro-frame is the sub-goal.

    ``config``: the high level's own search (samples, iterations, horizon in macro-steps). With
    ``warm_start`` it starts from its previous macro-plan (the whole plan, not shifted: one env step
    is a fraction of a macro-step); without, from :meth:`stay`, which is then always scored, so a
    plan that moves is chosen only when it beats keeping still. ``replan_every``: env steps a
    macro-plan (and so its sub-goal) is kept before the next search.
    """

    def __init__(self, predictor: Predictor, macro_steps: int, advance: StateAdvancer | None,
                 config: PlannerConfig, identity: dict[str, Any] | None = None, replan_every: int = 1) -> None:
        if macro_steps < 2:
            raise PlannerConfigError(f"the high-level model predicts {macro_steps} env step per frame; a macro-step "
                                     "model (simjepa train --macro-steps k, k >= 2) is needed")
        if isinstance(replan_every, bool) or int(replan_every) < 1:
            raise PlannerConfigError(f"replan_every must be a positive number of env steps, got {replan_every!r}")
        self.predictor, self.macro_steps, self.config = predictor, int(macro_steps), config
        self.replan_every = int(replan_every)
        self.identity = identity or {}
        self.bind(advance)
        self.reset()

    def bind(self, advance: StateAdvancer | None) -> None:
        """Use the env's one-step kinematic model (bound to its action scale) for imagined states."""
        self.advance = None if advance is None else macro_advance(advance, self.macro_steps)
        self.planner = LatentPlanner(self.predictor, self.advance, self.config)

    def reset(self) -> None:
        """A new episode: no previous macro-plan to warm start from or to hold."""
        self._held: HighLevelResult | None = None  # the last search's result
        self._age = 0  # env steps since the held plan was made

    def stay(self, context: Context, action_dim: int) -> torch.Tensor:
        """The plan "keep still": no motion, and the 7-D action's gripper held at its measured closure."""
        plan = initial_mean(self.config.cem, action_dim)
        g = gripper_dims(action_dim, self.config.cem.arm_actions)
        plan[:, g] = context.states[-1, g].float().cpu()
        return plan

    def subgoals(self, contexts: Sequence[Context], goals: Sequence[torch.Tensor], action_dim: int,
                 generator: torch.Generator | None = None, elapsed: int = 1) -> HighLevelResult:
        """Plan macro-actions towards ``goals`` (one per camera); imagine the first one's frame per camera.

        Only the newest observed frame is used: older context frames are one env step apart, not one
        macro-step, so the macro model was never shown such a history. ``elapsed``: env steps since the
        previous call; the held plan is returned while it is younger than ``replan_every`` env steps.
        """
        if self._held is not None:
            self._age += int(elapsed)
            if self._age < self.replan_every:
                return self._held
        contexts = [Context(c.feats[-1:], c.states[-1:], c.actions[:0]) for c in contexts]
        if self.config.cem.warm_start and self._held is not None:
            init = torch.from_numpy(self._held.plan.actions)
        else:
            init = self.stay(contexts[0], action_dim)
        result = self.planner.plan(list(contexts), list(goals), action_dim, None, init, generator)
        plan = torch.from_numpy(result.actions[None])  # [1, H, A]
        cfg = self.config
        preds = [imagine(self.predictor, c, plan, self.advance, cfg.normalize_inputs, cfg.autocast)[0][0]
                 for c in contexts]  # each [H, N, D], layer-normed
        now = sum(feature_energy(normalize_reps(c.feats[-1:][None]), g.to(c.feats.device), cfg.energy.metric)
                  for c, g in zip(contexts, goals)) / len(contexts)  # [1]: the observed frame's energy
        per_step = sum(feature_energy(p[:, None], g.to(p.device), cfg.energy.metric) for p, g in zip(preds, goals))
        per_step = (per_step / len(preds)).tolist()  # [H]
        arrived = int(np.argmin([float(now), *per_step])) <= 1
        subgoals = list(goals) if arrived else [p[0] for p in preds]
        self._held, self._age = HighLevelResult(subgoals, result, per_step, arrived), 0
        return self._held


def load_high_level(path: str | Path, world_model: Any, overrides: dict[str, Any] | None = None) -> HighLevelPlanner:
    """A macro-step world model file as the high level of ``world_model``'s agent.

    It must read the same encoder's features (same weights hash) at the same token grid. Its search:
    the macro model's recorded planner defaults, then ``overrides`` (e.g. ``{"samples": 100}``; its
    ``replan_every`` key: env steps between high-level searches, default 1).
    """
    from world_model.model_file import load_world_model

    macro = load_world_model(path, with_encoder=False)
    k = int((macro.info or {}).get("macro_steps", 1))
    if k < 2:
        raise PlannerConfigError(f"{path} is a one-step model; --macro-model needs one trained with "
                                 "`simjepa train --macro-steps k` (k >= 2)")
    mine = (world_model.info or {}).get("encoder_weights_hash")
    theirs = (macro.info or {}).get("encoder_weights_hash")
    if mine and theirs and mine != theirs:
        raise PlannerConfigError(f"{path} was trained on features of another encoder ({theirs}) than the world model "
                                 f"({mine}); train the macro model on caches encoded by the same encoder")
    if tuple(macro.grid) != tuple(world_model.grid):
        raise PlannerConfigError(f"{path} predicts a {macro.grid} token grid, the world model encodes {world_model.grid}")
    overrides = dict(overrides or {})
    every = overrides.pop("replan_every", 1)
    planner = {**tuned_planner_defaults(macro.planner), "all_steps": True, "warm_start": False}
    config = PlannerConfig.from_flat(planner, overrides)
    identity = {"path": str(path), "macro_steps": k,
                "search": {n: getattr(config.cem, n) for n in ("samples", "iterations", "topk", "horizon")}}
    high = HighLevelPlanner(macro.predictor, k, None, config, identity, replan_every=every)
    if high.replan_every != 1:  # files of two-level runs that re-planned the high level at every step keep their identity
        identity["replan_every"] = high.replan_every
    return high

