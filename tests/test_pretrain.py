"""Mask-denoising pretraining on a tiny synthetic video set: learning, EMA, resume, checkpoint."""
import json

import numpy as np
import pytest
import torch

from tests.helpers import cli_exit_code
from world_model.checkpoints import read_model
from world_model.pretrain import (
    ClipSampler,
    PretrainConfig,
    PretrainError,
    _Trainer,
    collapse_stats,
    effective_rank,
    lr_at,
    momentum_at,
    pretrain,
    run_dir_for,
)

TINY = dict(  # 2-frame clips (one temporal token): the cheapest shape; the 4-frame default is tested on its own
    image_size=32, patch_size=8, frames=2, encoder_overrides={"depth": 1, "embed_dim": 32, "num_heads": 2},
    pred_dim=16, pred_depth=1, pred_heads=2, batch_size=8, warmup_steps=2, lr=2e-3, start_lr=5e-4,
)


def moving_squares(n_episodes: int = 6, steps: int = 12, size: int = 32, seed: int = 0) -> list[np.ndarray]:
    """A bright square drifting over a dark background: learnable structure, seeded."""
    rng = np.random.default_rng(seed)
    eps = []
    for _ in range(n_episodes):
        frames = np.full((steps, size, size, 3), 20, np.uint8)
        x, y = rng.integers(0, size - 8, 2)
        vx, vy = rng.integers(-1, 2, 2)
        color = rng.integers(120, 255, 3)
        for t in range(steps):
            xi, yi = int(np.clip(x + vx * t, 0, size - 8)), int(np.clip(y + vy * t, 0, size - 8))
            frames[t, yi : yi + 8, xi : xi + 8] = color
        eps.append(frames)
    return eps


def test_loss_decreases_and_collapse_monitor_logged(tmp_path):
    torch.manual_seed(0)
    cfg = PretrainConfig(**TINY, steps=40, log_every=5, ckpt_every=40)
    rows = []
    res = pretrain(cfg, moving_squares(), tmp_path / "enc.pt", progress=False, on_step=rows.append)
    losses = [r["loss"] for r in rows]
    assert len(losses) == 40 and all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses
    logged = [json.loads(x) for x in res.log.read_text().splitlines()]
    assert [r["step"] for r in logged] == list(range(5, 41, 5))
    assert all(r["target_std"] > 0 and 1 <= r["target_erank"] <= 32 for r in logged)


def test_ema_target_follows_context_encoder_with_scheduled_momentum():
    cfg = PretrainConfig(**TINY, steps=10, ema_start=0.9, ema_end=1.0)
    tr = _Trainer(cfg)
    sampler = ClipSampler(moving_squares(), cfg.frames)
    enc0 = [p.detach().clone() for p in tr.encoder.parameters()]
    tgt0 = [p.detach().clone() for p in tr.target.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(enc0, tgt0))  # target starts as a copy
    tr.train_step(sampler)
    enc1 = [p.detach() for p in tr.encoder.parameters()]
    tgt1 = [p.detach() for p in tr.target.parameters()]
    m = momentum_at(0, cfg)
    assert m == pytest.approx(0.9)
    for t0, e1, t1 in zip(tgt0, enc1, tgt1):
        torch.testing.assert_close(t1, m * t0 + (1 - m) * e1, rtol=0, atol=1e-6)
    moved_enc = sum(float((e1 - e0).abs().sum()) for e0, e1 in zip(enc0, enc1))
    moved_tgt = sum(float((t1 - t0).abs().sum()) for t0, t1 in zip(tgt0, tgt1))
    assert 0 < moved_tgt < moved_enc  # the target lags the context encoder
    assert not all(torch.equal(e, t) for e, t in zip(enc1, tgt1))
    assert momentum_at(cfg.steps, cfg) == pytest.approx(1.0)


def test_schedules_warm_up_then_decay():
    cfg = PretrainConfig(steps=100, warmup_steps=10, start_lr=1e-4, lr=1e-3, final_lr=1e-5)
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(10, cfg) == pytest.approx(1e-3)
    assert lr_at(100, cfg) == pytest.approx(1e-5)
    lrs = [lr_at(s, cfg) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_resume_after_kill_gives_identical_weights(tmp_path):
    cfg = PretrainConfig(**TINY, steps=6, ckpt_every=3, log_every=1)
    eps = moving_squares()
    pretrain(cfg, eps, tmp_path / "a.pt", progress=False)

    class Killed(Exception):
        pass

    def kill_at_5(row):
        if row["step"] == 5:
            raise Killed

    with pytest.raises(Killed):
        pretrain(cfg, eps, tmp_path / "b.pt", progress=False, on_step=kill_at_5)
    assert not (tmp_path / "b.pt").exists()
    pretrain(cfg, eps, tmp_path / "b.pt", progress=False)
    a, b = read_model(tmp_path / "a.pt", "encoder"), read_model(tmp_path / "b.pt", "encoder")
    assert a["weights_hash"] == b["weights_hash"]
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    rows_a = [json.loads(x) for x in (run_dir_for(tmp_path / "a.pt") / "log.jsonl").read_text().splitlines()]
    rows_b = [json.loads(x) for x in (run_dir_for(tmp_path / "b.pt") / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows_b] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in rows_a] == [r["loss"] for r in rows_b]
    again = pretrain(cfg, eps, tmp_path / "a.pt", progress=False)  # finished: no step taken, the logged loss reported
    assert again.steps == 6 and again.final_loss == rows_a[-1]["loss"]


def test_final_checkpoint_is_an_encoder_checkpoint(tmp_path):
    cfg = PretrainConfig(**TINY, steps=2)
    pretrain(cfg, moving_squares(), tmp_path / "enc.pt", progress=False, data=["somewhere"])
    obj = read_model(tmp_path / "enc.pt", "encoder")
    assert obj["config"]["patch_size"] == 8 and obj["config"]["image_size"] == 32 and obj["config"]["depth"] == 1
    assert obj["pretraining"]["steps_done"] == 2 and obj["pretraining"]["data"] == ["somewhere"]
    from world_model.encoder import VideoViT, EncoderConfig

    enc = VideoViT(EncoderConfig(**obj["config"]))
    enc.load_state_dict(obj["state_dict"])  # strict: config and weights agree


def test_resume_with_other_settings_is_refused(tmp_path):
    eps = moving_squares()
    pretrain(PretrainConfig(**TINY, steps=2), eps, tmp_path / "enc.pt", progress=False)
    with pytest.raises(PretrainError, match="lr"):
        pretrain(PretrainConfig(**{**TINY, "lr": 1e-2}, steps=2), eps, tmp_path / "enc.pt", progress=False)


def test_bad_settings_and_data_are_refused():
    with pytest.raises(PretrainError, match="frames"):
        PretrainConfig(frames=3).check()
    with pytest.raises(PretrainError, match="unknown encoder"):
        PretrainConfig(encoder="vit_nano").check()
    with pytest.raises(PretrainError, match="frames a clip needs"):
        ClipSampler([np.zeros((1, 32, 32, 3), np.uint8)], frames=2)


def test_collapse_monitor_distinguishes_collapse():
    g = torch.Generator().manual_seed(0)
    spread = torch.randn(4, 16, 32, generator=g)
    collapsed = torch.randn(1, 1, 32, generator=g).expand(4, 16, 32) + 1e-6 * spread
    s, c = collapse_stats(spread), collapse_stats(collapsed)
    assert s["target_std"] > 0.5 and c["target_std"] < 1e-3
    assert s["target_erank"] > 20
    assert effective_rank(torch.randn(64, 1, generator=g) * torch.randn(1, 32, generator=g)) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("args, message", [
    (["--data", "does/not/exist"], "is not a directory"),
    (["--data", ".", "--frames", "3"], "even number"),
    (["--data", ".", "--image-size", "40"], "multiple of 16"),
    (["--data", ".", "--config", "vit_huge"], "Invalid value for '--config'"),
])
def test_cli_pretrain_bad_input_exits_2(tmp_path, capsys, args, message):
    code = cli_exit_code(["pretrain-encoder", *args, "--out", str(tmp_path / "enc.pt"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err
    assert not (tmp_path / "enc.pt").exists()


def test_cli_pretrains_from_a_collected_dataset_and_load_encoder_reads_it(tmp_path):
    """`simjepa collect` output -> pretrain-encoder -> world_model.load_encoder reads the checkpoint."""
    from envs.collect import CollectConfig, collect
    from world_model.encoder_loading import load_encoder

    data = tmp_path / "reach"
    collect(CollectConfig(env_id="simjepa/Reach-v0", episodes=2, out=str(data), policy="mixed", render_size=32,
                          max_steps=5), progress=False)
    out = tmp_path / "enc.pt"
    code = cli_exit_code(["pretrain-encoder", "--data", str(data), "--out", str(out), "--steps", "2", "--batch-size", "2",
                 "--image-size", "32", "--ckpt-every", "1", "--quiet"])
    assert code == 0
    enc = load_encoder(out)
    assert enc.config.patch_size == 8 and enc.config.image_size == 32
    with torch.no_grad():
        assert enc(torch.zeros(1, 3, 2, 32, 32)).shape == (1, 16, enc.config.embed_dim)
    obj = read_model(out, "encoder")
    assert obj["pretraining"]["episodes"] == 2 and obj["pretraining"]["data"] == [str(data)]


def test_cli_defaults_are_the_pretrain_config_defaults():
    """One recipe: `simjepa pretrain-encoder` with no tuning flags trains what PretrainConfig() describes
    (4-frame clips, batch 64, 4000 steps, 400 warm-up; docs/encoder-v3.md measured it)."""
    from simjepa_cli import cli

    defaults = {p.name: p.default for p in cli.commands["pretrain-encoder"].params}
    cfg = PretrainConfig()
    assert (defaults["frames"], defaults["batch_size"], defaults["steps"], defaults["warmup"], defaults["lr"],
            defaults["masks"], defaults["image_size"], defaults["patch_size"], defaults["seed"]) == (
        cfg.frames, cfg.batch_size, cfg.steps, cfg.warmup_steps, cfg.lr, cfg.masks, cfg.image_size, cfg.patch_size,
        cfg.seed)
    assert cfg.frames >= 4  # two temporal tokens: the motion probe needs them (one-token clips carry no velocity)
