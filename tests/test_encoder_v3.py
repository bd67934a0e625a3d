"""Issue 21 additions: grid-sized masks, the motion and gripper probes, device-agnostic pretraining, curves."""
import json

import numpy as np
import pytest
import torch

from world_model.encoder import build_encoder
from world_model.masks import VJEPA_MASKS, future_masks, grid_masks, masked_fraction, sample_block_masks, sample_block_size
from world_model.pretrain import PretrainConfig, PretrainError, mask_specs_for, pretrain
from world_model.probe import (
    ProbeEpisode,
    ProbeSettings,
    clip_features,
    clip_velocity,
    motion_probe_features,
    run_motion_probe,
    run_probe,
)


# --- masks ------------------------------------------------------------------------------------------


def test_grid_masks_are_official_on_16x16_and_fewer_larger_blocks_on_smaller_grids():
    assert grid_masks((16, 16)) == VJEPA_MASKS
    assert grid_masks((32, 32)) == VJEPA_MASKS
    short8, long8 = grid_masks((8, 8))
    short4, _ = grid_masks((4, 4))
    official_short = VJEPA_MASKS[0]
    assert official_short.num_blocks > short8.num_blocks > short4.num_blocks >= 2
    assert official_short.spatial_scale[0] < short8.spatial_scale[0] < short4.spatial_scale[0]
    assert long8 == VJEPA_MASKS[1]
    with pytest.raises(ValueError):
        grid_masks((0, 8))


def test_grid_masks_keep_the_official_masked_fraction_with_blocks_of_at_least_2x2():
    official = np.mean([masked_fraction((4, 16, 16), VJEPA_MASKS, 32, s)[0] for s in range(4)])
    for grid in ((4, 8, 8), (2, 12, 12)):
        specs = grid_masks(grid[1:])
        frac = np.mean([masked_fraction(grid, specs, 32, s)[0] for s in range(4)])
        assert abs(frac - official) < 0.08, (grid, frac, official)
        gen = torch.Generator().manual_seed(0)
        sizes = [sample_block_size(grid, specs[0], gen) for _ in range(50)]
        assert min(min(h, w) for _, h, w in sizes) >= 2
    # the official short-range family on 8x8 makes blocks of at most 3x3 tokens
    gen = torch.Generator().manual_seed(0)
    assert max(max(h, w) for _, h, w in (sample_block_size((4, 8, 8), VJEPA_MASKS[0], gen) for _ in range(50))) <= 4


@pytest.mark.parametrize("grid", [(2, 8, 8), (4, 6, 6)])
def test_future_masks_hide_only_the_later_half_and_keep_the_earlier_half_as_context(grid):
    t, h, w = grid
    half = (t // 2) * h * w  # tokens of the earlier half, raster order puts them first
    gen = torch.Generator().manual_seed(0)
    for spec, official in zip(future_masks(grid_masks((h, w))), grid_masks((h, w))):
        assert spec.spatial_scale == official.spatial_scale and spec.num_blocks == official.num_blocks
        for _ in range(5):
            keep, pred = sample_block_masks(grid, spec, 4, gen)
            assert int(pred.min()) >= t * h * w - half  # targets only in the later half
            # the earlier half is context, less the random tokens cut so rows stack (as for every family)
            assert (keep < half).sum(1).min() >= 0.7 * half and (keep < half).float().mean() > 0.6
            assert all(not set(k.tolist()) & set(p.tolist()) for k, p in zip(keep, pred))
    # tube masks (the official default) hide the same places at every time step
    keep, pred = sample_block_masks(grid, VJEPA_MASKS[1], 4, gen)
    assert int(pred.min()) < h * w


def test_pretrain_config_selects_masks_and_device_is_not_a_result_setting():
    grid = (4, 8, 8)
    assert mask_specs_for(PretrainConfig(masks="grid"), grid) == grid_masks((8, 8))
    assert mask_specs_for(PretrainConfig(), grid) == VJEPA_MASKS
    with pytest.raises(PretrainError, match="--masks"):
        PretrainConfig(masks="random").check()
    assert mask_specs_for(PretrainConfig(masks="future", frames=4), grid) == future_masks(grid_masks((8, 8)))
    with pytest.raises(PretrainError, match="needs --frames 4"):
        PretrainConfig(masks="future", frames=2).check()
    assert mask_specs_for(PretrainConfig(masks="short"), grid) == (VJEPA_MASKS[0],)
    assert mask_specs_for(PretrainConfig(masks="long"), grid) == (VJEPA_MASKS[1],)
    assert "device" not in PretrainConfig(device="cuda").result_settings()
    assert PretrainConfig(device="cuda").result_settings() == PretrainConfig().result_settings()


def test_cli_offers_every_mask_choice_of_the_config():
    from simjepa_cli import cli
    from world_model.pretrain import MASK_CHOICES

    opt = next(p for p in cli.commands["pretrain-encoder"].params if p.name == "masks")
    assert tuple(opt.type.choices) == MASK_CHOICES


@pytest.mark.parametrize("masks", ["grid", "future", "long"])
def test_pretrain_with_each_non_default_mask_family_and_4_frame_clips_runs_and_logs(tmp_path, masks):
    rng = np.random.default_rng(0)
    eps = [rng.integers(0, 255, size=(8, 32, 32, 3), dtype=np.uint8) for _ in range(3)]
    cfg = PretrainConfig(image_size=32, patch_size=8, encoder_overrides={"depth": 1, "embed_dim": 32, "num_heads": 2},
                         pred_dim=16, pred_depth=1, pred_heads=2, frames=4, masks=masks, batch_size=2, steps=3,
                         warmup_steps=1, log_every=1, device="cpu")
    res = pretrain(cfg, eps, tmp_path / "enc.pt", progress=False)
    rows = [json.loads(x) for x in res.log.read_text().splitlines()]
    assert res.steps == 3 and len(rows) == 3 and all("target_erank" in r for r in rows)
    from world_model.pretrain_plots import plot_pretrain_logs

    png = plot_pretrain_logs({"run": res.log}, tmp_path / "curves.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tubelet_pixels_follow_the_encoders_token_order():
    """The pixel term's target for token i must be the tubelet the encoder embeds as token i: a patch embedding
    whose weights are the identity outputs exactly the tubelet's pixels."""
    from world_model.encoder import PatchEmbed3D
    from world_model.pretrain import tubelet_pixels

    clip = torch.randn(2, 3, 4, 16, 16)
    dim = 3 * 2 * 8 * 8
    embed = PatchEmbed3D(patch_size=8, tubelet_size=2, in_chans=3, embed_dim=dim)
    with torch.no_grad():
        embed.proj.weight.copy_(torch.eye(dim).reshape(dim, 3, 2, 8, 8))
        embed.proj.bias.zero_()
        expected = embed(clip)  # [2, 2*2*2, 384]
    assert expected.shape == (2, 8, dim)
    torch.testing.assert_close(tubelet_pixels(clip, patch=8, tubelet=2), expected)


def _toy_run(steps: int) -> tuple[list[np.ndarray], dict]:
    """Three random 8-frame episodes and the settings of a toy-sized fp32 pretraining run of ``steps`` steps."""
    rng = np.random.default_rng(0)
    eps = [rng.integers(0, 255, size=(8, 32, 32, 3), dtype=np.uint8) for _ in range(3)]
    return eps, dict(image_size=32, patch_size=8, encoder_overrides={"depth": 1, "embed_dim": 32, "num_heads": 2},
                     pred_dim=16, pred_depth=1, pred_heads=2, frames=4, batch_size=2, steps=steps, warmup_steps=1,
                     log_every=1, bf16=False, device="cpu")


@pytest.mark.parametrize("tokens", ["masked", "context"])
def test_pixel_term_adds_to_the_latent_loss_logs_both_parts_and_trains_the_encoder(tmp_path, tokens):
    eps, base = _toy_run(steps=2)
    from world_model.checkpoints import read_model

    runs = {}
    for w in (0.0, 2.0):
        res = pretrain(PretrainConfig(pixel_weight=w, pixel_tokens=tokens, **base), eps, tmp_path / f"enc{w}.pt",
                       progress=False)
        runs[w] = ([json.loads(x) for x in res.log.read_text().splitlines()], read_model(res.out, "encoder"))
    plain, pixel = runs[0.0][0], runs[2.0][0]
    assert "pixel_loss" not in plain[0] and pixel[0]["pixel_loss"] > 0
    for r in pixel:
        assert r["loss"] == pytest.approx(r["latent_loss"] + 2.0 * r["pixel_loss"], rel=1e-5)
    # the pixel head leaves the rest of the init alone: step 1 sees the same batch and the same latent loss
    assert pixel[0]["latent_loss"] == pytest.approx(plain[0]["loss"], rel=1e-6)
    # ... and its gradient reaches the encoder: after the first update, the encoders differ
    assert pixel[1]["latent_loss"] != pytest.approx(plain[1]["loss"], rel=1e-6)
    assert (runs[2.0][1]["pretraining"]["pixel_weight"], runs[2.0][1]["pretraining"]["pixel_tokens"]) == (2.0, tokens)
    from world_model.pretrain_plots import plotted_rows

    curve = plotted_rows(tmp_path / "enc2.0.pt.run" / "log.jsonl")
    assert [r["loss"] for r in curve] == [r["latent_loss"] for r in pixel]  # the curves show the comparable part
    with pytest.raises(PretrainError, match="pixel-weight"):
        PretrainConfig(pixel_weight=float("nan")).check()
    with pytest.raises(PretrainError, match="pixel-tokens"):
        PretrainConfig(pixel_tokens="all").check()


def test_motion_weights_favour_the_place_that_moved_at_every_time_token_and_are_flat_for_a_still_clip():
    from world_model.pretrain import token_motion_weights

    still = torch.randn(1, 3, 1, 16, 16).expand(2, 3, 4, 16, 16).clone()  # [B, C, F, S, S], no change over time
    torch.testing.assert_close(token_motion_weights(still, patch=8, time_tokens=2, strength=3.0), torch.ones(2, 8))
    moving = still.clone()
    moving[1, :, 2:, 8:, :8] += 1.0  # in clip 1 the bottom-left patch changes from frame 2 on
    w = token_motion_weights(moving, patch=8, time_tokens=2, strength=3.0)  # tokens (t, h, w) = 2 x 2 x 2
    torch.testing.assert_close(w[0], torch.ones(8))
    assert w[1, 2] == w[1, 6] == w[1].max() and w[1, 2] == pytest.approx(1 + 3.0 * 4)  # that place at t=0 and t=1
    assert torch.all(w[1, [0, 1, 3, 4, 5, 7]] == 1.0)


def test_pretrain_with_motion_weights_runs_and_differs_from_the_plain_loss(tmp_path):
    eps, base = _toy_run(steps=1)
    first = {}
    for w in (0.0, 4.0):
        res = pretrain(PretrainConfig(motion_weight=w, **base), eps, tmp_path / f"enc{w}.pt", progress=False)
        first[w] = json.loads(res.log.read_text().splitlines()[0])["loss"]
    assert np.isfinite(first[4.0]) and first[4.0] != pytest.approx(first[0.0], rel=1e-6)  # same batch, reweighted
    with pytest.raises(PretrainError, match="motion-weight"):
        PretrainConfig(motion_weight=-1.0).check()


def test_cli_pixel_weight_rejects_negative_values_without_a_traceback(tmp_path):
    from click.testing import CliRunner

    from simjepa_cli import cli
    from world_model.pretrain import PIXEL_TOKEN_CHOICES

    opt = next(p for p in cli.commands["pretrain-encoder"].params if p.name == "pixel_tokens")
    assert tuple(opt.type.choices) == PIXEL_TOKEN_CHOICES

    res = CliRunner().invoke(cli, ["pretrain-encoder", "--data", str(tmp_path), "--out", str(tmp_path / "e.pt"),
                                   "--pixel-weight", "-1"])
    assert res.exit_code == 2 and "--pixel-weight" in res.output and "Traceback" not in res.output


def test_snapshot_of_the_final_state_is_the_finished_runs_encoder(tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    from world_model.encoder_loading import load_encoder

    spec = importlib.util.spec_from_file_location("pretrain_snapshot", Path(__file__).parents[1] / "scripts" / "pretrain_snapshot.py")
    snapshot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(snapshot)
    rng = np.random.default_rng(1)
    eps = [rng.integers(0, 255, size=(6, 32, 32, 3), dtype=np.uint8) for _ in range(2)]
    cfg = PretrainConfig(image_size=32, patch_size=8, encoder_overrides={"depth": 1, "embed_dim": 32, "num_heads": 2},
                         pred_dim=16, pred_depth=1, pred_heads=2, batch_size=2, steps=2, warmup_steps=1, device="cpu")
    pretrain(cfg, eps, tmp_path / "enc.pt", progress=False)
    assert snapshot.main([str(tmp_path / "enc.pt.run" / "state.pt"), str(tmp_path / "snap.pt")]) == 0
    assert "at step 2" in capsys.readouterr().out
    final, snap = load_encoder(str(tmp_path / "enc.pt")), load_encoder(str(tmp_path / "snap.pt"))
    assert all(torch.equal(a, b) for a, b in zip(final.state_dict().values(), snap.state_dict().values()))
    assert snapshot.main([str(tmp_path / "enc.pt"), str(tmp_path / "bad.pt")]) == 2  # a checkpoint, not a state
    assert "not a pretraining state file" in capsys.readouterr().err and not (tmp_path / "bad.pt").exists()


# --- motion probe -----------------------------------------------------------------------------------


def test_clip_velocity_is_the_mean_step_over_the_window():
    p = np.cumsum(np.ones((6, 3)) * [0.01, -0.02, 0.0], axis=0)
    v = clip_velocity(p, 4)
    assert v.shape == (3, 3) and np.allclose(v, [[0.01, -0.02, 0.0]] * 3)


def _random_walks(n_eps: int, steps: int, rng: np.random.Generator) -> list[np.ndarray]:
    return [np.cumsum(rng.normal(scale=0.01, size=(steps, 3)), axis=0) for _ in range(n_eps)]


def test_motion_probe_recovers_a_known_velocity_only_from_features_that_see_two_times():
    """Synthetic clip features: a random linear embedding of the positions at the clip's two time steps.

    Both positions in the features: velocity is their difference, R^2 ~ 1. Only the last position
    (a single-frame feature) on a random walk: the velocity is unpredictable, R^2 ~ 0.
    """
    rng = np.random.default_rng(0)
    walks = _random_walks(20, 30, rng)
    emb = rng.normal(size=(3, 40))
    two_times = [np.concatenate([w[:-3] @ emb, w[3:] @ emb], axis=1) + rng.normal(scale=1e-4, size=(27, 80))
                 for w in walks]
    last_only = [w[3:] @ emb + rng.normal(scale=1e-4, size=(27, 40)) for w in walks]
    vel = [clip_velocity(w, 4) for w in walks]
    good = motion_probe_features(two_times, vel, moving_speed=0.0)
    bad = motion_probe_features(last_only, vel)
    assert good["r2"] > 0.95 and good["r2_moving"] > 0.95 and good["moving_clips_test"] > 0
    assert bad["r2"] < 0.3


def test_clip_features_shape_and_run_motion_probe_end_to_end():
    """A tiny random encoder on a square moving at a per-episode constant velocity."""
    rng = np.random.default_rng(1)
    eps = []
    for _ in range(8):
        v = rng.integers(-2, 3, size=2)
        start = rng.integers(6, 18, size=2)
        xy = np.clip(start + np.arange(10)[:, None] * v, 0, 24)
        frames = np.zeros((10, 32, 32, 3), np.uint8)
        for t, (x, y) in enumerate(xy):
            frames[t, y:y + 8, x:x + 8] = 255
        pos = np.concatenate([xy / 32.0, np.zeros((10, 1))], axis=1)
        eps.append(ProbeEpisode(frames=frames, ee=pos, obj=pos * 0.1, gripper=np.zeros((10, 1))))
    enc = build_encoder("vit_tiny", depth=1, embed_dim=32, num_heads=2, patch_size=8, image_size=32)
    f = clip_features(enc, eps[0].frames, clip_frames=4, pool=2)
    assert f.shape == (7, 2 * 32 * (1 + 4))
    res = run_motion_probe(enc, eps, clip_frames=4, pool=2, progress=False)
    assert res["feature_dim"] == 320 and res["episodes_used"] == 8
    assert np.isfinite(res["r2_ee_velocity"]) and res["object_velocity"]["moving_clips_test"] >= 0
    pos_res = run_probe(enc, ProbeSettings(env="synthetic", episodes=8, seed_start=0, render_size=32), episodes=eps,
                        progress=False)
    assert "r2_gripper" in pos_res and pos_res["gripper"]["frames"]["test"] > 0


def test_committed_4000_step_encoder_is_the_default_recipes_and_encodes_a_clip():
    """The encoder docs/encoder-v3.md probes (hash cad649cbe07c789c) ships so a model can be built on it without
    re-running its 103 min of pretraining; its record must be the default recipe on the 800 pretraining episodes."""
    from pathlib import Path

    from world_model.checkpoints import read_model, weights_hash
    from world_model.encoder_loading import load_encoder

    path = Path(__file__).resolve().parents[1] / "world_model" / "assets" / "encoder_4frame_4000steps.pt"
    obj = read_model(path, "encoder")
    assert obj["weights_hash"] == weights_hash(obj["state_dict"]) == "cad649cbe07c789c"
    rec, cfg = obj["pretraining"], PretrainConfig()
    assert (rec["frames"], rec["batch_size"], rec["steps_done"], rec["warmup_steps"], rec["masks"]) == (
        cfg.frames, cfg.batch_size, cfg.steps, cfg.warmup_steps, cfg.masks)
    assert rec["episodes"] == 800 and rec["encoder_overrides"] == {"depth": 6}
    enc = load_encoder(str(path))
    assert enc.config.image_size == 64 and enc.config.patch_size == 8
    with torch.no_grad():
        out = enc(torch.zeros(1, 3, 4, 64, 64))  # one 4-frame clip -> 2 temporal tokens x 8x8
    assert out.shape == (1, 2 * 64, 192) and torch.isfinite(out).all()
