"""Command-line entry points: ``simjepa <command>`` and ``plan-episode``.

The commands are thin: they parse options and call the library. Error handling lives here once:
a :class:`envs.errors.SimjepaError`, an ``OSError`` (permissions, disk) or a click usage error
becomes one line on stderr and exit code 2; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import sys

import click

from envs.errors import SimjepaError


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


# --- commands are registered below, one section per area --------------------------------------


# --- planning: plan-episode, simjepa evaluate (planning/) ---------------------------------------
def _planner_options(fn):
    """CEM/energy flags shared by plan-episode and evaluate; unset flags keep the model's tuned defaults."""
    opts = [
        click.option("--samples", type=int, default=None, help="CEM candidates per iteration (official: 400)."),
        click.option("--iters", type=int, default=None, help="CEM iterations per action (official: 10)."),
        click.option("--topk", type=int, default=None, help="CEM elites (official: 10)."),
        click.option("--horizon", type=int, default=None, help="Planned actions per search (official: 2)."),
        click.option("--energy", type=click.Choice(["l1", "l2"]), default=None, help="Feature distance (default l1)."),
        click.option("--state-weight", type=float, default=None, help="Weight of |s_T - s_goal| in the energy (default 0)."),
        click.option("--planner-seed", type=int, default=None, help="Seed of the CEM sampler (default 0)."),
        click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Episode step budget (default: the env's)."),
        click.option("--render-size", type=click.IntRange(min=16), default=256, show_default=True, help="Env render size in pixels."),
        click.option("--subgoals/--no-subgoals", default=True, show_default=True,
                     help="PickPlace: plan through expert-demo sub-goals (grasp, lift, place)."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _overrides(samples, iters, topk, horizon, energy, state_weight, planner_seed) -> dict:
    return {"samples": samples, "iterations": iters, "topk": topk, "horizon": horizon, "metric": energy,
            "state_weight": state_weight, "seed": planner_seed}


@click.command("plan-episode", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--env", "env_id", required=True, help="Env id, e.g. simjepa/Reach-v0 (or any Gymnasium MuJoCo id).")
@click.option("--seed", type=int, required=True, help="Episode seed (same seed, same episode).")
@click.option("--model", default="default", show_default=True, help="'default' or a checkpoint file / training run dir.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Output folder.")
@_planner_options
@click.option("--landscape", is_flag=True, help="Also write landscape.png: energy over the first action's dx, dy.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def plan_episode_cmd(env_id, seed, model, out, samples, iters, topk, horizon, energy, state_weight, planner_seed,
                     max_steps, render_size, subgoals, landscape, quiet) -> None:
    """Plan one closed-loop episode with CEM on a world model's L1 energy.

    Writes OUT/episode.mp4 (observation | goal, with step, energy and distance) and OUT/metrics.json
    (success, final_distance, steps, seconds_per_action, energy and distance per step).

    \b
    Examples:
      plan-episode --env simjepa/Reach-v0 --seed 0 --model default --out runs/ep0
      plan-episode --env simjepa/Push-v0 --seed 3 --model models/push --out runs/push3 --samples 200 --iters 5
      plan-episode --env simjepa/Reach-v0 --seed 0 --model default --out runs/ep0 --landscape
    """
    from planning.episode import plan_episode

    m = plan_episode(env_id, seed, model, out, _overrides(samples, iters, topk, horizon, energy, state_weight, planner_seed),
                     max_steps=max_steps, render_size=render_size, subgoals=subgoals, landscape=landscape, progress=not quiet)
    click.echo(f"{'success' if m['success'] else 'failure'}: final distance {m['final_distance']:.3f} m after "
               f"{m['steps']} steps, {m['seconds_per_action']:.3f} s/action -> {out}")


cli.add_command(plan_episode_cmd)


def plan_episode_main(args: list[str] | None = None) -> None:
    """Console script ``plan-episode``."""
    _run(plan_episode_cmd, args)


@cli.command("evaluate")
@click.option("--env", "env_id", required=True, help="Env id, e.g. simjepa/Reach-v0.")
@click.option("--episodes", type=click.IntRange(min=1), required=True, help="Number of episodes.")
@click.option("--seed-start", type=int, default=0, show_default=True, help="Seed of the first episode (then +1 each).")
@click.option("--model", default="default", show_default=True, help="'default' or a checkpoint file / training run dir (planner only).")
@click.option("--policy", type=click.Choice(["planner", "random", "expert"]), default="planner", show_default=True)
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Output folder for results.json / results.md.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Episodes run in parallel processes.")
@_planner_options
def evaluate_cmd(env_id, episodes, seed_start, model, policy, out, workers, samples, iters, topk, horizon, energy,
                 state_weight, planner_seed, max_steps, render_size, subgoals) -> None:
    """Success rate and final distance of a policy over seeded episodes.

    Writes OUT/results.json (success_rate, mean_final_distance, episodes: one row per episode) and
    OUT/results.md (the same as a markdown table).

    \b
    Examples:
      simjepa evaluate --env simjepa/Reach-v0 --episodes 50 --seed-start 1000 --model default --policy planner --out runs/eval
      simjepa evaluate --env simjepa/Push-v0 --episodes 20 --seed-start 0 --policy expert --out runs/push-expert --workers 2
    """
    from planning.evaluate import evaluate

    r = evaluate(env_id, episodes, seed_start, policy, model, out, workers,
                 _overrides(samples, iters, topk, horizon, energy, state_weight, planner_seed),
                 max_steps=max_steps, render_size=render_size, subgoals=subgoals)
    click.echo(f"{policy} on {env_id}: success {r['success_rate']:.0%}, mean final distance "
               f"{r['mean_final_distance']:.3f} m over {episodes} episodes -> {out}")
