"""Scripted experts that solve the tasks from the true state (``obs["state"]``).

They are closed-loop and memoryless on purpose: each action is recomputed from the current state
(which phase applies is read off the state, not remembered), so an expert recovers when collection
noise or a random segment knocks it off its plan, e.g. re-approaching a cube it dropped.
Success over 50 seeds per task is in README "Environments".
"""
from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from envs import scene
from simjepa_core.errors import SimjepaError
from simjepa_core.state_layout import EULER, GRIPPER, POS, PROPRIO_DIM, YAW
from envs.tasks import CUBE_POS, CUBE_YAW, REACH_GOAL, TARGET_POS

SAFE_Z = 0.1  # m: travel height above the table, clear of the cube and the platform


def _wrap_quarter(angle: float) -> float:
    """A cube looks the same every 90 degrees: the equivalent yaw in [-pi/4, pi/4)."""
    return float((angle + np.pi / 4) % (np.pi / 2) - np.pi / 4)


@dataclass
class _Expert:
    action_scale: np.ndarray  # [7]
    phase: str = "start"

    def reset(self) -> None:
        self.phase = "start"

    def _move(self, state: np.ndarray, pos: np.ndarray, yaw: float, grip: float) -> np.ndarray:
        """Action that moves the TCP towards ``pos`` and ``yaw`` (roll, pitch to 0) at full speed."""
        a = np.zeros(PROPRIO_DIM)
        a[POS] = (np.asarray(pos) - state[POS]) / self.action_scale[POS]
        a[EULER] = (np.array([0.0, 0.0, yaw]) - state[EULER]) / self.action_scale[EULER]
        a[GRIPPER] = grip
        return np.clip(a, -1.0, 1.0).astype(np.float32)

    def act(self, obs: dict) -> np.ndarray:
        raise NotImplementedError


class ReachExpert(_Expert):
    """Straight line to the goal position, gripper open."""

    def act(self, obs: dict) -> np.ndarray:
        s = np.asarray(obs["state"], dtype=np.float64)
        self.phase = "reach"
        return self._move(s, s[REACH_GOAL], 0.0, -1.0)


class PushExpert(_Expert):
    """Get behind the cube on the cube-target line at cube height, then push along the line.

    The hand is turned so the fingers spread across the push (``scene.pusher_yaw``) before it goes
    down behind the cube, and the gripper is held partly closed (``scene.PUSHER_GRIP``): both pads meet
    the cube's back face, 2 cm apart, whatever the push direction, a front wide enough to push
    straight after a small miss and too narrow for the cube to wedge between the fingers.
    """

    def act(self, obs: dict) -> np.ndarray:
        s = np.asarray(obs["state"], dtype=np.float64)
        ee, cube, target = s[POS], s[CUBE_POS], s[TARGET_POS]
        d = target[:2] - cube[:2]
        dist = float(np.linalg.norm(d))
        if dist < 0.008:
            self.phase = "done"
            return self._move(s, ee, s[YAW], scene.PUSHER_GRIP)
        u = d / dist
        yaw = scene.pusher_yaw(u, float(s[YAW]))
        behind = cube[:2] - u * (scene.CUBE_HALF + 0.02)
        r = ee[:2] - cube[:2]
        along = float(r @ u)
        lateral = float(np.linalg.norm(r - along * u))
        low = scene.CUBE_HALF
        if along < -scene.CUBE_HALF + 0.004 and lateral < 0.02 and ee[2] < 0.05:
            self.phase = "push"
            # Aim at the spot behind the cube, advanced by up to one step: moves the cube along the
            # line and steers the pusher back onto the line as the cube turns.
            goal_xy = behind + u * min(dist, 0.03)
            return self._move(s, [goal_xy[0], goal_xy[1], low], yaw, scene.PUSHER_GRIP)
        if np.linalg.norm(ee[:2] - behind) > 0.012 or abs(yaw - s[YAW]) > 0.1:
            self.phase = "approach"  # includes turning the hand over the spot before going down
            if ee[2] < SAFE_Z - 0.03 and np.linalg.norm(r) < 0.08:
                return self._move(s, [ee[0], ee[1], SAFE_Z], yaw, scene.PUSHER_GRIP)  # clear the cube first
            z = SAFE_Z if np.linalg.norm(r) < 0.08 or ee[2] > low + 0.01 else low
            return self._move(s, [behind[0], behind[1], max(z, low)], yaw, scene.PUSHER_GRIP)
        self.phase = "descend"
        return self._move(s, [behind[0], behind[1], low], yaw, scene.PUSHER_GRIP)


class PickPlaceExpert(_Expert):
    """Open above the cube, descend, close, lift, carry over the platform, lower, release, retreat."""

    def held(self, s: np.ndarray) -> bool:
        ee, grip, cube = s[POS], s[GRIPPER], s[CUBE_POS]
        return bool(
            np.linalg.norm(cube[:2] - ee[:2]) < 0.02 and abs(cube[2] - ee[2]) < 0.02 and -0.6 < grip < 0.6
        )

    def act(self, obs: dict) -> np.ndarray:
        s = np.asarray(obs["state"], dtype=np.float64)
        ee, grip, cube, cube_yaw, target = s[POS], s[GRIPPER], s[CUBE_POS], s[CUBE_YAW], s[TARGET_POS]
        yaw = _wrap_quarter(cube_yaw)
        if np.linalg.norm(cube - target) < 0.02:
            self.phase = "release"
            if grip > -0.9 and ee[2] < target[2] + 0.02:
                return self._move(s, ee, s[YAW], -1.0)  # open in place before moving away
            return self._move(s, target + [0.0, 0.0, 0.06], 0.0, -1.0)
        if self.held(s):
            carry_z = target[2] + 0.07
            to_target = float(np.linalg.norm(target[:2] - cube[:2]))
            if to_target > 0.01:
                if ee[2] < carry_z - 0.02:
                    self.phase = "lift"
                    return self._move(s, [ee[0], ee[1], carry_z], s[YAW], 1.0)
                self.phase = "carry"
                return self._move(s, [target[0], target[1], carry_z], s[YAW], 1.0)
            self.phase = "place"
            if cube[2] > target[2] + 0.008:
                return self._move(s, [target[0], target[1], target[2] + 0.002], s[YAW], 1.0)
            return self._move(s, ee, s[YAW], -1.0)
        xy_err = float(np.linalg.norm(cube[:2] - ee[:2]))
        if grip > 0.6 or (grip > -0.6 and xy_err > 0.02):
            self.phase = "reopen"  # closed on nothing, or lost the cube: open and back off upwards
            return self._move(s, [ee[0], ee[1], max(ee[2], SAFE_Z)], s[YAW], -1.0)
        if xy_err > 0.008 or abs(yaw - s[YAW]) > 0.06:
            self.phase = "approach"
            if ee[2] < SAFE_Z - 0.03 and xy_err > 0.02:
                return self._move(s, [ee[0], ee[1], SAFE_Z], yaw, -1.0)
            return self._move(s, [cube[0], cube[1], max(ee[2], SAFE_Z - 0.03)], yaw, -1.0)
        if ee[2] - cube[2] > 0.006:
            self.phase = "descend"
            return self._move(s, [cube[0], cube[1], cube[2]], yaw, -1.0)
        self.phase = "grasp"
        return self._move(s, [cube[0], cube[1], cube[2]], yaw, 1.0)


_EXPERTS = {"reach": ReachExpert, "push": PushExpert, "pickplace": PickPlaceExpert}


def make_expert(env: gym.Env) -> _Expert:
    """The scripted expert for one of our envs (any wrapper depth), or an adapted env's own controller."""
    adapted = getattr(env, "make_expert", None)
    if callable(adapted):  # Gymnasium envs behind envs.adapter: envs.adapter_experts
        return adapted()
    task = getattr(env.unwrapped, "task", None)
    if task not in _EXPERTS:
        raise SimjepaError(
            f"no scripted expert for {env.spec.id if env.spec else type(env.unwrapped).__name__}; "
            "experts exist for simjepa/Reach-v0, simjepa/Push-v0 and simjepa/PickPlace-v0 (use --policy random)"
        )
    return _EXPERTS[task](action_scale=np.asarray(env.unwrapped.action_scale, dtype=np.float64))


# The sub-goal names and their order are each task's ``task_spec.subgoal_names`` (envs.tasks).
# The expert phase whose first action marks a sub-goal: the observation just before it is taken.
_PHASE_STARTS = {
    "push": {"above": ("descend", "push"), "behind": ("push",)},
    "pickplace": {"above": ("descend", "grasp"), "down": ("grasp",)},
}


def demo_subgoals(env_id: str, seed: int, render_size: int = 256, cameras: tuple[str, ...] = ("front",)) -> list[dict]:
    """Sub-goal observations from the expert's demonstration of ``seed``, in the order to plan through.

    One goal image cannot tell a greedy planner to move away from it first (go round the cube, lift it),
    so the phased tasks are planned through frames of the demonstration, as V-JEPA 2-AC plans
    pick-and-place through sub-goal images:

    * Push (above, behind, goal): above = the last observation of the approach, the partly closed
      gripper at travel height over the spot behind the cube, turned across the push; behind = the first observation of the push,
      lowered there; goal = the env's own goal (``info["goal"]``: the cube on the pad centre). Not the
      demonstration's last frame: the expert stops as soon as the cube is within the 5 cm of success,
      so a planner aiming at that frame fails at the slightest miss (6/10 tuning seeds against 7/10).
    * PickPlace (above, down, grasp, lift, place): above = the last observation of the approach, the
      open gripper over the cube; down = lowered round it, still open; grasp = the first observation
      with the cube held; lift = the first held one with the cube 5 cm above the table; place = the
      first successful observation (or the last one if the demonstration fails).

    Each is ``{"pixels", "state"}`` like ``info["goal"]``, plus ``pixels_<name>`` for further ``cameras``;
    They replay the expert on the true cube and target positions of ``seed``: a privileged input
    (``--subgoals expert-replay``), never the image-goal protocol. A phase the demonstration skips takes
    the next one's observation.
    """
    from envs import make_env

    env = make_env(env_id, render_size=render_size, cameras=cameras)
    spec = getattr(env.unwrapped, "task_spec", None)
    if spec is None or not spec.phased:
        env.close()
        raise SimjepaError(
            f"demo_subgoals needs a phased task (simjepa/Push-v0 or simjepa/PickPlace-v0), got {env_id}"
        )
    task, names = spec.name, spec.subgoal_names
    starts = _PHASE_STARTS[task]
    expert = make_expert(env)
    obs, info = env.reset(seed=seed)
    expert.reset()
    picked: dict[str, dict] = {"goal": info["goal"]} if task == "push" else {}
    for _ in range(env.unwrapped.default_max_steps if env.spec is None else env.spec.max_episode_steps):
        before = {k: v.copy() for k, v in obs.items()}
        action = expert.act(obs)
        for name, phases in starts.items():
            if expert.phase in phases:
                picked.setdefault(name, before)
        obs, _, term, trunc, info = env.step(action)
        s = obs["state"]
        snap = {k: v.copy() for k, v in obs.items()}
        if task == "pickplace":
            if expert.held(s):
                picked.setdefault("grasp", snap)
                if s[CUBE_POS][2] > scene.CUBE_HALF + 0.05:
                    picked.setdefault("lift", snap)
        if info["success"]:
            picked.setdefault(names[-1], snap)
            break
        if term or trunc:
            break
    env.close()
    picked.setdefault(names[-1], {k: v.copy() for k, v in obs.items()})
    for earlier, later in zip(reversed(names[:-1]), reversed(names[1:])):
        picked.setdefault(earlier, picked[later])
    return [picked[n] for n in names]
