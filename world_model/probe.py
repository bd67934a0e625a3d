"""Linear probes of frozen encoder features: does the encoder know where the gripper and cube are?

A planner minimising feature distance can only reach a goal the features encode, so the test of a
small in-domain encoder is whether end-effector and object positions are *linearly* decodable from
its frozen features on held-out episodes. The probe is ridge regression in closed form (a Cholesky
solve per alpha; alpha is chosen on a validation split of episodes, then refit on train + val).
Features per frame are the mean over patches (global content) concatenated with the token grid
average-pooled to ``pool x pool`` cells (where things are). Splits are by episode, never by frame,
so near-duplicate consecutive frames cannot leak between train and test. Episodes whose cube leaves
the visible table (knocked off, or launched metres away by a contact glitch) are dropped and counted:
an unseen object cannot be probed, and one such episode would dominate every squared error.

Every score is also given with the held-out features clipped to the range each standardised feature
took in fitting (``r2_clipped``): a linear map is only fitted on that range, and one held-out episode
whose frames push a rarely-used feature far outside it (|z| of 100+, seen with pretrained encoders)
can otherwise decide the whole test score (one of 60 test episodes made 63 % of the squared error).

R^2 is variance-weighted over the coordinates, ``1 - sum ||y - y_hat||^2 / sum ||y - mean||^2``:
a coordinate that barely varies (the cube's height while it rests on the table) then neither
dominates nor breaks the score, unlike a per-axis average. Per-axis values are reported too.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from simjepa_core.errors import SimjepaError

# The object probe on thousands of standardised features wants strong regularisation; the grid reaches
# far enough that the chosen alpha is not its edge (an edge choice means the grid was too short).
DEFAULT_ALPHAS = (1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6)


class ProbeError(SimjepaError):
    """Bad probe input: too few episodes for the splits, features and targets of unequal length."""


# --- ridge ------------------------------------------------------------------------------------------


def r2_score(y: np.ndarray, y_hat: np.ndarray) -> float:
    """Variance-weighted R^2 of ``[N, K]`` targets (see module docstring)."""
    y, y_hat = np.asarray(y, np.float64), np.asarray(y_hat, np.float64)
    ss_tot = float(((y - y.mean(0)) ** 2).sum())
    if ss_tot <= 0:
        return float("nan")
    return 1.0 - float(((y - y_hat) ** 2).sum()) / ss_tot


def r2_per_axis(y: np.ndarray, y_hat: np.ndarray) -> list[float | None]:
    out = []
    for k in range(y.shape[1]):
        r = r2_score(y[:, k : k + 1], y_hat[:, k : k + 1])
        out.append(None if math.isnan(r) else r)
    return out


@dataclass
class RidgeProbe:
    """``y = ((x - mean) / scale) @ weight + bias``; features standardised with training statistics."""

    mean: np.ndarray  # [F]
    scale: np.ndarray  # [F]
    weight: np.ndarray  # [F, K]
    bias: np.ndarray  # [K]
    alpha: float
    val_r2: dict[float, float] = field(default_factory=dict)
    z_low: np.ndarray | None = None  # [F] per-feature range of the standardised fitting features (for clip=True)
    z_high: np.ndarray | None = None

    def predict(self, x: np.ndarray, clip: bool = False) -> np.ndarray:
        """Predictions; ``clip`` first clips each standardised feature to its fitting range."""
        if clip and (self.z_low is None or self.z_high is None):
            raise ProbeError("this probe was fitted without its feature range; refit it with fit_ridge")
        def rows(c: np.ndarray) -> np.ndarray:
            z = _zscores(c, self.mean, self.scale)
            return (np.clip(z, self.z_low, self.z_high) if clip else z) @ self.weight + self.bias
        return np.concatenate([rows(c) for c in _row_chunks(x)]) if len(x) else np.zeros((0, len(self.bias)))


# Rows per float64 block. The probe never holds a float64 copy of all features at once: the 8 x 8 grid
# at 128 px over 1000 episodes is 12,480 features x 36k training frames, 3.6 GB even in float64 once.
_CHUNK_ROWS = 2048


def _row_chunks(x: np.ndarray) -> list[np.ndarray]:
    return [x[i:i + _CHUNK_ROWS] for i in range(0, len(x), _CHUNK_ROWS)]


def _zscores(x: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return (np.asarray(x, np.float64) - mean) / scale


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std of ``x [N, F]`` in float64, a block of rows at a time."""
    mean = np.zeros(x.shape[1])
    for c in _row_chunks(x):
        mean += np.asarray(c, np.float64).sum(0)
    mean /= len(x)
    var = np.zeros(x.shape[1])
    for c in _row_chunks(x):
        var += ((np.asarray(c, np.float64) - mean) ** 2).sum(0)
    scale = np.sqrt(var / len(x))
    scale[scale < 1e-8] = 1.0
    return mean, scale


def _ridge_solutions(x: np.ndarray, y: np.ndarray, mean: np.ndarray, scale: np.ndarray,
                     alphas: Sequence[float]) -> dict[float, np.ndarray]:
    """Ridge weights for each alpha, on ``x [N, F]`` standardised by ``mean``/``scale`` and centred
    targets ``y [N, K]``.

    Uses the smaller Gram matrix: ``z^T z`` (``F x F``, accumulated a block of rows at a time) when
    N > F, else the kernel ``z z^T`` (``N x N``), which gives the same solution
    (``w = z^T (z z^T + a)^-1 y``). Each alpha is one Cholesky solve of the Gram matrix plus ``a``:
    as fast here as one eigendecomposition serving every alpha, and it needs two copies of the Gram
    matrix instead of about six (12,480 features: 2.5 GB instead of 7.5 GB).
    """
    if x.shape[0] > x.shape[1]:
        gram = np.zeros((x.shape[1], x.shape[1]))  # [F, F]
        zty = np.zeros((x.shape[1], y.shape[1]))  # [F, K]
        for c, yc in zip(_row_chunks(x), _row_chunks(y)):
            z = _zscores(c, mean, scale)
            gram += z.T @ z
            zty += z.T @ yc
        return {a: _solve_shifted(gram, zty, a) for a in alphas}
    z = _zscores(x, mean, scale)  # N <= F: this copy is no bigger than the kernel's inputs
    kernel = z @ z.T  # [N, N]
    return {a: z.T @ _solve_shifted(kernel, y, a) for a in alphas}


def _solve_shifted(gram: np.ndarray, rhs: np.ndarray, alpha: float) -> np.ndarray:
    """``(gram + alpha I)^-1 rhs`` for a symmetric positive semi-definite ``gram``, by Cholesky (float64)."""
    shifted = torch.from_numpy(gram + alpha * np.eye(len(gram)))
    lower, info = torch.linalg.cholesky_ex(shifted)
    if info.item() != 0:  # rounding cost a tiny alpha its definiteness: least squares instead
        return torch.linalg.lstsq(shifted, torch.from_numpy(rhs)).solution.numpy()
    del shifted
    return torch.cholesky_solve(torch.from_numpy(np.ascontiguousarray(rhs)), lower).numpy()


def fit_ridge(
    x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
) -> RidgeProbe:
    """Choose alpha by validation R^2, then refit on train + val with that alpha.

    Features may be float32 (as encoded); every sum runs in float64.
    """
    x_train, x_val = np.asarray(x_train), np.asarray(x_val)
    y_train, y_val = np.asarray(y_train, np.float64), np.asarray(y_val, np.float64)
    if len(x_train) != len(y_train) or len(x_val) != len(y_val):
        raise ProbeError(f"features and targets differ in length ({len(x_train)}/{len(y_train)}, {len(x_val)}/{len(y_val)})")
    if len(x_train) < 2 or len(x_val) < 1:
        raise ProbeError("the probe needs at least 2 training and 1 validation samples; use more --episodes")
    mean, scale = _standardise(x_train)
    y_mean = y_train.mean(0)
    sols = _ridge_solutions(x_train, y_train - y_mean, mean, scale, alphas)
    val_r2 = {a: r2_score(y_val, RidgeProbe(mean, scale, w, y_mean, a).predict(x_val)) for a, w in sols.items()}
    best = max(alphas, key=lambda a: -math.inf if math.isnan(val_r2[a]) else val_r2[a])
    x_all, y_all = np.concatenate([x_train, x_val]), np.concatenate([y_train, y_val])
    mean, scale = _standardise(x_all)
    y_mean = y_all.mean(0)
    weight = _ridge_solutions(x_all, y_all - y_mean, mean, scale, [best])[best]
    z_low, z_high = np.full(x_all.shape[1], np.inf), np.full(x_all.shape[1], -np.inf)
    for c in _row_chunks(x_all):  # a block at a time: no float64 copy of every feature at once
        z = _zscores(c, mean, scale)
        z_low, z_high = np.minimum(z_low, z.min(0)), np.maximum(z_high, z.max(0))
    return RidgeProbe(mean=mean, scale=scale, weight=weight, bias=y_mean, alpha=best, val_r2=val_r2,
                      z_low=z_low, z_high=z_high)


def split_episodes(n: int, fractions: tuple[float, float] = (0.6, 0.2)) -> tuple[list[int], list[int], list[int]]:
    """Episode indices for train / validation / test (in order; episodes are i.i.d. by seed)."""
    n_train = int(round(n * fractions[0]))
    n_val = int(round(n * fractions[1]))
    if n_train < 1 or n_val < 1 or n - n_train - n_val < 1:
        raise ProbeError(f"{n} episodes cannot be split into train/validation/test; use at least 5 --episodes")
    return list(range(n_train)), list(range(n_train, n_train + n_val)), list(range(n_train + n_val, n))


# --- features ---------------------------------------------------------------------------------------


def pooled_features(tokens: torch.Tensor, grid_hw: tuple[int, int], pool: int = 4) -> torch.Tensor:
    """One frame's tokens ``[B, h*w, D]`` -> ``[B, D + p*p*D]``: patch mean, then ``p x p`` pooled grid.

    ``p = min(pool, h, w)``; a grid already that small is used as is (the full flattened grid).
    """
    h, w = grid_hw
    b, n, d = tokens.shape
    if n != h * w:
        raise ProbeError(f"expected {h}x{w}={h * w} tokens per frame, got {n}")
    grid = tokens.float().transpose(1, 2).reshape(b, d, h, w)  # [B, D, h, w]
    p_h, p_w = min(pool, h), min(pool, w)
    pooled = F.adaptive_avg_pool2d(grid, (p_h, p_w)).flatten(1)  # [B, D*p*p]
    return torch.cat([tokens.float().mean(1), pooled], dim=1)


def encode_frames(encoder: torch.nn.Module, frames: np.ndarray, image_size: int | None = None, pool: int = 4,
                  batch_size: int = 64) -> np.ndarray:
    """uint8 frames ``[N, H, W, 3]`` -> probe features ``[N, F]`` with the frozen encoder.

    Each frame is encoded by :class:`FrozenEncoder` as a 2-frame clip of itself (the official
    single-image convention, and how planning encodes observations) in bf16 autocast.
    """
    from world_model.frozen_encoder import FrozenEncoder

    frozen = FrozenEncoder(encoder, image_size, batch_size=batch_size)
    tokens = frozen.encode(frames)  # [N, h*w, D]
    return pooled_features(tokens, frozen.grid, pool).numpy()


# --- data -------------------------------------------------------------------------------------------


@dataclass
class ProbeEpisode:
    frames: np.ndarray  # [T+1, H, W, 3] uint8
    ee: np.ndarray  # [T+1, 3] end-effector position (m)
    obj: np.ndarray | None  # [T+1, 3] object position (m), None for envs without one
    gripper: np.ndarray | None = None  # [T+1, 1] gripper opening state[6] (-1 open .. 1 closed), None if unknown


# The table region the camera sees (m): the arm's workspace box widened by 5 cm. A cube outside it
# has left the scene (knocked off, or launched by a contact glitch).
SCENE_LOW = np.array([-0.27, -0.35, -0.01])
SCENE_HIGH = np.array([0.35, 0.35, 0.47])


def in_scene(ep: ProbeEpisode) -> bool:
    """Whether the object (if any) stays on the visible table for the whole episode."""
    return ep.obj is None or bool(((ep.obj >= SCENE_LOW) & (ep.obj <= SCENE_HIGH)).all())


# --- the probe --------------------------------------------------------------------------------------


@dataclass
class ProbeSettings:
    env: str
    episodes: int  # the object probe needs many cube placements (one per episode): too few overfit
    seed_start: int
    render_size: int
    policy: str = "mixed"
    pool: int = 4
    alphas: tuple[float, ...] = DEFAULT_ALPHAS
    split: tuple[float, float] = (0.6, 0.2)


# Bins (m) of the horizontal gripper-to-cube distance for the object probe's error breakdown.
ARM_DISTANCE_BINS = (0.0, 0.05, 0.1, 0.2, math.inf)


def rmse_by_bins(y: np.ndarray, y_hat: np.ndarray, covariate: np.ndarray, edges: Sequence[float]) -> list[dict[str, Any]]:
    """RMSE of ``y_hat`` within bins ``[edges[i], edges[i+1])`` of a per-frame ``covariate``."""
    err2 = ((np.asarray(y, np.float64) - y_hat) ** 2).sum(1)
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (covariate >= lo) & (covariate < hi)
        rows.append({"from": lo, "to": None if math.isinf(hi) else hi, "frames": int(m.sum()),
                     "rmse_m": float(np.sqrt(err2[m].mean())) if m.any() else None})
    return rows


def _cat(xs: Sequence[np.ndarray], idx: Sequence[int]) -> np.ndarray:
    return np.concatenate([xs[i] for i in idx])


@dataclass
class _HeldOut:
    """A ridge probe fitted on the train + validation episodes, and its held-out targets and predictions."""

    probe: RidgeProbe
    train: list[int]
    val: list[int]
    test: list[int]
    y: np.ndarray  # [N_test, K]
    y_hat: np.ndarray  # [N_test, K]
    y_clip: np.ndarray  # [N_test, K] with the features clipped to their fitted range


def _fit_held_out(features: Sequence[np.ndarray], targets: Sequence[np.ndarray], split: tuple[float, float],
                  alphas: Sequence[float]) -> _HeldOut:
    """Split by episode, fit (alpha chosen on validation), predict the test episodes plainly and clipped."""
    if len(features) != len(targets):
        raise ProbeError(f"{len(features)} feature episodes but {len(targets)} target episodes")
    tr, va, te = split_episodes(len(features), split)
    probe = fit_ridge(_cat(features, tr), _cat(targets, tr), _cat(features, va), _cat(targets, va), alphas)
    x_te = _cat(features, te)
    return _HeldOut(probe, tr, va, te, _cat(targets, te), probe.predict(x_te), probe.predict(x_te, clip=True))


def probe_features(
    features: Sequence[np.ndarray], targets: Sequence[np.ndarray], split: tuple[float, float] = (0.6, 0.2),
    alphas: Sequence[float] = DEFAULT_ALPHAS, arm_distance: Sequence[np.ndarray] | None = None,
) -> dict[str, Any]:
    """Fit and score a ridge probe from per-episode features ``[T_i, F]`` to targets ``[T_i, K]``.

    ``arm_distance`` (per-episode ``[T_i]``, object probe only) adds ``rmse_by_arm_distance``: a probe
    that reads the cube off the features is as good far from the gripper as near it; one that guesses
    the cube from where the arm is (in collected data the arm goes to the cube) is good only near it.
    """
    h = _fit_held_out(features, targets, split, alphas)
    y_te, y_hat = h.y, h.y_hat
    extra = {} if arm_distance is None else {
        "rmse_by_arm_distance": rmse_by_bins(y_te, y_hat, _cat(arm_distance, h.test), ARM_DISTANCE_BINS)}
    return {
        **extra,
        "r2": r2_score(y_te, y_hat),
        "r2_clipped": r2_score(y_te, h.y_clip),
        "r2_per_axis": r2_per_axis(y_te, y_hat),
        "rmse_m": float(np.sqrt(((y_te - y_hat) ** 2).sum(1).mean())),
        "alpha": h.probe.alpha,
        "val_r2": {str(a): r for a, r in h.probe.val_r2.items()},
        "frames": {"train": sum(len(features[i]) for i in h.train), "val": sum(len(features[i]) for i in h.val),
                   "test": len(y_te)},
    }


def run_probe(
    encoder: torch.nn.Module, settings: ProbeSettings, image_size: int | None = None, progress: bool = True, *,
    episodes: Sequence[ProbeEpisode] | Callable[[], Sequence[ProbeEpisode]],
) -> dict[str, Any]:
    """Encode the episodes with the frozen encoder and probe ee and object position.

    ``episodes``: the episodes, or a function that collects them (timed as ``seconds["collect"]``);
    rolling them out needs the simulator, which this package does not import
    (:func:`planning.probe_episodes.collect_probe_episodes` does it for ``simjepa probe``).
    """
    from tqdm import tqdm

    t0 = time.perf_counter()
    image_size = image_size or encoder.config.image_size
    if callable(episodes):
        episodes = episodes()
    kept = [e for e in episodes if in_scene(e)]
    dropped, used = len(episodes) - len(kept), len(kept)
    episodes = kept
    split_episodes(used, settings.split)  # fail before encoding if too few
    t1 = time.perf_counter()
    feats = [encode_frames(encoder, e.frames, image_size, settings.pool)
             for e in tqdm(episodes, desc="probe encode", disable=not progress)]
    ee_pos, obj_pos = [e.ee for e in episodes], [e.obj for e in episodes]
    grip = [e.gripper for e in episodes]
    del episodes, kept  # the frames (3 GB for 1000 episodes at 128 px) are not needed for the fit
    t2 = time.perf_counter()
    if progress:  # the fit has no steps to count; say what it is doing and how big it is
        tqdm.write(f"probe fit: ridge on {sum(len(f) for f in feats)} frames (split by episode) x {feats[0].shape[1]} features "
                   f"(ee{', object' if obj_pos[0] is not None else ''}; minutes for wide grids)")
    ee = probe_features(feats, ee_pos, settings.split, settings.alphas)
    obj = None
    if all(o is not None for o in obj_pos):
        arm = [np.linalg.norm(e[:, :2] - o[:, :2], axis=1) for e, o in zip(ee_pos, obj_pos)]
        obj = probe_features(feats, obj_pos, settings.split, settings.alphas, arm_distance=arm)
    gripper = None
    if all(g is not None for g in grip):
        gripper = probe_features(feats, grip, settings.split, settings.alphas)
    return {
        "r2_ee": ee["r2"],
        "r2_object": obj["r2"] if obj else None,
        "r2_gripper": gripper["r2"] if gripper else None,
        "r2_clipped": {"ee": ee["r2_clipped"], "object": obj["r2_clipped"] if obj else None,
                       "gripper": gripper["r2_clipped"] if gripper else None},
        "ee": ee,
        "object": obj,
        "gripper": gripper,
        "episodes_used": used,
        "episodes_dropped_object_left_scene": dropped,
        "feature_dim": int(feats[0].shape[1]),
        "image_size": image_size,
        "settings": {**asdict(settings), "alphas": list(settings.alphas), "split": list(settings.split)},
        "seconds": {"collect": t1 - t0, "encode": t2 - t1, "fit": time.perf_counter() - t2},
    }


# --- motion probe -----------------------------------------------------------------------------------


# A cube clip counts as moving above this mean speed (m per env step): resting cubes jitter by far less.
MOVING_SPEED = 0.002


def clip_features(encoder: torch.nn.Module, frames: np.ndarray, clip_frames: int = 4, pool: int = 2,
                  image_size: int | None = None, batch_size: int = 64) -> np.ndarray:
    """Features of every ``clip_frames``-frame window ``frames[t-F+1 .. t]`` of one episode.

    ``frames [T+1, H, W, 3]`` uint8 -> ``[T+2-F, (F/2) * D * (1 + p*p)]``: for each temporal token
    (tubelet) of the clip, the patch mean and the ``p x p`` pooled grid, concatenated in time order, so
    a linear map can take differences between time steps (what motion is). Row ``i`` ends at frame
    ``i + F - 1``.
    """
    from world_model.frozen_encoder import FrozenEncoder
    from world_model.preprocessing import normalize_frames

    tubelet = encoder.config.tubelet_size
    if clip_frames < tubelet or clip_frames % tubelet:
        raise ProbeError(f"clip length {clip_frames} must be a positive multiple of the tubelet size {tubelet}")
    if len(frames) < clip_frames:
        raise ProbeError(f"an episode of {len(frames)} frames is shorter than the {clip_frames}-frame clip")
    frozen = FrozenEncoder(encoder, image_size, batch_size=batch_size)
    x = normalize_frames(frames, frozen.image_size)  # [T+1, 3, S, S]
    starts = torch.arange(len(frames) - clip_frames + 1)
    idx = starts[:, None] + torch.arange(clip_frames)[None, :]  # [N, F]
    clips = x[idx].permute(0, 2, 1, 3, 4)  # [N, 3, F, S, S]
    tokens = frozen.encode_clips(clips)  # [N, F/2 * h * w, D]
    steps = clip_frames // tubelet
    per_step = tokens.unflatten(1, (steps, -1))  # [N, F/2, h*w, D]
    feats = [pooled_features(per_step[:, k], frozen.grid, pool) for k in range(steps)]
    return torch.cat(feats, dim=1).numpy()


def clip_velocity(positions: np.ndarray, clip_frames: int) -> np.ndarray:
    """Mean velocity (m per env step) over each window: ``(p[t] - p[t-F+1]) / (F-1)``, rows as in clip_features."""
    p = np.asarray(positions, np.float64)
    return (p[clip_frames - 1:] - p[: len(p) - clip_frames + 1]) / (clip_frames - 1)


def motion_probe_features(
    features: Sequence[np.ndarray], velocities: Sequence[np.ndarray], split: tuple[float, float] = (0.6, 0.2),
    alphas: Sequence[float] = DEFAULT_ALPHAS, moving_speed: float | None = None,
) -> dict[str, Any]:
    """Ridge probe from clip features to velocities, split by episode; R^2 on the held-out episodes.

    With ``moving_speed`` (the cube), also R^2 and RMSE over the held-out clips whose true speed exceeds
    it, with their own variance: a probe that only learned "the cube rests" scores near 0 there.
    """
    h = _fit_held_out(features, velocities, split, alphas)
    y, y_hat, y_clip = h.y, h.y_hat, h.y_clip
    out: dict[str, Any] = {
        "r2": r2_score(y, y_hat), "r2_clipped": r2_score(y, y_clip), "r2_per_axis": r2_per_axis(y, y_hat),
        "rmse_m_per_step": float(np.sqrt(((y - y_hat) ** 2).sum(1).mean())),
        "alpha": h.probe.alpha, "clips": {"train": sum(len(features[i]) for i in h.train), "test": len(y)},
    }
    if moving_speed is not None:
        moving = np.linalg.norm(y, axis=1) > moving_speed
        out["moving_clips_test"] = int(moving.sum())
        out["r2_moving"] = r2_score(y[moving], y_hat[moving]) if moving.sum() > 1 else None
        out["r2_moving_clipped"] = r2_score(y[moving], y_clip[moving]) if moving.sum() > 1 else None
        out["rmse_moving_m_per_step"] = float(np.sqrt(((y[moving] - y_hat[moving]) ** 2).sum(1).mean())) if moving.any() else None
    return out


def run_motion_probe(
    encoder: torch.nn.Module, episodes: Sequence[ProbeEpisode], clip_frames: int = 4, pool: int = 2,
    image_size: int | None = None, split: tuple[float, float] = (0.6, 0.2), alphas: Sequence[float] = DEFAULT_ALPHAS,
    progress: bool = True,
) -> dict[str, Any]:
    """Probe end-effector (and object) velocity from ``clip_frames``-frame clip features.

    Measures the video part of the encoder: a single-frame feature holds no velocity, so what the
    probe reads comes from the clip's temporal tokens. Episodes whose object leaves the scene are dropped.
    """
    from tqdm import tqdm

    t0 = time.perf_counter()
    episodes = [e for e in episodes if in_scene(e)]
    split_episodes(len(episodes), split)
    feats, v_ee, v_obj = [], [], []
    for e in tqdm(episodes, desc="motion probe encode", disable=not progress):
        feats.append(clip_features(encoder, e.frames, clip_frames, pool, image_size))
        v_ee.append(clip_velocity(e.ee, clip_frames))
        v_obj.append(None if e.obj is None else clip_velocity(e.obj, clip_frames))
    t1 = time.perf_counter()
    ee = motion_probe_features(feats, v_ee, split, alphas)
    obj = None
    if all(v is not None for v in v_obj):
        obj = motion_probe_features(feats, v_obj, split, alphas, moving_speed=MOVING_SPEED)
    return {
        "r2_ee_velocity": ee["r2"],
        "r2_object_velocity": obj["r2"] if obj else None,
        "r2_object_velocity_moving": obj["r2_moving"] if obj else None,
        "r2_clipped": {"ee_velocity": ee["r2_clipped"], "object_velocity": obj["r2_clipped"] if obj else None,
                       "object_velocity_moving": obj["r2_moving_clipped"] if obj else None},
        "ee_velocity": ee, "object_velocity": obj,
        "clip_frames": clip_frames, "pool": pool, "feature_dim": int(feats[0].shape[1]),
        "episodes_used": len(episodes), "moving_speed_m_per_step": MOVING_SPEED,
        "seconds": {"encode": t1 - t0, "fit": time.perf_counter() - t1},
    }
