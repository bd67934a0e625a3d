"""The one error type users see.

Every bad-input failure in simjepa (unknown env id, NaN action, corrupt checkpoint, cache from
another encoder, ...) raises a subclass of :class:`SimjepaError`. It subclasses ``ValueError`` so
API users can catch it generically, and the CLI turns it into a one-line message with exit code 2
instead of a traceback. Its message must say what is wrong *and* what to do about it.

It lives in :mod:`simjepa_core`, the side-effect-free base under the dependency chain
(envs, world_model <- planning <- CLI), so every layer can import it without importing the others.
"""


class SimjepaError(ValueError):
    """Bad input from the user: one line that names the problem and the fix."""
