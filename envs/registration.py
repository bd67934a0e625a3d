"""Gymnasium registration of our ids and the single env factory :func:`make_env`."""
from __future__ import annotations

import difflib

import gymnasium as gym

from simjepa_core.errors import SimjepaError

ENV_IDS = ("simjepa/Reach-v0", "simjepa/Push-v0", "simjepa/PickPlace-v0")
_ENTRY_POINTS = {
    "simjepa/Reach-v0": ("envs.tasks:ReachEnv", 30),
    "simjepa/Push-v0": ("envs.tasks:PushEnv", 60),
    "simjepa/PickPlace-v0": ("envs.tasks:PickPlaceEnv", 80),
}


class UnknownEnvError(SimjepaError):
    """An env id that Gymnasium does not know."""


def register_envs() -> None:
    """Register the simjepa ids (idempotent)."""
    for env_id, (entry, steps) in _ENTRY_POINTS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry, max_episode_steps=steps)


def object_state(env_id: str) -> slice | None:
    """Where the state of ``env_id``'s observations holds the task's object position (the cube's centre), or
    ``None`` for an env without one (Reach, Reacher-v5, most adapted Gymnasium envs; Pusher-v5 has its object).
    Labels only (``train-proposal --locate-object``, the object targets of ``simjepa probe``): no planner reads it."""
    if env_id not in _ENTRY_POINTS:
        from .adapter import OBJECT_STATE

        return OBJECT_STATE.get(env_id)
    import importlib

    module, cls = _ENTRY_POINTS[env_id][0].split(":")
    return getattr(importlib.import_module(module), cls).object_state


def make_env(env_id: str, render_size: int = 256, max_episode_steps: int | None = None, **kw) -> gym.Env:
    """Our env for a simjepa id, else the adapted Gymnasium MuJoCo env; same observation dict either way.

    Unknown ids raise :class:`UnknownEnvError` naming close matches.
    """
    register_envs()
    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"use one of {', '.join(ENV_IDS)}"
        raise UnknownEnvError(f"unknown env id {env_id!r}; {hint}")
    if max_episode_steps is not None and (isinstance(max_episode_steps, bool) or int(max_episode_steps) < 1):
        raise SimjepaError(f"max_episode_steps must be a positive integer, got {max_episode_steps!r}")
    if env_id in _ENTRY_POINTS:
        from envs.arm import check_render_size

        check_render_size(render_size)
        extra = {} if max_episode_steps is None else {"max_episode_steps": int(max_episode_steps)}
        return gym.make(env_id, render_size=render_size, **extra, **kw)
    from envs.adapter import GymMujocoAdapter

    cameras = kw.pop("cameras", None)
    cameras = ("front",) if cameras is None else tuple([cameras] if isinstance(cameras, str) else cameras)
    if len(cameras) != 1:
        raise SimjepaError(f"{env_id} renders a single view; cameras={cameras!r} needs one of our envs "
                           f"({', '.join(ENV_IDS)})")
    kw.setdefault("camera", cameras[0])  # "front": the adapter's default view for this env (envs.adapter)
    return GymMujocoAdapter.make(env_id, render_size=render_size, max_episode_steps=max_episode_steps, **kw)
