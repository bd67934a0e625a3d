"""Success rate against seconds per action, one point per `simjepa evaluate` result file, one panel per task.

Why: the default model's settings trade search (time) for success; this plot shows where the trade-off lies
on the seeds the settings were chosen on. Each point is labelled with its method and search; the 0.1 s
per action budget (the env's 10 Hz) is marked.

    python benchmarks/success_vs_speed.py --out docs/images/success_vs_speed.png runs/v3/tune/*/results.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

TASKS = ("Reach", "Push", "PickPlace")
BUDGET_S = 0.1


def point(path: Path) -> dict:
    """Task, success rate, mean s/action and a short label of one result file."""
    data = json.loads(path.read_text())
    planner = data.get("planner") or {}
    if data.get("policy") == "proposal" or planner.get("search") == "none":
        label = "proposal alone"
        if planner.get("execute_steps", 1) > 1:
            label += f", {planner['execute_steps']} steps/plan"
        if planner.get("ensemble_plans", 1) > 1:
            label += f", ensemble {planner['ensemble_plans']}"
    elif data.get("policy") == "planner":
        label = f"CEM {planner.get('samples')}x{planner.get('iterations')}" + (" + proposal" if data.get("proposal") else "")
    else:
        label = str(data.get("policy"))
    rows = data["episodes"]
    return {"task": str(data["env"]).split("/")[-1].split("-")[0], "label": label,
            "success": sum(bool(r["success"]) for r in rows) / len(rows), "episodes": len(rows),
            "seconds": data["mean_seconds_per_action"], "seeds": f"{rows[0]['seed']}-{rows[-1]['seed']}"}


def plot(points: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(TASKS), figsize=(12, 3.8), sharey=True)
    for ax, task in zip(axes, TASKS):
        mine = [p for p in points if p["task"] == task]
        for p in mine:
            ax.scatter(p["seconds"], 100 * p["success"], s=18)
            ax.annotate(p["label"], (p["seconds"], 100 * p["success"]), fontsize=6, xytext=(3, 3),
                        textcoords="offset points")
        ax.axvline(BUDGET_S, color="grey", linestyle="--", linewidth=1)
        ax.set_xscale("log")
        ax.set_title(f"{task} ({', '.join(sorted({p['seeds'] for p in mine})) or 'no files'})", fontsize=9)
        ax.set_xlabel("seconds per action (mean, agent.act)")
    axes[0].set_ylabel("success (%)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", type=Path, help="results.json files of `simjepa evaluate`")
    ap.add_argument("--out", type=Path, required=True, help="PNG to write")
    args = ap.parse_args()
    points = [point(f) for f in args.files]
    for p in sorted(points, key=lambda p: (p["task"], p["seconds"])):
        print(f"{p['task']:<10}{p['label']:<40}{100 * p['success']:5.0f}%  {p['seconds']:.4f} s/action  seeds {p['seeds']}")
    plot(points, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
