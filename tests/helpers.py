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


class StateTrap(dict):
    """A goal dict whose ``state`` cannot be read: any access to it fails the test (the image-goal
    protocol forbids it). Iterating over the whole dict fails too, since that would read it."""

    def _trap(self, key):
        if key == "state":
            raise AssertionError("the image-goal planning path read goal['state']")

    def __getitem__(self, key):
        self._trap(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self._trap(key)
        return super().get(key, default)

    def items(self):
        raise AssertionError("the image-goal planning path iterated over the whole goal dict")

    values = items
