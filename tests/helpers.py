"""Helpers shared by test modules."""
from pathlib import Path

PARITY = Path(__file__).resolve().parent / "data" / "vjepa2_parity.pt"


def official_reference(name: str) -> dict:
    """One entry of the in-repo reference; a missing file fails the test (a skip would hide the claim)."""
    import pytest
    import torch

    if not PARITY.is_file():
        pytest.fail(f"{PARITY} is missing: parity with the official V-JEPA 2 code cannot be checked "
                    f"(see tests/data/README.md to regenerate it)")
    return torch.load(PARITY, weights_only=True)[name]


def cli_exit_code(args: list[str]) -> int:
    """Run ``simjepa ARGS`` in-process through the real entry point and return its exit code."""
    import simjepa_cli

    try:
        simjepa_cli.main(args)
    except SystemExit as exc:
        return exc.code
    return 0
