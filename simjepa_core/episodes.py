"""On-disk episode format: the interface between ``envs`` (writes) and ``world_model`` (reads).

A dataset is a directory::

    manifest.json          {"version": 1, "env_id", "render_size", "episodes" (complete count),
                            "action_dim", "state_dim", "policy", "seed_start", "max_episode_steps"}
    episode_000000.npz     one file per episode, index i recorded from reset(seed=seed_start + i)
    episode_000001.npz
    ...

Each ``.npz`` holds (T = number of actions):

    frames   uint8   [T+1, H, W, 3]  observation before each action, then the final one
    actions  float32 [T, A]
    states   float32 [T+1, S]        obs["state"] aligned with frames; the first PROPRIO_DIM = 7 are
                                     the arm's proprioception (ee position, orientation, gripper)
    success  bool    [T+1]           info["success"] aligned with frames
    distance float32 [T+1]           info["distance"] aligned with frames
    seed     int64   []              the reset seed
    expert_actions float32 [T, A]    optional (``--policy dart``): the scripted controller's clean action
                                     at each visited state, while ``actions`` holds the noisy one executed

Files are written to a temporary name and renamed (``os.replace``), so a file named
``episode_*.npz`` is always complete; the zip entries carry a fixed timestamp, so the same episode
gives byte-identical files. Indices may have gaps after an interrupted run: readers use
:func:`complete_episode_indices`, not ``range(manifest["episodes"])``.
"""
from __future__ import annotations

import io
import json
import os
import re
import zipfile
from dataclasses import dataclass

import numpy as np

from simjepa_core.errors import SimjepaError
from simjepa_core.atomic import atomic_path
from simjepa_core.state_layout import PROPRIO_DIM

FORMAT_VERSION = 1
# ``states`` start with the arm's proprioception: end-effector position (3), orientation (3, euler
# xyz) and gripper opening (1). Env-specific entries (object pose, target) may follow; models read
# only this prefix, so datasets of different tasks share one state layout.
MANIFEST = "manifest.json"
MANIFEST_KEYS = (
    "version", "env_id", "render_size", "episodes", "action_dim", "state_dim", "policy", "seed_start",
    "max_episode_steps",
)
_NAME = re.compile(r"^episode_(\d{6})\.npz$")
_FIELDS = ("frames", "actions", "states", "success", "distance", "seed")
EXPERT_FIELD = "expert_actions"  # optional
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class DatasetError(SimjepaError):
    """A dataset directory or episode file that cannot be used."""


@dataclass
class Episode:
    frames: np.ndarray  # uint8 [T+1, H, W, 3]
    actions: np.ndarray  # float32 [T, A]
    states: np.ndarray  # float32 [T+1, S]
    success: np.ndarray  # bool [T+1]
    distance: np.ndarray  # float32 [T+1]
    seed: int
    expert_actions: np.ndarray | None = None  # float32 [T, A]: labels for behaviour cloning (dart data only)

    def __post_init__(self) -> None:
        self.frames = np.asarray(self.frames, dtype=np.uint8)
        self.actions = np.asarray(self.actions, dtype=np.float32)
        self.states = np.asarray(self.states, dtype=np.float32)
        self.success = np.asarray(self.success, dtype=bool)
        self.distance = np.asarray(self.distance, dtype=np.float32)
        self.seed = int(self.seed)
        if self.expert_actions is not None:
            self.expert_actions = np.asarray(self.expert_actions, dtype=np.float32)
        self.validate()

    @property
    def num_steps(self) -> int:
        return int(self.actions.shape[0])

    def validate(self, where: str = "episode") -> None:
        t = self.actions.shape[0] if self.actions.ndim == 2 else -1
        problems = []
        if self.actions.ndim != 2:
            problems.append(f"actions must be [T, A], got {self.actions.shape}")
        if self.frames.ndim != 4 or self.frames.shape[-1] != 3 or self.frames.shape[0] != t + 1:
            problems.append(f"frames must be [T+1, H, W, 3] with T={t}, got {self.frames.shape}")
        if self.states.ndim != 2 or self.states.shape[0] != t + 1:
            problems.append(f"states must be [T+1, S], got {self.states.shape}")
        for name in ("success", "distance"):
            if getattr(self, name).shape != (t + 1,):
                problems.append(f"{name} must be [T+1], got {getattr(self, name).shape}")
        if self.expert_actions is not None and self.expert_actions.shape != self.actions.shape:
            problems.append(f"expert_actions must match actions {self.actions.shape}, got {self.expert_actions.shape}")
        if problems:
            raise DatasetError(f"{where}: {'; '.join(problems)}")


def episode_path(directory: str, index: int) -> str:
    return os.path.join(directory, f"episode_{index:06d}.npz")


def _atomic_write_bytes(path: str, payload: bytes) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())  # an episode is the unit of resume: make it durable before it is named


def write_episode(directory: str, index: int, episode: Episode) -> str:
    """Atomically write ``episode`` as ``episode_{index:06d}.npz``; returns the path."""
    episode.validate()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name in _FIELDS + (() if episode.expert_actions is None else (EXPERT_FIELD,)):
            value = np.asarray(getattr(episode, name), dtype=np.int64 if name == "seed" else None)
            arr_buf = io.BytesIO()
            np.lib.format.write_array(arr_buf, value, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, arr_buf.getvalue(), compresslevel=1)
    path = episode_path(directory, index)
    _atomic_write_bytes(path, buf.getvalue())
    return path


def load_episode(directory: str, index: int) -> Episode:
    """Read one episode; a truncated, corrupt or malformed file raises :class:`DatasetError` naming it."""
    path = episode_path(directory, index)
    if not os.path.exists(path):
        raise DatasetError(f"{path} does not exist; list episodes with complete_episode_indices()")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in _FIELDS if k not in z.files]
            if missing:
                raise DatasetError(f"{path} is missing {', '.join(missing)}; delete it and re-run collect")
            data = {k: z[k] for k in _FIELDS}
            expert = z[EXPERT_FIELD] if EXPERT_FIELD in z.files else None
    except DatasetError:
        raise
    except Exception as exc:  # zipfile.BadZipFile, ValueError, EOFError, zlib.error, OSError ...
        raise DatasetError(f"{path} is corrupt ({type(exc).__name__}); delete it and re-run collect") from None
    try:
        return Episode(**{k: data[k] for k in _FIELDS[:-1]}, seed=int(data["seed"]), expert_actions=expert)
    except DatasetError as exc:
        raise DatasetError(f"{path} is malformed ({exc}); delete it and re-run collect") from None


def complete_episode_indices(directory: str) -> list[int]:
    """Sorted indices of finished episode files (temporary files from an interrupted write are ignored).

    A file with a final name whose zip directory does not read raises :class:`DatasetError`.
    """
    if not os.path.isdir(directory):
        raise DatasetError(f"{directory} is not a directory; point to a dataset written by `simjepa collect`")
    out = []
    for name in os.listdir(directory):
        m = _NAME.match(name)
        if not m:
            continue
        path = os.path.join(directory, name)
        try:
            with zipfile.ZipFile(path) as zf:
                names = set(zf.namelist())
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise DatasetError(f"{path} is corrupt ({type(exc).__name__}); delete it and re-run collect") from None
        if not {f"{k}.npy" for k in _FIELDS} <= names:
            raise DatasetError(f"{path} is incomplete; delete it and re-run collect")
        out.append(int(m.group(1)))
    return sorted(out)


def write_manifest(directory: str, manifest: dict) -> None:
    missing = [k for k in MANIFEST_KEYS if k not in manifest]
    if missing:
        raise ValueError(f"manifest lacks {missing}")
    _atomic_write_bytes(os.path.join(directory, MANIFEST), (json.dumps(manifest, indent=2) + "\n").encode())


def read_manifest(directory: str) -> dict:
    path = os.path.join(directory, MANIFEST)
    if not os.path.exists(path):
        raise DatasetError(f"{path} not found; is {directory} a dataset written by `simjepa collect`?")
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path} is not valid JSON ({exc.__class__.__name__}); delete the dataset and re-collect") from None
    missing = [k for k in MANIFEST_KEYS if k not in manifest]
    if missing:
        raise DatasetError(f"{path} lacks keys {', '.join(missing)}; it was not written by this version of collect")
    if manifest["version"] != FORMAT_VERSION:
        raise DatasetError(f"{path} has format version {manifest['version']}, this code reads {FORMAT_VERSION}")
    return manifest
