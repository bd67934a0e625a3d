"""Seeded env episodes for the encoder probe (``simjepa probe``).

The probe itself (:mod:`world_model.probe`) is pure torch/numpy and takes its episodes as arrays;
rolling them out needs the simulator, so it lives here, on the layer that uses both ``envs`` and
``world_model``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from simjepa_core.state_layout import GRIPPER, POS
from world_model.probe import ProbeEpisode


def object_slice(env: Any) -> slice | None:
    """Where the manipulated object's position sits in ``obs["state"]``, for envs that have one.

    Our cube tasks append (cube position, cube Euler, target) after the 7 proprioceptive values
    (:class:`envs.tasks._CubeTask`); Reach appends its goal point, which is no object.
    """
    from envs.tasks import CUBE_POS

    return CUBE_POS if hasattr(env.unwrapped, "cube_pose") else None


def collect_probe_episodes(
    env_id: str, episodes: int, seed_start: int, render_size: int, policy: str = "mixed",
    progress: bool = True,
) -> list[ProbeEpisode]:
    """Roll out ``episodes`` seeded episodes (``seed_start + i``) with ``simjepa collect``'s policies."""
    from tqdm import tqdm

    from envs import make_env
    from envs.collect import run_episode

    env = make_env(env_id, render_size=render_size)
    obj = object_slice(env)
    max_steps = env.spec.max_episode_steps if env.spec and env.spec.max_episode_steps else 50
    out = []
    try:
        for i in tqdm(range(episodes), desc=f"probe episodes {env_id}", disable=not progress):
            ep = run_episode(env, policy, seed_start + i, max_steps)
            states = ep.states.astype(np.float64)
            out.append(ProbeEpisode(frames=ep.frames, ee=states[:, POS], obj=None if obj is None else states[:, obj],
                                    gripper=states[:, GRIPPER:GRIPPER + 1] if states.shape[1] > GRIPPER else None))
    finally:
        env.close()
    return out
