#!/usr/bin/env python3
"""Merge `simjepa evaluate` results files of one configuration run over different seeds into one file.

Why: a 50-seed evaluation on a 2-core machine can outlast a session; its results.json keeps the seeds that
finished (``"complete": false``). Continue it later from the next seed (same flags, ``--seed-start``), then
merge here. Every episode's planner is reseeded from its env seed, so the merged file holds the same
episodes one uninterrupted run would have. Runs of different settings, or a seed run twice with different
outcomes, are refused. When the later run comes from newer code (its planner config names more fields),
re-run one seed of the earlier run with it: a seed in both files that agrees is required then.

    python scripts/merge_results.py benchmarks/results/eval/Push-planner-image-goal.json \\
        runs/more/results.json --out benchmarks/results/eval/Push-planner-image-goal.json

Then ``python scripts/results_table.py`` to regenerate the tables.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from planning.errors import PlannerConfigError  # noqa: E402
from planning.evaluate import merge_results  # noqa: E402
from simjepa_core.atomic import write_json  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", type=Path, help="results.json files of one configuration, earliest first")
    ap.add_argument("--out", type=Path, required=True, help="merged file (may be one of the inputs: all are read first)")
    args = ap.parse_args(argv)
    parts = []
    for path in args.files:
        try:
            parts.append(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            print(f"error: {path}: not a readable results file ({exc})", file=sys.stderr)
            return 2
        if not isinstance(parts[-1], dict) or not isinstance(parts[-1].get("episodes"), list):
            print(f"error: {path}: no per-episode rows (not a `simjepa evaluate` results.json)", file=sys.stderr)
            return 2
    try:
        merged = merge_results(parts)
    except PlannerConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, merged)
    seeds = merged["seeds"]
    print(f"{len(seeds)} episodes (seeds {seeds[0]}-{seeds[-1]}{'' if merged['complete'] else ', INCOMPLETE'}), "
          f"success {merged['success_rate']:.0%}, mean final distance {merged['mean_final_distance']:.3f} m; "
          f"seeds run twice and agreeing: {merged['seeds_run_twice'] or 'none'} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
