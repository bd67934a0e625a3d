"""The learned proposal: training resumes after a kill, the CEM hook is used, the image-goal protocol holds."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from planning.agent import Agent
from planning.cem import CEMConfig, cem
from planning.planner import PlannerConfig
from planning.proposal import ProposalPolicy, ProposalPrior, fit_horizon
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


def test_proposal_trains_and_resumes_after_a_kill_to_the_same_weights(tmp_path):
    whole = train_proposal(_cfg(tmp_path, "whole.pt"), [FakeCache()])
    assert whole["steps"] == 6 and np.isfinite(whole["train_l1"])
    cut = train_proposal(_cfg(tmp_path, "cut.pt", stop_after=4), [FakeCache()])
    assert cut["stopped_at"] == 4 and not (tmp_path / "cut.pt").exists()
    train_proposal(_cfg(tmp_path, "cut.pt"), [FakeCache()])  # the same command again: resumes at step 4
    a, b = load_file(tmp_path / "whole.pt")["state_dict"], load_file(tmp_path / "cut.pt")["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    steps = [int(line.split('"step": ')[1].split(",")[0]) for line in (tmp_path / "cut.pt.run" / "log.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6]  # no duplicated rows after the resume
    net = load_proposal(tmp_path / "cut.pt")
    assert net.encoder["weights_hash"] == "abc" and net.config.horizon == 3
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

    def __call__(self, feats, state, goal_feats, horizon):
        self.calls.append((feats.clone(), np.array(state), goal_feats.clone(), horizon))
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
    policy = ProposalPolicy(world, prior)
    for actor in (agent, policy):
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
    feats, seen_state, goal_feats, horizon = spy.calls[-1]
    assert horizon == 3 and seen_state.shape == (7,) and np.allclose(seen_state, state)  # only the arm's proprio
    assert torch.allclose(feats, world.encode(world.render(state)[None])[0], atol=1e-5)
    goal_ln = torch.nn.functional.layer_norm(world.encode(world.render(goal_state)[None])[0], (DIM,))
    assert torch.allclose(goal_feats, goal_ln, atol=1e-5)


def test_fit_horizon_cuts_or_repeats_the_last_action():
    a = torch.arange(14, dtype=torch.float32).reshape(2, 7)
    assert torch.equal(fit_horizon(a, 1), a[:1])
    assert torch.equal(fit_horizon(a, 4)[2:], a[1:].expand(2, 7))


def test_cli_errors_are_one_line_exit_2(tmp_path):
    assert cli_exit_code(["train-proposal", "--help"]) == 0
    assert cli_exit_code(["train-proposal", "--features", str(tmp_path / "none"), "--out", str(tmp_path / "p.pt")]) == 2
    assert cli_exit_code(["train-proposal", "--features", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert cli_exit_code(["evaluate", "--env", "simjepa/Push-v0", "--episodes", "1", "--policy", "proposal",
                          "--out", str(tmp_path / "e")]) == 2
    assert cli_exit_code(["evaluate", "--env", "simjepa/Push-v0", "--episodes", "1", "--policy", "random",
                          "--proposal", str(tmp_path / "p.pt"), "--out", str(tmp_path / "e")]) == 2
