"""Curves of a pretraining run: loss and the collapse monitor (target std, effective rank) per step.

Why a picture: collapse shows as the effective rank of the EMA targets sinking towards 1 while the
loss keeps falling (a constant target is easy to predict); the loss alone looks like progress.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping


def read_log(path: str | os.PathLike) -> list[dict]:
    """Rows of a run's ``log.jsonl`` (one JSON object per logged step)."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def plotted_rows(path: str | os.PathLike) -> list[dict]:
    """A log's rows as plotted: a run with a pixel term logs its latent part apart (``latent_loss``), and that
    part, not the sum, is the loss that compares with runs without the term."""
    return [{**r, "loss": r.get("latent_loss", r.get("loss"))} for r in read_log(path)]


def plot_pretrain_logs(logs: Mapping[str, str | os.PathLike], out_png: str | os.PathLike, title: str = "") -> Path:
    """Plot loss, target std and target effective rank against step for one or more runs (label -> log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    keys = (("loss", "latent L1 loss (masked tokens)"), ("target_std", "target per-dim std"),
            ("target_erank", "target effective rank"))
    for label, path in logs.items():
        rows = plotted_rows(path)
        for ax, (key, _) in zip(axes, keys):
            pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
            if pts:
                ax.plot(*zip(*pts), label=label, lw=1.2)
    for ax, (_, name) in zip(axes, keys):
        ax.set_xlabel("step")
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")
    axes[-1].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png
