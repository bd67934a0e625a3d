"""Two camera views: envs render them, collect/encode/train carry the camera, the agent plans with both."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import simjepa_cli
from envs import make_env
from simjepa_core.errors import SimjepaError
from planning import Agent, Context, InvalidObservationError, LatentPlanner, PlannerConfig
from planning.energy import normalize_reps
from planning.errors import PlannerConfigError
from planning.toy import ToyWorldModel, toy_advance_state


def test_env_renders_each_camera_under_its_own_key():
    env = make_env("simjepa/Reach-v0", render_size=32, cameras=("front", "side"))
    obs, info = env.reset(seed=3)
    assert set(obs) == {"pixels", "pixels_side", "state"} == set(info["goal"])
    assert set(env.observation_space.spaces) == {"pixels", "pixels_side", "state"}
    single, _ = make_env("simjepa/Reach-v0", render_size=32).reset(seed=3)
    np.testing.assert_array_equal(obs["pixels"], single["pixels"])  # the front view is unchanged
    side_only, _ = make_env("simjepa/Reach-v0", render_size=32, cameras=("side",)).reset(seed=3)
    np.testing.assert_array_equal(obs["pixels_side"], side_only["pixels"])
    assert (obs["pixels"] != obs["pixels_side"]).mean() > 0.5
    obs2, *_ = env.step(np.zeros(7, np.float32))
    assert obs2["pixels_side"].shape == (32, 32, 3)


@pytest.mark.parametrize("cameras", [("top",), (), ("front", "front")])
def test_bad_camera_lists_are_one_line_errors(cameras):
    with pytest.raises(SimjepaError, match="front, side"):
        make_env("simjepa/Reach-v0", render_size=32, cameras=cameras)


def test_adapter_envs_have_one_view():
    with pytest.raises(SimjepaError, match="single view"):
        make_env("Reacher-v5", render_size=32, cameras=("front", "side"))


def _toy_planner() -> tuple[ToyWorldModel, LatentPlanner]:
    world = ToyWorldModel()
    cfg = PlannerConfig.from_flat(world.planner, dict(samples=32, iterations=3, topk=4, horizon=2))
    return world, LatentPlanner(world.predictor, lambda s, a: toy_advance_state(s, a, world.action_scale), cfg)


def test_plan_energy_is_the_mean_over_views():
    world, planner = _toy_planner()
    frame = lambda *p: world.render(np.array([*p, 0, 0, 0, 0]))  # noqa: E731
    ctx_a = Context(world.encode(frame(0, 0, 0)[None]), torch.zeros(1, 7), torch.zeros(0, 7))
    ctx_b = Context(world.encode(frame(0.02, 0, 0)[None]), torch.zeros(1, 7), torch.zeros(0, 7))
    goal_a = normalize_reps(world.encode(frame(0.05, 0, 0)[None])[0])
    goal_b = normalize_reps(world.encode(frame(0, 0.05, 0)[None])[0])
    one = planner.plan(ctx_a, goal_a, 7, generator=torch.Generator().manual_seed(0))
    same_twice = planner.plan([ctx_a, ctx_a], [goal_a, goal_a], 7, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(same_twice.actions, one.actions)
    assert same_twice.energy == pytest.approx(one.energy) and same_twice.predictor_calls == 2 * one.predictor_calls
    two = planner.plan([ctx_a, ctx_b], [goal_a, goal_b], 7, generator=torch.Generator().manual_seed(0))
    plan = torch.from_numpy(two.actions)[None]
    each = [planner.score(c, g, None, plan) for c, g in ((ctx_a, goal_a), (ctx_b, goal_b))]
    assert two.energy == pytest.approx(float((each[0] + each[1]) / 2), rel=1e-4)
    with pytest.raises(PlannerConfigError, match="one goal per context"):
        planner.plan([ctx_a, ctx_b], [goal_a], 7)


def test_two_view_world_model_from_collect_to_evaluate(tmp_path, capsys):
    """collect --camera front/side -> encode -> train on both -> the model records its cameras, the
    agent plans with both views (twice the predictor calls), and evaluate builds the env with them."""
    from world_model.model_file import load_world_model

    feats = []
    for cam in ("front", "side"):
        data, cache = tmp_path / f"data-{cam}", tmp_path / f"feats-{cam}"
        simjepa_cli.main(["collect", "--env", "simjepa/Reach-v0", "--episodes", "3", "--out", str(data),
                          "--render-size", "32", "--max-steps", "6", "--camera", cam, "--quiet"])
        simjepa_cli.main(["encode", "--data", str(data), "--encoder", "vit_tiny", "--image-size", "32",
                          "--out", str(cache), "--threads", "1", "--quiet"])
        feats += ["--features", str(cache)]
    model = tmp_path / "model"
    simjepa_cli.main(["train", *feats, "--out", str(model), "--config", "tiny", "--steps", "2", "--batch-size", "2",
                      "--val-fraction", "0.34", "--workers", "0", "--quiet"])
    capsys.readouterr()
    wm = load_world_model(model)
    assert wm.cameras == ("front", "side") and wm.info["env_ids"] == ["simjepa/Reach-v0"]

    agent = Agent.from_pretrained(model, samples=8, iterations=2, topk=2)
    env = make_env("simjepa/Reach-v0", render_size=32, cameras=wm.cameras)
    obs, info = env.reset(seed=0)
    agent.reset(action_scale=env.unwrapped.action_scale)
    action = agent.act(obs, info["goal"])
    assert action.shape == (7,) and agent.last_plan.predictor_calls == 2 * 2 * 2  # views x iterations x horizon
    from planning.landscape import energy_landscape
    from planning.rollout import rollout
    from planning.video import compose_frame

    frames = rollout(env, agent, 0, max_steps=1, record=True)["frames"]
    assert frames[0][0].shape == frames[1][1].shape == (64, 32, 3)  # videos show front above side
    np.testing.assert_array_equal(frames[0][0][32:], env.reset(seed=0)[0]["pixels_side"])
    assert compose_frame(*frames[1], ["step 1"]).shape[1] >= 256

    land = energy_landscape(agent, obs, info["goal"], n=3)  # scored with both views, like the planner
    assert land.energy.shape == (3, 3) and np.isfinite(land.energy).all()
    front_only = {"pixels": obs["pixels"], "state": obs["state"]}
    with pytest.raises(InvalidObservationError, match="pixels_side"):
        agent.act(front_only, info["goal"])

    out = tmp_path / "eval"
    simjepa_cli.main(["evaluate", "--env", "simjepa/Reach-v0", "--episodes", "1", "--model", str(model),
                      "--max-steps", "2", "--samples", "8", "--iters", "2", "--topk", "2", "--out", str(out)])
    results = json.loads((out / "results.json").read_text())
    assert results["episodes"][0]["steps"] == 2
