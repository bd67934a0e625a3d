"""Frozen encoder inference: uint8 frames in, float32 patch features out, as fast as the machine allows.

The encoder is never trained in V-JEPA 2-AC, so everything here runs in ``inference_mode`` with
the weights kept fp32 and the matmuls in bf16 autocast (several times faster on CPUs with AMX, and what
the official code runs on GPU); outputs are returned as float32 so callers never see bf16.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F

from simjepa_core.errors import SimjepaError
from world_model.encoder import VideoViT
from world_model.preprocessing import _size_hw, frames_to_clips, frames_to_tensor

PRECISIONS = ("bf16", "fp32")


class FrozenEncoder:
    """Wraps a :class:`VideoViT` for batched, gradient-free feature extraction.

    ``encode(frames [B, H, W, 3] uint8) -> [B, h*w, D] float32``: each frame is resized to
    ``image_size``, normalised and encoded as a 2-frame clip (one tubelet), so ``h = size/patch``.

    ``token_pool = k > 1`` averages each ``k x k`` block of patch tokens, so ``h = size/(patch*k)``.
    Why: small objects need pixels (the 5 cm cube is 4 px wide at 64 px, half a patch), while the
    predictor's cost grows with the tokens per frame; a 128 px frame pooled 2x2 keeps the 64 tokens
    of a 64 px frame, each summarising finer patches. The official models use ``token_pool = 1``.
    """

    def __init__(
        self,
        encoder: VideoViT,
        image_size: int | tuple[int, int] | None = None,
        *,
        batch_size: int = 32,
        precision: str = "bf16",
        compile: bool = False,
        device: str | torch.device | None = None,
        antialias: bool = True,
        token_pool: int = 1,
    ):
        if precision not in PRECISIONS:
            raise SimjepaError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
        if batch_size < 1:
            raise SimjepaError(f"batch size must be at least 1, got {batch_size}")
        self.device = torch.device(device) if device is not None else next(encoder.parameters()).device
        self.encoder = encoder.to(self.device).eval().requires_grad_(False)
        self.image_size = _size_hw(image_size if image_size is not None else encoder.config.image_size)
        p = encoder.config.patch_size
        self.patch_grid = (self.image_size[0] // p, self.image_size[1] // p)
        if token_pool < 1 or self.patch_grid[0] % token_pool or self.patch_grid[1] % token_pool:
            raise SimjepaError(
                f"token pool {token_pool} must be a positive divisor of the {self.patch_grid[0]}x{self.patch_grid[1]} "
                f"patch grid ({self.image_size[0]}x{self.image_size[1]} px, patch {p})"
            )
        self.token_pool = int(token_pool)
        self.grid = (self.patch_grid[0] // token_pool, self.patch_grid[1] // token_pool)
        self.tokens_per_frame = self.grid[0] * self.grid[1]
        self.dim = encoder.config.embed_dim
        self.batch_size = batch_size
        self.precision = precision
        self.antialias = antialias
        self._forward = torch.compile(self.encoder, dynamic=False) if compile else self.encoder

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def _pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[B, t*h*w, D]`` patch tokens -> ``[B, t * h/k * w/k, D]``, averaged in fp32."""
        if self.token_pool == 1:
            return tokens
        (h, w), k = self.patch_grid, self.token_pool
        b, n, d = tokens.shape
        x = tokens.float().reshape(b * (n // (h * w)), h, w, d).permute(0, 3, 1, 2)  # [B*t, D, h, w]
        return F.avg_pool2d(x, k).flatten(2).transpose(1, 2).reshape(b, -1, d)  # [B, t*h/k*w/k, D]

    def encode_clips(self, clips: torch.Tensor) -> torch.Tensor:
        """Preprocessed clips ``[B, 3, T, H, W]`` -> ``[B, N, D]`` float32, in batches."""
        outs = []
        with torch.inference_mode(), self._autocast():
            for i in range(0, clips.shape[0], self.batch_size):
                x = clips[i : i + self.batch_size].to(self.device, non_blocking=True)
                outs.append(self._pool(self._forward(x).float()))
        return torch.cat(outs).cpu() if outs else torch.empty(0, self.tokens_per_frame, self.dim)

    def encode(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 frames ``[B, H, W, 3]`` (or one ``[H, W, 3]``) -> ``[B, h*w, D]`` float32."""
        frames = frames_to_tensor(frames)
        tubelet = self.encoder.config.tubelet_size
        outs = []
        with torch.inference_mode():
            for i in range(0, frames.shape[0], self.batch_size):
                # preprocessing stays fp32; only the transformer runs under autocast
                clips = frames_to_clips(frames[i : i + self.batch_size], self.image_size, self.antialias, tubelet)
                with self._autocast():
                    y = self._forward(clips.to(self.device, non_blocking=True))  # [b, h*w, D]
                outs.append(self._pool(y.float()).cpu())  # [b, N, D]
        return torch.cat(outs)

    __call__ = encode
