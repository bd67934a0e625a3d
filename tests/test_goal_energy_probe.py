"""benchmarks/goal_energy_probe.py: the cube's share of the energy under its three reads, and --encoder."""
import torch

from benchmarks.goal_energy_probe import cube_shares


def test_cube_shares_divide_the_cube_only_frame_by_the_start_under_each_read():
    # tokens: 0-1 the arm (wrong at start, right when the arm is at its goal pose), 2 the cube, 3 static
    per_token = torch.tensor([[4.0, 4.0, 1.0, 0.0],    # start: arm and cube wrong
                              [0.0, 0.0, 1.0, 0.0]])  # arm_at_goal: only the cube wrong
    s = cube_shares(per_token)
    assert abs(s["mean"] - 1 / 9) < 1e-6  # (1/4) / (9/4)
    # weights 4/9, 4/9, 1/9, 0: start 33/9, cube-only 1/9
    assert abs(s["start_goal_weighted"] - 1 / 33) < 1e-6
    assert abs(s["top4_tokens"] - 1 / 9) < 1e-6  # all four tokens: the mean again
    wide = torch.cat([per_token, torch.zeros(2, 60)], 1)  # 60 more static tokens dilute the mean, not the top 4
    assert abs(cube_shares(wide)["mean"] - 1 / 9) < 1e-6 and abs(cube_shares(wide)["top4_tokens"] - 1 / 9) < 1e-6


def test_another_encoder_scores_at_its_own_frame_size_on_the_models_grid(tmp_path):
    """A 128 px, patch-16 encoder must see 128 px frames (its 8x8 grid), not the model's 64 px ones (4x4)."""
    from dataclasses import asdict

    import numpy as np

    from benchmarks.goal_energy_probe import scoring_model
    from world_model import load_world_model
    from world_model.checkpoints import weights_hash
    from world_model.encoder import build_encoder
    from world_model.model_file import save_model

    wm = load_world_model("default")
    enc = build_encoder("vit_tiny", depth=1, image_size=128, patch_size=16, seed=3)
    path = tmp_path / "enc128.pt"
    save_model(path, "encoder", asdict(enc.config), enc, name="toy 128", weights_hash=weights_hash(enc.state_dict()))
    same, size = scoring_model(wm, None)
    assert same is wm and size == wm.image_size == 64
    other, size = scoring_model(wm, str(path))
    assert size == 128 and other.token_pool == wm.token_pool
    frames = np.zeros((1, 128, 128, 3), np.uint8)
    tokens = other.encode(frames).shape[1]
    assert tokens == wm.encode(np.zeros((1, 64, 64, 3), np.uint8)).shape[1]
    assert weights_hash(other.encoder.encoder.state_dict()) == weights_hash(enc.state_dict())
