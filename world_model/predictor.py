"""The V-JEPA 2-AC action-conditioned predictor and its loaders.

Architecture as the official ``VisionTransformerPredictorAC`` (vjepa2 ``src/models/ac_predictor.py``
with ``ACBlock``/``ACRoPEAttention``): per time step the token sequence is ``[action, state,
(extrinsics,) patches...]``, all projected to the predictor width; attention is block-causal over
time (every token of step t sees all tokens of steps <= t); patches get 3D RoPE at (t, h, w) and the
conditioning tokens time-only RoPE, i.e. position (t, 0, 0) since a rotation by 0 is the identity.
Parameter names equal the official ones, so an official ``predictor`` dict loads without renaming
and our weights export back to the official layout.

``forward`` returns the raw output (after ``predictor_norm`` + ``predictor_proj``); V-JEPA 2-AC's
``normalize_reps`` layer norm is applied outside (:func:`normalize_reps`), by the loss, the planner's
energy and whoever feeds predictions back in. Like the official training and planning code, the
predictor expects its *input* features layer-normed too.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import CheckpointError, load_file, load_weights, read_model, save_model, strip_prefixes
from .layers import Block, KVCache, RoPETables, rope_tables

# Official V-JEPA 2-AC predictor: width -> heads. Other widths use a head width of 64.
OFFICIAL_HEADS = {1024: 16}
DEFAULT_MODEL = Path(__file__).parent / "assets" / "default_model.pt"
# decode steps with fewer activations than this ([B, tokens, width] elements) stay eager even when
# compile_decode is on: below it the one-off compile costs more than it saves (and tests never compile)
COMPILE_MIN_NUMEL = 1 << 22


@dataclass
class PredictorConfig:
    """Sizes of an AC predictor. ``embed_dim`` is the encoder width it reads and writes.

    ``extrinsics_dim``: the official model always holds an ``extrinsics_encoder`` (action dim - 1
    inputs) even when unused, so it exists here too and official checkpoints load strictly;
    ``use_extrinsics`` adds the extra per-step token. ``rope_grid``: the official model scales patch
    positions by ``grid_size / H`` with ``grid_size`` its configured grid height; None means "the
    grid of the input", i.e. scale 1, which is what every official configuration computes.
    ``residual``: the output is the input frame plus the head's output, and the head starts at zero,
    so an untrained model already copies the last frame. Why: where a frame changes little per step
    (Pusher-v5's arm moves a few pixels), copying the last frame is a strong one-step guess that a
    model predicting the whole frame must first learn to match. Not part of the official
    architecture: such a predictor does not export to the official layout.
    """

    embed_dim: int
    width: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    action_dim: int = 7
    state_dim: int = 7
    extrinsics_dim: int = 6
    use_extrinsics: bool = False
    qkv_bias: bool = True
    norm_eps: float = 1e-6
    rope_grid: int | None = None
    init_std: float = 0.02
    residual: bool = False  # predict the change from the input frame (not in the official model; files before it: no)

    @property
    def cond_tokens(self) -> int:
        return 3 if self.use_extrinsics else 2

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PredictorConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise CheckpointError(f"predictor config has unknown fields {unknown}; it was written by another simjepa version")
        return cls(**dict(d))


# Factories differ only in numbers. vjepa2-ac is the official 24 x 1024 predictor (~305M params);
# all use head width 64, so their official-layout exports load back with the same head count.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(width=128, depth=2, num_heads=2),
    "mini": dict(width=192, depth=4, num_heads=3),  # the shipped CPU default: sized for CPU planning
    "small": dict(width=256, depth=6, num_heads=4),
    "base": dict(width=512, depth=12, num_heads=8),
    "vjepa2-ac": dict(width=1024, depth=24, num_heads=16),
}


def normalize_reps(x: torch.Tensor) -> torch.Tensor:
    """V-JEPA 2-AC's ``normalize_reps``: layer norm over channels, no affine, computed in fp32."""
    return F.layer_norm(x.float(), (x.shape[-1],))


def block_causal_mask(steps: int, tokens_per_step: int, device: torch.device | None = None) -> torch.Tensor:
    """``[L, L]`` bool, True = may attend, L = steps * tokens_per_step: step t sees steps <= t.

    Same as the official ``build_action_block_causal_attention_mask`` (its local window equals T).
    """
    step = torch.arange(steps, device=device).repeat_interleave(tokens_per_step)  # [L]
    return step[:, None] >= step[None, :]


def infer_grid(num_tokens: int) -> tuple[int, int]:
    side = math.isqrt(num_tokens)
    if side * side != num_tokens:
        raise ValueError(f"{num_tokens} patch tokens per step is not a square grid; pass grid=(h, w) explicitly")
    return side, side


class ACPredictor(nn.Module):
    """``pred(feats [B,T,N,D], actions [B,T,A], states [B,T,S]) -> [B,T,N,D]``; output t predicts step t+1."""

    def __init__(self, config: PredictorConfig):
        super().__init__()
        self.config = c = config
        self.predictor_embed = nn.Linear(c.embed_dim, c.width)
        self.action_encoder = nn.Linear(c.action_dim, c.width)
        self.state_encoder = nn.Linear(c.state_dim, c.width)
        self.extrinsics_encoder = nn.Linear(c.extrinsics_dim, c.width)
        self.predictor_blocks = nn.ModuleList(
            [Block(c.width, c.num_heads, c.mlp_ratio, qkv_bias=c.qkv_bias, eps=c.norm_eps) for _ in range(c.depth)]
        )
        self.predictor_norm = nn.LayerNorm(c.width, eps=c.norm_eps)
        self.predictor_proj = nn.Linear(c.width, c.embed_dim)
        self._init_weights()
        if c.residual:  # the change starts at zero: the untrained model copies its input frame
            nn.init.zeros_(self.predictor_proj.weight)
        self._mask_cache: dict[tuple, torch.Tensor] = {}
        self._pos_cache: dict[tuple, torch.Tensor] = {}
        self._block_step = None  # torch.compile'd Block.forward_cached, see compile_decode

    def _init_weights(self) -> None:
        """Official init: truncated normal(0.02) linears, zero biases, and residual outputs of block i
        divided by sqrt(2 i) so early training is stable at depth."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=self.config.init_std, a=-2.0, b=2.0)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        with torch.no_grad():
            for i, blk in enumerate(self.predictor_blocks, start=1):
                blk.attn.proj.weight.div_(math.sqrt(2.0 * i))
                blk.mlp.fc2.weight.div_(math.sqrt(2.0 * i))

    # --- token layout ----------------------------------------------------------------------------
    def positions(self, steps: int, h: int, w: int, device: torch.device | None = None) -> torch.Tensor:
        """(t, h, w) RoPE positions of one sequence ``[T*(K+h*w), 3]``: conditioning tokens (t, 0, 0)."""
        k = self.config.cond_tokens
        scale_h = (self.config.rope_grid / h) if self.config.rope_grid else 1.0
        scale_w = (self.config.rope_grid / w) if self.config.rope_grid else 1.0
        hh, ww = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
        patch = torch.stack([torch.zeros(h * w, device=device), hh.reshape(-1) * scale_h, ww.reshape(-1) * scale_w], -1)
        per_step = torch.cat([torch.zeros(k, 3, device=device), patch.float()], 0)  # [K+h*w, 3]
        pos = per_step.repeat(steps, 1)  # [T*(K+hw), 3]
        pos[:, 0] = torch.arange(steps, device=device).repeat_interleave(k + h * w).float()
        return pos

    def mask(self, steps: int, tokens_per_step: int, device: torch.device) -> torch.Tensor:
        key = (steps, tokens_per_step, str(device))
        if key not in self._mask_cache:
            self._mask_cache[key] = block_causal_mask(steps, tokens_per_step, device)
        return self._mask_cache[key]

    def embed(
        self, feats: torch.Tensor, actions: torch.Tensor, states: torch.Tensor, extrinsics: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Interleave per-step tokens: ``[B, T, K+N, W]`` with K = action, state (, extrinsics)."""
        x = self.predictor_embed(feats)  # [B, T, N, W]
        cond = [self.action_encoder(actions).unsqueeze(2), self.state_encoder(states).unsqueeze(2)]  # [B, T, 1, W]
        if self.config.use_extrinsics:
            if extrinsics is None:
                raise ValueError("this predictor uses extrinsics: pass extrinsics [B, T, E]")
            cond.append(self.extrinsics_encoder(extrinsics).unsqueeze(2))
        return torch.cat(cond + [x], dim=2)

    def run_blocks(
        self, x: torch.Tensor, pos: torch.Tensor | RoPETables, mask: torch.Tensor, reference: bool = False
    ) -> torch.Tensor:
        """The transformer over ``x [B, L, W]`` at ``pos [L, 3]`` (or precomputed tables).

        ``reference``: recompute RoPE per block the way the official code does (the benchmark's
        baseline); otherwise one cached cos/sin table pair serves every block."""
        if not reference and not isinstance(pos, RoPETables) and self.predictor_blocks:
            attn = self.predictor_blocks[0].attn
            pos = rope_tables(pos, attn.head_dim, attn.rope_dim, x.dtype)
        for blk in self.predictor_blocks:
            x = blk(x, pos, mask, reference)
        return x

    # --- incremental (key/value cached) rollouts -----------------------------------------------------
    def new_kv_cache(self, batch: int, steps: int, tokens_per_frame: int, dtype: torch.dtype | None = None,
                     device: torch.device | str | None = None) -> KVCache:
        """Empty cache for ``steps`` time steps of ``batch`` sequences (``dtype``: bf16 under autocast)."""
        c = self.config
        p = self.predictor_embed.weight
        device = p.device if device is None else device
        dtype = dtype or (torch.get_autocast_dtype(torch.device(device).type)
                          if torch.is_autocast_enabled(torch.device(device).type) else p.dtype)
        hd = c.width // c.num_heads
        return KVCache(c.depth, batch, c.num_heads, steps * (c.cond_tokens + tokens_per_frame), hd, dtype, device)

    def compile_decode(self, enabled: bool = True) -> None:
        """Run :meth:`decode_step`'s blocks through ``torch.compile`` (fuses RoPE, norms, GELU and
        casts): faster planning on CPU after a one-off compile of some seconds. Used only for
        steps of at least ``COMPILE_MIN_NUMEL`` activations, where it pays off (small searches and
        tests stay eager and never compile); a compile failure (e.g. no C++ compiler) warns once
        and falls back to eager. Outputs equal eager within bf16 rounding."""
        self._block_step = torch.compile(Block.forward_cached) if enabled else None

    def _run_cached(self, x: torch.Tensor, rope: RoPETables, cache: KVCache, start: int) -> torch.Tensor:
        compiled = self._block_step if x.numel() >= COMPILE_MIN_NUMEL else None
        if compiled is not None:
            try:
                y = x
                for blk, kb, vb in zip(self.predictor_blocks, cache.k, cache.v):
                    y = compiled(blk, y, rope, kb, vb, start)
                return y
            except Exception as exc:  # compiler missing or unsupported: eager is always correct
                warnings.warn(f"torch.compile of the predictor step failed ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); running eager")
                self._block_step = None
        for blk, kb, vb in zip(self.predictor_blocks, cache.k, cache.v):
            x = blk.forward_cached(x, rope, kb, vb, start)
        return x

    def step_positions(self, t: int, h: int, w: int, device: torch.device | None = None) -> torch.Tensor:
        """RoPE positions of the tokens of time step ``t`` alone: ``[K+h*w, 3]`` (rows of :meth:`positions`)."""
        key = ("step", t, h, w, str(device))
        if key not in self._pos_cache:
            self._pos_cache[key] = self.positions(t + 1, h, w, device)[-(self.config.cond_tokens + h * w):]
        return self._pos_cache[key]

    def decode_step(
        self,
        feats: torch.Tensor,
        actions: torch.Tensor,
        states: torch.Tensor,
        cache: KVCache,
        extrinsics: torch.Tensor | None = None,
        grid: tuple[int, int] | None = None,
        project: bool = True,
    ) -> torch.Tensor | None:
        """Append one time step to ``cache`` and predict the next frame: ``[B, N, D]`` raw output.

        ``feats [b, N, D]``, ``actions [b, A]``, ``states [b, S]`` with each ``b`` either the cache's
        batch or 1 (shared by every sequence, computed once). Equals ``forward`` on the whole prefix
        (block-causal attention: earlier steps never see later ones), with each step run once.
        ``project=False`` skips the output head (prefix steps whose prediction is not needed).
        """
        c = self.config
        n = feats.shape[-2]
        h, w = grid if grid is not None else infer_grid(n)
        k = c.cond_tokens
        tok = [self.action_encoder(actions).unsqueeze(1), self.state_encoder(states).unsqueeze(1)]  # [b, 1, W]
        if c.use_extrinsics:
            if extrinsics is None:
                raise ValueError("this predictor uses extrinsics: pass extrinsics [B, E]")
            tok.append(self.extrinsics_encoder(extrinsics).unsqueeze(1))
        tok.append(self.predictor_embed(feats))  # [b, N, W]
        b = max(t.shape[0] for t in tok)
        x = torch.cat([t.expand(b, -1, -1) for t in tok], dim=1)  # [b, K+N, W]
        start = cache.length
        if start + k + n > cache.max_len:
            raise ValueError(f"key/value cache holds {cache.max_len} tokens; step {cache.steps} needs {start + k + n}")
        attn = self.predictor_blocks[0].attn
        rope = rope_tables(self.step_positions(cache.steps, h, w, x.device), attn.head_dim, attn.rope_dim, cache.k[0].dtype)
        x = self._run_cached(x, rope, cache, start)
        cache.length, cache.steps = start + k + n, cache.steps + 1
        if not project:
            return None
        out = self.predictor_proj(self.predictor_norm(x[:, k:]))  # [b, N, D]
        return out + feats if c.residual else out

    def forward(
        self,
        feats: torch.Tensor,
        actions: torch.Tensor,
        states: torch.Tensor,
        extrinsics: torch.Tensor | None = None,
        grid: tuple[int, int] | None = None,
        reference: bool = False,
    ) -> torch.Tensor:
        """``reference``: the official per-block RoPE recomputation (benchmark baseline), same outputs."""
        b, t, n, _ = feats.shape
        c = self.config
        if actions.shape[:2] != (b, t) or states.shape[:2] != (b, t):
            raise ValueError(
                f"feats {tuple(feats.shape)} need actions and states with the same [B, T]; got "
                f"{tuple(actions.shape)} and {tuple(states.shape)}"
            )
        if actions.shape[-1] != c.action_dim or states.shape[-1] != c.state_dim or feats.shape[-1] != c.embed_dim:
            raise ValueError(
                f"predictor expects features of width {c.embed_dim}, {c.action_dim}-D actions and {c.state_dim}-D "
                f"states; got {feats.shape[-1]}, {actions.shape[-1]} and {states.shape[-1]}"
            )
        h, w = grid if grid is not None else infer_grid(n)
        if h * w != n:
            raise ValueError(f"grid {h}x{w} does not hold {n} tokens")
        k = c.cond_tokens
        x = self.embed(feats, actions, states, extrinsics).flatten(1, 2)  # [B, T*(K+N), W]
        pos = self.positions(t, h, w, x.device)  # [T*(K+N), 3]
        x = self.run_blocks(x, pos, self.mask(t, k + n, x.device), reference)
        x = x.unflatten(1, (t, k + n))[:, :, k:]  # [B, T, N, W]
        out = self.predictor_proj(self.predictor_norm(x))  # [B, T, N, D]
        return out + feats if c.residual else out


# --- construction and loading --------------------------------------------------------------------
def predictor_config(name: str, embed_dim: int, action_dim: int = 7, state_dim: int = 7, **overrides: Any) -> PredictorConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown predictor config {name!r}; choose one of {', '.join(PRESETS)}")
    cfg = PredictorConfig(embed_dim=embed_dim, action_dim=action_dim, state_dim=state_dim, **PRESETS[name])
    cfg = replace(cfg, extrinsics_dim=max(action_dim - 1, 1))
    return replace(cfg, **overrides) if overrides else cfg


def build_predictor(name: str, embed_dim: int, action_dim: int = 7, state_dim: int = 7, **overrides: Any) -> ACPredictor:
    """A freshly initialised predictor: ``name`` in tiny|small|base|vjepa2-ac; overrides change any field."""
    return ACPredictor(predictor_config(name, embed_dim, action_dim, state_dim, **overrides))


def config_from_official(state_dict: Mapping[str, torch.Tensor]) -> PredictorConfig:
    """Rebuild the config of an official checkpoint from its tensor shapes (they carry no config)."""
    try:
        width, embed_dim = state_dict["predictor_embed.weight"].shape
        depth = len({k.split(".")[1] for k in state_dict if k.startswith("predictor_blocks.")})
        hidden = state_dict["predictor_blocks.0.mlp.fc1.weight"].shape[0]
        action_dim = state_dict["action_encoder.weight"].shape[1]
        state_dim = state_dict["state_encoder.weight"].shape[1]
        extr = state_dict.get("extrinsics_encoder.weight")
    except KeyError as exc:
        raise CheckpointError(f"not a V-JEPA 2-AC predictor state dict: it lacks {exc.args[0]}") from None
    heads = OFFICIAL_HEADS.get(int(width), max(int(width) // 64, 1))
    return PredictorConfig(
        embed_dim=int(embed_dim), width=int(width), depth=depth, num_heads=heads, mlp_ratio=hidden / width,
        action_dim=int(action_dim), state_dim=int(state_dim),
        extrinsics_dim=int(extr.shape[1]) if extr is not None else max(int(action_dim) - 1, 1),
        qkv_bias="predictor_blocks.0.attn.qkv.bias" in state_dict,
    )


def from_official_state_dict(state_dict: Mapping[str, torch.Tensor]) -> ACPredictor:
    sd = strip_prefixes(state_dict)
    model = ACPredictor(config_from_official(sd))
    if "extrinsics_encoder.weight" not in sd:  # tolerated: unused by configurations without extrinsics
        sd = {**sd, **{f"extrinsics_encoder.{k}": v for k, v in model.extrinsics_encoder.state_dict().items()}}
    load_weights(model, sd, "official V-JEPA 2-AC predictor checkpoint")
    return model


def to_official(model: ACPredictor) -> dict[str, dict[str, torch.Tensor]]:
    """Our weights in the official file layout ``{"predictor": {"module.<key>": tensor}}``."""
    if model.config.residual:
        raise ValueError("a residual predictor (train --residual) has no official layout: the official model "
                         "predicts whole frames, and these weights predict changes")
    return {"predictor": {f"module.{k}": v.detach().cpu() for k, v in model.state_dict().items()}}


def save_predictor(path: str | Path, model: ACPredictor, **extra: Any) -> None:
    save_model(path, "predictor", asdict(model.config), model, **extra)


def predictor_from_dict(config: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor], what: str) -> ACPredictor:
    model = ACPredictor(PredictorConfig.from_dict(config))
    load_weights(model, state_dict, what)
    return model


def load_predictor(path_or_name: str | Path) -> ACPredictor:
    """An official V-JEPA 2-AC checkpoint, one of ours (predictor or world model), a training run's
    output directory (its ``final.pt``), or ``"default"`` (the shipped model)."""
    if str(path_or_name) == "default" or Path(path_or_name).is_dir():
        from .model_file import load_world_model

        return load_world_model(path_or_name, with_encoder=False).predictor
    path = Path(path_or_name)
    obj = load_file(path)
    fmt = obj.get("format")
    if fmt == "simjepa/predictor":
        ours = read_model(path, "predictor")
        return predictor_from_dict(ours["config"], ours["state_dict"], f"predictor checkpoint {path}")
    if fmt == "simjepa/world_model":
        from .model_file import load_world_model

        return load_world_model(path, with_encoder=False).predictor
    if fmt is not None:
        raise CheckpointError(f"{path} is a {fmt!r} checkpoint, not a predictor; pass a predictor or world-model file")
    sd = obj.get("predictor", obj)
    if not isinstance(sd, Mapping) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{path} holds no predictor weights (expected an official {{'predictor': state_dict}} file)")
    return from_official_state_dict(sd)
