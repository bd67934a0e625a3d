"""Write the target encoder of a pretraining run state (``OUT.run/state.pt``) as an encoder checkpoint.

Why: a run saves its state every ``--ckpt-every`` steps and overwrites it; copying that file at chosen
steps and exporting each copy with this script is how a probe follows pretraining over time (issue 21's
"did the features get better or worse with steps") without a second run per step count. The result
loads like a finished run's checkpoint (``simjepa probe --encoder OUT``); its ``pretraining`` record
says the step it was taken at.

    cp runs/enc.pt.run/state.pt runs/enc_step400_state.pt   # while the run is at step 400..499
    python scripts/pretrain_snapshot.py runs/enc_step400_state.pt runs/enc_step400.pt
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import fields

from simjepa_core.errors import SimjepaError
from world_model.checkpoints import load_file, load_weights
from world_model.pretrain import STATE_FORMAT, PretrainConfig, build_pretrain_encoder, save_pretrained_encoder


def export_snapshot(state_path: str, out: str) -> int:
    """Export the state's EMA target encoder to ``out``; returns the step it was saved at."""
    state = load_file(state_path)
    if state.get("format") != STATE_FORMAT:
        raise SimjepaError(f"{state_path} is not a pretraining state file (format {state.get('format')!r})")
    names = {f.name for f in fields(PretrainConfig)}
    config = PretrainConfig(**{k: v for k, v in state["settings"].items() if k in names})
    encoder = build_pretrain_encoder(config)
    load_weights(encoder, state["target"], f"target weights in {state_path}")
    step = int(state["step"])
    save_pretrained_encoder(out, encoder, config, steps_done=step, snapshot_of=str(state_path))
    return step


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("state", help="a pretraining run's state.pt (or a copy of it)")
    ap.add_argument("out", help="encoder checkpoint to write")
    args = ap.parse_args(argv)
    try:
        step = export_snapshot(args.state, args.out)
    except SimjepaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"target encoder at step {step} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
