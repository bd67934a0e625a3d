"""Issue 21 experiment: pretrain encoder variants side by side on one GPU, probe each against random init.

One self-contained run (made for a single ~9-minute GPU lease; ``--tiny`` runs the same stages at toy
scale on a CPU to catch mistakes first):

1. collect pretraining episodes (Push + PickPlace, mixed policy, seeds 100000+, 128 px) and probe
   episodes (Push seeds 200000+, PickPlace seeds 210000+: never seen in pretraining);
2. pretrain every variant in its own process at the same time, each for the same wall-clock budget
   (steps calibrated from the first steps' speed, so the cosine schedule and EMA ramp complete);
3. probe each variant and a random init of each shape with ``world_model.probe.run_probe`` (position of
   end effector, cube, gripper opening) and ``run_motion_probe`` (velocities from 4-frame clips), the ridge
   solved on the GPU in float64 (same solution as the CPU code, faster);
4. write JSONs, logs, collapse plots and a summary under ``--out``; keep partial results at every stage.

The probe episodes are exactly those of ``simjepa probe --seed-start S --render-size 128`` (same
policy, seeds and renderer): ``simjepa collect`` and the probe share ``envs.collect.run_episode``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

T0 = time.time()

VARIANTS = {
    # name: (image_size, patch_size, frames, masks, steps that fit 2 h of pretraining on the 2-core CPU at
    # batch 64, from measured ms/step; see docs/encoder-v3.md). Each GPU run does these steps, or fewer if
    # the lease's budget cannot fit them (recorded), so a variant's probe is that of its CPU recipe.
    "base_64p8_f2": (64, 8, 2, "official", 9500),
    "clip8_64p8": (64, 8, 8, "official", 2700),
    "clip8_grid_64p8": (64, 8, 8, "grid", 2700),
    "clip4_grid_128p16": (128, 16, 4, "grid", 5900),
    "clip8_grid_128p16": (128, 16, 8, "grid", 2800),
    "clip4_128p8": (128, 8, 4, "official", 1500),  # 16x16 grid: grid masks == official masks
}


def log(msg: str) -> None:
    print(f"[{time.time() - T0:6.1f}s] {msg}", flush=True)


# --- stage 1: data ----------------------------------------------------------------------------------


def collect_all(args, data: Path) -> None:
    from envs.collect import CollectConfig, collect

    jobs = [("push", "simjepa/Push-v0", args.pretrain_episodes, 100000),
            ("pickplace", "simjepa/PickPlace-v0", args.pretrain_episodes, 120000)]
    for name, env, n, seed in jobs:
        t = time.time()
        collect(CollectConfig(env_id=env, episodes=n, out=str(data / name), policy="mixed", render_size=128,
                              workers=args.workers, seed_start=seed), progress=False)
        log(f"collected {n} {env} episodes (seeds {seed}+) in {time.time() - t:.1f}s")


def collect_probe(args, data: Path) -> None:
    from envs.collect import CollectConfig, collect

    for name, env, seed in (("probe_push", "simjepa/Push-v0", 200000), ("probe_pickplace", "simjepa/PickPlace-v0", 210000)):
        t = time.time()
        collect(CollectConfig(env_id=env, episodes=args.probe_episodes, out=str(data / name), policy="mixed",
                              render_size=128, workers=args.probe_workers, seed_start=seed), progress=False)
        log(f"collected {args.probe_episodes} probe episodes {env} (seeds {seed}+) in {time.time() - t:.1f}s")


# --- stage 2: one pretraining variant (runs in its own process) ---------------------------------------


def pretrain_variant(args) -> None:
    import torch

    from world_model.pretrain import PretrainConfig, _Trainer, ClipSampler, load_episode_frames, pretrain

    size, patch, frames, masks, cpu_steps = VARIANTS[args.variant]
    out = Path(args.out) / "ckpt" / f"{args.variant}.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    data = [str(Path(args.data) / "push"), str(Path(args.data) / "pickplace")]
    t = time.time()
    episodes = load_episode_frames(data, size)
    log(f"{args.variant}: loaded {len(episodes)} episodes in {time.time() - t:.1f}s")
    base = dict(encoder="vit_tiny", image_size=size, patch_size=patch, frames=frames, masks=masks,
                encoder_overrides={"depth": 6}, batch_size=args.batch, lr=args.lr, device=args.device,
                ckpt_every=100, log_every=10, seed=0)
    per_step = float("nan")
    if args.steps:
        steps = args.steps
    else:  # calibrate: time a few steps of a throwaway trainer (all variants at once, so contention counts)
        cal = _Trainer(PretrainConfig(steps=1000, warmup_steps=10, **base))
        sampler = ClipSampler(episodes, frames, 1, cal.c.still_fraction)
        for _ in range(3):
            cal.train_step(sampler)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.time()
        n_cal = 8
        for _ in range(n_cal):
            cal.train_step(sampler)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        per_step = (time.time() - t) / n_cal
        del cal
        remaining = args.train_budget - (time.time() - T0)
        steps = min(cpu_steps, max(args.min_steps, int(remaining / per_step * 0.85)))
    warmup = max(1, steps // 10)
    cfg = PretrainConfig(steps=steps, warmup_steps=warmup, **base)
    log(f"{args.variant}: {per_step * 1000:.0f} ms/step under contention -> {steps} steps (warm-up {warmup})")
    res = pretrain(cfg, episodes, out, progress=False, data=data)
    info = {"variant": args.variant, "steps": res.steps, "cpu_recipe_steps": cpu_steps, "seconds": res.seconds, "final_loss": res.final_loss,
            "ms_per_step_calibrated": per_step * 1000, "config": asdict(cfg), "episodes": len(episodes),
            "frames": int(sum(len(e) for e in episodes))}
    (out.parent / f"{args.variant}.json").write_text(json.dumps(info, indent=1))
    log(f"{args.variant}: done {res.steps} steps in {res.seconds:.0f}s, loss {res.final_loss:.4f}")


# --- stage 3: probes --------------------------------------------------------------------------------


def gpu_ridge(device: str):
    """A drop-in for probe._ridge_solutions that forms the Gram matrix and solves on ``device`` (float64)."""
    import numpy as np
    import torch

    def _ridge_solutions(x, y, mean, scale, alphas):
        xt = torch.from_numpy(np.asarray(x, np.float32)).to(device)
        m = torch.from_numpy(mean).to(device)
        s = torch.from_numpy(scale).to(device)
        yt = torch.from_numpy(np.asarray(y, np.float64)).to(device)
        z = (xt.double() - m) / s
        del xt
        out = {}
        if z.shape[0] > z.shape[1]:
            gram, zty = z.T @ z, z.T @ yt
            eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=device)
            for a in alphas:
                out[a] = torch.linalg.solve(gram + a * eye, zty).cpu().numpy()
        else:
            kernel = z @ z.T
            eye = torch.eye(kernel.shape[0], dtype=kernel.dtype, device=device)
            for a in alphas:
                out[a] = (z.T @ torch.linalg.solve(kernel + a * eye, yt)).cpu().numpy()
        return out

    return _ridge_solutions


def load_probe_episodes(d: Path):
    import numpy as np

    from simjepa_core import episodes as ep
    from world_model.probe import ProbeEpisode

    out = []
    for i in ep.complete_episode_indices(str(d)):
        e = ep.load_episode(str(d), i)
        s = e.states.astype(np.float64)
        out.append(ProbeEpisode(frames=e.frames, ee=s[:, :3], obj=s[:, 7:10], gripper=s[:, 6:7]))
    return out


def probe_jobs(out: Path) -> dict[str, tuple[str, bool]]:
    """label -> (checkpoint, random init?): every pretrained variant and a random init of each shape."""
    ckpts = sorted((out / "ckpt").glob("*.pt"))
    jobs = {c.stem: (str(c), False) for c in ckpts}
    for c in ckpts:
        size, patch = VARIANTS[c.stem][:2]
        jobs.setdefault(f"random_{size}p{patch}", (str(c), True))
    return jobs


def probe_one(args) -> None:
    """Probe one encoder: the cheap, important probes first, each written as soon as it is done."""
    import torch

    from world_model import probe as P
    from world_model.encoder import random_init_like
    from world_model.encoder_loading import load_encoder

    if args.device.startswith("cuda"):
        P._ridge_solutions = gpu_ridge(args.device)
    res_dir = Path(args.out) / "results"
    res_dir.mkdir(parents=True, exist_ok=True)
    label = args.label
    path, random = probe_jobs(Path(args.out))[label]
    enc = load_encoder(path)
    enc = (random_init_like(enc) if random else enc).to(args.device)
    size, patch = enc.config.image_size, enc.config.patch_size
    grid = size // patch
    push = load_probe_episodes(Path(args.data) / "probe_push")
    pick = None
    row = {"image_size": size, "patch": patch, "grid": grid, "checkpoint": Path(path).name, "random_init": random}
    plan = [("push", 4), ("motion", 4), ("pickplace", 4)] + ([("push", 8)] if grid >= 8 else []) + [("motion", 8)]
    for kind, k in plan:
        if time.time() - T0 > args.deadline:
            log(f"probe {label}: deadline reached before {kind} {k}")
            break
        t = time.time()
        if kind == "motion":
            m = P.run_motion_probe(enc, push, clip_frames=k, pool=2, image_size=size, progress=False)
            (res_dir / f"motion_{label}_push_clip{k}.json").write_text(json.dumps(m, indent=1))
            row[f"motion_clip{k}"] = {x: m[x] for x in ("r2_ee_velocity", "r2_object_velocity", "r2_object_velocity_moving")}
        else:
            if kind == "pickplace" and pick is None:
                pick = load_probe_episodes(Path(args.data) / "probe_pickplace")
            eps, env, seed = (push, "simjepa/Push-v0", 200000) if kind == "push" else (pick, "simjepa/PickPlace-v0", 210000)
            settings = P.ProbeSettings(env=env, episodes=len(eps), seed_start=seed, render_size=128, pool=k)
            r = P.run_probe(enc, settings, image_size=size, progress=False, episodes=eps)
            r["encoder"] = label
            (res_dir / f"probe_{label}_{kind}_pool{k}.json").write_text(json.dumps(r, indent=1))
            row[f"{kind}_pool{k}"] = {x: r[x] for x in ("r2_ee", "r2_object", "r2_gripper")}
        row.setdefault("seconds", {})[f"{kind}{k}"] = round(time.time() - t, 1)
        (res_dir / f"row_{label}.json").write_text(json.dumps(row, indent=1))
        log(f"probe {label} {kind} {k}: {json.dumps({x: y for x, y in row.items() if kind in x})}")


def export_unfinished(out: Path) -> None:
    """A variant killed at the deadline: export its last saved target encoder from the run state."""
    from world_model.checkpoints import load_file, save_model, weights_hash
    from world_model.pretrain import PretrainConfig, build_pretrain_encoder

    for run in sorted((out / "ckpt").glob("*.pt.run")):
        ckpt = run.with_name(run.name.removesuffix(".run"))
        if ckpt.exists() or not (run / "state.pt").exists():
            continue
        state = load_file(run / "state.pt")
        cfg = PretrainConfig(**state["settings"])
        enc = build_pretrain_encoder(cfg)
        enc.load_state_dict(state["target"])
        save_model(ckpt, "encoder", asdict(enc.config), enc, name=f"{cfg.encoder}-simjepa-pretrained",
                   weights_hash=weights_hash(enc.state_dict()),
                   pretraining={**asdict(cfg), "steps_done": state["step"], "unfinished": True})
        log(f"exported unfinished {ckpt.name} at step {state['step']} of {cfg.steps}")


def pack(args) -> None:
    """Results tarball + checkpoints: the two best (push cube R^2, pool 4) in fp32, the rest as fp16."""
    import tarfile

    import torch

    out, dest = Path(args.out), Path(args.dest)
    rows = {}
    for f in sorted((out / "results").glob("row_*.json")):
        rows[f.stem.removeprefix("row_")] = json.loads(f.read_text())
    (out / "results" / "summary.json").write_text(json.dumps(rows, indent=1))
    score = lambda r: (r.get("push_pool4") or {}).get("r2_object") or -9  # noqa: E731
    ranked = sorted((k for k, r in rows.items() if not r.get("random_init")), key=lambda k: -score(rows[k]))
    for i, c in enumerate(sorted((out / "ckpt").glob("*.pt"))):
        if c.stem in ranked[:2] or not ranked:
            (dest / f"enc_{c.stem}.pt").write_bytes(c.read_bytes())
        else:
            obj = torch.load(c, map_location="cpu", weights_only=True)
            obj["state_dict"] = {k: v.half() for k, v in obj["state_dict"].items()}
            torch.save(obj, dest / f"enc16_{c.stem}.pt")
    with tarfile.open(dest / "results.tgz", "w:gz") as tar:
        tar.add(out / "results", arcname="results")
        for f in sorted(out.glob("pretrain_*.log")) + sorted((out / "ckpt").glob("*.json")):
            tar.add(f, arcname=f"results/{f.name}")
    log(f"packed; ranking by push cube R^2 (pool 4): {[(k, round(score(rows[k]), 3)) for k in ranked]}")


def plots(args) -> None:
    from world_model.pretrain_plots import plot_pretrain_logs

    ck, res = Path(args.out) / "ckpt", Path(args.out) / "results"
    res.mkdir(parents=True, exist_ok=True)
    logs = {p.name.removesuffix(".pt.run"): p / "log.jsonl" for p in sorted(ck.glob("*.pt.run")) if (p / "log.jsonl").exists()}
    if logs:
        plot_pretrain_logs(logs, res / "collapse_all.png", title="issue 21 variants (same wall-clock budget each)")
        for k, v in logs.items():
            plot_pretrain_logs({k: v}, res / f"collapse_{k}.png", title=k)
            (res / f"log_{k}.jsonl").write_text(v.read_text())


# --- driver -----------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stage", default="all", choices=["all", "pretrain_variant", "probe_one", "plots", "pack"])
    ap.add_argument("--variant")
    ap.add_argument("--label")
    ap.add_argument("--dest", help="pack: where the files to bring back go")
    ap.add_argument("--hard-stop", type=float, default=480.0, help="seconds since start at which probes are killed")
    ap.add_argument("--out", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--workers", type=int, default=14)
    ap.add_argument("--probe-workers", type=int, default=8)
    ap.add_argument("--pretrain-episodes", type=int, default=400)
    ap.add_argument("--probe-episodes", type=int, default=300)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--steps", type=int, default=0, help="fixed steps (0: calibrate to --train-budget)")
    ap.add_argument("--min-steps", type=int, default=50)
    ap.add_argument("--train-budget", type=float, default=300.0, help="seconds since start by which training ends")
    ap.add_argument("--deadline", type=float, default=440.0, help="seconds since start after which no probe starts")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    args = ap.parse_args()
    global T0
    T0 = float(os.environ.get("EXP_T0", T0))
    if args.stage == "pretrain_variant":
        return pretrain_variant(args)
    if args.stage == "probe_one":
        return probe_one(args)
    if args.stage == "plots":
        return plots(args)
    if args.stage == "pack":
        return pack(args)
    data, out = Path(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    collect_all(args, data)
    env = {**os.environ, "EXP_T0": str(T0), "OMP_NUM_THREADS": "2"}
    common = ["--out", args.out, "--data", args.data, "--device", args.device, "--batch", str(args.batch),
              "--lr", str(args.lr), "--steps", str(args.steps), "--min-steps", str(args.min_steps),
              "--train-budget", str(args.train_budget)]
    procs = {}
    for v in args.variants.split(","):
        f = open(out / f"pretrain_{v}.log", "w")
        procs[v] = (subprocess.Popen([sys.executable, __file__, "--stage", "pretrain_variant", "--variant", v, *common],
                                     stdout=f, stderr=subprocess.STDOUT, env=env), f)
    collect_probe(args, data)
    for v, (p, f) in procs.items():
        try:
            p.wait(timeout=max(1.0, args.train_budget + 60 - (time.time() - T0)))
        except subprocess.TimeoutExpired:
            p.kill()
            log(f"{v}: killed at the training deadline")
        f.close()
        log(f"{v}: exit {p.returncode}; tail: {(out / f'pretrain_{v}.log').read_text()[-600:]}")
    plots(args)
    export_unfinished(out)
    procs = {}
    for label in probe_jobs(out):
        f = open(out / f"probe_{label}.log", "w")
        cmd = [sys.executable, __file__, "--stage", "probe_one", "--label", label, "--out", args.out, "--data", args.data,
               "--device", args.device, "--deadline", str(args.deadline)]
        procs[label] = (subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env), f)
    for label, (p, f) in procs.items():
        try:
            p.wait(timeout=max(1.0, args.hard_stop - (time.time() - T0)))
        except subprocess.TimeoutExpired:
            p.kill()
            log(f"probe {label}: killed at the hard stop")
        f.close()
        log(f"probe {label}: exit {p.returncode}; tail: {(out / f'probe_{label}.log').read_text()[-900:]}")
    log("all stages done")


if __name__ == "__main__":
    main()
