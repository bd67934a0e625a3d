"""Frames (uint8 RGB) to encoder clips, following the official V-JEPA 2-AC evaluation transform.

Official facts (``app/vjepa_droid/transforms.py`` with scale/ratio (1, 1) and no flip, as in the
energy-landscape notebook; ``notebooks/utils/world_model_wrapper.py``): frames are resized with
bilinear interpolation (``align_corners=False``) to the crop size, normalised with the ImageNet
mean/std, and each single frame becomes a 2-frame clip by repeating it, so one observation fills
exactly one tubelet. We add antialiasing by default because simulator renders are often downscaled
(e.g. 256 -> 64 px for small encoders) where plain bilinear aliases; the official transform has
none. When the frame already has the target size both are the identity.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from simjepa_core.errors import SimjepaError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class FramesError(SimjepaError):
    """Frames that are not uint8 RGB images."""


def _size_hw(size: int | tuple[int, int]) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if h <= 0 or w <= 0 or h % 16 or w % 16:
        raise FramesError(f"encoder image size {h}x{w} must be positive multiples of 16 (the patch size)")
    return h, w


def frames_to_tensor(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Check and convert uint8 frames ``[B, H, W, 3]`` (or one ``[H, W, 3]``) to a uint8 tensor."""
    t = torch.as_tensor(np.ascontiguousarray(frames) if isinstance(frames, np.ndarray) else frames)
    if t.ndim == 3:
        t = t.unsqueeze(0)
    if t.dtype != torch.uint8 or t.ndim != 4 or t.shape[-1] != 3 or 0 in t.shape:
        raise FramesError(
            f"frames must be uint8 RGB [B, H, W, 3] or [H, W, 3], got {t.dtype} {tuple(t.shape)}; "
            f"convert with (frames * 255).clip(0, 255).astype(np.uint8) if they are floats in [0, 1]"
        )
    return t


def normalize_frames(
    frames: np.ndarray | torch.Tensor, size: int | tuple[int, int], antialias: bool = True
) -> torch.Tensor:
    """uint8 ``[B, H, W, 3]`` -> resized, ImageNet-normalised float32 ``[B, 3, h, w]``."""
    h, w = _size_hw(size)
    x = frames_to_tensor(frames).permute(0, 3, 1, 2).float().div_(255.0)  # [B, 3, H, W]
    if tuple(x.shape[-2:]) != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=antialias)
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def frames_to_clips(
    frames: np.ndarray | torch.Tensor, size: int | tuple[int, int], antialias: bool = True, tubelet: int = 2
) -> torch.Tensor:
    """uint8 frames ``[B, H, W, 3]`` -> one clip per frame ``[B, 3, tubelet, h, w]`` (frame repeated)."""
    x = normalize_frames(frames, size, antialias)  # [B, 3, h, w]
    return x.unsqueeze(2).expand(-1, -1, tubelet, -1, -1).contiguous()  # [B, 3, 2, h, w]
