"""Scripted controllers for adapted Gymnasium envs (``--policy expert`` / ``mixed`` on Reacher-v5, Pusher-v5).

Like :mod:`envs.experts` they read the true simulator state (privileged: an upper-bound baseline and
a data-collection policy, never the planner's protocol) and are memoryless apart from an optional
detour, so collection noise cannot knock them off a plan they would not recover from.

Pusher-v5 has none yet: a move-behind-the-object-then-push controller (joint-space PD towards
damped least-squares IK targets of the wrist) was tried and never got the wrist down to the
object's height behind it in 100 steps (0 of 10 tuning seeds), so ``--policy expert|mixed`` on
Pusher-v5 is a one-line error and its data comes from ``--policy random``.
"""
from __future__ import annotations

import mujoco
import numpy as np

from envs.adapter import reacher_ik
from simjepa_core.errors import SimjepaError


class ReacherExpert:
    """Closed-form IK target angles for a fingertip point, reached by PD torque control.

    ``u = clip(kp (q* - q) - kd dq, -1, 1)``; the gains were picked on tuning seeds 500-519 (success
    rate and steps to success for each pair in docs/, not here).

    ``point`` None aims at the env's target. :meth:`detour` first aims at another point for some
    steps (data collection: covers the reachable disc, not only straight lines to the target).
    """

    def __init__(self, env, kp: float = 2.0, kd: float = 0.1) -> None:
        self.base = env.unwrapped
        self.kp, self.kd = kp, kd
        self.reset()

    def reset(self) -> None:
        self.point: np.ndarray | None = None
        self.detour_left = 0

    def detour(self, point: np.ndarray, steps: int) -> None:
        self.point, self.detour_left = np.asarray(point, dtype=np.float64), int(steps)

    def act(self, obs=None) -> np.ndarray:
        data = self.base.data
        if self.detour_left > 0:
            self.detour_left -= 1
            point = self.point
        else:
            point = self.base.get_body_com("target")[:2]
        q, qd = data.qpos[:2].copy(), data.qvel[:2].copy()
        goal = reacher_ik(self.base.model, np.asarray(point) - self.base.get_body_com("body0")[:2], near=q)
        u = self.kp * (goal - q) - self.kd * qd
        return np.clip(u, -1.0, 1.0).astype(np.float32)


def make_adapter_expert(env):
    """The scripted controller of an adapted env; a one-line error for envs without one."""
    name = getattr(env, "name", "")
    if name == "Reacher":
        return ReacherExpert(env)
    env_id = env.spec.id if getattr(env, "spec", None) else name
    raise SimjepaError(f"no scripted controller for {env_id}; one exists for Reacher-v5 (use --policy random)")
