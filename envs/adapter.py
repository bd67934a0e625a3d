"""Any registered Gymnasium MuJoCo env (Reacher-v5, Pusher-v5, ...) behind our observation dict.

Spec (what every CLI, ``planning.rollout`` and the tests rely on for an adapted env):

Observation
    ``{"pixels": uint8 [S, S, 3], "state": float32 vector}``; the action space is the env's own
    (Reacher: 2 torques, Pusher: 7 torques). ``state`` is the env's observation vector, except that
    for Reacher-v5 the arm's own proprioception comes first, so that ``state[:7]`` (what the
    image-goal planner and the predictor see) holds nothing about the target:
    ``[cos q0, cos q1, sin q0, sin q1, dq0, dq1, 0, <the env's 10-entry observation>]`` (17 entries).
    Pusher-v5's observation already starts with the 7 arm joint angles (23 entries, unchanged).

Goal (``reset(seed)`` returns ``info["goal"] = {"pixels", "state"}``)
    Built from the episode's own start state, which is saved and restored (``mj_getState`` /
    ``mj_setState``): the start observation is bit-identical to a plain ``env.reset(seed=seed)``.

    - Reacher-v5: the task solved. The arm's joint angles are set by closed-form two-link inverse
      kinematics (link lengths read from the model: body1's and fingertip's offsets, 0.10 and
      0.11 m) so the fingertip sits on the env's target (< 1e-3 m; the elbow branch closer to the
      start pose), velocities zero; the frame rendered there is the goal. Targets closer than
      0.018 m to the shoulder (about 1 seed in 100) are out of reach of the elbow's +-3 rad range:
      the goal is then the closest reachable pose, within 0.012 m of the target.
    - Pusher-v5: the task solved. The object's slide joints are set so its centre sits on the goal,
      and the arm is placed (damped least-squares IK on the 7 arm joints) where a push would have
      left it: the wrist bar of ``tips_arm`` 0.08 m behind the object's centre on the line the object
      travelled, the two prongs pointing along that line on either side of it, at the object's
      height; if that IK misses by more than 0.02 m the arm stays where it started.
    - Any other env: goal = the frame reached after ``goal_steps`` (default 25) uniformly random
      actions from the reset state, drawn from a generator seeded by ``seed`` (DINO-WM's rule).

Success (``info["distance"]``, ``info["success"]`` on reset and every step)
    - Reacher-v5: fingertip to target in the plane, success below 0.02 m (the env's own task).
    - Pusher-v5: object to goal in the plane, success below 0.05 m (the env's own task).
    - Any other env: Euclidean distance between the simulator's generalised positions ``qpos``
      and the goal frame's (metres / radians; velocities excluded, a goal frame reached mid-motion
      has velocities no planner is asked to match), success below 0.05.
    ``info["goal_distance"]``: distance between the state vector and the goal's state vector.

Views (``camera=``)
    ``"front"`` (what a model trained on the default view records; the default) is the env's
    default view in the table below; ``"env"`` (or ``None``) the env's own default camera; a name
    from :data:`VIEWS` a fixed camera placed by the adapter; any other name one of the model's own
    cameras. The adapter's views make the task visible at 64 px:

    - Reacher ``"top"`` (default): straight down over the arena, framing the reachable disc
      (radius 0.21 m) with a margin. The fingertip and target spheres are drawn with radius 0.02 m
      (0.01 / 0.009 m in the model) so they cover a few pixels at 64 px; they collide with nothing
      (``contype=0``) and inertia is computed when the model is compiled, so the dynamics are
      unchanged (the tests compare trajectories with the plain env's).
    - Pusher ``"table"`` (default): an oblique view of the table from the side facing the arm, framing
      the arm's tip at its start pose, the object's start region and the goal (the object is a few
      pixels wide at 64 px; the arm does not hide it on its way from the start pose).

Rendering
    Shadow maps are drawn at :data:`SHADOW_TEXELS_PER_PIXEL` texels per frame pixel at most (never
    above the model's own ``shadowsize``): Pusher's 4096-texel map, made for 640 px windows, cost most
    of a 64 px collection's time in software rendering, and the frames barely change
    (docs/gymnasium-envs.md has the timings).
"""
from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from envs.arm import _ensure_headless_gl, check_render_size
from simjepa_core.errors import SimjepaError

# env name (without version) -> (body a, body b, success threshold in metres); distance is |a - b| in x, y.
TARGET_BODIES = {
    "Reacher": ("fingertip", "target", 0.02),
    "Pusher": ("object", "goal", 0.05),
}
DEFAULT_GOAL_STEPS = 25
GENERIC_TOLERANCE = 0.05  # qpos distance below which an env without a task of its own counts as solved
SHADOW_TEXELS_PER_PIXEL = 16  # shadow-map resolution per frame pixel: 1024 texels for a 64 px frame
PUSHER_TIP_BEHIND = 0.08  # m: wrist bar behind the object's centre: object radius 0.05 + bar radius 0.02 + 0.01
PUSHER_PRONG_REACH = 0.1  # m: tips_arm's centre of mass (between its two prongs) ahead of its frame origin
PUSHER_IK_TOLERANCE = 0.02


@dataclass(frozen=True)
class View:
    """A free camera placed by the adapter (MuJoCo ``mjvCamera`` fields) and optional marker radii."""

    lookat: tuple[float, float, float]
    distance: float
    elevation: float
    azimuth: float
    markers: tuple[tuple[str, float], ...] = ()  # (geom name, drawn radius) for contact-free spheres

    def camera_config(self) -> dict:
        return {"trackbodyid": -1, "lookat": np.array(self.lookat, dtype=np.float64), "distance": self.distance,
                "elevation": self.elevation, "azimuth": self.azimuth}


VIEWS: dict[str, dict[str, View]] = {
    "Reacher": {"top": View((0.0, 0.0, 0.0), 0.6, -90.0, 90.0, (("fingertip", 0.02), ("target", 0.02)))},
    "Pusher": {"table": View((0.6, -0.3, -0.25), 1.5, -55.0, 270.0)},
}
DEFAULT_VIEW = {"Reacher": "top", "Pusher": "table"}
# where an adapted env's ``state`` holds its task object's position (training labels of ``train-proposal
# --locate-object`` only): Pusher-v5's observation has the object's centre at entries 17-19
OBJECT_STATE = {"Pusher-v5": slice(17, 20)}


def _env_name(env: gym.Env) -> str:
    return env.spec.name if env.spec else ""


class GymMujocoAdapter(gym.Wrapper):
    """Wraps a Gymnasium ``MujocoEnv``; build it with :meth:`make`. See the module docstring for the spec."""

    def __init__(self, env: gym.Env, render_size: int, goal_steps: int = DEFAULT_GOAL_STEPS, camera: str | None = "front") -> None:
        super().__init__(env)
        base = env.unwrapped
        if not hasattr(base, "model") or not hasattr(base, "data"):
            raise SimjepaError(f"{env.spec.id if env.spec else env} is not a MuJoCo env; the adapter needs one")
        self.render_size = render_size
        self.goal_steps = int(goal_steps)
        self.name = _env_name(env)
        self.camera = camera
        view = VIEWS.get(self.name, {}).get(resolve_view(self.name, camera) or "")
        for geom, radius in view.markers if view else ():
            base.model.geom(geom).size[0] = radius  # drawn size only: contype 0, inertia fixed at compile time
        obs_dim = len(self._state(np.zeros(int(np.prod(env.observation_space.shape)))))
        self.observation_space = spaces.Dict(
            {
                "pixels": spaces.Box(0, 255, (render_size, render_size, 3), np.uint8),
                "state": spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32),
            }
        )
        self._target = TARGET_BODIES.get(self.name)
        self.success_threshold = self._target[2] if self._target else GENERIC_TOLERANCE
        self._spec_sig = mujoco.mjtState.mjSTATE_INTEGRATION | mujoco.mjtState.mjSTATE_WARMSTART
        self._goal_state: np.ndarray | None = None
        self._goal_qpos: np.ndarray | None = None

    @classmethod
    def make(cls, env_id: str, render_size: int = 256, max_episode_steps: int | None = None, camera: str | None = "front",
             **kw) -> "GymMujocoAdapter":
        render_size = check_render_size(render_size)
        goal_steps = kw.pop("goal_steps", DEFAULT_GOAL_STEPS)
        extra = {} if max_episode_steps is None else {"max_episode_steps": int(max_episode_steps)}
        name = env_id.split("/")[-1].split("-v")[0]
        view = resolve_view(name, camera)
        if view is not None and view in VIEWS.get(name, {}):
            extra["default_camera_config"] = VIEWS[name][view].camera_config()
        elif view is not None:
            extra["camera_name"] = view
        _ensure_headless_gl()
        try:
            env = gym.make(env_id, render_mode="rgb_array", width=render_size, height=render_size, **extra, **kw)
        except TypeError as exc:
            raise SimjepaError(f"{env_id} cannot render rgb_array images at a chosen size ({exc}); use a MuJoCo env") from None
        quality = env.unwrapped.model.vis.quality  # before the first render creates the GL context
        quality.shadowsize = min(int(quality.shadowsize), SHADOW_TEXELS_PER_PIXEL * render_size)
        if view is not None and view not in VIEWS.get(name, {}):
            model = env.unwrapped.model
            names = [model.camera(i).name for i in range(model.ncam)]
            if view not in names:
                env.close()
                choices = ["front", "env", *VIEWS.get(name, {}), *names]
                raise SimjepaError(f"{env_id} has no camera {camera!r}; use one of {', '.join(choices)}")
        return cls(env, render_size, goal_steps, camera)

    # --- helpers -------------------------------------------------------------------------------
    def _pixels(self) -> np.ndarray:
        frame = np.asarray(self.env.unwrapped.render())
        if frame.shape[:2] != (self.render_size, self.render_size):
            from PIL import Image

            frame = np.asarray(Image.fromarray(frame).resize((self.render_size, self.render_size), Image.BILINEAR))
        return np.ascontiguousarray(frame[..., :3], dtype=np.uint8)

    def _state(self, raw_obs) -> np.ndarray:
        raw = np.asarray(raw_obs, dtype=np.float32).reshape(-1)
        if self.name == "Reacher":
            return np.concatenate([raw[0:4], raw[6:8], np.zeros(1, np.float32), raw]).astype(np.float32)
        return raw

    def _wrap(self, raw_obs) -> dict[str, np.ndarray]:
        return {"pixels": self._pixels(), "state": self._state(raw_obs)}

    def distance(self) -> float:
        """The task distance of the current simulator state (see the module docstring)."""
        base = self.env.unwrapped
        if self._target:
            a, b, _ = self._target
            return float(np.linalg.norm((base.get_body_com(a) - base.get_body_com(b))[:2]))
        if self._goal_qpos is None:
            return 0.0
        return float(np.linalg.norm(base.data.qpos - self._goal_qpos))

    def _info(self, obs: dict, info: dict) -> dict:
        info = dict(info)
        goal_dist = float(np.linalg.norm(obs["state"] - self._goal_state)) if self._goal_state is not None else 0.0
        dist = self.distance()
        info.update(distance=dist, success=bool(dist < self.success_threshold), goal_distance=goal_dist)
        return info

    # --- goal configurations -------------------------------------------------------------------
    def _goal_reacher(self) -> None:
        base = self.env.unwrapped
        data = base.data
        target = base.get_body_com("target")[:2] - base.get_body_com("body0")[:2]
        data.qpos[:2] = reacher_ik(base.model, target, data.qpos[:2])
        data.qvel[:] = 0.0

    def _goal_pusher(self) -> None:
        base = self.env.unwrapped
        model, data = base.model, base.data
        start = base.get_body_com("object")[:2].copy()
        for _ in range(2):  # slide joints are linear in the object's position: the second pass is a check
            err = base.get_body_com("goal")[:2] - base.get_body_com("object")[:2]
            for name in ("obj_slidex", "obj_slidey"):
                j = model.joint(name)
                axis = data.xaxis[j.id][:2]
                data.qpos[model.jnt_qposadr[j.id]] += float(axis @ err)
            mujoco.mj_forward(model, data)
        data.qvel[:] = 0.0
        goal = base.get_body_com("goal")
        travel = goal[:2] - start
        direction = travel / max(np.linalg.norm(travel), 1e-9)
        z = base.get_body_com("object")[2]
        wrist = np.array([*(goal[:2] - PUSHER_TIP_BEHIND * direction), z])
        prongs = np.array([*(goal[:2] + (PUSHER_PRONG_REACH - PUSHER_TIP_BEHIND) * direction), z])
        arm = data.qpos[:7].copy()
        q = pusher_tip_ik(model, data, wrist, prongs)
        if q is None:
            data.qpos[:7] = arm

    def _goal_random(self, seed: int | None) -> np.ndarray:
        base = self.env.unwrapped
        rng = np.random.default_rng(seed if seed is not None else int(base.np_random.integers(2**63)))
        space = self.env.action_space
        raw = None
        for _ in range(self.goal_steps):
            raw = base.step(rng.uniform(space.low, space.high).astype(space.dtype))[0]
        return raw if raw is not None else base._get_obs()

    # --- gymnasium API -------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        raw, info = self.env.reset(seed=seed, options=options)
        base = self.env.unwrapped
        model, data = base.model, base.data
        saved = np.empty(mujoco.mj_stateSize(model, self._spec_sig))
        mujoco.mj_getState(model, data, saved, self._spec_sig)
        if self.name == "Reacher":
            self._goal_reacher()
        elif self.name == "Pusher":
            self._goal_pusher()
        if self.name in ("Reacher", "Pusher"):
            mujoco.mj_forward(model, data)
            goal_raw = base._get_obs()
        else:
            goal_raw = self._goal_random(seed)
        goal = self._wrap(goal_raw)
        self._goal_qpos = data.qpos.copy()
        mujoco.mj_setState(model, data, saved, self._spec_sig)
        mujoco.mj_forward(model, data)
        self._goal_state = goal["state"]
        obs = self._wrap(raw)
        info = self._info(obs, info)
        info["goal"] = goal
        return obs, info

    def step(self, action):
        from envs.arm import check_action

        space = self.env.action_space
        a = check_action(action, space.shape, space.low, space.high)
        raw, reward, term, trunc, info = self.env.step(a.astype(space.dtype))
        obs = self._wrap(raw)
        return obs, reward, term, trunc, self._info(obs, info)

    def make_expert(self):
        """The scripted controller for this env (``envs.adapter_experts``); a one-line error if none exists."""
        from envs.adapter_experts import make_adapter_expert

        return make_adapter_expert(self)


def resolve_view(name: str, camera: str | None) -> str | None:
    """``camera`` as a view name: ``"front"`` -> the env's default view, ``"env"``/None -> None (the env's own)."""
    if camera is None or camera == "env":
        return None
    if camera == "front":
        return DEFAULT_VIEW.get(name)
    return str(camera)


def reacher_link_lengths(model: mujoco.MjModel) -> tuple[float, float]:
    """Shoulder-to-elbow and elbow-to-fingertip lengths from the model's body offsets."""
    return float(np.linalg.norm(model.body("body1").pos[:2])), float(np.linalg.norm(model.body("fingertip").pos[:2]))


def reacher_ik(model: mujoco.MjModel, point: np.ndarray, near: np.ndarray | None = None) -> np.ndarray:
    """Joint angles ``[q0, q1]`` that put the fingertip at ``point`` (x, y relative to the shoulder).

    Closed form for a planar two-link arm; points out of reach are pulled onto the reachable annulus.
    Of the two elbow branches the one closer to ``near`` is returned (q1 within the joint's range),
    with q0 unwrapped to the turn nearest ``near[0]``.
    """
    l1, l2 = reacher_link_lengths(model)
    lo, hi = model.jnt_range[model.joint("joint1").id]
    x, y = float(point[0]), float(point[1])
    r = float(np.hypot(x, y))
    r_min = max(abs(l1 - l2), float(np.sqrt(max(l1**2 + l2**2 + 2 * l1 * l2 * np.cos(hi), 0.0)))) + 1e-6
    r_clamped = float(np.clip(r, r_min, l1 + l2 - 1e-9))
    if r < 1e-12:
        x, y = r_clamped, 0.0
    else:
        x, y = x * r_clamped / r, y * r_clamped / r
    c2 = np.clip((r_clamped**2 - l1**2 - l2**2) / (2 * l1 * l2), -1.0, 1.0)
    near = np.zeros(2) if near is None else np.asarray(near, dtype=np.float64)
    best = None
    for q1 in (np.arccos(c2), -np.arccos(c2)):
        q0 = np.arctan2(y, x) - np.arctan2(l2 * np.sin(q1), l1 + l2 * np.cos(q1))
        q0 = near[0] + (q0 - near[0] + np.pi) % (2 * np.pi) - np.pi
        cost = abs(q1 - near[1]) + abs(q0 - near[0])
        if best is None or cost < best[0]:
            best = (cost, np.array([q0, q1]))
    return best[1]


def pusher_tip_ik(model: mujoco.MjModel, data: mujoco.MjData, wrist: np.ndarray, prongs: np.ndarray,
                  iters: int = 300) -> np.ndarray | None:
    """Damped least-squares IK of Pusher's ``tips_arm`` over the 7 arm joints (in place): its frame origin
    (the wrist bar that pushes) onto ``wrist`` and its centre of mass (midway between the two prongs)
    onto ``prongs``. Returns the joint angles, or None when either ends more than
    ``PUSHER_IK_TOLERANCE`` away."""
    body = model.body("tips_arm").id
    jac_o, jac_c = np.zeros((3, model.nv)), np.zeros((3, model.nv))
    lo, hi = model.jnt_range[:7, 0], model.jnt_range[:7, 1]
    for _ in range(iters):
        mujoco.mj_forward(model, data)
        err = np.concatenate([wrist - data.xpos[body], prongs - data.xipos[body]])
        if np.abs(err).max() < 1e-3:
            break
        mujoco.mj_jacBody(model, data, jac_o, None, body)
        mujoco.mj_jacBodyCom(model, data, jac_c, None, body)
        j = np.concatenate([jac_o[:, :7], jac_c[:, :7]])
        dq = j.T @ np.linalg.solve(j @ j.T + 1e-3 * np.eye(6), err)
        data.qpos[:7] = np.clip(data.qpos[:7] + np.clip(dq, -0.2, 0.2), lo, hi)
    mujoco.mj_forward(model, data)
    miss = max(np.linalg.norm(wrist - data.xpos[body]), np.linalg.norm(prongs - data.xipos[body]))
    return None if miss > PUSHER_IK_TOLERANCE else data.qpos[:7].copy()
