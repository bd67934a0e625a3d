"""Attentive pooling finds a small thing wherever it is, which a mean over the tokens cannot."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from world_model.attentive import AttentivePool

N, D = 16, 12  # a 4x4 token grid


def _batch(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise tokens, one marked (feature 0 high) at a random place; the target is its (row, col) in [-1, 1]."""
    x = torch.randn(n, N, D, generator=gen)
    k = torch.randint(N, (n,), generator=gen)
    x[torch.arange(n), k, 0] = 6.0
    return x, torch.stack([(k // 4) / 1.5 - 1, (k % 4) / 1.5 - 1], 1)


def _fit(pool: nn.Module, width: int, steps: int = 400) -> float:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    net = nn.Sequential(pool, nn.Linear(width, 64), nn.GELU(), nn.Linear(64, 2))
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    for _ in range(steps):
        x, y = _batch(32, gen)
        loss = F.l1_loss(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        x, y = _batch(2000, torch.Generator().manual_seed(1))
        return float(F.l1_loss(net(x), y))


class MeanPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:]).mean(-2)


def test_attentive_pooling_locates_a_marked_token_a_mean_cannot():
    guess = 2 / 3  # always answering 0 for targets spread evenly over +-1/3, +-1
    mean = _fit(MeanPool(), D)
    att = _fit(AttentivePool(D, N, queries=2), 2 * D)
    assert mean > 0.9 * guess and att < 0.5 * guess, (mean, att)


def test_attentive_pooling_keeps_leading_dims_and_refuses_a_wrong_grid():
    pool = AttentivePool(D, N, queries=3)
    assert pool(torch.randn(2, 5, N, D)).shape == (2, 5, 3 * D) and pool.out_dim == 3 * D
    with pytest.raises(ValueError, match="expects"):
        pool(torch.randn(2, N + 1, D))
