"""Planner core on a toy world whose dynamics are known exactly (no MuJoCo, no trained model)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import planning
from planning import Agent, CEMConfig, Context, InvalidObservationError, LatentPlanner, PlannerConfig, cem
from planning.energy import EnergyConfig, energy, normalize_reps
from planning.errors import PlannerConfigError
from planning.toy import ToyReachEnv, ToyWorldModel, toy_advance_state
from simjepa_core.errors import SimjepaError
from tests.helpers import StateTrap

SMALL = dict(samples=64, iterations=5, topk=8)


def toy_agent(**overrides) -> Agent:
    world = ToyWorldModel()
    return Agent(world, PlannerConfig.from_flat(world.planner, SMALL, overrides), advance_state=toy_advance_state)


def quadratic(target: torch.Tensor):
    def score(actions: torch.Tensor) -> torch.Tensor:  # [S, H, A] -> [S]
        return (actions - target).square().sum(dim=(1, 2))
    return score


def test_true_dynamics_reach_goal_in_closed_loop():
    agent = toy_agent()
    env = ToyReachEnv(agent.world_model, max_episode_steps=30)
    results = [planning.rollout(env, agent, seed) for seed in range(3)]
    for m in results:
        assert m["success"], m
        assert m["final_distance"] < ToyReachEnv.success_radius
        assert m["steps"] == len(m["energy"]) == len(m["distance"])
    # the agent moves towards the goal: distance after the first step is below the start radius (>= 5 cm)
    assert all(m["distance"][0] < 0.05 + 0.02 * np.sqrt(3) for m in results)


def test_energy_is_zero_at_goal_and_grows_with_distance():
    world = ToyWorldModel()
    goal_state = np.array([0.05, 0.0, 0.0, 0, 0, 0, -1.0])
    goal = normalize_reps(world.encode(world.render(goal_state)[None])[0])
    energies = []
    for dx in (0.0, 0.02, 0.05, 0.1):
        s = goal_state.copy()
        s[0] -= dx
        z = normalize_reps(world.encode(world.render(s)[None]))[None]  # [1, 1, N, D]
        energies.append(float(energy(z, goal, EnergyConfig())[0]))
    assert energies[0] < 1e-2
    assert energies == sorted(energies) and energies[-1] > 10 * max(energies[0], 1e-3)


def test_state_term_and_l2_metric():
    pred = torch.zeros(3, 2, 4, 5)
    goal = torch.ones(4, 5)
    states = torch.zeros(3, 2, 7)
    states[1, -1, 0] = 0.7
    l1 = energy(pred, goal, EnergyConfig())
    assert torch.allclose(l1, torch.ones(3))
    with_state = energy(pred, goal, EnergyConfig(state_weight=2.0), states, torch.zeros(7))
    assert torch.allclose(with_state - l1, torch.tensor([0.0, 2.0 * 0.7 / 7, 0.0]))
    assert torch.allclose(energy(2 * pred + 3, goal, EnergyConfig(metric="l2")), torch.full((3,), 4.0))
    all_steps = energy(torch.stack([torch.zeros(4, 5), torch.ones(4, 5)])[None], goal, EnergyConfig(all_steps=True))
    assert torch.allclose(all_steps, torch.tensor([0.5]))


def test_more_cem_iterations_never_end_higher():
    target = torch.tensor([[0.3, -0.5, 0.9, 0, 0, 0, -0.2], [0.1, 0.2, -0.4, 0, 0, 0, 0.6]])
    finals = []
    for iters in range(1, 9):
        res = cem(quadratic(target), 7, CEMConfig(samples=32, topk=4, iterations=iters, seed=3))
        assert len(res.iteration_energies) == iters
        assert res.energy == min(res.iteration_energies)
        finals.append(res.energy)
    assert all(b <= a for a, b in zip(finals, finals[1:])), finals
    assert finals[-1] < finals[0]


def test_cem_is_deterministic_and_respects_bounds_and_frozen_rotation():
    target = torch.full((2, 7), 3.0)  # outside the box: the optimum sits on the bound
    runs = [cem(quadratic(target), 7, CEMConfig(samples=40, topk=5, iterations=4, seed=11)) for _ in range(2)]
    assert torch.equal(runs[0].plan, runs[1].plan) and runs[0].iteration_energies == runs[1].iteration_energies
    other = cem(quadratic(target), 7, CEMConfig(samples=40, topk=5, iterations=4, seed=12))
    assert not torch.equal(runs[0].plan, other.plan)
    plan = runs[0].plan
    assert plan.abs().max() <= 1.0
    # the configured box, not a hard-coded [-1, 1]: the optimum sits on the upper bound 0.3
    boxed = cem(quadratic(target), 7, CEMConfig(samples=40, topk=5, iterations=4, seed=11, action_low=-0.5, action_high=0.3))
    assert boxed.plan.max() <= 0.3 and boxed.plan.min() >= -0.5
    assert torch.all(boxed.plan[:, [0, 1, 2, 6]] > 0.1)  # pressed towards it
    assert torch.all(plan[:, 3:6] == 0)  # rotation is not searched
    assert torch.all(plan[:, [0, 1, 2, 6]] > 0.5)
    free = cem(quadratic(target), 7, CEMConfig(samples=40, topk=5, iterations=4, translation_only=False))
    assert torch.all(free.plan[:, 3:6] != 0)
    held = torch.zeros(2, 7)
    held[:, 5] = torch.tensor([0.4, -0.2])  # a caller's rotation plan is held, not searched or zeroed
    kept = cem(quadratic(target), 7, CEMConfig(samples=40, topk=5, iterations=4), init_mean=held)
    assert torch.equal(kept.plan[:, 3:6], held[:, 3:6]) and torch.all(kept.std[:, 3:6] == 0)
    hold = cem(quadratic(target), 7, CEMConfig(samples=40, topk=5, iterations=4, gripper_init_mean=0.5, gripper_init_std=0.0))
    assert torch.all(hold.plan[:, 6] == 0.5) and torch.all(hold.plan[:, :3] > 0.5)  # gripper held, motion searched
    with pytest.raises(PlannerConfigError, match="gripper_init_mean"):
        CEMConfig(gripper_init_mean=1.5).validate()


def test_all_candidates_in_one_predictor_call_per_rollout_step():
    world = ToyWorldModel()
    cfg = PlannerConfig.from_flat(world.planner, dict(samples=50, iterations=3, topk=5, horizon=2))
    planner = LatentPlanner(world.predictor, lambda s, a: toy_advance_state(s, a, world.action_scale), cfg)
    z = world.encode(world.render(np.zeros(7))[None])  # [1, N, D]
    goal = normalize_reps(world.encode(world.render(np.array([0.05, 0, 0, 0, 0, 0, 0]))[None])[0])
    world.predictor.calls.clear()
    res = planner.plan(Context(z, torch.zeros(1, 7), torch.zeros(0, 7)), goal, 7)
    # one batched call per horizon step and iteration, each carrying every candidate
    assert len(world.predictor.calls) == res.predictor_calls == 3 * 2
    assert [c[0] for c in world.predictor.calls] == [50] * 6
    assert [c[1] for c in world.predictor.calls] == [1, 2] * 3  # autoregressive: frame t feeds step t+1


def test_agent_is_deterministic_given_seed():
    env = ToyReachEnv(ToyWorldModel(), max_episode_steps=4)
    a = planning.rollout(env, toy_agent(seed=5), seed=2, stop_on_success=False)
    b = planning.rollout(env, toy_agent(seed=5), seed=2, stop_on_success=False)
    assert a["energy"] == b["energy"] and a["distance"] == b["distance"]


@pytest.mark.parametrize(
    "obs",
    [
        {"pixels": np.zeros((8, 8, 3), np.float32), "state": np.zeros(7)},  # wrong dtype
        {"pixels": np.zeros((8, 8), np.uint8), "state": np.zeros(7)},  # no channels
        {"pixels": np.zeros((8, 8, 4), np.uint8), "state": np.zeros(7)},  # RGBA
        {"pixels": np.zeros((8, 8, 3), np.uint8), "state": np.full(7, np.nan)},  # NaN state
        {"pixels": np.zeros((8, 8, 3), np.uint8), "state": np.zeros(3)},  # short state
        {"pixels": np.zeros((8, 8, 3), np.uint8)},  # no state
        np.zeros((8, 8, 3), np.uint8),  # not a dict
    ],
)
def test_agent_rejects_malformed_observations(obs):
    agent = toy_agent()
    goal = {"pixels": np.zeros((8, 8, 3), np.uint8), "state": np.zeros(7)}
    with pytest.raises(InvalidObservationError) as info:
        agent.act(obs, goal)
    assert isinstance(info.value, SimjepaError) and isinstance(info.value, ValueError)
    agent.act(goal, {"pixels": goal["pixels"], "state": np.array([np.inf] * 7)})  # image goal: its state is never read
    with pytest.raises(InvalidObservationError):
        Agent(agent.world_model, agent.config, privileged_goal_state=True).act(
            goal, {"pixels": goal["pixels"], "state": np.array([np.inf] * 7)})


def test_agent_accepts_any_frame_size_and_caches_goal():
    agent = toy_agent()
    world = agent.world_model
    big = np.repeat(np.repeat(world.render(np.zeros(7)), 4, axis=0), 4, axis=1)  # [32, 32, 3]
    goal = {"pixels": world.render(np.array([0.05, 0, 0, 0, 0, 0, -1.0])), "state": np.zeros(7, np.float32)}
    action = agent.act({"pixels": big, "state": np.zeros(7, np.float32)}, goal)
    assert action.shape == (7,) and action.dtype == np.float32 and np.all(np.abs(action) <= 1)
    assert action[0] > 0.3  # heads towards +x
    agent.act({"pixels": big, "state": np.zeros(7, np.float32)}, goal)
    assert len(agent._goal_cache) == 1


def test_execute_steps_replans_every_m_actions():
    agent = toy_agent(execute_steps=2, horizon=3)
    world = agent.world_model
    obs = {"pixels": world.render(np.zeros(7)), "state": np.zeros(7, np.float32)}
    goal = {"pixels": world.render(np.array([0.08, 0, 0, 0, 0, 0, -1.0]))}
    world.predictor.calls.clear()
    for _ in range(4):
        agent.act(obs, goal)
    assert len(world.predictor.calls) == 2 * 5 * 3  # two plans of 5 iterations x 3 steps


def test_subgoals_switch_after_step_budget():
    world = ToyWorldModel()
    env = ToyReachEnv(world, max_episode_steps=6)
    agent = toy_agent()
    subgoals = [{"pixels": world.render(np.array([0.0, 0.0, 0.05 * k, 0, 0, 0, -1.0]))} for k in (1, 2)]
    m = planning.rollout(env, agent, seed=0, subgoals=subgoals, subgoal_steps=2, stop_on_success=False)
    assert m["subgoal"] == [0, 0, 1, 1, 1, 1]


def _actions(agent, obs, goal, steps=3):
    agent.reset()
    return [agent.act(obs, goal) for _ in range(steps)]


def test_default_agent_plans_from_the_goal_image_alone_and_never_reads_goal_state():
    """Image-goal protocol: a goal given as an array, as {"pixels"}, with a NaN or garbage state, or with a
    state that must not be touched, all give the same actions."""
    agent = toy_agent()
    world = agent.world_model
    obs = {"pixels": world.render(np.zeros(7)), "state": np.zeros(7, np.float32)}
    image = world.render(np.array([0.06, 0.02, 0, 0, 0, 0, -1.0]))
    expected = _actions(agent, obs, {"pixels": image})
    assert expected[0][0] > 0.3  # it does plan towards the image
    for goal in (image, torch.from_numpy(image), {"pixels": image, "state": np.full(7, np.nan)},
                 {"pixels": image, "state": "garbage"}, StateTrap(pixels=image, state=np.zeros(7))):
        got = _actions(agent, obs, goal)
        assert all(np.array_equal(a, b) for a, b in zip(got, expected))


def test_goal_state_is_read_only_by_the_privileged_option():
    world = ToyWorldModel()
    image = world.render(np.array([0.06, 0, 0, 0, 0, 0, -1.0]))
    obs = {"pixels": world.render(np.zeros(7)), "state": np.zeros(7, np.float32)}
    with pytest.raises(PlannerConfigError, match="privileged"):  # the state term needs the goal's state
        Agent(world, PlannerConfig.from_flat(world.planner, SMALL, {"state_weight": 1.0}), advance_state=toy_advance_state)
    agent = Agent(world, PlannerConfig.from_flat(world.planner, SMALL, {"state_weight": 1.0}), advance_state=toy_advance_state,
                  privileged_goal_state=True)
    with pytest.raises(InvalidObservationError, match="no 'state'"):
        agent.act(obs, {"pixels": image})
    with pytest.raises(InvalidObservationError, match="NaN"):
        agent.act(obs, {"pixels": image, "state": np.full(7, np.nan)})
    far = _actions(agent, obs, {"pixels": image, "state": np.array([0.06, 0, 0, 0, 0, 0, -1.0])})
    near = _actions(agent, obs, {"pixels": image, "state": np.array([-0.06, 0, 0, 0, 0, 0, -1.0])})
    assert not np.array_equal(far[0], near[0])  # privileged: the state does change the plan


def test_rollout_hands_the_policy_only_the_goal_images():
    world = ToyWorldModel()
    env = ToyReachEnv(world, max_episode_steps=2)
    seen = []

    class Spy:
        def act(self, obs, goal):
            seen.append(set(goal))
            return np.zeros(7, np.float32)

    planning.rollout(env, Spy(), seed=0, stop_on_success=False)
    assert seen == [{"pixels"}, {"pixels"}]
    seen.clear()
    planning.rollout(env, Spy(), seed=0, stop_on_success=False, privileged_goal_state=True)
    assert seen and "state" in seen[0]


@pytest.mark.parametrize("rule", ["gripper_from_goal", "yaw_from_goal"])
def test_per_task_action_rules_are_gone(rule):
    """Rules that set an action dim from the goal's simulator state no longer exist as planner settings."""
    with pytest.raises(PlannerConfigError, match=f"unknown planner setting '{rule}'"):
        PlannerConfig.from_flat({rule: True})


def test_subgoal_budget_is_the_tasks_tuned_one_within_an_even_split():
    from envs.tasks import PickPlaceEnv, PushEnv, task_spec
    from planning.subgoals import subgoal_steps

    push = PushEnv.task_spec.subgoal_steps
    assert task_spec("simjepa/Push-v0") is PushEnv.task_spec and task_spec("Pusher-v5") is None
    assert subgoal_steps("simjepa/Push-v0", 60, 3) == push < 60 // 3
    assert subgoal_steps("simjepa/Push-v0", 6, 3) == 2  # a short episode still visits every sub-goal
    assert subgoal_steps("simjepa/PickPlace-v0", 80, 5) == PickPlaceEnv.task_spec.subgoal_steps == 10
    assert subgoal_steps("Pusher-v5", 100, 4) == 25  # untuned tasks split evenly
    assert subgoal_steps("simjepa/Push-v0", 60, 3, requested=4) == 4
    with pytest.raises(PlannerConfigError, match="subgoal-steps"):
        subgoal_steps("simjepa/Push-v0", 60, 3, requested=0)


def test_subgoal_modes_name_their_protocol():
    from planning.subgoals import load_subgoals, protocol

    assert protocol("none") == "image-goal" and protocol("expert-replay") == "expert-replay (privileged)"
    assert load_subgoals("none", "simjepa/Push-v0", 0, 64) is None  # the default never runs the expert
    with pytest.raises(PlannerConfigError, match="expert-replay"):
        protocol("demo")
    with pytest.raises(PlannerConfigError, match="phases"):
        load_subgoals("expert-replay", "simjepa/Reach-v0", 0, 64)


def test_config_errors_are_one_line_simjepa_errors():
    with pytest.raises(PlannerConfigError, match="topk"):
        PlannerConfig.from_flat({"samples": 4, "topk": 8})
    with pytest.raises(PlannerConfigError, match="unknown planner setting 'sample'"):
        PlannerConfig.from_flat({"sample": 4})
    cfg = PlannerConfig.from_flat({"iters": 3, "energy": "l2"})
    assert cfg.cem.iterations == 3 and cfg.energy.metric == "l2"


def test_context_frames_feed_past_frames_and_executed_actions():
    agent = toy_agent(context_frames=2, iterations=1)
    world = agent.world_model
    env = ToyReachEnv(world, max_episode_steps=3)
    world.predictor.calls.clear()
    m = planning.rollout(env, agent, seed=1, stop_on_success=False)
    assert m["steps"] == 3
    frames_fed = [c[1] for c in world.predictor.calls]
    assert frames_fed == [1, 2] + [2, 3] * 2  # first step has one observed frame, later ones two
