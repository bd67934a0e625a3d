"""Loading encoders from every place users have them: official V-JEPA 2 files, Hugging Face
``transformers`` V-JEPA 2 weights, our own single-file checkpoints, builder names, ``"default"``.

Official checkpoints carry no config, so it is read off the tensors: width from
``patch_embed.proj`` (which also gives patch and tubelet size), depth from the block count, MLP width
from ``fc1``, qkv bias from its presence, heads from the official table for known widths (head
width 64 otherwise; pass ``num_heads=`` to override). Every load is weights-only and strict, and
mismatches are named (:func:`world_model.checkpoints.load_weights`).
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from world_model.checkpoints import (
    CheckpointError,
    load_file,
    load_weights,
    read_model,
    save_model,
    strip_prefixes,
    weights_hash,
)
from world_model.encoder import ENCODER_CONFIGS, OFFICIAL_HEADS, EncoderConfig, VideoViT, build_encoder

DEFAULT_ENCODER_PATH = Path(__file__).resolve().parent / "assets" / "default_encoder.pt"
HF_PREFIXES = ("vjepa2.", "module.", "backbone.", "_orig_mod.")


def _ratio_for(dim: int, hidden: int) -> float:
    """An MLP ratio r with ``int(dim * r) == hidden`` despite float rounding (e.g. 6144 / 1408)."""
    r = hidden / dim
    while int(dim * r) < hidden:
        r = math.nextafter(r, math.inf)
    return r


def infer_config(
    state_dict: Mapping[str, torch.Tensor], *, image_size: int = 256, num_heads: int | None = None
) -> EncoderConfig:
    """Read an :class:`EncoderConfig` off a state dict in the official key layout (prefixes stripped)."""
    w = state_dict.get("patch_embed.proj.weight")
    if w is None or w.ndim != 5:
        sample = ", ".join(list(state_dict)[:4]) or "none"
        raise CheckpointError(
            f"not a V-JEPA 2 video encoder state dict: no 5-D patch_embed.proj.weight (first keys: {sample}); "
            f"pass an encoder checkpoint"
        )
    dim, in_chans, tubelet, patch, patch_w = w.shape
    if patch != patch_w:
        raise CheckpointError(f"patch_embed.proj.weight has non-square patches {patch}x{patch_w}; unsupported")
    blocks = sorted({int(m.group(1)) for k in state_dict if (m := re.match(r"blocks\.(\d+)\.", k))})
    if blocks != list(range(len(blocks))):
        raise CheckpointError(f"encoder blocks are not numbered 0..{len(blocks) - 1}: found {blocks[:10]}")
    depth = len(blocks)
    hidden = state_dict["blocks.0.mlp.fc1.weight"].shape[0] if depth else int(4 * dim)
    if num_heads is None:
        if dim in OFFICIAL_HEADS:
            num_heads = OFFICIAL_HEADS[dim]
        elif dim % 64 == 0:
            num_heads = dim // 64
        else:
            raise CheckpointError(
                f"cannot infer the head count of a width-{dim} encoder (not an official width, not a multiple "
                f"of 64); pass num_heads= to load_encoder"
            )
    return EncoderConfig(
        embed_dim=dim, depth=depth, num_heads=num_heads, mlp_ratio=_ratio_for(dim, hidden), patch_size=patch,
        tubelet_size=tubelet, in_chans=in_chans, qkv_bias=(depth == 0 or "blocks.0.attn.qkv.bias" in state_dict),
        image_size=image_size,
    )


def _hf_to_official(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename Hugging Face ``VJEPA2Model`` encoder keys to the official layout; drop the predictor.

    HF splits ``qkv`` into ``query``/``key``/``value`` (concatenated back in that order, as the
    official-to-HF conversion split them) and renames ``blocks``->``encoder.layer``,
    ``patch_embed``->``encoder.embeddings.patch_embeddings``, ``norm``->``encoder.layernorm``.
    """
    out: dict[str, torch.Tensor] = {}
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for key, t in sd.items():
        if not key.startswith("encoder."):
            continue  # predictor / pooler weights
        k = key[len("encoder."):]
        k = k.replace("embeddings.patch_embeddings.", "patch_embed.")
        k = re.sub(r"^layer\.(\d+)\.", r"blocks.\1.", k)
        k = k.replace("attention.attention.", "attn.").replace("attention.", "attn.")
        k = re.sub(r"^layernorm\.", "norm.", k)
        m = re.match(r"(blocks\.\d+\.attn\.)(query|key|value)\.(weight|bias)$", k)
        if m:
            parts.setdefault(m.group(1) + "qkv." + m.group(3), {})[m.group(2)] = t
        elif k != "embeddings.position_embeddings":
            out[k] = t
    for k, qkv in parts.items():
        if set(qkv) != {"query", "key", "value"}:
            raise CheckpointError(f"Hugging Face checkpoint lacks {sorted({'query', 'key', 'value'} - set(qkv))} for {k}")
        out[k] = torch.cat([qkv["query"], qkv["key"], qkv["value"]], dim=0)
    return out


def official_state_dict(obj: Mapping[str, Any], which: str | None = None) -> tuple[dict[str, torch.Tensor], str]:
    """The encoder state dict (official key names, prefixes stripped) inside a loaded file.

    Official training checkpoints hold ``encoder`` (context encoder) and ``target_encoder`` (its
    EMA). We take ``target_encoder`` when both are present, as the official frozen evaluations do
    (``checkpoint_key: target_encoder``); the released hub files hold only ``encoder``. ``which``
    forces one. A flat state dict (official or Hugging Face names) is taken as is.
    Returns the state dict and a short note saying which entry was used.
    """
    nested = [k for k in ("target_encoder", "encoder") if isinstance(obj.get(k), Mapping)]
    if which is not None:
        if not isinstance(obj.get(which), Mapping):
            raise CheckpointError(f"checkpoint has no {which!r} state dict (it has: {', '.join(map(str, obj))[:200]})")
        sd, note = obj[which], which
    elif nested:
        sd, note = obj[nested[0]], nested[0]
    else:
        sd, note = obj, "flat state dict"
    if not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(
            f"checkpoint entry {note!r} is not a state dict of tensors; pass an official V-JEPA 2 file, a Hugging "
            f"Face V-JEPA 2 safetensors file or a simjepa encoder checkpoint"
        )
    sd = strip_prefixes(sd, HF_PREFIXES)
    if "encoder.embeddings.patch_embeddings.proj.weight" in sd:
        sd, note = _hf_to_official(sd), "Hugging Face VJEPA2Model"
    # RoPE encoders ignore it; some official files still carry the unused sincos table (the official
    # hub loads them with strict=False for this reason).
    sd.pop("pos_embed", None)
    return sd, note


def encoder_from_state_dict(
    state_dict: Mapping[str, torch.Tensor], what: str, *, image_size: int = 256, num_heads: int | None = None
) -> VideoViT:
    """Build the encoder the tensors describe and load them strictly (fp32 master weights)."""
    config = infer_config(state_dict, image_size=image_size, num_heads=num_heads)
    with torch.device("meta"):
        model = VideoViT(config)
    model = model.to_empty(device="cpu")  # no wasted random init of large models
    load_weights(model, state_dict, what)
    return model.float()


def _hf_dir_heads(path: Path) -> int | None:
    cfg = path / "config.json" if path.is_dir() else path.parent / "config.json"
    if cfg.is_file():
        try:
            heads = json.loads(cfg.read_text()).get("num_attention_heads")
        except (OSError, ValueError):
            return None
        return int(heads) if isinstance(heads, int) else None
    return None


def _load_path(path: Path, image_size: int | None, num_heads: int | None, which: str | None) -> VideoViT:
    if path.is_dir():
        files = sorted(path.glob("*.safetensors"))
        if len(files) != 1:
            raise CheckpointError(
                f"{path} is a directory with {len(files)} .safetensors files; pass the encoder checkpoint file itself"
            )
        path = files[0]
    obj = load_file(path)
    if isinstance(obj.get("format"), str):
        ours = read_model(path, "encoder")
        try:
            config = EncoderConfig.from_dict(ours["config"])
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{path} has a malformed encoder config: {exc}") from None
        if image_size is not None:
            config = EncoderConfig.from_dict({**config.to_dict(), "image_size": image_size})
        model = VideoViT(config)
        load_weights(model, ours["state_dict"], f"encoder checkpoint {path}")
        model.source_note = "simjepa checkpoint"
        return model
    sd, note = official_state_dict(obj, which)
    heads = num_heads if num_heads is not None else (_hf_dir_heads(path) if note.startswith("Hugging") else None)
    model = encoder_from_state_dict(sd, f"encoder weights in {path} ({note})", image_size=image_size or 256,
                                    num_heads=heads)
    model.source_note = note
    return model


def load_encoder(
    path_or_name: str | os.PathLike = "default",
    *,
    image_size: int | None = None,
    num_heads: int | None = None,
    which: str | None = None,
    seed: int = 0,
) -> VideoViT:
    """Load an encoder by name or path; the result is in eval mode and remembers its ``source``
    (the name, or the file's absolute path).

    - ``"default"``: the shipped pretrained encoder (``world_model/assets/default_encoder.pt``).
    - ``"vit_tiny"`` ... ``"vit_gigantic"``: randomly initialised with ``seed`` (a fixed 0 by default).
    - a simjepa encoder checkpoint (:func:`save_encoder`): config + weights in one file.
    - an official V-JEPA 2 ``.pt``: ``{"encoder"|"target_encoder": {"module.backbone.<key>": t}}``;
      ``target_encoder`` is preferred when both are present (``which=`` forces one).
    - Hugging Face ``transformers`` V-JEPA 2 weights (a ``.safetensors`` file, or its directory whose
      ``config.json`` then gives the head count).
    ``image_size`` overrides the preprocessing size stored with the model (official files: 256).
    """
    s = os.fspath(path_or_name)
    if s == "default":
        if not DEFAULT_ENCODER_PATH.is_file():
            raise CheckpointError(
                f"the default pretrained encoder is not shipped yet ({DEFAULT_ENCODER_PATH} is missing); pass a "
                f"builder name such as vit_tiny or the path of an encoder checkpoint"
            )
        model = _load_path(DEFAULT_ENCODER_PATH, image_size, num_heads, which)
    elif s in ENCODER_CONFIGS:
        overrides = {} if image_size is None else {"image_size": image_size}
        model = build_encoder(s, seed=seed, **overrides)
        model.source_note = f"random init, seed {seed}"
    else:
        path = Path(s).expanduser()
        if not path.exists():
            raise CheckpointError(
                f"{s!r} is neither a checkpoint path nor an encoder name; pass a file, 'default' or one of "
                f"{', '.join(ENCODER_CONFIGS)}"
            )
        model = _load_path(path, image_size, num_heads, which)
        s = str(path.resolve())  # recorded in caches and world models: must work from any directory
    model.source = s
    return model.eval()


def save_encoder(path: str | os.PathLike, encoder: VideoViT, **extra: Any) -> None:
    """Write a simjepa encoder checkpoint (config + fp32 weights), atomically."""
    save_model(path, "encoder", encoder.config.to_dict(), encoder, **extra)


def encoder_identity(encoder: VideoViT) -> dict[str, Any]:
    """What a feature cache records about the encoder that built it: name, config, weights hash."""
    return {
        "name": getattr(encoder, "source", "unnamed"),
        "config": encoder.config.to_dict(),
        "weights_hash": weights_hash(encoder.state_dict()),
    }
