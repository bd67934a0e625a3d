"""Training the AC predictor on a feature cache (frozen encoder features, actions, states).

One step: sample windows of ``max(context, rollout) + 1`` frames, layer-norm their features, and
minimise teacher-forcing + rollout loss (:mod:`world_model.losses`) with AdamW, linear warm-up +
cosine decay, gradient clipping, bf16 autocast and fp32 master weights.

Reproducibility is by construction: the windows of step ``s`` are drawn from
``default_rng([seed, s])``, so the data sampler's whole state is the step counter. A checkpoint
(weights, optimizer, RNG, step) taken every ``ckpt_every`` steps therefore resumes to exactly the
run that was never interrupted. Data parallelism (``torchrun --nproc-per-node N -m simjepa_cli train ...``) splits every
global batch into equal rank shards and averages gradients with one flat all-reduce; all ranks
hold identical weights. (Explicit all-reduce instead of the DDP wrapper because one step calls the
predictor several times before ``backward``: teacher forcing then rollout.)
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

import numpy as np
import torch
import torch.distributed as dist

from simjepa_core.errors import SimjepaError
from simjepa_core import atomic
from simjepa_core.episodes import PROPRIO_DIM

from .bundle import FINAL_NAME, encoder_entry, save_world_model
from .checkpoints import CheckpointError, load_file, load_weights, save_file, truncate_log, weights_hash
from .losses import LOSSES, feature_loss, predictor_losses, rollout, window_frames
from .predictor import PRESETS, ACPredictor, normalize_reps, predictor_config

CHECKPOINT_NAME = "checkpoint.pt"
STATE_FORMAT = "simjepa/train_state"


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


@dataclass
class TrainConfig:
    """All settings of a run. Fields in ``RUN_ONLY`` may change between a run and its resume."""

    out: str
    config: str = "small"
    loss: str = "l1"
    steps: int = 2000
    batch_size: int = 16
    lr: float = 4.25e-4
    final_lr: float = 0.0
    warmup: int | None = None  # steps; None = 5% of steps
    weight_decay: float = 0.04
    grad_clip: float = 1.0
    context: int = 3
    rollout: int = 2
    val_rollout: int = 8
    val_fraction: float = 0.1
    val_windows: int = 256
    seed: int = 0
    init: str | None = None  # world model whose predictor weights start the run (fine-tuning)
    ckpt_every: int = 500
    log_every: int = 10
    workers: int = 2
    stop_after: int | None = None
    progress: bool = True

    RUN_ONLY = ("out", "ckpt_every", "log_every", "workers", "stop_after", "progress")

    def identity(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in self.RUN_ONLY}

    def check(self) -> None:
        problems = []
        if self.config not in PRESETS:
            problems.append(f"--config {self.config!r} is not one of {', '.join(PRESETS)}")
        if self.loss not in LOSSES:
            problems.append(f"--loss {self.loss!r} is not one of {', '.join(LOSSES)}")
        for name in ("steps", "batch_size", "context", "ckpt_every", "val_rollout", "log_every"):
            if getattr(self, name) < 1:
                problems.append(f"--{name.replace('_', '-')} must be at least 1")
        if self.rollout < 0 or self.workers < 0:
            problems.append("--rollout and --workers must be >= 0")
        if not 0.0 <= self.val_fraction < 1.0:
            problems.append("--val-fraction must be in [0, 1)")
        if self.lr <= 0:
            problems.append("--lr must be positive")
        if problems:
            raise TrainError("; ".join(problems))

    @property
    def warmup_steps(self) -> int:
        return self.warmup if self.warmup is not None else max(1, round(0.05 * self.steps))


# --- data ------------------------------------------------------------------------------------------
def split_episodes(ids: Sequence[int], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Held-out episodes by a seeded permutation; at least one of each when both are possible."""
    n = len(ids)
    order = [int(ids[i]) for i in np.random.default_rng(seed).permutation(n)]
    n_val = 0 if val_fraction <= 0 or n < 2 else min(n - 1, max(1, round(val_fraction * n)))
    return sorted(order[n_val:]), sorted(order[:n_val])


class WindowSampler:
    """Uniform over all (episode, start) windows of ``frames`` frames; step ``s`` uses rng([seed, s])."""

    def __init__(self, lengths: Mapping[int, int], episodes: Sequence[int], frames: int, seed: int):
        self.frames, self.seed = frames, seed
        self.index = np.array([(e, s) for e in episodes for s in range(lengths[e] - frames + 1)], dtype=np.int64)
        if len(self.index) == 0:
            raise TrainError(
                f"no training episode has the {frames} frames a window needs (context/rollout + 1); lower "
                f"--context/--rollout or collect longer episodes"
            )

    def windows(self, step: int, size: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, step])
        return self.index[rng.integers(0, len(self.index), size)]  # [size, 2]


def load_windows(source: EpisodeSource, windows: np.ndarray, frames: int, state_dim: int) -> tuple[torch.Tensor, ...]:
    """Stack windows into ``feats [B, L, N, D]`` fp32, ``actions [B, L-1, A]``, ``states [B, L, S]``."""
    f, a, s = [], [], []
    for e, start in windows.tolist():
        feats, actions, states = source.episode(int(e))
        f.append(np.asarray(feats[start : start + frames], dtype=np.float32))
        a.append(np.asarray(actions[start : start + frames - 1], dtype=np.float32))
        s.append(np.asarray(states[start : start + frames, :state_dim], dtype=np.float32))
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


# --- distributed -----------------------------------------------------------------------------------
@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def init_distributed() -> Dist:
    """Join the process group torchrun set up (WORLD_SIZE > 1): nccl on GPU, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world <= 1:
        return Dist(device=torch.device("cuda" if cuda else "cpu"))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank()
    device = torch.device("cpu")
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    return Dist(rank, dist.get_world_size(), device)


def _all_reduce_mean(tensors: list[torch.Tensor], world: int) -> None:
    if world <= 1 or not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= world
    i = 0
    for t in tensors:
        t.copy_(flat[i : i + t.numel()].view_as(t))
        i += t.numel()


def _any(flag: bool, d: Dist) -> bool:
    if d.world <= 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=d.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


# --- optimisation ----------------------------------------------------------------------------------
def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to ``lr``, then cosine to ``final_lr`` at ``steps``."""
    w = cfg.warmup_steps
    if step < w:
        return cfg.lr * (step + 1) / w
    progress = min(1.0, (step - w) / max(1, cfg.steps - w))
    return cfg.final_lr + 0.5 * (cfg.lr - cfg.final_lr) * (1 + math.cos(math.pi * progress))


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW; biases and norm gains (1-D parameters) are not decayed, as in the official recipe."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    plain = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": plain, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8, foreach=True)


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    return torch.autocast(device.type, dtype=torch.bfloat16)


# --- validation ------------------------------------------------------------------------------------
@torch.no_grad()
def validate(
    predictor: ACPredictor,
    source: EpisodeSource,
    episodes: Sequence[int],
    lengths: Mapping[int, int],
    state_dim: int,
    context: int,
    steps: int,
    device: torch.device,
    max_windows: int = 256,
    batch_size: int = 16,
) -> dict[str, Any]:
    """Per-step L1 (layer-normed features) of 1..``steps``-step rollouts from one true frame, and of
    the copy-last-frame baseline (predict that nothing changes), on held-out episodes.

    Windows start every ``steps`` frames; a window near an episode end contributes fewer steps, so
    each step's mean is over the windows that reach it (counts in ``windows_per_step``).
    """
    groups: dict[int, list[tuple[int, int]]] = {}
    n_windows = 0
    for e in episodes:
        for start in range(0, lengths[e] - 1, steps):
            if n_windows >= max_windows:
                break
            k = min(steps, lengths[e] - 1 - start)
            groups.setdefault(k, []).append((e, start))
            n_windows += 1
    sums_model, sums_copy, counts = np.zeros(steps), np.zeros(steps), np.zeros(steps, dtype=np.int64)
    tf_sum, tf_count = 0.0, 0
    predictor.eval()
    for k, wins in sorted(groups.items()):
        for i in range(0, len(wins), batch_size):
            chunk = np.array(wins[i : i + batch_size], dtype=np.int64)
            feats, actions, states = load_windows(source, chunk, k + 1, state_dim)
            z = normalize_reps(feats.to(device))  # [b, k+1, N, D]
            actions, states = actions.to(device), states.to(device)
            with autocast(device):
                preds = rollout(predictor, z[:, :1], actions, states, k, window=context)  # [b, k, N, D]
                c = min(context, k)
                tf = normalize_reps(predictor(z[:, :c], actions[:, :c], states[:, :c]))
            err = (preds.float() - z[:, 1:]).abs().mean(dim=(2, 3))  # [b, k]
            copy = (z[:, :1] - z[:, 1:]).abs().mean(dim=(2, 3))  # [b, k]
            sums_model[:k] += err.sum(0).cpu().numpy()
            sums_copy[:k] += copy.sum(0).cpu().numpy()
            counts[:k] += len(chunk)
            tf_sum += float(feature_loss(tf, z[:, 1 : c + 1], "l1")) * len(chunk)
            tf_count += len(chunk)
    reached = [j for j in range(steps) if counts[j] > 0]
    return {
        "episodes": [int(e) for e in episodes],
        "windows": n_windows,
        "context_frames": 1,
        "predictor_window": context,
        "rollout_l1": {str(j + 1): float(sums_model[j] / counts[j]) for j in reached},
        "copy_last_l1": {str(j + 1): float(sums_copy[j] / counts[j]) for j in reached},
        "windows_per_step": {str(j + 1): int(counts[j]) for j in reached},
        "teacher_forcing_l1": tf_sum / tf_count if tf_count else None,
    }


# --- outputs ---------------------------------------------------------------------------------------
def write_json(path: Path, obj: Any) -> None:
    atomic.write_json(path, obj, sort_keys=True)


def plot_losses(metrics_path: Path, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "loss" in r]
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    steps = [r["step"] for r in rows]
    for key, label in (("loss", "total"), ("tf_loss", "teacher forcing"), ("rollout_loss", "rollout")):
        ax.plot(steps, [r[key] for r in rows], label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (layer-normed features)")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    with atomic.atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


# --- checkpoints -----------------------------------------------------------------------------------
def save_state(path: Path, step: int, cfg: TrainConfig, model: ACPredictor, opt: torch.optim.Optimizer,
               skipped: int, encoder: Mapping[str, Any]) -> None:
    save_file({
        "format": STATE_FORMAT, "version": 1, "step": step, "train_config": cfg.identity(),
        "predictor_config": asdict(model.config), "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": opt.state_dict(), "torch_rng": torch.get_rng_state(), "sampler": {"seed": cfg.seed, "step": step},
        "skipped": skipped, "encoder": {k: encoder[k] for k in ("name", "weights_hash")},
    }, path)


def load_state(path: Path, cfg: TrainConfig, model: ACPredictor, opt: torch.optim.Optimizer,
               encoder: Mapping[str, Any]) -> tuple[int, int]:
    """Restore a run; returns (step, skipped). Any inconsistency is a one-line TrainError."""
    state = load_file(path)
    if state.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path} is not a simjepa training checkpoint; use another --out directory")
    diff = {k: (v, cfg.identity().get(k)) for k, v in state["train_config"].items() if cfg.identity().get(k) != v}
    if diff:
        shown = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in sorted(diff.items()))
        raise TrainError(f"{path.parent} holds a run with other settings ({shown}); use the same settings to resume or a new --out")
    if state["encoder"]["weights_hash"] != encoder["weights_hash"]:
        raise TrainError(
            f"{path.parent} was trained on features of encoder {state['encoder']['name']!r} ({state['encoder']['weights_hash']}), "
            f"this cache was made by {encoder['name']!r} ({encoder['weights_hash']}); use the original cache or a new --out"
        )
    if state["predictor_config"] != asdict(model.config):
        raise TrainError(f"{path} holds a predictor of another shape than this cache needs (action/state dims or width differ)")
    load_weights(model, state["model"], f"training checkpoint {path}")
    try:
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
    except (ValueError, KeyError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"{path}: optimizer/RNG state unreadable ({exc}); delete it to restart the run") from None
    return int(state["step"]), int(state["skipped"])


def init_weights_from(model: ACPredictor, init: str, encoder: Mapping[str, Any]) -> None:
    """Start from the predictor of world model ``init`` (a file, run dir or ``default``): fine-tuning,
    e.g. teaching a trained one-view model a second camera. Its shape and encoder must match the run's;
    the optimizer and learning-rate schedule start fresh."""
    from .bundle import load_predictor

    predictor, encoder_hash = load_predictor(init)
    if encoder_hash != encoder["weights_hash"]:
        raise TrainError(
            f"--init {init} was trained on features of encoder {encoder_hash}, this cache was made by "
            f"{encoder['name']!r} ({encoder['weights_hash']}); fine-tune on caches of the same encoder"
        )
    if asdict(predictor.config) != asdict(model.config):
        raise TrainError(f"--init {init} holds a predictor of another shape than --config and this cache give "
                         f"({predictor.config.width} wide x {predictor.config.depth}); pass the same --config")
    load_weights(model, predictor.state_dict(), f"--init {init}")


# --- the loop --------------------------------------------------------------------------------------
def train(cfg: TrainConfig, source: EpisodeSource, dist_info: Dist | None = None,
          encoder_module: torch.nn.Module | None = None) -> dict[str, Any]:
    """Train (or resume) a predictor; returns the validation summary. Files land in ``cfg.out``.

    ``encoder_module``: the encoder the cache must have been built by (refused otherwise); it is
    embedded in ``final.pt`` when small. Without it, the cache's recorded encoder name is loaded.
    """
    cfg.check()
    d = dist_info or init_distributed()
    if cfg.batch_size % d.world:
        raise TrainError(f"--batch-size {cfg.batch_size} does not split evenly over {d.world} processes")
    out = Path(cfg.out)
    info = describe_source(source)
    encoder = encoder_identity_of(source)
    if encoder_module is not None:
        got = weights_hash(encoder_module.state_dict())
        if got != encoder["weights_hash"]:
            raise TrainError(
                f"the feature cache was built by encoder {encoder['name']!r} ({encoder['weights_hash']}), not by the "
                f"given encoder ({got}); re-encode the data with it or drop --encoder"
            )
        # Same weights are not enough: e.g. another head count gives other features. image_size is
        # left out: it is the preprocessing size (`encode --image-size`), not part of the encoder.
        given = dict(getattr(getattr(encoder_module, "config", None), "__dict__", {}))
        differ = sorted(k for k in given if k != "image_size" and k in encoder["config"] and given[k] != encoder["config"][k])
        if differ:
            shown = ", ".join(f"{k} {encoder['config'][k]!r} vs {given[k]!r}" for k in differ)
            raise TrainError(
                f"the feature cache was built by encoder {encoder['name']!r} with other settings than the given encoder "
                f"({shown}); re-encode the data with it or drop --encoder"
            )
    grid = grid_of(source, info["tokens"])
    frames = window_frames(cfg.context, cfg.rollout)
    train_eps, val_eps = split_episodes(source.episodes, cfg.val_fraction, cfg.seed)
    sampler = WindowSampler(info["lengths"], train_eps, frames, cfg.seed)

    torch.manual_seed(cfg.seed)
    model = ACPredictor(predictor_config(cfg.config, info["embed_dim"], info["action_dim"], info["state_dim"])).to(d.device)
    opt = make_optimizer(model, cfg)
    step, skipped = 0, 0
    ckpt = out / CHECKPOINT_NAME
    if ckpt.is_file():
        step, skipped = load_state(ckpt, cfg, model, opt, encoder)
        model.to(d.device)
    elif cfg.init is not None:
        init_weights_from(model, cfg.init, encoder)
        model.to(d.device)
    elif d.world > 1:
        for p in model.parameters():
            dist.broadcast(p.data, 0)
    metrics_path = out / "metrics.jsonl"
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "train_config.json", {**asdict(cfg), "features": source.manifest.get("paths") or source.manifest.get("path"), "encoder": encoder,
                                                "window_frames": frames, "world_size": d.world, "grid": list(grid),
                                                "train_episodes": train_eps, "val_episodes": val_eps})
        if step:
            truncate_log(metrics_path, step)
            print(f"resuming {out} from step {step}")
    d.barrier()

    shard = cfg.batch_size // d.world
    pool = ThreadPoolExecutor(cfg.workers) if cfg.workers else None

    def fetch(s: int):
        w = sampler.windows(s, cfg.batch_size)[d.rank * shard : (d.rank + 1) * shard]
        return load_windows(source, w, frames, info["state_dim"])

    pending = {s: pool.submit(fetch, s) for s in range(step, min(cfg.steps, step + cfg.workers))} if pool else {}
    stop = min(cfg.steps, cfg.stop_after) if cfg.stop_after is not None else cfg.steps
    bar = None
    if d.main and cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=step, desc="train", unit="step", dynamic_ncols=True)
    log = open(metrics_path, "a") if d.main else None
    t0, samples = time.perf_counter(), 0
    try:
        while step < stop:
            if pool:
                feats, actions, states = pending.pop(step).result()
                nxt = step + cfg.workers
                if nxt < cfg.steps:
                    pending[nxt] = pool.submit(fetch, nxt)
            else:
                feats, actions, states = fetch(step)
            bad = not (torch.isfinite(feats).all() and torch.isfinite(actions).all() and torch.isfinite(states).all())
            lr = lr_at(step, cfg)
            for g in opt.param_groups:
                g["lr"] = lr
            row: dict[str, Any] = {"step": step + 1, "lr": lr}
            if not _any(bad, d):
                model.train()
                z = normalize_reps(feats.to(d.device))  # official normalize_reps: inputs and targets
                with autocast(d.device):
                    losses = predictor_losses(model, z, actions.to(d.device), states.to(d.device), cfg.context, cfg.rollout, cfg.loss)
                bad = not torch.isfinite(losses["loss"]).item()
                if not _any(bad, d):
                    opt.zero_grad(set_to_none=True)
                    losses["loss"].backward()
                    grads = [p.grad for p in model.parameters() if p.grad is not None]
                    _all_reduce_mean(grads, d.world)
                    gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                    opt.step()
                    row.update({k: float(v.detach()) for k, v in losses.items()}, grad_norm=float(gnorm))
            if "loss" not in row:
                skipped += 1
                warnings.warn(f"step {step + 1}: non-finite features, actions, states or loss; batch skipped ({skipped} so far)")
                if skipped > max(20, (step + 1) // 2):
                    raise TrainError(f"{skipped} of {step + 1} batches were non-finite: the cache holds NaN/inf; rebuild it with simjepa encode")
            row["skipped"] = skipped
            step += 1
            samples += cfg.batch_size
            if d.main:
                if step % cfg.log_every == 0 or step == cfg.steps or "loss" not in row:
                    row["samples_per_s"] = samples / max(time.perf_counter() - t0, 1e-9)
                    log.write(json.dumps(row) + "\n")
                    log.flush()
                if bar is not None:
                    bar.update(1)
                    if "loss" in row:
                        bar.set_postfix(loss=f"{row['loss']:.4f}", tf=f"{row['tf_loss']:.4f}", ro=f"{row['rollout_loss']:.4f}", lr=f"{lr:.1e}")
            if step % cfg.ckpt_every == 0 or step == cfg.steps or step == stop:
                if d.main:
                    save_state(ckpt, step, cfg, model, opt, skipped, encoder)
                    log.flush()
                    if step == stop:
                        plot_losses(metrics_path, out / "loss_curve.png")
                d.barrier()
    finally:
        if bar is not None:
            bar.close()
        if log is not None:
            log.close()
        if pool:
            pool.shutdown(wait=True, cancel_futures=True)
    if step < cfg.steps:
        return {"stopped_at": step}

    hashes = _rank_hashes(model, d)
    summary: dict[str, Any] = {}
    if d.main:
        summary = validate(model, source, val_eps, info["lengths"], info["state_dim"], cfg.context, cfg.val_rollout,
                           d.device, cfg.val_windows) if val_eps else {"episodes": [], "note": "no held-out episodes (need >= 2 episodes and --val-fraction > 0)"}
        summary.update(step=step, loss=cfg.loss, skipped_batches=skipped)
        write_json(out / "val.json", summary)
        _save_final(out, model, source, encoder, grid, cfg, info, skipped, hashes, summary, encoder_module)
    d.barrier()
    return summary


def _rank_hashes(model: torch.nn.Module, d: Dist) -> list[str]:
    h = weights_hash({k: v.cpu() for k, v in model.state_dict().items()})
    if d.world <= 1:
        return [h]
    out: list[Any] = [None] * d.world
    dist.all_gather_object(out, h)
    return out


def _save_final(out: Path, model: ACPredictor, source: EpisodeSource, encoder: Mapping[str, Any], grid: tuple[int, int],
                cfg: TrainConfig, info: Mapping[str, Any], skipped: int, hashes: list[str], val: Mapping[str, Any],
                encoder_module: torch.nn.Module | None = None) -> None:
    entry = encoder_entry(encoder, encoder_module if encoder_module is not None else _try_load_encoder(encoder))
    size = source.manifest.get("image_size") or encoder["config"].get("image_size", grid[0] * 16)
    image_size = int(size[0] if isinstance(size, (list, tuple)) else size)
    env_id = (source.manifest.get("source") or {}).get("env_id") or source.manifest.get("env_id")
    env_ids = list(source.manifest.get("env_ids") or ([env_id] if env_id else []))
    meta = {
        "train": cfg.identity(), "encoder_name": encoder["name"], "encoder_weights_hash": encoder["weights_hash"],
        "env_ids": env_ids,
        "action_dim": info["action_dim"], "state_dim": info["state_dim"], "skipped_batches": skipped,
        "rank_weight_hashes": hashes, "val_rollout_l1": dict(val.get("rollout_l1", {})),
        "val_copy_last_l1": dict(val.get("copy_last_l1", {})),
    }
    if source.manifest.get("action_scale") is not None:
        meta["action_scale"] = list(source.manifest["action_scale"])
    save_world_model(out / FINAL_NAME, model.cpu(), entry, image_size, grid, {}, meta,
                     token_pool=int(source.manifest.get("token_pool", 1)), cameras=source_cameras(source.manifest))


def source_cameras(manifest: Mapping[str, Any]) -> list[str]:
    """The env cameras a training source's frames came from, in the order the sources were given.

    One predictor learns every view (each window is one camera's frames); the world model plans
    with all of them, averaging the goal energy over views.
    """
    return list(manifest.get("cameras") or [(manifest.get("source") or {}).get("camera", "front")])


def _try_load_encoder(identity: Mapping[str, Any]) -> torch.nn.Module | None:
    """The encoder module to embed in ``final.pt`` when it is small and still loadable as recorded."""
    from .encoder import EncoderConfig

    try:
        cfg = EncoderConfig.from_dict(dict(identity["config"]))
    except (SimjepaError, TypeError):
        return None
    params = cfg.depth * (4 + 2 * cfg.mlp_ratio) * cfg.embed_dim**2  # attention + MLP weights
    if params >= 50_000_000:
        return None  # large encoders are stored by reference only
    try:
        from .encoder_loading import load_encoder

        enc = load_encoder(identity["name"])
    except SimjepaError as exc:
        warnings.warn(f"final.pt stores the encoder by reference only: {exc}")
        return None
    if weights_hash(enc.state_dict()) != identity["weights_hash"]:
        warnings.warn(f"encoder {identity['name']!r} now loads other weights than the cache's; final.pt stores it by reference only")
        return None
    return enc


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
