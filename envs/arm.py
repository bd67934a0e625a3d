"""Shared base of the tabletop arm envs: MuJoCo model, end-effector delta control, rendering.

Control: each env step turns the action into a target TCP pose (measured pose + delta, clipped to
the workspace), solves damped-least-squares inverse kinematics for the 7 arm joints (with a
null-space pull towards a rest posture, so the redundant elbow does not drift), hands the joint
angles to stiff position servos and integrates ``SUBSTEPS`` physics steps. Using the *measured*
pose (not an accumulated target) as the base keeps contact forces bounded: pushing into the table
or the cube cannot wind up a target that is centimetres inside it.
Each step's joint motion is capped at the Franka's velocity limits (and each IK iteration's step),
so a target the stretched arm cannot reach never turns into a multi-radian swing that flings the cube.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from envs import scene
from simjepa_core.errors import SimjepaError
from envs.proprio import euler_to_mat, mat_to_euler

CONTROL_DT = 0.1  # s: 10 Hz control
SUBSTEPS = int(round(CONTROL_DT / scene.TIMESTEP))
RAMP_STEPS = 12
MIN_RENDER, MAX_RENDER = 16, 1024
# A posture with the elbow up and the gripper pointing down over the workspace; IK's null space
# pulls towards it, and it seeds the start and goal poses.
REST_QPOS = np.array([0.0, 0.45, 0.0, -2.25, 0.0, 2.7, 0.0])
# Where the TCP may be commanded: metres (world) and radians (Euler xyz).
WORKSPACE_LOW = np.array([-0.22, -0.3, 0.022, -0.6, -0.6, -scene.YAW_LIMIT])
WORKSPACE_HIGH = np.array([0.3, 0.3, 0.42, 0.6, 0.6, scene.YAW_LIMIT])
# Franka Panda joint velocity limits (rad/s). One control step may move each servo target at most
# this far (times CONTROL_DT): near the workspace edge the arm is stretched to its joint limits, where
# damped least squares returns joint jumps of several radians; stiff servos executing such a jump in
# one ramp whipped the arm at 20-40 rad/s through the scene and launched the cube metres away.
# The scripted experts never need more than ~0.21 rad per step, so they are unaffected.
JOINT_VEL_LIMIT = np.array([2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61])
MAX_JOINT_STEP = JOINT_VEL_LIMIT * CONTROL_DT  # rad per control step [7]


def _ensure_headless_gl() -> None:
    """Use EGL when there is no display, even if ``mujoco`` was imported before ``envs``.

    MuJoCo picks its GL backend from ``MUJOCO_GL`` when it is first imported; a user who imported
    mujoco (or gymnasium's MuJoCo envs) first would otherwise get GLFW, which needs an X display.
    """
    if os.environ.get("DISPLAY") or os.environ.get("MUJOCO_GL", "").lower() not in ("", "egl"):
        return
    from mujoco.rendering.classic import gl_context

    if gl_context.GLContext is None or "glfw" in getattr(gl_context.GLContext, "__module__", ""):
        from mujoco.egl import GLContext

        gl_context.GLContext = GLContext


def check_cameras(cameras: object) -> tuple[str, ...]:
    """The env's camera names as a tuple, or a one-line error naming the valid ones."""
    names = (cameras,) if isinstance(cameras, str) else tuple(cameras)  # type: ignore[arg-type]
    bad = [c for c in names if c not in scene.CAMERAS]
    if not names or bad or len(set(names)) != len(names):
        raise SimjepaError(
            f"cameras {list(names)!r} are not distinct names from {', '.join(scene.CAMERAS)}; "
            "pass e.g. ('front',) or ('front', 'side')"
        )
    return names


class InvalidActionError(SimjepaError):
    """An action that is not a finite 7-vector inside [-1, 1]."""


class InvalidRenderSizeError(SimjepaError):
    """A render size outside the supported range."""


def check_render_size(render_size: object) -> int:
    if isinstance(render_size, bool) or not isinstance(render_size, (int, np.integer)):
        raise InvalidRenderSizeError(
            f"render_size must be an integer number of pixels, got {render_size!r}; pass e.g. 64, 128 or 256"
        )
    if not MIN_RENDER <= int(render_size) <= MAX_RENDER:
        raise InvalidRenderSizeError(
            f"render_size {render_size} is outside [{MIN_RENDER}, {MAX_RENDER}]; pass e.g. 64, 128 or 256"
        )
    return int(render_size)


def check_action(action: object, shape: tuple[int, ...], low: object = -1.0, high: object = 1.0) -> np.ndarray:
    """The action as float64 clipped to [low, high], or a one-line :class:`InvalidActionError`."""
    try:
        arr = np.asarray(action, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidActionError(f"action must be numeric with shape {shape}, got {type(action).__name__}") from None
    if arr.shape != shape:
        raise InvalidActionError(f"action must have shape {shape}, got {arr.shape}; pass one action per step")
    if not np.all(np.isfinite(arr)):
        raise InvalidActionError(f"action contains NaN or inf: {np.array2string(arr, precision=3)}")
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    if np.any(arr < low - 1e-6) or np.any(arr > high + 1e-6):
        bounds = "[-1, 1]" if low.size == 1 and low == -1 and high == 1 else "the action space bounds"
        raise InvalidActionError(
            f"action outside {bounds}: {np.array2string(arr, precision=3)}; scale or clip it to the action space"
        )
    return np.clip(arr, low, high)


@dataclass
class IKSolver:
    """Damped least squares on the TCP site for the 7 arm joints, on a scratch MjData."""

    model: mujoco.MjModel
    site_id: int
    qpos_adr: np.ndarray  # [7] qpos addresses of the arm joints
    dof_adr: np.ndarray  # [7]
    low: np.ndarray
    high: np.ndarray
    damping: float = 0.01
    nullspace_gain: float = 0.05
    iters: int = 8
    # Largest joint change one iteration may take (rad): keeps the solver on the current IK branch
    # instead of leaping across a singularity (near one, DLS steps reach several radians).
    max_iter_step: float = 0.25

    def __post_init__(self) -> None:
        self.data = mujoco.MjData(self.model)
        self._jacp = np.zeros((3, self.model.nv))
        self._jacr = np.zeros((3, self.model.nv))

    def solve(self, q_init: np.ndarray, pos: np.ndarray, rot: np.ndarray, iters: int | None = None) -> np.ndarray:
        """Joint angles [7] that put the TCP at ``pos`` [3] with orientation ``rot`` [3, 3]."""
        d = self.data
        q = np.array(q_init, dtype=np.float64)
        for _ in range(iters or self.iters):
            d.qpos[self.qpos_adr] = q
            mujoco.mj_kinematics(self.model, d)
            mujoco.mj_comPos(self.model, d)  # the Jacobian needs cdof
            err_p = pos - d.site_xpos[self.site_id]
            cur = d.site_xmat[self.site_id].reshape(3, 3)
            err_r = _rot_error(cur, rot)
            mujoco.mj_jacSite(self.model, d, self._jacp, self._jacr, self.site_id)
            jac = np.vstack([self._jacp[:, self.dof_adr], self._jacr[:, self.dof_adr]])  # [6, 7]
            err = np.concatenate([err_p, err_r])
            jjt = jac @ jac.T + (self.damping**2) * np.eye(6)
            pinv = jac.T @ np.linalg.solve(jjt, np.eye(6))  # [7, 6]
            dq = pinv @ err + (np.eye(7) - pinv @ jac) @ (self.nullspace_gain * (REST_QPOS - q))
            q = np.clip(q + limit_joint_step(dq, self.max_iter_step), self.low, self.high)
        return q


def limit_joint_step(dq: np.ndarray, max_step: np.ndarray | float) -> np.ndarray:
    """``dq`` scaled down (direction kept) so no joint moves more than ``max_step``; unchanged if within."""
    ratio = float(np.max(np.abs(dq) / max_step))
    return dq if ratio <= 1.0 else dq / ratio


def _rot_error(cur: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Axis-angle vector (world frame) rotating ``cur`` onto ``target``."""
    r = target @ cur.T
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, r.reshape(-1))
    vel = np.zeros(3)
    mujoco.mju_quat2Vel(vel, quat, 1.0)
    return vel


class ArmEnv(gym.Env):
    """Base class; see the task classes in :mod:`envs.tasks` for the full spec."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": int(round(1 / CONTROL_DT))}
    task: str = ""
    default_max_steps: int = 50
    # metres/step for x, y, z; rad/step for roll, pitch, yaw; 1.0 for the absolute gripper command.
    action_scale = np.array([0.03, 0.03, 0.03, 0.15, 0.15, 0.15, 1.0], dtype=np.float32)
    task_state_dim: int = 0
    object_state: slice | None = None  # where ``state`` holds the task's object position (None: no object)

    def __init__(self, render_size: int = 256, render_mode: str | None = "rgb_array",
                 cameras: tuple[str, ...] | list[str] = ("front",)) -> None:
        self.render_size = check_render_size(render_size)
        self.cameras = check_cameras(cameras)
        if render_mode not in (None, "rgb_array"):
            raise SimjepaError(f"render_mode {render_mode!r} is not supported; use 'rgb_array' or leave it out")
        self.render_mode = render_mode
        self.model = mujoco.MjModel.from_xml_string(scene.build_scene_xml(self.task, self.render_size))
        self.data = mujoco.MjData(self.model)
        m = self.model
        self._arm_qadr = np.array([m.jnt_qposadr[m.joint(j).id] for j in scene.ARM_JOINTS])
        self._arm_dadr = np.array([m.jnt_dofadr[m.joint(j).id] for j in scene.ARM_JOINTS])
        self._finger_qadr = np.array([m.jnt_qposadr[m.joint(j).id] for j in scene.FINGER_JOINTS])
        lo, hi = m.jnt_range[[m.joint(j).id for j in scene.ARM_JOINTS]].T
        self._tcp = m.site("tcp").id
        self.ik = IKSolver(m, self._tcp, self._arm_qadr, self._arm_dadr, lo, hi)
        self._renderer: mujoco.Renderer | None = None
        self._state_spec = mujoco.mjtState.mjSTATE_INTEGRATION | mujoco.mjtState.mjSTATE_WARMSTART
        self.action_space = spaces.Box(-1.0, 1.0, (7,), np.float32)
        s = self.render_size
        frame = spaces.Box(0, 255, (s, s, 3), np.uint8)
        self.observation_space = spaces.Dict(
            {
                **{scene.pixels_key(self.cameras, i): frame for i in range(len(self.cameras))},
                "state": spaces.Box(-np.inf, np.inf, (7 + self.task_state_dim,), np.float32),
            }
        )
        self._last_pixels: np.ndarray | None = None

    # --- task hooks ----------------------------------------------------------------------------
    def _sample_task(self, rng: np.random.Generator) -> None:
        """Draw the episode's layout (goal, cube, target) and place objects."""
        raise NotImplementedError

    def _task_state(self) -> np.ndarray:
        raise NotImplementedError

    def _distance(self) -> float:
        raise NotImplementedError

    def _goal_configuration(self) -> None:
        """Put the sim into the goal configuration (state is restored by the caller)."""
        raise NotImplementedError

    success_threshold = 0.05

    # --- sim helpers ---------------------------------------------------------------------------
    def tcp_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """TCP position [3] and rotation matrix [3, 3] in the world frame."""
        return self.data.site_xpos[self._tcp].copy(), self.data.site_xmat[self._tcp].reshape(3, 3).copy()

    def gripper_closure(self) -> float:
        opening = float(np.sum(self.data.qpos[self._finger_qadr])) / (2 * scene.FINGER_MAX)
        return float(np.clip(1.0 - 2.0 * opening, -1.0, 1.0))

    def proprio(self) -> np.ndarray:
        pos, rot = self.tcp_pose()
        return np.concatenate([pos, mat_to_euler(rot), [self.gripper_closure()]]).astype(np.float32)

    def set_arm_pose(self, pos: np.ndarray, euler: np.ndarray, gripper: float) -> None:
        """Teleport the arm (joints, servo targets, fingers) to a TCP pose; velocities zeroed."""
        q = self.ik.solve(REST_QPOS, np.asarray(pos, float), euler_to_mat(np.asarray(euler, float)), iters=60)
        self.data.qpos[self._arm_qadr] = q
        self.data.qvel[self._arm_dadr] = 0.0
        self.data.ctrl[:7] = q
        fingers = scene.FINGER_MAX * (1.0 - gripper) / 2.0
        self.data.qpos[self._finger_qadr] = fingers
        self.data.ctrl[7:9] = fingers
        mujoco.mj_forward(self.model, self.data)

    def _render(self, camera: str | None = None) -> np.ndarray:
        if self._renderer is None:
            _ensure_headless_gl()
            self._renderer = mujoco.Renderer(self.model, self.render_size, self.render_size)
        self._renderer.update_scene(self.data, camera=camera or self.cameras[0])
        return self._renderer.render().copy()

    def _obs(self) -> dict[str, np.ndarray]:
        views = {scene.pixels_key(self.cameras, i): self._render(c) for i, c in enumerate(self.cameras)}
        self._last_pixels = views["pixels"]
        return {**views, "state": np.concatenate([self.proprio(), self._task_state()]).astype(np.float32)}

    def _info(self) -> dict:
        dist = self._distance()
        return {"success": bool(dist < self.success_threshold), "distance": float(dist)}

    def _save(self) -> np.ndarray:
        buf = np.empty(mujoco.mj_stateSize(self.model, self._state_spec))
        mujoco.mj_getState(self.model, self.data, buf, self._state_spec)
        return buf

    def _restore(self, buf: np.ndarray) -> None:
        mujoco.mj_setState(self.model, self.data, buf, self._state_spec)
        mujoco.mj_forward(self.model, self.data)

    # --- gymnasium API -------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        rng = self.np_random
        self._sample_task(rng)
        mujoco.mj_forward(self.model, self.data)
        saved = self._save()
        self._goal_configuration()
        goal = self._obs()
        self._restore(saved)
        obs = self._obs()
        info = self._info()
        info["goal"] = goal
        return obs, info

    def step(self, action):
        a = check_action(action, (7,))
        pos, rot = self.tcp_pose()
        euler = mat_to_euler(rot)
        target = np.concatenate([pos, euler]) + a[:6] * self.action_scale[:6]
        target = np.clip(target, WORKSPACE_LOW, WORKSPACE_HIGH)
        q_now = self.data.qpos[self._arm_qadr].copy()
        q_target = self.ik.solve(q_now, target[:3], euler_to_mat(target[3:]))
        q_target = q_now + limit_joint_step(q_target - q_now, MAX_JOINT_STEP)
        self.data.ctrl[7:9] = scene.FINGER_MAX * (1.0 - a[6]) / 2.0
        # Ramp the servo targets over the first part of the period, then hold so the joints settle:
        # the pose at the end of the step is then close to the commanded one (what advance_state assumes).
        for k in range(1, RAMP_STEPS + 1):
            self.data.ctrl[:7] = q_now + (q_target - q_now) * (k / RAMP_STEPS)
            mujoco.mj_step(self.model, self.data)
        mujoco.mj_step(self.model, self.data, nstep=SUBSTEPS - RAMP_STEPS)
        obs = self._obs()
        return obs, 0.0 - self._distance(), False, False, self._info()

    def render(self):
        if self.render_mode is None:
            return None
        return self._last_pixels if self._last_pixels is not None else self._render()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
