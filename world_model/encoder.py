"""The V-JEPA 2 video ViT: Conv3d tubelet embedding, 3D-RoPE blocks, final LayerNorm.

Architecture facts follow the official ``src/models/vision_transformer.py`` with ``use_rope=True``
(what every released V-JEPA 2 encoder uses): no absolute position embedding, patch 16, tubelet 2,
qkv bias, LayerNorm eps 1e-6, GELU MLP. Token order is raster order over (time, height, width) and
each token's RoPE position is its integer (t, h, w) grid index, with the *actual* input grid (the
official ``handle_nonsquare_inputs=True``), so non-square and any-size inputs work without
interpolation. Parameter names equal the official ones (``patch_embed.proj``, ``blocks.i.attn.qkv``,
``norm``), so official state dicts load after stripping wrapper prefixes.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Callable, Sequence

import torch
from torch import nn

from simjepa_core.errors import SimjepaError
from world_model.layers import Block, grid_positions


class EncoderInputError(SimjepaError):
    """A clip or keep-index tensor the encoder cannot take."""


@dataclass(frozen=True)
class EncoderConfig:
    """Everything needed to rebuild an encoder; JSON-serialisable (stored in checkpoints and caches).

    ``image_size`` is not a property of the weights (RoPE works at any size): it is the input size
    the preprocessing resizes frames to, kept with the model so a checkpoint says how it was used.
    """

    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    patch_size: int = 16
    tubelet_size: int = 2
    in_chans: int = 3
    qkv_bias: bool = True
    norm_eps: float = 1e-6
    image_size: int = 256

    @property
    def mlp_hidden(self) -> int:
        return int(self.embed_dim * self.mlp_ratio)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EncoderConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise SimjepaError(
                f"encoder config has unknown fields {unknown}; it was written by another simjepa version "
                f"(known fields: {sorted(known)})"
            )
        return cls(**d)


# Widths of the official family. Heads per width come from the official factories: for ViT-g the
# released checkpoints use ``vit_giant_xformers`` (22 heads of width 64), not ``vit_giant`` (16).
# The official ``vit_gigantic*`` factories misspell ``mpl_ratio``, so the official model actually
# gets the default MLP ratio 4.0; we reproduce that (an official ViT-G checkpoint would have
# fc1 width 4 * 1664), and the loader reads the true width from ``fc1`` anyway.
ENCODER_CONFIGS: dict[str, EncoderConfig] = {
    "vit_tiny": EncoderConfig(embed_dim=192, depth=12, num_heads=3),
    "vit_small": EncoderConfig(embed_dim=384, depth=12, num_heads=6),
    "vit_base": EncoderConfig(embed_dim=768, depth=12, num_heads=12),
    "vit_large": EncoderConfig(embed_dim=1024, depth=24, num_heads=16),
    "vit_huge": EncoderConfig(embed_dim=1280, depth=32, num_heads=16),
    "vit_giant": EncoderConfig(embed_dim=1408, depth=40, num_heads=22, mlp_ratio=48 / 11),
    "vit_gigantic": EncoderConfig(embed_dim=1664, depth=48, num_heads=26, mlp_ratio=4.0),
}
OFFICIAL_HEADS = {c.embed_dim: c.num_heads for c in ENCODER_CONFIGS.values()}


class PatchEmbed3D(nn.Module):
    """Tubelet embedding; a module of its own so the weight key is ``patch_embed.proj.weight``."""

    def __init__(self, patch_size: int, tubelet_size: int, in_chans: int, embed_dim: int):
        super().__init__()
        k = (tubelet_size, patch_size, patch_size)
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=k, stride=k)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        return self.proj(clip).flatten(2).transpose(1, 2)  # [B, T'*H'*W', D]


class VideoViT(nn.Module):
    """V-JEPA 2 encoder. ``forward(clip [B,3,T,H,W]) -> [B, T/2 * H/16 * W/16, D]``."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        c = config
        self.patch_embed = PatchEmbed3D(c.patch_size, c.tubelet_size, c.in_chans, c.embed_dim)
        self.blocks = nn.ModuleList(
            Block(c.embed_dim, c.num_heads, c.mlp_ratio, qkv_bias=c.qkv_bias, eps=c.norm_eps) for _ in range(c.depth)
        )
        self.norm = nn.LayerNorm(c.embed_dim, eps=c.norm_eps)

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    def grid(self, frames: int, height: int, width: int) -> tuple[int, int, int]:
        """Token grid (t, h, w) of a ``frames x height x width`` clip, or a one-line error."""
        c = self.config
        bad = [
            f"{name} {v} is not a positive multiple of {m}"
            for name, v, m in (("frames", frames, c.tubelet_size), ("height", height, c.patch_size),
                               ("width", width, c.patch_size))
            if v <= 0 or v % m
        ]
        if bad:
            raise EncoderInputError(
                f"clip of {frames}x{height}x{width} does not tile into tubelets: {'; '.join(bad)}; "
                f"resize frames with world_model.preprocessing.frames_to_clips"
            )
        return frames // c.tubelet_size, height // c.patch_size, width // c.patch_size

    def forward(
        self, clip: torch.Tensor, keep: torch.Tensor | Sequence[torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Encode ``clip [B, C, T, H, W]``; with ``keep`` encode only those token indices.

        ``keep`` is ``[B, K]`` long indices into the raster token order (or a list of them, which
        are concatenated along the batch like the official ``apply_masks``: output ``[len*B, K, D]``).
        Kept tokens keep their original (t, h, w) RoPE positions, exactly as the official context
        encoder does, so a masked encoding equals attending among only those tokens.
        """
        if clip.ndim != 5 or clip.shape[1] != self.config.in_chans:
            raise EncoderInputError(
                f"encoder input has shape {tuple(clip.shape)}, expected [B, {self.config.in_chans}, T, H, W]; "
                f"a single image is a 2-frame clip (see world_model.preprocessing.frames_to_clips)"
            )
        t, h, w = self.grid(*clip.shape[2:])
        x = self.patch_embed(clip)  # [B, N, D]
        pos = grid_positions(t, h, w, device=x.device)  # [N, 3]
        if keep is not None:
            keeps = list(keep) if isinstance(keep, (list, tuple)) else [keep]
            n = x.shape[1]
            for k in keeps:
                if k.ndim != 2 or k.shape[0] != x.shape[0] or k.dtype not in (torch.int64, torch.int32):
                    raise EncoderInputError(
                        f"keep indices must be an integer tensor [B={x.shape[0]}, K], got {k.dtype} {tuple(k.shape)}"
                    )
                if k.numel() and (int(k.min()) < 0 or int(k.max()) >= n):
                    raise EncoderInputError(f"keep indices must lie in [0, {n}) for a {t}x{h}x{w} token grid")
            idx = torch.cat([k.long() for k in keeps], dim=0)  # [B', K]
            x = torch.cat([torch.gather(x, 1, k.long().unsqueeze(-1).expand(-1, -1, x.shape[-1])) for k in keeps])
            pos = pos[idx]  # [B', K, 3]
        for blk in self.blocks:
            x = blk(x, pos)
        return self.norm(x)  # [B, N or K, D]


def as_feature_map(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """View one frame's tokens ``[B, h*w, D]`` as a spatial map ``[B, h, w, D]``."""
    if x.ndim != 3 or x.shape[1] != h * w:
        raise EncoderInputError(f"features {tuple(x.shape)} are not [B, {h}*{w}={h * w}, D]")
    return x.unflatten(1, (h, w))


def _trunc_normal(t: torch.Tensor, std: float, gen: torch.Generator) -> None:
    nn.init.trunc_normal_(t, mean=0.0, std=std, a=-2.0, b=2.0, generator=gen)


def init_weights(model: VideoViT, seed: int = 0, std: float = 0.02) -> VideoViT:
    """Official initialisation, but from a private generator so builds are reproducible.

    Linear/Conv weights truncated-normal (std 0.02), biases 0, LayerNorm (1, 0), then each block's
    ``attn.proj`` and ``mlp.fc2`` divided by sqrt(2 * layer) (the official ``_rescale_blocks``).
    Meta tensors (shape-only builds) are left alone.
    """
    if any(p.is_meta for p in model.parameters()):
        return model
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv3d)):
                _trunc_normal(m.weight, std, gen)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.LayerNorm):
                m.weight.fill_(1.0)
                m.bias.zero_()
        for layer_id, blk in enumerate(model.blocks, start=1):
            blk.attn.proj.weight.div_(math.sqrt(2.0 * layer_id))
            blk.mlp.fc2.weight.div_(math.sqrt(2.0 * layer_id))
    return model


def encoder_config(name: str, **overrides: Any) -> EncoderConfig:
    """The named family member's config with fields replaced (e.g. ``depth=2, image_size=64``)."""
    if name not in ENCODER_CONFIGS:
        raise SimjepaError(f"unknown encoder {name!r}; choose one of {', '.join(ENCODER_CONFIGS)}")
    try:
        return replace(ENCODER_CONFIGS[name], **overrides)
    except TypeError as exc:
        raise SimjepaError(f"bad encoder override for {name}: {exc}") from None


def _seeded_encoder(config: EncoderConfig, seed: int) -> VideoViT:
    target = torch.empty(0).device  # the ambient default device (meta inside a device context)
    with torch.device("meta"):  # skip PyTorch's default init: init_weights sets every parameter
        model = VideoViT(config)
    if target.type == "meta":
        return model
    return init_weights(model.to_empty(device=target), seed=seed)


def build_encoder(name: str = "vit_large", *, seed: int = 0, **overrides: Any) -> VideoViT:
    """Build a randomly initialised (seeded) encoder of the official family.

    Build under ``with torch.device("meta"):`` to get shapes and parameter counts with no memory.
    """
    return _seeded_encoder(encoder_config(name, **overrides), seed)


def random_init_like(encoder: VideoViT, seed: int = 0) -> VideoViT:
    """A fresh init of ``encoder``'s architecture: the baseline that shows what pretraining added
    (probes, energies), with the same weights at any image size for a given seed."""
    return _seeded_encoder(encoder.config, seed).eval()


def _factory(name: str) -> Callable[..., VideoViT]:
    def make(*, seed: int = 0, **overrides: Any) -> VideoViT:
        return build_encoder(name, seed=seed, **overrides)

    make.__name__ = name
    make.__doc__ = f"``build_encoder({name!r})``: {ENCODER_CONFIGS[name]}"
    return make


vit_tiny = _factory("vit_tiny")
vit_small = _factory("vit_small")
vit_base = _factory("vit_base")
vit_large = _factory("vit_large")
vit_huge = _factory("vit_huge")
vit_giant = _factory("vit_giant")
vit_gigantic = _factory("vit_gigantic")
