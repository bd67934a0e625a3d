"""Seeded env episodes for the encoder probe (``simjepa probe``).

The probe itself (:mod:`world_model.probe`) is pure torch/numpy and takes its episodes as arrays;
rolling them out needs the simulator, so it lives here, on the layer that uses both ``envs`` and
``world_model``.
"""
from __future__ import annotations

import numpy as np

from simjepa_core.state_layout import GRIPPER, POS
from world_model.probe import ProbeEpisode


def collect_probe_episodes(
    env_id: str, episodes: int, seed_start: int, render_size: int, policy: str = "mixed",
    progress: bool = True,
) -> list[ProbeEpisode]:
    """Roll out ``episodes`` seeded episodes (``seed_start + i``) with ``simjepa collect``'s policies."""
    from tqdm import tqdm

    from envs import make_env, object_state
    from envs.collect import run_episode

    env = make_env(env_id, render_size=render_size)
    obj = object_state(env_id)
    max_steps = env.spec.max_episode_steps if env.spec and env.spec.max_episode_steps else 50
    out = []
    try:
        for i in tqdm(range(episodes), desc=f"probe episodes {env_id}", disable=not progress):
            ep = run_episode(env, policy, seed_start + i, max_steps)
            out.append(_probe_episode(ep.frames, ep.states, obj))
    finally:
        env.close()
    return out


def load_probe_episodes(directory: str, episodes: int | None = None, progress: bool = True) -> tuple[str, list[ProbeEpisode]]:
    """The first ``episodes`` (default: all) complete episodes of a ``simjepa collect`` dataset, and its env id.

    Why: probing several encoders on the same episodes should not roll them out again each time (at
    64 px, collecting 300 episodes costs more than encoding them), and a dataset on disk makes the
    "never used in pretraining" seeds explicit in its manifest.
    """
    from tqdm import tqdm

    from envs import object_state
    from simjepa_core.episodes import DatasetError, complete_episode_indices, load_episode, read_manifest

    manifest = read_manifest(directory)
    indices = complete_episode_indices(directory)
    if episodes is not None:
        if len(indices) < episodes:
            raise DatasetError(f"{directory} has {len(indices)} complete episodes, fewer than the {episodes} asked for; "
                               f"collect more or lower --episodes")
        indices = indices[:episodes]
    env_id = manifest["env_id"]
    obj = object_state(env_id)
    out = []
    for i in tqdm(indices, desc=f"probe episodes {directory}", disable=not progress):
        ep = load_episode(directory, i)
        out.append(_probe_episode(ep.frames, ep.states, obj))
    return env_id, out


def _probe_episode(frames: np.ndarray, states: np.ndarray, obj: slice | None) -> ProbeEpisode:
    states = states.astype(np.float64)
    return ProbeEpisode(frames=frames, ee=states[:, POS], obj=None if obj is None else states[:, obj],
                        gripper=states[:, GRIPPER:GRIPPER + 1] if states.shape[1] > GRIPPER else None)
