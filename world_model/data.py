"""What predictor training reads: episodes of frozen-encoder features, actions and states, and the
windows it samples from them.

A source is anything shaped like :class:`EpisodeSource`: a feature cache written by ``simjepa encode``
(:class:`world_model.feature_cache.FeatureCache`), several caches of one encoder as one
(:class:`MultiSource`), or in-memory arrays (:class:`ArraySource`). Training windows are sampled by
:class:`WindowSampler`, whose whole state is the step counter, so a resumed run sees the same batches.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

import numpy as np
import torch

from simjepa_core.episodes import PROPRIO_DIM
from simjepa_core.errors import SimjepaError
from simjepa_core.state_layout import GRIPPER


class TrainError(SimjepaError):
    """Training inputs that cannot be used (cache, dimensions, resume state)."""


class EpisodeSource(Protocol):
    """What training reads: a feature cache or anything shaped like one."""

    manifest: Mapping[str, Any]

    def __len__(self) -> int: ...

    @property
    def episodes(self) -> list[int]:
        """Episode ids accepted by :meth:`episode`."""
        ...

    def episode(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(feats [T+1, N, D] fp16, actions [T, A], states [T+1, S])``."""
        ...


class ArraySource:
    """In-memory episodes, for tests and for API users training from their own arrays.

    ``manifest`` should carry ``encoder`` ({name, config, weights_hash}) and ``grid`` like a cache's.
    """

    def __init__(self, episodes: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], manifest: Mapping[str, Any]):
        self._data = list(episodes)
        self.manifest = dict(manifest)

    def __len__(self) -> int:
        return len(self._data)

    @property
    def episodes(self) -> list[int]:
        return list(range(len(self._data)))

    def episode(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self._data[i]


class MultiSource:
    """Several feature caches of the same encoder trained on as one (a multi-task world model).

    Episode ids are renumbered consecutively; the manifest is the first cache's with ``env_ids``
    and ``paths`` listing all of them. Caches from different encoders or grids are refused, since
    their features live in different spaces.
    """

    def __init__(self, sources: Sequence[EpisodeSource]):
        first = sources[0].manifest
        for src in sources[1:]:
            m = src.manifest
            if m.get("encoder", {}).get("weights_hash") != first.get("encoder", {}).get("weights_hash"):
                raise TrainError(
                    f"feature caches {first.get('path')} and {m.get('path')} come from different encoders; "
                    f"encode every dataset with the same --encoder"
                )
            if list(m.get("grid") or []) != list(first.get("grid") or []):
                raise TrainError(f"feature caches {first.get('path')} and {m.get('path')} have different token grids")
            if (list(m.get("image_size") or []), m.get("token_pool", 1)) != (list(first.get("image_size") or []),
                                                                          first.get("token_pool", 1)):
                raise TrainError(
                    f"feature caches {first.get('path')} and {m.get('path')} were encoded at different image sizes or "
                    f"token pools; encode every dataset with the same --image-size and --token-pool"
                )
        self._index = [(src, i) for src in sources for i in src.episodes]
        env_ids = [(s.manifest.get("source") or {}).get("env_id") or s.manifest.get("env_id") for s in sources]
        paths = [str(getattr(s, "root", None) or s.manifest.get("path")) for s in sources]
        cameras = list(dict.fromkeys(c for s in sources for c in source_cameras(s.manifest)))
        self.manifest = {**first, "env_ids": list(dict.fromkeys(e for e in env_ids if e)), "paths": paths,
                         "cameras": cameras}

    def __len__(self) -> int:
        return len(self._index)

    @property
    def episodes(self) -> list[int]:
        return list(range(len(self._index)))

    def episode(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        src, j = self._index[i]
        return src.episode(j)


def open_features(paths: str | Path | Sequence[str | Path]) -> EpisodeSource:
    """Open one feature cache directory written by ``simjepa encode``, or several as one source."""
    from .feature_cache import FeatureCache

    if isinstance(paths, (str, Path)):
        return FeatureCache.open(paths)
    caches = [FeatureCache.open(p) for p in paths]
    return caches[0] if len(caches) == 1 else MultiSource(caches)


def source_cameras(manifest: Mapping[str, Any]) -> list[str]:
    """The env cameras a training source's frames came from, in the order the sources were given.

    One predictor learns every view (each window is one camera's frames); the world model plans
    with all of them, averaging the goal energy over views.
    """
    return list(manifest.get("cameras") or [(manifest.get("source") or {}).get("camera", "front")])


# --- what a source holds and the windows training samples -------------------------------------
def split_episodes(ids: Sequence[int], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Held-out episodes by a seeded permutation; at least one of each when both are possible."""
    n = len(ids)
    order = [int(ids[i]) for i in np.random.default_rng(seed).permutation(n)]
    n_val = 0 if val_fraction <= 0 or n < 2 else min(n - 1, max(1, round(val_fraction * n)))
    return sorted(order[n_val:]), sorted(order[:n_val])


class WindowSampler:
    """Uniform over all (episode, start) windows of ``frames`` frames; step ``s`` uses rng([seed, s]).

    ``stride`` k > 1 samples macro-step windows: frames ``start, start+k, ..`` (see :func:`load_windows`).
    """

    def __init__(self, lengths: Mapping[int, int], episodes: Sequence[int], frames: int, seed: int, stride: int = 1):
        self.frames, self.seed, self.stride = frames, seed, stride
        span = (frames - 1) * stride + 1  # env frames one window covers
        self.index = np.array([(e, s) for e in episodes for s in range(lengths[e] - span + 1)], dtype=np.int64)
        if len(self.index) == 0:
            raise TrainError(
                f"no training episode has the {span} frames a window needs ((context/rollout) x macro steps + 1); "
                f"lower --context/--rollout/--macro-steps or collect longer episodes"
            )

    def windows(self, step: int, size: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, step])
        return self.index[rng.integers(0, len(self.index), size)]  # [size, 2]


def macro_actions(actions: np.ndarray) -> np.ndarray:
    """One macro-action for each run of k env actions: ``[..., k, A] -> [..., A]``.

    The mean of the k actions (so it stays in the env's action box, and k times it is the summed
    motion), except the 7-D V-JEPA 2-AC action's gripper, an absolute command, which takes the last
    value. A macro-step model predicts the frame k env steps ahead from this action.
    """
    out = actions.mean(axis=-2)
    if actions.shape[-1] == PROPRIO_DIM:
        out[..., GRIPPER] = actions[..., -1, GRIPPER]
    return out


def load_windows(source: EpisodeSource, windows: np.ndarray, frames: int, state_dim: int,
                 stride: int = 1) -> tuple[torch.Tensor, ...]:
    """Stack windows into ``feats [B, L, N, D]`` fp32, ``actions [B, L-1, A]``, ``states [B, L, S]``.

    ``stride`` k: every k-th frame from the start and the :func:`macro_actions` of the k actions
    between consecutive ones (k = 1: the plain window).
    """
    f, a, s = [], [], []
    span = (frames - 1) * stride + 1
    for e, start in windows.tolist():
        feats, actions, states = source.episode(int(e))
        f.append(np.asarray(feats[start : start + span : stride], dtype=np.float32))
        acts = np.asarray(actions[start : start + span - 1], dtype=np.float32)  # [(L-1) k, A]
        a.append(macro_actions(acts.reshape(frames - 1, stride, acts.shape[-1])) if stride > 1 else acts)
        s.append(np.asarray(states[start : start + span : stride, :state_dim], dtype=np.float32))
    return torch.from_numpy(np.stack(f)), torch.from_numpy(np.stack(a)), torch.from_numpy(np.stack(s))


def describe_source(source: EpisodeSource) -> dict[str, Any]:
    """Dims and lengths of a source, checked for consistency."""
    if len(source) == 0:
        raise TrainError("the feature cache holds no episodes; encode some data first (simjepa encode)")
    lengths, dims = {}, None
    for i in source.episodes:
        feats, actions, states = source.episode(i)
        if feats.ndim != 3 or actions.ndim != 2 or states.ndim != 2:
            raise TrainError(f"episode {i}: expected feats [T+1, N, D], actions [T, A], states [T+1, S]")
        if not (len(feats) == len(states) == len(actions) + 1):
            raise TrainError(
                f"episode {i}: {len(feats)} feature frames, {len(actions)} actions and {len(states)} states; "
                f"need T+1, T and T+1: rebuild the cache"
            )
        # only the proprioceptive prefix of the state is used, so tasks with extra state entries mix freely
        d = (feats.shape[1], feats.shape[2], actions.shape[1], min(states.shape[1], PROPRIO_DIM))
        if dims is not None and d != dims:
            raise TrainError(f"episode {i} has (tokens, width, action, state) dims {d}, episode 0 has {dims}: mixed caches")
        dims, lengths[i] = d, len(feats)
    n, d, a, s = dims
    if s < 1:
        raise TrainError("episodes carry no state: the predictor needs proprioceptive states")
    return {"lengths": lengths, "tokens": n, "embed_dim": d, "action_dim": a, "state_dim": s}


def encoder_identity_of(source: EpisodeSource) -> dict[str, Any]:
    enc = source.manifest.get("encoder")
    if not isinstance(enc, Mapping) or not {"name", "config", "weights_hash"} <= set(enc):
        raise TrainError("the feature cache manifest does not name its encoder (name, config, weights_hash); rebuild it with simjepa encode")
    return {"name": enc["name"], "config": dict(enc["config"]), "weights_hash": enc["weights_hash"]}


def grid_of(source: EpisodeSource, tokens: int) -> tuple[int, int]:
    grid = source.manifest.get("grid")
    if grid is not None:
        g = [int(x) for x in grid][-2:]
        if g[0] * g[1] == tokens:
            return g[0], g[1]
    side = math.isqrt(tokens)
    if side * side != tokens:
        raise TrainError(f"cannot tell the patch grid of {tokens} tokens per frame: the cache manifest needs 'grid'")
    return side, side
