"""What every training run in simjepa does the same way: predictor training (:mod:`world_model.train`)
and encoder pretraining (:mod:`world_model.pretrain`) share it, so resume, checkpoints, weight decay and
bad batches behave alike in both.

- :class:`RunState`: one resumable state file (weights, optimizer, RNG, step) and one JSONL log. A run
  resumes only with the settings it was started with; the state is written atomically every
  ``ckpt_every`` steps and at the last step, and on resume the log is cut back to the saved step, so
  a killed run continues to exactly the weights and log of one that never stopped.
- :func:`adamw`: AdamW with the official weight-decay grouping (matrices decayed; biases, norm gains
  and other 1-D parameters not).
- :class:`SkippedBatches`: the policy for non-finite inputs or losses: the batch is skipped (no
  optimizer step) and counted; a run where they are no longer rare stops with an error that says why.
"""
from __future__ import annotations

import contextlib
import json
import math
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

from simjepa_core.errors import SimjepaError

from .checkpoints import CheckpointError, load_file, load_weights, save_file, truncate_log

# A few bad batches are tolerated at any point of a run; beyond this many, only up to half the steps.
MIN_SKIP_BUDGET = 20


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast with fp32 master weights, on CPU and GPU alike."""
    return torch.autocast(device.type, dtype=torch.bfloat16)


def adamw_param_groups(modules: Iterable[nn.Module], weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices only; biases and norm gains (1-D parameters) are not decayed, as in the
    official recipe (``init_opt``)."""
    params = [p for m in modules for p in m.parameters()]
    return [{"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]


def adamw(modules: Iterable[nn.Module], lr: float, weight_decay: float, foreach: bool | None = None) -> torch.optim.AdamW:
    """AdamW (betas 0.9/0.999, eps 1e-8) over ``modules`` with :func:`adamw_param_groups`."""
    return torch.optim.AdamW(adamw_param_groups(modules, weight_decay), lr=lr, betas=(0.9, 0.999), eps=1e-8,
                             foreach=foreach)


def warmup_cosine(step: int, lr: float, warmup: int, steps: int, final_lr: float = 0.0) -> float:
    """The learning rate at 0-based ``step``: linear warm-up to ``lr`` over ``warmup`` steps, then cosine
    to ``final_lr`` at ``steps``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, steps - warmup))
    return final_lr + 0.5 * (lr - final_lr) * (1 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


class SkippedBatches:
    """Counts skipped (non-finite) batches; raises ``error(... + fix)`` once they are no longer rare:
    more than ``MIN_SKIP_BUDGET`` and more than half of the steps so far."""

    def __init__(self, error: type[SimjepaError], fix: str, count: int = 0):
        self.error, self.fix, self.count = error, fix, count

    def skip(self, step: int, what: str) -> None:
        """Record that step ``step`` (1-based) was skipped because ``what`` was non-finite."""
        self.count += 1
        warnings.warn(f"step {step}: non-finite {what}; batch skipped ({self.count} so far)")
        if self.count > max(MIN_SKIP_BUDGET, step // 2):
            raise self.error(f"{self.count} of {step} batches were non-finite: {self.fix}")


class RunState:
    """A run's resumable state file and its JSONL log.

    ``fmt`` is the state file's format tag and ``what`` how errors name such a file; ``settings`` (stored under ``settings_key``) are the
    settings the result depends on: a run resumes only with the same ones. ``every``/``last``: the
    state is saved every ``every`` steps and at step ``last`` (:meth:`due`).
    """

    def __init__(self, path: Path, log_path: Path, fmt: str, settings: Mapping[str, Any], *, every: int, last: int,
                 error: type[SimjepaError], what: str = "run state file", settings_key: str = "settings",
                 where: str | None = None):
        self.path, self.log_path, self.fmt, self.what = Path(path), Path(log_path), fmt, what
        self.settings, self.settings_key = dict(settings), settings_key
        self.every, self.last, self.error = every, last, error
        self.where = where or str(self.path)

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None when the run starts fresh. Refuses a file of another kind or a run
        with other settings (one line naming the settings that differ)."""
        if not self.path.is_file():
            return None
        state = load_file(self.path)
        if state.get("format") != self.fmt:
            raise self.error(f"{self.path} is not a simjepa {self.what}; delete it or use another --out")
        old = state.get(self.settings_key) or {}
        diff = sorted(k for k, v in old.items() if self.settings.get(k) != v)
        if diff:
            shown = ", ".join(f"{k} {old[k]!r} -> {self.settings.get(k)!r}" for k in diff)
            raise self.error(f"{self.where} holds a run with other settings ({shown}); use the same settings to resume "
                             f"or a new --out")
        return state

    def restore(self, state: Mapping[str, Any], modules: Mapping[str, nn.Module], optimizer: torch.optim.Optimizer,
                generators: Mapping[str, torch.Generator]) -> tuple[int, int]:
        """Load weights, optimizer and RNG state saved by :meth:`save`; returns (step, skipped batches)."""
        for key, module in modules.items():
            load_weights(module, state[key], f"{key} weights in {self.path}")
        try:
            optimizer.load_state_dict(state["optimizer"])
            for key, gen in generators.items():
                gen.set_state(state[key])
        except (ValueError, KeyError, RuntimeError, TypeError) as exc:
            raise CheckpointError(f"{self.path}: optimizer/RNG state unreadable ({exc}); delete it to restart the run") from None
        return int(state["step"]), int(state.get("skipped", 0))  # pretraining states before the skip policy: 0

    def due(self, step: int) -> bool:
        """Whether the state is saved after ``step`` (1-based)."""
        return step % self.every == 0 or step == self.last

    def save(self, step: int, skipped: int, modules: Mapping[str, nn.Module], optimizer: torch.optim.Optimizer,
             generators: Mapping[str, torch.Generator], **extra: Any) -> None:
        """Write the state atomically: weights of ``modules`` and the generators' states under their keys."""
        save_file({
            "format": self.fmt, self.settings_key: self.settings, "step": step, "skipped": skipped,
            **{k: {n: v.detach().cpu() for n, v in m.state_dict().items()} for k, m in modules.items()},
            "optimizer": optimizer.state_dict(), **{k: g.get_state() for k, g in generators.items()}, **extra,
        }, self.path)

    def last_logged(self, key: str) -> Any:
        """``key`` of the log's last row that has it (None without one): what a re-run of a finished run reports,
        since it takes no step of its own."""
        if not self.log_path.is_file():
            return None
        rows = [json.loads(line) for line in self.log_path.read_text().splitlines() if line.strip()]
        return next((row[key] for row in reversed(rows) if row.get(key) is not None), None)

    @contextlib.contextmanager
    def log(self, step: int) -> Iterator[IO[str]]:
        """The JSONL log opened for appending, cut back to rows of steps <= ``step`` (the saved state)."""
        truncate_log(self.log_path, step)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a") as f:
            yield f


def write_row(log: IO[str], row: Mapping[str, Any]) -> None:
    log.write(json.dumps(row) + "\n")
    log.flush()
