"""Helpers shared by test modules."""


def cli_exit_code(args: list[str]) -> int:
    """Run ``simjepa ARGS`` in-process through the real entry point and return its exit code."""
    import simjepa_cli

    try:
        simjepa_cli.main(args)
    except SystemExit as exc:
        return exc.code
    return 0
