"""Where one CEM iteration's time goes: torch.profiler op table, reference vs fast planner.

Usage: .venv/bin/python benchmarks/profile_planner.py [--samples 400] [--horizon 2] [--threads 1] [--rows 8]
Random stand-in of the default model's shape (vit_tiny features: 8 x 8 tokens of width 192, predictor
``small``). Prints, per path, wall seconds of one scoring of all candidates and the top ops by self
CPU time as a markdown table (README "Performance").
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

from planning.energy import normalize_reps
from planning.imagine import Context, imagine
from world_model.predictor import build_predictor


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=400)
    ap.add_argument("--horizon", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--predictor", default="small")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    pred = build_predictor(args.predictor, 192).eval()
    g = torch.Generator().manual_seed(0)
    ctx = Context(normalize_reps(torch.randn(1, 64, 192, generator=g)), torch.randn(1, 7, generator=g), torch.zeros(0, 7))
    acts = torch.rand(args.samples, args.horizon, 7, generator=g) * 2 - 1
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.samples} samples x horizon {args.horizon}, "
          f"predictor {args.predictor}")
    for name, kw in (("reference (official: fp32, full prefix, per-call RoPE)", dict(reference=True)),
                     ("fast (bf16 autocast, KV cache, cached RoPE tables)", {})):
        imagine(pred, ctx, acts[:8], None, **kw)  # warm-up
        t0 = time.perf_counter()
        imagine(pred, ctx, acts, None, **kw)
        wall = time.perf_counter() - t0
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            imagine(pred, ctx, acts, None, **kw)
        events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in events)
        print(f"\n{name}: {wall:.2f} s per scoring (unprofiled)\n")
        print("| op | self CPU s | share |\n|---|---:|---:|")
        for e in events[: args.rows]:
            print(f"| {e.key} | {e.self_cpu_time_total / 1e6:.2f} | {100 * e.self_cpu_time_total / total:.0f}% |")


if __name__ == "__main__":
    main()
