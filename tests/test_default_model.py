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
    measured so): default model v3.1 seeds Reach's small search with its embedded proposal and runs Push and
    PickPlace with the proposal alone (search "none"), with no per-task rule on an action dim."""
    from planning import Agent

    planner = load_world_model("default").planner
    general = {k: v for k, v in planner.items() if k != "per_env"}
    agents = {env_id: Agent.from_pretrained("default", env_id=env_id)
              for env_id in ("simjepa/Reach-v0", "simjepa/Push-v0", "simjepa/PickPlace-v0")}
    for env_id, agent in agents.items():
        for name, value in {**general, **planner["per_env"].get(env_id, {})}.items():
            assert _setting(agent.config, name) == value, (env_id, name)
        assert agent.proposal is not None and agent.proposal.identity()["path"] == "embedded in default"
    assert agents["simjepa/Reach-v0"].config.search == "cem"
    assert agents["simjepa/Push-v0"].config.search == agents["simjepa/PickPlace-v0"].config.search == "none"
    # Image-goal protocol: per task only a search (its size, or none), never a rule that sets an action dim
    # (a gripper hold, a yaw) or reads the goal's state.
    search = {"samples", "iterations", "topk", "horizon", "execute_steps", "search", "ensemble_plans"}
    assert all(set(per_task) <= search for per_task in planner["per_env"].values())
    assert set(general) <= search
    for agent in agents.values():
        cem = agent.config.cem
        assert cem.gripper_init_std > 0 and cem.gripper_init_mean == 0.0  # the gripper is searched like the arm


def _ship(*args: str):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    return subprocess.run([sys.executable, "scripts/ship_default_model.py", *args], cwd=root, capture_output=True,
                          text=True, timeout=120)


def test_the_rebuild_check_compares_every_shipped_weight(tmp_path):
    """`make default-model` ends with this check: the shipped files match themselves; another encoder does not."""
    from world_model.encoder_loading import DEFAULT_ENCODER_PATH
    from world_model.model_file import embedded_weight_hashes

    assert set(embedded_weight_hashes("default")) == {"encoder", "predictor", "proposal"}
    same = _ship("--run", str(DEFAULT_MODEL), "--encoder", str(DEFAULT_ENCODER_PATH), "--check")
    assert same.returncode == 0 and "bit-identical" in same.stdout, same.stdout + same.stderr
    other = tmp_path / "enc.pt"
    from world_model.encoder_loading import save_encoder

    save_encoder(other, build_encoder("vit_tiny", depth=1, image_size=64))
    differ = _ship("--run", str(DEFAULT_MODEL), "--encoder", str(other), "--check")
    assert differ.returncode == 1 and "differs from the shipped default model in: encoder" in differ.stdout
