"""Multi-block spatio-temporal masks for V-JEPA mask-denoising pretraining.

The facts follow the official sampler (``src/masks/multiseq_multiblock3d.py`` and the V-JEPA 2
pretraining configs): every batch uses two mask families, *short-range* (8 blocks, each covering
15% of the spatial grid) and *long-range* (2 blocks, 70% each), aspect ratios in [0.75, 1.5], all
blocks spanning the whole clip in time. Each family yields a (context, target) pair of index sets:
the context encoder sees only the kept tokens, the predictor must fill in the masked ones. Masking
most of the grid (~70% short-range, ~90% long-range on the official 16x16 grid) is what forces
the encoder to model the scene rather than copy neighbouring patches.

As officially, the block *size* is drawn once per batch and the block *locations* per sample, and
rows are cut to the batch minimum so index tensors stack. Unlike the official code we cut a random
subset (not the first indices) so the truncation does not bias against the bottom-right of the
grid, and all draws come from one ``torch.Generator`` so a seed reproduces the masks exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class BlockMaskSpec:
    """One mask family: ``num_blocks`` blocks whose union is the target (masked) set."""

    num_blocks: int
    spatial_scale: tuple[float, float]  # fraction of the h x w grid covered by one block
    aspect_ratio: tuple[float, float] = (0.75, 1.5)
    temporal_scale: tuple[float, float] = (1.0, 1.0)  # fraction of the time steps a block spans
    end_anchored: bool = False  # blocks end at the clip's last time step (future prediction) instead of anywhere


SHORT_RANGE = BlockMaskSpec(num_blocks=8, spatial_scale=(0.15, 0.15))
LONG_RANGE = BlockMaskSpec(num_blocks=2, spatial_scale=(0.7, 0.7))
VJEPA_MASKS: tuple[BlockMaskSpec, ...] = (SHORT_RANGE, LONG_RANGE)


def _uniform(lo: float, hi: float, generator: torch.Generator) -> float:
    return lo + torch.rand(1, generator=generator).item() * (hi - lo)


def _randint(high: int, generator: torch.Generator) -> int:
    """Uniform integer in ``[0, high)``."""
    return int(torch.randint(0, high, (1,), generator=generator).item())


def sample_block_size(
    grid: tuple[int, int, int], spec: BlockMaskSpec, generator: torch.Generator
) -> tuple[int, int, int]:
    """Block extent (t, h, w) in tokens, clipped to the grid; the same for a whole batch."""
    duration, height, width = grid
    t = max(1, int(duration * _uniform(*spec.temporal_scale, generator)))
    area = int(height * width * _uniform(*spec.spatial_scale, generator))
    ratio = _uniform(*spec.aspect_ratio, generator)
    h = min(height, max(1, int(round(math.sqrt(area * ratio)))))
    w = min(width, max(1, int(round(math.sqrt(area / ratio)))))
    return t, h, w


def _sample_masked_grid(
    grid: tuple[int, int, int], size: tuple[int, int, int], num_blocks: int, generator: torch.Generator,
    end_anchored: bool = False,
) -> torch.Tensor:
    """Boolean ``[t*h*w]`` (raster order), True where any of ``num_blocks`` blocks covers a token."""
    duration, height, width = grid
    t, h, w = size
    masked = torch.zeros(grid, dtype=torch.bool)
    for _ in range(num_blocks):
        start = duration - t if end_anchored else _randint(duration - t + 1, generator)
        top = _randint(height - h + 1, generator)
        left = _randint(width - w + 1, generator)
        masked[start : start + t, top : top + h, left : left + w] = True
    return masked.flatten()


def _random_subset_sorted(idx: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    if len(idx) == k:
        return idx
    pick = torch.randperm(len(idx), generator=generator)[:k]
    return idx[pick].sort().values


def sample_block_masks(
    grid: tuple[int, int, int], spec: BlockMaskSpec, batch_size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Context and target token indices for one mask family.

    ``grid`` is the token grid (time, height, width) of a clip. Returns ``keep [B, K]`` and
    ``pred [B, M]`` (int64, sorted per row, disjoint), raster indices into ``t*h*w`` tokens. A
    sample whose blocks cover everything is redrawn (the context must not be empty).
    """
    n = grid[0] * grid[1] * grid[2]
    if n < 2:
        raise ValueError(f"a token grid of {grid} is too small to mask: need at least 2 tokens")
    size = sample_block_size(grid, spec, generator)
    keeps, preds = [], []
    for _ in range(batch_size):
        for _attempt in range(1000):
            masked = _sample_masked_grid(grid, size, spec.num_blocks, generator, spec.end_anchored)
            if not masked.all():
                break
        else:  # the drawn block size covers the grid whatever the placement: leave one token
            masked[_randint(n, generator)] = False
        keeps.append(torch.nonzero(~masked).flatten())
        preds.append(torch.nonzero(masked).flatten())
    k = min(len(i) for i in keeps)
    m = min(len(i) for i in preds)
    keep = torch.stack([_random_subset_sorted(i, k, generator) for i in keeps])  # [B, K]
    pred = torch.stack([_random_subset_sorted(i, m, generator) for i in preds])  # [B, M]
    return keep, pred


def sample_multiblock_masks(
    grid: tuple[int, int, int],
    batch_size: int,
    generator: torch.Generator,
    specs: tuple[BlockMaskSpec, ...] = VJEPA_MASKS,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One ``(keep [B, K_i], pred [B, M_i])`` pair per mask family, in the order of ``specs``."""
    return [sample_block_masks(grid, spec, batch_size, generator) for spec in specs]


# --- masks sized for the token grid in use ----------------------------------------------------------

OFFICIAL_GRID_AREA = 16 * 16  # the official masks are tuned for 256 px frames with 16 px patches


def grid_masks(grid_hw: tuple[int, int]) -> tuple[BlockMaskSpec, ...]:
    """Short- and long-range mask families adapted to an ``h x w`` token grid.

    Why: the official families (8 blocks of 15%, 2 of 70%) are tuned on a 16x16 grid. On an 8x8 grid
    a 15% block is 3x3 tokens: eight of them, placed independently, mask about the same fraction as
    on 16x16 (see :func:`masked_fraction`) but as scattered small holes, each no bigger than the cube's
    neighbourhood, which the context encoder can fill by interpolating neighbours. Here the number of
    short-range blocks shrinks with ``sqrt(area ratio)`` and each block grows so that the expected
    union coverage stays the official family's on 16x16 (1 - 0.85^8): on 8x8, 4 blocks of ~4x4
    tokens. The long-range family (2 blocks of 70%) already masks the same fraction on 8x8 as on
    16x16 and is kept. A grid of 16x16 or more gets the official families unchanged.
    """
    h, w = grid_hw
    if h < 1 or w < 1:
        raise ValueError(f"token grid {grid_hw} must be at least 1x1")
    ratio = OFFICIAL_GRID_AREA / float(h * w)
    if ratio <= 1.0:
        return VJEPA_MASKS
    k = math.sqrt(ratio)
    n_short = max(2, int(round(SHORT_RANGE.num_blocks / k)))
    # keep the expected union coverage of the official short-range family: 1 - (1 - s)^n = 1 - 0.85^8
    official_cover = 1.0 - (1.0 - SHORT_RANGE.spatial_scale[0]) ** SHORT_RANGE.num_blocks
    s_short = min(0.5, max(4.0 / (h * w), 1.0 - (1.0 - official_cover) ** (1.0 / n_short)))
    return (BlockMaskSpec(num_blocks=n_short, spatial_scale=(s_short, s_short)), LONG_RANGE)


def future_masks(specs: tuple[BlockMaskSpec, ...]) -> tuple[BlockMaskSpec, ...]:
    """The same spatial families, masking only the clip's later half: predict the future from the past.

    Why: official blocks are tubes through the whole clip, so whatever sits under a block (often the
    whole cube, a few tokens) is hidden at every time step and cannot be predicted from the context;
    an EMA-target objective then gains by *not* encoding it, which is one way pretraining can end up
    no better than random weights on where the cube is. With the earlier half fully visible, what is
    hidden later is mostly predictable (the cube rarely moves; the arm continues its motion), so
    encoding the cube costs nothing and encoding the arm's velocity pays. Needs at least two temporal
    tokens (``--frames 4`` with tubelet 2).
    """
    return tuple(BlockMaskSpec(s.num_blocks, s.spatial_scale, s.aspect_ratio, temporal_scale=(0.5, 0.5),
                               end_anchored=True) for s in specs)


def masked_fraction(grid: tuple[int, int, int], specs: tuple[BlockMaskSpec, ...], samples: int = 64,
                    seed: int = 0) -> list[float]:
    """Mean fraction of tokens each family masks on ``grid`` (after row truncation): a sanity figure."""
    gen = torch.Generator().manual_seed(seed)
    n = grid[0] * grid[1] * grid[2]
    return [float(pred.shape[1]) / n for _, pred in
            (sample_block_masks(grid, spec, samples, gen) for spec in specs)]
