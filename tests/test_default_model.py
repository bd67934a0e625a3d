"""The shipped default model: recorded planner defaults and recipe, and that it loads and plans."""
import numpy as np
import pytest
import torch

from world_model.model_file import encoder_entry, load_world_model, save_world_model, with_planner_defaults
from world_model.encoder import build_encoder
from world_model.encoder_loading import encoder_identity
from world_model.predictor import DEFAULT_MODEL, build_predictor


def test_with_planner_defaults_records_settings_and_recipe(tmp_path):
    enc = build_encoder("vit_tiny", depth=1, image_size=64)
    pred = build_predictor("tiny", embed_dim=enc.config.embed_dim, depth=1)
    src = tmp_path / "run" / "final.pt"
    src.parent.mkdir()
    save_world_model(src, pred, encoder_entry(encoder_identity(enc), enc), 64, (4, 4), planner={"topk": 4})
    out = tmp_path / "shipped.pt"
    with_planner_defaults(src.parent, out, {"samples": 32, "iterations": 3}, {"command": "make default-model"})
    wm = load_world_model(out)
    assert wm.planner == {"topk": 4, "samples": 32, "iterations": 3}
    assert wm.info["recipe"]["command"] == "make default-model"
    for a, b in zip(wm.predictor.state_dict().values(), pred.state_dict().values()):
        assert torch.equal(a, b)


def test_shipped_default_model_plans_one_action():
    if not DEFAULT_MODEL.is_file():
        pytest.fail(f"{DEFAULT_MODEL} is not shipped: run `make default-model`")
    from planning import Agent

    torch.manual_seed(0)
    agent = Agent.from_pretrained("default", samples=16, iterations=1)
    assert load_world_model("default").planner, "the default model must carry tuned planner defaults"
    rng = np.random.default_rng(0)
    obs = {"pixels": rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), "state": np.zeros(7, np.float32)}
    goal = {"pixels": rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), "state": np.zeros(7, np.float32)}
    action = agent.act(obs, goal)
    assert action.shape == (7,) and np.all(np.abs(action) <= 1)


def _setting(config, name: str):
    """A flat planner setting (as a model records it) read from the resolved PlannerConfig."""
    for part in (config, config.cem, config.energy):
        if hasattr(part, name):
            return getattr(part, name)
    raise AttributeError(name)


def test_agent_plans_each_task_with_the_shipped_per_task_defaults():
    """``env_id`` applies the model's per-task overrides over its general defaults (README figures were
    measured so): Reach the bigger search; Push and PickPlace the general one, with no per-task rule."""
    from planning import Agent

    planner = load_world_model("default").planner
    general = {k: v for k, v in planner.items() if k != "per_env"}
    configs = {env_id: Agent.from_pretrained("default", env_id=env_id).config
               for env_id in ("simjepa/Reach-v0", "simjepa/Push-v0", "simjepa/PickPlace-v0")}
    for env_id, config in configs.items():
        for name, value in {**general, **planner["per_env"].get(env_id, {})}.items():
            assert _setting(config, name) == value, (env_id, name)
    on_reach, on_push = configs["simjepa/Reach-v0"].cem, configs["simjepa/Push-v0"].cem
    assert on_reach.samples * on_reach.iterations > general["samples"] * general["iterations"]
    assert (on_push.samples, on_push.iterations) == (general["samples"], general["iterations"])
    # Image-goal protocol: per task only a search size, never a rule that sets an action dim (a gripper
    # hold, a yaw) or reads the goal's state.
    search_size = {"samples", "iterations", "topk", "horizon", "execute_steps"}
    assert all(set(per_task) <= search_size for per_task in planner["per_env"].values())
    assert set(general) <= search_size
    for config in configs.values():
        assert config.cem.gripper_init_std > 0 and config.cem.gripper_init_mean == 0.0  # the gripper is searched like the arm
