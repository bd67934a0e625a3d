"""Tiny artefacts built once per test module, and the checks every robustness case repeats.

Every artefact is the smallest that still exercises the real code path: a 3-episode, 5-step,
32 px Reach dataset, a 1-block ViT-tiny encoder at 32 px (2x2 patch grid), its feature cache and a
2-step tiny predictor trained on it, all made through the same CLI a user runs.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SIZE = 32  # px: frames, encoder input
TINY_PLANNER = ["--samples", "4", "--iters", "1", "--topk", "2", "--horizon", "1", "--max-steps", "1"]


def cli(args: list[str], capsys, entry: str = "simjepa") -> tuple[int, str]:
    """Run a console script in-process through ``simjepa_cli._run`` (the real error path)."""
    import simjepa_cli

    main = simjepa_cli.plan_episode_main if entry == "plan-episode" else simjepa_cli.main
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(args)
        raise SystemExit(0)
    return info.value.code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, *needles: str) -> str:
    """Exit code 2 and exactly one visible stderr line ``error: ...`` that contains every needle.

    "Visible" is what a terminal shows: a progress bar that erased itself with carriage returns
    leaves nothing, so only the text after the last ``\r`` of each line counts.
    """
    lines = [shown for line in err.split("\n") if (shown := line.rsplit("\r", 1)[-1]).strip()]
    assert code == 2, f"exit code {code}, stderr: {err}"
    assert len(lines) == 1 and lines[0].startswith("error: "), f"not one error line: {err!r}"
    for n in needles:
        assert n.lower() in lines[0].lower(), f"{n!r} not in {lines[0]!r}"
    return lines[0]


def tree_hashes(*paths: Path) -> dict[str, str]:
    """sha256 of every file under ``paths`` (files or directories), keyed by path."""
    out = {}
    for root in map(Path, paths):
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for p in files:
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def writes_blocked_by_chmod(tmp: Path) -> bool:
    """False when running as root (or on a file system that ignores modes): chmod 555 does not stop writes."""
    probe = tmp / "chmod_probe"
    probe.mkdir()
    probe.chmod(0o555)
    try:
        (probe / "x").write_text("x")
    except PermissionError:
        return True
    finally:
        probe.chmod(0o755)
    return False


def subprocess_env() -> dict[str, str]:
    """One thread per process (the machine is shared) and the repo importable."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
    env.setdefault("MUJOCO_GL", "egl")
    return env


def console(name: str) -> list[str]:
    """The installed console script next to this interpreter (``simjepa`` or ``plan-episode``)."""
    script = Path(sys.executable).with_name(name)
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", f"import simjepa_cli; simjepa_cli.{'plan_episode_main' if name == 'plan-episode' else 'main'}()"]


def run_console(name: str, args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    """Run a console script; stdout/stderr decoded without newline translation (``\r`` kept, as a
    terminal gets it: text mode would turn a progress bar's carriage returns into new lines)."""
    res = subprocess.run([*console(name), *args], capture_output=True, timeout=timeout, env=subprocess_env(), cwd=REPO)
    return subprocess.CompletedProcess(res.args, res.returncode, res.stdout.decode(errors="replace"),
                                       res.stderr.decode(errors="replace"))


class Workspace:
    """Paths of the tiny artefacts of one test module."""

    def __init__(self, root: Path):
        self.root = root
        self.data = root / "data"
        self.encoder = root / "enc.pt"
        self.cache = root / "feats"
        self.model = root / "model"


def build_workspace(root: Path, capsys=None, with_model: bool = True) -> Workspace:
    """collect -> save encoder -> encode -> train, all tiny; returns the paths."""
    import torch

    from envs.collect import CollectConfig, collect
    from world_model.encoder import build_encoder
    from world_model.encoder_loading import save_encoder

    ws = Workspace(root)
    collect(CollectConfig(env_id="simjepa/Reach-v0", episodes=3, out=str(ws.data), policy="mixed", render_size=SIZE,
                          max_steps=5), progress=False)
    save_encoder(ws.encoder, build_encoder("vit_tiny", depth=1, image_size=SIZE))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        import simjepa_cli

        for args in (["encode", "--data", str(ws.data), "--encoder", str(ws.encoder), "--out", str(ws.cache), "--quiet"],
                     ["train", "--features", str(ws.cache), "--out", str(ws.model), "--config", "tiny", "--steps", "2",
                      "--batch-size", "2", "--workers", "0", "--ckpt-every", "1", "--val-fraction", "0.34", "--quiet"]):
            if args[0] == "train" and not with_model:
                continue
            with pytest.raises(SystemExit) as info:
                simjepa_cli.main(args)
                raise SystemExit(0)
            assert info.value.code == 0, args
    finally:
        torch.set_num_threads(threads)
    return ws
