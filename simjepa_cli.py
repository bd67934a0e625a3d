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
