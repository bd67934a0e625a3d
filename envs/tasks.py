"""The three tabletop tasks. Each class docstring is the task's specification.

Shared by all three (see :class:`envs.arm.ArmEnv`):

## Action space
``Box(-1, 1, (7,), float32)``; ``env.unwrapped.action_scale`` converts to physical units.

| Num | Action                          | Scale (per step)  | Unit        |
|-----|---------------------------------|-------------------|-------------|
| 0-2 | dx, dy, dz of the TCP (world)   | 0.03              | m           |
| 3-5 | droll, dpitch, dyaw (Euler xyz) | 0.15              | rad         |
| 6   | gripper command (absolute)      | 1.0               | -1 open, +1 closed |

The target pose is the *measured* TCP pose plus the scaled delta, clipped to the workspace
(x in [-0.22, 0.3], y in [-0.3, 0.3], z in [0.022, 0.42] m; roll, pitch in [-0.6, 0.6],
yaw in [-1.6, 1.6] rad). Control runs at 10 Hz (25 physics steps of 4 ms).

## Observation space
``Dict(pixels=Box(0, 255, (S, S, 3), uint8), state=Box(-inf, inf, (D,), float32))``, pixels from the
fixed ``front`` camera. ``make_env(..., cameras=("front", "side"))`` renders more views: ``pixels`` is
the first camera's frame and each further camera ``c`` adds ``pixels_c`` (e.g. ``pixels_side``, from
the right-hand side of the table; two-view world models plan with both). ``state[:7]`` = TCP
position (3, m, world), orientation (3, Euler xyz, rad), gripper closure (1, -1 open .. +1 closed,
measured from the finger joints); the rest is task information listed per class.

## Reward, episode end
Reward is ``-distance`` (the planner ignores it). Episodes never terminate (success does not end
them, as in Reacher-v5: a planner keeps acting); they are truncated by ``max_episode_steps``.

## Info
Every ``reset`` and ``step``: ``success`` (bool) and ``distance`` (float, m). ``reset`` also
returns ``info["goal"] = {"pixels", "state"}`` (plus ``pixels_c`` for further cameras), rendered from
the goal configuration with the same cameras; the sim is restored afterwards.

## Version history
* v0: initial release. Later added, with the default rendering unchanged: the ``cameras`` option.
  Changed: Push's goal image shows the partly closed hand turned across the push (was: closed, yaw 0),
  the pose its expert now pushes in.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

import gymnasium as gym
import mujoco
import numpy as np

from envs import scene
from envs.arm import ArmEnv
from envs.proprio import mat_to_euler
from simjepa_core.state_layout import PROPRIO_DIM

NEUTRAL_EULER = np.zeros(3)
HOME_POS = np.array([0.0, 0.0, 0.2])

# Task information after the proprioception in ``obs["state"]`` (what the experts read; never the planner).
REACH_GOAL = slice(PROPRIO_DIM, PROPRIO_DIM + 3)  # Reach: goal TCP position (m)
CUBE_POS = slice(PROPRIO_DIM, PROPRIO_DIM + 3)  # Push, PickPlace: cube centre (m)
CUBE_EULER = slice(PROPRIO_DIM + 3, PROPRIO_DIM + 6)  # cube orientation, Euler xyz (rad)
CUBE_YAW = PROPRIO_DIM + 5
TARGET_POS = slice(PROPRIO_DIM + 6, PROPRIO_DIM + 9)  # where the cube centre must end up (m)


@dataclass(frozen=True)
class TaskSpec:
    """What planning knows about a task, in one place (each env class's ``task_spec``).

    ``name``: the task's short name (``env.unwrapped.task``; the scene and the expert are chosen by it).
    ``subgoal_names``: the expert-replay sub-goals in planning order (``envs.experts.demo_subgoals``);
    empty for tasks planned in one go. ``subgoal_steps``: steps the privileged expert-replay protocol
    spends on each sub-goal but the last. Only search-size knowledge belongs here, never a rule that
    sets an action dimension.
    """

    name: str
    subgoal_names: tuple[str, ...] = ()
    subgoal_steps: int | None = None

    @property
    def phased(self) -> bool:
        """Solved in phases (go round or pick up the cube first) that one greedy plan cannot see."""
        return bool(self.subgoal_names)


def task_spec(env_id: str) -> TaskSpec | None:
    """The :class:`TaskSpec` of a registered env id; None for envs without one (e.g. adapted Gymnasium envs)."""
    from envs.registration import register_envs

    register_envs()
    try:
        entry = gym.spec(env_id).entry_point
    except gym.error.Error:
        return None
    if isinstance(entry, str):
        module, _, name = entry.partition(":")
        try:
            entry = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            return None
    return getattr(entry, "task_spec", None)


def _start_arm(env: ArmEnv, rng: np.random.Generator) -> None:
    """Random start near home: +-5 cm in x/y, +-3 cm in z, gripper open, pointing down."""
    offset = rng.uniform([-0.05, -0.05, -0.03], [0.05, 0.05, 0.03])
    env.set_arm_pose(HOME_POS + offset, NEUTRAL_EULER, gripper=-1.0)


class ReachEnv(ArmEnv):
    """Move the gripper to a goal point shown only by the goal image.

    ## Description
    A 7-joint arm with Franka Panda proportions stands at the back of a table. The goal is a TCP
    position drawn in the free space above the table; the goal image shows the arm holding the
    TCP there (pointing down, gripper open). No marker is drawn: the arm *is* the goal.

    ## Observation
    ``state`` has 10 entries: ``[0:7]`` proprio (see module doc), ``[7:10]`` goal TCP position (m).

    ## Starting state
    TCP at (0, 0, 0.2) m plus U(+-0.05, +-0.05, +-0.03) m, pointing down, gripper open.
    Goal: x ~ U(-0.15, 0.22), y ~ U(-0.22, 0.22), z ~ U(0.05, 0.3) m, redrawn until at least 0.1 m
    from the start.

    ## Success
    ``distance`` = |TCP - goal| (m); ``success`` when below 0.05 m.

    ## Episode end
    Truncated after 30 steps by default (``max_episode_steps``).
    """

    task_spec = TaskSpec("reach")
    task = task_spec.name
    default_max_steps = 30
    task_state_dim = 3

    def _sample_task(self, rng: np.random.Generator) -> None:
        _start_arm(self, rng)
        start = self.tcp_pose()[0]
        while True:
            goal = rng.uniform([-0.15, -0.22, 0.05], [0.22, 0.22, 0.3])
            if np.linalg.norm(goal - start) >= 0.1:
                break
        self.goal_pos = goal

    def _task_state(self) -> np.ndarray:
        return self.goal_pos.astype(np.float32)

    def _distance(self) -> float:
        return float(np.linalg.norm(self.tcp_pose()[0] - self.goal_pos))

    def _goal_configuration(self) -> None:
        self.set_arm_pose(self.goal_pos, NEUTRAL_EULER, gripper=-1.0)


class _CubeTask(ArmEnv):
    task_state_dim = 9
    object_state = slice(7, 10)  # the cube's centre
    target_z = scene.CUBE_HALF  # height of the cube centre when it sits on the target

    def _place_cube(self, xy: np.ndarray, yaw: float) -> None:
        adr = self.model.jnt_qposadr[self.model.joint("cube").id]
        self.data.qpos[adr : adr + 3] = [xy[0], xy[1], scene.CUBE_HALF]
        self.data.qpos[adr + 3 : adr + 7] = [np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]
        self.data.qvel[self.model.jnt_dofadr[self.model.joint("cube").id] :][:6] = 0.0

    def _set_target(self, xy: np.ndarray) -> None:
        self.target_xy = np.asarray(xy, dtype=np.float64)
        self.data.mocap_pos[0] = [xy[0], xy[1], 0.0]

    @property
    def target_pos(self) -> np.ndarray:
        """Where the cube centre must end up [3] (m)."""
        return np.array([self.target_xy[0], self.target_xy[1], self.target_z])

    def cube_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Cube centre [3] (m) and Euler xyz [3] (rad)."""
        body = self.model.body("cube").id
        return self.data.xpos[body].copy(), mat_to_euler(self.data.xmat[body].reshape(3, 3))

    def _task_state(self) -> np.ndarray:
        pos, euler = self.cube_pose()
        return np.concatenate([pos, euler, self.target_pos]).astype(np.float32)

    def _distance(self) -> float:
        return float(np.linalg.norm(self.cube_pose()[0] - self.target_pos))

    def _sample_layout(self, rng: np.random.Generator, min_d: float, max_d: float) -> None:
        _start_arm(self, rng)
        while True:
            cube = rng.uniform([-0.1, -0.15], [0.15, 0.15])
            angle = rng.uniform(-np.pi, np.pi)
            target = cube + rng.uniform(min_d, max_d) * np.array([np.cos(angle), np.sin(angle)])
            tcp_xy = self.tcp_pose()[0][:2]
            if (
                -0.12 <= target[0] <= 0.2
                and abs(target[1]) <= 0.2
                and np.linalg.norm(cube - tcp_xy) > 0.06  # do not start with the cube under the fingers
            ):
                break
        self._place_cube(cube, rng.uniform(-0.4, 0.4))
        self._set_target(target)


class PushEnv(_CubeTask):
    """Push the red cube onto the green pad.

    ## Description
    A 5 cm red cube lies on the table; a flat translucent green pad (radius 5 cm, visual only,
    no collision) marks the target. The cube can be pushed with the fingers (any contact works).

    ## Observation
    ``state`` has 16 entries: ``[0:7]`` proprio, ``[7:10]`` cube centre (m), ``[10:13]`` cube
    orientation (Euler xyz, rad), ``[13:16]`` target position of the cube centre (m).

    ## Starting state
    Arm as in Reach. Cube at x ~ U(-0.1, 0.15), y ~ U(-0.15, 0.15) m, yaw ~ U(-0.4, 0.4) rad;
    target 0.1-0.2 m from the cube in a uniformly random direction, inside the workspace.

    ## Goal image
    Cube on the target, the gripper partly closed just behind it (on the side it was pushed from), TCP
    at cube height, the hand turned so the fingers spread across the push direction
    (``scene.pusher_yaw``): where :class:`envs.experts.PushExpert`'s push ends.

    ## Success
    ``distance`` = |cube centre - target| (m); ``success`` when below 0.05 m.

    ## Episode end
    Truncated after 60 steps by default.
    """

    # Expert-replay sub-goals: above, behind (lowered), the env's goal. 10 steps each was tuned on seeds
    # 500-509 (docs: "Closed-loop results"): the expert reaches above / behind in 3-6 and 2 steps.
    task_spec = TaskSpec("push", subgoal_names=("above", "behind", "goal"), subgoal_steps=10)
    task = task_spec.name
    default_max_steps = 60

    def _sample_task(self, rng: np.random.Generator) -> None:
        self._sample_layout(rng, 0.1, 0.2)
        mujoco.mj_forward(self.model, self.data)  # body positions follow qpos only after a forward pass
        self._push_from = self.cube_pose()[0][:2]

    def _goal_configuration(self) -> None:
        d = self.target_xy - self._push_from
        d /= np.linalg.norm(d)
        behind = self.target_xy - d * (scene.CUBE_HALF + 0.02)  # where PushExpert stops, posed as it pushes
        self.set_arm_pose([behind[0], behind[1], scene.CUBE_HALF], [0.0, 0.0, scene.pusher_yaw(d)], gripper=scene.PUSHER_GRIP)
        self._place_cube(self.target_xy, 0.0)
        mujoco.mj_forward(self.model, self.data)


class PickPlaceEnv(_CubeTask):
    """Pick up the red cube and place it on the raised green platform.

    ## Description
    A 5 cm red cube lies on the table; a solid green platform (10 x 10 cm, 6 cm high) stands
    0.15-0.25 m away. The target is the cube resting on the platform's centre, 6 cm above the
    table, so pushing cannot solve the task: the cube must be grasped, carried and released.

    ## Observation
    As Push: 16 entries, ``[13:16]`` = target cube centre on the platform (m).

    ## Starting state
    Arm as in Reach, gripper open. Cube at x ~ U(-0.1, 0.15), y ~ U(-0.15, 0.15) m,
    yaw ~ U(-0.4, 0.4) rad; platform 0.15-0.25 m from the cube.

    ## Goal image
    Cube on the platform centre; the arm 6 cm above it, pointing down, gripper open (after release).

    ## Success
    ``distance`` = |cube centre - target| (m); ``success`` when below 0.05 m (a cube on the table
    is at least 6 cm below the target, so it never counts).

    ## Episode end
    Truncated after 80 steps by default.
    """

    task_spec = TaskSpec("pickplace", subgoal_names=("above", "down", "grasp", "lift", "place"), subgoal_steps=10)
    task = task_spec.name
    default_max_steps = 80
    target_z = 2 * scene.PLATFORM_HALF[2] + scene.CUBE_HALF

    def _sample_task(self, rng: np.random.Generator) -> None:
        self._sample_layout(rng, 0.15, 0.25)

    def _goal_configuration(self) -> None:
        self._set_target(self.target_xy)
        above = self.target_pos + np.array([0.0, 0.0, 0.06])
        self.set_arm_pose(above, NEUTRAL_EULER, gripper=-1.0)
        adr = self.model.jnt_qposadr[self.model.joint("cube").id]
        self.data.qpos[adr : adr + 3] = self.target_pos
        self.data.qpos[adr + 3 : adr + 7] = [1.0, 0.0, 0.0, 0.0]
        mujoco.mj_forward(self.model, self.data)
