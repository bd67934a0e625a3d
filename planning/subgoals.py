"""Which goals the planner plans through, and the protocol label that choice gives every result.

``none`` (the default) is the image-goal protocol: the planner plans towards the env's ONE goal
image, as a user who has a photo of the finished task would. ``expert-replay`` is privileged: it
resets a second env with the evaluated seed, runs the scripted expert on the true cube and target
positions (:func:`envs.experts.demo_subgoals`) and plans through frames of that demonstration. It
shows what the world model and planner do when the hard part (where to go first) is given away; a
user cannot do that, so its results are labelled ``"expert-replay (privileged)"`` wherever they go.
"""
from __future__ import annotations

import numpy as np

from envs.tasks import task_spec

from .agent import IMAGE_GOAL
from .errors import PlannerConfigError

NONE, EXPERT_REPLAY = "none", "expert-replay"
SUBGOAL_MODES = (NONE, EXPERT_REPLAY)
PROTOCOLS = {NONE: IMAGE_GOAL, EXPERT_REPLAY: "expert-replay (privileged)"}

def check_mode(subgoals: str) -> str:
    """``subgoals`` if it names a mode, else a :class:`PlannerConfigError` listing them."""
    if subgoals not in SUBGOAL_MODES:
        raise PlannerConfigError(f"unknown sub-goal mode {subgoals!r}; use one of {', '.join(SUBGOAL_MODES)} "
                                 f"({EXPERT_REPLAY} is privileged: it replays the scripted expert on the evaluated seed)")
    return subgoals


def protocol(subgoals: str) -> str:
    """The protocol label of a sub-goal mode: ``"image-goal"`` or ``"expert-replay (privileged)"``."""
    return PROTOCOLS[check_mode(subgoals)]


def is_privileged(subgoals: str) -> bool:
    return check_mode(subgoals) != NONE


def check_subgoal_steps(subgoals: str, requested: int | None) -> None:
    """A step budget per sub-goal only means something when there are sub-goals: refuse it otherwise."""
    if requested is not None and check_mode(subgoals) == NONE:
        raise PlannerConfigError(f"--subgoal-steps applies to --subgoals {EXPERT_REPLAY} only (the image-goal "
                                 "protocol plans towards one goal image)")


def load_subgoals(subgoals: str, env_id: str, seed: int, render_size: int, cameras: tuple[str, ...] = ("front",)
                  ) -> list[dict[str, np.ndarray]] | None:
    """The goals to plan through: None for ``none`` (the env's goal image); for ``expert-replay`` the
    expert's demonstration of ``seed`` seen by ``cameras``: above / behind / goal for Push, above / down /
    grasp / lift / place for PickPlace."""
    if check_mode(subgoals) == NONE:
        return None
    spec = task_spec(env_id)
    if spec is None or not spec.phased:
        raise PlannerConfigError(f"--subgoals {EXPERT_REPLAY} needs a task solved in phases (simjepa/Push-v0, "
                                 f"simjepa/PickPlace-v0), got {env_id}; use --subgoals {NONE}")
    from envs.experts import demo_subgoals

    return list(demo_subgoals(env_id, seed, render_size, cameras))


def subgoal_steps(env_id: str, limit: int, n_goals: int, requested: int | None = None) -> int:
    """Steps on each sub-goal but the last: ``requested``, else the task's tuned budget
    (``task_spec.subgoal_steps``), never more than an even split of the ``limit`` so every sub-goal gets
    its turn in a short episode."""
    if requested is not None:
        if requested < 1:
            raise PlannerConfigError(f"--subgoal-steps {requested} must be >= 1")
        return int(requested)
    even = max(1, limit // n_goals)
    spec = task_spec(env_id)
    tuned = spec.subgoal_steps if spec is not None and spec.subgoal_steps is not None else even
    return min(tuned, even)
