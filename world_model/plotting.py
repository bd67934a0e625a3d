"""The loss curve of a training run (``loss_curve.png`` next to its ``metrics.jsonl``)."""
from __future__ import annotations

import json
from pathlib import Path

from simjepa_core.atomic import atomic_path


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
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
