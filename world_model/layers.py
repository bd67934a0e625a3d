"""Transformer pieces shared by the encoder and the predictor: 3D RoPE attention, MLP, block.

Both V-JEPA 2 models use the same pre-norm block; they differ only in which positions each token
gets. So attention here takes explicit per-token positions ``[N, 3]`` = (time, height, width)
instead of deriving them from a grid: the encoder passes its patch grid (or the kept subset when
masking), the AC predictor passes (t, 0, 0) for its action/state tokens. A rotation by angle 0 is
the identity, which is exactly the official behaviour of rotating only the time chunk of those
tokens. Parameter names (``qkv``, ``proj``, ``fc1``, ``fc2``, ``norm1``, ``norm2``) follow the
official checkpoints so their state dicts load without renaming.

Speed: the official code recomputes sin/cos and concatenates six rotated chunks per attention
call (most of a small predictor's time on CPU). Here the rotation of a whole head is one
precomputed ``cos``/signed ``sin`` table pair per position set (:func:`rope_tables`, cached), applied
to queries and keys together with three element-wise kernels (:func:`apply_rope`). The per-call
official formulation stays available (``reference=True``) as the baseline the benchmark compares
against. :class:`KVCache` holds the keys/values of an autoregressive rollout so a new time step
runs only its own tokens (:meth:`Block.forward_cached`).
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

ROPE_CACHE_SIZE = 64


def rope_rotate(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Rotary embedding of ``x [..., N, D]`` at positions ``pos [N]`` (or broadcastable ``[..., N]``).

    Matches the official ``rotate_queries_or_keys`` including its frequency layout: the D/2
    frequencies are *tiled* (``repeat``), not interleaved, across the D channels. That is a known
    quirk (vjepa2 PR #15), kept because pretrained weights depend on it. This is the per-call
    reference formulation; the fast path uses the same numbers via :func:`rope_tables`.
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


# --- precomputed rotary tables ---------------------------------------------------------------------
class RoPETables:
    """Whole-head rotation of one position set: ``rope(x) = x * cos + swap_pairs(x) * sin``.

    ``cos``/``sin`` are ``[N, hd]`` (or ``[B, 1, N, hd]`` for per-sample positions). ``sin`` carries
    the sign of the pair rotation (``-sin`` on even channels), and channels past the three rotated
    chunks hold cos 1 / sin 0, so no concatenation is needed at apply time. Casts to the compute
    dtype (bf16 under autocast) are made once and remembered.
    """

    __slots__ = ("cos", "sin", "_cast")

    def __init__(self, cos: torch.Tensor, sin: torch.Tensor):
        self.cos, self.sin = cos, sin
        self._cast: dict[torch.dtype, RoPETables] = {cos.dtype: self}

    def to(self, dtype: torch.dtype) -> "RoPETables":
        hit = self._cast.get(dtype)
        if hit is None:
            with _plain_tensors():
                hit = self._cast[dtype] = RoPETables(self.cos.to(dtype), self.sin.to(dtype))
        return hit


def _plain_tensors():
    """Tables are shared by inference and training calls: build them as ordinary tensors even
    inside ``inference_mode`` (inference tensors cannot be saved for backward)."""
    return torch.inference_mode(False)


_ROPE_CACHE: "OrderedDict[tuple, RoPETables]" = OrderedDict()


def _build_tables(pos: torch.Tensor, head_dim: int, rope_dim: int) -> RoPETables:
    """fp32 tables with the official frequencies (same ops as :func:`rope_rotate` in fp32)."""
    pos = pos.float()
    omega = torch.arange(rope_dim // 2, dtype=torch.float32, device=pos.device) / (rope_dim / 2.0)
    omega = 1.0 / 10000**omega  # [r/2]
    cos_parts, sin_parts = [], []
    for i in range(3):
        freq = pos[..., i].unsqueeze(-1) * omega  # [..., N, r/2]
        c, s = freq.cos().repeat(*([1] * (freq.ndim - 1)), 2), freq.sin().repeat(*([1] * (freq.ndim - 1)), 2)  # tiled
        cos_parts.append(c)
        sin_parts.append(s)
    rest = head_dim - 3 * rope_dim
    if rest:
        shape = (*pos.shape[:-1], rest)
        cos_parts.append(torch.ones(shape, device=pos.device))
        sin_parts.append(torch.zeros(shape, device=pos.device))
    cos = torch.cat(cos_parts, -1)  # [..., N, hd]
    sin = torch.cat(sin_parts, -1)
    sign = torch.ones(head_dim, device=pos.device)
    sign[0::2] = -1.0  # rotated pair (x0, x1) -> (-x1, x0)
    sin = sin * sign
    if pos.ndim == 3:  # [B, N, 3]: one position set per sample, same for every head
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return RoPETables(cos.contiguous(), sin.contiguous())


def rope_tables(pos: torch.Tensor, head_dim: int, rope_dim: int, dtype: torch.dtype = torch.float32) -> RoPETables:
    """Cached tables for ``pos [N, 3]`` or ``[B, N, 3]`` (keyed by content, shape, widths, dtype, device).

    Positions are tiny (a few hundred rows), so keying by their bytes costs microseconds and lets
    every block of every call with the same layout share one table.
    """
    if pos.device.type == "meta":  # shape-only tracing (size checks): nothing to cache
        return _build_tables(pos, head_dim, rope_dim).to(dtype)
    key = (tuple(pos.shape), pos.detach().float().cpu().numpy().tobytes(), head_dim, rope_dim, str(pos.device))
    tables = _ROPE_CACHE.get(key)
    if tables is None:
        with _plain_tensors(), torch.no_grad():
            tables = _ROPE_CACHE[key] = _build_tables(pos.detach().clone(), head_dim, rope_dim)
        while len(_ROPE_CACHE) > ROPE_CACHE_SIZE:
            _ROPE_CACHE.popitem(last=False)
    else:
        _ROPE_CACHE.move_to_end(key)
    return tables.to(dtype)


def apply_rope(x: torch.Tensor, tables: RoPETables) -> torch.Tensor:
    """Rotate ``x [..., N, hd]`` (any leading dims, e.g. q and k stacked ``[2, B, H, N, hd]``)."""
    swapped = x.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)  # (x0, x1) -> (x1, x0); contiguous copy
    t = tables.to(x.dtype)
    return torch.addcmul(x * t.cos, swapped, t.sin)


# --- key/value cache -------------------------------------------------------------------------------
class KVCache:
    """Keys/values of the tokens already run, per layer: ``[B, heads, max_len, hd]`` buffers.

    Block-causal attention means earlier tokens' keys/values never change when later tokens are
    appended, so an autoregressive rollout runs each new step's tokens once. Writes of batch 1 (a
    prefix shared by every candidate) broadcast into all ``B`` rows; reads by a batch-1 step use
    row 0 only.
    """

    def __init__(self, depth: int, batch: int, heads: int, max_len: int, head_dim: int,
                 dtype: torch.dtype, device: torch.device | str):
        shape = (batch, heads, max_len, head_dim)
        self.k = [torch.empty(shape, dtype=dtype, device=device) for _ in range(depth)]
        self.v = [torch.empty(shape, dtype=dtype, device=device) for _ in range(depth)]
        self.batch, self.max_len, self.length = batch, max_len, 0
        self.steps = 0  # time steps appended (used by the predictor for positions)

    def matches(self, depth: int, batch: int, heads: int, max_len: int, head_dim: int, dtype: torch.dtype,
                device: torch.device | str) -> bool:
        k = self.k[0] if self.k else None
        return (k is not None and len(self.k) == depth and tuple(k.shape) == (batch, heads, max_len, head_dim)
                and k.dtype == dtype and k.device == torch.device(device))

    def reset(self) -> "KVCache":
        self.length, self.steps = 0, 0
        return self


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
        """Reference (official, per-call) 3D RoPE of ``x [B, heads, N, hd]`` at ``pos [N, 3]`` or ``[B, N, 3]``."""
        if pos.ndim == 3:
            pos = pos.unsqueeze(1)  # [B, 1, N, 3]: same positions for every head
        r = self.rope_dim
        chunks = [rope_rotate(x[..., i * r : (i + 1) * r], pos[..., i]) for i in range(3)]
        return torch.cat(chunks + [x[..., 3 * r :]], dim=-1)

    def tables(self, pos: torch.Tensor | RoPETables, dtype: torch.dtype) -> RoPETables:
        return pos if isinstance(pos, RoPETables) else rope_tables(pos, self.head_dim, self.rope_dim, dtype)

    def qkv_rotated(
        self, x: torch.Tensor, pos: torch.Tensor | RoPETables, reference: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Project ``x [B, N, D]`` to rotated q, k and v, each ``[B, heads, N, hd]``."""
        qkv = self.qkv(x).unflatten(-1, (3, self.num_heads, self.head_dim)).permute(2, 0, 3, 1, 4)  # [3, B, H, N, hd]
        if reference or self.head_dim % 2:
            if isinstance(pos, RoPETables):
                raise ValueError("the reference RoPE path needs positions, not precomputed tables")
            return self.rotate(qkv[0], pos), self.rotate(qkv[1], pos), qkv[2]
        qk = apply_rope(qkv[:2], self.tables(pos, qkv.dtype))  # [2, B, H, N, hd], q and k in one pass
        return qk[0], qk[1], qkv[2]

    def forward(
        self, x: torch.Tensor, pos: torch.Tensor | RoPETables, attn_mask: torch.Tensor | None = None,
        reference: bool = False,
    ) -> torch.Tensor:
        """``x [B, N, D]``, ``pos [N, 3]``/``[B, N, 3]`` or tables, ``attn_mask [N, N]`` bool (True = may attend)."""
        q, k, v = self.qkv_rotated(x, pos, reference)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # [B, heads, N, hd]
        return self.proj(y.transpose(1, 2).flatten(2))  # [B, N, D]

    def forward_cached(self, x: torch.Tensor, rope: RoPETables, k_buf: torch.Tensor, v_buf: torch.Tensor, start: int) -> torch.Tensor:
        """Append ``x [B, n, D]`` (B = the cache's batch, or 1 for a shared prefix) at ``start`` and
        attend to every cached token plus all of its own (block-causal: no mask within a step)."""
        b, n, _ = x.shape
        qkv = self.qkv(x).unflatten(-1, (3, self.num_heads, self.head_dim)).permute(2, 0, 3, 1, 4)  # [3, B, H, n, hd]
        qk = apply_rope(qkv[:2], rope.to(qkv.dtype))
        end = start + n
        k_buf[:, :, start:end] = qk[1]  # broadcasts a batch-1 prefix to every row
        v_buf[:, :, start:end] = qkv[2]
        rows = slice(0, b)
        y = F.scaled_dot_product_attention(qk[0], k_buf[rows, :, :end], v_buf[rows, :, :end])  # [B, H, n, hd]
        return self.proj(y.transpose(1, 2).flatten(2))  # [B, n, D]


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

    def forward(
        self, x: torch.Tensor, pos: torch.Tensor | RoPETables, attn_mask: torch.Tensor | None = None,
        reference: bool = False,
    ) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), pos, attn_mask, reference)
        return x + self.mlp(self.norm2(x))

    def forward_cached(self, x: torch.Tensor, rope: RoPETables, k_buf: torch.Tensor, v_buf: torch.Tensor, start: int) -> torch.Tensor:
        """One block over a new time step's tokens ``x [B, n, D]``, keys/values appended to the buffers."""
        x = x + self.attn.forward_cached(self.norm1(x), rope, k_buf, v_buf, start)
        return x + self.mlp(self.norm2(x))
