"""Reading and writing weight files safely, for every model in simjepa.

Users load checkpoints from the internet and from half-finished runs, so every load goes through
:func:`load_file`: ``torch.load(weights_only=True)`` (a pickle can never run code) or safetensors,
with truncation, corruption and foreign payloads turned into a one-line :class:`CheckpointError`.
:func:`load_weights` then reports missing, unexpected and mis-shaped keys by name instead of
PyTorch's wall of text. Our own checkpoints are one file: ``{"format", "version", "config",
"state_dict", ...extra}`` so a file alone is enough to rebuild its model.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
from torch import nn

from simjepa_core.errors import SimjepaError
from simjepa_core.atomic import atomic_path, write_text

FORMAT_VERSION = 1
OFFICIAL_PREFIXES = ("module.", "backbone.", "_orig_mod.")


class CheckpointError(SimjepaError):
    """A weight file that cannot be used: missing, corrupt, unsafe or for another model."""


def load_file(path: str | os.PathLike) -> dict[str, Any]:
    """Load a ``.pt``/``.pth`` (weights only) or ``.safetensors`` file onto the CPU."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}: check the path")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file as load_safetensors

            return load_safetensors(str(path), device="cpu")
        with warnings.catch_warnings():  # a plain (non-torch) pickle makes torch warn about its protocol: one line only
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "allowed global" not in str(exc) and "GLOBAL" not in str(exc):  # junk bytes, not a foreign object
            raise CheckpointError(
                f"cannot read checkpoint {path}: not a PyTorch or safetensors file, or corrupt "
                f"(the unpickler stopped at an invalid opcode); re-download or re-create it"
            ) from None
        raise CheckpointError(
            f"refusing to load {path}: it holds Python objects, not only tensors (a pickle that could run "
            f"code); re-save it as a plain state dict or safetensors ({_blocked_global(exc)})"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise CheckpointError(
            f"cannot read checkpoint {path}: the file is truncated or corrupt ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:120] if str(exc) else 'no detail'}); re-download or re-create it"
        ) from None
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"cannot read checkpoint {path}: {type(exc).__name__}: {exc}") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, expected a dict of tensors")
    return obj


def _blocked_global(exc: Exception) -> str:
    """The name of the global the weights-only unpickler refused, for the error message."""
    for line in str(exc).splitlines():
        if "GLOBAL" in line:
            return line.strip()[:160]
    return "a non-tensor object"


def save_file(obj: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Write atomically (temp file + rename) so an interrupted save never leaves a broken file."""
    with atomic_path(path) as tmp:
        torch.save(dict(obj), tmp)


def truncate_log(path: str | os.PathLike, step: int) -> None:
    """On resume, drop JSONL log rows written after the checkpoint (``"step" > step``), atomically, so
    the log reads as one uninterrupted run (training and pretraining logs alike)."""
    path = Path(path)
    if not path.is_file():
        return
    keep = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line).get("step", 0) <= step]
    write_text(path, "".join(line + "\n" for line in keep))


def strip_prefixes(state_dict: Mapping[str, torch.Tensor], prefixes: Iterable[str] = OFFICIAL_PREFIXES) -> dict:
    """Remove wrapper prefixes (DDP ``module.``, ``backbone.``, compile's ``_orig_mod.``) repeatedly."""
    prefixes = tuple(prefixes)
    out = {}
    for key, value in state_dict.items():
        stripped = True
        while stripped:
            stripped = False
            for p in prefixes:
                if key.startswith(p):
                    key, stripped = key[len(p) :], True
        out[key] = value
    return out


def load_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor], what: str) -> None:
    """Strictly load ``state_dict`` into ``model``, naming every mismatch in one line."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [
        f"{k} {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    problems = []
    for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
        if keys:
            shown = ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise CheckpointError(f"{what} does not match the model: " + "; ".join(problems))
    model.load_state_dict({k: state_dict[k] for k in expected}, strict=True)


def weights_hash(state_dict: Mapping[str, torch.Tensor]) -> str:
    """A short content hash of a state dict (names, shapes, dtypes, bytes), stable across saves."""
    h = hashlib.sha256()
    for key in sorted(state_dict):
        t = state_dict[key].detach().cpu().contiguous()
        h.update(f"{key}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def save_model(path: str | os.PathLike, kind: str, config: Mapping[str, Any], model: nn.Module, **extra: Any) -> None:
    """Save one of our checkpoints: config + fp32 weights + anything JSON-like in ``extra``."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_file({"format": f"simjepa/{kind}", "version": FORMAT_VERSION, "config": dict(config),
               "state_dict": state, **extra}, path)


def read_model(path: str | os.PathLike, kind: str) -> dict[str, Any]:
    """Load one of our checkpoints of ``kind``, refusing files of another kind or version."""
    obj = load_file(path)
    fmt = obj.get("format")
    if fmt != f"simjepa/{kind}":
        raise CheckpointError(
            f"{path} is not a simjepa {kind} checkpoint (format {fmt!r}); pass a {kind} checkpoint"
        )
    if obj.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint version {obj.get('version')}, this simjepa reads {FORMAT_VERSION}")
    if not isinstance(obj.get("config"), dict) or not isinstance(obj.get("state_dict"), dict):
        raise CheckpointError(f"{path} lacks its config or weights; it was not written by simjepa")
    return obj
