"""Typed errors raised by the planner.

They subclass :class:`simjepa_core.errors.SimjepaError` (itself a ``ValueError``) so the CLI prints them as
one line with exit code 2 and API users can catch ``ValueError`` generically.
"""
from __future__ import annotations

from simjepa_core.errors import SimjepaError


class InvalidObservationError(SimjepaError):
    """An observation or goal handed to the agent is malformed (dtype, shape) or non-finite."""


class PlannerConfigError(SimjepaError):
    """A planner setting is out of range (e.g. top-k larger than the number of samples)."""
