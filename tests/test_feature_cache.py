"""Feature cache: build from a tiny dataset, reopen, refuse other encoders, resume, shard across ranks."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import simjepa_cli
from simjepa_core.episodes import Episode, write_episode, write_manifest
from world_model.encoder import build_encoder
from world_model.encoder_loading import encoder_identity
from world_model.feature_cache import FeatureCache, FeatureCacheError, build_feature_cache, feats_path
from world_model.frozen_encoder import FrozenEncoder

STEPS = (3, 4, 2, 5)  # actions per episode; frames = steps + 1


def write_dataset(root: Path, steps=STEPS, size: int = 40, state_dim: int = 10) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for i, t in enumerate(steps):
        write_episode(str(root), i, Episode(
            frames=rng.integers(0, 256, (t + 1, size, size, 3), dtype=np.uint8),
            actions=rng.uniform(-1, 1, (t, 7)).astype(np.float32),
            states=rng.standard_normal((t + 1, state_dim)).astype(np.float32),
            success=np.arange(t + 1) == t, distance=np.linspace(0.3, 0.01, t + 1), seed=100 + i))
    write_manifest(str(root), {"version": 1, "env_id": "simjepa/Reach-v0", "render_size": size,
                               "episodes": len(steps), "action_dim": 7, "state_dim": state_dim, "policy": "random",
                               "seed_start": 100, "max_episode_steps": 10})
    return root


def tiny_encoder(seed: int = 0):
    enc = build_encoder("vit_tiny", depth=1, image_size=32, seed=seed)
    enc.source = f"tiny-{seed}"
    return enc


@pytest.fixture
def data(tmp_path) -> Path:
    return write_dataset(tmp_path / "data")


def test_build_reopen_shapes_and_values(data, tmp_path):
    enc = tiny_encoder()
    cache = build_feature_cache(data, enc, tmp_path / "cache", precision="fp32", batch_size=3, progress=False)
    cache = FeatureCache.open(tmp_path / "cache")
    assert cache.complete and cache.episodes == [0, 1, 2, 3] and len(cache) == 4
    assert cache.grid == (2, 2) and cache.tokens_per_frame == 4 and cache.dim == 192 and cache.image_size == (32, 32)
    m = cache.manifest
    assert m["encoder"] == encoder_identity(enc)
    assert m["source"]["env_id"] == "simjepa/Reach-v0" and m["source"]["path"] == str(data.resolve())
    assert [e["steps"] for e in m["episodes"]] == list(STEPS)
    from simjepa_core.episodes import load_episode

    for i, t in enumerate(STEPS):
        feats, actions, states = cache.episode(i)
        assert isinstance(feats, np.memmap) and feats.dtype == np.float16 and feats.shape == (t + 1, 4, 192)
        assert actions.shape == (t, 7) and actions.dtype == np.float32 and states.shape == (t + 1, 10)
        src = load_episode(str(data), i)
        np.testing.assert_array_equal(actions, src.actions)
        np.testing.assert_array_equal(cache.proprio(i), src.states[:, :7])
        np.testing.assert_array_equal(cache.outcome(i)[0], src.success)
        expected = FrozenEncoder(enc, precision="fp32").encode(src.frames).numpy()
        np.testing.assert_allclose(feats.astype(np.float32), expected, atol=2e-2, rtol=1e-2)  # fp16 storage
    with pytest.raises(FeatureCacheError, match="episode 9 is not in the feature cache"):
        cache.episode(9)


def test_refuses_another_encoder(data, tmp_path):
    out = tmp_path / "cache"
    build_feature_cache(data, tiny_encoder(0), out, progress=False)
    other = tiny_encoder(1)
    with pytest.raises(FeatureCacheError, match="built by encoder 'tiny-0', not 'tiny-1'.*weights hash"):
        build_feature_cache(data, other, out, progress=False)
    cache = FeatureCache.open(out)
    ident = encoder_identity(tiny_encoder(0))
    cache.check_encoder("same weights, other name", ident["config"], ident["weights_hash"])
    with pytest.raises(FeatureCacheError, match="config differs in depth"):
        cache.check_encoder("deeper", {**ident["config"], "depth": 2}, ident["weights_hash"])
    with pytest.raises(FeatureCacheError, match="no feature cache"):
        FeatureCache.open(tmp_path / "nowhere")


def test_resume_after_kill_skips_finished_episodes(data, tmp_path, monkeypatch):
    out = tmp_path / "cache"
    calls = []
    real = FrozenEncoder.encode

    def dying(self, frames):
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed while encoding the third episode
        calls.append(len(frames))
        return real(self, frames)

    monkeypatch.setattr(FrozenEncoder, "encode", dying)
    with pytest.raises(KeyboardInterrupt):
        build_feature_cache(data, tiny_encoder(), out, progress=False)
    partial = FeatureCache.open(out)
    assert not partial.complete
    assert not any(p.name.endswith(".tmp") for p in out.iterdir())  # nothing half-written
    done_mtime = feats_path(out, 0).stat().st_mtime_ns

    calls.clear()
    monkeypatch.setattr(FrozenEncoder, "encode", lambda self, frames: (calls.append(len(frames)), real(self, frames))[1])
    cache = build_feature_cache(data, tiny_encoder(), out, progress=False)
    assert cache.complete and cache.episodes == [0, 1, 2, 3]
    assert calls == [STEPS[2] + 1, STEPS[3] + 1]  # only the two unfinished episodes were encoded
    assert feats_path(out, 0).stat().st_mtime_ns == done_mtime


def test_ranks_split_episodes_without_gaps_or_duplicates(data, tmp_path, monkeypatch):
    out = tmp_path / "cache"
    first = build_feature_cache(data, tiny_encoder(), out, rank=1, world_size=2, progress=False)
    assert first.episodes == [1, 3] and not first.complete
    monkeypatch.setenv("RANK", "0")  # as a launcher without torch.distributed would set it
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    cache = build_feature_cache(data, tiny_encoder(), out, progress=False)
    assert cache.complete and cache.episodes == [0, 1, 2, 3]
    assert [e["index"] for e in json.loads((out / "manifest.json").read_text())["episodes"]] == [0, 1, 2, 3]


def _gloo_worker(rank: int, data: str, out: str, port: int) -> None:
    # As torchrun's workers do: join the store the parent already listens on (TORCHELASTIC_USE_AGENT_STORE)
    # through the library's own env:// set-up, instead of rank 0 binding a port picked earlier.
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                      TORCHELASTIC_USE_AGENT_STORE="True")
    torch.set_num_threads(1)
    build_feature_cache(data, tiny_encoder(), out, progress=False)


def test_two_processes_with_torch_distributed(data, tmp_path):
    import torch.distributed as dist

    store = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)  # port 0: bound here, held open
    out = tmp_path / "cache"
    torch.multiprocessing.spawn(_gloo_worker, args=(str(data), str(out), store.port), nprocs=2, join=True)
    del store
    cache = FeatureCache.open(out)
    assert cache.complete and cache.episodes == [0, 1, 2, 3]
    single = build_feature_cache(data, tiny_encoder(), tmp_path / "single", progress=False)
    for i in cache.episodes:
        np.testing.assert_array_equal(cache.episode(i)[0], single.episode(i)[0])


def test_cli_encode_and_errors(data, tmp_path, capsys):
    out = tmp_path / "cli"
    simjepa_cli.main(["encode", "--data", str(data), "--encoder", "vit_tiny", "--image-size", "32", "--out", str(out),
                      "--batch-size", "8", "--threads", "1", "--quiet"])
    assert "4 episodes cached (complete): grid 2x2, dim 192, encoder vit_tiny" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        simjepa_cli.main(["encode", "--data", str(data), "--encoder", "vit_tiny", "--image-size", "48",
                          "--out", str(out), "--quiet"])
    assert exit_.value.code == 2
    assert "error: feature cache" in capsys.readouterr().err  # built at 32 px, not 48
    with pytest.raises(SystemExit):
        simjepa_cli.main(["encode", "--data", str(tmp_path / "none"), "--encoder", "vit_tiny", "--out", str(out)])
    assert "error:" in capsys.readouterr().err


def test_token_pool_is_cached_recorded_by_training_and_planned_with(tmp_path, capsys):
    """--token-pool 2: the cache holds 2x2-averaged patch tokens, training records the pool, and the world
    model encodes frames the same way, so the planner compares the features the predictor learnt."""
    from simjepa_core.episodes import load_episode
    from world_model.model_file import load_world_model
    from world_model.encoder_loading import load_encoder

    data = write_dataset(tmp_path / "data", steps=(8, 8, 8), size=64)
    cache_dir, model_dir = tmp_path / "pooled", tmp_path / "model"
    encode = ["encode", "--data", str(data), "--encoder", "vit_tiny", "--image-size", "64", "--out", str(cache_dir),
              "--threads", "1", "--quiet"]
    simjepa_cli.main(encode + ["--token-pool", "2"])
    assert "grid 2x2" in capsys.readouterr().out  # 64 px / patch 16 = 4x4 patches -> 2x2 tokens
    cache = FeatureCache.open(cache_dir)
    assert cache.token_pool == 2 and cache.image_size == (64, 64) and cache.tokens_per_frame == 4
    frames = load_episode(str(data), 0).frames
    patches = FrozenEncoder(load_encoder("vit_tiny", image_size=64)).encode(frames)  # [T+1, 16, D], 4x4 raster
    pooled = patches.reshape(-1, 2, 2, 2, 2, 192).mean((2, 4)).reshape(-1, 4, 192)  # rows, cols split in 2x2 blocks
    np.testing.assert_allclose(cache.episode(0)[0].astype(np.float32), pooled.numpy(), atol=2e-2, rtol=1e-2)

    # resuming the pooled cache unpooled; a pool that does not divide the 4x4 patch grid
    for out, pool, message in ((cache_dir, "1", "token pool 2"), (tmp_path / "other", "3", "positive divisor")):
        with pytest.raises(SystemExit) as exit_:
            simjepa_cli.main(encode[:-5] + ["--out", str(out), "--quiet", "--token-pool", pool])
        assert exit_.value.code == 2 and message in capsys.readouterr().err

    simjepa_cli.main(["train", "--features", str(cache_dir), "--out", str(model_dir), "--config", "tiny", "--steps", "2",
                      "--batch-size", "2", "--val-fraction", "0.34", "--workers", "0", "--quiet"])
    wm = load_world_model(model_dir)
    assert wm.token_pool == 2 and wm.grid == (2, 2) and wm.encoder.grid == (2, 2)
    np.testing.assert_allclose(wm.encode(frames).numpy(), pooled.numpy(), atol=1e-4)
