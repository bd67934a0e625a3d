"""Command-line entry points: ``simjepa <command>`` and ``plan-episode``.

The commands are thin: they parse options and call the library. Error handling lives here once:
a :class:`simjepa_core.errors.SimjepaError`, an ``OSError`` (permissions, disk) or a click usage error
becomes one line on stderr and exit code 2; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import os

# Before anything loads torch (libgomp reads it once, at load): idle OpenMP threads sleep instead of
# spinning, so a thread whose partner was descheduled by another process does not burn the core it
# waits for (docs/performance.md). An explicit setting in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import functools  # noqa: E402
import sys  # noqa: E402

import click  # noqa: E402

from simjepa_core.errors import SimjepaError  # noqa: E402


def _run(cli: click.Command, args: list[str] | None = None) -> None:
    try:
        cli.main(args=args, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
        sys.exit(0)
    except click.exceptions.UsageError as exc:
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
        click.echo(f"error: {exc.format_message()}{hint}", err=True)
        sys.exit(2)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except (SimjepaError, OSError) as exc:
        click.echo(f"error: {_one_line(exc)}", err=True)
        sys.exit(2)


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in text:
        text = f"{text}: {exc.filename}"
    return " ".join(text.split())


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def cli() -> None:
    """simjepa: V-JEPA 2-AC world models and latent planning in MuJoCo.

    \b
    Pipeline:
      simjepa collect  --env simjepa/Reach-v0 --episodes 200 --out data/reach
      simjepa encode   --data data/reach --encoder default --out feats/reach
      simjepa train    --features feats/reach --out models/reach
      plan-episode     --env simjepa/Reach-v0 --seed 0 --model models/reach --out runs/ep0
      simjepa evaluate --env simjepa/Reach-v0 --episodes 50 --seed-start 1000 --model default --policy planner --out runs/eval
    """


def main(args: list[str] | None = None) -> None:
    """Console script ``simjepa``."""
    _run(cli, args)


# --- numeric options: checked at the edge (before any model or env loads), one-line error, exit 2 ----
class _Real(click.FloatRange):
    """A float within bounds and not NaN (NaN compares false with every bound, so FloatRange lets it in)."""

    def convert(self, value, param, ctx):
        rv = super().convert(value, param, ctx)
        if rv != rv:
            self.fail(f"{value!r} is not a number.", param, ctx)
        return rv


SEED = click.IntRange(0, 2**31 - 1)  # what numpy, gymnasium and torch all accept
EPISODES = click.IntRange(1, 1_000_000)
EPISODE_STEPS = click.IntRange(1, 100_000)  # env steps in one episode
STEPS = click.IntRange(1, 100_000_000)  # optimizer steps and checkpoint intervals
RENDER_PX = click.IntRange(16, 1024)  # envs.arm.MIN_RENDER..MAX_RENDER
IMAGE_PX = click.IntRange(16, 2048)  # encoder input
BATCH = click.IntRange(1, 65_536)
PROCESSES = click.IntRange(1, 256)
THREADS = click.IntRange(1, 1024)
SMALL = click.IntRange(1, 1024)  # rollout lengths, pools, depths, repetitions


def _ints(low: int, high: int) -> click.IntRange:
    return click.IntRange(low, high)


# --- CPU threads: one policy for every command ----------------------------------------------------
def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads: ``threads`` if given, else what the environment asks for
    (``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS``, which torch already honours), else the cores other
    processes leave idle (:func:`free_cores`, at least 1). With the passive wait policy set above, a
    count that turns out too high costs little; spinning threads cost 10x (docs/performance.md)."""
    import torch

    if threads is None and not any(os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")):
        threads = free_cores()
    if threads is not None and threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def free_cores(window: float = 0.05) -> int:
    """Cores this process may use that other processes leave idle: measured over ``window`` seconds from
    /proc/stat (now, unlike the 1-minute load average, which still counts a job that just ended), else
    cores minus the rounded load average; at least 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    idle = _idle_cpus(window)
    if idle is None:
        try:
            idle = cores - os.getloadavg()[0]
        except OSError:  # no load average on this platform
            idle = cores
    return max(1, min(cores, round(idle)))


def _idle_cpus(window: float) -> float | None:
    """Idle CPUs (all of the machine's, in CPU units) averaged over ``window`` s; None without /proc/stat."""
    import time

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
        return ticks[3] + ticks[4], sum(ticks[:8])  # idle + iowait, all but guest time

    try:
        idle0, total0 = sample()
        time.sleep(window)
        idle1, total1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    return (idle1 - idle0) / (total1 - total0) * (os.cpu_count() or 1)


def _threads_option(fn):
    """``--threads`` on a command, and the thread policy applied before the command runs."""
    @functools.wraps(fn)
    def run(*args, threads=None, **kwargs):
        configure_threads(threads)
        return fn(*args, **kwargs)

    return click.option("--threads", type=THREADS, default=None,
                        help="torch CPU threads [default: $OMP_NUM_THREADS if set, else the cores not busy "
                             "with other processes].")(run)


# --- commands are registered below, one section per area --------------------------------------


# --- planning: plan-episode, simjepa evaluate (planning/) ---------------------------------------
def _planner_options(fn):
    """CEM/energy flags shared by plan-episode and evaluate; unset flags keep the model's tuned defaults."""
    opts = [
        click.option("--samples", type=_ints(2, 100_000), default=None, help="CEM candidates per iteration (official: 400)."),
        click.option("--iters", type=_ints(1, 1000), default=None, help="CEM iterations per action (official: 10)."),
        click.option("--topk", type=_ints(2, 100_000), default=None, help="CEM elites (official: 10)."),
        click.option("--horizon", type=_ints(1, 100), default=None, help="Planned actions per search (official: 2)."),
        click.option("--search", type=click.Choice(["cem", "none"]), default=None,
                     help="cem: search with the world model; none: execute the learned proposal's plan with no search "
                          "(default: the model's setting for the env; the default model runs Push and PickPlace with none)."),
        click.option("--energy", type=click.Choice(["l1", "l2"]), default=None, help="Feature distance (default l1)."),
        click.option("--state-weight", type=_Real(0, 1e6), default=None,
                     help="Weight of |s_T - s_goal| in the energy (default 0). It reads the goal's simulator state: "
                          "privileged, so only with --subgoals expert-replay."),
        click.option("--planner-seed", type=SEED, default=None, help="Seed of the CEM sampler (default 0)."),
        click.option("--max-steps", type=EPISODE_STEPS, default=None, help="Episode step budget (default: the env's)."),
        click.option("--render-size", type=RENDER_PX, default=None,
                     help="Env render size in pixels (default: the model's input size; 256 for baselines)."),
        click.option("--subgoals", type=click.Choice(["none", "expert-replay"]), default="none", show_default=True,
                     help="none: the image-goal protocol (plan towards the env's one goal image). expert-replay: "
                          "PRIVILEGED, Push and PickPlace only: replay the scripted expert on the evaluated seed and "
                          "plan through its frames; results are labelled 'expert-replay (privileged)'."),
        click.option("--proposal", type=click.Path(dir_okay=False), default=None,
                     help="A proposal file from `simjepa train-proposal`: its actions seed every CEM search "
                          "(initial mean, and --anchor-fraction of the samples drawn around it); the energy decides. "
                          "Default: the proposal embedded in the model (the default model has one); 'none': no "
                          "proposal (flat CEM)."),
        click.option("--anchor-fraction", type=_Real(0, 1), default=None,
                     help="With --proposal: share of each iteration's samples drawn around the proposal (default 0.25)."),
        click.option("--anchor-std", type=_Real(0, 10), default=None,
                     help="With --proposal: std of the samples drawn around the proposal (default 0.2)."),
        click.option("--init-std", type=_Real(0, 10, min_open=True), default=None,
                     help="CEM initial std of the translation dims (default 1.0, the full range)."),
        click.option("--subgoal-steps", type=EPISODE_STEPS, default=None,
                     help="With --subgoals expert-replay: steps on each sub-goal but the last, which keeps the rest "
                          "(default: the task's tuned budget, at most an even split of the episode)."),
        click.option("--macro-model", type=click.Path(), default=None,
                     help="Two-level planning: a macro-step model (`simjepa train --macro-steps k`) plans macro-actions "
                          "towards the goal image; its first imagined macro-frame is the goal of the search above."),
        click.option("--macro-samples", type=_ints(2, 100_000), default=None, help="With --macro-model: high-level CEM samples "
                     "(default: the macro model's recorded search)."),
        click.option("--macro-iters", type=SMALL, default=None, help="With --macro-model: high-level CEM iterations."),
        click.option("--macro-horizon", type=SMALL, default=None,
                     help="With --macro-model: macro-steps planned (k env steps each) by the high level."),
        click.option("--macro-every", type=SMALL, default=None,
                     help="With --macro-model: the high level searches again once its sub-goal is this many env steps "
                          "old, holding it until then (default 1: at every re-plan; k: about once per macro-step)."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _device_option(fn):
    """--device, shared by plan-episode and evaluate (planning.agent.check_device checks it)."""
    return click.option("--device", default="cpu", show_default=True,
                        help="Where the planner's world model runs: cpu, cuda, cuda:1 ... (a GPU searches faster, and "
                             "many evaluate processes can share one; planner without --proposal / --macro-model).")(fn)


def _macro_overrides(macro_model, samples, iters, horizon, every=None) -> dict:
    """The high level's search overrides (None: the macro model's recorded setting); refused without a macro model,
    where they would silently change nothing."""
    given = {k: v for k, v in {"samples": samples, "iterations": iters, "horizon": horizon,
                               "replan_every": every}.items() if v is not None}
    if given and macro_model is None:
        raise click.UsageError("--macro-samples, --macro-iters, --macro-horizon and --macro-every size the high level "
                               "of two-level planning; pass --macro-model RUN with them")
    return given


def _overrides(samples, iters, topk, horizon, energy, state_weight, planner_seed, anchor_fraction=None, anchor_std=None,
               init_std=None, search=None) -> dict:
    return {"samples": samples, "iterations": iters, "topk": topk, "horizon": horizon, "metric": energy,
            "state_weight": state_weight, "seed": planner_seed, "anchor_fraction": anchor_fraction,
            "anchor_std": anchor_std, "init_std": init_std, "search": search}


@click.command("plan-episode", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--env", "env_id", required=True, help="Env id, e.g. simjepa/Reach-v0 (or any Gymnasium MuJoCo id).")
@click.option("--seed", type=SEED, required=True, help="Episode seed (same seed, same episode).")
@click.option("--model", default="default", show_default=True, help="'default' or a checkpoint file / training run dir.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Output folder.")
@_device_option
@_planner_options
@click.option("--landscape", is_flag=True, help="Also write landscape.png: energy over the first action's dx, dy.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_threads_option
def plan_episode_cmd(env_id, seed, model, out, device, samples, iters, topk, horizon, search, energy, state_weight, planner_seed,
                     max_steps, render_size, subgoals, proposal, anchor_fraction, anchor_std, init_std, subgoal_steps,
                     macro_model, macro_samples, macro_iters, macro_horizon, macro_every, landscape, quiet) -> None:
    """Plan one closed-loop episode with CEM on a world model's L1 energy.

    Writes OUT/episode.mp4 (observation | goal, with step, energy and distance) and OUT/metrics.json
    (success, final_distance, steps, seconds_per_action, energy and distance per step, protocol,
    command, commit, model and its weights hashes). The planner sees the observation and the env's
    one goal image (protocol image-goal) unless --subgoals expert-replay is asked for.

    \b
    Examples:
      plan-episode --env simjepa/Reach-v0 --seed 0 --model default --out runs/ep0
      plan-episode --env simjepa/Push-v0 --seed 3 --model models/push --out runs/push3 --samples 200 --iters 5
      plan-episode --env simjepa/Reach-v0 --seed 0 --model default --out runs/ep0 --landscape
      plan-episode --env simjepa/Push-v0 --seed 3 --out runs/push3-replay --subgoals expert-replay   # privileged
      plan-episode --env simjepa/Push-v0 --seed 500 --out runs/push500 --proposal runs/proposal.pt
      plan-episode --env simjepa/Push-v0 --seed 500 --out runs/push500-2lvl --macro-model models/macro5
    """
    from planning.plan_episode import plan_episode

    m = plan_episode(env_id, seed, model, out,
                     _overrides(samples, iters, topk, horizon, energy, state_weight, planner_seed, anchor_fraction, anchor_std,
                                init_std, search),
                     max_steps=max_steps, render_size=render_size, subgoals=subgoals, subgoal_steps_per_goal=subgoal_steps,
                     landscape=landscape, progress=not quiet, proposal=proposal, macro_model=macro_model,
                     macro_overrides=_macro_overrides(macro_model, macro_samples, macro_iters, macro_horizon, macro_every), device=device)
    click.echo(f"{'success' if m['success'] else 'failure'}: final distance {m['final_distance']:.3f} m after "
               f"{m['steps']} steps, {m['seconds_per_action']:.3f} s/action -> {out}")


cli.add_command(plan_episode_cmd)


def plan_episode_main(args: list[str] | None = None) -> None:
    """Console script ``plan-episode``."""
    _run(plan_episode_cmd, args)


@cli.command("evaluate")
@click.option("--env", "env_id", required=True, help="Env id, e.g. simjepa/Reach-v0.")
@click.option("--episodes", type=EPISODES, required=True, help="Number of episodes.")
@click.option("--seed-start", type=SEED, default=0, show_default=True, help="Seed of the first episode (then +1 each).")
@click.option("--model", default="default", show_default=True, help="'default' or a checkpoint file / training run dir (planner only).")
@click.option("--policy", type=click.Choice(["planner", "random", "expert", "proposal"]), default="planner", show_default=True,
              help="proposal: the learned proposal alone (--proposal FILE, or the model's embedded one; the model's "
                   "encoder, no world-model search), a baseline.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Output folder for results.json / results.md.")
@click.option("--workers", type=PROCESSES, default=1, show_default=True, help="Episodes run in parallel processes.")
@_device_option
@_planner_options
@_threads_option
def evaluate_cmd(env_id, episodes, seed_start, model, policy, out, workers, device, samples, iters, topk, horizon, search, energy,
                 state_weight, planner_seed, max_steps, render_size, subgoals, proposal, anchor_fraction, anchor_std, init_std,
                 subgoal_steps, macro_model, macro_samples, macro_iters, macro_horizon, macro_every) -> None:
    """Success rate and final distance of a policy over seeded episodes.

    Writes OUT/results.json (success_rate, mean_final_distance, episodes: one row per episode, protocol,
    command, commit, model and its weights hashes, seeds; rewritten after every episode) and
    OUT/results.md (the same as a markdown table). The planner sees the observation and the env's one
    goal image (protocol image-goal) unless --subgoals expert-replay is asked for.

    \b
    Examples:
      simjepa evaluate --env simjepa/Reach-v0 --episodes 50 --seed-start 1000 --model default --policy planner --out runs/eval
      simjepa evaluate --env simjepa/Push-v0 --episodes 20 --seed-start 0 --policy expert --out runs/push-expert --workers 2
      simjepa evaluate --env simjepa/Push-v0 --episodes 10 --seed-start 500 --proposal runs/proposal.pt --out runs/push-prop
      simjepa evaluate --env simjepa/Push-v0 --episodes 10 --seed-start 500 --policy proposal --proposal runs/proposal.pt --out runs/p
    """
    from planning.evaluate import evaluate

    r = evaluate(env_id, episodes, seed_start, policy, model, out, workers,
                 _overrides(samples, iters, topk, horizon, energy, state_weight, planner_seed, anchor_fraction, anchor_std,
                            init_std, search),
                 max_steps=max_steps, render_size=render_size, subgoals=subgoals, subgoal_steps_per_goal=subgoal_steps,
                 proposal=proposal, macro_model=macro_model,
                 macro_overrides=_macro_overrides(macro_model, macro_samples, macro_iters, macro_horizon, macro_every), device=device)
    click.echo(f"{policy} on {env_id}: success {r['success_rate']:.0%}, mean final distance "
               f"{r['mean_final_distance']:.3f} m over {episodes} episodes -> {out}")


# --- encoder and feature cache: simjepa encode (world_model/feature_cache.py) ------------------
@cli.command("encode")
@click.option("--data", type=click.Path(file_okay=False), required=True, help="Episode dataset written by `simjepa collect`.")
@click.option("--encoder", "encoder_name", default="default", show_default=True,
              help="'default', vit_tiny|vit_small|...|vit_gigantic (seeded random init), an official V-JEPA 2 .pt, "
                   "a Hugging Face V-JEPA 2 safetensors file/dir, or a simjepa encoder checkpoint.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Cache folder (created; resumed if present).")
@click.option("--image-size", type=IMAGE_PX, default=None,
              help="Encoder input size in px, a multiple of 16 [default: the encoder's own, 256 for official files].")
@click.option("--token-pool", type=_ints(1, 64), default=1, show_default=True,
              help="Average each k x k block of patch tokens: e.g. 128 px, patch 8, --token-pool 2 gives the 8x8 "
                   "tokens of a 64 px frame from twice the pixels. The trained model records it and plans with it.")
@click.option("--batch-size", type=BATCH, default=32, show_default=True, help="Frames per forward pass.")
@click.option("--precision", type=click.Choice(["bf16", "fp32"]), default="bf16", show_default=True,
              help="Autocast precision of the matmuls (weights stay fp32).")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the encoder (slow start, faster on long runs).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_threads_option
def encode_cmd(data, encoder_name, out, image_size, token_pool, batch_size, precision, compile_, quiet) -> None:
    """Encode every frame of an episode dataset once with the frozen encoder (fp16 feature cache).

    Writes OUT/manifest.json (encoder name, config, weights hash, image size, grid, token pool, source) and per
    episode OUT/episode_NNNNNN.feats.npy (float16 [T+1, N, D]) + OUT/episode_NNNNNN.npz (actions,
    states, proprio). Interrupted runs resume; a cache built by another encoder is refused.
    Shard across processes with torchrun: rank r encodes episodes i % K == r.

    \b
    Examples:
      simjepa encode --data data/reach --encoder default --out feats/reach
      simjepa encode --data data/reach --encoder vit_tiny --image-size 64 --out feats/reach-tiny --threads 1
      simjepa encode --data data/push128 --encoder enc128.pt --token-pool 2 --out feats/push128
      simjepa encode --data data/reach --encoder vitl.pt --out feats/reach-vitl --batch-size 8
      torchrun --nproc-per-node 2 "$(which simjepa)" encode --data data/reach --encoder default --out feats/reach
    """
    from world_model.encoder_loading import load_encoder
    from world_model.feature_cache import build_feature_cache

    encoder = load_encoder(encoder_name, image_size=image_size)
    cache = build_feature_cache(data, encoder, out, token_pool=token_pool, batch_size=batch_size, precision=precision,
                                compile=compile_, progress=not quiet)
    state = "complete" if cache.complete else "partial (other ranks still running)"
    click.echo(f"{len(cache)} episodes cached ({state}): grid {cache.grid[0]}x{cache.grid[1]}, dim {cache.dim}, "
               f"encoder {cache.encoder['name']} [{cache.encoder['weights_hash']}] -> {out}")


# --- predictor training: simjepa train (world_model/train.py) ----------------------------------
@cli.command("train")
@click.option("--features", type=click.Path(file_okay=False), required=True, multiple=True,
              help="Feature cache written by `simjepa encode`; repeat to train one model on several (same encoder).")
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Run folder: final.pt, val.json, metrics.jsonl, loss_curve.png, checkpoint.pt (resumed if present).")
@click.option("--config", "config_name", type=click.Choice(["tiny", "mini", "small", "base", "vjepa2-ac"]), default="small",
              show_default=True, help="Predictor size (vjepa2-ac: the official 24 x 1024, ~305M params).")
@click.option("--loss", type=click.Choice(["l1", "l2", "huber"]), default="l1", show_default=True,
              help="Feature loss on layer-normed features (official: l1).")
@click.option("--steps", type=STEPS, default=2000, show_default=True, help="Optimizer steps.")
@click.option("--batch-size", type=BATCH, default=16, show_default=True, help="Windows per step (over all processes).")
@click.option("--lr", type=_Real(0, 10, min_open=True), default=4.25e-4, show_default=True, help="Peak learning rate (warm-up 5%, then cosine to 0).")
@click.option("--context", type=SMALL, default=3, show_default=True, help="Teacher-forcing steps / max frames the predictor sees.")
@click.option("--rollout", type=_ints(0, 1024), default=2, show_default=True, help="Autoregressive rollout steps in the loss (official: 2).")
@click.option("--val-rollout", type=SMALL, default=8, show_default=True, help="Rollout steps scored in val.json.")
@click.option("--macro-steps", type=_ints(1, 64), default=1, show_default=True,
              help="k > 1 trains a macro-step (high-level) model: each predicted frame is k env steps ahead, its action "
                   "the mean of the k actions (gripper: the last command). Plan with it by --macro-model.")
@click.option("--residual", is_flag=True,
              help="Predict each frame's change from the last one (the untrained model copies the last frame): for "
                   "envs whose frames change little per step, e.g. Pusher-v5. Not exportable to the official layout.")
@click.option("--val-fraction", type=_Real(0, 1, max_open=True), default=0.1, show_default=True, help="Held-out episodes.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of init, split and window sampling.")
@click.option("--ckpt-every", type=STEPS, default=500, show_default=True, help="Checkpoint (resumable) every N steps.")
@click.option("--workers", type=_ints(0, 64), default=2, show_default=True, help="Threads prefetching batches (0: none).")
@click.option("--encoder", "encoder_name", default=None,
              help="Encoder the cache must come from (refused otherwise); embedded in final.pt when small [default: the cache's].")
@click.option("--stop-after", type=STEPS, default=None, help="Checkpoint and exit after this step (time-sliced jobs).")
@click.option("--init", "init", default=None,
              help="Start from this world model's predictor ('default', a file or run dir; same --config and encoder): "
                   "fine-tuning, e.g. on a second camera's caches.")
@click.option("--plan-seconds", type=_Real(0, 3600), default=1.0, show_default=True,
              help="Record planner defaults sized so one planned action takes about this long on this machine "
                   "(never above the official 400 samples x 10 iterations); 0 keeps the official search.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_threads_option
def train_cmd(features, out, config_name, loss, steps, batch_size, lr, context, rollout, val_rollout, macro_steps,
              residual, val_fraction, seed, ckpt_every, workers, encoder_name, stop_after, init, plan_seconds, quiet) -> None:
    """Train the action-conditioned predictor on a feature cache (teacher forcing + rollout loss).

    Writes OUT/final.pt (world model: predictor + encoder reference, so `--model OUT` works),
    OUT/val.json (per-step 1..8-step rollout L1 and the copy-last-frame baseline on held-out
    episodes), OUT/train_config.json, OUT/metrics.jsonl and OUT/loss_curve.png. Re-running the same
    command after an interruption resumes from OUT/checkpoint.pt and ends with the same weights.

    \b
    Examples:
      simjepa train --features feats/reach --out models/reach
      simjepa train --features feats/reach --out models/reach-l2 --loss l2 --steps 5000
      simjepa train --features feats/reach --out models/tiny --config tiny --steps 200 --batch-size 8
      simjepa train --features feats/reach --features feats/push --out models/multi
      simjepa train --features feats/push --features feats/pickplace --out models/macro5 --macro-steps 5
      simjepa train --features feats/reach --features feats/reach-side --out models/2view --init default --config mini
      torchrun --nproc-per-node 2 -m simjepa_cli train --features feats/reach --out models/reach-ddp
    """
    from world_model.data import open_features
    from world_model.train import TrainConfig, train

    cfg = TrainConfig(out=out, config=config_name, loss=loss, steps=steps, batch_size=batch_size, lr=lr, context=context,
                      rollout=rollout, val_rollout=val_rollout, macro_steps=macro_steps, val_fraction=val_fraction,
                      seed=seed, init=init, residual=residual,
                      ckpt_every=ckpt_every, workers=workers, stop_after=stop_after, progress=not quiet)
    encoder = None
    if encoder_name is not None:
        from world_model.encoder_loading import load_encoder

        encoder = load_encoder(encoder_name)
    summary = train(cfg, open_features(features), encoder_module=encoder)
    if "stopped_at" in summary:
        click.echo(f"stopped at step {summary['stopped_at']} of {steps}; re-run the same command to resume -> {out}")
    elif summary.get("rollout_l1"):
        r, c = summary["rollout_l1"], summary["copy_last_l1"]
        last = max(r, key=int)
        click.echo(f"trained {steps} steps: val {last}-step rollout L1 {r[last]:.4f} (copy-last {c[last]:.4f}) -> {out}")
    elif summary:
        click.echo(f"trained {steps} steps (no held-out episodes) -> {out}")
    if "stopped_at" not in summary and plan_seconds > 0:
        _record_search_budget(out, plan_seconds)


def _record_search_budget(out: str, target_s: float) -> None:
    """Size the planner's search for this machine and record it in OUT/final.pt (planning/search_budget.py)."""
    from pathlib import Path

    from planning.search_budget import size_search
    from world_model.model_file import FINAL_NAME, load_world_model, with_planner_defaults

    final = Path(out) / FINAL_NAME
    if not final.is_file():
        return
    budget = size_search(load_world_model(final, with_encoder=False), target_s)
    with_planner_defaults(final, final, budget.planner_defaults())
    click.echo(f"planner defaults for this machine: {budget.samples} samples x {budget.iterations} iterations, "
               f"horizon {budget.horizon}, top {budget.topk} (~{budget.estimated_s:.2f} s/action predicted; "
               f"--samples/--iters/--horizon trade speed for success) -> {final}")


# --- learned proposal: simjepa train-proposal (world_model/proposal.py) ---------------------------
@cli.command("train-proposal")
@click.option("--features", type=click.Path(file_okay=False), required=True, multiple=True,
              help="Feature cache written by `simjepa encode` (repeat for several tasks; one encoder for all).")
@click.option("--out", type=click.Path(dir_okay=False), required=True,
              help="Proposal file; the resumable run state and log.jsonl go to OUT.run/ (resumed if present).")
@click.option("--steps", type=STEPS, default=3000, show_default=True, help="Optimizer steps.")
@click.option("--batch-size", type=BATCH, default=256, show_default=True, help="Samples per step.")
@click.option("--lr", type=_Real(0, 10, min_open=True), default=1e-3, show_default=True,
              help="Peak learning rate (linear warm-up, cosine to 0).")
@click.option("--horizon", type=SMALL, default=4, show_default=True, help="Actions proposed per call.")
@click.option("--pool-grid", type=SMALL, default=2, show_default=True,
              help="Features per image (pooled head): patch mean + a g x g grid of cell means.")
@click.option("--head", type=click.Choice(["pooled", "attentive"]), default="pooled", show_default=True,
              help="How each image's tokens become the MLP's input: pooled (--pool-grid cell means) or attentive "
                   "(--queries learned queries cross-attend over every token; can find a small object such as the cube; "
                   "holds every token in memory: about 1.5 MB per 60-step episode at 8x8 tokens of 192 dims).")
@click.option("--queries", type=SMALL, default=4, show_default=True, help="Learned queries of the attentive head.")
@click.option("--modes", type=SMALL, default=1, show_default=True,
              help="Action sequences proposed per call, each with a learned score; acting takes the best-scored one. "
                   "K > 1 trains them winner-takes-all: for teachers whose actions jump between opposite values at a "
                   "decision (a side to approach from), where one regressor smooths the jump into a stall.")
@click.option("--hidden", type=_ints(1, 65_536), default=512, show_default=True, help="MLP width.")
@click.option("--depth", type=SMALL, default=3, show_default=True, help="MLP hidden layers.")
@click.option("--last-frame-prob", type=_Real(0, 1), default=0.5, show_default=True,
              help="Share of hindsight goals that are the episode's last frame (else a uniform later frame).")
@click.option("--labels", type=click.Choice(["executed", "expert"]), default="executed", show_default=True,
              help="Targets: the actions executed, or (expert) the expert's clean actions where a cache has them "
                   "(episodes of `collect --policy dart`: DART's recovery examples; other episodes keep theirs).")
@click.option("--proprio-delta", is_flag=True,
              help="Also feed the proprio's change since the previous step (a velocity). For torque-controlled envs "
                   "whose state[:7] holds none, e.g. Pusher-v5's joint angles.")
@click.option("--locate-object", type=_Real(0, 1000), default=0.0, show_default=True,
              help="Weight of an auxiliary loss that teaches a head to locate the task's object (Push / PickPlace: the "
                   "cube) in every frame; its estimates feed the MLP. The labels come from the training episodes' "
                   "simulator state, as the actions do; acting reads only pixels and state[:7]. 0: off.")
@click.option("--readout", type=click.Choice(["frames", "object"]), default="frames", show_default=True,
              help="What the MLP reads of the current and goal images: frames (their features, and the object head's "
                   "estimates with --locate-object) or object (only the object head's estimates, beside the proprio: "
                   "a bottleneck for tasks fixed by where one object is, e.g. Pusher-v5; needs --locate-object).")
@click.option("--val-fraction", type=_Real(0, 1, max_open=True), default=0.1, show_default=True,
              help="Episodes held out for the validation L1.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of init, split and batches.")
@click.option("--ckpt-every", type=STEPS, default=250, show_default=True, help="Save resumable state every N steps.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_threads_option
def train_proposal_cmd(features, out, steps, batch_size, lr, horizon, pool_grid, head, queries, modes, hidden, depth,
                       last_frame_prob, labels, proprio_delta, locate_object, readout, val_fraction, seed, ckpt_every,
                       quiet) -> None:
    """Train a goal-conditioned action proposal on frozen features (behaviour cloning, hindsight goals).

    A small MLP maps (current frame's pooled or attended features, the arm's proprio state[:7], a goal frame's
    pooled features) to the next --horizon actions, within the largest |action| of the data (at
    least 1); goals are later frames of the same episode (the last one with --last-frame-prob), L1 loss. Re-running the same command after a kill
    resumes to the same weights. Use it with `--proposal OUT` on plan-episode / evaluate: it seeds
    the CEM (the world model's energy still decides), or acts alone with `evaluate --policy proposal`.

    \b
    Examples:
      simjepa train-proposal --features feats/push --features feats/pickplace --out runs/proposal.pt
      simjepa train-proposal --features feats/push --out runs/p.pt --steps 500 --threads 1 --quiet
      simjepa train-proposal --features feats/push --out runs/p_att.pt --head attentive --queries 4
      simjepa train-proposal --features feats/push --out runs/p_obj.pt --head attentive --locate-object 0.2
      simjepa train-proposal --features feats/pusher --out runs/p_modes.pt --head attentive --modes 4 --proprio-delta
      simjepa evaluate --env simjepa/Push-v0 --episodes 10 --seed-start 500 --proposal runs/proposal.pt --out runs/e
    """
    from envs import object_state
    from world_model.proposal import ProposalTrainConfig, open_caches, train_proposal

    cfg = ProposalTrainConfig(out=out, horizon=horizon, pool_grid=pool_grid, head=head, queries=queries, modes=modes,
                              hidden=hidden, depth=depth, steps=steps,
                              batch_size=batch_size, lr=lr, last_frame_prob=last_frame_prob, proprio_delta=proprio_delta, labels=labels,
                              locate_object=locate_object, readout=readout, val_fraction=val_fraction,
                              seed=seed, ckpt_every=ckpt_every, progress=not quiet)
    cfg.check()
    caches = open_caches(features)
    objects = [object_state(c.manifest.get("source", {}).get("env_id", "")) for c in caches]
    summary = train_proposal(cfg, caches, objects)
    if "stopped_at" in summary:
        click.echo(f"stopped at step {summary['stopped_at']} of {steps}; re-run the same command to resume -> {out}")
        return
    val = "n/a" if summary.get("val_l1") is None else f"{summary['val_l1']:.4f}"
    train = "n/a" if summary.get("train_l1") is None else f"{summary['train_l1']:.4f}"
    expert = f", {summary['expert_labelled_episodes']} with expert labels" if labels == "expert" else ""
    located = f", object located to {summary['val_object_m'] * 100:.1f} cm (val)" if "val_object_m" in summary else ""
    click.echo(f"trained {steps} steps ({summary['params'] / 1e6:.2f}M params, {summary['train_episodes']} episodes{expert}): "
               f"train L1 {train}, val L1 {val}{located} -> {out}")


# --- encoder pretraining and probing: simjepa pretrain-encoder, simjepa probe (world_model/pretrain.py, probe.py)
@cli.command("pretrain-encoder")
@click.option("--data", "data_dirs", type=click.Path(file_okay=False), multiple=True, required=True,
              help="Episode dataset written by `simjepa collect` (repeat for several).")
@click.option("--config", "config_name", type=click.Choice(["vit_tiny", "vit_small"]), default="vit_tiny", show_default=True,
              help="Encoder family member (the same ViT code as ViT-g, smaller).")
@click.option("--out", type=click.Path(dir_okay=False), required=True,
              help="Final encoder checkpoint; run state and log go to OUT.run/ (resumed if present).")
@click.option("--steps", type=STEPS, default=4000, show_default=True, help="Optimizer steps.")
@click.option("--batch-size", type=BATCH, default=64, show_default=True, help="Clips per step.")
@click.option("--image-size", type=IMAGE_PX, default=64, show_default=True, help="Frame size (multiple of 16).")
@click.option("--patch-size", type=_ints(1, 256), default=8, show_default=True, help="Patch size (divides --image-size).")
@click.option("--depth", type=SMALL, default=None, help="Override the config's depth (shipped encoder: 6).")
@click.option("--frames", type=_ints(2, 1024), default=4, show_default=True,
              help="Frames per clip (even; tubelet 2: 4 frames = two temporal tokens).")
@click.option("--lr", type=_Real(0, 10, min_open=True), default=5e-4, show_default=True, help="Peak learning rate (warm-up from 1e-4, cosine to 1e-5).")
@click.option("--warmup", type=_ints(0, 100_000_000), default=400, show_default=True, help="Warm-up steps.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of init, clip and mask sampling.")
@click.option("--ckpt-every", type=STEPS, default=100, show_default=True, help="Save resumable state every N steps.")
@click.option("--masks", type=click.Choice(["official", "grid", "future", "short", "long"]), default="official", show_default=True,
              help="Mask families: V-JEPA's (tuned for a 16x16 token grid), sized for this run's grid, future: "
                   "the grid's blocks on the clip's later half only, the earlier half all context (needs --frames 4+), "
                   "or one official family alone: short (8 blocks of 15%) or long (2 blocks of 70%).")
@click.option("--pixel-weight", type=_Real(0, 1000), default=0.0, show_default=True,
              help="Weight of an extra L1 loss on tubelet pixels, read by a linear head, beside the latent one "
                   "(0 = V-JEPA's latent loss alone). Meant to keep small objects in the features.")
@click.option("--pixel-tokens", type=click.Choice(["masked", "context"]), default="masked", show_default=True,
              help="Which pixels --pixel-weight reconstructs: the masked tubelets, from the predictor (MAE-style), or "
                   "each kept tubelet from its own context-encoder token.")
@click.option("--motion-weight", type=_Real(0, 1000), default=0.0, show_default=True,
              help="Weight masked tokens' latent loss towards places that moved during the clip: 1 + this x the "
                   "place's pixel motion over the clip's mean (0 = every token the same, as in V-JEPA).")
@click.option("--device", default="cpu", show_default=True, help="Where to train: cpu, cuda, cuda:1 ...")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_threads_option
def pretrain_encoder_cmd(data_dirs, config_name, out, steps, batch_size, image_size, patch_size, depth, frames, lr, warmup,
                         seed, ckpt_every, masks, pixel_weight, pixel_tokens, motion_weight, device, quiet) -> None:
    """Self-supervised V-JEPA pretraining of a small encoder on simulator video.

    Mask-denoising in latent space: multi-block masks (short- and long-range), a context encoder
    over the kept tokens, a narrow predictor, an EMA target encoder and an L1 loss on layer-normed
    target features. Logs loss and a collapse monitor (target std, effective rank) to
    OUT.run/log.jsonl. Re-running the same command after a kill resumes to the same weights. OUT
    loads with `--encoder OUT` / world_model.load_encoder(OUT). The defaults (4-frame clips, batch
    64, 4000 steps) are the recipe whose linear probe beat random weights; docs/encoder-v3.md has
    its probes and its wall time on a 2-core CPU.

    \b
    Examples:
      simjepa collect --env simjepa/Push-v0 --episodes 200 --policy mixed --render-size 64 --out data/push64
      simjepa pretrain-encoder --data data/push64 --config vit_tiny --out runs/enc.pt
      simjepa pretrain-encoder --data data/reach64 --data data/push64 --out runs/enc.pt --depth 6 --threads 1
      simjepa probe --encoder runs/enc.pt --env simjepa/Push-v0 --out runs/probe.json
    """
    from pathlib import Path

    from world_model.pretrain import PretrainConfig, PretrainError, load_episode_frames, pretrain

    if Path(out).is_dir():
        raise PretrainError(f"--out {out} is a directory; pass a checkpoint file name such as {Path(out) / 'encoder.pt'}")
    cfg = PretrainConfig(encoder=config_name, image_size=image_size, patch_size=patch_size, frames=frames, steps=steps,
                         batch_size=batch_size, lr=lr, warmup_steps=warmup, seed=seed, ckpt_every=ckpt_every,
                         encoder_overrides={} if depth is None else {"depth": depth}, masks=masks,
                         pixel_weight=pixel_weight, pixel_tokens=pixel_tokens, motion_weight=motion_weight,
                         device=device)
    cfg.check()
    if device != "cpu":
        from world_model.distributed import device_problem

        problem = device_problem(device)
        if problem is not None:
            raise PretrainError(f"--device {device} is not usable here ({problem}); use --device cpu")
    episodes = load_episode_frames(data_dirs, image_size)
    res = pretrain(cfg, episodes, out, progress=not quiet, data=list(data_dirs))
    from world_model.pretrain_plots import plot_pretrain_logs

    png = plot_pretrain_logs({Path(out).name: res.log}, res.log.with_name("curves.png"), title=str(out))
    click.echo(f"pretrained {res.steps} steps on {len(episodes)} episodes in {res.seconds / 60:.1f} min, "
               f"final loss {res.final_loss:.4f} -> {out} (log {res.log}, curves {png})")


@cli.command("probe")
@click.option("--encoder", "encoder_name", default="default", show_default=True,
              help="'default', a builder name (random init, e.g. vit_tiny) or an encoder checkpoint.")
@click.option("--env", "env_id", default=None,
              help="Env id; simjepa/Push-v0 or PickPlace-v0 for the object probe. Required unless --data.")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None,
              help="Probe the episodes of a `simjepa collect` dataset instead of collecting (env from its manifest; "
                   "--seed-start/--policy do not apply). Use seeds never used in pretraining.")
@click.option("--episodes", type=EPISODES, default=None,
              help="Episodes [default: 300 collected, or all of --data] (split 60/20/20 into train/val/test by "
                   "episode; at least 5). Each episode adds one cube placement: the object probe overfits with "
                   "fewer than ~300.")
@click.option("--seed-start", type=SEED, default=5000, show_default=True, help="Seed of the first episode (then +1 each).")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="JSON file with r2_ee, r2_object and settings.")
@click.option("--render-size", type=RENDER_PX, default=None,
              help="Env render size [default: the encoder's image size].")
@click.option("--image-size", type=IMAGE_PX, default=None,
              help="Encoder input size (multiple of 16) [default: the one stored with the encoder].")
@click.option("--random-init", is_flag=True,
              help="Probe a randomly initialised encoder of the same shape as --encoder (the baseline).")
@click.option("--policy", type=click.Choice(["mixed", "expert", "random"]), default="mixed", show_default=True)
@click.option("--pool", type=_ints(1, 64), default=4, show_default=True, help="Per-patch pooling grid (pool x pool cells).")
@click.option("--motion", "motion_frames", type=_ints(0, 1024), default=0, show_default=True,
              help="Also probe velocities from N-frame clips (e.g. 4; 0 = off): writes r2_ee_velocity, r2_object_velocity.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_threads_option
@click.pass_context
def probe_cmd(ctx, encoder_name, env_id, data_dir, episodes, seed_start, out, render_size, image_size, random_init, policy,
              pool, motion_frames, quiet) -> None:
    """Linear (ridge) probe of frozen encoder features to end-effector and object positions.

    Collects its own seeded episodes (or reads --data), encodes every frame with the frozen
    encoder, fits a ridge probe from [patch mean, pool x pool pooled tokens] on the train episodes
    (alpha chosen on the validation episodes) and writes variance-weighted R^2 on the held-out test
    episodes: r2_ee (TCP position), r2_object (cube position; null for Reach) and r2_gripper
    (state[6]). With --motion N, also the R^2 of end-effector and cube velocity from N-frame clip
    features (under "motion"; the cube's also over the clips where it moves).

    \b
    Examples:
      simjepa probe --encoder default --env simjepa/Push-v0 --out runs/probe_default.json
      simjepa probe --encoder default --image-size 128 --pool 8 --env simjepa/Push-v0 --out runs/probe_128.json
      simjepa probe --encoder default --random-init --env simjepa/Push-v0 --out runs/probe_random.json
      simjepa probe --encoder default --motion 4 --env simjepa/Push-v0 --out runs/probe_motion.json
      simjepa collect --env simjepa/Push-v0 --episodes 300 --render-size 64 --seed-start 400000 --out data/probe/push
      simjepa probe --encoder runs/enc.pt --data data/probe/push --out runs/probe_enc.json
    """
    from pathlib import Path

    from planning.probe_episodes import collect_probe_episodes, load_probe_episodes
    from simjepa_core.atomic import write_json
    from simjepa_core.episodes import read_manifest
    from world_model.encoder import random_init_like
    from world_model.encoder_loading import encoder_identity, load_encoder
    from world_model.probe import ProbeSettings, run_motion_probe, run_probe, split_episodes

    if Path(out).is_dir():
        raise SimjepaError(f"--out {out} is a directory; pass a JSON file name such as {Path(out) / 'probe.json'}")
    if data_dir is not None:
        given = [f"--{n.replace('_', '-')}" for n in ("seed_start", "policy", "render_size")
                 if ctx.get_parameter_source(n) is not click.core.ParameterSource.DEFAULT]
        if given:
            raise SimjepaError(f"{', '.join(given)} describe episodes to collect; with --data the dataset's manifest says them")
        manifest = read_manifest(data_dir)
        if env_id is not None and env_id != manifest["env_id"]:
            raise SimjepaError(f"--env {env_id} but {data_dir} holds {manifest['env_id']} episodes; drop --env")
        env_id, seed_start, policy, render_size = (manifest["env_id"], manifest["seed_start"], manifest["policy"],
                                                   manifest["render_size"])
    elif env_id is None:
        raise SimjepaError("say which episodes to probe: --env ID (collects them) or --data DIR (a collected dataset)")
    if episodes is None and data_dir is None:
        episodes = 300
    if episodes is not None:
        split_episodes(episodes)  # too few episodes: fail before loading or collecting anything
    encoder = load_encoder(encoder_name, image_size=image_size)
    if random_init:
        encoder = random_init_like(encoder)
        encoder.source = f"random init (seed 0) of {encoder_name}"
    size = encoder.config.image_size
    if motion_frames and motion_frames % encoder.config.tubelet_size:
        raise SimjepaError(f"--motion {motion_frames} must be a multiple of the tubelet size {encoder.config.tubelet_size}")
    if data_dir is not None:
        eps = load_probe_episodes(data_dir, episodes, progress=not quiet)[1]
        episodes = len(eps)
    else:
        eps = functools.partial(collect_probe_episodes, env_id, episodes, seed_start, render_size or size, policy,
                                progress=not quiet)
        if motion_frames:
            eps = eps()  # the motion probe reads the same episodes
    settings = ProbeSettings(env=env_id, episodes=episodes, seed_start=seed_start, render_size=render_size or size,
                             policy=policy, pool=pool)
    result = run_probe(encoder, settings, image_size=size, progress=not quiet, episodes=eps)
    if motion_frames:
        result["motion"] = run_motion_probe(encoder, eps, motion_frames, image_size=size, progress=not quiet)
    result["encoder"] = {**encoder_identity(encoder), "random_init": random_init, "requested": encoder_name}
    result["data"] = data_dir
    write_json(out, result)
    obj = "n/a (no object)" if result["r2_object"] is None else f"{result['r2_object']:.3f}"
    grip = "n/a" if result.get("r2_gripper") is None else f"{result['r2_gripper']:.3f}"
    motion = ""
    if "motion" in result:
        m = result["motion"]
        mo = "n/a" if m["r2_object_velocity"] is None else f"{m['r2_object_velocity']:.3f}"
        motion = f", velocity r2 ee {m['r2_ee_velocity']:.3f} object {mo}"
    clipped = ", ".join(f"{k} {v:.3f}" for k, v in result["r2_clipped"].items() if v is not None)
    click.echo(f"probe {env_id}: r2_ee {result['r2_ee']:.3f}, r2_object {obj}, r2_gripper {grip}{motion} on "
               f"{result['ee']['frames']['test']} held-out frames (features clipped to their fitted range: {clipped}) "
               f"-> {out}")


# --- data collection (envs) ---------------------------------------------------------------------
@cli.command("collect")
@click.option("--env", "env_id", required=True, help="simjepa/Reach-v0, simjepa/Push-v0, simjepa/PickPlace-v0 or a Gymnasium MuJoCo id.")
@click.option("--episodes", type=EPISODES, required=True, help="Episodes 0..N-1 to have in --out (existing ones are kept).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Dataset directory (created; resumed if it exists).")
@click.option("--policy", type=click.Choice(["random", "expert", "mixed", "dart"]), default="mixed", show_default=True,
              help="random: correlated OU exploration; expert: scripted; mixed: noisy expert with random segments; "
                   "dart: noisy expert that also records the expert's clean action at each visited state (labels "
                   "for `train-proposal --labels expert`: examples of recovering from drift).")
@click.option("--render-size", type=RENDER_PX, default=256, show_default=True, help="Square frame size in pixels.")
@click.option("--workers", type=PROCESSES, default=1, show_default=True, help="Processes, each with its own env and EGL context.")
@click.option("--seed-start", type=SEED, default=0, show_default=True, help="Episode i resets with seed S+i.")
@click.option("--max-steps", type=EPISODE_STEPS, default=None, help="Steps per episode [default: the env's max_episode_steps].")
@click.option("--camera", default="front", show_default=True,
              help="View the frames show. Our envs: front|side; the same command with --camera side records the "
                   "same episodes from the side: encode both and train on both for a two-view world model. "
                   "Adapted Gymnasium envs: front (the adapter's default view: Reacher top-down, Pusher table), "
                   "env (the env's own camera), top|table (adapter views) or one of the model's cameras.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_threads_option
def collect_cmd(env_id, episodes, out, policy, render_size, workers, seed_start, max_steps, camera, quiet) -> None:
    """Record episodes (frames, actions, states, success, distance) for world-model training.

    Deterministic: episode i always comes from seed S+i, so re-running the same command after an
    interruption skips finished episodes and completes the rest. An --out holding a dataset from
    other options (env, render size, policy, seeds, steps, camera) is refused.

    \b
    Examples:
      simjepa collect --env simjepa/Reach-v0 --episodes 200 --out data/reach
      simjepa collect --env simjepa/PickPlace-v0 --episodes 500 --out data/pp --render-size 128 --workers 2
      simjepa collect --env simjepa/Reach-v0 --episodes 200 --out data/reach-side --camera side
      simjepa collect --env Reacher-v5 --episodes 100 --policy random --out data/reacher
    """
    from envs.collect import CollectConfig, collect

    cfg = CollectConfig(env_id=env_id, episodes=episodes, out=out, policy=policy, render_size=render_size,
                        workers=workers, seed_start=seed_start, max_steps=max_steps, camera=camera)
    manifest = collect(cfg, progress=not quiet)
    click.echo(f"{manifest['episodes']} episodes of {env_id} ({manifest['render_size']} px, policy {policy}) in {out}")


# --- performance: simjepa bench (planning/bench.py) --------------------------------------------------
@cli.command("bench")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="JSON file (plot written next to it as .png).")
@click.option("--quick", is_flag=True, help="Tiny settings: checks that every part runs (seconds); numbers not meaningful.")
@click.option("--model", default="default", show_default=True,
              help="'default' (a random stand-in of its shape if none is shipped) or a checkpoint / training run dir.")
@click.option("--env", "env_id", default="simjepa/Reach-v0", show_default=True, help="Env for observations and env speed.")
@click.option("--sweep/--no-sweep", default=True, show_default=True,
              help="Time samples 100/200/400 x iterations 5/10 x horizon 1/2/3 (about 5 minutes on 1 core).")
@click.option("--reps", type=_ints(1, 1000), default=1, show_default=True, help="Timed actions per setting (best of).")
@click.option("--eager/--no-eager", default=True, show_default=True,
              help="Also time the default planner with compile=False (seconds_per_action_eager).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_threads_option
def bench_cmd(out, quick, model, env_id, sweep, reps, eager, quiet) -> None:
    """Planner, encoder, env and training speed, measured in one run on this machine.

    Writes seconds_per_action_default / _reference / _small / _base, planner_speedup_vs_reference,
    planner_peak_fraction, encoder_frames_per_s, env_steps_per_s, train_samples_per_s (each with
    <key>_settings), the machine, and a seconds-per-action-vs-samples sweep (plotted to OUT.png).

    \b
    Examples:
      simjepa bench --out runs/bench.json                 # full run (~15 min on 1 core)
      simjepa bench --out /tmp/b.json --quick             # smoke test (~20 s)
      simjepa bench --out runs/bench1.json --threads 1 --no-sweep
    """
    from planning.bench import BenchConfig, summary_lines, write_bench

    cfg = BenchConfig(quick=quick, model=model, env_id=env_id, sweep=sweep, reps=reps, eager=eager, progress=not quiet)
    res = write_bench(cfg, out)
    for line in summary_lines(res):
        click.echo(line)
    click.echo(f"wrote {out} and {res['plot']}")


if __name__ == "__main__":  # `python -m simjepa_cli train ...`: how torchrun launches data-parallel training
    main()
