"""Closed-loop episodes: reset, then act / step until success, truncation or a step budget."""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .agent import Agent
from .errors import PlannerConfigError


def _reset_policy(agent: Any, env: Any, seed: int) -> None:
    if isinstance(agent, Agent):
        scale = getattr(env.unwrapped, "action_scale", None)  # our arm's envs: the 7-D action's maxima
        space = getattr(env, "action_space", None)
        box = None
        if scale is None and getattr(space, "low", None) is not None:  # any other action space: search its box
            box = (float(np.max(space.low)), float(np.min(space.high)))  # the box every dim allows (exact if uniform)
        agent.reset(action_scale=scale, action_box=box)
    elif hasattr(agent, "reset"):
        try:
            agent.reset(seed=seed)
        except TypeError:
            agent.reset()


def view_panel(obs: dict[str, np.ndarray]) -> np.ndarray:
    """The frame a video shows for ``obs``: ``pixels``, with any further camera (``pixels_<name>``) below it."""
    extra = sorted(k for k in obs if k.startswith("pixels_"))
    return np.concatenate([obs["pixels"], *(obs[k] for k in extra)], axis=0) if extra else obs["pixels"]


def goal_images(goal: Any) -> Any:
    """The image entries of a goal dict (``pixels`` and ``pixels_<camera>``): all the image-goal protocol sees.
    A goal that is already an image is returned as it is."""
    if not isinstance(goal, Mapping):
        return goal
    return {k: v for k, v in goal.items() if k == "pixels" or k.startswith("pixels_")}


def rollout(
    env: Any,
    agent: Any,
    seed: int,
    max_steps: int | None = None,
    subgoals: Sequence[dict[str, np.ndarray]] | None = None,
    subgoal_threshold: float | None = None,
    subgoal_steps: int | None = None,
    stop_on_success: bool = True,
    record: bool = False,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    privileged_goal_state: bool = False,
) -> dict[str, Any]:
    """Run one episode of ``agent`` (anything with ``act(obs, goal)``) in ``env`` from ``reset(seed)``.

    The policy is handed only the goal's images (``pixels``, ``pixels_<camera>``): the image-goal
    protocol. ``privileged_goal_state`` hands it the goal's ``state`` too (a privileged protocol).
    ``subgoals``: goal dicts planned through in order (e.g. an expert demo's, `envs.experts.demo_subgoals`);
    the agent moves to the next one when its plan energy falls under ``subgoal_threshold`` or after
    ``subgoal_steps`` steps on the current one. Success and distance always come from the env's own
    goal. Returns ``success`` (reached at any step; the episode stops there when ``stop_on_success``),
    ``final_distance``, ``steps``, ``seconds_per_action`` (mean wall time of ``act``), per-step
    ``energy`` (None for policies without one), ``distance`` and ``subgoal`` lists; with ``record``
    also ``frames``: a list of ``(observation pixels, goal pixels)`` including the initial frame (with
    several cameras, each a :func:`view_panel` of the views stacked top to bottom).
    """
    if subgoals is not None and len(subgoals) == 0:
        raise PlannerConfigError("subgoals is an empty list; pass None to plan towards the env's goal")
    if max_steps is not None and max_steps < 1:
        raise PlannerConfigError(f"max_steps={max_steps} must be >= 1")
    obs, info = env.reset(seed=seed)
    _reset_policy(agent, env, seed)
    goals = list(subgoals) if subgoals is not None else [info["goal"]]
    given = [g if privileged_goal_state else goal_images(g) for g in goals]  # what the policy may see
    current, on_current = 0, 0
    success = bool(info.get("success", False))
    distance = initial_distance = float(info.get("distance", float("nan")))
    energies: list[float | None] = []
    distances: list[float] = []
    subgoal_idx: list[int] = []
    act_seconds: list[float] = []
    frames = [(view_panel(obs), view_panel(goals[current]))] if record else None
    step = 0
    while not (success and stop_on_success) and (max_steps is None or step < max_steps):
        t0 = time.perf_counter()
        action = agent.act(obs, given[current])
        act_seconds.append(time.perf_counter() - t0)
        energy = getattr(agent, "last_energy", None)
        obs, _, terminated, truncated, info = env.step(action)
        step += 1
        on_current += 1
        success = success or bool(info.get("success", False))
        distance = float(info.get("distance", float("nan")))
        energies.append(None if energy is None else float(energy))
        distances.append(distance)
        subgoal_idx.append(current)
        if frames is not None:
            frames.append((view_panel(obs), view_panel(goals[current])))
        if on_step is not None:
            on_step({"step": step, "energy": energies[-1], "distance": distance, "success": success, "subgoal": current})
        if current + 1 < len(goals):
            reached = subgoal_threshold is not None and energy is not None and energy < subgoal_threshold
            if reached or (subgoal_steps is not None and on_current >= subgoal_steps):
                current, on_current = current + 1, 0
                if isinstance(agent, Agent):
                    agent.clear_plan()
        if terminated or truncated:
            break
    out: dict[str, Any] = {
        "seed": int(seed),
        "success": bool(success),
        "final_distance": distance,
        "initial_distance": initial_distance,
        "steps": step,
        "seconds_per_action": float(np.mean(act_seconds)) if act_seconds else 0.0,
        "energy": energies,
        "distance": distances,
        "subgoal": subgoal_idx,
    }
    if frames is not None:
        out["frames"] = frames
    return out
