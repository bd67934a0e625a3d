"""Our envs: registration, spaces, determinism, goals, experts, input errors, advance_state."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import envs
from simjepa_core.errors import SimjepaError
from envs.experts import demo_subgoals, make_expert
from envs.proprio import advance_state, euler_to_mat, mat_to_euler
from envs import scene
from envs.scene import asset_path, build_scene_xml

SIZE = 64
STATE_DIMS = {"simjepa/Reach-v0": 10, "simjepa/Push-v0": 16, "simjepa/PickPlace-v0": 16}


def test_ids_registered_with_default_lengths():
    for env_id, steps in zip(envs.ENV_IDS, (30, 60, 80)):
        assert env_id in gym.registry
        assert gym.registry[env_id].max_episode_steps == steps


@pytest.mark.parametrize("env_id", envs.ENV_IDS)
def test_object_state_names_where_the_state_holds_the_cube(env_id):
    """train-proposal --locate-object reads its labels there: they must be the cube's centre."""
    sl = envs.object_state(env_id)
    if env_id == "simjepa/Reach-v0":
        assert sl is None  # [7:10] is the goal TCP there, not an object in the frame
        return
    env = gym.make(env_id, render_size=SIZE, max_episode_steps=5)
    obs, _ = env.reset(seed=3)
    for _ in range(2):
        assert np.allclose(obs["state"][sl], env.unwrapped.cube_pose()[0], atol=1e-5)
        obs, *_ = env.step(env.action_space.sample())
    assert envs.object_state("Reacher-v5") is None  # adapted envs name none
    env.close()


@pytest.mark.parametrize("env_id", envs.ENV_IDS)
def test_spaces_and_reset(env_id):
    env = gym.make(env_id, render_size=SIZE, max_episode_steps=5)
    obs, info = env.reset(seed=0)
    assert env.action_space == gym.spaces.Box(-1, 1, (7,), np.float32)
    assert env.observation_space["pixels"].shape == (SIZE, SIZE, 3)
    assert env.observation_space.contains(obs)
    assert obs["state"].shape == (STATE_DIMS[env_id],)
    assert info["goal"]["pixels"].shape == (SIZE, SIZE, 3) and info["goal"]["state"].dtype == np.float32
    assert isinstance(info["success"], bool) and isinstance(info["distance"], float) and not info["success"]
    assert env.unwrapped.action_scale.shape == (7,)
    for t in range(5):
        obs, reward, term, trunc, info = env.step(env.action_space.sample())
        assert not term and trunc == (t == 4)
        assert set(info) >= {"success", "distance"}
    env.close()


@pytest.mark.parametrize("env_id", envs.ENV_IDS)
def test_same_seed_bit_identical_frames_and_goal(env_id):
    actions = np.random.default_rng(0).uniform(-1, 1, (4, 7)).astype(np.float32)
    runs = []
    for _ in range(2):
        env = envs.make_env(env_id, render_size=SIZE)
        obs, info = env.reset(seed=11)
        frames = [obs["pixels"]] + [env.step(a)[0]["pixels"] for a in actions]
        runs.append((np.stack(frames), info["goal"]["pixels"], info["goal"]["state"]))
        env.close()
    assert all(np.array_equal(a, b) for a, b in zip(*runs))
    assert not np.array_equal(runs[0][0][0], runs[0][1]), "goal image should differ from the start"


def test_goal_rendering_restores_the_sim():
    env = envs.make_env("simjepa/PickPlace-v0", render_size=SIZE)
    obs, info = env.reset(seed=3)
    assert np.linalg.norm(obs["state"][7:10] - obs["state"][13:16]) > 0.1  # cube not left at the target
    goal_state = info["goal"]["state"]
    assert np.linalg.norm(goal_state[7:10] - goal_state[13:16]) < 1e-3  # the goal shows it there


@pytest.mark.parametrize("env_id,seeds", [("simjepa/Reach-v0", (0, 1)), ("simjepa/Push-v0", (0, 1, 6, 8)),
                                          ("simjepa/PickPlace-v0", (0, 1))])
def test_expert_succeeds(env_id, seeds):
    """Push seeds 6 and 8: the cube wedged between fingers held 4 cm apart (``scene.PUSHER_GRIP`` was 0)."""
    env = envs.make_env(env_id, render_size=SIZE)
    expert = make_expert(env)
    for seed in seeds:
        obs, info = env.reset(seed=seed)
        expert.reset()
        trunc = False
        while not trunc:
            obs, _, _, trunc, info = env.step(expert.act(obs))
        assert info["success"], f"{env_id} seed {seed}: final distance {info['distance']:.3f}"


def test_demo_subgoals_follow_the_pick():
    above, down, grasp, lift, place = demo_subgoals("simjepa/PickPlace-v0", seed=0, render_size=SIZE)
    for g in (above, down, grasp, lift, place):
        assert g["pixels"].shape == (SIZE, SIZE, 3) and g["state"].shape == (16,)
    for g in (above, down):  # open, over the untouched cube, then lowered round it
        assert g["state"][6] < -0.9 and np.linalg.norm(g["state"][:2] - g["state"][7:9]) < 0.02
        assert abs(g["state"][9] - scene.CUBE_HALF) < 0.003
    assert above["state"][2] > down["state"][2] + 0.05 and down["state"][2] < 0.04
    assert grasp["state"][6] > -0.5 and lift["state"][6] > -0.5  # closed on the cube
    assert lift["state"][9] > grasp["state"][9] + 0.04  # cube lifted
    assert np.linalg.norm(place["state"][7:10] - place["state"][13:16]) < 0.05  # placed


def test_demo_subgoals_lead_round_the_cube_for_push():
    """Push's sub-goals: over the spot behind the cube, lowered there, then the env's goal image."""
    from envs.experts import SAFE_Z

    env = envs.make_env("simjepa/Push-v0", render_size=SIZE)
    start = env.reset(seed=3)[0]["state"]
    cube, target = start[7:9], start[13:15]
    behind_spot = cube - (target - cube) / np.linalg.norm(target - cube) * (scene.CUBE_HALF + 0.02)
    above, behind, goal = demo_subgoals("simjepa/Push-v0", seed=3, render_size=SIZE)
    for g in (above, behind, goal):
        assert g["pixels"].shape == (SIZE, SIZE, 3) and g["state"].shape == (16,)
        assert abs(g["state"][6] - scene.PUSHER_GRIP) < 0.1  # the expert pushes with the gripper partly closed
        assert abs(g["state"][5] - scene.pusher_yaw(target - cube)) < 0.12  # hand turned across the push
    assert np.linalg.norm(above["state"][:2] - behind_spot) < 0.02 and above["state"][2] > SAFE_Z - 0.02
    assert np.linalg.norm(behind["state"][:2] - behind_spot) < 0.02 and behind["state"][2] < 0.05
    assert np.allclose(behind["state"][7:9], cube, atol=0.01)  # not pushed yet
    env_goal = env.reset(seed=3)[1]["goal"]  # the last one is the env's own goal: the cube on the pad centre
    assert np.array_equal(goal["pixels"], env_goal["pixels"]) and np.array_equal(goal["state"], env_goal["state"])
    with pytest.raises(SimjepaError, match="phased task"):
        demo_subgoals("simjepa/Reach-v0", seed=0, render_size=SIZE)


def test_pusher_yaw_spreads_the_fingers_across_the_push():
    for angle in np.linspace(-np.pi, np.pi, 25):
        u = np.array([np.cos(angle), np.sin(angle)])
        yaw = scene.pusher_yaw(u)
        fingers = np.array([-np.sin(yaw), np.cos(yaw)])  # the hand's y axis, along which the fingers close
        assert abs(fingers @ u) < 1e-9 and abs(yaw) <= np.pi / 2 + 1e-9  # from yaw 0: within a quarter turn
    # mid-push the direction drifts across 90 degrees: stay near the current yaw, no half-turn
    assert scene.pusher_yaw(np.array([-0.01, 1.0]), current=1.5) == pytest.approx(np.pi / 2 + 0.01, abs=1e-3)
    assert scene.pusher_yaw(np.array([-0.01, 1.0])) == pytest.approx(-np.pi / 2 + 0.01, abs=1e-3)


def test_push_goal_image_poses_the_pusher_behind_the_target_on_the_cube_target_line():
    """Regression: the push direction was taken from the origin (body positions read before a forward pass)."""
    env = envs.make_env("simjepa/Push-v0", render_size=SIZE)
    for seed in (0, 5):
        obs, info = env.reset(seed=seed)
        cube, target = obs["state"][7:9], obs["state"][13:15]
        u = (target - cube) / np.linalg.norm(target - cube)
        g = info["goal"]["state"]
        assert np.allclose(g[:2], target - u * (scene.CUBE_HALF + 0.02), atol=2e-3)
        assert g[5] == pytest.approx(scene.pusher_yaw(u), abs=1e-3) and abs(g[6] - scene.PUSHER_GRIP) < 0.05


@pytest.mark.parametrize("bad", [np.full(7, np.nan), np.zeros(6), np.full(7, 1.01), [0, 0, 0, 0, 0, np.inf, 0], "x"])
def test_bad_actions_raise_one_line_error(bad):
    env = envs.make_env("simjepa/Reach-v0", render_size=SIZE)
    env.reset(seed=0)
    with pytest.raises(SimjepaError) as exc:
        env.unwrapped.step(bad)
    assert "\n" not in str(exc.value)
    env.unwrapped.step(np.full(7, 1.0 + 1e-7))  # within tolerance


@pytest.mark.parametrize("size", [0, 8, 5000, 64.5, "64", True])
def test_bad_render_size(size):
    with pytest.raises(SimjepaError):
        envs.make_env("simjepa/Reach-v0", render_size=size)


def test_unknown_env_id_names_close_matches():
    with pytest.raises(SimjepaError, match="simjepa/Reach-v0"):
        envs.make_env("simjepa/Rech-v0")


def test_advance_state_batched_and_close_to_env_in_free_space():
    env = envs.make_env("simjepa/Reach-v0", render_size=SIZE)
    obs, _ = env.reset(seed=2)
    scale = env.unwrapped.action_scale
    a = np.array([0.6, -0.4, 0.5, 0.2, -0.2, 0.3, -1.0], np.float32)
    nxt, *_ = env.step(a)
    pred = advance_state(obs["state"][:7], a, scale)
    assert np.abs(pred[:3] - nxt["state"][:3]).max() < 0.005
    assert np.abs(pred[3:6] - nxt["state"][3:6]).max() < 0.02
    batch = advance_state(np.zeros((4, 3, 7)), np.ones((4, 3, 7)), scale)
    assert batch.shape == (4, 3, 7) and batch.dtype == np.float32 and np.all(batch[..., 6] == 1)


def test_euler_roundtrip():
    e = np.random.default_rng(0).uniform(-1.2, 1.2, (20, 3))
    assert np.allclose(mat_to_euler(euler_to_mat(e)), e, atol=1e-9)


def test_assets_match_builder():
    for task in ("reach", "push", "pickplace"):
        with open(asset_path(task)) as f:
            assert f.read() == build_scene_xml(task, 256), f"run `python -m envs.scene` to refresh {task}.xml"


def test_adapter_on_reacher():
    env = envs.make_env("Reacher-v5", render_size=SIZE, max_episode_steps=3)
    obs, info = env.reset(seed=0)
    assert obs["pixels"].shape == (SIZE, SIZE, 3) and obs["pixels"].dtype == np.uint8
    assert obs["state"].dtype == np.float32 and obs["state"].shape == (17,)
    assert info["goal"]["state"].shape == (17,) and not np.array_equal(info["goal"]["state"], obs["state"])
    again, info2 = envs.make_env("Reacher-v5", render_size=SIZE).reset(seed=0)
    assert np.array_equal(again["pixels"], obs["pixels"]) and np.array_equal(info2["goal"]["pixels"], info["goal"]["pixels"])
    base = env.unwrapped
    expected = np.linalg.norm((base.get_body_com("fingertip") - base.get_body_com("target"))[:2])
    assert info["distance"] == pytest.approx(expected)
    trunc = False
    while not trunc:
        obs, _, _, trunc, info = env.step(np.zeros(2, np.float32))
        assert isinstance(info["success"], bool)
    with pytest.raises(SimjepaError):
        env.step(np.zeros(7))


def test_pushers_object_state_is_its_objects_centre():
    """Pusher-v5's caches label the object head from state[17:20]: the object body's centre."""
    env = envs.make_env("Pusher-v5", render_size=16)
    obs, _ = env.reset(seed=5)
    sl = envs.object_state("Pusher-v5")
    base = env.unwrapped
    for _ in range(3):
        assert np.allclose(obs["state"][sl], base.data.xpos[base.model.body("object").id], atol=1e-5)
        obs, *_ = env.step(env.action_space.sample())
    env.close()
