"""The training-loop pieces shared by predictor training and encoder pretraining."""
from __future__ import annotations

import warnings

import pytest
import torch

from simjepa_core.errors import SimjepaError
from tests.test_pretrain import TINY, moving_squares
from world_model.pretrain import ClipSampler, PretrainConfig, PretrainError, _Trainer
from world_model.training_loop import RunState, SkippedBatches, adamw_param_groups


class _Err(SimjepaError):
    pass


def test_weight_decay_only_on_matrices():
    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 2))
    decay, plain = adamw_param_groups([m], 0.05)
    assert decay["weight_decay"] == 0.05 and plain["weight_decay"] == 0.0
    assert [p.shape for p in decay["params"]] == [(4, 3), (2, 4)]
    assert len(plain["params"]) == 4  # two biases, the norm's gain and bias


def test_skipped_batches_stop_a_run_once_they_are_not_rare():
    s = SkippedBatches(_Err, "fix it")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for step in range(1, 21):
            s.skip(step, "loss")  # the first 20 are tolerated
        with pytest.raises(_Err, match="21 of 21 batches were non-finite: fix it"):
            s.skip(21, "loss")
        s2 = SkippedBatches(_Err, "fix it", count=21)
        s2.skip(100, "loss")  # 22 of 100: still rare


def test_run_state_refuses_other_settings_and_other_files(tmp_path):
    a = RunState(tmp_path / "s.pt", tmp_path / "log.jsonl", "simjepa/x", {"lr": 1.0}, every=2, last=5, error=_Err)
    assert a.load() is None
    m = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(m.parameters())
    a.save(2, 0, {"m": m}, opt, {"rng": torch.Generator()})
    assert [a.due(s) for s in range(1, 6)] == [False, True, False, True, True]
    b = RunState(tmp_path / "s.pt", tmp_path / "log.jsonl", "simjepa/x", {"lr": 2.0}, every=2, last=5, error=_Err)
    with pytest.raises(_Err, match=r"other settings \(lr 1.0 -> 2.0\)"):
        b.load()
    c = RunState(tmp_path / "s.pt", tmp_path / "log.jsonl", "simjepa/y", {"lr": 1.0}, every=2, last=5, error=_Err,
                 what="y state")
    with pytest.raises(_Err, match="not a simjepa y state"):
        c.load()


def test_pretraining_skips_a_non_finite_loss_without_updating():
    tr = _Trainer(PretrainConfig(**TINY, steps=50))
    sampler = ClipSampler(moving_squares(), 2)
    with torch.no_grad():
        tr.predictor.predictor_proj.bias.fill_(float("nan"))
    before = [p.detach().clone() for p in tr.encoder.parameters()]
    with pytest.warns(UserWarning, match="batch skipped"):
        row = tr.train_step(sampler)
    assert row["skipped"] == 1 and "loss" not in row and tr.step == 1
    assert all(torch.equal(a, b) for a, b in zip(before, tr.encoder.parameters()))
    with warnings.catch_warnings(), pytest.raises(PretrainError, match="lower --lr"):
        warnings.simplefilter("ignore")
        for _ in range(30):
            tr.train_step(sampler)
