"""What a result file records about how it was made: command, commit, model (path + weights hash).

So a table generated from result files can say which code, which weights and which command produced
each number, and a number can be reproduced or discarded when any of them changes.
"""
from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def command_line(argv: list[str] | None = None) -> str:
    """The command as typed: the console script's name, then its arguments."""
    argv = list(sys.argv if argv is None else argv)
    if not argv:
        return ""
    return shlex.join([Path(argv[0]).name, *argv[1:]])


def git_commit(repo: Path = REPO) -> str | None:
    """HEAD of the checkout this code runs from, with ``-dirty`` when files differ from it; None outside git."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=30,
                              check=True).stdout.strip()

    try:
        head = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("-dirty" if dirty else "")


def model_identity(model: str | Path, world_model: Any) -> dict[str, Any]:
    """``{"path", "predictor_hash", "encoder_hash"}``: the model as asked for and the content hashes of
    the weights that ran (``world_model.checkpoints.weights_hash``)."""
    from world_model.checkpoints import weights_hash

    def hash_of(module: Any) -> str | None:
        state_dict = getattr(module, "state_dict", None)
        return weights_hash(state_dict()) if callable(state_dict) else None

    encoder = getattr(world_model, "encoder", None)
    encoder = getattr(encoder, "encoder", encoder)  # a FrozenEncoder wraps the ViT
    return {"path": str(model), "predictor_hash": hash_of(getattr(world_model, "predictor", None)),
            "encoder_hash": hash_of(encoder)}


def high_level_identity(agent: Any) -> dict[str, Any] | None:
    """The two-level planner's macro-step model (path, k, its search, predictor hash); None for flat planning."""
    high = getattr(agent, "high_level", None)
    if high is None:
        return None
    from world_model.checkpoints import weights_hash

    return {**high.identity, "predictor_hash": weights_hash(high.predictor.state_dict())}
