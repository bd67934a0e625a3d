"""A proposal embedded in the world-model file, and the planner setting ``search="none"`` that runs it alone."""
from dataclasses import asdict

import numpy as np
import pytest
import torch

from planning import Agent, PlannerConfigError
from planning.planner import PlannerConfig
from world_model.checkpoints import CheckpointError, save_model, weights_hash
from world_model.encoder import build_encoder
from world_model.encoder_loading import encoder_identity
from world_model.model_file import (embedded_weight_hashes, encoder_entry, load_world_model, save_world_model,
                                    with_planner_defaults)
from world_model.predictor import build_predictor
from world_model.proposal import ProposalNet, ProposalNetConfig

GRID = (4, 4)


def _files(tmp_path, proposal_encoder_hash=None):
    """A tiny world-model run and a proposal file trained (here: initialised) on its encoder's features."""
    torch.manual_seed(0)
    enc = build_encoder("vit_tiny", depth=1, image_size=64)
    pred = build_predictor("tiny", embed_dim=enc.config.embed_dim, depth=1)
    run = tmp_path / "run"
    run.mkdir()
    identity = encoder_identity(enc)
    save_world_model(run / "final.pt", pred, encoder_entry(identity, enc), 64, GRID, planner={"samples": 8, "topk": 2})
    net = ProposalNet(ProposalNetConfig(feat_dim=enc.config.embed_dim, grid=GRID, horizon=2, hidden=16, depth=1))
    prop = tmp_path / "proposal.pt"
    save_model(prop, "proposal", asdict(net.config), net,
               encoder={**identity, "weights_hash": proposal_encoder_hash or identity["weights_hash"]}, info={})
    return run, prop, net


def _obs_goal():
    rng = np.random.default_rng(0)
    obs = {"pixels": rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), "state": np.zeros(7, np.float32)}
    return obs, {"pixels": rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)}


def test_the_model_file_carries_its_proposal_and_the_agent_uses_it(tmp_path):
    run, prop, net = _files(tmp_path)
    model = tmp_path / "model.pt"
    with_planner_defaults(run, model, {"per_env": {"simjepa/Push-v0": {"search": "none"}}}, {"command": "test"}, proposal=prop)
    wm = load_world_model(model)
    assert weights_hash(wm.proposal.state_dict()) == weights_hash(net.state_dict())
    hashes = embedded_weight_hashes(model)
    assert hashes["proposal"] == weights_hash(net.state_dict()) and hashes["predictor"] == weights_hash(wm.predictor.state_dict())

    seeded = Agent.from_pretrained(model)  # no proposal given: the embedded one seeds the search
    assert seeded.proposal is not None and seeded.proposal.identity()["path"] == f"embedded in {model}"
    assert seeded.config.search == "cem"
    assert Agent.from_pretrained(model, proposal="none").proposal is None  # flat CEM on request

    alone = Agent.from_pretrained(model, env_id="simjepa/Push-v0")  # the per-task setting: the proposal alone
    assert alone.config.search == "none"
    obs, goal = _obs_goal()
    action = alone.act(obs, goal)
    with torch.no_grad():
        feats = torch.nn.functional.layer_norm(wm.encode(obs["pixels"][None])[0], (wm.encoder.dim,))
        goal_feats = torch.nn.functional.layer_norm(wm.encode(goal["pixels"][None])[0], (wm.encoder.dim,))
        wanted = net.propose(feats, obs["state"], goal_feats, None)[0].numpy()
    np.testing.assert_allclose(action, wanted, atol=1e-5)
    assert alone.last_energy is None and alone.last_plan.predictor_calls == 0


def test_search_none_never_calls_the_world_model(tmp_path):
    run, prop, _ = _files(tmp_path)
    agent = Agent.from_pretrained(run, proposal=prop, search="none")

    def trap(*args, **kwargs):
        raise AssertionError("search='none' must not call the predictor")

    agent.world_model.predictor.forward = trap
    agent.planner.plan = trap
    obs, goal = _obs_goal()
    for _ in range(3):
        assert agent.act(obs, goal).shape == (7,)


def test_search_none_needs_a_proposal_and_unknown_searches_are_refused(tmp_path):
    run, _, _ = _files(tmp_path)
    with pytest.raises(PlannerConfigError, match="needs a proposal"):
        Agent.from_pretrained(run, search="none")  # the run embeds none and none is given
    with pytest.raises(PlannerConfigError, match="search='grid' is unknown"):
        PlannerConfig.from_flat({"search": "grid"})


def test_a_proposal_from_another_encoder_is_not_embedded(tmp_path):
    run, prop, _ = _files(tmp_path, proposal_encoder_hash="0" * 16)
    with pytest.raises(CheckpointError, match="train the proposal on caches encoded with the model's encoder"):
        with_planner_defaults(run, tmp_path / "m.pt", {}, proposal=prop)
    assert not (tmp_path / "m.pt").exists()


class CountingProposal:
    """Plans ``c / 10`` for every step and dim at its c-th call: each call says something new for each step."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, feats, state, goal_feats, horizon, prev_state=None):
        self.calls += 1
        return torch.full((horizon, 7), (self.calls - 1) / 10)


def test_ensemble_plans_averages_what_recent_plans_said_for_this_step():
    from planning.toy import ToyWorldModel, toy_advance_state

    world = ToyWorldModel()
    cfg = PlannerConfig.from_flat(world.planner, {"search": "none", "horizon": 3, "ensemble_plans": 3})
    agent = Agent(world, cfg, advance_state=toy_advance_state, proposal=CountingProposal())
    obs = {"pixels": world.render(np.zeros(7)), "state": np.zeros(7, np.float32)}
    goal = world.render(np.zeros(7))
    got = [agent.act(obs, goal)[0] for _ in range(4)]
    # at step t the plan made j steps ago (call t - j) says (t - j) / 10; the last 3 plans are averaged
    np.testing.assert_allclose(got, [0.0, 0.05, 0.1, 0.2], atol=1e-6)
    agent.reset()
    assert agent.act(obs, goal)[0] == pytest.approx(0.4)  # reset forgets the old plans: the new call's own action
    single = Agent(world, PlannerConfig.from_flat(world.planner, {"search": "none", "horizon": 3}),
                   advance_state=toy_advance_state, proposal=CountingProposal())
    np.testing.assert_allclose([single.act(obs, goal)[0] for _ in range(4)], [0.0, 0.1, 0.2, 0.3], atol=1e-6)
    with pytest.raises(PlannerConfigError, match="ensemble_plans=3 averages the proposal's plans"):
        PlannerConfig.from_flat({"search": "none", "horizon": 2, "ensemble_plans": 3})
    with pytest.raises(PlannerConfigError, match="ensemble_plans"):
        PlannerConfig.from_flat({"search": "none", "horizon": 4, "execute_steps": 2, "ensemble_plans": 3})
    # a search does not use it: asking for one on a task whose setting has it just works (--search cem)
    assert PlannerConfig.from_flat({"search": "cem", "horizon": 2, "ensemble_plans": 4}).search == "cem"
