"""Scripted controllers of adapted Gymnasium envs: Pusher-v5's pushes, collection uses them, detours."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from envs import make_env
from envs.adapter_experts import PusherExpert, ReacherExpert, make_adapter_expert
from envs.collect import POLICIES, CollectPolicy
from simjepa_core.episodes import load_episode, read_manifest
from simjepa_core.errors import SimjepaError
from simjepa_cli import cli


@pytest.fixture(scope="module")
def pusher():
    env = make_env("Pusher-v5", render_size=16)
    yield env
    env.close()


def test_scripted_pusher_pushes_the_object_onto_the_goal(pusher):
    obs, info = pusher.reset(seed=87)  # solved at step 60 of 100 (a quick seed outside the tuning and test sets)
    expert = pusher.make_expert()
    assert isinstance(expert, PusherExpert) and info["distance"] > 0.17
    phases = set()
    for _ in range(65):
        obs, _, _, _, info = pusher.step(expert.act(obs))
        phases.add(expert.phase)
        if info["success"]:
            break
    assert info["success"] and info["distance"] < 0.05 and phases == {"approach", "push"}


def test_collect_pusher_with_the_expert_and_mixed(tmp_path):
    for policy in ("expert", "mixed"):
        out = tmp_path / policy
        args = ["collect", "--env", "Pusher-v5", "--episodes", "2", "--policy", policy, "--out", str(out),
                "--render-size", "16", "--max-steps", "4", "--quiet"]
        res = CliRunner().invoke(cli, args, standalone_mode=False)
        assert res.exit_code == 0, res.output
        assert read_manifest(out)["policy"] == policy
        ep = load_episode(out, 1)
        assert ep.actions.shape == (4, 7) and ep.states.shape == (5, 23)
        assert np.abs(ep.actions).max() <= 2.0


def test_mixed_pusher_episodes_start_with_a_detour(pusher):
    with_detour = []
    for seed in range(6):
        pusher.reset(seed=seed)
        policy = CollectPolicy("mixed", pusher, seed)
        if policy.expert.detour_left:
            with_detour.append((seed, policy))
    assert 0 < len(with_detour) < 6  # about half the episodes
    seed, policy = with_detour[0]
    expert = policy.expert
    point, left = expert.point.copy(), expert.detour_left
    assert point.shape == (3,) and 0.25 <= point[0] <= 0.7 and -0.45 <= point[1] <= 0.1 and 5 <= left <= 25
    pusher.reset(seed=seed)
    tip = pusher.unwrapped.data.xpos[expert.tip].copy()
    obs = None
    for _ in range(3):
        obs, *_ = pusher.step(expert.act(obs))
        assert expert.phase == "detour"
    assert expert.detour_left == left - 3
    moved = pusher.unwrapped.data.xpos[expert.tip]
    assert np.linalg.norm(moved - point) < np.linalg.norm(tip - point)  # heading for the detour point


def test_reacher_detour_draws_are_unchanged():
    """Moving Reacher's detour sampling into ReacherExpert kept the draws: mixed Reacher data is unchanged."""
    env = make_env("Reacher-v5", render_size=16)
    for seed in range(4):
        env.reset(seed=seed)
        policy = CollectPolicy("mixed", env, seed)
        rng = np.random.default_rng([seed, POLICIES.index("mixed"), 7919])
        rng.choice([-1.0, 1.0]), rng.uniform(0.0, 0.3)  # the OU gripper sign and the noise level come first
        if rng.random() < 0.5:
            r, phi = 0.21 * np.sqrt(rng.random()), rng.uniform(-np.pi, np.pi)
            np.testing.assert_array_equal(policy.expert.point, [r * np.cos(phi), r * np.sin(phi)])
            assert policy.expert.detour_left == int(rng.integers(5, 26))
        else:
            assert policy.expert.detour_left == 0
        assert isinstance(policy.expert, ReacherExpert)
    env.close()


def test_adapted_env_without_a_controller_is_a_one_line_error():
    env = make_env("InvertedPendulum-v5", render_size=16)
    with pytest.raises(SimjepaError, match="no scripted controller for InvertedPendulum-v5; ones exist for Reacher-v5 "
                                           "and Pusher-v5") as exc:
        make_adapter_expert(env)
    assert "\n" not in str(exc.value)
    env.close()


def test_dart_episodes_keep_the_experts_clean_labels_through_encode_and_proposal(tmp_path, capsys):
    """DART data: the noisy action is executed and stored as `actions`, the expert's clean one as the label;
    the label survives encode and is what `train-proposal --labels expert` fits."""
    from simjepa_cli import main
    from world_model.feature_cache import FeatureCache

    def ok(*args):
        try:
            main(list(args) + ["--quiet"])
        except SystemExit as exc:
            assert exc.code == 0, capsys.readouterr().err

    data, feats = tmp_path / "dart", tmp_path / "feats"
    ok("collect", "--env", "Pusher-v5", "--episodes", "2", "--policy", "dart", "--out", str(data), "--render-size", "32",
       "--max-steps", "6", "--seed-start", "100000")
    env = make_env("Pusher-v5", render_size=32)
    for i in range(2):
        ep = load_episode(data, i)
        assert ep.expert_actions.shape == ep.actions.shape == (6, 7)
        obs, _ = env.reset(seed=100000 + i)  # replaying the executed actions, the expert's act() gives the labels
        policy = CollectPolicy("dart", env, 100000 + i)
        for t in range(6):
            executed = policy.act(obs)
            np.testing.assert_array_equal(executed, ep.actions[t])
            np.testing.assert_array_equal(policy.label, ep.expert_actions[t])
            obs = env.step(executed)[0]
    env.close()
    assert any(not np.array_equal(load_episode(data, i).actions, load_episode(data, i).expert_actions) for i in range(2))
    ok("collect", "--env", "Pusher-v5", "--episodes", "1", "--policy", "expert", "--out", str(tmp_path / "exp"),
       "--render-size", "32", "--max-steps", "6", "--seed-start", "100000")
    assert load_episode(tmp_path / "exp", 0).expert_actions is None  # only dart records labels

    ok("encode", "--data", str(data), "--encoder", "vit_tiny", "--image-size", "32", "--out", str(feats), "--threads", "1")
    cache = FeatureCache.open(feats)
    np.testing.assert_array_equal(cache.expert_actions(0), load_episode(data, 0).expert_actions)
    prop = tmp_path / "p.pt"
    ok("train-proposal", "--features", str(feats), "--out", str(prop), "--steps", "2", "--batch-size", "2",
       "--pool-grid", "2", "--val-fraction", "0", "--labels", "expert", "--threads", "1")
    assert "2 with expert labels" in capsys.readouterr().out


def test_dagger_episodes_execute_the_proposal_and_keep_the_experts_labels(tmp_path):
    """benchmarks/dagger_collect.py: beta 0 executes only the proposal; the labels are the expert's actions there."""
    import subprocess
    import sys

    import torch

    from dataclasses import asdict

    from world_model.checkpoints import save_model, weights_hash
    from world_model.model_file import load_world_model
    from world_model.proposal import ProposalNet, ProposalNetConfig

    wm = load_world_model("default")
    module = getattr(wm.encoder, "encoder", wm.encoder)
    net = ProposalNet(ProposalNetConfig(feat_dim=wm.encoder.dim, grid=tuple(wm.grid), horizon=1, hidden=8, depth=1,
                                        action_bound=2.0))
    torch.nn.init.zeros_(net.mlp[-1].weight)
    torch.nn.init.constant_(net.mlp[-1].bias, 0.25)  # proposes atanh(0.25) * 2 on every dim, whatever it sees
    prop = tmp_path / "p.pt"
    save_model(prop, "proposal", asdict(net.config), net,
               encoder={"name": "default", "weights_hash": weights_hash(module.state_dict())}, info={})
    out = tmp_path / "dagger"
    res = subprocess.run([sys.executable, "benchmarks/dagger_collect.py", "--env", "Pusher-v5", "--proposal", str(prop),
                          "--episodes", "1", "--seed-start", "120000", "--beta", "0", "--max-steps", "3",
                          "--render-size", "32", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    ep = load_episode(out, 0)
    assert read_manifest(out)["policy"] == "dagger" and ep.actions.shape == ep.expert_actions.shape == (3, 7)
    np.testing.assert_allclose(ep.actions, np.full((3, 7), 2 * np.tanh(0.25)), atol=1e-6)  # the proposal's action
    again = subprocess.run([sys.executable, "benchmarks/dagger_collect.py", "--env", "Pusher-v5", "--proposal", str(prop),
                            "--episodes", "2", "--seed-start", "120000", "--beta", "0.5", "--max-steps", "3",
                            "--render-size", "32", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert again.returncode == 1 and "another proposal, beta or model" in again.stderr  # no resume into other options
    assert sorted(p.name for p in out.glob("episode_*")) == ["episode_000000.npz"]
    env = make_env("Pusher-v5", render_size=32)
    obs, _ = env.reset(seed=120000)
    expert = make_adapter_expert(env)
    for t in range(3):
        np.testing.assert_allclose(expert.act(obs), ep.expert_actions[t], atol=1e-6)  # labelled where the proposal went
        obs = env.step(ep.actions[t])[0]
    env.close()
