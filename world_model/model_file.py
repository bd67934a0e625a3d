"""The world-model file: frozen encoder (reference or embedded) + AC predictor + planner defaults.

What ``simjepa train`` writes as ``final.pt``, what ``--model`` / :func:`load_world_model` read and
what the shipped default model is.

The planner needs exactly ``encoder``, ``predictor``, ``image_size``, ``planner``, ``info`` and
``encode(frames)``. A file may also embed a learned proposal (``simjepa train-proposal``) trained on
the same encoder's features, so one file is the whole model a task's planner settings refer to
(the shipped default model v3 does). Large encoders (the official ViT-g is 1B parameters) are stored by reference
(name or path + weights hash, checked on load, so a different encoder behind the same name is
refused); small ones (< 50M parameters) are embedded so the file alone is enough to plan.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from simjepa_core.errors import SimjepaError

from .checkpoints import CheckpointError, read_model, save_model, weights_hash
from .predictor import DEFAULT_MODEL, ACPredictor, predictor_from_dict

EMBED_ENCODER_MAX_PARAMS = 50_000_000
FINAL_NAME = "final.pt"


@dataclass
class WorldModel:
    """Frozen encoder + predictor + metadata. ``encoder`` is a :class:`FrozenEncoder` (None when the
    file was loaded without it); ``grid`` is the token grid (h, w) of one frame at ``image_size``,
    after averaging ``token_pool x token_pool`` patch tokens (1: the patch grid itself). ``cameras``: the
    env views it plans with (``obs["pixels"]`` for the first, ``obs["pixels_<name>"]`` for the others);
    the planning energy is the mean over views. ``proposal``: the embedded proposal network, if any."""

    encoder: Any
    predictor: ACPredictor
    image_size: int
    grid: tuple[int, int]
    planner: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    token_pool: int = 1
    cameras: tuple[str, ...] = ("front",)
    proposal: Any = None  # an embedded world_model.proposal.ProposalNet, or None

    def encode(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 frames ``[B, H, W, 3]`` -> raw encoder features ``[B, N, D]`` float32 (not layer-normed)."""
        if self.encoder is None:
            raise CheckpointError("this world model was loaded without its encoder; load it with with_encoder=True")
        return self.encoder.encode(frames)


def encoder_entry(identity: Mapping[str, Any], encoder: torch.nn.Module | None = None) -> dict[str, Any]:
    """What a world-model file records about its encoder: ``identity`` = {name, config, weights_hash}
    (as a feature cache manifest holds it); with the module itself, small encoders are embedded."""
    entry = {"name": str(identity["name"]), "config": dict(identity["config"]), "weights_hash": str(identity["weights_hash"])}
    if encoder is not None:
        sd = {k: v.detach().cpu() for k, v in encoder.state_dict().items()}
        if weights_hash(sd) != entry["weights_hash"]:
            raise CheckpointError(
                f"encoder {entry['name']!r} has weights hash {weights_hash(sd)}, but the features were made by "
                f"{entry['weights_hash']}; re-encode the data with this encoder"
            )
        if sum(v.numel() for v in sd.values()) < EMBED_ENCODER_MAX_PARAMS:
            entry["state_dict"] = sd
    return entry


def embeddable_encoder(identity: Mapping[str, Any]) -> torch.nn.Module | None:
    """The encoder module a feature cache names (``identity`` = {name, config, weights_hash}), when it is
    small enough to embed in a world-model file and its name still loads the same weights; else None
    (the file then stores the encoder by reference only)."""
    from .encoder import EncoderConfig
    from .encoder_loading import load_encoder

    try:
        cfg = EncoderConfig.from_dict(dict(identity["config"]))
    except (SimjepaError, TypeError):
        return None
    params = cfg.depth * (4 + 2 * cfg.mlp_ratio) * cfg.embed_dim**2  # attention + MLP weights
    if params >= EMBED_ENCODER_MAX_PARAMS:
        return None  # large encoders are stored by reference only
    try:
        enc = load_encoder(identity["name"])
    except SimjepaError as exc:
        warnings.warn(f"final.pt stores the encoder by reference only: {exc}")
        return None
    if weights_hash(enc.state_dict()) != identity["weights_hash"]:
        warnings.warn(f"encoder {identity['name']!r} now loads other weights than the cache's; final.pt stores it by reference only")
        return None
    return enc


def save_world_model(
    path: str | Path,
    predictor: ACPredictor,
    encoder: Mapping[str, Any],
    image_size: int,
    grid: tuple[int, int],
    planner: Mapping[str, Any] | None = None,
    info: Mapping[str, Any] | None = None,
    token_pool: int = 1,
    cameras: Sequence[str] = ("front",),
) -> None:
    """Write one world-model file; ``encoder`` comes from :func:`encoder_entry`."""
    save_model(
        path, "world_model", asdict(predictor.config), predictor,
        encoder=dict(encoder), image_size=int(image_size), grid=[int(grid[0]), int(grid[1])],
        token_pool=int(token_pool), cameras=[str(c) for c in cameras], planner=dict(planner or {}),
        info=dict(info or {}),
    )


def _resolve(path_or_name: str | Path) -> Path:
    if str(path_or_name) == "default":
        if not DEFAULT_MODEL.is_file():
            raise CheckpointError(
                f"no default world model is shipped yet ({DEFAULT_MODEL} is missing); train one with "
                f"`simjepa train --features DIR --out M` and pass --model M"
            )
        return DEFAULT_MODEL
    path = Path(path_or_name).expanduser()
    if path.is_dir():
        final = path / FINAL_NAME
        if not final.is_file():
            raise CheckpointError(
                f"{path} is a directory without {FINAL_NAME}: not a finished training run; finish (or resume) "
                f"`simjepa train --out {path}` or pass a checkpoint file"
            )
        return final
    return path


def _load_encoder(entry: Mapping[str, Any], image_size: int, token_pool: int, what: str, device: str = "cpu"):
    from .checkpoints import load_weights
    from .encoder import EncoderConfig, VideoViT
    from .encoder_loading import load_encoder
    from .frozen_encoder import FrozenEncoder

    if "state_dict" in entry:
        enc = VideoViT(EncoderConfig.from_dict(dict(entry["config"])))
        load_weights(enc, entry["state_dict"], f"encoder embedded in {what}")
        enc.source = entry["name"]
    else:
        enc = load_encoder(entry["name"])
        got = weights_hash(enc.state_dict())
        if got != entry["weights_hash"]:
            raise CheckpointError(
                f"{what} was trained on encoder {entry['name']!r} with weights hash {entry['weights_hash']}, but that "
                f"name now loads weights {got}; pass the original encoder file"
            )
    return FrozenEncoder(enc.eval(), image_size, token_pool=token_pool, device=device)


def _read_world_model(path_or_name: str | Path) -> tuple[dict[str, Any], ACPredictor, str]:
    """The world-model file's dict, its predictor and how errors name the file."""
    path = _resolve(path_or_name)
    obj = read_model(path, "world_model")
    what = f"world model {path}"
    return obj, predictor_from_dict(obj["config"], obj["state_dict"], what), what


def load_predictor(path_or_name: str | Path) -> tuple[ACPredictor, str]:
    """A world model's predictor and the weights hash of the encoder its features came from."""
    obj, predictor, _ = _read_world_model(path_or_name)
    return predictor, str((obj.get("encoder") or {}).get("weights_hash"))


def load_world_model(path_or_name: str | Path = "default", with_encoder: bool = True, device: str = "cpu") -> WorldModel:
    """``"default"`` (shipped), a training run's output directory (its ``final.pt``) or a file.

    ``device``: where the encoder and predictor live (``"cuda"`` lets a GPU run many planning searches
    at once; the planner follows the predictor's device)."""
    obj, predictor, what = _read_world_model(path_or_name)
    predictor = predictor.eval().to(device)
    try:
        entry, image_size, grid = obj["encoder"], int(obj["image_size"]), tuple(int(g) for g in obj["grid"])
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{what} lacks its encoder reference, image size or grid; re-save it with save_world_model") from None
    token_pool = int(obj.get("token_pool", 1))  # files written before token pooling existed: 1
    encoder = _load_encoder(entry, image_size, token_pool, what, device) if with_encoder else None
    if encoder is not None and encoder.dim != predictor.config.embed_dim:
        raise CheckpointError(
            f"{what}: its predictor takes {predictor.config.embed_dim}-D features but its encoder {entry.get('name')!r} "
            f"makes {encoder.dim}-D ones; the file mixes two models, re-save it with a matching pair"
        )
    if encoder is not None and tuple(encoder.grid) != grid:
        warnings.warn(f"{what}: encoder grid {encoder.grid} differs from the stored grid {grid}")
    cameras = tuple(str(c) for c in obj.get("cameras") or ("front",))  # older files: the front view only
    proposal = None
    if obj.get("proposal") is not None:
        from .proposal import proposal_from_dict

        proposal = proposal_from_dict(obj["proposal"], f"proposal embedded in {what}")
    return WorldModel(encoder, predictor, image_size, grid, dict(obj.get("planner") or {}), dict(obj.get("info") or {}),
                      token_pool, cameras, proposal)


def embedded_weight_hashes(path_or_name: str | Path) -> dict[str, str]:
    """Weights hashes of what a world-model file holds (``encoder``, ``predictor``, ``proposal`` when
    embedded): what ``make default-model`` compares to tell a rebuild from the shipped model."""
    obj = read_model(_resolve(path_or_name), "world_model")
    hashes = {"encoder": str((obj.get("encoder") or {}).get("weights_hash")), "predictor": weights_hash(obj["state_dict"])}
    if obj.get("proposal") is not None:
        hashes["proposal"] = weights_hash(obj["proposal"]["state_dict"])
    return hashes


def with_planner_defaults(
    source: str | Path, out: str | Path, planner: Mapping[str, Any], recipe: Mapping[str, Any] | None = None,
    proposal: str | Path | None = None,
) -> None:
    """Copy a world-model file (or run dir) to ``out`` with tuned planner defaults and the recipe that
    built it recorded inside, so ``--model out`` plans with those settings and says how it was made.
    ``proposal``: a proposal file to embed, refused unless it was trained on this model's encoder.
    This is how the shipped default model is written (``make default-model``)."""
    obj = read_model(_resolve(source), "world_model")
    if proposal is not None:
        from .proposal import PROPOSAL_KIND

        prop = read_model(proposal, PROPOSAL_KIND)
        want, got = (obj.get("encoder") or {}).get("weights_hash"), (prop.get("encoder") or {}).get("weights_hash")
        if want != got:
            raise CheckpointError(f"proposal {proposal} was trained on features of encoder [{got}], the world model "
                                  f"{source} on [{want}]; train the proposal on caches encoded with the model's encoder")
        obj["proposal"] = prop
    obj["planner"] = {**dict(obj.get("planner") or {}), **dict(planner)}
    if recipe is not None:
        obj["info"] = {**dict(obj.get("info") or {}), "recipe": dict(recipe)}
    from .checkpoints import save_file

    save_file(obj, out)
