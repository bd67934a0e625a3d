"""Test-only launcher: ``python -m tests.robustness.kill_after PATTERN N ARGS...`` runs ``simjepa ARGS``
and SIGKILLs itself right after its N-th completed write of a file whose name matches PATTERN.

Every write the CLI makes is atomic (temp file + ``os.replace``), so wrapping ``os.replace`` marks
the exact moment a checkpoint, episode or cache shard is complete on disk. The kill lands there,
whatever the machine's speed: no race with the clock, and the job cannot finish first.
"""
from __future__ import annotations

import fnmatch
import os
import signal
import sys


def main() -> None:
    pattern, count, *args = sys.argv[1:]
    remaining = int(count)
    real_replace = os.replace

    def replace(src, dst, *a, **kw):
        nonlocal remaining
        real_replace(src, dst, *a, **kw)
        if fnmatch.fnmatch(os.path.basename(os.fspath(dst)), pattern):
            remaining -= 1
            if remaining == 0:
                os.kill(os.getpid(), signal.SIGKILL)

    os.replace = replace
    import simjepa_cli

    simjepa_cli.main(args)


if __name__ == "__main__":
    main()
