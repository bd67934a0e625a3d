"""``simjepa bench``: planner, encoder, env and training throughput measured in one run, one machine.

Why one run: the machine is shared, so numbers from different runs are not comparable; the
speedup and the peak fraction are only meaningful when both sides are measured back to back.
The planner is timed through :class:`planning.Agent` on real env observations (encode + CEM), so
``seconds_per_action`` is what ``plan-episode`` pays per step. The reference planner is the
official V-JEPA 2 way (fp32, full prefix re-run at each imagined step, per-call RoPE); it is
also checked to pick the same plan as ours.
"""
from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .agent import IMAGE_GOAL, Agent, tuned_planner_defaults
from simjepa_core.atomic import atomic_path, write_json
from .planner import PlannerConfig
from .provenance import command_line, git_commit, model_identity

SWEEP_SAMPLES = (25, 50, 100, 200, 400)
SWEEP_ITERATIONS = (3, 5, 10)
SWEEP_MAX_COST = 4000  # samples x iterations x horizon
TASKS = ("simjepa/Reach-v0", "simjepa/Push-v0", "simjepa/PickPlace-v0")
TASK_SEED = 500  # a tuning seed: timings never touch the evaluation seeds
TASK_STEPS = 20
STANDIN = dict(image_size=64, patch_size=8, encoder="vit_tiny", encoder_depth=6, predictor="small")


@dataclass
class BenchConfig:
    """What to measure. ``quick``: tiny settings for a smoke test (seconds, numbers not meaningful)."""

    quick: bool = False
    model: str = "default"
    env_id: str = "simjepa/Reach-v0"
    sweep: bool = True
    reps: int = 1  # timed actions per setting (after one warm-up)
    eager: bool = True  # also time the planner with compile=False
    progress: bool = True

    def default_settings(self) -> dict[str, Any] | None:
        """Planner overrides on top of the model's tuned defaults (None = the model's own)."""
        return dict(samples=16, iterations=2, topk=4, horizon=2) if self.quick else None

    def sweep_grid(self) -> list[dict[str, int]]:
        """Grouped by (samples, horizon) so one warm-up serves all iteration counts. Points costing more
        than 400 x 10 x 1 candidate-steps are skipped (they are far above 1 s/action; the default
        settings are timed separately)."""
        if self.quick:
            return [dict(samples=s, iterations=1, horizon=1) for s in (8, 16)]
        return [dict(samples=s, iterations=i, horizon=h) for h in (1, 2, 3) for s in SWEEP_SAMPLES
                for i in SWEEP_ITERATIONS if s * i * h <= SWEEP_MAX_COST]


# --- machine ---------------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    flags = ""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        pass
    return {
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "bf16_isa": sorted({f for f in ("avx512_bf16", "amx_bf16", "amx_tile") if f in flags}),
        "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def best_of(fn: Callable[[], Any], reps: int) -> float:
    best = float("inf")
    for _ in range(max(1, reps)):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def peak_bf16_matmul(size: int, reps: int) -> float:
    """FLOP/s of a large square bf16 matmul under autocast: the machine's practical matmul ceiling."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=g).bfloat16()
    b = torch.randn(size, size, generator=g).bfloat16()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        a @ b  # warm-up: oneDNN kernel creation
        sec = best_of(lambda: a @ b, reps)
    return 2.0 * size**3 / sec


# --- models ----------------------------------------------------------------------------------------
def standin_world_model(predictor: str = "small", seed: int = 0):
    """Randomly initialised model of the default's shape (speed does not depend on weight values)."""
    from world_model.model_file import WorldModel
    from world_model.encoder import build_encoder
    from world_model.frozen_encoder import FrozenEncoder
    from world_model.predictor import build_predictor

    torch.manual_seed(seed)
    enc = build_encoder(STANDIN["encoder"], image_size=STANDIN["image_size"], patch_size=STANDIN["patch_size"],
                        depth=STANDIN["encoder_depth"])
    pred = build_predictor(predictor, enc.config.embed_dim).eval()
    grid = (STANDIN["image_size"] // STANDIN["patch_size"],) * 2
    return WorldModel(FrozenEncoder(enc.eval(), STANDIN["image_size"]), pred, STANDIN["image_size"], grid, {}, {})


def load_model(name: str) -> tuple[Any, dict[str, Any]]:
    """The shipped/given world model, or the stand-in when ``name == "default"`` and none is shipped."""
    from world_model.model_file import load_world_model
    from world_model.checkpoints import CheckpointError
    from world_model.predictor import DEFAULT_MODEL

    if name != "default" or DEFAULT_MODEL.is_file():
        try:
            wm = load_world_model(name)
            return wm, {"source": str(name), "standin": False}
        except CheckpointError:
            if name != "default":
                raise
    wm = standin_world_model(STANDIN["predictor"])
    return wm, {"source": "random stand-in (no default model shipped yet)", "standin": True, **STANDIN}


def describe(wm) -> dict[str, Any]:
    p = wm.predictor.config
    enc = getattr(getattr(wm, "encoder", None), "encoder", None)
    out = {"image_size": wm.image_size, "grid": list(wm.grid), "token_pool": wm.token_pool, "cameras": list(wm.cameras),
           "predictor": {"width": p.width, "depth": p.depth, "heads": p.num_heads, "embed_dim": p.embed_dim}}
    if enc is not None:
        c = enc.config
        out["encoder"] = {"width": c.embed_dim, "depth": c.depth, "heads": c.num_heads, "patch_size": c.patch_size}
    return out


def with_predictor(wm, name: str):
    """The same encoder with a freshly initialised ``name`` predictor (tiny/small/base)."""
    from world_model.predictor import build_predictor

    torch.manual_seed(0)
    p = wm.predictor.config
    pred = build_predictor(name, p.embed_dim, p.action_dim, p.state_dim).eval()
    return replace(wm, predictor=pred, planner=dict(wm.planner), info=dict(wm.info))


# --- planner timing --------------------------------------------------------------------------------
class Scene:
    """One env observation and goal, reused for every planner timing."""

    def __init__(self, env_id: str, render_size: int, seed: int = 0, cameras: tuple[str, ...] = ("front",)):
        import envs

        self.env_id = env_id
        env = envs.make_env(env_id, render_size=render_size, cameras=cameras)
        self.obs, info = env.reset(seed=seed)
        self.goal = info["goal"]
        self.action_scale = getattr(env.unwrapped, "action_scale", None)
        env.close()


def make_agent(wm, scene: Scene, *layers: dict[str, Any] | None) -> Agent:
    """The agent ``Agent.from_pretrained(model, env_id=...)`` builds: the model's settings for the env, and
    its embedded proposal (if any) seeding the search, as the shipped planning path uses it."""
    from .proposal import embedded_prior

    cfg = PlannerConfig.from_flat(tuned_planner_defaults(wm.planner, scene.env_id), *layers)
    prior = embedded_prior(wm, "the benchmarked model")
    if prior is None and cfg.search == "none":  # a stand-in without a proposal: time its search instead
        cfg = replace(cfg, search="cem")
    return Agent(wm, cfg, action_scale=scene.action_scale, proposal=prior)


def act_seconds_per_task(wm, env_ids: Iterable[str], steps: int, seed: int = TASK_SEED) -> dict[str, Any]:
    """Median wall time of the whole ``agent.act`` (encode the frame + plan) over the first ``steps`` steps of
    one closed-loop episode per task, at the model's settings for that task; and, on the same search, the
    official-style reference planner (fp32, no KV cache) on the same episode. A task whose setting is
    ``search="none"`` (the proposal alone) has no search for the reference to run: its reference is None."""
    import envs

    rows: dict[str, Any] = {}
    for env_id in env_ids:
        scene = Scene(env_id, wm.image_size, seed, wm.cameras)  # the env's action scale, for the agent
        env = envs.make_env(env_id, render_size=wm.image_size, cameras=wm.cameras)
        row: dict[str, Any] = {}
        for name, extra in (("shipped", None), ("reference", {"reference": True})):
            agent = make_agent(wm, scene, extra)
            if name == "reference" and agent.config.search == "none":
                row.update(seconds_per_action_reference=None, speedup_vs_reference=None)
                continue
            obs, info = env.reset(seed=seed)
            goal = {"pixels": info["goal"]["pixels"]}  # the image-goal protocol: the goal image only
            agent.act(obs, goal)  # warm-up: kernels and buffers for these shapes (and compiles, if any)
            agent.reset()
            times = []
            for _ in range(steps):
                t0 = time.perf_counter()
                action = agent.act(obs, goal)
                times.append(time.perf_counter() - t0)
                obs, _, terminated, truncated, _ = env.step(action)
                if terminated or truncated:
                    break
            row[f"seconds_per_action_{name}"] = statistics.median(times)
            if name == "shipped":
                flat = agent.config.to_flat()
                used = (("samples", "iterations", "topk", "horizon") if flat["search"] == "cem"  # what this search reads
                        else ("horizon", "execute_steps", "ensemble_plans"))
                row["settings"] = {k: flat[k] for k in ("search", *used)}
                row["proposal"] = agent.proposal is not None
                row["steps_timed"] = len(times)
        if row.get("seconds_per_action_reference") is not None:
            row["speedup_vs_reference"] = row["seconds_per_action_reference"] / row["seconds_per_action_shipped"]
        rows[env_id] = row
        env.close()
    return rows


def seconds_per_action(wm, scene: Scene, settings: dict[str, Any] | None, reps: int,
                       extra: dict[str, Any] | None = None, warm_up: bool = True) -> tuple[float, Agent]:
    """Best-of-``reps`` wall time of ``agent.act`` (encode + one CEM plan), after a one-iteration warm-up."""
    if warm_up:
        warm = make_agent(wm, scene, settings, extra, {"iterations": 1})
        warm.act(scene.obs, scene.goal)  # allocations, oneDNN kernels for these shapes (and compiles, if any)
    agent = make_agent(wm, scene, settings, extra)

    def act() -> None:
        agent.reset()
        agent.act(scene.obs, scene.goal)

    return best_of(act, reps), agent


def flops_per_action(wm, scene: Scene, settings: dict[str, Any] | None) -> float:
    """Predictor FLOPs of one action (matmuls + attention, counted by ``FlopCounterMode`` on one CEM
    iteration; every iteration does the same work)."""
    from torch.utils.flop_counter import FlopCounterMode

    agent = make_agent(wm, scene, settings, {"iterations": 1})
    ctx = _context(agent, scene)  # encoder FLOPs stay outside the count
    goal = agent.goal_features(scene.goal["pixels"])
    counter = FlopCounterMode(display=False)
    with counter:  # image-goal protocol: no goal state
        agent.planner.plan(ctx, goal, agent.action_dim, None, None, torch.Generator().manual_seed(0))
    iters = make_agent(wm, scene, settings).config.cem.iterations
    return float(counter.get_total_flops()) * iters


def _context(agent: Agent, scene: Scene):
    from .imagine import Context

    feats = agent.encode(scene.obs["pixels"])[None]  # [1, N, D]
    state = torch.from_numpy(np.asarray(scene.obs["state"][: agent.state_dim], dtype=np.float32))[None]
    return Context(feats, state, torch.zeros(0, agent.action_dim))


def fast_vs_reference(wm, scene: Scene, settings: dict[str, Any] | None) -> dict[str, Any]:
    """One CEM search whose every iteration scores the same candidates with the fast and the
    reference planner, timing each (order alternating), so both see the same machine load.

    The search follows the fast energies; the reference energies of the same candidates give the
    agreement check. Seconds per action = the summed scoring times + the encode and CEM overhead.
    """
    from .cem import cem

    fast = make_agent(wm, scene, settings)
    ref = make_agent(wm, scene, settings, {"reference": True})
    t0 = time.perf_counter()
    ctx = _context(fast, scene)
    encode_s = time.perf_counter() - t0
    goal = fast.goal_features(scene.goal["pixels"])
    cfg = fast.config.cem
    warm = torch.rand(cfg.samples, cfg.horizon, fast.action_dim, generator=torch.Generator().manual_seed(1)) * 2 - 1
    fast.planner.score(ctx, goal, None, warm)  # warm-up: kernels, buffers (and compiles) for these shapes
    fast.planner.score(ctx, goal, None, warm)
    ref.planner.score(ctx, goal, None, warm)
    t_fast: list[float] = []
    t_ref: list[float] = []
    diffs: list[float] = []
    same_best: list[bool] = []

    def timed(agent: Agent, cand: torch.Tensor, sink: list[float]) -> torch.Tensor:
        t = time.perf_counter()
        e = agent.planner.score(ctx, goal, None, cand)
        sink.append(time.perf_counter() - t)
        return e

    def score(cand: torch.Tensor) -> torch.Tensor:
        if len(t_fast) % 2 == 0:
            e_f, e_r = timed(fast, cand, t_fast), timed(ref, cand, t_ref)
        else:
            e_r, e_f = timed(ref, cand, t_ref), timed(fast, cand, t_fast)
        diffs.append(float((e_f - e_r).abs().max()))
        same_best.append(int(e_f.argmin()) == int(e_r.argmin()))
        return e_f

    t0 = time.perf_counter()
    res = cem(score, fast.action_dim, cfg, generator=torch.Generator().manual_seed(int(cfg.seed)))
    total = time.perf_counter() - t0
    cem_overhead = max(total - sum(t_fast) - sum(t_ref), 0.0)
    ratios = [r / f for f, r in zip(t_fast, t_ref)]
    return {
        "seconds_per_action_default": sum(t_fast) + encode_s + cem_overhead,
        "seconds_per_action_reference": sum(t_ref) + encode_s + cem_overhead,
        "per_iteration_seconds_fast": t_fast,
        "per_iteration_seconds_reference": t_ref,
        "median_iteration_speedup": statistics.median(ratios),
        "plans_match_reference": {
            "max_abs_energy_diff": max(diffs), "mean_energy": float(res.energy),
            "same_best_candidate_every_iteration": all(same_best), "iterations": len(diffs),
            "candidates_per_iteration": cfg.samples,
        },
        "config": fast.config,
    }


# --- other throughputs -----------------------------------------------------------------------------
def encoder_frames_per_s(wm, frames: int, reps: int) -> tuple[float, dict[str, Any]]:
    enc = wm.encoder
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (frames, wm.image_size, wm.image_size, 3), dtype=np.uint8)
    enc.encode(x[: min(frames, 4)])
    sec = best_of(lambda: enc.encode(x), reps)
    return frames / sec, {"frames": frames, "batch_size": enc.batch_size, "image_size": wm.image_size,
                          "precision": enc.precision, "input": "uint8 frames at image_size (no resize)"}


def env_steps_per_s(env_id: str, render_size: int, steps: int) -> tuple[float, dict[str, Any]]:
    import envs

    env = envs.make_env(env_id, render_size=render_size, max_episode_steps=10**6)
    env.reset(seed=0)
    env.step(env.action_space.sample())  # renderer creation outside the timing
    acts = np.random.default_rng(0).uniform(-1, 1, (steps,) + env.action_space.shape).astype(np.float32)
    t0 = time.perf_counter()
    for a in acts:
        env.step(a)
    sec = time.perf_counter() - t0
    env.close()
    return steps / sec, {"env": env_id, "render_size": render_size, "steps": steps, "actions": "uniform random",
                         "includes": "physics + rendering"}


def train_samples_per_s(wm, batch_size: int, steps: int) -> tuple[float, dict[str, Any]]:
    """Optimizer steps of the training objective (teacher forcing + rollout, bf16 autocast, AdamW)
    on random layer-normed features of the model's shape; the data pipeline is not included."""
    from world_model.losses import predictor_losses, window_frames
    from world_model.predictor import ACPredictor, normalize_reps
    from world_model.train import TrainConfig, make_optimizer
    from world_model.training_loop import autocast

    cfg = TrainConfig(out="", batch_size=batch_size)
    torch.manual_seed(0)
    model = ACPredictor(wm.predictor.config).train()
    opt = make_optimizer(model, cfg)
    c = model.config
    frames = window_frames(cfg.context, cfg.rollout)
    n = wm.grid[0] * wm.grid[1]
    g = torch.Generator().manual_seed(0)
    feats = normalize_reps(torch.randn(batch_size, frames, n, c.embed_dim, generator=g))
    actions = torch.rand(batch_size, frames - 1, c.action_dim, generator=g) * 2 - 1
    states = torch.randn(batch_size, frames, c.state_dim, generator=g)

    def step() -> None:
        with autocast(torch.device("cpu")):
            loss = predictor_losses(model, feats, actions, states, cfg.context, cfg.rollout, cfg.loss)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sec = (time.perf_counter() - t0) / steps
    return batch_size / sec, {"batch_size": batch_size, "steps_timed": steps, "context": cfg.context,
                              "rollout": cfg.rollout, "loss": cfg.loss, "precision": "bf16 autocast",
                              "predictor": {"width": c.width, "depth": c.depth}, "tokens_per_frame": n,
                              "data_loading": "excluded (features in memory)"}


# --- the run -----------------------------------------------------------------------------------------
def _bar(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="bench", unit="part", dynamic_ncols=True)


def run_bench(cfg: BenchConfig) -> dict[str, Any]:
    """Measure everything; returns the JSON-ready dict (see README "Performance" for the keys)."""
    q = cfg.quick
    grid = cfg.sweep_grid() if cfg.sweep or q else []
    bar = _bar(9 + len(grid) + int(cfg.eager), cfg.progress)

    def tick(what: str) -> None:
        if bar is not None:
            bar.set_postfix_str(what)
            bar.update(1)

    out: dict[str, Any] = {"quick": q, "machine": machine_info()}
    size = 512 if q else 2048
    peak = peak_bf16_matmul(size, 2 if q else 5)
    out["peak_bf16_matmul_flops_per_s"] = peak
    out["peak_bf16_matmul_flops_per_s_settings"] = {"m=n=k": size, "dtype": "bf16 under torch.autocast", "reps": "best of 5"}
    tick("peak matmul")

    wm, model_info = load_model(cfg.model)
    model_info.update(describe(wm))
    model_info.update(model_identity(cfg.model, wm))  # path, predictor_hash, encoder_hash
    out["model"] = model_info
    # What a results table needs to place the numbers: timings of the image-goal planner (no goal state).
    out.update(protocol=IMAGE_GOAL, command=command_line(), commit=git_commit(), seeds=None)
    scene = Scene(cfg.env_id, wm.image_size, cameras=wm.cameras)
    settings = cfg.default_settings()
    reps = cfg.reps

    pair = fast_vs_reference(wm, scene, settings)
    used = pair["config"].to_flat()
    base_settings = {"samples": used["samples"], "iterations": used["iterations"], "topk": used["topk"],
                     "horizon": used["horizon"], "context_frames": used["context_frames"]}
    timing = ("one CEM search, each iteration scoring the same candidates with both planners back to back "
              "(order alternating); seconds = summed scoring + encode + CEM overhead")
    sec_fast, sec_ref = pair["seconds_per_action_default"], pair["seconds_per_action_reference"]
    out["seconds_per_action_default"] = sec_fast
    out["seconds_per_action_default_settings"] = {**base_settings, "autocast_bf16": used["autocast"], "kv_cache": True,
                                                  "compile": used["compile"], "timed": timing,
                                                  "compile_note": "compile time excluded (warm-up); steps under "
                                                                  "COMPILE_MIN_NUMEL activations run eager",
                                                  "per_iteration_seconds": pair["per_iteration_seconds_fast"]}
    out["seconds_per_action_reference"] = sec_ref
    out["seconds_per_action_reference_settings"] = {**base_settings, "precision": "fp32", "kv_cache": False,
                                                    "rope": "recomputed per block (official)", "timed": timing,
                                                    "per_iteration_seconds": pair["per_iteration_seconds_reference"]}
    out["planner_speedup_vs_reference"] = sec_ref / sec_fast
    out["planner_speedup_vs_reference_settings"] = {**base_settings, "ratio": "seconds_per_action_reference / "
                                                     "seconds_per_action_default, timed interleaved in this run",
                                                     "median_per_iteration_ratio": pair["median_iteration_speedup"]}
    out["plans_match_reference"] = pair["plans_match_reference"]
    tick("default vs reference planner")

    task_steps = 2 if q else TASK_STEPS
    out["per_task"] = act_seconds_per_task(wm, TASKS[:1] if q else TASKS, task_steps)
    out["per_task_settings"] = {"timed": "median of agent.act (encode + plan) over the first steps of one "
                                         "closed-loop episode per task, after a warm-up act; each task at the "
                                         "model's settings for it, the embedded proposal seeding the search",
                                "seed": TASK_SEED, "steps": task_steps,
                                "reference": "the official-style planner (fp32, no KV cache) on the same search "
                                             "and episode; none when the task's setting runs no search"}
    tick("per-task act timing")

    flops = flops_per_action(wm, scene, settings)
    achieved = flops / sec_fast
    out["planner_peak_fraction"] = achieved / peak
    out["planner_peak_fraction_settings"] = {**base_settings, "predictor_flops_per_action": flops,
                                             "achieved_flops_per_s": achieved, "peak_bf16_matmul_flops_per_s": peak,
                                             "flops": "matmul + attention, torch.utils.flop_counter"}
    tick("flop count")

    if cfg.eager:
        sec_e, _ = seconds_per_action(wm, scene, settings, reps, {"compile": False})
        out["seconds_per_action_eager"] = sec_e
        out["seconds_per_action_eager_settings"] = {**base_settings, "compile": False,
                                                    "timed": "agent.act (encode + CEM plan), after a one-iteration warm-up"}
        tick("eager planner")

    for name in ("small", "base"):
        sec, _ = seconds_per_action(with_predictor(wm, name), scene, settings, reps)
        out[f"seconds_per_action_{name}"] = sec
        out[f"seconds_per_action_{name}_settings"] = {**base_settings, "predictor": name,
                                                      "encoder": "same as default model", "weights": "random init"}
        tick(f"{name} predictor")

    fps, fset = encoder_frames_per_s(wm, 8 if q else 64, 1 if q else 3)
    out["encoder_frames_per_s"], out["encoder_frames_per_s_settings"] = fps, fset
    tick("encoder")
    sps, sset = env_steps_per_s(cfg.env_id, wm.image_size, 10 if q else 200)
    out["env_steps_per_s"], out["env_steps_per_s_settings"] = sps, sset
    tick("env")
    tps, tset = train_samples_per_s(wm, 2 if q else 16, 1 if q else 3)
    out["train_samples_per_s"], out["train_samples_per_s_settings"] = tps, tset
    tick("train")

    rows = []
    warmed: set[tuple[int, int]] = set()
    for point in grid:
        shape = (point["samples"], point["horizon"])
        point_settings = {**(settings or {}), **point, "topk": min(10, point["samples"] // 2)}
        sec, _ = seconds_per_action(wm, scene, point_settings, 1, warm_up=shape not in warmed)
        warmed.add(shape)
        rows.append({**point, "seconds_per_action": sec})
        tick(f"sweep {point}")
    if not q:  # the default settings' point, from the interleaved measurement above
        rows.append({"samples": base_settings["samples"], "iterations": base_settings["iterations"],
                     "horizon": base_settings["horizon"], "seconds_per_action": sec_fast})
    out["sweep"] = rows
    out["sweep_settings"] = {"topk": "min(10, samples // 2)", "reps": 1, "max_samples_x_iterations_x_horizon": SWEEP_MAX_COST,
                             "timed": "agent.act (encode + CEM plan), after a one-iteration warm-up per (samples, horizon); "
                                      "the default-settings row comes from seconds_per_action_default"}
    fits = [r for r in rows if r["seconds_per_action"] <= 1.0]
    out["settings_within_1s"] = sorted(fits, key=lambda r: -(r["samples"] * r["iterations"] * r["horizon"]))
    out["machine"]["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    if bar is not None:
        bar.close()
    return out


def plot_sweep(rows: Iterable[dict[str, Any]], png: str | Path, title: str) -> None:
    """Seconds per action vs samples, one line per (iterations, horizon), 1 s budget marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(rows)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for key in sorted({(r["iterations"], r["horizon"]) for r in rows}):
        pts = sorted((r["samples"], r["seconds_per_action"]) for r in rows if (r["iterations"], r["horizon"]) == key)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{key[0]} iters, horizon {key[1]}")
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("CEM samples")
    ax.set_ylabel("seconds per action")
    ax.set_yscale("log")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def write_bench(cfg: BenchConfig, out: str | Path) -> dict[str, Any]:
    """Run the bench, write ``out`` (JSON) and the sweep plot next to it (same name, ``.png``)."""
    out = Path(out)
    res = run_bench(cfg)
    png = out.with_suffix(".png")
    m = res["machine"]
    plot_sweep(res["sweep"], png, f"{m['cpu_model']}, {m['torch_threads']} thread(s), predictor "
               f"{res['model']['predictor']['width']}x{res['model']['predictor']['depth']}")
    res["plot"] = png.name
    write_json(out, res)
    return res


def summary_lines(res: dict[str, Any]) -> list[str]:
    lines = [f"seconds/action: default {res['seconds_per_action_default']:.3f}, reference "
             f"{res['seconds_per_action_reference']:.3f} (speedup {res['planner_speedup_vs_reference']:.1f}x), "
             f"small {res['seconds_per_action_small']:.3f}, base {res['seconds_per_action_base']:.3f}",
             f"planner peak fraction {res['planner_peak_fraction']:.3f}; encoder {res['encoder_frames_per_s']:.1f} frames/s; "
             f"env {res['env_steps_per_s']:.1f} steps/s; train {res['train_samples_per_s']:.1f} samples/s"]
    for env_id, row in (res.get("per_task") or {}).items():
        ref = row.get("seconds_per_action_reference")
        lines.append(f"{env_id}: {row['seconds_per_action_shipped']:.3f} s/action (median agent.act, "
                     f"search {row['settings']['search']})"
                     + ("" if ref is None else f", reference {ref:.3f} ({row['speedup_vs_reference']:.1f}x)"))
    if res.get("settings_within_1s"):
        best = res["settings_within_1s"][0]
        lines.append(f"largest sweep setting within 1 s/action: {best}")
    med = statistics.median([r["seconds_per_action"] for r in res["sweep"]]) if res["sweep"] else None
    if med is not None:
        lines.append(f"sweep: {len(res['sweep'])} settings, median {med:.3f} s/action")
    return lines
