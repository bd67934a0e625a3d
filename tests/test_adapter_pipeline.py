"""Adapted Gymnasium envs: goals that show the task solved, views, the scripted controller, planner
defaults sized at training time, and the whole pipeline (collect, encode, train, plan) on Reacher-v5."""
from __future__ import annotations

import json

import gymnasium as gym
import mujoco
import numpy as np
import pytest

from envs import make_env
from envs.adapter import GymMujocoAdapter, reacher_ik
from simjepa_core.errors import SimjepaError
from planning.search_budget import LADDER, OFFICIAL, choose, size_search


def _fingertip_target(env) -> float:
    base = env.unwrapped
    return float(np.linalg.norm((base.get_body_com("fingertip") - base.get_body_com("target"))[:2]))


def test_reacher_goal_configuration_puts_the_fingertip_on_the_target():
    env = make_env("Reacher-v5", render_size=32)
    base = env.unwrapped
    for seed in range(12):
        obs, info = env.reset(seed=seed)
        goal_state = info["goal"]["state"]
        assert np.linalg.norm(goal_state[-2:]) < 0.005, seed  # the env's own fingertip - target entries
        # the goal's joint angles, put back into the simulator, reproduce it
        saved = base.data.qpos.copy()
        base.data.qpos[:2] = np.arctan2(goal_state[2:4], goal_state[0:2])
        mujoco.mj_forward(base.model, base.data)
        assert _fingertip_target(env) < 0.005
        base.data.qpos[:] = saved
        mujoco.mj_forward(base.model, base.data)
        assert not np.array_equal(info["goal"]["pixels"], obs["pixels"])
        assert info["success"] == (info["distance"] < 0.02)


def test_reacher_ik_is_exact_inside_the_annulus():
    model = make_env("Reacher-v5", render_size=16).unwrapped.model
    l1, l2 = 0.1, 0.11
    for point in ([0.2, 0.0], [0.0, -0.15], [-0.05, 0.08], [0.1, 0.1]):
        q = reacher_ik(model, np.array(point))
        tip = np.array([l1 * np.cos(q[0]) + l2 * np.cos(q[0] + q[1]), l1 * np.sin(q[0]) + l2 * np.sin(q[0] + q[1])])
        assert np.linalg.norm(tip - point) < 1e-9 and abs(q[1]) <= 3.0


@pytest.mark.parametrize("env_id", ["Reacher-v5", "Pusher-v5"])
def test_start_state_is_bit_identical_to_a_plain_reset_and_dynamics_unchanged(env_id):
    env = make_env(env_id, render_size=32)
    plain = gym.make(env_id)
    for seed in (3,):
        obs, _ = env.reset(seed=seed)
        raw, _ = plain.reset(seed=seed)
        assert np.array_equal(obs["state"][-raw.shape[0]:], raw.astype(np.float32))
        assert np.array_equal(env.unwrapped.data.qpos, plain.unwrapped.data.qpos)
        assert np.array_equal(env.unwrapped.data.qvel, plain.unwrapped.data.qvel)
        rng = np.random.default_rng(seed)
        for _ in range(5):  # enlarged markers are drawn only: trajectories match the plain env's
            a = rng.uniform(env.action_space.low, env.action_space.high).astype(np.float32)
            obs, *_ = env.step(a)
            raw, *_ = plain.step(a)
        assert np.array_equal(obs["state"][-raw.shape[0]:], raw.astype(np.float32))


def test_pusher_goal_has_the_object_on_the_goal():
    env = make_env("Pusher-v5", render_size=32)
    obs, info = env.reset(seed=4)
    g = info["goal"]["state"]
    assert np.linalg.norm(g[17:19] - g[20:22]) < 1e-6  # object centre on the goal in the plane
    assert info["distance"] > 0.17 and not info["success"]  # the episode itself starts unsolved


def test_shadow_maps_are_sized_for_the_frame_not_for_a_window():
    """Pusher-v5 asks for a 4096-texel shadow map; at 32 px the adapter draws 512, at 512 px the model's own."""
    small = make_env("Pusher-v5", render_size=32)
    small.reset(seed=0)
    assert small.unwrapped.model.vis.quality.shadowsize == 16 * 32
    assert make_env("Pusher-v5", render_size=512).unwrapped.model.vis.quality.shadowsize == 4096


def test_reacher_state_prefix_is_arm_proprioception_only():
    env = make_env("Reacher-v5", render_size=16)
    obs, _ = env.reset(seed=0)
    q, qd = env.unwrapped.data.qpos[:2], env.unwrapped.data.qvel[:2]
    np.testing.assert_allclose(obs["state"][:7], np.concatenate([np.cos(q), np.sin(q), qd, [0.0]]), atol=1e-6)


def test_camera_option_changes_the_frame_and_bad_names_are_one_line_errors():
    frames = {cam: make_env("Reacher-v5", render_size=32, cameras=(cam,)).reset(seed=0)[0]["pixels"]
              for cam in ("front", "env", "top")}
    assert np.array_equal(frames["front"], frames["top"])  # front = the adapter's default view
    assert not np.array_equal(frames["front"], frames["env"])
    with pytest.raises(SimjepaError, match="no camera 'nope'.*top"):
        GymMujocoAdapter.make("Reacher-v5", render_size=32, camera="nope")


def test_generic_env_goal_and_success_rule():
    env = make_env("InvertedPendulum-v5", render_size=16)
    obs, info = env.reset(seed=0)
    assert set(info["goal"]) == {"pixels", "state"} and isinstance(info["success"], bool)
    assert info["distance"] == pytest.approx(np.linalg.norm(env.unwrapped.data.qpos - env._goal_qpos))


def test_scripted_reacher_reaches_the_target():
    env = make_env("Reacher-v5", render_size=16)
    expert = env.make_expert()
    for seed in (500, 501, 502, 503):
        obs, _ = env.reset(seed=seed)
        expert.reset()
        for _ in range(30):
            obs, _, _, _, info = env.step(expert.act(obs))
        assert info["success"] and info["distance"] < 0.02, seed


def test_search_budget_fits_the_target_and_never_exceeds_the_official_search():
    fast = choose(lambda s, i, h: 1e-6 * s * i * h, 1.0)
    assert (fast.samples, fast.iterations, fast.horizon, fast.topk) == (400, 10, 2, 10)
    slow = choose(lambda s, i, h: 1e-3 * s * i * h, 1.0)  # 400 x 10 x 2 would take 8 s
    assert slow.estimated_s <= 1.0 and slow.samples * slow.iterations <= 500 and slow.horizon == 2
    hopeless = choose(lambda s, i, h: 10.0, 1.0)
    assert (hopeless.samples, hopeless.iterations, hopeless.horizon) == (*LADDER[-1], 1)
    assert all(s <= OFFICIAL["samples"] and i <= OFFICIAL["iterations"] for s, i in LADDER)


def test_size_search_fits_timings_affinely():
    class _WM:  # the timer is injected, so the model is never run
        pass

    timer = lambda samples, horizon: 0.002 + 1e-4 * samples * (1 + horizon)  # noqa: E731
    b = size_search(_WM(), 1.0, timer=timer)
    cost = b.iterations * (0.002 + 1e-4 * b.samples * (1 + b.horizon))
    assert b.estimated_s == pytest.approx(cost) and cost <= 1.0
    assert (b.samples, b.iterations, b.horizon) == (300, 10, 2)  # 400 x 10 would take 1.22 s


def test_adapter_pipeline_end_to_end(tmp_path, capsys):
    """collect 2 episodes -> encode (vit_tiny) -> 3 training steps -> one planned step with the recorded defaults."""
    from simjepa_cli import main
    from world_model.model_file import load_world_model

    def run(*args):
        with pytest.raises(SystemExit) as exc:
            main(list(args) + ["--quiet"])
        return exc.value.code

    def ok(*args, quiet=True):
        try:
            main(list(args) + (["--quiet"] if quiet else []))
        except SystemExit as exc:
            assert exc.code == 0, capsys.readouterr().err

    data, feats, model = tmp_path / "data", tmp_path / "feats", tmp_path / "model"
    ok("collect", "--env", "Reacher-v5", "--episodes", "2", "--policy", "mixed", "--render-size", "32", "--max-steps",
       "6", "--seed-start", "100000", "--out", str(data))
    ok("encode", "--data", str(data), "--encoder", "vit_tiny", "--image-size", "32", "--out", str(feats), "--threads", "1")
    ok("train", "--features", str(feats), "--out", str(model), "--config", "tiny", "--steps", "3", "--batch-size", "2",
       "--val-fraction", "0.5", "--workers", "0", "--context", "2", "--rollout", "1", "--val-rollout", "2")
    planner = load_world_model(model, with_encoder=False).planner
    assert {"samples", "iterations", "horizon", "topk"} <= set(planner)
    assert planner["samples"] * planner["iterations"] <= 400 * 10
    ok("evaluate", "--env", "Reacher-v5", "--episodes", "1", "--seed-start", "1000", "--model", str(model),
       "--max-steps", "1", "--out", str(tmp_path / "eval"), quiet=False)
    res = json.loads((tmp_path / "eval" / "results.json").read_text())
    row = res["episodes"][0]
    assert row["steps"] == 1 and res["planner"]["samples"] == planner["samples"]
    # the learned proposal on the same caches (a 2x2 pool: the grid here is 2x2), alone and seeding the search
    prop = tmp_path / "proposal.pt"
    ok("train-proposal", "--features", str(feats), "--out", str(prop), "--steps", "3", "--batch-size", "2",
       "--pool-grid", "2", "--val-fraction", "0.5", "--threads", "1")
    for policy in ("proposal", "planner"):
        out = tmp_path / f"eval_{policy}"
        ok("evaluate", "--env", "Reacher-v5", "--episodes", "1", "--seed-start", "1000", "--model", str(model), "--policy",
           policy, "--proposal", str(prop), "--max-steps", "1", "--out", str(out), quiet=False)
        res = json.loads((out / "results.json").read_text())
        assert res["policy"] == policy and res["episodes"][0]["steps"] == 1
        assert res["proposal"]["weights_hash"] and res["protocol"] == "image-goal"
    # the attentive head (learned queries over every token) through the same commands, seeding the search
    att = tmp_path / "proposal_att.pt"
    ok("train-proposal", "--features", str(feats), "--out", str(att), "--steps", "3", "--batch-size", "2", "--head",
       "attentive", "--queries", "2", "--val-fraction", "0.5", "--threads", "1")
    ok("evaluate", "--env", "Reacher-v5", "--episodes", "1", "--seed-start", "1000", "--model", str(model), "--proposal",
       str(att), "--max-steps", "1", "--out", str(tmp_path / "eval_att"), quiet=False)
    res = json.loads((tmp_path / "eval_att" / "results.json").read_text())
    assert res["episodes"][0]["steps"] == 1 and res["proposal"]["path"] == str(att)
    assert run("collect", "--env", "InvertedPendulum-v5", "--episodes", "1", "--policy", "expert", "--out",
               str(tmp_path / "p")) == 2  # an adapted env without a scripted controller
