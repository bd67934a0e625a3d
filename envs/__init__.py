"""MuJoCo scenes as Gymnasium environments (simjepa/Reach-v0, Push-v0, PickPlace-v0).

``import envs`` registers the three ids with Gymnasium. :func:`make_env` is the one factory every
CLI uses: it builds our envs and wraps any other registered Gymnasium MuJoCo env (Reacher-v5,
Pusher-v5, ...) with :class:`envs.adapter.GymMujocoAdapter` so both give the same observation dict.
"""
from __future__ import annotations

import os

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")

from envs.registration import ENV_IDS, UnknownEnvError, make_env, object_state, register_envs

register_envs()

__all__ = ["ENV_IDS", "UnknownEnvError", "make_env", "object_state", "register_envs"]
