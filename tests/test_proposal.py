"""The learned proposal: training resumes after a kill, the CEM hook is used, the image-goal protocol holds."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from planning.agent import Agent
from planning.cem import CEMConfig, cem
from planning.planner import PlannerConfig
from planning.proposal import ProposalPrior, fit_horizon
from planning.toy import ToyWorldModel, toy_advance_state
from tests.helpers import StateTrap, cli_exit_code
from world_model.checkpoints import load_file
from world_model.proposal import (ProposalError, ProposalNet, ProposalNetConfig, ProposalTrainConfig, load_proposal,
                                  pool_features, train_proposal)

GRID, DIM = (4, 4), 12  # the toy world's token layout


class FakeCache:
    """A feature cache in memory: what ``train_proposal`` reads of ``world_model.feature_cache.FeatureCache``."""

    def __init__(self, n: int = 6, steps: int = 9, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.root = f"fake{seed}"
        self.grid, self.dim = GRID, DIM
        self.encoder = {"name": "toy", "config": {}, "weights_hash": "abc"}
        self.episodes = list(range(n))
        self._eps = [(rng.normal(size=(steps + 1, 16, DIM)).astype(np.float16),
                      rng.uniform(-1, 1, (steps, 7)).astype(np.float32),
                      rng.normal(size=(steps + 1, 16)).astype(np.float32)) for _ in range(n)]

    def episode(self, i: int):
        return self._eps[i]


def _cfg(tmp_path: Path, name: str, **kw) -> ProposalTrainConfig:
    base = dict(out=str(tmp_path / name), steps=6, batch_size=8, hidden=32, depth=2, horizon=3, warmup=2, ckpt_every=2,
                val_fraction=0.2, progress=False)
    return ProposalTrainConfig(**{**base, **kw})


@pytest.mark.parametrize("head", ["pooled", "attentive"])
def test_proposal_trains_and_resumes_after_a_kill_to_the_same_weights(tmp_path, head):
    whole = train_proposal(_cfg(tmp_path, "whole.pt", head=head), [FakeCache()])
    assert whole["steps"] == 6 and np.isfinite(whole["train_l1"])
    cut = train_proposal(_cfg(tmp_path, "cut.pt", stop_after=4, head=head), [FakeCache()])
    assert cut["stopped_at"] == 4 and not (tmp_path / "cut.pt").exists()
    train_proposal(_cfg(tmp_path, "cut.pt", head=head), [FakeCache()])  # the same command again: resumes at step 4
    a, b = load_file(tmp_path / "whole.pt")["state_dict"], load_file(tmp_path / "cut.pt")["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    steps = [int(line.split('"step": ')[1].split(",")[0]) for line in (tmp_path / "cut.pt.run" / "log.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6]  # no duplicated rows after the resume
    again = train_proposal(_cfg(tmp_path, "whole.pt", head=head), [FakeCache()])  # a finished run, re-run: no step
    assert again["steps"] == 6 and again["train_l1"] == whole["train_l1"]  # reports what the run logged
    assert all(torch.equal(a[k], load_file(tmp_path / "whole.pt")["state_dict"][k]) for k in a)
    net = load_proposal(tmp_path / "cut.pt")
    assert net.encoder["weights_hash"] == "abc" and net.config.horizon == 3 and net.config.head == head
    out = net.propose(torch.randn(16, DIM), np.zeros(7), torch.randn(16, DIM))
    assert out.shape == (3, 7) and out.abs().max() <= 1


def test_a_run_of_other_settings_is_refused(tmp_path):
    train_proposal(_cfg(tmp_path, "p.pt", stop_after=2), [FakeCache()])
    with pytest.raises(ProposalError, match="other settings"):
        train_proposal(_cfg(tmp_path, "p.pt", hidden=16), [FakeCache()])


def test_training_learns_a_goal_dependent_action(tmp_path):
    """The action is the sign of the goal's first feature: only a net that reads the goal can fit it."""
    cache = FakeCache(n=12, steps=5, seed=1)
    for i in range(len(cache.episodes)):
        feats, actions, states = cache._eps[i]
        sign = 1.0 if i % 2 else -1.0
        feats[-1, :, 0] = 2 * sign
        actions[:] = 0
        actions[:, 0] = 0.8 * sign
    summary = train_proposal(_cfg(tmp_path, "g.pt", steps=150, batch_size=32, lr=3e-3, last_frame_prob=1.0, val_fraction=0.0),
                             [cache])
    assert summary["train_l1"] < 0.05


def test_the_proposal_covers_the_datas_action_range(tmp_path):
    """Pusher-v5's torques reach 2: a proposal squashed into [-1, 1] could not fit them (it used to be)."""
    cache = FakeCache(n=8, steps=5, seed=3)
    for i in range(len(cache.episodes)):
        cache._eps[i][1][:] = 0
        cache._eps[i][1][:, 0] = 1.8
        cache._eps[i][1][0, 1] = -2.0  # the largest |action| sets the bound
    summary = train_proposal(_cfg(tmp_path, "b.pt", steps=150, batch_size=32, lr=3e-3, val_fraction=0.0), [cache])
    net = load_proposal(tmp_path / "b.pt")
    assert net.config.action_bound == 2.0
    assert summary["train_l1"] < 0.05  # 1.8 is reachable; under a [-1, 1] squash the error would stay >= 0.8 / 7
    assert float(net.propose(torch.randn(16, DIM), np.zeros(7), torch.randn(16, DIM))[0, 0]) > 1.5
    unit = train_proposal(_cfg(tmp_path, "u.pt"), [FakeCache()])  # data inside [-1, 1]: the bound stays 1
    assert unit["steps"] == 6 and load_proposal(tmp_path / "u.pt").config.action_bound == 1.0


def _blank_cache(seed: int, label) -> FakeCache:
    """16 episodes of blank frames, states and actions; ``label(states, actions, rng)`` writes what a test needs."""
    cache = FakeCache(n=16, steps=8, seed=seed)
    rng = np.random.default_rng(seed + 1)
    for i in range(len(cache.episodes)):
        feats, actions, states = cache._eps[i]
        feats[:], states[:], actions[:] = 0, 0, 0
        label(states, actions, rng)
    return cache


def _velocity_cache() -> FakeCache:
    """The action is the sign of the proprio's change since the previous step: one state alone cannot tell it."""

    def label(states, actions, rng):
        pos = rng.uniform(-1, 1, len(states)).astype(np.float32)  # states[t, 0] random: the step to it is random
        states[:, 0] = pos
        actions[:, 0] = 0.8 * np.sign(pos[:-1] - np.concatenate([pos[:1], pos[:-2]]))  # velocity into step t

    return _blank_cache(4, label)


def test_proprio_delta_lets_the_proposal_read_a_velocity(tmp_path):
    train = dict(steps=300, batch_size=64, lr=3e-3, val_fraction=0.0, horizon=1)
    with_delta = train_proposal(_cfg(tmp_path, "d.pt", proprio_delta=True, **train), [_velocity_cache()])
    without = train_proposal(_cfg(tmp_path, "n.pt", **train), [_velocity_cache()])
    assert with_delta["train_l1"] < 0.03 < 0.06 < without["train_l1"]
    net = load_proposal(tmp_path / "d.pt")
    assert net.config.proprio_delta and net.state_mean.shape == (14,)
    f, g = torch.zeros(16, DIM), torch.zeros(16, DIM)
    state = np.array([0.2, 0, 0, 0, 0, 0, 0], np.float32)
    up = net.propose(f, state, g, prev_state=state - np.array([0.5, 0, 0, 0, 0, 0, 0], np.float32))
    down = net.propose(f, state, g, prev_state=state + np.array([0.5, 0, 0, 0, 0, 0, 0], np.float32))
    assert float(up[0, 0]) > 0.5 and float(down[0, 0]) < -0.5


def test_expert_labels_replace_the_executed_actions_where_recorded(tmp_path):
    labelled = FakeCache(n=8, steps=5, seed=6)
    labelled.expert_actions = lambda i: np.full((5, 7), 0.5, np.float32)  # what a dart cache returns
    plain = FakeCache(n=8, steps=5, seed=7)
    for i in plain.episodes:
        plain._eps[i][1][:] = -0.5
    train = dict(steps=150, batch_size=32, lr=3e-3, val_fraction=0.0, last_frame_prob=1.0)
    summary = train_proposal(_cfg(tmp_path, "e.pt", labels="expert", **train), [labelled])
    assert summary["expert_labelled_episodes"] == 8 and summary["train_l1"] < 0.05  # random executed actions ignored
    with pytest.raises(ProposalError, match="policy dart"):
        train_proposal(_cfg(tmp_path, "x.pt", labels="expert"), [plain])
    with pytest.raises(ProposalError, match="labels"):
        _cfg(tmp_path, "y.pt", labels="teacher").check()


def _object_cache(n: int = 16, steps: int = 8, seed: int = 8) -> FakeCache:
    """A bright token marks an 'object' on the 4x4 grid; states[:, 7:10] hold its position (metres)."""
    cache = FakeCache(n=n, steps=steps, seed=seed)
    rng = np.random.default_rng(seed)
    for i in range(n):
        feats, _, states = cache._eps[i]
        k = rng.integers(0, 16, len(states))
        feats[:] = 0  # nothing else in the frame: a few training frames cannot be memorised instead
        feats[np.arange(len(states)), k, :4] = 2.0
        states[:, 7:10] = np.stack([k % 4, k // 4, np.zeros_like(k)], -1) * 0.05
    return cache


def test_the_object_head_learns_to_locate_the_object_from_the_frame(tmp_path):
    # the pooled head keeps it fast; the attentive head's object head is the same layer on its output
    train = dict(steps=200, batch_size=64, lr=3e-3, val_fraction=0.25, head="pooled", pool_grid=4)
    located = train_proposal(_cfg(tmp_path, "o.pt", locate_object=1.0, **train), [_object_cache()], [slice(7, 10)])
    # positions spread over 0..0.15 m (a constant guess errs by ~0.033 m averaged over x, y, z); a head that
    # reads the bright token is exact on held-out episodes
    assert located["val_object_m"] < 0.005
    net = load_proposal(tmp_path / "o.pt")
    assert net.config.object_dim == 3 and net.object_std.shape == (3,)
    out = net.propose(torch.randn(16, DIM), np.zeros(7), torch.randn(16, DIM))  # acting: frames and proprio only
    assert out.shape == (3, 7)
    plain = train_proposal(_cfg(tmp_path, "p.pt", **{**train, "steps": 4}), [_object_cache()], [slice(7, 10)])
    assert "val_object_m" not in plain and load_proposal(tmp_path / "p.pt").config.object_dim == 0  # off by default


def test_the_object_head_skips_caches_without_an_object_and_resumes_exactly(tmp_path):
    sources = lambda: [_object_cache(n=6, steps=5), FakeCache(n=6, steps=5, seed=9)]  # noqa: E731
    whole = train_proposal(_cfg(tmp_path, "w.pt", locate_object=0.5), sources(), [slice(7, 10), None])
    assert whole["steps"] == 6
    train_proposal(_cfg(tmp_path, "c.pt", locate_object=0.5, stop_after=4), sources(), [slice(7, 10), None])
    train_proposal(_cfg(tmp_path, "c.pt", locate_object=0.5), sources(), [slice(7, 10), None])
    a, b = load_file(tmp_path / "w.pt")["state_dict"], load_file(tmp_path / "c.pt")["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a) and "locate.weight" in a
    with pytest.raises(ProposalError, match="other settings"):  # the weight is part of the run's identity
        train_proposal(_cfg(tmp_path, "c.pt", locate_object=0.1, steps=8), sources(), [slice(7, 10), None])
    with pytest.raises(ProposalError, match="records an object"):
        train_proposal(_cfg(tmp_path, "n.pt", locate_object=0.5), [FakeCache()], [None])
    with pytest.raises(ProposalError, match="no object position"):  # a slice past the states' end
        train_proposal(_cfg(tmp_path, "s.pt", locate_object=0.5), [FakeCache()], [slice(20, 23)])


def test_the_object_readout_acts_on_the_object_estimate_alone(tmp_path):
    """readout='object': the MLP reads the proprio and the object head's estimates, not the frames' features;
    an action fixed by where the object is is still learned through that bottleneck, on held-out episodes."""
    cache = _object_cache(n=24)
    for feats, actions, states in cache._eps:
        actions[:] = 0.0
        actions[:, 0] = states[:-1, 7] * 10 - 0.75  # the object's x (0 .. 0.15 m) -> -0.75 .. 0.75
        states[:, :7] = 0.0  # proprio carries nothing here (the object moves at random from frame to frame)
    train = dict(steps=300, batch_size=64, lr=3e-3, val_fraction=0.25, head="pooled", pool_grid=4, last_frame_prob=1.0,
                 horizon=1)
    summary = train_proposal(_cfg(tmp_path, "r.pt", locate_object=1.0, readout="object", **train), [cache], [slice(7, 10)])
    net = load_proposal(tmp_path / "r.pt")
    assert net.config.readout == "object"
    assert net.mlp[0].in_features == net.config.proprio_in + 3 * 3  # no frame features reach the MLP
    # a constant guess errs by ~0.375 / 7 on the 7 action dims; the estimate carries the object's x
    assert summary["val_object_m"] < 0.005 and summary["val_l1"] < 0.02

    def frame(k: int) -> torch.Tensor:  # the object alone, at token k (x = 0.05 * (k % 4) m)
        f = torch.zeros(16, DIM)
        f[k, :4] = 2.0
        return f

    left, right = (float(net.propose(frame(k), np.zeros(7), frame(6))[0, 0]) for k in (4, 7))  # x = 0 and 0.15 m
    assert left < -0.4 and right > 0.4  # labels -0.75 and 0.75: the object's place decides the action
    with pytest.raises(ProposalError, match="locate-object"):
        _cfg(tmp_path, "x.pt", readout="object").check()
    with pytest.raises(ProposalError, match="object head"):
        ProposalNet(ProposalNetConfig(feat_dim=DIM, grid=GRID, readout="object"))
    with pytest.raises(ProposalError, match="readout"):
        _cfg(tmp_path, "y.pt", readout="pixels").check()
    older = {k: v for k, v in vars(net.config).items() if k != "readout"}  # files written before the option
    assert ProposalNetConfig.from_dict(older).readout == "frames"


def test_the_cli_reads_object_labels_from_the_caches_env(tmp_path, capsys):
    """`train-proposal --locate-object` takes the cube's position of Push episodes (envs.object_state) and
    refuses caches whose env names no object (Reach)."""
    from simjepa_cli import main

    def run(*args):
        try:
            main(list(args) + ["--quiet"])
        except SystemExit as exc:
            return exc.code
        return 0

    for task in ("Push", "Reach"):
        data, feats = tmp_path / f"data_{task}", tmp_path / f"feats_{task}"
        assert run("collect", "--env", f"simjepa/{task}-v0", "--episodes", "2", "--policy", "expert", "--render-size", "32",
                   "--max-steps", "5", "--seed-start", "200000", "--out", str(data)) == 0
        assert run("encode", "--data", str(data), "--encoder", "vit_tiny", "--image-size", "32", "--out", str(feats),
                   "--threads", "1") == 0
    capsys.readouterr()
    common = ["--steps", "2", "--batch-size", "4", "--head", "attentive", "--threads", "1", "--locate-object", "1"]
    assert run("train-proposal", "--features", str(tmp_path / "feats_Push"), "--out", str(tmp_path / "p.pt"), *common) == 0
    assert "object located to" in capsys.readouterr().out
    assert load_proposal(tmp_path / "p.pt").config.object_dim == 3
    assert run("train-proposal", "--features", str(tmp_path / "feats_Push"), "--out", str(tmp_path / "p.pt"), *common) == 0
    assert "trained 2 steps" in capsys.readouterr().out  # the same command after it finished: a summary, no traceback
    assert run("train-proposal", "--features", str(tmp_path / "feats_Push"), "--out", str(tmp_path / "ro.pt"), *common,
               "--readout", "object") == 0
    assert load_proposal(tmp_path / "ro.pt").config.readout == "object"
    no_head = common[:-2]  # without --locate-object 1
    assert run("train-proposal", "--features", str(tmp_path / "feats_Push"), "--out", str(tmp_path / "x.pt"), *no_head,
               "--readout", "object") == 2
    assert "--locate-object" in capsys.readouterr().err and not (tmp_path / "x.pt.run").exists()
    assert run("train-proposal", "--features", str(tmp_path / "feats_Reach"), "--out", str(tmp_path / "r.pt"), *common) == 2
    assert "records an object" in capsys.readouterr().err


@pytest.mark.parametrize("head", ["pooled", "attentive"])
def test_episode_inputs_built_in_chunks_equal_the_whole_episodes(head):
    """pool_sources builds each episode's inputs a few frames at a time (memory); the bits must not change."""
    from world_model.proposal import _episode_input, frame_input

    feats = np.random.default_rng(0).normal(size=(21, 16, DIM)).astype(np.float16)
    shape = ProposalNetConfig(feat_dim=DIM, grid=GRID, pool_grid=2, head=head)
    whole = frame_input(torch.from_numpy(feats.astype(np.float32)), shape).half()
    for chunk in (1, 8, 64):
        assert torch.equal(_episode_input(feats, shape, chunk=chunk), whole)


def test_mixed_encoders_are_refused(tmp_path):
    other = FakeCache(seed=2)
    other.encoder = {**other.encoder, "weights_hash": "zzz"}
    with pytest.raises(ProposalError, match="different encoders"):
        train_proposal(_cfg(tmp_path, "m.pt"), [FakeCache(), other])


def test_pool_features_is_the_same_for_raw_and_layer_normed_input():
    x = torch.randn(2, 16, DIM) * 3 + 1
    normed = torch.nn.functional.layer_norm(x, (DIM,))
    assert torch.allclose(pool_features(x, GRID, 2), pool_features(normed, GRID, 2), atol=1e-4)
    assert pool_features(x, GRID, 2).shape == (2, 5 * DIM)


def test_cem_scores_the_anchor_and_samples_around_it():
    target = torch.tensor([[0.7, -0.4, 0.3, 0, 0, 0, 0.9], [0.5, 0.5, -0.5, 0, 0, 0, 0.9]])

    def score(c):
        return (c - target).abs().sum((1, 2))

    cfg = CEMConfig(samples=16, topk=4, iterations=1, anchor_fraction=0.5, anchor_std=0.0)
    seeded = cem(score, 7, cfg, anchor=target)
    plain = cem(score, 7, cfg)
    assert seeded.energy == 0.0 and torch.equal(seeded.plan, target)
    assert plain.energy > 0.5


class ConstantProposal:
    """An initial-mean provider that always proposes the same plan, and records what it was given."""

    def __init__(self, action: np.ndarray) -> None:
        self.action = torch.as_tensor(action, dtype=torch.float32)
        self.calls: list[tuple] = []

    def __call__(self, feats, state, goal_feats, horizon, prev_state=None):
        self.calls.append((feats.clone(), np.array(state), goal_feats.clone(), horizon,
                           None if prev_state is None else np.array(prev_state)))
        return self.action.expand(horizon, -1).clone()


def _toy_agent(proposal=None, **settings):
    world = ToyWorldModel()
    cfg = PlannerConfig.from_flat(world.planner, {"samples": 8, "iterations": 1, "topk": 2, "horizon": 2, **settings})
    return Agent(world, cfg, advance_state=toy_advance_state, proposal=proposal), world


def test_the_agent_starts_its_search_at_the_proposal():
    """With a near-zero search std the plan is the initial mean: the proposal's if the hook is used, else ~0."""
    wanted = np.array([0.6, -0.5, 0.4, 0, 0, 0, 0.7], np.float32)
    tight = {"init_std": 1e-6, "gripper_init_std": 0.0, "anchor_std": 0.0}
    agent, world = _toy_agent(ConstantProposal(wanted), **tight)
    obs = {"pixels": world.render(np.zeros(7)), "state": np.zeros(7, np.float32)}
    goal = world.render(np.array([-0.06, 0, 0, 0, 0, 0, -1.0]))  # the energy alone would go to -x
    action = agent.act(obs, goal)
    np.testing.assert_allclose(action, wanted, atol=1e-4)
    plain, _ = _toy_agent(None, **tight)
    assert np.abs(plain.act(obs, goal)).max() < 1e-3


def test_the_energy_still_decides_over_a_bad_proposal():
    agent, world = _toy_agent(ConstantProposal(np.array([1.0, 0, 0, 0, 0, 0, -1.0])), samples=64, iterations=3, topk=8)
    obs = {"pixels": world.render(np.zeros(7)), "state": np.zeros(7, np.float32)}
    action = agent.act(obs, world.render(np.array([-0.06, 0, 0, 0, 0, 0, -1.0])))
    assert action[0] < 0.0  # the proposal says +x; the energy picks a plan towards the goal at -x


def _toy_net() -> ProposalNet:
    torch.manual_seed(0)
    return ProposalNet(ProposalNetConfig(feat_dim=DIM, grid=GRID, horizon=2, hidden=16, depth=1)).eval()


def test_the_proposal_path_never_reads_the_goal_state():
    image_state = np.array([0.05, 0.02, 0, 0, 0, 0, -1.0])
    prior = ProposalPrior(_toy_net())
    agent, world = _toy_agent(prior)
    obs = {"pixels": world.render(np.zeros(7)), "state": np.zeros(7, np.float32)}
    image = world.render(image_state)
    alone, _ = _toy_agent(prior, search="none")  # the proposal alone (evaluate --policy proposal)
    for actor in (agent, alone):
        actor.reset()
        expected = actor.act(obs, {"pixels": image})
        for goal in (image, {"pixels": image, "state": np.full(7, np.nan)}, StateTrap(pixels=image, state=image_state)):
            actor.reset()
            assert np.array_equal(actor.act(obs, goal), expected)


def test_the_proposal_sees_the_current_frame_proprio_and_goal_image():
    spy = ConstantProposal(np.zeros(7, np.float32))
    agent, world = _toy_agent(spy, horizon=3)
    state = np.array([0.01, 0.02, 0.03, 0, 0, 0, -1.0], np.float32)
    goal_state = np.array([0.05, 0, 0, 0, 0, 0, -1.0])
    agent.act({"pixels": world.render(state), "state": np.concatenate([state, [9, 9, 9]]).astype(np.float32)},
              world.render(goal_state))
    feats, seen_state, goal_feats, horizon, prev = spy.calls[-1]
    assert horizon == 3 and seen_state.shape == (7,) and np.allclose(seen_state, state)  # only the arm's proprio
    assert torch.allclose(feats, world.encode(world.render(state)[None])[0], atol=1e-5)
    goal_ln = torch.nn.functional.layer_norm(world.encode(world.render(goal_state)[None])[0], (DIM,))
    assert torch.allclose(goal_feats, goal_ln, atol=1e-5)
    assert prev is None  # the episode's first step: no previous observation

    # the next re-plan also sees the previous observation's proprio (the proposal's velocity input)
    agent._queue.clear()
    moved = state + np.array([0.01, 0, 0, 0, 0, 0, 0], np.float32)
    agent.act({"pixels": world.render(moved), "state": moved}, world.render(goal_state))
    _, seen_state, _, _, prev = spy.calls[-1]
    assert np.allclose(seen_state, moved) and prev.shape == (7,) and np.allclose(prev, state)
    agent.reset()
    agent.act({"pixels": world.render(moved), "state": moved}, world.render(goal_state))
    assert spy.calls[-1][4] is None  # reset forgets it


def test_an_adapted_envs_action_box_is_searched_whole():
    """Off the arm's 7-D deltas (Pusher-v5's 7 torques in [-2, 2]) the search covers the env's box and every dim."""
    from gymnasium import spaces

    from planning.rollout import _reset_policy

    class TorqueEnv:  # what the rollout reads of an adapted env: an action space, no arm action_scale
        action_space = spaces.Box(-2.0, 2.0, (7,), np.float32)
        unwrapped = object()

    agent, world = _toy_agent(None, samples=200, iterations=10, topk=10, init_std=2.0)
    shared = agent.config
    _reset_policy(agent, TorqueEnv(), 0)
    cem_cfg = agent.config.cem
    assert (cem_cfg.action_low, cem_cfg.action_high, cem_cfg.arm_actions) == (-2.0, 2.0, False)
    assert shared.cem.action_low == -1.0  # the config it was built with is not changed
    result = cem(lambda c: (c - 1.7).abs().sum((1, 2)), 7, cem_cfg)
    assert bool((result.mean > 1.0).all())  # every dim, rotation and "gripper" included, moved past the arm's box
    frozen = cem(lambda c: (c - 1.7).abs().sum((1, 2)), 7, CEMConfig(samples=64, iterations=3, topk=8))
    assert torch.equal(frozen.plan[:, 3:6], torch.zeros(2, 3))  # the arm's search keeps rotation frozen

    class MixedBoxEnv(TorqueEnv):  # per-dim bounds: the search stays where every dim's action is valid
        action_space = spaces.Box(np.array([-0.4, -3.0]), np.array([0.4, 3.0]), dtype=np.float32)

    _reset_policy(agent, MixedBoxEnv(), 0)
    assert (agent.config.cem.action_low, agent.config.cem.action_high) == (np.float32(-0.4), np.float32(0.4))


def test_fit_horizon_cuts_or_repeats_the_last_action():
    a = torch.arange(14, dtype=torch.float32).reshape(2, 7)
    assert torch.equal(fit_horizon(a, 1), a[:1])
    assert torch.equal(fit_horizon(a, 4)[2:], a[1:].expand(2, 7))


def test_cli_errors_are_one_line_exit_2(tmp_path):
    assert cli_exit_code(["train-proposal", "--help"]) == 0
    assert cli_exit_code(["train-proposal", "--features", str(tmp_path / "none"), "--out", str(tmp_path / "p.pt")]) == 2
    assert cli_exit_code(["train-proposal", "--features", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert cli_exit_code(["evaluate", "--env", "simjepa/Push-v0", "--episodes", "1", "--policy", "proposal",
                          "--proposal", "none", "--out", str(tmp_path / "e")]) == 2
    assert cli_exit_code(["evaluate", "--env", "simjepa/Push-v0", "--episodes", "1", "--policy", "random",
                          "--proposal", str(tmp_path / "p.pt"), "--out", str(tmp_path / "e")]) == 2


def _coin_cache() -> FakeCache:
    """Labels +0.8 or -0.8 on joint 0 by a coin the inputs do not show: a teacher's threshold the frame cannot resolve."""

    def label(states, actions, rng):
        actions[:, 0] = 0.8 * rng.choice([-1.0, 1.0], len(actions))

    return _blank_cache(8, label)


def test_several_modes_hold_both_branches_of_a_decision_one_regressor_cannot(tmp_path):
    train = dict(steps=300, batch_size=64, lr=3e-3, val_fraction=0.25, horizon=1)
    one = train_proposal(_cfg(tmp_path, "one.pt", **train), [_coin_cache()])
    two = train_proposal(_cfg(tmp_path, "two.pt", modes=2, **train), [_coin_cache()])
    assert "val_l1_best_mode" not in one
    # one regressor is wrong by 1.6 on half the labels whatever it outputs; the nearest of two modes is never wrong
    assert two["val_l1_best_mode"] < 0.02 < 0.09 < one["val_l1"]
    f, g = torch.zeros(16, DIM), torch.zeros(16, DIM)
    net = load_proposal(tmp_path / "two.pt")
    assert net.config.modes == 2 and abs(float(net.propose(f, np.zeros(7), g)[0, 0])) > 0.6  # a committed branch
    zeros = torch.zeros(1, net.config.frame_dim)
    modes, scores = net(zeros, torch.zeros(1, 7), zeros, all_modes=True)
    assert modes.shape == (1, 2, 1, 7) and scores.shape == (1, 2)
    assert sorted(float(m) for m in modes[0, :, 0, 0]) == pytest.approx([-0.8, 0.8], abs=0.1)
