"""Every numeric option of every command is checked at the edge: -1, 0 (where invalid), an absurdly
large value and NaN give one ``error:`` line on stderr and exit 2 before any work starts.

The cases are built by introspecting the click commands, so an option added later is covered (and
must declare a bounded type, e.g. ``click.IntRange(low, high)``) without touching this file.
"""
from __future__ import annotations

import click
import pytest

import simjepa_cli
from tests.robustness.helpers import assert_one_line_error

# (command, option) pairs for which 0 is a legitimate value; every other numeric option must refuse 0.
ZERO_OK = {
    ("plan-episode", "--seed"), ("plan-episode", "--planner-seed"), ("plan-episode", "--state-weight"),
    ("evaluate", "--seed-start"), ("evaluate", "--planner-seed"), ("evaluate", "--state-weight"),
    ("train", "--seed"), ("train", "--plan-seconds"), ("train", "--rollout"), ("train", "--val-fraction"), ("train", "--workers"),
    ("pretrain-encoder", "--seed"), ("pretrain-encoder", "--warmup"), ("pretrain-encoder", "--pixel-weight"),
    ("pretrain-encoder", "--motion-weight"),
    ("probe", "--seed-start"), ("probe", "--motion"), ("collect", "--seed-start"),
    ("plan-episode", "--anchor-fraction"), ("plan-episode", "--anchor-std"),
    ("evaluate", "--anchor-fraction"), ("evaluate", "--anchor-std"),
    ("train-proposal", "--seed"), ("train-proposal", "--val-fraction"), ("train-proposal", "--last-frame-prob"),
    ("train-proposal", "--locate-object"),
}
HUGE = "1000000000000"


def _numeric(param: click.Parameter) -> bool:
    return isinstance(param, click.Option) and not param.is_flag and isinstance(
        param.type, (click.types.IntParamType, click.types.FloatParamType))


def _commands() -> dict[str, click.Command]:
    return dict(sorted(simjepa_cli.cli.commands.items()))


def _valid_value(param: click.Parameter) -> str:
    """A value the option accepts, for required options other than the one under test."""
    if isinstance(param.type, click.Choice):
        return str(param.type.choices[0])
    if isinstance(param.type, (click.IntRange, click.FloatRange)):
        return str(param.type.min if param.type.min is not None else 1)
    if isinstance(param.type, (click.types.IntParamType, click.types.FloatParamType)):
        return "1"
    return "x"


def _args(cmd: click.Command, option: str, value: str) -> list[str]:
    args = [option, value]
    for p in cmd.params:
        if isinstance(p, click.Option) and p.required and option not in p.opts:
            args += [p.opts[0], _valid_value(p)]
    return args


CASES = [(name, p.opts[0]) for name, cmd in _commands().items() for p in cmd.params if _numeric(p)]


def test_the_cases_cover_every_command_with_numbers():
    assert {name for name, _ in CASES} == set(_commands()) and len(CASES) > 50
    assert ZERO_OK <= set(CASES), ZERO_OK - set(CASES)  # no stale entries


@pytest.fixture
def no_work(monkeypatch):
    """Any command that gets past option parsing fails the test: the error must come first."""
    def refuse(*args, **kwargs):
        raise AssertionError("the command ran: the bad value was not refused at the option")

    for cmd in _commands().values():
        monkeypatch.setattr(cmd, "callback", refuse)


@pytest.mark.parametrize("name,option", CASES, ids=[f"{n} {o}" for n, o in CASES])
def test_numeric_option_edges(name, option, capsys, no_work):
    cmd = _commands()[name]
    bad = ["-1", HUGE]
    param = next(p for p in cmd.params if option in p.opts)
    if isinstance(param.type, click.types.FloatParamType):
        bad += ["nan", "inf"]
    if (name, option) in ZERO_OK:
        cmd.make_context(name, _args(cmd, option, "0"))  # parses; nothing runs
    else:
        bad.append("0")
    for value in bad:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exc:
            simjepa_cli.main([name, *_args(cmd, option, value)])
        assert_one_line_error(exc.value.code, capsys.readouterr().err, option)


def test_plan_episode_negative_seed_is_one_line(capsys, no_work):
    """The console script ``plan-episode`` itself (it was gymnasium's raw traceback, exit 1)."""
    with pytest.raises(SystemExit) as exc:
        simjepa_cli.plan_episode_main(["--env", "simjepa/Reach-v0", "--seed", "-1", "--model", "default", "--out", "D"])
    assert_one_line_error(exc.value.code, capsys.readouterr().err, "--seed", "-1")
