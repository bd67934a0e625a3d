"""Scripted controllers for adapted Gymnasium envs (``--policy expert`` / ``mixed`` on Reacher-v5, Pusher-v5).

Like :mod:`envs.experts` they read the true simulator state (privileged: an upper-bound baseline and
a data-collection policy, never the planner's protocol) and are memoryless apart from an optional
detour, so collection noise cannot knock them off a plan they would not recover from.

Pusher-v5's object is nearly massless (cylinder density 0.01). MuJoCo regularises a soft contact in
proportion to the bodies' inverse weights, so the force on the object stays small and grows with
how deep the tool is pressed into it, and the object moves at a speed set by that depth; pressed
too deep, the contact normals flip and the object is pushed back. :class:`PusherExpert` therefore
presses the inside corner of the tip's U-shaped fork (the bar and one prong: two contacts whose
normals straddle the push direction) a fixed depth into the object and keeps it there, steering
the fork by operational-space torque control. A first attempt (joint-space PD towards inverse
kinematics targets, pushing with the bar alone) never got down behind the object. Measurements,
and the sweep the depth and gains were chosen from, are in docs/gymnasium-envs.md.
"""
from __future__ import annotations

import mujoco
import numpy as np

from envs.adapter import reacher_ik
from simjepa_core.errors import SimjepaError

DETOUR_STEPS = (5, 26)  # detour length in steps, drawn from [5, 26) for both envs


class _DetourExpert:
    """What both controllers share: a detour (aim at ``point`` for ``steps`` steps, then at the task)
    that mixed data collection draws with ``sample_detour``."""

    def reset(self) -> None:
        self.point: np.ndarray | None = None
        self.detour_left = 0

    def detour(self, point: np.ndarray, steps: int) -> None:
        self.point, self.detour_left = np.asarray(point, dtype=np.float64), int(steps)


class ReacherExpert(_DetourExpert):
    """Closed-form IK target angles for a fingertip point, reached by PD torque control.

    ``u = clip(kp (q* - q) - kd dq, -1, 1)``; the gains were picked on tuning seeds 500-519 (success
    rate and steps to success for each pair in docs/, not here).

    ``point`` None aims at the env's target. :meth:`detour` first aims at another point for some
    steps (data collection: covers the reachable disc, not only straight lines to the target).
    """

    REACH = 0.21  # m: link lengths 0.10 + 0.11, the radius of the disc detour points are drawn from

    def __init__(self, env, kp: float = 2.0, kd: float = 0.1) -> None:
        self.base = env.unwrapped
        self.kp, self.kd = kp, kd
        self.reset()

    def sample_detour(self, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        """A uniform point of the reachable disc (x, y from the shoulder) and a detour length."""
        r, phi = self.REACH * np.sqrt(rng.random()), rng.uniform(-np.pi, np.pi)
        return np.array([r * np.cos(phi), r * np.sin(phi)]), int(rng.integers(*DETOUR_STEPS))

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


def _turn(v: np.ndarray, angle: float) -> np.ndarray:
    """A 2-D vector turned counter-clockwise by ``angle`` radians."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


class PusherExpert(_DetourExpert):
    """Pushes Pusher-v5's object onto the goal with the inside corner of the fork at the arm's tip.

    The fork (frame of ``tips_arm``: a bar along its y axis through the origin, two prongs along x
    at y = +-0.1) is the only part of the arm that collides. Each step, from the true state:

    - push pose: the fork turned ``yaw`` degrees off the object->goal direction ``u`` (prongs tilted
      up by ``tilt``), placed so the object's centre sits ``depth`` metres inside the contact
      distance of both the bar and the prong the turn brings behind the object; the two contact
      normals then straddle ``u`` and the object moves along it. The turn (seen from above) is
      counter-clockwise where that points the prongs further away from the shoulder by more than
      ``bias`` (cosine of the angle to the outward direction) or the object is within ``near``
      metres of the shoulder, else clockwise: the poses the arm can reach.
    - push (the tip near that pose, at object height; :attr:`PUSH_ZONE`): track the pose. It moves
      with the object, so the depth, and with it the push speed, stays constant. If the object
      moves away from the goal faster than ``stall`` m/s, the normals have flipped (the corner got
      past the object's centre): the pose is eased ``relief`` metres back along ``u``.
    - approach (anywhere else): a point ``back`` metres behind the pose, above the object's centre
      by ``cone`` times the horizontal distance still to go beyond ``reach`` (at most ``hover``), so
      the fork comes down behind the object instead of sweeping through it.

    Torques: operational-space control of the tip's position and orientation. The wanted tip
    velocity is ``kpos`` times the error (position part capped at ``vmax`` m/s, orientation error
    weighted by ``wrot`` m/rad), the wanted acceleration ``kvel`` times the velocity error, mapped to
    joints by the damped (``dls``) pseudo-inverse of the 6-D Jacobian, times the arm's inertia
    matrix, plus bias and passive forces, minus ``kd`` times the joint velocities (damps the
    redundant joint); scaled down as a whole to fit the action box. Gains were picked on tuning
    seeds 500-519 (docs/gymnasium-envs.md). :meth:`detour` first sends the tip to a 3-D point.
    """

    TOUCH = 0.074  # m: object radius 0.05 + fork capsule radius 0.02 + both geoms' contact margins 0.002
    HALF_BAR = 0.1  # m: the prongs' offset from the fork's centre along the bar
    PUSH_ZONE = (0.04, 0.03, 0.03)  # m: tip behind the approach point or past the pose, across u, above the object

    def __init__(self, env, depth: float = 0.068, yaw: float = 50.0, tilt: float = 25.0, bias: float = 0.2,
                 near: float = 0.4, relief: float = 0.03, stall: float = 0.005, back: float = 0.035,
                 hover: float = 0.08, cone: float = 1.2, reach: float = 0.035, kpos: float = 9.0,
                 kvel: float = 25.0, vmax: float = 0.75, wrot: float = 0.1, dls: float = 0.05, kd: float = 0.2) -> None:
        base = env.unwrapped
        self.model, self.data = base.model, base.data
        self.tip, self.obj, self.goal = (self.model.body(n).id for n in ("tips_arm", "object", "goal"))
        self.shoulder = self.model.body("r_shoulder_pan_link").pos[:2].copy()
        self.slides = [self.model.joint(n).id for n in ("obj_slidex", "obj_slidey")]
        self.depth, self.yaw, self.tilt, self.bias, self.near = depth, np.radians(yaw), np.radians(tilt), bias, near
        self.relief, self.stall = relief, stall
        self.back, self.hover, self.cone, self.reach = back, hover, cone, reach
        self.kpos, self.kvel, self.vmax, self.wrot, self.dls, self.kd = kpos, kvel, vmax, wrot, dls, kd
        self.low, self.high = env.action_space.low.astype(np.float64), env.action_space.high.astype(np.float64)
        self.nu = int(env.action_space.shape[0])  # the arm's joints come first: dofs 0 .. nu-1
        self.jac_p, self.jac_r = np.zeros((3, self.model.nv)), np.zeros((3, self.model.nv))
        self.mass = np.zeros((self.model.nv, self.model.nv))
        self.phase = "approach"
        self.reset()

    def sample_detour(self, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        """A point over the table where objects start and goals lie, up to 0.15 m above the object's
        centre (low ones knock the object about), and a detour length."""
        z = self.data.xpos[self.obj][2]
        point = np.array([rng.uniform(0.25, 0.7), rng.uniform(-0.45, 0.1), z + rng.uniform(0.0, 0.15)])
        return point, int(rng.integers(*DETOUR_STEPS))

    def push_pose(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For push direction ``u`` (unit, x-y): the fork's centre relative to the object's (x-y),
        its prong axis and its bar axis (3-D unit vectors; the bar's sign is free, the fork is symmetric)."""
        obj = self.data.xpos[self.obj][:2]
        from_shoulder = obj - self.shoulder
        away = from_shoulder / max(float(np.linalg.norm(from_shoulder)), 1e-9)
        ccw_further = _turn(u, self.yaw) @ away > _turn(u, -self.yaw) @ away + self.bias
        side = 1.0 if ccw_further or np.linalg.norm(from_shoulder) < self.near else -1.0
        prongs = _turn(u, side * self.yaw)
        bar = _turn(prongs, np.pi / 2)
        inside = np.array([self.TOUCH - self.depth, side * (self.HALF_BAR - self.TOUCH + self.depth)])
        offset = -(inside[0] * prongs + inside[1] * bar)
        x_axis = np.array([*(np.cos(self.tilt) * prongs), np.sin(self.tilt)])
        return offset, x_axis, np.array([*bar, 0.0])

    def object_velocity(self) -> np.ndarray:
        """The object's x-y velocity (its two slide joints)."""
        return np.array([self.data.qvel[self.model.jnt_dofadr[j]] for j in self.slides])

    def target(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Where the tip goes this step (memoryless: the phase is read off the state)."""
        obj, goal, tip = self.data.xpos[self.obj], self.data.xpos[self.goal], self.data.xpos[self.tip]
        to_goal = (goal - obj)[:2]
        u = to_goal / max(float(np.linalg.norm(to_goal)), 1e-9)
        offset, x_axis, bar = self.push_pose(u)
        pose = obj[:2] + offset
        rel = tip[:2] - pose
        along, across, above = float(rel @ u), float(rel @ _turn(u, np.pi / 2)), float(tip[2] - obj[2])
        behind, wide, high = self.PUSH_ZONE
        if -self.back - behind < along < behind and abs(across) < wide and above < high:
            self.phase = "push"
            if float(self.object_velocity() @ u) < -self.stall:  # normals flipped: ease off until they flip back
                pose = pose - self.relief * u
            return np.array([*pose, obj[2]]), x_axis, bar
        self.phase = "approach"
        stage = pose - self.back * u
        left = float(np.linalg.norm(tip[:2] - stage))
        return np.array([*stage, obj[2] + min(self.hover, self.cone * max(left - self.reach, 0.0))]), x_axis, bar

    def act(self, obs=None) -> np.ndarray:
        point, x_axis, bar = self.target()
        if self.detour_left > 0:
            self.detour_left -= 1
            self.phase, point = "detour", self.point
        return self.torques(point, x_axis, bar)

    def torques(self, point: np.ndarray, x_axis: np.ndarray, bar: np.ndarray) -> np.ndarray:
        """Operational-space torques that drive the tip's origin to ``point`` and its axes to ``x_axis``, ``+-bar``."""
        m, d, n = self.model, self.data, self.nu
        rot = d.xmat[self.tip].reshape(3, 3)
        y_axis = bar if rot[:, 1] @ bar >= 0 else -bar
        rot_err = 0.5 * (np.cross(rot[:, 0], x_axis) + np.cross(rot[:, 1], y_axis))
        mujoco.mj_jacBody(m, d, self.jac_p, self.jac_r, self.tip)
        jac = np.concatenate([self.jac_p[:, :n], self.wrot * self.jac_r[:, :n]])
        qd = d.qvel[:n]
        vel = self.kpos * np.concatenate([point - d.xpos[self.tip], self.wrot * rot_err])
        speed = float(np.linalg.norm(vel[:3]))
        if speed > self.vmax:
            vel[:3] *= self.vmax / speed
        acc = self.kvel * (vel - jac @ qd)
        qdd = jac.T @ np.linalg.solve(jac @ jac.T + self.dls**2 * np.eye(6), acc)
        mujoco.mj_fullM(m, d, self.mass)
        tau = self.mass[:n, :n] @ qdd + d.qfrc_bias[:n] - d.qfrc_passive[:n] - self.kd * qd
        scale = float(np.max(np.abs(tau) / self.high))
        if scale > 1.0:  # shrink as a whole: clipping each joint would bend the tip's path
            tau = tau / scale
        return np.clip(tau, self.low, self.high).astype(np.float32)


EXPERTS = {"Reacher": ReacherExpert, "Pusher": PusherExpert}


def make_adapter_expert(env, **gains):
    """The scripted controller of an adapted env; a one-line error for envs without one."""
    name = getattr(env, "name", "")
    if name in EXPERTS:
        return EXPERTS[name](env, **gains)
    env_id = env.spec.id if getattr(env, "spec", None) else name
    raise SimjepaError(f"no scripted controller for {env_id}; ones exist for Reacher-v5 and Pusher-v5 (use --policy random)")
