"""V-JEPA mask-denoising pretraining of a small encoder on simulator video.

Why pretrain at all: the V-JEPA 2 encoders are far too slow for CPU planning, and a randomly
initialised small ViT encodes pixels, not the scene. The V-JEPA recipe makes a small encoder
predictive of *where things are* from video alone: a context encoder sees only the tokens left by
multi-block masks (:mod:`world_model.masks`), a narrow predictor fills in the masked tokens'
features at their (t, h, w) positions, and the targets are the layer-normed features of an EMA copy
of the encoder on the full clip (L1 loss). The EMA target (momentum 0.996 -> 1) is what prevents the
trivial constant solution; the collapse monitor (per-dimension std and effective rank of the targets)
shows whether it did.

The training state (weights, EMA, optimizer, RNG, step) is checkpointed to ``<out>.run/state.pt``
(:class:`world_model.training_loop.RunState`, as in predictor training), so a killed run resumes
to the same weights as an uninterrupted one: the learning-rate and momentum schedules are functions
of the step, and all randomness (clip and mask sampling) comes from one saved ``torch.Generator``. The final file is the *target* encoder (as officially used for
evaluation) in our encoder checkpoint format, loadable by ``world_model.load_encoder``.
"""
from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from simjepa_core.errors import SimjepaError
from simjepa_core.atomic import write_text
from simjepa_core.episodes import complete_episode_indices, load_episode, read_manifest
from world_model.checkpoints import save_model, weights_hash
from world_model.encoder import ENCODER_CONFIGS, VideoViT, build_encoder
from world_model.layers import Block, grid_positions
from world_model.masks import LONG_RANGE, SHORT_RANGE, VJEPA_MASKS, BlockMaskSpec, future_masks, grid_masks, sample_multiblock_masks
from world_model.preprocessing import normalize_frames
from world_model.training_loop import RunState, SkippedBatches, adamw, set_lr, write_row

STATE_FORMAT = "simjepa/pretrain-state"


class PretrainError(SimjepaError):
    """Bad pretraining input: no data, clips longer than episodes, a run dir from other settings."""


@dataclass
class PretrainConfig:
    """Every setting that changes the result; stored in the run state and the final checkpoint."""

    encoder: str = "vit_tiny"
    image_size: int = 64
    patch_size: int = 8
    encoder_overrides: dict[str, Any] = field(default_factory=dict)  # e.g. {"depth": 2} for tests
    frames: int = 4  # frames per clip; tubelet 2 -> frames/2 token time steps
    frame_stride: int = 1  # env steps between clip frames
    still_fraction: float = 0.25  # clips of one repeated frame: how planning encodes observations
    steps: int = 4000
    batch_size: int = 64
    lr: float = 5e-4
    start_lr: float = 1e-4
    final_lr: float = 1e-5
    warmup_steps: int = 400
    weight_decay: float = 0.04
    ema_start: float = 0.996
    ema_end: float = 1.0
    pred_dim: int = 96
    pred_depth: int = 4
    pred_heads: int = 4
    seed: int = 0
    ckpt_every: int = 100
    log_every: int = 10
    bf16: bool = True
    masks: str = "official"  # "official": V-JEPA's 16x16-tuned families; "grid": sized for the token grid (masks.grid_masks);
    # "future": the grid families on the clip's later half only (masks.future_masks; needs frames >= 4);
    # "short" / "long": one official family alone (8 blocks of 15% / 2 of 70%), to tell what each does
    pixel_weight: float = 0.0  # weight of an L1 term on tubelet pixels beside the latent target (0: V-JEPA's alone)
    pixel_tokens: str = "masked"  # whose pixels: "masked" (read from the predictor, MAE-style) or "context" (each
    # kept token's own, read from the context encoder's output); see _Trainer.train_step for why
    motion_weight: float = 0.0  # > 0: weight each masked token's latent L1 by 1 + this x its place's pixel motion in
    # the clip over the clip's mean (token_motion_weights); 0: every masked token counts the same, as in V-JEPA
    device: str = "cpu"  # where training runs ("cuda" on a GPU); not a result setting: a run resumes on any device

    def check(self) -> None:
        if self.encoder not in ENCODER_CONFIGS:
            raise PretrainError(f"unknown encoder config {self.encoder!r}; choose one of {', '.join(ENCODER_CONFIGS)}")
        problems = []
        if self.frames < 2 or self.frames % 2:
            problems.append(f"--frames {self.frames} must be an even number >= 2 (tubelet size 2)")
        if self.image_size <= 0 or self.image_size % 16:
            problems.append(f"--image-size {self.image_size} must be a positive multiple of 16")
        if self.patch_size <= 0 or self.image_size % self.patch_size:
            problems.append(f"patch size {self.patch_size} must divide --image-size {self.image_size}")
        for name in ("steps", "batch_size", "ckpt_every", "log_every", "frame_stride", "pred_depth", "pred_dim"):
            if getattr(self, name) < 1:
                problems.append(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if not (0 < self.lr < 1) or not (0 <= self.start_lr < 1) or not (0 <= self.final_lr < 1):
            problems.append(f"learning rates must lie in [0, 1) with --lr > 0, got {self.start_lr}/{self.lr}/{self.final_lr}")
        if not (0 <= self.ema_start <= self.ema_end <= 1):
            problems.append(f"EMA momentum must satisfy 0 <= start <= end <= 1, got {self.ema_start}..{self.ema_end}")
        if not (0 <= self.pixel_weight < math.inf):
            problems.append(f"--pixel-weight must be a finite number >= 0, got {self.pixel_weight}")
        if not (0 <= self.motion_weight < math.inf):
            problems.append(f"--motion-weight must be a finite number >= 0, got {self.motion_weight}")
        if self.pixel_tokens not in PIXEL_TOKEN_CHOICES:
            problems.append(f"--pixel-tokens {self.pixel_tokens!r} must be one of {', '.join(PIXEL_TOKEN_CHOICES)}")
        if not (0 <= self.still_fraction <= 1):
            problems.append(f"still_fraction must lie in [0, 1], got {self.still_fraction}")
        if self.masks not in MASK_CHOICES:
            problems.append(f"--masks {self.masks!r} must be one of {', '.join(MASK_CHOICES)}")
        elif self.masks == "future" and self.frames < 4:
            problems.append(f"--masks future predicts a clip's later half from its earlier one: it needs --frames 4 or "
                            f"more (two temporal tokens), got {self.frames}")
        if self.pred_dim % self.pred_heads:
            problems.append(f"predictor width {self.pred_dim} is not divisible by {self.pred_heads} heads")
        if problems:
            raise PretrainError("; ".join(problems))

    def result_settings(self) -> dict[str, Any]:
        """Settings that must match for a run directory to be resumed (not the checkpoint cadence)."""
        d = asdict(self)
        for k in ("ckpt_every", "log_every", "device"):
            d.pop(k)
        return d


MASK_CHOICES = ("official", "grid", "future", "short", "long")
PIXEL_TOKEN_CHOICES = ("masked", "context")


def mask_specs_for(config: PretrainConfig, grid: tuple[int, int, int]) -> tuple[BlockMaskSpec, ...]:
    """The mask families a run samples on its ``(t, h, w)`` token grid (see ``PretrainConfig.masks``)."""
    if config.masks == "future":
        return future_masks(grid_masks(grid[1:]))
    if config.masks in ("short", "long"):
        return (SHORT_RANGE,) if config.masks == "short" else (LONG_RANGE,)
    return grid_masks(grid[1:]) if config.masks == "grid" else VJEPA_MASKS


def build_pretrain_encoder(config: PretrainConfig) -> VideoViT:
    overrides = {"image_size": config.image_size, "patch_size": config.patch_size, **config.encoder_overrides}
    return build_encoder(config.encoder, seed=config.seed, **overrides)


# --- predictor --------------------------------------------------------------------------------------


class MaskPredictor(nn.Module):
    """Narrow transformer that predicts target features at masked positions from context tokens.

    Mirrors the official ``VisionTransformerPredictor`` with RoPE: project context features to the
    predictor width, append one learned (zero-initialised) mask token per masked position (a separate
    token per mask family), run the blocks with every token's (t, h, w) grid position, and project the
    masked tokens back to the encoder width. No sorting is needed: RoPE positions travel with the
    tokens and attention is permutation-equivariant.
    """

    def __init__(self, embed_dim: int, pred_dim: int = 96, depth: int = 4, num_heads: int = 4,
                 num_mask_tokens: int = 2, seed: int = 0, init_std: float = 0.02):
        super().__init__()
        self.predictor_embed = nn.Linear(embed_dim, pred_dim)
        self.mask_tokens = nn.ParameterList(nn.Parameter(torch.zeros(1, 1, pred_dim)) for _ in range(num_mask_tokens))
        self.predictor_blocks = nn.ModuleList(Block(pred_dim, num_heads) for _ in range(depth))
        self.predictor_norm = nn.LayerNorm(pred_dim, eps=1e-6)
        self.predictor_proj = nn.Linear(pred_dim, embed_dim)
        gen = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.trunc_normal_(m.weight, std=init_std, a=-2.0, b=2.0, generator=gen)
                    nn.init.zeros_(m.bias)
            for layer_id, blk in enumerate(self.predictor_blocks, start=1):
                blk.attn.proj.weight.div_(math.sqrt(2.0 * layer_id))
                blk.mlp.fc2.weight.div_(math.sqrt(2.0 * layer_id))

    def forward(self, context: torch.Tensor, keep: torch.Tensor, pred: torch.Tensor,
                positions: torch.Tensor, mask_index: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """``context [B, K, D]`` at token indices ``keep [B, K]`` -> predictions ``[B, M, D]`` at ``pred [B, M]``,
        and the normed predictor states ``[B, M, d]`` they are projected from (what a masked-pixel head reads).

        ``positions [N, 3]`` are the (t, h, w) of every token of the clip's grid.
        """
        b, m = pred.shape
        x = self.predictor_embed(context)  # [B, K, d]
        tokens = self.mask_tokens[mask_index % len(self.mask_tokens)].expand(b, m, -1)  # [B, M, d]
        x = torch.cat([x, tokens.to(x.dtype)], dim=1)  # [B, K+M, d]
        pos = positions[torch.cat([keep, pred], dim=1)]  # [B, K+M, 3]
        for blk in self.predictor_blocks:
            x = blk(x, pos)
        states = self.predictor_norm(x[:, keep.shape[1]:])  # [B, M, d]
        return self.predictor_proj(states), states  # [B, M, D], [B, M, d]


# --- data -------------------------------------------------------------------------------------------


def load_episode_frames(dirs: Sequence[str | os.PathLike], image_size: int) -> list[np.ndarray]:
    """All complete episodes' frames from collected datasets, resized once to ``image_size``.

    Returns one uint8 ``[T+1, S, S, 3]`` array per episode. Resizing here (antialiased, like the
    encoder's preprocessing) keeps the in-memory set small and the training step free of it.
    """
    out: list[np.ndarray] = []
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            raise PretrainError(f"--data {d} is not a directory; collect episodes first with `simjepa collect --out {d}`")
        read_manifest(str(d))
        for i in complete_episode_indices(str(d)):
            frames = load_episode(str(d), i).frames  # [T+1, H, W, 3] uint8
            if frames.shape[1:3] != (image_size, image_size):
                x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
                x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True)
                frames = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
            out.append(np.ascontiguousarray(frames))
    if not out:
        raise PretrainError(f"no complete episodes in {', '.join(map(str, dirs))}; run `simjepa collect` first")
    return out


class ClipSampler:
    """Random short clips from in-memory episodes, drawn from a caller's generator (resumable)."""

    def __init__(self, episodes: Sequence[np.ndarray], frames: int, stride: int = 1, still_fraction: float = 0.0):
        span = (frames - 1) * stride + 1
        self.episodes = [torch.from_numpy(e) for e in episodes if len(e) >= span]
        if not self.episodes:
            longest = max((len(e) for e in episodes), default=0)
            raise PretrainError(
                f"no episode has the {span} frames a clip needs (longest has {longest}); "
                f"collect longer episodes or lower --frames"
            )
        self.frames, self.stride, self.still_fraction = frames, stride, still_fraction
        self.span = span

    def sample(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """uint8 ``[B, F, H, W, 3]``."""
        ep = torch.randint(0, len(self.episodes), (batch_size,), generator=generator).tolist()
        u = torch.rand(batch_size, generator=generator).tolist()
        still = torch.rand(batch_size, generator=generator).lt(self.still_fraction).tolist()
        clips = []
        for e, ui, s in zip(ep, u, still):
            frames = self.episodes[e]
            start = int(ui * (len(frames) - self.span + 1))
            if s:
                idx = [start] * self.frames
            else:
                idx = list(range(start, start + self.span, self.stride))
            clips.append(frames[idx])
        return torch.stack(clips)


def tubelet_pixels(clips: torch.Tensor, patch: int, tubelet: int) -> torch.Tensor:
    """Normalised clips ``[B, 3, F, S, S]`` -> each token's pixels ``[B, N, 3*tubelet*patch*patch]``, tokens in the
    encoder's (t, h, w) order (the order of ``PatchEmbed3D``'s flatten)."""
    b, c, f, s, _ = clips.shape
    g, t = s // patch, f // tubelet
    x = clips.reshape(b, c, t, tubelet, g, patch, g, patch)
    return x.permute(0, 2, 4, 6, 1, 3, 5, 7).reshape(b, t * g * g, c * tubelet * patch * patch)


def token_motion_weights(clips: torch.Tensor, patch: int, time_tokens: int, strength: float) -> torch.Tensor:
    """Per-token loss weights ``[B, N]`` that favour the places where something moved during the clip.

    Why: the cube is a few pixels and moves in a minority of clips, so in a mean over tokens it counts for little
    beside the table and the arm. A place's motion is the largest frame-to-frame change of its pixels over the
    clip (mean over the patch and channels); every temporal token at that place gets ``1 + strength x motion /
    the clip's mean motion``. A still clip gets 1 everywhere.
    """
    change = (clips[:, :, 1:] - clips[:, :, :-1]).abs().amax(2).mean(1)  # [B, S, S]
    motion = F.avg_pool2d(change.unsqueeze(1), patch).flatten(1)  # [B, h*w]
    rel = motion / motion.mean(1, keepdim=True).clamp_min(1e-6)
    return (1.0 + strength * rel).repeat(1, time_tokens)  # [B, t*h*w], tokens in (t, h, w) order


def clips_to_input(clips: torch.Tensor, image_size: int) -> torch.Tensor:
    """uint8 ``[B, F, H, W, 3]`` -> normalised encoder input ``[B, 3, F, S, S]`` (official transform)."""
    b, f = clips.shape[:2]
    x = normalize_frames(clips.flatten(0, 1), image_size)  # [B*F, 3, S, S]
    return x.unflatten(0, (b, f)).transpose(1, 2).contiguous()


# --- schedules and monitors -------------------------------------------------------------------------


def lr_at(step: int, c: PretrainConfig) -> float:
    """Linear warm-up start_lr -> lr, then cosine lr -> final_lr (official WarmupCosineSchedule)."""
    if step < c.warmup_steps:
        return c.start_lr + (c.lr - c.start_lr) * step / max(1, c.warmup_steps)
    progress = (step - c.warmup_steps) / max(1, c.steps - c.warmup_steps)
    return c.final_lr + (c.lr - c.final_lr) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def momentum_at(step: int, c: PretrainConfig) -> float:
    """EMA momentum rising linearly from ema_start to ema_end over the run (I-JEPA/V-JEPA)."""
    return c.ema_start + (c.ema_end - c.ema_start) * step / max(1, c.steps)


@torch.no_grad()
def effective_rank(features: torch.Tensor) -> float:
    """exp(entropy of the normalised singular values) of centred ``[N, D]`` features (Roy & Vetterli).

    1 for a collapsed (rank-one) set, up to min(N, D) when every direction is used equally.
    """
    x = features.float()
    x = x - x.mean(0, keepdim=True)
    s = torch.linalg.svdvals(x)
    if float(s.sum()) <= 0:
        return 0.0
    p = s / s.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


@torch.no_grad()
def collapse_stats(targets: torch.Tensor) -> dict[str, float]:
    """Per-dimension std (over all tokens of the batch) and effective rank of ``[B, N, D]`` targets."""
    flat = targets.float().flatten(0, 1)  # [B*N, D]
    return {"target_std": float(flat.std(0).mean()), "target_erank": effective_rank(flat)}


# --- training ---------------------------------------------------------------------------------------


@dataclass
class PretrainResult:
    out: Path
    steps: int
    final_loss: float
    seconds: float
    log: Path


def run_dir_for(out: str | os.PathLike) -> Path:
    """Where a run's resumable state and JSONL log live: next to the final checkpoint."""
    out = Path(out)
    return out.with_name(out.name + ".run")


class _Trainer:
    """The models, optimizer and sampling generator of a pretraining run, and one step of it."""

    def __init__(self, config: PretrainConfig):
        self.c = config
        self.encoder = build_pretrain_encoder(config)
        self.target = copy.deepcopy(self.encoder).requires_grad_(False)
        self.predictor = MaskPredictor(
            self.encoder.embed_dim, config.pred_dim, config.pred_depth, config.pred_heads,
            num_mask_tokens=len(VJEPA_MASKS), seed=config.seed,
        )
        self.pixel_head = self._pixel_head()
        trained = [self.encoder, self.predictor] + ([self.pixel_head] if self.pixel_head is not None else [])
        self.optimizer = adamw(trained, config.lr, config.weight_decay)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.skipped = SkippedBatches(PretrainError, "the loss diverged; lower --lr and rerun with a new --out")
        self.step = 0
        grid = self.encoder.grid(config.frames, config.image_size, config.image_size)
        self.grid = grid
        self.mask_specs = mask_specs_for(config, grid)
        self.device = torch.device(config.device)
        for module in self.modules().values():
            module.to(self.device)
        self.positions = grid_positions(*grid, device=self.device)  # [N, 3]

    def _pixel_head(self) -> nn.Linear | None:
        """The linear read-out of a token's pixels (3 x tubelet x patch x patch) when the pixel term is on.

        Its own generator, so that every other layer starts as in a run without the term."""
        if not self.c.pixel_weight:
            return None
        width = self.c.pred_dim if self.c.pixel_tokens == "masked" else self.encoder.embed_dim
        head = nn.Linear(width, 3 * self.encoder.config.tubelet_size * self.c.patch_size ** 2)
        with torch.no_grad():
            nn.init.trunc_normal_(head.weight, std=0.02, a=-2.0, b=2.0, generator=torch.Generator().manual_seed(self.c.seed + 2))
            nn.init.zeros_(head.bias)
        return head

    def modules(self) -> dict[str, nn.Module]:
        """What the run state saves, under its keys."""
        saved = {"encoder": self.encoder, "target": self.target, "predictor": self.predictor}
        return saved if self.pixel_head is None else {**saved, "pixel_head": self.pixel_head}

    def train_step(self, sampler: ClipSampler) -> dict[str, float]:
        """One step; a non-finite loss skips it (no update of the encoder, predictor or EMA target).

        With ``pixel_weight`` > 0 a linear head also reconstructs tubelets' (normalised) pixels, and that L1 joins
        the latent L1. Why: the latent target is free to drop what does not help predict the rest of the clip, and
        the measured cost was the cube's weight in the features (its share of the goal energy fell from ~10 % to
        3-4 % while its linear probe rose; docs/encoder-v3.md). ``pixel_tokens="masked"`` reconstructs the masked
        tubelets from the predictor's states, as MAE does; ``"context"`` makes each kept token's own output
        reconstruct its own tubelet, so that an object the encoder sees stays in its token. With ``motion_weight``
        > 0 the latent L1 is a weighted mean over the masked tokens (:func:`token_motion_weights`).
        """
        c = self.c
        lr = lr_at(self.step, c)
        set_lr(self.optimizer, lr)
        raw = sampler.sample(c.batch_size, self.generator).to(self.device, non_blocking=True)
        clips = clips_to_input(raw, c.image_size)  # [B, 3, F, S, S], normalised where training runs
        masks = sample_multiblock_masks(self.grid, c.batch_size, self.generator, self.mask_specs)
        masks = [(keep.to(self.device), pred.to(self.device)) for keep, pred in masks]
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=c.bf16):
            with torch.no_grad():
                h = self.target(clips)  # [B, N, D]
                h = F.layer_norm(h.float(), (h.shape[-1],))
                pixels = tubelet_pixels(clips, c.patch_size, self.encoder.config.tubelet_size) if c.pixel_weight else None
                weights = (token_motion_weights(clips, c.patch_size, self.grid[0], c.motion_weight)
                           if c.motion_weight else None)  # [B, N]
            losses, pixel_losses = [], []
            for i, (keep, pred) in enumerate(masks):
                z = self.encoder(clips, keep=keep)  # [B, K, D]
                p, s = self.predictor(z, keep, pred, self.positions, mask_index=i)  # [B, M, D], [B, M, d]
                target = torch.gather(h, 1, pred.unsqueeze(-1).expand(-1, -1, h.shape[-1]))  # [B, M, D]
                if weights is None:
                    losses.append((p.float() - target).abs().mean())
                else:
                    w = torch.gather(weights, 1, pred)  # [B, M]
                    losses.append(((p.float() - target).abs().mean(-1) * w).sum() / w.sum())
                if pixels is not None:
                    idx, read = (pred, s) if c.pixel_tokens == "masked" else (keep, z)  # [B, M|K], [B, M|K, d|D]
                    px = torch.gather(pixels, 1, idx.unsqueeze(-1).expand(-1, -1, pixels.shape[-1]))  # [B, M|K, P]
                    pixel_losses.append((self.pixel_head(read).float() - px.float()).abs().mean())
            latent_loss = torch.stack(losses).mean()
            pixel_loss = torch.stack(pixel_losses).mean() if pixel_losses else None
            loss = latent_loss if pixel_loss is None else latent_loss + c.pixel_weight * pixel_loss
        m = momentum_at(self.step, c)
        self.step += 1
        if not torch.isfinite(loss).item():
            self.skipped.skip(self.step, "loss")
            return {"step": self.step, "lr": lr, "momentum": m, "skipped": self.skipped.count}
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        with torch.no_grad():
            tgt = list(self.target.parameters())
            torch._foreach_mul_(tgt, m)
            torch._foreach_add_(tgt, list(self.encoder.parameters()), alpha=1.0 - m)
        row = {"step": self.step, "loss": float(loss.detach()), "lr": lr, "momentum": m}
        if pixel_loss is not None:  # the latent part alone stays comparable with runs without the pixel term
            row.update(latent_loss=float(latent_loss.detach()), pixel_loss=float(pixel_loss.detach()))
        if self.step % c.log_every == 0 or self.step == c.steps:
            row.update(collapse_stats(h))
        return row


def save_pretrained_encoder(out: str | os.PathLike, encoder: VideoViT, config: PretrainConfig, **record: Any) -> None:
    """Write a pretrained (target) encoder as an encoder checkpoint; its ``pretraining`` record holds the run's
    settings and ``record`` (data, steps done, ...)."""
    save_model(out, "encoder", asdict(encoder.config), encoder, name=f"{config.encoder}-simjepa-pretrained",
               weights_hash=weights_hash(encoder.state_dict()), pretraining={**asdict(config), **record})


def pretrain(
    config: PretrainConfig,
    episodes: Sequence[np.ndarray],
    out: str | os.PathLike,
    progress: bool = True,
    on_step: Callable[[dict[str, float]], None] | None = None,
    data: Sequence[str] = (),
) -> PretrainResult:
    """Pretrain (or resume) and write the final encoder checkpoint to ``out``.

    ``episodes``: uint8 frames ``[T+1, S, S, 3]`` per episode (see :func:`load_episode_frames`).
    ``on_step`` sees every step's log row (after the step; checkpoints are written before it runs).
    ``data`` only records where the episodes came from in the checkpoint.
    """
    from tqdm import tqdm

    config.check()
    out = Path(out)
    run_dir = run_dir_for(out)
    run_dir.mkdir(parents=True, exist_ok=True)
    run = RunState(run_dir / "state.pt", run_dir / "log.jsonl", STATE_FORMAT, config.result_settings(),
                   every=config.ckpt_every, last=config.steps, error=PretrainError, what="pretraining state file",
                   where=str(run_dir))
    trainer = _Trainer(config)
    state = run.load()
    if state is not None:
        trainer.step, trainer.skipped.count = run.restore(state, trainer.modules(), trainer.optimizer,
                                                          {"generator": trainer.generator})
    sampler = ClipSampler(episodes, config.frames, config.frame_stride, config.still_fraction)
    timing = run_dir / "timing.json"
    prior = json.loads(timing.read_text()).get("seconds", 0.0) if timing.exists() else 0.0
    t0 = time.perf_counter()
    last = {"loss": float("nan")}
    bar = tqdm(total=config.steps, initial=trainer.step, disable=not progress, desc="pretrain", unit="step")
    with run.log(trainer.step) as log:
        while trainer.step < config.steps:
            row = trainer.train_step(sampler)
            last = row
            if "target_std" in row or "loss" not in row or trainer.step == config.steps:
                row["seconds"] = prior + time.perf_counter() - t0
                write_row(log, row)
                bar.set_postfix(loss=f"{row.get('loss', float('nan')):.4f}", std=f"{row.get('target_std', float('nan')):.3f}",
                                erank=f"{row.get('target_erank', float('nan')):.1f}")
                if row.get("target_std", 1.0) < 1e-3:
                    tqdm.write(f"warning: target features are collapsing (std {row['target_std']:.2e}) at step {row['step']}")
            bar.update(1)
            if run.due(trainer.step):
                run.save(trainer.step, trainer.skipped.count, trainer.modules(), trainer.optimizer,
                         {"generator": trainer.generator})
                write_text(timing, json.dumps({"seconds": prior + time.perf_counter() - t0}))
            if on_step is not None:
                on_step(row)
    bar.close()
    seconds = json.loads(timing.read_text())["seconds"] if timing.exists() else 0.0
    final_loss = last.get("loss", float("nan"))
    if not math.isfinite(final_loss):  # resumed a finished run: report the logged final loss
        logged = run.last_logged("loss")
        final_loss = float("nan") if logged is None else logged
    save_pretrained_encoder(out, trainer.target, config, data=[str(d) for d in data], episodes=len(episodes),
                            final_loss=final_loss, seconds=seconds, steps_done=trainer.step)
    return PretrainResult(out=out, steps=trainer.step, final_loss=final_loss, seconds=seconds, log=run.log_path)
