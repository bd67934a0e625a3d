"""Transformer pieces shared by the encoder and the predictor: 3D RoPE attention, MLP, block.

Both V-JEPA 2 models use the same pre-norm block; they differ only in which positions each token
gets. So attention here takes explicit per-token positions ``[N, 3]`` = (time, height, width)
instead of deriving them from a grid: the encoder passes its patch grid (or the kept subset when
masking), the AC predictor passes (t, 0, 0) for its action/state tokens. A rotation by angle 0 is
the identity, which is exactly the official behaviour of rotating only the time chunk of those
tokens. Parameter names (``qkv``, ``proj``, ``fc1``, ``fc2``, ``norm1``, ``norm2``) follow the
official checkpoints so their state dicts load without renaming.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def rope_rotate(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Rotary embedding of ``x [..., N, D]`` at positions ``pos [N]`` (or broadcastable ``[..., N]``).

    Matches the official ``rotate_queries_or_keys`` including its frequency layout: the D/2
    frequencies are *tiled* (``repeat``), not interleaved, across the D channels. That is a known
    quirk (vjepa2 PR #15), kept because pretrained weights depend on it.
    """
    d = x.shape[-1]
    omega = torch.arange(d // 2, dtype=x.dtype, device=x.device) / (d / 2.0)
    omega = 1.0 / 10000**omega  # [D/2]
    freq = pos.to(x.dtype).unsqueeze(-1) * omega  # [..., N, D/2]
    sin = torch.cat([freq.sin(), freq.sin()], dim=-1)  # [..., N, D]
    cos = torch.cat([freq.cos(), freq.cos()], dim=-1)
    pairs = x.unflatten(-1, (-1, 2))
    rotated = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
    return x * cos + rotated * sin


def grid_positions(t: int, h: int, w: int, device: torch.device | None = None) -> torch.Tensor:
    """(time, height, width) of every token of a ``t x h x w`` grid in raster order: ``[t*h*w, 3]``."""
    tt, hh, ww = torch.meshgrid(
        torch.arange(t, device=device), torch.arange(h, device=device), torch.arange(w, device=device),
        indexing="ij",
    )
    return torch.stack([tt, hh, ww], dim=-1).reshape(-1, 3).float()


class RoPEAttention(nn.Module):
    """Multi-head self-attention with 3D rotary positions on queries and keys.

    The head dimension is split into three equal even chunks (time, height, width) of
    ``2 * ((head_dim // 3) // 2)`` channels each; any leftover channels are not rotated.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.rope_dim = 2 * ((self.head_dim // 3) // 2)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def rotate(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """Apply 3D RoPE to ``x [B, heads, N, hd]`` at ``pos [N, 3]`` or ``[B, N, 3]``."""
        if pos.ndim == 3:
            pos = pos.unsqueeze(1)  # [B, 1, N, 3]: same positions for every head
        r = self.rope_dim
        chunks = [rope_rotate(x[..., i * r : (i + 1) * r], pos[..., i]) for i in range(3)]
        return torch.cat(chunks + [x[..., 3 * r :]], dim=-1)

    def qkv_rotated(self, x: torch.Tensor, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Project ``x [B, N, D]`` to rotated q, k and v, each ``[B, heads, N, hd]``."""
        q, k, v = self.qkv(x).unflatten(-1, (3, self.num_heads, self.head_dim)).permute(2, 0, 3, 1, 4)
        return self.rotate(q, pos), self.rotate(k, pos), v

    def forward(
        self, x: torch.Tensor, pos: torch.Tensor, attn_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``x [B, N, D]``, ``pos [N, 3]`` or ``[B, N, 3]``, ``attn_mask [N, N]`` bool (True = may attend)."""
        q, k, v = self.qkv_rotated(x, pos)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # [B, heads, N, hd]
        return self.proj(y.transpose(1, 2).flatten(2))  # [B, N, D]


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True, eps: float = 1e-6):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = RoPEAttention(dim, num_heads, qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = MLP(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, pos: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), pos, attn_mask)
        return x + self.mlp(self.norm2(x))
