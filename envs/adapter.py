"""Any registered Gymnasium MuJoCo env (Reacher-v5, Pusher-v5, ...) behind our observation dict.

Observation: ``{"pixels": uint8 [S, S, 3] from the env's own rgb_array render, "state": the env's
observation vector as float32}``. The action space is the env's own (Reacher: 2 torques).

Goals follow DINO-WM: after ``reset(seed)``, ``goal_steps`` uniformly random actions (drawn from
a generator seeded by ``seed``) are taken from the reset state and the observation reached is the
goal; the simulator state is then restored, so the episode starts exactly where ``reset`` put it.

``info["distance"]`` / ``info["success"]``: where the env has a target quantity of its own we use it
(Reacher-v5: fingertip to target in the plane, success below 0.02 m; Pusher-v5: object to goal in
the plane, below 0.05 m). Otherwise distance is the Euclidean distance between the state vector and
the goal's state vector (unitless) and success is that distance below 0.05. Note that the random-
action goal image and the env's own target are different things: a planner steering towards the
goal image is not steering towards the env's target, so success rates on adapted envs measure the
env's task, not goal-image reaching (``info["goal_distance"]`` gives the latter in state space).
"""
from __future__ import annotations

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from envs.arm import _ensure_headless_gl, check_render_size
from simjepa_core.errors import SimjepaError

# env id prefix -> (body a, body b, success threshold in metres); distance is |a - b| in x, y.
TARGET_BODIES = {
    "Reacher": ("fingertip", "target", 0.02),
    "Pusher": ("object", "goal", 0.05),
}
DEFAULT_GOAL_STEPS = 25


class GymMujocoAdapter(gym.Wrapper):
    """Wraps a Gymnasium ``MujocoEnv``; build it with :meth:`make`."""

    def __init__(self, env: gym.Env, render_size: int, goal_steps: int = DEFAULT_GOAL_STEPS) -> None:
        super().__init__(env)
        base = env.unwrapped
        if not hasattr(base, "model") or not hasattr(base, "data"):
            raise SimjepaError(f"{env.spec.id if env.spec else env} is not a MuJoCo env; the adapter needs one")
        self.render_size = render_size
        self.goal_steps = int(goal_steps)
        obs_dim = int(np.prod(env.observation_space.shape))
        self.observation_space = spaces.Dict(
            {
                "pixels": spaces.Box(0, 255, (render_size, render_size, 3), np.uint8),
                "state": spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32),
            }
        )
        name = env.spec.name if env.spec else ""
        self._target = TARGET_BODIES.get(name)
        self.success_threshold = self._target[2] if self._target else 0.05
        self._spec_sig = mujoco.mjtState.mjSTATE_INTEGRATION | mujoco.mjtState.mjSTATE_WARMSTART
        self._goal_state: np.ndarray | None = None

    @classmethod
    def make(cls, env_id: str, render_size: int = 256, max_episode_steps: int | None = None, **kw) -> "GymMujocoAdapter":
        render_size = check_render_size(render_size)
        goal_steps = kw.pop("goal_steps", DEFAULT_GOAL_STEPS)
        extra = {} if max_episode_steps is None else {"max_episode_steps": int(max_episode_steps)}
        _ensure_headless_gl()
        try:
            env = gym.make(env_id, render_mode="rgb_array", width=render_size, height=render_size, **extra, **kw)
        except TypeError as exc:
            raise SimjepaError(f"{env_id} cannot render rgb_array images at a chosen size ({exc}); use a MuJoCo env") from None
        return cls(env, render_size, goal_steps)

    # --- helpers -------------------------------------------------------------------------------
    def _pixels(self) -> np.ndarray:
        frame = np.asarray(self.env.unwrapped.render())
        if frame.shape[:2] != (self.render_size, self.render_size):
            from PIL import Image

            frame = np.asarray(Image.fromarray(frame).resize((self.render_size, self.render_size), Image.BILINEAR))
        return np.ascontiguousarray(frame[..., :3], dtype=np.uint8)

    def _wrap(self, raw_obs) -> dict[str, np.ndarray]:
        return {"pixels": self._pixels(), "state": np.asarray(raw_obs, dtype=np.float32).reshape(-1)}

    def _info(self, obs: dict, info: dict) -> dict:
        info = dict(info)
        goal_dist = float(np.linalg.norm(obs["state"] - self._goal_state)) if self._goal_state is not None else 0.0
        if self._target:
            base = self.env.unwrapped
            a, b, _ = self._target
            dist = float(np.linalg.norm((base.get_body_com(a) - base.get_body_com(b))[:2]))
        else:
            dist = goal_dist
        info.update(distance=dist, success=bool(dist < self.success_threshold), goal_distance=goal_dist)
        return info

    # --- gymnasium API -------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        raw, info = self.env.reset(seed=seed, options=options)
        base = self.env.unwrapped
        model, data = base.model, base.data
        saved = np.empty(mujoco.mj_stateSize(model, self._spec_sig))
        mujoco.mj_getState(model, data, saved, self._spec_sig)
        rng = np.random.default_rng(seed if seed is not None else int(base.np_random.integers(2**63)))
        space = self.env.action_space
        goal_raw = raw
        for _ in range(self.goal_steps):
            goal_raw = base.step(rng.uniform(space.low, space.high).astype(space.dtype))[0]
        goal = self._wrap(goal_raw)
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
