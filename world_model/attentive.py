"""Attentive pooling: a few learned queries cross-attend over a frame's tokens.

Why: mean-pooling a frame's tokens (or a coarse grid of cell means) dilutes a small object such as
the 5 cm cube, about 3 pixels of a 64 px frame, into its neighbours; a linear read-out of the pooled
features then locates it no better than one of a random encoder's. V-JEPA's own evaluation protocol
reads frozen features with an attentive probe instead: learned queries attend over every token, so the
read-out can pick the few tokens that matter wherever they are. The same module serves the attentive
probe (``benchmarks/attentive_probe.py``) and the proposal's ``head="attentive"``.

Input tokens are layer-normed without affine (raw cache features and the planner's already
layer-normed ones give the same result) and get a learned position embedding, since the frozen
encoder's output tokens carry position only implicitly.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class AttentivePool(nn.Module):
    """``[..., N, D]`` tokens -> ``[..., queries * D]``: ``queries`` learned queries, one cross-attention layer."""

    def __init__(self, dim: int, tokens: int, queries: int = 4, heads: int = 4) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"token dim {dim} is not divisible by {heads} heads")
        self.tokens, self.dim, self.queries = tokens, dim, queries
        # init at half the scale of layer-normed tokens: at ViT's usual 0.02 the attention starts uniform,
        # the values carry almost no position and a toy "where is the marked token" task did not train at all
        self.pos = nn.Parameter(torch.randn(tokens, dim) * 0.5)  # [N, D]
        self.query = nn.Parameter(torch.randn(queries, dim) * 0.5)  # [K, D]
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm = nn.LayerNorm(dim)

    @property
    def out_dim(self) -> int:
        return self.queries * self.dim

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        lead, (n, d) = tokens.shape[:-2], tokens.shape[-2:]
        if n != self.tokens or d != self.dim:
            raise ValueError(f"tokens of shape [{n}, {d}] where the pool expects [{self.tokens}, {self.dim}]")
        x = F.layer_norm(tokens.float(), (d,)).reshape(-1, n, d) + self.pos  # [B, N, D]
        q = self.query.expand(x.shape[0], -1, -1)  # [B, K, D]
        out, _ = self.attn(q, x, x, need_weights=False)  # [B, K, D]
        out = self.norm(out + q)
        return out.reshape(*lead, self.queries * d)
