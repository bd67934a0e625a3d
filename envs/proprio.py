"""Proprioceptive state (the first 7 entries of ``obs["state"]``) and its action model.

``state7 = [x, y, z, roll, pitch, yaw, gripper]``: the tool-centre point (TCP, between the finger
pads) in the world frame in metres; its orientation as extrinsic x-y-z Euler angles in radians
(``R = Rz(yaw) @ Ry(pitch) @ Rx(roll)``), zero when the gripper points straight down with the
fingers closing along world y; and the gripper closure measured from the finger joints, -1 fully
open .. +1 fully closed.

:func:`advance_state` is the planner's model of one env step. The env applies an action as
"measured pose + action * action_scale" (clipped to the workspace), then tracks that target with
inverse kinematics and stiff joint position servos for one 0.1 s control period, so in free space
the prediction is close (see README "Environments" for the measured error); it is wrong where the
env is not free: at workspace limits (the env clips, this function does not), in contact (the table,
the cube), and for the gripper while it is still moving or is closed on the cube (the fingers stop
at the cube, so a +1 command reads back as about 0 while holding it).
"""
from __future__ import annotations

import numpy as np

from simjepa_core.state_layout import GRIPPER, POSE, PROPRIO_DIM


def euler_to_mat(euler: np.ndarray) -> np.ndarray:
    """Extrinsic xyz Euler angles [..., 3] (rad) -> rotation matrices [..., 3, 3]."""
    euler = np.asarray(euler, dtype=np.float64)
    r, p, y = euler[..., 0], euler[..., 1], euler[..., 2]
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    mat = np.empty(euler.shape[:-1] + (3, 3))
    mat[..., 0, 0] = cy * cp
    mat[..., 0, 1] = cy * sp * sr - sy * cr
    mat[..., 0, 2] = cy * sp * cr + sy * sr
    mat[..., 1, 0] = sy * cp
    mat[..., 1, 1] = sy * sp * sr + cy * cr
    mat[..., 1, 2] = sy * sp * cr - cy * sr
    mat[..., 2, 0] = -sp
    mat[..., 2, 1] = cp * sr
    mat[..., 2, 2] = cp * cr
    return mat


def mat_to_euler(mat: np.ndarray) -> np.ndarray:
    """Rotation matrices [..., 3, 3] -> extrinsic xyz Euler angles [..., 3] (rad), pitch in [-pi/2, pi/2]."""
    mat = np.asarray(mat, dtype=np.float64)
    pitch = -np.arcsin(np.clip(mat[..., 2, 0], -1.0, 1.0))
    roll = np.arctan2(mat[..., 2, 1], mat[..., 2, 2])
    yaw = np.arctan2(mat[..., 1, 0], mat[..., 0, 0])
    return np.stack([roll, pitch, yaw], axis=-1)


def advance_state(state7: np.ndarray, action7: np.ndarray, action_scale: np.ndarray) -> np.ndarray:
    """Predicted next proprio state after ``action7``; batched over leading dims.

    state7 [..., 7], action7 [..., 7] (broadcastable), action_scale [7] -> [..., 7] (float32).
    Position and Euler angles move by ``action * action_scale``; the gripper becomes the commanded
    value (the gripper action is absolute, not a delta).
    """
    state7 = np.asarray(state7, dtype=np.float32)
    action7 = np.asarray(action7, dtype=np.float32)
    scale = np.asarray(action_scale, dtype=np.float32)
    if state7.shape[-1] != PROPRIO_DIM or action7.shape[-1] != PROPRIO_DIM or scale.shape != (PROPRIO_DIM,):
        raise ValueError(
            f"advance_state expects [...,7] state and action and a (7,) scale, got {state7.shape}, "
            f"{action7.shape}, {scale.shape}"
        )
    moved = state7[..., POSE] + action7[..., POSE] * scale[POSE]
    grip = np.broadcast_to(action7[..., GRIPPER, None], moved.shape[:-1] + (1,))
    return np.concatenate([moved, grip], axis=-1).astype(np.float32)
