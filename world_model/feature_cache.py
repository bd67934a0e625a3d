"""Feature cache: every frame of an episode dataset encoded once by the frozen encoder.

Training the predictor reads only this cache, never pixels: per episode one fp16 ``.npy`` of
features ``[T+1, N, D]`` (memory-mapped on read, so a dataset larger than RAM trains fine) and one
``.npz`` with copies of the actions, states and proprio. ``manifest.json`` records which encoder
(name, config, weights hash), image size and token grid produced the features, so features from
two different encoders can never be mixed: appending to or training from a cache with another
encoder is refused.

Layout of ``OUT/``::

    manifest.json                  format, encoder identity, image_size, grid, token_pool, dim, source (with camera), episodes
    episode_000000.feats.npy       float16 [T+1, N, D]
    episode_000000.npz             actions f32 [T, A], states f32 [T+1, S], proprio f32 [T+1, 7],
                                   success bool [T+1], distance f32 [T+1] (copied from the source),
                                   expert_actions f32 [T, A] where the source has them (``--policy dart``)

Writes are atomic (temp file + rename) and the ``.npz`` is written after the features, so its
presence marks a finished episode: a killed run resumes by skipping those. Under
``torchrun --nproc-per-node K`` rank r encodes episodes ``i % K == r``; the manifest is rewritten
from what is on disk under a file lock (or by rank 0 after a barrier when torch.distributed is
initialised), so every episode appears exactly once whatever order the ranks finish in.
"""
from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch

from simjepa_core.errors import SimjepaError
from simjepa_core.atomic import atomic_path
from simjepa_core.episodes import EXPERT_FIELD, PROPRIO_DIM, complete_episode_indices, load_episode, read_manifest
from world_model.encoder import VideoViT
from world_model.encoder_loading import encoder_identity
from world_model.frozen_encoder import FrozenEncoder

CACHE_FORMAT = "simjepa/feature_cache"
CACHE_VERSION = 1
MANIFEST = "manifest.json"


class FeatureCacheError(SimjepaError):
    """A feature cache that is missing, damaged, incomplete or built by another encoder."""


def feats_path(root: Path, index: int) -> Path:
    return root / f"episode_{index:06d}.feats.npy"


def arrays_path(root: Path, index: int) -> Path:
    return root / f"episode_{index:06d}.npz"


def _atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)


def _savez_reproducible(f: Any, **arrays: np.ndarray) -> None:
    """``np.savez`` with a fixed zip timestamp: the same episode gives byte-identical files (a resumed
    run equals an uninterrupted one, file for file)."""
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, value in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(value), allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buf.getvalue())


def _write_json(path: Path, obj: Mapping[str, Any]) -> None:
    _atomic_write(path, lambda f: f.write((json.dumps(obj, indent=2) + "\n").encode()))


def _same_config(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Config equality that survives a JSON round trip (floats such as 48/11 compare with tolerance)."""
    if set(a) != set(b):
        return False
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, float) or isinstance(y, float):
            if not isinstance(x, (int, float)) or not isinstance(y, (int, float)) or abs(x - y) > 1e-9 * max(1, abs(x)):
                return False
        elif x != y:
            return False
    return True


@dataclass
class FeatureCache:
    """A finished (or partly finished) cache on disk; see the module docstring for the layout."""

    root: Path
    manifest: dict[str, Any]

    @classmethod
    def open(cls, root: str | os.PathLike) -> "FeatureCache":
        root = Path(root)
        path = root / MANIFEST
        if not path.is_file():
            raise FeatureCacheError(
                f"no feature cache at {root} (no {MANIFEST}); build one with `simjepa encode --data DIR --encoder NAME "
                f"--out {root}`"
            )
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise FeatureCacheError(f"cannot read {path}: {exc}; rebuild the cache with `simjepa encode`") from None
        if not isinstance(manifest, dict) or manifest.get("format") != CACHE_FORMAT:
            raise FeatureCacheError(f"{root} is not a simjepa feature cache ({MANIFEST} has another format)")
        if manifest.get("version") != CACHE_VERSION:
            raise FeatureCacheError(
                f"{root} has feature cache version {manifest.get('version')}, this simjepa reads {CACHE_VERSION}; "
                f"rebuild it with `simjepa encode`"
            )
        return cls(root, manifest)

    # --- what the cache holds ------------------------------------------------------------------
    @property
    def encoder(self) -> dict[str, Any]:
        """``{"name", "config", "weights_hash"}`` of the encoder that built the cache."""
        return self.manifest["encoder"]

    @property
    def grid(self) -> tuple[int, int]:
        return tuple(self.manifest["grid"])  # type: ignore[return-value]

    @property
    def token_pool(self) -> int:
        """k when each feature token averages k x k patch tokens (1, the official layout, in older caches)."""
        return int(self.manifest.get("token_pool", 1))

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.manifest["image_size"])  # type: ignore[return-value]

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @property
    def tokens_per_frame(self) -> int:
        return int(self.manifest["tokens_per_frame"])

    @property
    def episodes(self) -> list[int]:
        """Source episode indices present in the cache, ascending."""
        return [int(e["index"]) for e in self.manifest["episodes"]]

    @property
    def complete(self) -> bool:
        """True when every complete episode of the source dataset (at build time) is cached."""
        return bool(self.manifest.get("complete"))

    def __len__(self) -> int:
        return len(self.manifest["episodes"])

    def _arrays(self, index: int) -> np.lib.npyio.NpzFile:
        if index not in set(self.episodes):
            raise FeatureCacheError(
                f"episode {index} is not in the feature cache {self.root} (it holds {len(self)} episodes); "
                f"re-run `simjepa encode` to add it"
            )
        try:
            return np.load(arrays_path(self.root, index))
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # a cut .npz is a BadZipFile
            raise FeatureCacheError(f"episode {index} of cache {self.root} is unreadable ({exc}); re-run `simjepa encode`") from None

    def episode(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(features fp16 memmap [T+1, N, D], actions f32 [T, A], states f32 [T+1, S])``."""
        with self._arrays(index) as a:
            actions, states = a["actions"], a["states"]
        try:
            feats = np.load(feats_path(self.root, index), mmap_mode="r")
        except (OSError, ValueError) as exc:  # missing or cut shard: "mmap length is greater than file size"
            raise FeatureCacheError(
                f"episode {index} of cache {self.root}: features unreadable ({exc}); re-run `simjepa encode` to rebuild it"
            ) from None
        if feats.shape != (states.shape[0], self.tokens_per_frame, self.dim):
            raise FeatureCacheError(
                f"episode {index} of cache {self.root} has features {feats.shape}, expected "
                f"({states.shape[0]}, {self.tokens_per_frame}, {self.dim}); re-run `simjepa encode`"
            )
        return feats, actions, states

    def expert_actions(self, index: int) -> np.ndarray | None:
        """The expert's clean actions ``[T, A]`` for a ``--policy dart`` episode; ``None`` where none were recorded."""
        with self._arrays(index) as a:
            return a[EXPERT_FIELD] if EXPERT_FIELD in a.files else None

    def proprio(self, index: int) -> np.ndarray:
        """Proprioception ``[T+1, 7]``: the first 7 state entries (end-effector pose and gripper)."""
        with self._arrays(index) as a:
            return a["proprio"]

    def outcome(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(success bool [T+1], distance f32 [T+1])`` per frame, copied from the source episode."""
        with self._arrays(index) as a:
            return a["success"], a["distance"]

    def check_encoder(self, name: str, config: Mapping[str, Any], weights_hash: str) -> None:
        """Refuse an encoder other than the one that built this cache (config or weights differ).

        The name alone is not compared: the same weights reached by another path are the same
        encoder. It appears in the message so the user knows which one the cache wants.
        """
        built = self.encoder
        problems = []
        if not _same_config(dict(config), built["config"]):
            diff = sorted(k for k in set(config) | set(built["config"]) if config.get(k) != built["config"].get(k))
            problems.append(f"config differs in {', '.join(diff)}")
        if weights_hash != built["weights_hash"]:
            problems.append(f"weights hash {weights_hash} != {built['weights_hash']}")
        if problems:
            raise FeatureCacheError(
                f"feature cache {self.root} was built by encoder {built['name']!r}, not {name!r} ({'; '.join(problems)}); "
                f"use that encoder or build a new cache with another --out"
            )


# --- building ----------------------------------------------------------------------------------


def _episode_arrays(ep: Any) -> dict[str, np.ndarray]:
    """Frames/actions/states/success/distance from what ``simjepa_core.episodes.load_episode`` returns."""
    get = ep.__getitem__ if isinstance(ep, Mapping) else (lambda k: getattr(ep, k))
    try:
        arrays = {k: np.asarray(get(k)) for k in ("frames", "actions", "states", "success", "distance")}
    except (KeyError, AttributeError) as exc:
        raise FeatureCacheError(f"source episode lacks {exc}; is it an episode written by `simjepa collect`?") from None
    expert = ep.get(EXPERT_FIELD) if isinstance(ep, Mapping) else getattr(ep, EXPERT_FIELD, None)
    if expert is not None:
        arrays[EXPERT_FIELD] = np.asarray(expert, np.float32)
    return arrays


def _distributed() -> tuple[int, int, bool]:
    """(rank, world size, whether we initialised torch.distributed ourselves).

    Under ``torchrun`` (MASTER_ADDR set) a gloo group is set up so ranks can meet at a barrier;
    with only RANK/WORLD_SIZE set (e.g. a job array) ranks coordinate through the file lock.
    """
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world < 1 or not 0 <= rank < world:
        raise SimjepaError(f"bad RANK={rank} / WORLD_SIZE={world} in the environment; unset them or fix the launcher")
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), False
    if world > 1 and "MASTER_ADDR" in os.environ and dist.is_available():
        dist.init_process_group("gloo")
        return dist.get_rank(), dist.get_world_size(), True
    return rank, world, False


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    with open(root / ".manifest.lock", "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _is_done(root: Path, index: int, frames: int | None, n: int, d: int) -> bool:
    if not arrays_path(root, index).is_file():
        return False
    try:
        f = np.load(feats_path(root, index), mmap_mode="r")
        with np.load(arrays_path(root, index)) as a:  # a damaged .npz is re-encoded, not skipped
            if not {"actions", "states"} <= set(a.files):
                return False
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return False
    return f.dtype == np.float16 and f.shape[1:] == (n, d) and (frames is None or f.shape[0] == frames)


def _scan_done(root: Path, indices: list[int], n: int, d: int) -> list[dict[str, int]]:
    rows = []
    for i in indices:
        if _is_done(root, i, None, n, d):
            frames = np.load(feats_path(root, i), mmap_mode="r").shape[0]
            rows.append({"index": i, "frames": int(frames), "steps": int(frames) - 1})
    return rows


def build_feature_cache(
    data: str | os.PathLike,
    encoder: VideoViT,
    out: str | os.PathLike,
    *,
    image_size: int | tuple[int, int] | None = None,
    token_pool: int = 1,
    batch_size: int = 32,
    precision: str = "bf16",
    compile: bool = False,
    device: str | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    progress: bool = True,
) -> FeatureCache:
    """Encode every complete episode of ``data`` into a cache at ``out`` (resumable, shardable).

    ``rank``/``world_size`` default to the torchrun environment (RANK, WORLD_SIZE). Returns the
    cache as this rank last saw it (complete once the last rank finishes).
    """
    data, root = Path(data), Path(out)
    source_manifest = read_manifest(str(data))
    wanted = sorted(int(i) for i in complete_episode_indices(str(data)))
    own_dist = False
    if rank is None or world_size is None:
        rank, world_size, own_dist = _distributed()
    if device is None and torch.cuda.is_available():
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    frozen = FrozenEncoder(encoder, image_size, batch_size=batch_size, precision=precision, compile=compile, device=device,
                           token_pool=token_pool)
    ident = encoder_identity(encoder)
    n, d = frozen.tokens_per_frame, frozen.dim
    header = {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "encoder": ident,
        "image_size": list(frozen.image_size),
        "grid": list(frozen.grid),
        "token_pool": frozen.token_pool,
        "tokens_per_frame": n,
        "dim": d,
        "dtype": "float16",
        "preprocessing": "bilinear antialiased resize, ImageNet mean/std, each frame as a 2-frame clip",
        "source": {
            "path": str(data.resolve()),
            "env_id": source_manifest.get("env_id"),
            "render_size": source_manifest.get("render_size"),
            "camera": source_manifest.get("camera", "front"),  # datasets from before cameras: front
        },
        "action_dim": source_manifest.get("action_dim"),
        "state_dim": source_manifest.get("state_dim"),
        "proprio_dim": PROPRIO_DIM,
    }
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root):
        if (root / MANIFEST).is_file():
            existing = FeatureCache.open(root)
            existing.check_encoder(ident["name"], ident["config"], ident["weights_hash"])
            old = existing.manifest
            if (list(old["image_size"]) != header["image_size"] or old["source"]["path"] != header["source"]["path"]
                    or existing.token_pool != frozen.token_pool):
                raise FeatureCacheError(
                    f"feature cache {root} holds {old['source']['path']} at {old['image_size']} px, token pool "
                    f"{existing.token_pool}, not {header['source']['path']} at {header['image_size']} px, token pool "
                    f"{frozen.token_pool}; pass another --out"
                )
        else:
            _write_json(root / MANIFEST, {**header, "episodes": [], "complete": False})

    mine = [i for i in wanted if i % world_size == rank]
    todo = [i for i in mine if not _is_done(root, i, None, n, d)]
    from tqdm import tqdm

    bar = tqdm(total=len(mine), initial=len(mine) - len(todo), unit="ep", disable=not progress,
               desc=f"encode{f' rank {rank}' if world_size > 1 else ''}", position=rank if world_size > 1 else None)
    frames_done, t0 = 0, time.perf_counter()
    for i in todo:
        ep = _episode_arrays(load_episode(str(data), i))
        feats = frozen.encode(ep["frames"]).numpy().astype(np.float16)  # [T+1, N, D]
        if not np.isfinite(feats).all():
            raise FeatureCacheError(f"episode {i}: encoder features overflow float16; check the encoder weights")
        states = ep["states"].astype(np.float32)
        _atomic_write(feats_path(root, i), lambda f: np.save(f, feats))
        _atomic_write(arrays_path(root, i), lambda f: _savez_reproducible(
            f, actions=ep["actions"].astype(np.float32), states=states, proprio=states[:, :PROPRIO_DIM],
            success=np.asarray(ep["success"], bool), distance=np.asarray(ep["distance"], np.float32),
            **({EXPERT_FIELD: ep[EXPERT_FIELD]} if EXPERT_FIELD in ep else {})))
        frames_done += feats.shape[0]
        bar.set_postfix(frames_per_s=f"{frames_done / (time.perf_counter() - t0):.1f}")
        bar.update(1)
    bar.close()

    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        if dist.get_rank() == 0:
            _finish_manifest(root, wanted, n, d)
        dist.barrier()
        if own_dist:
            dist.destroy_process_group()
    else:
        _finish_manifest(root, wanted, n, d)
    return FeatureCache.open(root)


def _finish_manifest(root: Path, wanted: list[int], n: int, d: int) -> None:
    """Rewrite the episode list from the files on disk (under the lock: last writer sees all)."""
    with _locked(root):
        manifest = json.loads((root / MANIFEST).read_text())
        rows = _scan_done(root, wanted, n, d)
        manifest["episodes"] = rows
        manifest["complete"] = len(rows) == len(wanted)
        _write_json(root / MANIFEST, manifest)
