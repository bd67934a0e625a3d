"""SIGKILL mid-run, then the same command again: the result equals an uninterrupted run.

For each long-running command (collect, encode, train, pretrain-encoder) three processes run the
same tiny job: a reference that is never interrupted (started alongside, to save wall time), and
a victim that SIGKILLs itself right after its k-th write of an output file (episodes, a checkpoint;
``tests/robustness/kill_after.py``: deterministic, no race with the clock) and is then restarted
with the same command line. collect and encode must leave byte-identical files;
train and pretrain-encoder must end with the same weights (bf16 tolerance; in practice they are
bit-identical because every random draw is keyed by the step).
"""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
import torch

from tests.robustness.helpers import REPO, console, subprocess_env, tree_hashes

TIMEOUT = 120  # s, per process: only reached when something hangs


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """12 Reach episodes of 30 steps at 32 px, shared by the encode and pretrain cases."""
    from envs.collect import CollectConfig, collect

    out = tmp_path_factory.mktemp("kill") / "data"
    collect(CollectConfig(env_id="simjepa/Reach-v0", episodes=12, out=str(out), policy="mixed", render_size=32,
                          max_steps=30), progress=False)
    return out


def start(args: list[str], kill_after: tuple[str, int] | None = None) -> subprocess.Popen:
    """``simjepa ARGS``; with ``kill_after=(pattern, k)`` the process kills itself after its k-th write of a
    file named like ``pattern``."""
    cmd = console("simjepa") if kill_after is None else [sys.executable, "-m", "tests.robustness.kill_after",
                                                          kill_after[0], str(kill_after[1])]
    return subprocess.Popen([*cmd, *args], cwd=REPO, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen) -> None:
    _, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err.decode(errors="replace")


def killed(proc: subprocess.Popen, what: str) -> None:
    """The victim must have died by its own SIGKILL (it never finishes first: it dies at the write)."""
    _, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == -signal.SIGKILL, (f"the run was not killed after {what} (code {proc.returncode}): "
                                               f"{err.decode(errors='replace')[-500:]}")


def visible(root: Path) -> dict[str, str]:
    """Hashes of the files a user sees (temp files of the killed write and lock files excluded), by name."""
    return {str(Path(k).relative_to(root)): v for k, v in tree_hashes(root).items()
            if not any(part.startswith(".") for part in Path(k).relative_to(root).parts)}


def run_twice(args_for: Callable[[Path], list[str]], ref: Path, victim: Path, kill_after: tuple[str, int], what: str) -> None:
    """Reference run and killed-then-restarted run of the same command, side by side."""
    reference = start(args_for(ref))
    killed(start(args_for(victim), kill_after), what)
    restarted = start(args_for(victim))
    finish(reference)
    finish(restarted)


def test_collect_killed_and_resumed_gives_identical_files(tmp_path):
    def args(out: Path) -> list[str]:
        return ["collect", "--env", "simjepa/Reach-v0", "--episodes", "6", "--out", str(out), "--render-size", "32",
                "--max-steps", "30", "--quiet"]

    victim = tmp_path / "victim"
    run_twice(args, tmp_path / "ref", victim, ("episode_*.npz", 3), "3 episodes were written")
    ref = visible(tmp_path / "ref")
    assert len(ref) == 7 and visible(victim) == ref  # 6 episodes + manifest.json, byte for byte


def test_encode_killed_and_resumed_gives_identical_files(tmp_path, data):
    from world_model.encoder import build_encoder
    from world_model.encoder_loading import save_encoder

    enc = tmp_path / "enc.pt"
    save_encoder(enc, build_encoder("vit_tiny", depth=1, image_size=64))  # 4x4 tokens

    def args(out: Path) -> list[str]:
        return ["encode", "--data", str(data), "--encoder", str(enc), "--out", str(out), "--batch-size", "8", "--threads", "1",
                "--quiet"]

    victim = tmp_path / "victim"
    run_twice(args, tmp_path / "ref", victim, ("episode_*.npz", 2), "2 episodes were encoded")
    ref = visible(tmp_path / "ref")
    assert len(ref) == 25 and visible(victim) == ref  # 12 x (.feats.npy + .npz) + manifest.json, byte for byte


def _state_dicts_match(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        if a[k].is_floating_point():
            torch.testing.assert_close(a[k], b[k], rtol=1e-2, atol=1e-3, msg=f"{k} differs beyond bf16 tolerance")
        else:
            assert torch.equal(a[k], b[k]), k


def test_train_killed_and_resumed_gives_the_same_weights(tmp_path, data):
    from world_model.checkpoints import load_file
    from world_model.encoder import build_encoder
    from world_model.encoder_loading import load_encoder, save_encoder
    from world_model.feature_cache import build_feature_cache

    enc = tmp_path / "enc.pt"
    save_encoder(enc, build_encoder("vit_tiny", depth=1, image_size=32))
    cache = tmp_path / "feats"
    build_feature_cache(data, load_encoder(enc), cache, progress=False)

    def args(out: Path) -> list[str]:
        return ["train", "--features", str(cache), "--out", str(out), "--config", "tiny", "--steps", "10", "--batch-size", "2",
                "--ckpt-every", "5", "--workers", "0", "--val-fraction", "0.2", "--quiet"]

    victim = tmp_path / "victim"
    run_twice(args, tmp_path / "ref", victim, ("checkpoint.pt", 1), "the first checkpoint")
    a, b = load_file(tmp_path / "ref" / "final.pt"), load_file(victim / "final.pt")
    _state_dicts_match(a["state_dict"], b["state_dict"])
    assert (tmp_path / "ref" / "val.json").read_text() == (victim / "val.json").read_text()


def test_pretrain_killed_and_resumed_gives_the_same_weights(tmp_path, data):
    from world_model.checkpoints import load_file

    def args(out: Path) -> list[str]:
        return ["pretrain-encoder", "--data", str(data), "--out", str(out), "--steps", "10", "--batch-size", "2",
                "--image-size", "32", "--patch-size", "16", "--depth", "1", "--ckpt-every", "5", "--warmup", "2",
                "--threads", "1", "--quiet"]

    victim = tmp_path / "victim.pt"
    run_twice(args, tmp_path / "ref.pt", victim, ("state.pt", 1), "the first checkpoint")
    a, b = load_file(tmp_path / "ref.pt"), load_file(victim)
    _state_dicts_match(a["state_dict"], b["state_dict"])
