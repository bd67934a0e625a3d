"""Throughput of `simjepa train` and `plan-episode` alone and next to one other CPU-bound process.

Each workload runs as a user runs it (a fresh CLI process) twice: on a quiet machine, then while one
busy process (a Python loop, or a 1-thread torch matmul loop) runs alongside. It prints the ratio
contended / quiet; the target is >= 0.5 for each (issue 26). Variants:

- ``policy``: the CLI's own choice (no --threads, no OMP_* variables): passive OpenMP wait policy and
  a thread count from the idle cores (simjepa_cli.configure_threads);
- ``spin``: what the CLI did before: OMP_WAIT_POLICY=ACTIVE (libgomp's spinning) and one thread per core.

The numbers only mean something on an otherwise idle machine: check `uptime` first.

    .venv/bin/python benchmarks/contention.py --out runs/contention.json
    .venv/bin/python benchmarks/contention.py --variants policy --train-steps 10 --plan-steps 2   # quicker
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BUSY = {
    "python": "while True: pass",
    "torch": "import torch\ntorch.set_num_threads(1)\nx = torch.randn(512, 512)\nwhile True: x = (x @ x).tanh()",
}


def synthetic_features(root: Path, episodes: int = 8, steps: int = 20, grid: int = 8, dim: int = 192) -> Path:
    """A feature cache in `simjepa encode`'s format (the default model's 8x8 grid, ViT-tiny width):
    training speed depends on shapes, not on where the numbers came from."""
    from world_model.feature_cache import arrays_path, feats_path

    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    rows = []
    for i in range(episodes):
        states = rng.normal(size=(steps + 1, 7)).astype(np.float32)
        np.save(feats_path(root, i), rng.normal(size=(steps + 1, grid * grid, dim)).astype(np.float16))
        np.savez(arrays_path(root, i), actions=rng.uniform(-1, 1, (steps, 7)).astype(np.float32), states=states,
                 proprio=states, success=np.asarray(False), distance=np.asarray(0.1, np.float32))
        rows.append({"index": i, "frames": steps + 1, "steps": steps})
    manifest = {"format": "simjepa/feature_cache", "version": 1,
                "encoder": {"name": "synthetic", "config": {"embed_dim": dim}, "weights_hash": "0" * 16},
                "image_size": [8 * grid, 8 * grid], "grid": [grid, grid], "tokens_per_frame": grid * grid, "dim": dim,
                "dtype": "float16", "source": {"path": str(root), "env_id": "simjepa/Reach-v0", "render_size": 64},
                "action_dim": 7, "state_dim": 7, "proprio_dim": 7, "episodes": rows, "complete": True}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def cli_env(variant: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env["PYTHONPATH"] = f"{REPO}{os.pathsep}{env['PYTHONPATH']}" if env.get("PYTHONPATH") else str(REPO)
    env.setdefault("MUJOCO_GL", "egl")
    if variant == "spin":
        env["OMP_WAIT_POLICY"] = "ACTIVE"
    return env


def cli(args: list[str], variant: str) -> None:
    cmd = [sys.executable, "-c", "import sys, simjepa_cli; simjepa_cli.main(sys.argv[1:])", *args]
    if variant == "spin":
        cmd += ["--threads", str(len(os.sched_getaffinity(0)))]
    res = subprocess.run(cmd, env=cli_env(variant), capture_output=True, text=True, cwd=REPO)
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(args[:1])} failed ({res.returncode}): {res.stderr[-2000:]}")


def train_steps_per_s(features: Path, work: Path, steps: int, config: str, variant: str) -> float:
    """Optimizer steps per second inside the training loop (train's own clock: no start-up, no validation)."""
    out = work / f"train-{time.monotonic_ns()}"
    cli(["train", "--features", str(features), "--out", str(out), "--config", config, "--steps", str(steps),
         "--val-fraction", "0", "--ckpt-every", str(steps), "--quiet"], variant)
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    return last["samples_per_s"] / 16  # default --batch-size


def plan_seconds_per_action(work: Path, steps: int, variant: str) -> float:
    out = work / f"plan-{time.monotonic_ns()}"
    cli(["plan-episode", "--env", "simjepa/Reach-v0", "--seed", "500", "--model", "default", "--max-steps", str(steps),
         "--out", str(out), "--quiet"], variant)
    return json.loads((out / "metrics.json").read_text())["seconds_per_action"]


def with_contender(kind: str | None, fn):
    """``fn()`` alone (kind None) or while one busy process runs."""
    if kind is None:
        return fn()
    busy = subprocess.Popen([sys.executable, "-c", BUSY[kind]], env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        time.sleep(1.0)  # let it get going
        return fn()
    finally:
        busy.kill()
        busy.wait()


def cpu_model() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default="policy,spin", help="comma-separated: policy, spin")
    ap.add_argument("--workloads", default="train,plan-episode", help="comma-separated: train, plan-episode")
    ap.add_argument("--contender", choices=sorted(BUSY), default="python")
    ap.add_argument("--train-steps", type=int, default=20)
    ap.add_argument("--train-config", default="small")
    ap.add_argument("--plan-steps", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    args = ap.parse_args()

    load = os.getloadavg()
    print(f"cpu {cpu_model()}, {len(os.sched_getaffinity(0))} usable cores, load average {load[0]:.2f} "
          f"(the figures only mean something when it is near 0)")
    results: dict = {"cpu_model": cpu_model(), "cores": len(os.sched_getaffinity(0)), "load_average_at_start": load,
                     "contender": args.contender, "train_config": args.train_config, "train_steps": args.train_steps,
                     "plan_steps": args.plan_steps, "variants": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        features = synthetic_features(work / "feats")
        for variant in args.variants.split(","):
            row = {}
            for name, unit, measure, higher_is_better in (
                ("train", "steps/s", lambda: train_steps_per_s(features, work, args.train_steps, args.train_config, variant), True),
                ("plan-episode", "s/action", lambda: plan_seconds_per_action(work, args.plan_steps, variant), False),
            ):
                if name not in args.workloads.split(","):
                    continue
                quiet = with_contender(None, measure)
                busy = with_contender(args.contender, measure)
                kept = busy / quiet if higher_is_better else quiet / busy  # fraction of quiet throughput kept
                row[name] = {"unit": unit, "quiet": quiet, "contended": busy, "throughput_kept": kept}
                print(f"{variant:6s} {name:12s} quiet {quiet:8.3f} {unit:8s} contended {busy:8.3f} {unit:8s} "
                      f"kept {kept:6.1%} {'ok' if kept >= 0.5 else 'BELOW 50%'}", flush=True)
            results["variants"][variant] = row
    results["load_average_at_end"] = os.getloadavg()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
