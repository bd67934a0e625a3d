"""A world whose dynamics are known exactly: for tests, docs and sanity checks of the planner.

The "scene" is a point ``p`` (3-D, metres) plus a gripper opening ``g``. Its image is an 8x8 RGB
frame whose pixels are a fixed random linear function of ``x = [p / 0.1, g]``; the toy encoder inverts
the pixel offset, so features are ``M x`` split into 16 tokens of 12 channels. Because the features
are linear in the state, the true predictor is linear too: ``z_{t+1} = z_t + M dx(a_t)``. A planner
that cannot drive this world to its goal is broken; a model that fails where this succeeds is the
model's fault.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from simjepa_core.state_layout import GRIPPER, POS, POSE

IMAGE_SIZE = 8
TOKENS, CHANNELS = 16, 12  # 2x2 patches of an 8x8x3 frame
POS_UNIT = 0.1  # metres per feature unit
PIXEL_GAIN = 30.0


def toy_advance_state(state: np.ndarray, action: np.ndarray, action_scale: np.ndarray) -> np.ndarray:
    """Kinematics of the toy scene, batched ``[B, 7]``: translate by the scaled action, gripper absolute."""
    state = np.array(state, dtype=np.float64, copy=True)
    action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
    state[..., POSE] += action[..., POSE] * np.asarray(action_scale, dtype=np.float64)[POSE]
    state[..., GRIPPER] = action[..., GRIPPER]
    return state


def _to_tokens(flat: torch.Tensor) -> torch.Tensor:
    """``[..., 8*8*3]`` pixel-ordered values -> ``[..., 16, 12]`` 2x2-patch tokens."""
    img = flat.reshape(*flat.shape[:-1], 4, 2, 4, 2, 3)  # [..., gy, py, gx, px, c]
    img = img.movedim(-4, -3)  # [..., gy, gx, py, px, c]
    return img.reshape(*flat.shape[:-1], TOKENS, CHANNELS)


class ToyEncoder:
    """Pixels -> ``M x`` tokens (exact up to uint8 quantisation); other frame sizes are resized first."""

    def __call__(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(frames), dtype=torch.float32)  # [B, H, W, 3]
        if x.shape[1:3] != (IMAGE_SIZE, IMAGE_SIZE):
            x = F.interpolate(x.permute(0, 3, 1, 2), size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", antialias=True)
            x = x.permute(0, 2, 3, 1)  # [B, 8, 8, 3]
        return _to_tokens((x.reshape(x.shape[0], -1) - 128.0) / PIXEL_GAIN)  # [B, N, D]


class ToyPredictor:
    """The true dynamics of the toy scene with the V-JEPA 2-AC predictor signature. Counts its calls."""

    def __init__(self, mixing: torch.Tensor, action_scale: np.ndarray) -> None:
        self.mixing = mixing  # [192, 4]
        self.action_scale = torch.as_tensor(np.asarray(action_scale, dtype=np.float32))
        self.calls: list[tuple[int, ...]] = []

    def __call__(self, feats: torch.Tensor, actions: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        self.calls.append(tuple(feats.shape))
        a = actions.float().clamp(-1, 1)
        dp = a[..., POS] * self.action_scale[POS] / POS_UNIT  # [B, T, 3]
        dg = a[..., GRIPPER, None] - states[..., GRIPPER, None].float()  # [B, T, 1]
        dz = torch.cat([dp, dg], dim=-1) @ self.mixing.T  # [B, T, 192]
        return feats.float() + _to_tokens(dz)  # [B, T, N, D]


@dataclass
class ToyWorldModel:
    """Duck-types ``world_model.WorldModel``: ``encoder``, ``predictor``, ``image_size``, ``planner``, ``info``, ``encode``."""

    seed: int = 0
    action_scale: np.ndarray = field(default_factory=lambda: np.array([0.02] * 3 + [0.1] * 3 + [1.0], dtype=np.float32))
    planner: dict[str, Any] = field(default_factory=lambda: {"normalize_inputs": False})
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        g = torch.Generator().manual_seed(self.seed)
        self.mixing = torch.randn(IMAGE_SIZE * IMAGE_SIZE * 3, 4, generator=g) * 0.7  # [192, 4]
        self.encoder = ToyEncoder()
        self.predictor = ToyPredictor(self.mixing, self.action_scale)
        self.image_size = IMAGE_SIZE
        self.info.setdefault("action_scale", self.action_scale.tolist())

    def encode(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        return self.encoder(frames)

    def render(self, state: np.ndarray) -> np.ndarray:
        """Frame of the scene in ``state [7]``: ``uint8 [8, 8, 3]``."""
        x = torch.tensor([*(np.asarray(state[POS]) / POS_UNIT), state[GRIPPER]], dtype=torch.float32)
        pix = 128.0 + PIXEL_GAIN * (self.mixing @ x)
        return pix.round().clamp(0, 255).to(torch.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE, 3).numpy()


class _Box:
    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape, self.low, self.high, self.dtype = shape, -np.ones(shape, np.float32), np.ones(shape, np.float32), np.float32
        self._rng = np.random.default_rng(0)

    def seed(self, seed: int | None = None) -> None:
        self._rng = np.random.default_rng(seed)

    def sample(self) -> np.ndarray:
        return self._rng.uniform(-1, 1, self.shape).astype(np.float32)


class ToyReachEnv:
    """Gymnasium-style episode in the toy scene: reach a random point 5-10 cm away (success within 1 cm)."""

    success_radius = 0.01

    def __init__(self, world: ToyWorldModel | None = None, max_episode_steps: int = 30) -> None:
        self.world = world or ToyWorldModel()
        self.action_scale = self.world.action_scale
        self.action_space = _Box((7,))
        self.max_episode_steps = max_episode_steps
        self.unwrapped = self
        self.spec = None

    def _obs(self) -> dict[str, np.ndarray]:
        return {"pixels": self.world.render(self.state), "state": self.state.astype(np.float32)}

    def _info(self) -> dict[str, Any]:
        d = float(np.linalg.norm(self.state[POS] - self.goal_state[POS]))
        return {"success": d < self.success_radius, "distance": d}

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        rng = np.random.default_rng(seed)
        self.state = np.zeros(7)
        self.state[GRIPPER] = -1.0
        direction = rng.normal(size=3)
        self.goal_state = self.state.copy()
        self.goal_state[POS] = direction / np.linalg.norm(direction) * rng.uniform(0.05, 0.1)
        self.t = 0
        goal = {"pixels": self.world.render(self.goal_state), "state": self.goal_state.astype(np.float32)}
        return self._obs(), {**self._info(), "goal": goal}

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        self.state = toy_advance_state(self.state[None], np.asarray(action)[None], self.action_scale)[0]
        self.t += 1
        info = self._info()
        return self._obs(), -info["distance"], bool(info["success"]), self.t >= self.max_episode_steps, info

    def close(self) -> None:
        pass
