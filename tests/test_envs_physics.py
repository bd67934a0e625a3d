"""Physics regressions: the arm must never whip the cube off the table.

The glitch (found in ``simjepa collect --policy mixed`` data): near the workspace edge the arm is
stretched against its joint limits, damped-least-squares IK returned joint jumps of several
radians, and the stiff servos executed them within one control step. The arm swung through the
scene at 20-40 rad/s and launched the cube metres away (Push seed 5001: y 2.26 m, z 2.33 m at
31 m/s; seed 5023: x -2.43, y -3.36). ``envs.arm`` now limits each control step's joint motion to
the Franka's velocity limits and each IK iteration's step, so the arm stays on its IK branch.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers the ids)
from envs.arm import CONTROL_DT, MAX_JOINT_STEP, limit_joint_step
from envs.collect import CollectPolicy

MAX_CUBE_SPEED = 2.0  # m/s; the TCP moves at most 0.3 m/s, so anything faster is an ejection
# Realised joint motion may overshoot the commanded (limited) step a little while the servos settle.
MAX_REALISED_JOINT_STEP = 1.2 * float(MAX_JOINT_STEP.max())  # rad per control step

# The 60 actions that the mixed policy produced for Push seed 5001 before the fix (float32, exact):
# replayed open loop from reset(seed=5001) they used to launch the cube at 31 m/s at step 58.
GLITCH_5001_ACTIONS = """
0.75588065 0.9012598 -1 -0.09183318 0.1880292 -0.042393744 1
0.53732663 -0.013435646 -0.7993083 0.061515935 -0.31717166 0.15552732 1
-0.079634614 -0.25421917 -1 0.21070004 0.03921891 -0.079639174 1
0.4110858 0.08139209 0.69300234 0.028313734 -0.2232352 -0.31147376 1
-0.100200355 -0.037250154 -0.86730176 -0.39067808 0.059353255 0.32849714 1
0.08722455 0.5123003 -1 0.19390292 0.15906775 -0.11896393 1
0.58072174 0.61647207 -0.48066732 0.039349027 -0.31681025 0.06598299 1
-0.33145684 0.19886689 0.9093796 -0.16160107 0.30608982 0.24128819 1
0.02251887 -0.050321814 1 -0.103454195 0.08106524 -0.10719743 1
0.9001997 1 -0.04272443 0.22763409 -0.1770509 -0.33945632 1
0.85515016 0.39189067 0.095447086 0.01879616 0.35347778 0.4633455 1
0.7286941 -0.137599 0.17635874 0.046929076 -0.38979647 -0.097046666 1
0.40264726 -0.33032668 -1 -0.145332 0.16852856 -0.2825643 1
-0.13521914 0.0062353536 -1 0.17700623 0.1862824 0.16119632 1
0.63729346 0.8375961 -0.26097777 -0.10317389 -0.5013424 -0.023211226 1
0.12694456 0.15185821 -0.15924442 -0.18274029 -0.018507283 -0.24081083 1
0.30158535 -0.09172823 0.07970897 0.4752886 0.32242742 0.0997381 1
0.48137835 0.5721326 0.15090768 -0.16984521 0.011254122 0.12053309 1
0.05227903 0.34344855 0.05704629 -0.15860546 -0.116369285 0.36891833 1
-0.23338878 0.8999094 -0.12788095 0.16447873 0.29717183 0.08925955 -1
0.1155392 0.4363019 -0.20553812 0.03528203 0.4190935 0.10122674 -1
0.3064749 0.0075039254 -0.37127098 -0.14081688 0.5455863 0.17256664 -1
0.7244401 0.31487602 -0.22202954 -0.2239774 0.45031044 0.10377378 -1
0.58934844 0.02283685 -0.18712032 -0.048208814 0.3916532 0.05367145 -1
0.7353586 0.049596865 0.22226697 -0.07047793 0.17585327 -0.016508171 -1
0.5868412 0.02599148 0.5134991 -0.07553017 0.10926286 -0.07539556 -1
0.4590107 0.07993092 0.32143745 -0.1495213 0.1471166 -0.031524044 -1
0.34808612 -0.4395273 0.357454 -0.0074848984 0.16213861 -0.008422956 -1
1 0.48565325 0.3131723 0.7361048 -0.6912865 -0.8340302 1
1 0.071479134 -0.02466943 -0.28749803 -1 0.058697272 1
1 -0.14347725 -0.20773734 0.37708807 -0.7369212 -0.24645671 1
1 0.23180503 0.20034717 -0.3369525 -0.42548314 0.3484511 1
0.7061202 -0.15115136 -0.3255794 0.05550032 0.41720188 0.012053732 1
0.7320531 0.35207716 -0.63809603 -0.121758565 -0.22573107 -0.02331888 1
1 0.33039838 -0.08129307 0.41761178 0.29690194 -0.15027632 1
0.9762318 0.76619315 0.10402194 -0.3163841 -0.24083754 0.16536611 1
0.9733949 -0.37747967 -0.35647264 0.22423492 0.003937195 -0.25415722 1
0.9435044 0.509302 0.31479537 -0.100701116 -0.059983004 0.3765426 1
1 -0.09771983 -0.04428282 -0.28013557 0.19161129 -0.0589601 1
0.9012683 0.2521009 -0.18670094 0.1451896 -0.0896503 -0.23903936 1
1 0.4870364 0.045935918 0.06328961 0.06695228 0.053379174 1
0.05910463 0.11120689 0.5544606 0.30044603 -0.7518301 0.09814453 1
0.17335744 0.13065311 1 0.665514 -1 0.07027262 1
0.15003239 0.103786886 0.8588482 0.51732504 -0.98760533 0.17596224 1
-0.07764727 -0.14978254 0.7638254 0.4198398 -0.9576118 0.14482802 1
-0.11632708 0.400911 -0.06462143 0.2778309 -1 0.1691633 1
0.87482244 -0.66406286 0.67975193 0.7968244 -1 0.35554305 1
0.13677672 -0.058861673 0.14296173 1 -1 0.689632 1
0.09516023 -0.07151889 -0.0905029 1 -1 1 1
0.16105455 0.0567192 -0.23523213 0.9485781 -1 1 1
0.087733895 0.10375178 -0.1931822 1 -1 1 1
0.16303031 -0.17458448 -0.36263412 1 -0.9447685 0.9756648 1
0.17621554 0.11116584 0.046211004 0.969349 -1 1 1
0.06680708 0.09062552 -0.21717358 0.8078962 -1 0.7415486 1
0.17079183 0.022312006 0.25773045 1 -0.8279391 1 1
-0.2887544 -0.2356908 -0.1070779 0.9644348 -0.6464547 1 1
0.034751974 -0.06257375 -0.116948545 1 -0.93217343 0.99120134 1
-0.44915372 0.18220174 -0.19960661 0.9932968 -1 1 1
-0.6957477 -0.72722197 -0.2502925 0.21147603 -0.044384085 0.3993898 1
-0.8392693 -0.55720377 -0.59320426 0.06417295 0.038915873 0.2789866 1
"""


def _glitch_actions() -> np.ndarray:
    rows = [line.split() for line in GLITCH_5001_ACTIONS.strip().splitlines()]
    return np.array([[np.float32(v) for v in row] for row in rows], dtype=np.float32)  # [60, 7]


def _check_step(u, cube_before: np.ndarray, q_before: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Assert the cube is on the table and slow, the arm did not jump; return the new cube pos, joints."""
    cube, _ = u.cube_pose()
    q = u.data.qpos[u._arm_qadr].copy()
    speed = float(np.linalg.norm(cube - cube_before)) / CONTROL_DT
    assert abs(cube[0]) < 0.6 and abs(cube[1]) < 0.6 and cube[2] < 0.5, f"{where}: cube left the table at {cube}"
    assert speed < MAX_CUBE_SPEED, f"{where}: cube moved at {speed:.2f} m/s"
    dq = float(np.abs(q - q_before).max())
    assert dq < MAX_REALISED_JOINT_STEP, f"{where}: a joint moved {dq:.2f} rad in one control step"
    return cube, q


def test_recorded_glitch_actions_keep_cube_on_table() -> None:
    actions = _glitch_actions()
    assert actions.shape == (60, 7)
    env = gym.make("simjepa/Push-v0", render_size=16)
    u = env.unwrapped
    env.reset(seed=5001)
    cube, q = u.cube_pose()[0], u.data.qpos[u._arm_qadr].copy()
    for t, a in enumerate(actions):
        env.step(a)
        cube, q = _check_step(u, cube, q, f"step {t}")
    env.close()


@pytest.mark.parametrize(
    "env_id, policy, seed",
    [
        ("simjepa/Push-v0", "mixed", 5001),  # cube launched to y 2.26 m, z 2.33 m
        ("simjepa/Push-v0", "mixed", 5023),  # cube launched to x -2.43, y -3.36 m
        ("simjepa/Push-v0", "random", 5014),  # arm flipped over backwards (6.9 rad in one step)
    ],
)
def test_collect_policy_seeds_stay_physical(env_id: str, policy: str, seed: int) -> None:
    env = gym.make(env_id, render_size=16)
    u = env.unwrapped
    obs, _ = env.reset(seed=seed)
    pol = CollectPolicy(policy, env, seed)
    cube, q = u.cube_pose()[0], u.data.qpos[u._arm_qadr].copy()
    for t in range(u.default_max_steps):
        obs, *_ = env.step(pol.act(obs))
        cube, q = _check_step(u, cube, q, f"{policy} seed {seed} step {t}")
    env.close()


def test_limit_joint_step_keeps_direction_and_small_steps() -> None:
    small = np.array([0.1, -0.05, 0.0, 0.2, -0.1, 0.05, 0.0])
    assert limit_joint_step(small, MAX_JOINT_STEP) is small  # within the limits: untouched (bit-identical)
    big = np.array([3.0, -1.0, 0.5, 0.0, 0.2, -4.0, 0.1])
    out = limit_joint_step(big, MAX_JOINT_STEP)
    assert np.all(np.abs(out) <= MAX_JOINT_STEP + 1e-12)
    assert np.isclose(np.max(np.abs(out) / MAX_JOINT_STEP), 1.0)
    np.testing.assert_allclose(out / np.linalg.norm(out), big / np.linalg.norm(big))
