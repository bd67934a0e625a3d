"""Training the AC predictor on a feature cache (frozen encoder features, actions, states).

Read top to bottom: the config, the data (:mod:`world_model.data`), the model and optimizer, the
loop, the final save. One step samples windows of ``max(context, rollout) + 1`` frames, layer-norms
their features and minimises teacher-forcing + rollout loss (:mod:`world_model.losses`) with AdamW,
linear warm-up + cosine decay, gradient clipping, bf16 autocast and fp32 master weights.

Reproducibility is by construction: the windows of step ``s`` are drawn from
``default_rng([seed, s])``, so the data sampler's whole state is the step counter. The run state
(weights, optimizer, RNG, step; :class:`world_model.training_loop.RunState`) saved every
``ckpt_every`` steps therefore resumes to exactly the run that was never interrupted. Data
parallelism (``torchrun --nproc-per-node N -m simjepa_cli train ...``, :mod:`world_model.distributed`)
splits every global batch into equal rank shards; all ranks hold identical weights.
"""
from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from simjepa_core.atomic import write_json

from .checkpoints import load_weights, weights_hash
from .data import (
    EpisodeSource,
    TrainError,
    WindowSampler,
    describe_source,
    encoder_identity_of,
    grid_of,
    load_windows,
    source_cameras,
    split_episodes,
)
from .distributed import Dist, all_reduce_mean, any_rank, broadcast_from_main, init_distributed, rank_weight_hashes
from .losses import LOSSES, predictor_losses, window_frames
from .model_file import FINAL_NAME, embeddable_encoder, encoder_entry, load_predictor, save_world_model
from .plotting import plot_losses
from .predictor import PRESETS, ACPredictor, PredictorConfig, normalize_reps, predictor_config
from .training_loop import RunState, SkippedBatches, adamw, autocast, set_lr, warmup_cosine, write_row
from .validation import validate

CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.jsonl"
STATE_FORMAT = "simjepa/train_state"


# --- config ----------------------------------------------------------------------------------------
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
    residual: bool = False  # predict the change from the last frame (PredictorConfig.residual)
    macro_steps: int = 1  # k > 1: a macro-step model, one predicted frame per k env steps (data.macro_actions)
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
        for name in ("steps", "batch_size", "context", "ckpt_every", "val_rollout", "log_every", "macro_steps"):
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


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to ``lr``, then cosine to ``final_lr`` at ``steps``."""
    return warmup_cosine(step, cfg.lr, cfg.warmup_steps, cfg.steps, cfg.final_lr)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """The predictor's AdamW (shared weight-decay grouping; multi-tensor updates)."""
    return adamw([model], cfg.lr, cfg.weight_decay, foreach=True)


# --- the run ---------------------------------------------------------------------------------------
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

    # data: episodes split by a seeded permutation, windows sampled per step
    info = describe_source(source)
    encoder = encoder_identity_of(source)
    if encoder_module is not None:
        check_encoder_module(encoder_module, encoder)
    grid = grid_of(source, info["tokens"])
    frames = window_frames(cfg.context, cfg.rollout)
    train_eps, val_eps = split_episodes(source.episodes, cfg.val_fraction, cfg.seed)
    sampler = WindowSampler(info["lengths"], train_eps, frames, cfg.seed, cfg.macro_steps)
    shard = cfg.batch_size // d.world

    def fetch(s: int) -> tuple[torch.Tensor, ...]:
        w = sampler.windows(s, cfg.batch_size)[d.rank * shard : (d.rank + 1) * shard]
        return load_windows(source, w, frames, info["state_dim"], cfg.macro_steps)

    # model and optimizer: a fresh init, a resumed run, or fine-tuning from another world model
    torch.manual_seed(cfg.seed)
    model = ACPredictor(predictor_config(cfg.config, info["embed_dim"], info["action_dim"], info["state_dim"],
                                            residual=cfg.residual)).to(d.device)
    opt = make_optimizer(model, cfg)
    stop = min(cfg.steps, cfg.stop_after) if cfg.stop_after is not None else cfg.steps
    run = RunState(out / CHECKPOINT_NAME, out / METRICS_NAME, STATE_FORMAT, cfg.identity(), every=cfg.ckpt_every,
                   last=stop, error=TrainError, what="training checkpoint", settings_key="train_config", where=str(out))
    step, skipped = 0, SkippedBatches(TrainError, "the cache holds NaN/inf; rebuild it with simjepa encode")
    state = run.load()
    if state is not None:
        check_resumable(state, run.path, model, encoder)
        step, skipped.count = run.restore(state, {"model": model}, opt, {"torch_rng": torch.default_generator})
        model.to(d.device)
    elif cfg.init is not None:
        init_weights_from(model, cfg.init, encoder)
        model.to(d.device)
    else:
        broadcast_from_main(model, d)
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "train_config.json", {
            **asdict(cfg), "features": source.manifest.get("paths") or source.manifest.get("path"), "encoder": encoder,
            "window_frames": frames, "world_size": d.world, "grid": list(grid), "train_episodes": train_eps,
            "val_episodes": val_eps}, sort_keys=True)
        if step:
            print(f"resuming {out} from step {step}")

    # the loop: prefetch batches, step, log, save the run state on its cadence
    pool = ThreadPoolExecutor(cfg.workers) if cfg.workers else None
    pending = {s: pool.submit(fetch, s) for s in range(step, min(cfg.steps, step + cfg.workers))} if pool else {}
    bar = None
    if d.main and cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=step, desc="train", unit="step", dynamic_ncols=True)
    t0, samples = time.perf_counter(), 0
    try:
        with run.log(step) if d.main else contextlib.nullcontext() as log:
            d.barrier()
            while step < stop:
                if pool:
                    batch = pending.pop(step).result()
                    if step + cfg.workers < cfg.steps:
                        pending[step + cfg.workers] = pool.submit(fetch, step + cfg.workers)
                else:
                    batch = fetch(step)
                lr = lr_at(step, cfg)
                row = {"step": step + 1, "lr": lr, **train_step(model, opt, batch, cfg, lr, d)}
                if "loss" not in row:
                    skipped.skip(step + 1, "features, actions, states or loss")
                row["skipped"] = skipped.count
                step += 1
                samples += cfg.batch_size
                if d.main:
                    if step % cfg.log_every == 0 or step == cfg.steps or "loss" not in row:
                        write_row(log, {**row, "samples_per_s": samples / max(time.perf_counter() - t0, 1e-9)})
                    if bar is not None:
                        bar.update(1)
                        if "loss" in row:
                            bar.set_postfix(loss=f"{row['loss']:.4f}", tf=f"{row['tf_loss']:.4f}",
                                            ro=f"{row['rollout_loss']:.4f}", lr=f"{lr:.1e}")
                if run.due(step):
                    if d.main:
                        run.save(step, skipped.count, {"model": model}, opt, {"torch_rng": torch.default_generator},
                                 version=1, predictor_config=asdict(model.config),
                                 sampler={"seed": cfg.seed, "step": step},
                                 encoder={k: encoder[k] for k in ("name", "weights_hash")})
                        if step == stop:
                            plot_losses(run.log_path, out / "loss_curve.png")
                    d.barrier()
    finally:
        if bar is not None:
            bar.close()
        if pool:
            pool.shutdown(wait=True, cancel_futures=True)
    if step < cfg.steps:
        return {"stopped_at": step}

    # validation on the held-out episodes, then the world-model file
    hashes = rank_weight_hashes(model, d)
    summary: dict[str, Any] = {}
    if d.main:
        summary = validate(model, source, val_eps, info["lengths"], info["state_dim"], cfg.context, cfg.val_rollout,
                           d.device, cfg.val_windows, stride=cfg.macro_steps) if val_eps else {"episodes": [], "note": "no held-out episodes (need >= 2 episodes and --val-fraction > 0)"}
        summary.update(step=step, loss=cfg.loss, skipped_batches=skipped.count)
        write_json(out / "val.json", summary, sort_keys=True)
        save_final(out, model, source, encoder, grid, cfg, info, skipped.count, hashes, summary, encoder_module)
    d.barrier()
    return summary


def train_step(model: ACPredictor, opt: torch.optim.Optimizer, batch: tuple[torch.Tensor, ...], cfg: TrainConfig,
               lr: float, d: Dist) -> dict[str, float]:
    """One optimizer step on ``batch`` = (feats, actions, states); returns the losses and gradient norm,
    or ``{}`` when the batch or its loss is non-finite on any rank (then no rank steps)."""
    feats, actions, states = batch
    bad = not (torch.isfinite(feats).all() and torch.isfinite(actions).all() and torch.isfinite(states).all())
    set_lr(opt, lr)
    if any_rank(bad, d):
        return {}
    model.train()
    z = normalize_reps(feats.to(d.device))  # official normalize_reps: inputs and targets
    with autocast(d.device):
        losses = predictor_losses(model, z, actions.to(d.device), states.to(d.device), cfg.context, cfg.rollout, cfg.loss)
    if any_rank(not torch.isfinite(losses["loss"]).item(), d):
        return {}
    opt.zero_grad(set_to_none=True)
    losses["loss"].backward()
    all_reduce_mean([p.grad for p in model.parameters() if p.grad is not None], d.world)
    gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    opt.step()
    return {**{k: float(v.detach()) for k, v in losses.items()}, "grad_norm": float(gnorm)}


# --- checks on what a run starts from --------------------------------------------------------------
def check_encoder_module(encoder_module: torch.nn.Module, encoder: Mapping[str, Any]) -> None:
    """Refuse an ``--encoder`` that is not the one the cache was built by."""
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


def check_resumable(state: Mapping[str, Any], path: Path, model: ACPredictor, encoder: Mapping[str, Any]) -> None:
    """A saved run continues only on features of the same encoder and with a predictor of the same shape."""
    if state["encoder"]["weights_hash"] != encoder["weights_hash"]:
        raise TrainError(
            f"{path.parent} was trained on features of encoder {state['encoder']['name']!r} ({state['encoder']['weights_hash']}), "
            f"this cache was made by {encoder['name']!r} ({encoder['weights_hash']}); use the original cache or a new --out"
        )
    # read as a config, so a checkpoint written before a config field existed gets its default (as model files do)
    if PredictorConfig.from_dict(state["predictor_config"]) != model.config:
        raise TrainError(f"{path} holds a predictor of another shape than this cache needs (action/state dims or width differ)")


def init_weights_from(model: ACPredictor, init: str, encoder: Mapping[str, Any]) -> None:
    """Start from the predictor of world model ``init`` (a file, run dir or ``default``): fine-tuning,
    e.g. teaching a trained one-view model a second camera. Its shape and encoder must match the run's;
    the optimizer and learning-rate schedule start fresh."""
    predictor, encoder_hash = load_predictor(init)
    if encoder_hash != encoder["weights_hash"]:
        raise TrainError(
            f"--init {init} was trained on features of encoder {encoder_hash}, this cache was made by "
            f"{encoder['name']!r} ({encoder['weights_hash']}); fine-tune on caches of the same encoder"
        )
    if predictor.config.residual != model.config.residual:
        word = {True: "a residual", False: "a whole-frame"}
        raise TrainError(f"--init {init} holds {word[predictor.config.residual]} predictor and this run trains "
                         f"{word[model.config.residual]} one; pass --residual exactly when the init model has it")
    if asdict(predictor.config) != asdict(model.config):
        raise TrainError(f"--init {init} holds a predictor of another shape than --config and this cache give "
                         f"({predictor.config.width} wide x {predictor.config.depth}); pass the same --config")
    load_weights(model, predictor.state_dict(), f"--init {init}")


# --- the world-model file --------------------------------------------------------------------------
def save_final(out: Path, model: ACPredictor, source: EpisodeSource, encoder: Mapping[str, Any], grid: tuple[int, int],
               cfg: TrainConfig, info: Mapping[str, Any], skipped: int, hashes: list[str], val: Mapping[str, Any],
               encoder_module: torch.nn.Module | None = None) -> None:
    """``final.pt``: the predictor, its encoder (embedded when small) and what it was trained on."""
    entry = encoder_entry(encoder, encoder_module if encoder_module is not None else embeddable_encoder(encoder))
    size = source.manifest.get("image_size") or encoder["config"].get("image_size", grid[0] * 16)
    image_size = int(size[0] if isinstance(size, (list, tuple)) else size)
    env_id = (source.manifest.get("source") or {}).get("env_id") or source.manifest.get("env_id")
    env_ids = list(source.manifest.get("env_ids") or ([env_id] if env_id else []))
    meta = {
        "train": cfg.identity(), "encoder_name": encoder["name"], "encoder_weights_hash": encoder["weights_hash"],
        "env_ids": env_ids,
        "action_dim": info["action_dim"], "state_dim": info["state_dim"], "skipped_batches": skipped,
        "macro_steps": cfg.macro_steps,
        "rank_weight_hashes": hashes, "val_rollout_l1": dict(val.get("rollout_l1", {})),
        "val_copy_last_l1": dict(val.get("copy_last_l1", {})),
    }
    if source.manifest.get("action_scale") is not None:
        meta["action_scale"] = list(source.manifest["action_scale"])
    save_world_model(out / FINAL_NAME, model.cpu(), entry, image_size, grid, {}, meta,
                     token_pool=int(source.manifest.get("token_pool", 1)), cameras=source_cameras(source.manifest))
