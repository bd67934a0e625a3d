"""Predictor training: overfitting, rollout targets, exact resume, bad input, the world-model bundle."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from world_model.model_file import load_world_model
from world_model.checkpoints import load_file
from world_model.encoder_loading import encoder_identity, load_encoder
from world_model.feature_cache import FeatureCache, arrays_path, feats_path
from world_model.losses import feature_loss, predictor_losses, rollout, rollout_targets
from world_model.predictor import normalize_reps
from world_model.data import ArraySource, TrainError
from world_model.train import TrainConfig, train

FAKE_ENCODER = {"name": "synthetic", "config": {"embed_dim": 32}, "weights_hash": "0123456789abcdef"}


def synthetic_episodes(n_eps: int = 4, steps: int = 10, grid: int = 2, dim: int = 32, action_dim: int = 7,
                       state_dim: int = 7, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Features of a point moved by actions: x_{t+1} = clip(x_t + 0.3 a_t[:3]), feats = tanh(x W) per token."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(grid * grid, 3, dim)).astype(np.float32)
    eps = []
    for _ in range(n_eps):
        x = rng.uniform(-1, 1, 3).astype(np.float32)
        acts = rng.uniform(-1, 1, (steps, action_dim)).astype(np.float32)
        xs = [x]
        for t in range(steps):
            x = np.clip(x + 0.3 * acts[t, :3], -2, 2)
            xs.append(x)
        xs = np.stack(xs)  # [T+1, 3]
        feats = np.tanh(np.einsum("tk,nkd->tnd", xs, w)).astype(np.float16)  # [T+1, N, D]
        states = np.concatenate([xs, np.zeros((steps + 1, max(state_dim - 3, 0)), np.float32)], 1)[:, :state_dim]
        eps.append((feats, acts, states.astype(np.float32)))
    return eps


def array_source(**kw) -> ArraySource:
    eps = synthetic_episodes(**kw)
    g = int(np.sqrt(eps[0][0].shape[1]))
    return ArraySource(eps, {"encoder": FAKE_ENCODER, "grid": [g, g], "image_size": [16 * g, 16 * g]})


def write_cache(root: Path, episodes, identity: dict, grid: tuple[int, int], env_id: str = "simjepa/Reach-v0") -> Path:
    """A feature cache on disk in the format `simjepa encode` writes (manifest + .feats.npy + .npz)."""
    root.mkdir(parents=True)
    rows = []
    for i, (feats, actions, states) in enumerate(episodes):
        np.save(feats_path(root, i), feats.astype(np.float16))
        np.savez(arrays_path(root, i), actions=actions, states=states, proprio=states[:, :7],
                 success=np.asarray(False), distance=np.asarray(0.1, np.float32))
        rows.append({"index": i, "frames": len(feats), "steps": len(feats) - 1})
    n, d = episodes[0][0].shape[1:]
    manifest = {"format": "simjepa/feature_cache", "version": 1, "encoder": identity,
                "image_size": [16 * grid[0], 16 * grid[1]], "grid": list(grid), "tokens_per_frame": n, "dim": d,
                "dtype": "float16", "source": {"path": str(root), "env_id": env_id, "render_size": 64},
                "action_dim": episodes[0][1].shape[1], "state_dim": episodes[0][2].shape[1], "proprio_dim": 7,
                "episodes": rows, "complete": True}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def tiny_cfg(out: Path, **kw) -> TrainConfig:
    base = dict(out=str(out), config="tiny", steps=8, batch_size=4, lr=2e-3, context=3, rollout=2, val_rollout=8,
                ckpt_every=4, log_every=1, workers=0, progress=False, seed=0)
    base.update(kw)
    return TrainConfig(**base)


def rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


# --- objective -------------------------------------------------------------------------------------
def _state_oracle(feats, actions, states):
    """Knows the toy dynamics: the next raw frame is (state + action), broadcast over tokens."""
    nxt = (states + actions)[:, :, None, :].expand(-1, -1, feats.shape[2], -1)
    return nxt + 0.0 * feats


def test_rollout_step_j_is_scored_against_true_frame_j_plus_1():
    torch.manual_seed(0)
    b, frames, n, d = 3, 5, 4, 6
    actions = torch.randn(b, frames - 1, d)
    x = [torch.randn(b, d)]
    for t in range(frames - 1):
        x.append(x[-1] + actions[:, t])
    raw = torch.stack(x, 1)  # [B, L, D]: true raw frames, x_{t+1} = x_t + a_t
    z = normalize_reps(raw[:, :, None, :].expand(-1, -1, n, -1))  # [B, L, N, D]
    states = raw

    assert torch.equal(rollout_targets(z, 1, 3), z[:, 1:4])  # step j from context {z_0} -> true z_{j+1}
    preds = rollout(_state_oracle, z[:, :1], actions, states, steps=3, window=3)
    assert torch.allclose(preds, z[:, 1:4], atol=1e-5)

    losses = predictor_losses(_state_oracle, z, actions, states, context=3, rollout_steps=3)
    assert losses["rollout_loss"].item() < 1e-5 and losses["tf_loss"].item() < 1e-5
    # The lagged variant (jepa-wms appendix B: fed [z1, z2_hat], trained to output z2 again) scores
    # step j against the last frame it was fed; the correct model then pays a large loss there.
    lagged = feature_loss(preds, z[:, 0:3])
    assert lagged.item() > 0.1


def test_rollout_feeds_its_own_layer_normed_predictions_back():
    calls = []

    def recorder(feats, actions, states):
        calls.append(feats.clone())
        return feats[:, -1:] * 2.0 + 1.0 + torch.arange(feats.shape[-1]).float()

    z = normalize_reps(torch.randn(2, 1, 4, 8))
    acts, states = torch.zeros(2, 4, 3), torch.zeros(2, 5, 3)
    preds = rollout(recorder, z, acts, states, steps=4, window=2)
    assert [c.shape[1] for c in calls] == [1, 2, 2, 2]  # context window caps the frames fed
    assert torch.equal(calls[1][:, -1:], preds[:, :1]) and torch.equal(calls[3][:, 0], preds[:, 1])
    assert torch.allclose(preds.mean(-1), torch.zeros(2, 4, 4), atol=1e-5)  # layer-normed


# --- training --------------------------------------------------------------------------------------
def test_overfits_a_tiny_dataset(tmp_path):
    src = array_source(n_eps=2, steps=5)
    cfg = tiny_cfg(tmp_path / "run", steps=100, batch_size=8, lr=3e-3, val_fraction=0.0, ckpt_every=100, warmup=5)
    train(cfg, src)
    losses = [r["loss"] for r in rows(tmp_path / "run")]
    assert np.mean(losses[:5]) / np.mean(losses[-5:]) > 10


def test_resume_after_interrupt_matches_uninterrupted(tmp_path, monkeypatch):
    src = array_source(n_eps=3, steps=8)
    train(tiny_cfg(tmp_path / "a"), src)

    import world_model.train as wt

    real = wt.lr_at

    def crash_at_6(step, cfg):
        if step == 5:  # after the step-4 checkpoint and one more (lost) step
            raise KeyboardInterrupt
        return real(step, cfg)

    monkeypatch.setattr(wt, "lr_at", crash_at_6)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_cfg(tmp_path / "b"), src)
    assert not (tmp_path / "b" / "final.pt").exists()
    monkeypatch.setattr(wt, "lr_at", real)
    train(tiny_cfg(tmp_path / "b"), src)

    a, b = load_file(tmp_path / "a" / "final.pt"), load_file(tmp_path / "b" / "final.pt")
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert rows(tmp_path / "a") == [dict(r, samples_per_s=ra["samples_per_s"]) for r, ra in zip(rows(tmp_path / "b"), rows(tmp_path / "a"))]
    val = json.loads((tmp_path / "b" / "val.json").read_text())
    assert set(val["rollout_l1"]) == {str(k) for k in range(1, 9)} and set(val["copy_last_l1"]) == set(val["rollout_l1"])


def test_nan_batches_are_skipped_and_counted(tmp_path):
    eps = synthetic_episodes(n_eps=2, steps=6)
    eps[1][0][2, 0, 0] = np.nan  # one frame of episode 1
    src = ArraySource(eps, {"encoder": FAKE_ENCODER, "grid": [2, 2]})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(tiny_cfg(tmp_path / "run", steps=6, val_fraction=0.0), src)
    skipped = rows(tmp_path / "run")[-1]["skipped"]
    assert skipped > 0 and any("batch skipped" in str(w.message) for w in caught)
    sd = load_file(tmp_path / "run" / "final.pt")["state_dict"]
    assert all(torch.isfinite(v).all() for v in sd.values())


def test_resume_refuses_other_encoder_or_dims(tmp_path):
    train(tiny_cfg(tmp_path / "run", steps=2, ckpt_every=1, stop_after=1), array_source(n_eps=2, steps=6))
    other = array_source(n_eps=2, steps=6)
    other.manifest["encoder"] = dict(FAKE_ENCODER, weights_hash="ffffffffffffffff")
    with pytest.raises(TrainError, match="trained on features of encoder"):
        train(tiny_cfg(tmp_path / "run", steps=2), other)
    with pytest.raises(TrainError, match="action/state dims"):
        train(tiny_cfg(tmp_path / "run", steps=2), array_source(n_eps=2, steps=6, action_dim=4))
    with pytest.raises(TrainError, match="other settings"):
        train(tiny_cfg(tmp_path / "run", steps=2, loss="l2"), array_source(n_eps=2, steps=6))


def test_a_checkpoint_from_before_a_predictor_field_existed_resumes(tmp_path):
    """Checkpoints written before `residual` existed lack the key; they resume as whole-frame runs."""
    src = array_source(n_eps=2, steps=6)
    train(tiny_cfg(tmp_path / "run", steps=2, ckpt_every=1, stop_after=1), src)
    path = tmp_path / "run" / "checkpoint.pt"
    state = torch.load(path, weights_only=False)
    del state["predictor_config"]["residual"]
    torch.save(state, path)
    train(tiny_cfg(tmp_path / "run", steps=2), src)
    assert rows(tmp_path / "run")[-1]["step"] == 2 and (tmp_path / "run" / "final.pt").exists()


def _cli(args: list[str], capsys) -> tuple[int, str]:
    from simjepa_cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
        raise SystemExit(0)
    return exit_info.value.code, capsys.readouterr().err


def test_cli_end_to_end_bundle_and_errors(tmp_path, capsys):
    enc = load_encoder("vit_tiny", image_size=32)  # 2x2 grid of 192-D tokens
    cache = write_cache(tmp_path / "feats", synthetic_episodes(n_eps=3, steps=9, dim=192), encoder_identity(enc), (2, 2))
    assert len(FeatureCache.open(cache)) == 3
    out = tmp_path / "model"
    args = ["train", "--features", str(cache), "--out", str(out), "--config", "tiny", "--steps", "3", "--batch-size", "4",
            "--val-fraction", "0.34", "--workers", "0", "--quiet"]
    code, err = _cli(args, capsys)
    assert code == 0, err
    for name in ("final.pt", "val.json", "train_config.json", "metrics.jsonl", "loss_curve.png", "checkpoint.pt"):
        assert (out / name).is_file(), name
    wm = load_world_model(out)
    assert wm.image_size == 32 and wm.grid == (2, 2) and wm.info["env_ids"] == ["simjepa/Reach-v0"]
    assert "state_dict" in load_file(out / "final.pt")["encoder"]  # small encoder embedded: self-contained
    frames = np.random.default_rng(0).integers(0, 256, (2, 48, 48, 3), dtype=np.uint8)
    z = wm.encode(frames)
    assert z.shape == (2, 4, 192)
    with torch.no_grad():
        y = wm.predictor(normalize_reps(z)[:, None], torch.zeros(2, 1, 7), torch.zeros(2, 1, 7))
    assert y.shape == (2, 1, 4, 192)

    # corrupt checkpoint on resume -> one-line error, exit 2
    (out / "checkpoint.pt").write_bytes(b"PK\x03\x04 not a checkpoint")
    code, err = _cli(args, capsys)
    assert code == 2 and err.startswith("error:") and "corrupt" in err and len(err.strip().splitlines()) == 1
    # a cache from another encoder than the one asked for
    code, err = _cli(args[:4] + [str(tmp_path / "m2"), "--encoder", "vit_small"] + args[5:], capsys)
    assert code == 2 and "not by the given encoder" in err


def test_init_starts_from_another_models_predictor(tmp_path, capsys):
    """--init: fine-tuning starts from the given world model's weights (same shape and encoder)."""
    enc = load_encoder("vit_tiny", image_size=32)
    cache = write_cache(tmp_path / "feats", synthetic_episodes(n_eps=3, steps=9, dim=192), encoder_identity(enc), (2, 2))
    base = ["train", "--features", str(cache), "--config", "tiny", "--batch-size", "4", "--val-fraction", "0.34",
            "--workers", "0", "--quiet"]
    assert _cli(base + ["--out", str(tmp_path / "a"), "--steps", "3"], capsys)[0] == 0
    code, err = _cli(base + ["--out", str(tmp_path / "b"), "--steps", "1", "--lr", "1e-12", "--init", str(tmp_path / "a")],
                     capsys)
    assert code == 0, err
    a, b = load_world_model(tmp_path / "a").predictor.state_dict(), load_world_model(tmp_path / "b").predictor.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    code, err = _cli(base + ["--out", str(tmp_path / "c"), "--steps", "1", "--lr", "1e-12"], capsys)
    c = load_world_model(tmp_path / "c").predictor.state_dict()
    assert not all(torch.allclose(a[k], c[k], atol=1e-6) for k in a)  # without --init: a new init
    # another predictor shape, or a model trained on another encoder's features: one-line errors
    code, err = _cli(base[:-9] + ["--config", "mini"] + base[-7:] + ["--out", str(tmp_path / "d"), "--steps", "1",
                                                                     "--init", str(tmp_path / "a")], capsys)
    assert code == 2 and "another shape" in err
    other = write_cache(tmp_path / "feats2", synthetic_episodes(n_eps=3, steps=9, dim=192),
                        {**encoder_identity(enc), "weights_hash": "0" * 16}, (2, 2))
    code, err = _cli(["train", "--features", str(other)] + base[3:] + ["--out", str(tmp_path / "e"), "--steps", "1",
                                                                       "--init", str(tmp_path / "a")], capsys)
    assert code == 2 and "same encoder" in err


def test_validation_scores_rollouts_in_l1_and_l2_against_copy_last():
    """val.json's copy-last baseline in both metrics equals the per-frame-pair errors computed by hand."""
    from world_model.predictor import build_predictor
    from world_model.validation import validate

    src = array_source(n_eps=1, steps=6)
    feats = normalize_reps(torch.from_numpy(src.episode(0)[0].astype(np.float32)))  # [7, N, D]
    pred = build_predictor("tiny", embed_dim=32, depth=1)
    val = validate(pred, src, [0], {0: 7}, 7, context=3, steps=1, device=torch.device("cpu"))
    diff = feats[:-1] - feats[1:]
    assert val["copy_last_l1"]["1"] == pytest.approx(float(diff.abs().mean()), rel=1e-5)
    assert val["copy_last_l2"]["1"] == pytest.approx(float(diff.square().mean()), rel=1e-5)
    assert val["rollout_l2"]["1"] > 0 and val["rollout_l2"]["1"] != val["rollout_l1"]["1"]


def test_a_residual_model_starts_at_copy_last(tmp_path):
    """`train --residual`: at a negligible learning rate val.json's 1-step L1 is copy-last's (a whole-frame
    model's is far from it), the setting is recorded, and --init refuses a model of the other kind."""
    src = array_source(n_eps=6, steps=10)
    still = train(tiny_cfg(tmp_path / "still", residual=True, steps=1, lr=1e-12, val_fraction=0.34), src)
    assert still["rollout_l1"]["1"] == pytest.approx(still["copy_last_l1"]["1"], rel=1e-3)
    whole = train(tiny_cfg(tmp_path / "whole", steps=1, lr=1e-12, val_fraction=0.34), src)
    assert whole["rollout_l1"]["1"] > 1.5 * whole["copy_last_l1"]["1"]
    assert json.loads((tmp_path / "still" / "train_config.json").read_text())["residual"] is True
    assert load_world_model(tmp_path / "still", with_encoder=False).predictor.config.residual
    with pytest.raises(TrainError, match="--residual exactly when"):
        train(tiny_cfg(tmp_path / "mixed", steps=1, init=str(tmp_path / "still")), src)


def test_the_cli_trains_a_residual_model(tmp_path, capsys):
    enc = load_encoder("vit_tiny", image_size=32)
    cache = write_cache(tmp_path / "feats", synthetic_episodes(n_eps=3, steps=9, dim=192), encoder_identity(enc), (2, 2))
    code, err = _cli(["train", "--features", str(cache), "--config", "tiny", "--batch-size", "4", "--val-fraction", "0.34",
                      "--workers", "0", "--quiet", "--steps", "2", "--plan-seconds", "0", "--residual",
                      "--out", str(tmp_path / "r")], capsys)
    assert code == 0, err
    assert load_world_model(tmp_path / "r", with_encoder=False).predictor.config.residual
