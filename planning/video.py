"""Episode videos: observation | goal side by side with step, energy and distance written on top.

Text is rasterised with matplotlib's FreeType binding (already a dependency), without a figure, so
annotating a frame costs well under a millisecond.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from simjepa_core.atomic import atomic_path

MIN_PANEL = 256  # small renders (64 px) are upscaled so the video is watchable
HEADER = 22


@functools.lru_cache(maxsize=1)
def _font():
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    return FT2Font(font_manager.findfont("DejaVu Sans Mono"))


def text_bitmap(text: str, size: float = 11.0) -> np.ndarray:
    """Grey-level coverage ``uint8 [h, w]`` of ``text``."""
    font = _font()
    font.set_size(size, 72)
    font.set_text(text, 0.0)
    font.draw_glyphs_to_bitmap()
    return np.asarray(font.get_image()).copy()


def draw_text(img: np.ndarray, text: str, x: int, y: int, color: tuple[int, int, int] = (255, 255, 255)) -> None:
    """Alpha-blend ``text`` into ``img [H, W, 3] uint8`` in place, top-left at ``(x, y)``, clipped."""
    bmp = text_bitmap(text).astype(np.float32) / 255.0  # [h, w]
    h = min(bmp.shape[0], img.shape[0] - y)
    w = min(bmp.shape[1], img.shape[1] - x)
    if h <= 0 or w <= 0:
        return
    alpha = bmp[:h, :w, None]
    region = img[y : y + h, x : x + w].astype(np.float32)
    img[y : y + h, x : x + w] = (region * (1 - alpha) + np.asarray(color, np.float32) * alpha).round().astype(np.uint8)


def _upscale(frame: np.ndarray, size: int) -> np.ndarray:
    k = max(1, -(-size // min(frame.shape[:2])))  # the short side reaches size (two views stack into a tall panel)
    return np.repeat(np.repeat(frame, k, axis=0), k, axis=1) if k > 1 else frame


def compose_frame(obs: np.ndarray, goal: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    """``[H', 2W', 3]``: header with ``lines`` joined, then observation | goal (upscaled to >= 256 px)."""
    o, g = _upscale(obs, MIN_PANEL), _upscale(goal, MIN_PANEL)
    if g.shape != o.shape:  # goals from another render size: nearest-neighbour to the observation's size
        yi = np.linspace(0, g.shape[0] - 1, o.shape[0]).round().astype(int)
        xi = np.linspace(0, g.shape[1] - 1, o.shape[1]).round().astype(int)
        g = g[yi][:, xi]
    header = np.full((HEADER, o.shape[1] * 2, 3), 24, np.uint8)
    draw_text(header, "   ".join(lines), 4, 4)
    body = np.concatenate([o, g], axis=1)
    draw_text(body, "observation", 4, 4, (255, 255, 0))
    draw_text(body, "goal", o.shape[1] + 4, 4, (255, 255, 0))
    out = np.concatenate([header, body], axis=0)
    pad_h, pad_w = (-out.shape[0]) % 16, (-out.shape[1]) % 16  # codec-friendly size, no ffmpeg resize warning
    return np.pad(out, ((0, pad_h), (0, pad_w), (0, 0)))


def write_video(path: str | Path, frames: Sequence[np.ndarray], fps: int = 10) -> None:
    """Write ``frames`` as mp4 atomically (temp file in the same folder, then rename)."""
    import imageio.v2 as imageio

    with atomic_path(path) as tmp:
        with imageio.get_writer(tmp, fps=fps, codec="libx264", quality=7, macro_block_size=1, format="FFMPEG") as writer:
            for frame in frames:
                writer.append_data(frame)
