"""One planned episode on disk (``plan-episode``): metrics.json, episode.mp4, optional landscape.png.

(Not to be confused with ``simjepa_core.episodes``, the recorded-episode format on disk.)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from simjepa_core.atomic import write_json

from .agent import Agent
from .errors import PlannerConfigError
from .provenance import command_line, git_commit, high_level_identity, model_identity
from .rollout import rollout
from .subgoals import check_subgoal_steps, is_privileged, load_subgoals, protocol, subgoal_steps
from .video import compose_frame, write_video

def episode_video_frames(metrics: dict[str, Any]) -> list[np.ndarray]:
    """Annotated side-by-side frames: frame k shows the observation after k actions."""
    frames = metrics["frames"]
    out = []
    for k, (obs, goal) in enumerate(frames):
        energy = metrics["energy"][k - 1] if k > 0 else None
        dist = metrics["distance"][k - 1] if k > 0 else metrics.get("initial_distance")
        lines = [f"step {k}/{metrics['steps']}", "E " + ("-" if energy is None else f"{energy:.4f}"),
                 "d " + ("-" if dist is None or not np.isfinite(dist) else f"{dist:.3f} m")]
        if k > 0 and metrics.get("subgoal") and max(metrics["subgoal"]) > 0:
            lines.append(f"subgoal {metrics['subgoal'][k - 1] + 1}")
        if k == len(frames) - 1:
            lines.append("SUCCESS" if metrics["success"] else "not reached")
        out.append(compose_frame(obs, goal, lines))
    return out


def plan_episode(
    env_id: str,
    seed: int,
    model: str | Path,
    out: str | Path,
    planner_overrides: dict[str, Any] | None = None,
    max_steps: int | None = None,
    render_size: int | None = None,
    subgoals: str = "none",
    subgoal_threshold: float | None = None,
    subgoal_steps_per_goal: int | None = None,
    landscape: bool = False,
    progress: bool = True,
    agent: Agent | None = None,
    proposal: str | Path | None = None,
    macro_model: str | Path | None = None,
    macro_overrides: dict[str, Any] | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Plan one episode with the world model ``model`` and write its video and metrics into ``out``.

    ``agent``: an already built agent to use instead of loading ``model`` (its config wins).
    ``proposal``: a proposal file (``simjepa train-proposal``) that seeds every CEM search.
    ``macro_model``: a macro-step model (``simjepa train --macro-steps k``) for two-level planning, its
    search overridden by ``macro_overrides`` (:mod:`planning.hierarchy`).
    ``device``: where the world model runs (``"cuda"``: the search on a GPU; checked by :meth:`Agent.from_pretrained`).
    ``subgoals``: ``"none"`` (the image-goal protocol) or ``"expert-replay"`` (privileged; see
    :mod:`planning.subgoals`); metrics.json records the protocol either way.
    ``subgoal_steps_per_goal``: steps on each sub-goal but the last (default :func:`subgoal_steps`).
    ``render_size`` None renders at the model's input size: no resize, the frames the model saw in
    training when its data was collected at that size, and the cheapest render.
    """
    from envs.registration import make_env

    if max_steps is not None and max_steps < 1:
        raise PlannerConfigError(f"--max-steps {max_steps} must be >= 1")
    privileged = is_privileged(subgoals)  # also rejects an unknown mode before anything loads
    check_subgoal_steps(subgoals, subgoal_steps_per_goal)
    if agent is None:
        agent = Agent.from_pretrained(model, env_id=env_id, privileged_goal_state=privileged, proposal=proposal,
                                      macro_model=macro_model, macro_overrides=macro_overrides, device=device,
                                      **(planner_overrides or {}))
    if render_size is None:
        render_size = int(agent.world_model.image_size)
    env = make_env(env_id, render_size=render_size, max_episode_steps=max_steps, cameras=agent.cameras)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        goals = load_subgoals(subgoals, env_id, seed, render_size, agent.cameras)
        limit = max_steps or getattr(getattr(env, "spec", None), "max_episode_steps", None) or 100
        sub_steps = subgoal_steps(env_id, limit, len(goals), subgoal_steps_per_goal) if goals else None
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=limit, desc=f"plan {env_id} seed {seed}", unit="step", leave=False)

        def on_step(row: dict[str, Any]) -> None:
            if bar is not None:
                bar.update(1)
                bar.set_postfix(E=f"{row['energy']:.4f}" if row["energy"] is not None else "-", d=f"{row['distance']:.3f}")

        metrics = rollout(env, agent, seed, max_steps=max_steps, subgoals=goals, subgoal_threshold=subgoal_threshold,
                          subgoal_steps=sub_steps, record=True, on_step=on_step,
                          privileged_goal_state=privileged)
        if bar is not None:
            bar.close()
        if landscape:
            from .landscape import energy_landscape, plot_landscape

            obs, info = env.reset(seed=seed)
            agent.reset(action_scale=getattr(env.unwrapped, "action_scale", None))
            grid = energy_landscape(agent, obs, (goals or [info["goal"]])[0])
            plot_landscape(grid, out / "landscape.png", title=f"{env_id} seed {seed}: energy of first action")
    finally:
        env.close()
    write_video(out / "episode.mp4", episode_video_frames(metrics))
    metrics.pop("frames")
    metrics.update(env=env_id, protocol=protocol(subgoals), subgoals=subgoals, seed=int(seed),
                   command=command_line(), commit=git_commit(), model=model_identity(model, agent.world_model),
                   render_size=render_size, planner=agent.config.to_flat(),
                   n_subgoals=0 if goals is None else len(goals), subgoal_steps=sub_steps,
                   proposal=agent.proposal.identity() if hasattr(agent.proposal, "identity") else None,
                   macro_model=high_level_identity(agent))
    write_json(out / "metrics.json", metrics)
    return metrics
