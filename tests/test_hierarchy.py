"""Two-level planning: macro-step windows and actions, the macro model's training, the high level's sub-goal."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from planning.agent import Agent
from planning.errors import PlannerConfigError
from planning.hierarchy import HighLevelPlanner, load_high_level, macro_advance
from planning.imagine import Context
from planning.planner import PlannerConfig
from planning.toy import toy_advance_state
from tests.helpers import StateTrap, cli_exit_code
from tests.test_train import FAKE_ENCODER, array_source, tiny_cfg
from world_model.data import ArraySource, WindowSampler, load_windows, macro_actions
from world_model.model_file import load_world_model
from world_model.train import train


def test_macro_action_averages_motion_and_keeps_the_last_gripper_command():
    acts = np.zeros((2, 3, 7), np.float32)  # [macro-steps, k, A]
    acts[0, :, 0] = [0.3, 0.6, 0.9]
    acts[0, :, 6] = [-1.0, 1.0, 0.5]
    acts[1, :, 2] = [-0.6, 0.0, 0.0]
    out = macro_actions(acts)
    assert out.shape == (2, 7)
    np.testing.assert_allclose(out[0, 0], 0.6)
    assert out[0, 6] == 0.5  # absolute command: the last one, not the mean (1/6)
    np.testing.assert_allclose(out[1, 2], -0.2)
    two = macro_actions(np.array([[[1.0, -1.0], [0.0, 1.0]]], np.float32))  # no gripper in a 2-D action space
    np.testing.assert_allclose(two, [[0.5, 0.0]])


def test_strided_windows_take_every_kth_frame_and_the_macro_actions_between():
    t, k = 13, 3
    feats = np.arange(t + 1, dtype=np.float16)[:, None, None].repeat(4, 1).repeat(2, 2)  # frame i holds i
    actions = np.tile(np.arange(t, dtype=np.float32)[:, None], (1, 7))
    states = np.tile(np.arange(t + 1, dtype=np.float32)[:, None] * 10, (1, 7))
    src = ArraySource([(feats, actions, states)], {"encoder": FAKE_ENCODER, "grid": [2, 2]})
    f, a, s = load_windows(src, np.array([[0, 1]]), 4, 7, stride=k)  # episode 0 from frame 1
    assert f[0, :, 0, 0].tolist() == [1, 4, 7, 10]
    assert s[0, :, 0].tolist() == [10, 40, 70, 100]
    assert a[0, :, 0].tolist() == [2.0, 5.0, 8.0]  # mean of actions 1-3, 4-6, 7-9
    assert a[0, :, 6].tolist() == [3.0, 6.0, 9.0]  # gripper: the last of each run
    sampler = WindowSampler({0: t + 1}, [0], 4, seed=0, stride=k)
    assert sampler.index[:, 1].max() == t + 1 - (3 * k + 1)  # the last window still fits the episode


def test_macro_model_trains_records_k_and_validates_on_macro_steps(tmp_path):
    src = array_source(n_eps=6, steps=30)
    summary = train(tiny_cfg(tmp_path / "m", macro_steps=5, val_rollout=3, val_fraction=0.34), src)
    assert summary["macro_steps"] == 5
    assert set(summary["rollout_l1"]) == {"1", "2", "3"}  # 30 steps = 6 macro-steps per held-out episode
    wm = load_world_model(tmp_path / "m", with_encoder=False)
    assert wm.info["macro_steps"] == 5
    assert json.loads((tmp_path / "m" / "train_config.json").read_text())["macro_steps"] == 5
    flat = train(tiny_cfg(tmp_path / "f", val_rollout=3, val_fraction=0.34), src)
    assert flat["macro_steps"] == 1 and flat["rollout_l1"] != summary["rollout_l1"]


def test_macro_advance_moves_k_times_the_macro_action():
    scale = np.array([0.05, 0.05, 0.05, 0.1, 0.1, 0.1, 1.0])
    step = macro_advance(lambda s, a: toy_advance_state(s, a, scale), 4)
    out = step(np.zeros((1, 7)), np.array([[0.5, -1.0, 0, 0, 0, 0, 0.7]]))
    np.testing.assert_allclose(out[0, :3], [0.1, -0.2, 0.0])
    assert out[0, 6] == pytest.approx(0.7)


class Recorder:
    """A predictor stand-in: next frame = current + action[0] on every channel; records calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, feats, actions, states, **kw):
        self.calls += 1
        return feats[:, -1:] + actions[:, -1:, :1, None]


def test_high_level_plans_from_the_newest_frame_and_returns_one_subgoal_per_view():
    cfg = PlannerConfig.from_flat({"samples": 8, "iterations": 2, "topk": 2, "horizon": 3, "autocast": False})
    high = HighLevelPlanner(Recorder(), 5, None, cfg)
    c = Context(torch.randn(2, 4, 6), torch.zeros(2, 7), torch.zeros(1, 7))  # two context frames
    goals = [torch.randn(4, 6), torch.randn(4, 6)]
    res = high.subgoals([c, c], goals, 7)
    assert len(res.subgoals) == 2 and res.subgoals[0].shape == (4, 6)
    assert res.plan.actions.shape == (3, 7)
    with pytest.raises(PlannerConfigError, match="macro-steps"):
        HighLevelPlanner(Recorder(), 1, None, cfg)


def test_high_level_holds_its_subgoal_for_replan_every_env_steps():
    cfg = PlannerConfig.from_flat({"samples": 8, "iterations": 1, "topk": 2, "horizon": 2, "autocast": False})
    rec = Recorder()
    high = HighLevelPlanner(rec, 5, None, cfg, replan_every=4)
    c = Context(torch.randn(1, 4, 6), torch.zeros(1, 7), torch.zeros(0, 7))
    goals = [torch.randn(4, 6)]
    first = high.subgoals([c], goals, 7)
    searched = rec.calls
    assert searched > 0
    assert high.subgoals([c], goals, 7, elapsed=2) is first  # 2 env steps old: held, no search
    assert high.subgoals([c], goals, 7, elapsed=1) is first and rec.calls == searched  # 3 steps old
    fresh = high.subgoals([c], goals, 7, elapsed=1)  # 4 steps old: searched again
    assert fresh is not first and rec.calls > searched
    high.reset()  # a new episode never reuses the last episode's plan
    assert high.subgoals([c], goals, 7) is not fresh
    every_step = HighLevelPlanner(Recorder(), 5, None, cfg)
    assert every_step.subgoals([c], goals, 7) is not every_step.subgoals([c], goals, 7)
    with pytest.raises(PlannerConfigError, match="replan_every"):
        HighLevelPlanner(Recorder(), 5, None, cfg, replan_every=0)


def test_a_warm_started_high_level_starts_from_its_last_macro_plan():
    cfg = PlannerConfig.from_flat({"samples": 8, "iterations": 1, "topk": 2, "horizon": 2, "autocast": False,
                                   "warm_start": True})
    high = HighLevelPlanner(Recorder(), 5, None, cfg)
    inits = []
    search = high.planner.plan
    high.planner.plan = lambda c, g, a, gs, init, gen: inits.append(init) or search(c, g, a, gs, init, gen)
    c = Context(torch.randn(1, 4, 6), torch.zeros(1, 7), torch.zeros(0, 7))
    first = high.subgoals([c], [torch.randn(4, 6)], 7)
    high.subgoals([c], [torch.randn(4, 6)], 7)
    assert torch.equal(inits[1], torch.from_numpy(first.plan.actions))
    high.reset()
    high.subgoals([c], [torch.randn(4, 6)], 7)
    assert torch.equal(inits[2], high.stay(c, 7))  # a new episode starts from "keep still"


def _macro_file(tmp_path, k: int, encoder: dict | None = None):
    src = array_source(n_eps=3, steps=20)
    if encoder is not None:
        src = ArraySource([src.episode(i) for i in src.episodes], {**src.manifest, "encoder": encoder})
    train(tiny_cfg(tmp_path / f"m{k}", macro_steps=k, steps=2, val_fraction=0.0), src)
    return tmp_path / f"m{k}"


def test_load_high_level_refuses_one_step_models_and_other_encoders(tmp_path):
    base = load_world_model(_macro_file(tmp_path, 1), with_encoder=False)
    with pytest.raises(PlannerConfigError, match="one-step"):
        load_high_level(tmp_path / "m1", base)
    other = {**FAKE_ENCODER, "weights_hash": "ffffffffffffffff"}
    with pytest.raises(PlannerConfigError, match="another encoder"):
        load_high_level(_macro_file(tmp_path, 3, other), base)
    high = load_high_level(_macro_file(tmp_path, 4), base, {"samples": 12, "horizon": 3})
    assert high.macro_steps == 4 and high.identity["search"]["samples"] == 12 and high.identity["search"]["horizon"] == 3
    assert high.replan_every == 1 and "replan_every" not in high.identity
    held = load_high_level(tmp_path / "m4", base, {"replan_every": 4})
    assert held.replan_every == 4 and held.identity["replan_every"] == 4
    with pytest.raises(PlannerConfigError, match="replan_every"):
        load_high_level(tmp_path / "m4", base, {"replan_every": 0})


def test_agent_steers_the_low_level_to_the_high_levels_subgoal_without_reading_the_goal_state():
    from planning.toy import ToyWorldModel

    wm = ToyWorldModel()
    sub = torch.full((16, 12), 0.5)

    class FixedHigh:
        identity = {"path": "fixed"}

        def __init__(self):
            self.bound, self.resets, self.seen_goals = None, 0, None

        def bind(self, advance):
            self.bound = advance

        def reset(self):
            self.resets += 1

        def subgoals(self, contexts, goals, action_dim, generator=None, elapsed=1):
            from planning.hierarchy import HighLevelResult

            self.seen_goals = goals
            return HighLevelResult([sub], plan=None, step_energies=[0.0], arrived=False)

    high = FixedHigh()
    agent = Agent(wm, PlannerConfig.from_flat({"samples": 8, "iterations": 1, "topk": 2, "autocast": False}),
                  action_scale=np.full(7, 0.05), advance_state=toy_advance_state, high_level=high)
    seen = []
    agent.planner.plan = lambda contexts, goals, *a, **kw: seen.append(goals) or _plan(agent)
    obs = {"pixels": wm.render(np.zeros(7)), "state": np.zeros(7, np.float32)}
    goal = StateTrap(pixels=wm.render(np.full(7, 0.1)))
    agent.act(obs, goal)
    assert torch.equal(seen[0][0], sub)  # the low level aims at the sub-goal, not the goal image
    assert torch.equal(high.seen_goals[0], agent.goal_features(goal["pixels"]))  # the high level got the goal image
    assert high.bound is not None and high.resets >= 1


def test_two_level_agent_drives_the_toy_world_to_its_goal():
    """A macro model that is exact for k-step macro-actions (the toy predictor with k times the action
    scale) above the exact one-step toy model: the agent must reach a goal 4-8 macro-steps away."""
    from planning.toy import ToyPredictor, ToyReachEnv, ToyWorldModel

    wm = ToyWorldModel()
    k = 5
    macro = ToyPredictor(wm.mixing, wm.action_scale * np.array([k] * 6 + [1], np.float32))
    cfg = PlannerConfig.from_flat({"samples": 64, "iterations": 4, "topk": 8, "horizon": 3, "normalize_inputs": False,
                                   "autocast": False, "all_steps": True, "warm_start": False})  # load_high_level's
    high = HighLevelPlanner(macro, k, None, cfg)
    low = PlannerConfig.from_flat({"samples": 64, "iterations": 4, "topk": 8, "normalize_inputs": False, "autocast": False})
    env = ToyReachEnv(wm, max_episode_steps=40)
    agent = Agent(wm, low, action_scale=wm.action_scale, advance_state=toy_advance_state, high_level=high)
    obs, info = env.reset(seed=3)
    start, goal = info["distance"], {"pixels": info["goal"]["pixels"]}
    for _ in range(40):
        obs, _, done, _, info = env.step(agent.act(obs, goal))
        if info["success"]:
            break
    assert info["success"], (start, info["distance"])
    assert agent.last_macro_plan is not None and agent.last_macro_plan.actions.shape == (3, 7)


def _plan(agent):
    from planning.cem import CEMResult
    from planning.planner import PlanResult

    acts = np.zeros((agent.config.cem.horizon, 7), np.float32)
    return PlanResult(acts, 0.0, [0.0], 0, CEMResult(torch.from_numpy(acts), 0.0, [0.0], torch.zeros(1), torch.zeros(1)))


def test_cli_refuses_a_one_step_macro_model_in_one_line(tmp_path):
    one = _macro_file(tmp_path, 1)
    code = cli_exit_code(["plan-episode", "--env", "simjepa/Reach-v0", "--seed", "0", "--out", str(tmp_path / "pe"),
                          "--macro-model", str(one), "--max-steps", "1", "--quiet"])
    assert code != 0
