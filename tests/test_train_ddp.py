"""Data-parallel training: 2 CPU processes (gloo) end with identical weights, equal to 1 process."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from tests.test_train import FAKE_ENCODER, synthetic_episodes, write_cache
from world_model.checkpoints import load_file
from world_model.predictor import ACPredictor, PredictorConfig


def _train(cache, out, nproc: int) -> subprocess.CompletedProcess:
    args = ["--features", str(cache), "--out", str(out), "--config", "tiny", "--steps", "3", "--batch-size", "4",
            "--val-fraction", "0.34", "--val-rollout", "2", "--workers", "0", "--quiet"]
    # --standalone: the launcher's own store binds port 0 and stays open; the workers join it
    # (TORCHELASTIC_USE_AGENT_STORE), so no port is picked, released and raced for.
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
           "-m", "simjepa_cli", "train", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.timeout(150)
def test_two_processes_train_identically(tmp_path):
    cache = write_cache(tmp_path / "feats", synthetic_episodes(n_eps=3, steps=6), FAKE_ENCODER, (2, 2))
    r2 = _train(cache, tmp_path / "ddp", 2)
    assert r2.returncode == 0, r2.stderr[-2000:]
    r1 = _train(cache, tmp_path / "single", 1)
    assert r1.returncode == 0, r1.stderr[-2000:]
    two, one = load_file(tmp_path / "ddp" / "final.pt"), load_file(tmp_path / "single" / "final.pt")
    hashes = two["info"]["rank_weight_hashes"]
    assert len(hashes) == 2 and hashes[0] == hashes[1]  # every rank holds the same weights
    # Same global batch split in two shards: the same run up to bf16/summation rounding. Adam moves a
    # weight by at most ~lr per step whatever its gradient, so near-zero gradients may differ by that
    # much; on average the two runs must agree far better than either moved from the initial weights.
    torch.manual_seed(0)
    init = ACPredictor(PredictorConfig.from_dict(one["config"])).state_dict()
    moved = sum((v - init[k]).abs().sum() for k, v in one["state_dict"].items())
    apart = sum((v - two["state_dict"][k]).abs().sum() for k, v in one["state_dict"].items())
    assert apart < 0.1 * moved
    assert max((v - two["state_dict"][k]).abs().max() for k, v in one["state_dict"].items()) < 3 * 3 * 4.25e-4
