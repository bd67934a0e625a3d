"""Property-based checks (hypothesis) of the env step and the planner on random actions and goals.

Invariants, whatever the seed, action sequence, frame size, goal or planner setting:
- env: no exception, state finite, pixels uint8 ``[H, W, 3]``, distance finite and >= 0, success bool;
- agent: an action of shape ``[7]``, finite, inside ``[-1, 1]``; planner energies finite.
Examples are few (the machine is shared) but cover the corners hypothesis favours: +-1, 0, tiny
magnitudes, 1-pixel frames, states far outside the workspace.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SIZE = 32
ENV_IDS = ("simjepa/Reach-v0", "simjepa/Push-v0", "simjepa/PickPlace-v0", "Reacher-v5")
PROPERTY = settings(max_examples=30, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@functools.lru_cache(maxsize=None)
def env(env_id: str):
    """One env per id for the whole module: building (EGL context, MJCF) costs more than an episode."""
    from envs import make_env

    return make_env(env_id, render_size=SIZE)


def unit_floats() -> st.SearchStrategy[float]:
    return st.floats(-1.0, 1.0, allow_nan=False, width=32)


def _check_obs(obs, info, action_space_shape=None) -> None:
    assert obs["pixels"].dtype == np.uint8 and obs["pixels"].shape == (SIZE, SIZE, 3)
    assert obs["state"].dtype == np.float32 and obs["state"].ndim == 1 and np.isfinite(obs["state"]).all()
    assert isinstance(bool(info["success"]), bool) and np.isfinite(info["distance"]) and info["distance"] >= 0


@PROPERTY
@given(env_id=st.sampled_from(ENV_IDS), seed=st.integers(0, 2**31 - 1),
       actions=st.lists(st.lists(unit_floats(), min_size=7, max_size=7), min_size=1, max_size=6))
def test_env_step_keeps_invariants(env_id, seed, actions):
    e = env(env_id)
    obs, info = e.reset(seed=seed)
    _check_obs(obs, info)
    assert obs["state"].shape == e.observation_space["state"].shape
    assert info["goal"]["pixels"].shape == (SIZE, SIZE, 3) and np.isfinite(info["goal"]["state"]).all()
    dim = e.action_space.shape[0]
    for a in actions:
        a = np.asarray(a[:dim], np.float32)
        assert e.action_space.contains(a)
        obs, reward, terminated, truncated, info = e.step(a)
        _check_obs(obs, info)
        assert np.isfinite(reward) and isinstance(terminated, bool) and isinstance(truncated, bool)
        if terminated or truncated:
            break


@pytest.fixture(scope="module")
def world_model(tmp_path_factory):
    """A tiny randomly initialised world model at 32 px (1-block encoder and predictor)."""
    from world_model import load_world_model
    from world_model.bundle import encoder_entry, save_world_model
    from world_model.encoder import build_encoder
    from world_model.encoder_loading import encoder_identity
    from world_model.predictor import build_predictor

    enc = build_encoder("vit_tiny", depth=1, image_size=SIZE)
    path = tmp_path_factory.mktemp("wm") / "tiny.pt"
    save_world_model(path, build_predictor("tiny", embed_dim=enc.config.embed_dim, depth=1),
                     encoder_entry(encoder_identity(enc), enc), SIZE, (2, 2))
    return load_world_model(path)


def _frame(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@PROPERTY
@given(seed=st.integers(0, 2**32 - 1), hw=st.tuples(st.integers(1, 80), st.integers(1, 80)),
       state=st.lists(st.floats(-1e3, 1e3, allow_nan=False, width=32), min_size=7, max_size=7),
       goal_state=st.one_of(st.none(), st.lists(st.floats(-1e3, 1e3, allow_nan=False, width=32), min_size=7, max_size=7)),
       samples=st.integers(2, 12), topk_frac=st.floats(0.1, 1.0), iterations=st.integers(1, 2), horizon=st.integers(1, 3),
       steps=st.integers(1, 3))
def test_planner_actions_are_finite_and_in_bounds(world_model, seed, hw, state, goal_state, samples, topk_frac, iterations,
                                                  horizon, steps):
    from envs.arm import ArmEnv
    from planning import Agent, PlannerConfig

    cfg = PlannerConfig.from_flat({"samples": samples, "topk": max(2, int(topk_frac * samples)), "iterations": iterations,
                                   "horizon": horizon, "seed": seed % 1000})
    agent = Agent(world_model, cfg, action_scale=ArmEnv.action_scale)
    rng = np.random.default_rng(seed)
    goal = {"pixels": _frame(rng, *hw)}
    if goal_state is not None:
        goal["state"] = np.asarray(goal_state, np.float32)
    for _ in range(steps):  # several calls: warm-started plans and the context window
        obs = {"pixels": _frame(rng, *hw), "state": np.asarray(state, np.float32)}
        action = agent.act(obs, goal)
        assert action.shape == (7,) and action.dtype == np.float32
        assert np.isfinite(action).all() and np.all(np.abs(action) <= 1.0)
        state = np.asarray(state, np.float32) + rng.normal(0, 0.01, 7).astype(np.float32)


@PROPERTY
@given(env_id=st.sampled_from(ENV_IDS[:3]), seed=st.integers(0, 10_000))
def test_closed_loop_planner_episode_keeps_env_invariants(world_model, env_id, seed):
    """Planner actions fed back to the env: still inside the action space, env state stays finite."""
    from planning import Agent, PlannerConfig

    e = env(env_id)
    agent = Agent(world_model, PlannerConfig.from_flat({"samples": 4, "topk": 2, "iterations": 1, "horizon": 2}),
                  action_scale=e.unwrapped.action_scale)
    obs, info = e.reset(seed=seed)
    goal = info["goal"]
    for _ in range(3):
        a = agent.act(obs, goal)
        assert e.action_space.contains(a)
        obs, _, _, _, info = e.step(a)
        _check_obs(obs, info)


@PROPERTY
@given(env_id=st.sampled_from(ENV_IDS), index=st.integers(0, 6), bad=st.sampled_from([np.nan, np.inf, -np.inf]),
       action=st.lists(unit_floats(), min_size=7, max_size=7))
def test_non_finite_inputs_raise_typed_errors_and_change_nothing(world_model, env_id, index, bad, action):
    """One NaN/inf anywhere: env.step and agent.act raise a ValueError subclass; the env state is untouched."""
    from envs.errors import SimjepaError
    from planning import Agent, InvalidObservationError, PlannerConfig

    e = env(env_id)
    obs, info = e.reset(seed=index)
    dim = e.action_space.shape[0]
    a = np.asarray(action[:dim], np.float32)
    a[index % dim] = bad
    with pytest.raises(SimjepaError):
        e.step(a)
    a[index % dim] = 0.0
    obs2, *_ = e.step(a)  # the refused step did not advance or corrupt the simulation
    e.reset(seed=index)
    obs3, *_ = e.step(a)
    assert np.array_equal(obs2["state"], obs3["state"]) and np.array_equal(obs2["pixels"], obs3["pixels"])

    agent = Agent(world_model, PlannerConfig.from_flat({"samples": 4, "topk": 2, "iterations": 1, "horizon": 1}))
    state = np.zeros(7, np.float32)
    state[index] = bad
    with pytest.raises(InvalidObservationError):
        agent.act({"pixels": obs["pixels"], "state": state}, info["goal"])
    # The goal's state is privileged: the image-goal agent never reads it, the privileged one refuses it.
    agent.act({"pixels": obs["pixels"], "state": np.zeros(7, np.float32)}, {"pixels": obs["pixels"], "state": state})
    privileged = Agent(world_model, agent.config, privileged_goal_state=True)
    with pytest.raises(InvalidObservationError):
        privileged.act({"pixels": obs["pixels"], "state": np.zeros(7, np.float32)}, {"pixels": obs["pixels"], "state": state})
