"""MJCF for the tabletop scenes, generated in Python so the three tasks share one arm.

A builder rather than three hand-kept XML files: Reach, Push and PickPlace differ only in whether a
cube, a flat target pad or a raised platform exist, and the offscreen framebuffer must be at least
as large as the requested render size. ``envs/assets/*.xml`` are the rendered outputs at 256 px,
written by ``python -m envs.scene`` for people who want to open a scene in ``python -m mujoco.viewer``;
the envs never read them (a test keeps them in sync with this builder).

Geometry (world frame, metres): the table top is the plane z = 0, the workspace is roughly
x in [-0.15, 0.22], y in [-0.22, 0.22] in front of the arm, whose base sits at (-0.5, 0, 0).
The arm is a 7-joint chain with Franka Panda link lengths (0.333 / 0.316 / 0.384 / 0.088 /
0.107 m, elbow offset 0.0825 m) built from capsules, plus a parallel-jaw gripper with two slide
fingers (0 .. 0.04 m each). Every arm joint carries a position actuator; ``gravcomp`` removes
gravity sag so the joint targets from inverse kinematics are tracked without a steady-state error.
"""
from __future__ import annotations

import numpy as np

# Public geometry constants used by the envs and experts.
BASE_POS = np.array([-0.5, 0.0, 0.0])
CUBE_HALF = 0.025  # m; a 5 cm cube so it spans a few pixels even at 64 px
FINGER_MAX = 0.04  # m; each finger slides 0 (closed) .. 0.04 (open): 8 cm max gap
PLATFORM_HALF = np.array([0.05, 0.05, 0.03])  # m; PickPlace's raised target pad
TIMESTEP = 0.004  # s
CAMERA_POS = np.array([0.35, -0.6, 0.9])
CAMERA_TARGET = np.array([0.0, 0.0, 0.16])
CAMERA_FOVY = 52.0
# A second view from the right-hand side of the table. One camera confuses a gripper far back and
# high with one nearer and lower along its line of sight (the Reach failures in README); the side view
# sees that axis across the image. Measured on Reach tuning seeds 500-539 with the shipped encoder:
# the lowest-energy of 24 random arm poses plus one 3 cm from the goal lies over 5 cm from the goal
# on 13/40 seeds with the front view alone and on 0/40 with the two views' energies averaged.
SIDE_CAMERA_POS = np.array([0.9, 0.4, 0.6])
SIDE_CAMERA_TARGET = np.array([0.0, 0.0, 0.15])
CAMERAS = ("front", "side")  # names accepted by the envs' ``cameras`` option


YAW_LIMIT = 1.6  # rad; the hand may be commanded to yaw in [-YAW_LIMIT, YAW_LIMIT] (envs.arm.WORKSPACE_*)


# Gripper command Push is pushed with: the pads 2 cm apart, a front 4.8 cm wide across a 5 cm cube. At 0
# (4 cm apart) the cube's edge pried the fingers open and jammed between them (expert: 89/100 seeds);
# at +1 the front is one 2.8 cm block. 0.5: 100/100, 0.7: 100/100, 1.0: 100/100 (seeds 0-99, last step).
PUSHER_GRIP = 0.5


def pusher_yaw(direction_xy: np.ndarray, current: float = 0.0) -> float:
    """Hand yaw that spreads the fingers across a push along ``direction_xy``.

    At yaw 0 the fingers close along world y, so pushing along x meets the cube with both pads side
    by side, but pushing along y meets it with one pad's 2.2 cm edge, which turns the cube off the
    line at the slightest lateral miss. The fingers look the same turned by pi, so of the equivalent
    yaws within the hand's range the one nearest ``current`` is taken: no half-turn when the push
    direction drifts across +-90 degrees mid-push, and from yaw 0 the one in [-pi/2, pi/2].
    """
    phi = float(np.arctan2(direction_xy[1], direction_xy[0]))
    options = [phi + k * np.pi for k in (-2, -1, 0, 1, 2) if abs(phi + k * np.pi) <= YAW_LIMIT]
    return float(min(options, key=lambda y: abs(y - current)))


def pixels_key(cameras: tuple[str, ...] | list[str], index: int) -> str:
    """Observation key of camera ``cameras[index]``: ``pixels`` for the first, ``pixels_<name>`` after.

    The first camera keeps the plain key so every single-view consumer (the adapter's envs, videos,
    datasets) reads the same ``obs["pixels"]`` whichever camera it is.
    """
    return "pixels" if index == 0 else f"pixels_{cameras[index]}"


ARM_JOINTS = tuple(f"joint{i}" for i in range(1, 8))
FINGER_JOINTS = ("finger_left", "finger_right")


def _xyaxes(pos: np.ndarray, target: np.ndarray) -> str:
    """Camera x/y axes for a camera at ``pos`` looking at ``target`` with world z up."""
    forward = target - pos
    forward = forward / np.linalg.norm(forward)
    x = np.cross(forward, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(x, forward)
    return " ".join(f"{v:.5f}" for v in (*x, *y))


def _arm() -> str:
    # Frames are world-aligned at q = 0 (arm straight up, hand hanging from the top offset), so the
    # link offsets read like the Panda's DH table. Joint ranges are the Panda's, remapped to these axes.
    return f"""
    <body name="link0" pos="{BASE_POS[0]} {BASE_POS[1]} {BASE_POS[2]}">
      <geom class="arm" type="cylinder" size="0.07 0.05" pos="0 0 0.05" rgba="0.25 0.25 0.28 1"/>
      <body name="link1" pos="0 0 0.333" gravcomp="1">
        <joint name="joint1" axis="0 0 1" range="-2.8973 2.8973"/>
        <geom class="arm" type="capsule" fromto="0 0 -0.23 0 0 -0.02" size="0.06"/>
        <body name="link2" pos="0 0 0" gravcomp="1">
          <joint name="joint2" axis="0 1 0" range="-1.7628 1.7628"/>
          <geom class="joint" type="cylinder" fromto="0 -0.065 0 0 0.065 0" size="0.058"/>
          <geom class="arm" type="capsule" fromto="0 0 0.03 0 0 0.2" size="0.055"/>
          <body name="link3" pos="0 0 0.316" gravcomp="1">
            <joint name="joint3" axis="0 0 1" range="-2.8973 2.8973"/>
            <geom class="arm" type="capsule" fromto="0 0 -0.09 0 0 0" size="0.055"/>
            <geom class="arm" type="capsule" fromto="0 0 0 0.0825 0 0" size="0.05"/>
            <body name="link4" pos="0.0825 0 0" gravcomp="1">
              <joint name="joint4" axis="0 -1 0" range="-3.0718 -0.0698"/>
              <geom class="joint" type="cylinder" fromto="0 -0.06 0 0 0.06 0" size="0.055"/>
              <geom class="arm" type="capsule" fromto="-0.0825 0 0.05 -0.0825 0 0.27" size="0.05"/>
              <body name="link5" pos="-0.0825 0 0.384" gravcomp="1">
                <joint name="joint5" axis="0 0 1" range="-2.8973 2.8973"/>
                <geom class="arm" type="capsule" fromto="0 0 -0.09 0 0 0" size="0.05"/>
                <body name="link6" pos="0 0 0" gravcomp="1">
                  <joint name="joint6" axis="0 -1 0" range="-0.0175 3.7525"/>
                  <geom class="joint" type="cylinder" fromto="0 -0.05 0 0 0.05 0" size="0.05"/>
                  <geom class="arm" type="capsule" fromto="0 0 0 0.088 0 0" size="0.042"/>
                  <body name="link7" pos="0.088 0 0" gravcomp="1">
                    <joint name="joint7" axis="0 0 -1" range="-2.8973 2.8973"/>
                    <geom class="arm" type="cylinder" fromto="0 0 0.02 0 0 -0.09" size="0.045"/>
                    <body name="hand" pos="0 0 -0.107" gravcomp="1">
                      <geom class="hand" type="box" size="0.025 0.09 0.03" pos="0 0 -0.03"/>
                      <geom class="hand" type="cylinder" fromto="0 0 0 0 0 -0.02" size="0.035"/>
                      <site name="tcp" pos="0 0 -0.1034" size="0.006" rgba="1 1 0 0"/>
                      <body name="finger_left" pos="0 0 -0.06" gravcomp="1">
                        <joint name="finger_left" type="slide" axis="0 1 0" range="0 {FINGER_MAX}" class="finger"/>
                        <geom class="pad" type="box" size="0.011 0.007 0.028" pos="0 0.007 -0.028"/>
                      </body>
                      <body name="finger_right" pos="0 0 -0.06" gravcomp="1">
                        <joint name="finger_right" type="slide" axis="0 -1 0" range="0 {FINGER_MAX}" class="finger"/>
                        <geom class="pad" type="box" size="0.011 0.007 0.028" pos="0 -0.007 -0.028"/>
                      </body>
                    </body>
                  </body>
                </body>
              </body>
            </body>
          </body>
        </body>
      </body>
    </body>"""


def build_scene_xml(task: str, render_size: int = 256) -> str:
    """MJCF text for ``task`` in {"reach", "push", "pickplace"}.

    ``render_size`` only sizes the offscreen framebuffer (it must be >= the rendered image).
    """
    if task not in ("reach", "push", "pickplace"):
        raise ValueError(f"unknown task {task!r}")
    fb = max(int(render_size), 64)
    objects = ""
    if task in ("push", "pickplace"):
        # condim 4 adds torsional friction so a grasped cube does not spin out of the fingers.
        objects += f"""
    <body name="cube" pos="0 0 {CUBE_HALF}">
      <freejoint name="cube"/>
      <geom name="cube" type="box" size="{CUBE_HALF} {CUBE_HALF} {CUBE_HALF}" mass="0.08"
            rgba="0.86 0.12 0.1 1" condim="4" friction="1.2 0.01 0.001"/>
    </body>"""
    if task == "push":
        # Visual only: a translucent green pad on the table that the cube should cover.
        objects += """
    <body name="target" pos="0 0 0" mocap="true">
      <geom name="target" type="cylinder" size="0.05 0.0015" pos="0 0 0.0015" rgba="0.1 0.8 0.25 0.55"
            contype="0" conaffinity="0"/>
    </body>"""
    if task == "pickplace":
        h = PLATFORM_HALF
        # A solid raised pad: the cube only reaches the target by being carried over the pad's edge.
        objects += f"""
    <body name="target" pos="0 0 0" mocap="true">
      <geom name="platform" type="box" size="{h[0]} {h[1]} {h[2]}" pos="0 0 {h[2]}"
            rgba="0.1 0.7 0.25 1" friction="1.2 0.01 0.001" condim="4"/>
    </body>"""
    cam_xy = _xyaxes(CAMERA_POS, CAMERA_TARGET)
    side_xy = _xyaxes(SIDE_CAMERA_POS, SIDE_CAMERA_TARGET)
    actuators = "\n".join(
        f'    <position name="a{i}" joint="joint{i}" kp="{kp}" kv="{kv}" ctrlrange="-3.8 3.8"/>'
        for i, (kp, kv) in enumerate(
            [(10000, 141), (10000, 141), (10000, 141), (10000, 141), (4000, 40), (4000, 40), (4000, 40)], start=1
        )
    )
    return f"""<mujoco model="simjepa_{task}">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{TIMESTEP}" integrator="implicitfast" cone="elliptic" impratio="5"/>
  <visual>
    <global offwidth="{fb}" offheight="{fb}"/>
    <quality shadowsize="0" offsamples="0"/>
    <headlight ambient="0.45 0.45 0.45" diffuse="0.55 0.55 0.55" specular="0.05 0.05 0.05"/>
    <map znear="0.05" zfar="8"/>
  </visual>
  <default>
    <joint damping="4" armature="0.1"/>
    <geom contype="1" conaffinity="1" friction="0.8 0.005 0.0001"/>
    <default class="arm"><geom rgba="0.9 0.9 0.92 1" contype="0" conaffinity="0" mass="1.5"/></default>
    <default class="joint"><geom rgba="0.3 0.3 0.34 1" contype="0" conaffinity="0" mass="0.3"/></default>
    <default class="hand"><geom rgba="0.18 0.18 0.2 1" mass="0.4"/></default>
    <default class="pad"><geom rgba="0.12 0.12 0.14 1" mass="0.05" friction="1.5 0.02 0.001" condim="4"/></default>
    <default class="finger"><joint damping="2" armature="0.01"/></default>
  </default>
  <worldbody>
    <light pos="0.2 -0.3 1.6" dir="-0.1 0.2 -1" diffuse="0.5 0.5 0.5" castshadow="false"/>
    <geom name="floor" type="plane" pos="0 0 -0.75" size="3 3 0.1" rgba="0.32 0.36 0.42 1"/>
    <geom name="table" type="box" pos="-0.15 0 -0.02" size="0.55 0.45 0.02" rgba="0.62 0.47 0.3 1"/>
    <geom name="table_leg" type="box" pos="-0.15 0 -0.4" size="0.4 0.3 0.35" rgba="0.45 0.34 0.22 1"
          contype="0" conaffinity="0"/>
    <camera name="front" mode="fixed" pos="{CAMERA_POS[0]} {CAMERA_POS[1]} {CAMERA_POS[2]}"
            xyaxes="{cam_xy}" fovy="{CAMERA_FOVY}"/>
    <camera name="side" mode="fixed" pos="{SIDE_CAMERA_POS[0]} {SIDE_CAMERA_POS[1]} {SIDE_CAMERA_POS[2]}"
            xyaxes="{side_xy}" fovy="{CAMERA_FOVY}"/>{_arm()}{objects}
  </worldbody>
  <contact>
    <exclude body1="hand" body2="finger_left"/>
    <exclude body1="hand" body2="finger_right"/>
  </contact>
  <actuator>
{actuators}
    <position name="grip_left" joint="finger_left" kp="300" kv="10" ctrlrange="0 {FINGER_MAX}" forcerange="-25 25"/>
    <position name="grip_right" joint="finger_right" kp="300" kv="10" ctrlrange="0 {FINGER_MAX}" forcerange="-25 25"/>
  </actuator>
</mujoco>
"""


def asset_path(task: str) -> str:
    import os

    return os.path.join(os.path.dirname(__file__), "assets", f"{task}.xml")


if __name__ == "__main__":
    for name in ("reach", "push", "pickplace"):
        with open(asset_path(name), "w") as f:
            f.write(build_scene_xml(name, 256))
        print(asset_path(name))
