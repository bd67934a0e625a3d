"""Issue 27's numbers from the files ``benchmarks/loss_ablation.sh`` brings back: closed loop, neutral
model metrics, training noise, plots. Runs on a CPU.

    python benchmarks/loss_ablation_report.py --files DIR --heldout runs/loss_ablation/heldout_feats \
        --work runs/loss_ablation --out docs/results/loss_ablation --images docs/images

``--files``: the folder holding ``predictors_{l1,l2,huber}.tar`` and ``eval_and_logs.tar.gz``.
``--heldout``: feature caches (one per task, named by task) of episodes no predictor trained on, built by
``simjepa collect --policy mixed --render-size 64 --seed-start 300000`` and ``simjepa encode --encoder default``.

Neutral metrics, the same for every predictor whatever loss it was trained with:
- rollout error at 1/2/4/8 imagined steps in BOTH L1 and L2 (mean squared error), on the same held-out
  episodes for all six predictors (their own ``val.json`` holds out a seed-dependent split);
- a linear probe fitted on TRUE features (ridge, first 60 % of the held-out episodes, alpha chosen on the
  next 20 %) reads the end effector (all tasks) and the cube (Push, PickPlace) from PREDICTED features of
  the last 20 %, after 1/4/8 imagined steps from one true frame and the true actions: error in metres;
- the last 20 % of training: the loss's jitter around its trend, the pre-clip gradient norm's coefficient
  of variation (losses differ in scale, so only relative spreads compare).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tarfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from planning.errors import PlannerConfigError  # noqa: E402
from planning.evaluate import merge_results  # noqa: E402
from world_model.data import load_windows  # noqa: E402
from world_model.feature_cache import FeatureCache  # noqa: E402
from world_model.losses import rollout  # noqa: E402
from world_model.model_file import load_world_model  # noqa: E402
from world_model.predictor import normalize_reps  # noqa: E402
from world_model.probe import fit_ridge, pooled_features  # noqa: E402
from world_model.validation import validate  # noqa: E402

LOSSES, SEEDS, ENERGIES, TASKS = ("l1", "l2", "huber"), (0, 1), ("l1", "l2"), ("Reach", "Push", "PickPlace")
STEPS = (1, 2, 4, 8)
CUBE = slice(7, 10)  # state[7:10]: the cube centre (envs/tasks.py CUBE_POS)


def unpack(files: Path, work: Path) -> None:
    """Every ``eval*.tar.gz`` beside the predictors: the first call's ``eval/``, a second call's ``eval2/`` on
    the same warm machine, ``REST=1`` calls' ``eval3/CELL/from<seed>/`` (the seeds no earlier call finished)."""
    for tar in sorted(files.glob("predictors_*.tar")) + sorted(files.glob("eval*.tar.gz")):
        with tarfile.open(tar) as t:
            t.extractall(work / ("runs" if tar.name.startswith("predictors") else "."), filter="data")


# --- closed loop ---------------------------------------------------------------------------------------------
FIRST_SEED, SEEDS_PER_CELL = 1000, 50


def closed_loop(work: Path, wanted: range = range(FIRST_SEED, FIRST_SEED + SEEDS_PER_CELL)) -> list[dict]:
    """One row per cell, its episodes merged by seed over every call (``eval*/CELL/results.json`` and
    ``eval*/CELL/*/results.json``) with :func:`planning.evaluate.merge_results`, which refuses calls that
    disagree on a seed. ``complete``: every seed of ``wanted`` ran."""
    parts: dict[str, list[tuple[Path, dict]]] = {}
    for path in sorted(work.glob("eval*/*/results.json")) + sorted(work.glob("eval*/*/*/results.json")):
        parts.setdefault(path.relative_to(work).parts[1], []).append((path, json.loads(path.read_text())))
    rows = []
    for cell in sorted(parts):
        task, loss, seed, energy = re.fullmatch(r"(\w+?)_(l1|l2|huber)_s(\d)_(l1|l2)", cell).groups()
        try:
            r = merge_results([data for _, data in parts[cell]])
        except PlannerConfigError as exc:
            raise SystemExit(f"{cell}: {exc}") from None
        eps = r["episodes"]
        d = np.array([e["final_distance"] for e in eps])
        rows.append(dict(task=task, loss=loss, seed=int(seed), energy=energy, episodes=len(d),
                         complete=set(wanted) <= set(r["seeds"]), successes=int(sum(e["success"] for e in eps)),
                         median_distance=float(np.median(d)), p90_distance=float(np.percentile(d, 90)),
                         seconds_per_action=r["mean_seconds_per_action"],
                         seeds=r["seeds"], distances=d.round(4).tolist(), success_flags=[bool(e["success"]) for e in eps],
                         protocol=r.get("protocol"), command=r.get("command"),
                         source=[str(path.relative_to(work)) for path, _ in parts[cell]]))
    return rows


def sign_test_p(wins: int, losses: int) -> float:
    """Exact two-sided sign test on the discordant pairs (McNemar's exact test)."""
    from math import comb

    n, k = wins + losses, min(wins, losses)
    return 1.0 if n == 0 else min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2**n)


def paired(rows: list[dict], task: str = "Reach") -> list[dict]:
    """Each (loss, energy) pair against L1/L1 and each energy pair within a loss, on the same episodes
    (training seeds pooled): discordant episodes and the sign test's p-value."""
    cell = {(r["loss"], r["seed"], r["energy"]): r for r in rows if r["task"] == task and r["complete"]}
    outcome = {k: dict(zip(r["seeds"], r["success_flags"])) for k, r in cell.items()}
    combos = [(loss, energy) for loss in LOSSES for energy in ENERGIES]
    pairs = [(a, ("l1", "l1")) for a in combos if a != ("l1", "l1")]
    pairs += [((loss, "l1"), (loss, "l2")) for loss in LOSSES if ((loss, "l1"), (loss, "l2")) not in pairs]
    out = []
    for a, b in pairs:
        wins = losses = 0
        for seed in SEEDS:
            ka, kb = (a[0], seed, a[1]), (b[0], seed, b[1])
            if ka in outcome and kb in outcome:
                for ep in outcome[ka].keys() & outcome[kb].keys():
                    wins += outcome[ka][ep] and not outcome[kb][ep]
                    losses += outcome[kb][ep] and not outcome[ka][ep]
        out.append({"a": "/".join(a), "b": "/".join(b), "a_only": wins, "b_only": losses, "p": sign_test_p(wins, losses)})
    return out


# --- neutral model metrics -----------------------------------------------------------------------------------
@torch.no_grad()
def imagined_features(predictor, cache: FeatureCache, episodes: list[int], steps: int) -> tuple[np.ndarray, ...]:
    """From every frame t of ``episodes`` with t + steps inside the episode: the true frame t + k and the
    predicted one after k imagined steps (k in STEPS), pooled as the probe sees them, and the states."""
    state_dim = predictor.config.state_dim
    grid = cache.grid
    true, pred, states = {k: [] for k in STEPS}, {k: [] for k in STEPS}, {k: [] for k in STEPS}
    for e in episodes:
        feats, _, st = cache.episode(e)
        starts = np.arange(0, len(feats) - steps, 2)
        wins = np.stack([np.full_like(starts, e), starts], 1)
        for i in range(0, len(wins), 32):
            f, a, s = load_windows(cache, wins[i : i + 32], steps + 1, state_dim)
            z = normalize_reps(f)  # [b, steps+1, N, D]
            with torch.autocast("cpu", dtype=torch.bfloat16):
                p = rollout(predictor, z[:, :1], a, s, steps, window=3).float()  # [b, steps, N, D]
            for k in STEPS:
                true[k].append(pooled_features(z[:, k], grid).numpy())
                pred[k].append(pooled_features(p[:, k - 1], grid).numpy())
                states[k].append(st[wins[i : i + 32, 1] + k])
    cat = lambda d: {k: np.concatenate(v) for k, v in d.items()}  # noqa: E731
    return cat(true), cat(pred), cat(states)


def probe_errors(models: dict[str, object], heldout: Path) -> dict:
    """Per task and predictor: state error (m) read by a true-feature probe from imagined features."""
    out = {}
    for task in TASKS:
        cache = FeatureCache.open(heldout / task)
        eps = cache.episodes
        n_fit, n_val = int(0.6 * len(eps)), int(0.2 * len(eps))
        fit_eps, val_eps, test_eps = eps[:n_fit], eps[n_fit : n_fit + n_val], eps[n_fit + n_val :]
        targets = {"ee": slice(0, 3)} | ({"cube": CUBE} if task != "Reach" else {})
        # the probe: true layer-normed features of fit/val frames -> positions
        def frames(ids):
            x, y = [], []
            for e in ids:
                f, _, s = cache.episode(e)
                x.append(pooled_features(normalize_reps(torch.from_numpy(np.asarray(f, np.float32))), cache.grid).numpy())
                y.append(s)
            return np.concatenate(x), np.concatenate(y)
        (x_fit, y_fit), (x_val, y_val) = frames(fit_eps), frames(val_eps)
        probes = {name: fit_ridge(x_fit, y_fit[:, sl], x_val, y_val[:, sl]) for name, sl in targets.items()}
        out[task] = {"episodes": {"fit": len(fit_eps), "val": len(val_eps), "test": len(test_eps)}, "models": {}}
        for name, model in models.items():
            true, pred, states = imagined_features(model, cache, test_eps, max(STEPS))
            row = {}
            for t, sl in targets.items():
                pr = probes[t]
                row[t] = {str(k): {"from_predicted_m": float(np.linalg.norm(pr.predict(pred[k]) - states[k][:, sl], axis=1).mean()),
                                   "from_true_m": float(np.linalg.norm(pr.predict(true[k]) - states[k][:, sl], axis=1).mean())}
                          for k in STEPS}
            out[task]["models"][name] = row
    return out


def rollout_errors(models: dict[str, object], heldout: Path) -> dict:
    """``validate`` (L1 and L2, with copy-last) on the same held-out episodes for every predictor."""
    out = {}
    for task in TASKS:
        cache = FeatureCache.open(heldout / task)
        lengths = {e: len(cache.episode(e)[1]) + 1 for e in cache.episodes}
        out[task] = {name: validate(m, cache, cache.episodes, lengths, m.config.state_dim, 3, max(STEPS),
                                    torch.device("cpu"), max_windows=512) for name, m in models.items()}
    return out


def training_noise(work: Path) -> dict:
    out = {}
    for run in sorted((work / "runs").glob("*_s*")):
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
        rows = [r for r in rows if "loss" in r]
        last = rows[int(0.8 * len(rows)) :]
        loss = np.array([r["loss"] for r in last])
        g = np.array([r["grad_norm"] for r in last])
        trend = np.convolve(loss, np.ones(9) / 9, mode="same")
        inner = slice(4, max(4, len(loss) - 4))  # where the moving average sees a full window
        jitter = float(np.std(loss[inner] - trend[inner]) / np.mean(loss[inner])) if len(loss) > 8 else float("nan")
        out[run.name] = {"steps": rows[-1]["step"], "logged_rows_last20": len(last), "final_loss": float(loss[-10:].mean()),
                         "loss_jitter_rel": jitter,
                         "grad_norm_mean": float(g.mean()), "grad_norm_cv": float(g.std() / g.mean()),
                         "clipped_fraction": float(np.mean(g > 1.0)),
                         "clipped_fraction_whole_run": float(np.mean([r["grad_norm"] > 1.0 for r in rows])),
                         "curve": [[r["step"], r["loss"], r["grad_norm"]] for r in rows]}
    return out


# --- plots ---------------------------------------------------------------------------------------------------
def _save(fig, path: Path) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path.name


def plots(result: dict, images: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images.mkdir(parents=True, exist_ok=True)
    names = []
    cl = result["closed_loop"]
    tasks = [t for t in TASKS if any(r["task"] == t for r in cl)]
    if tasks:  # success and final-distance distributions by loss x energy, seeds pooled
        fig, axes = plt.subplots(2, len(tasks), figsize=(4.5 * len(tasks), 7), squeeze=False)
        for j, task in enumerate(tasks):
            labels, succ, dists = [], [], []
            for loss in LOSSES:
                for energy in ENERGIES:
                    rs = [r for r in cl if r["task"] == task and r["loss"] == loss and r["energy"] == energy]
                    if not rs:
                        continue
                    n = sum(r["episodes"] for r in rs)
                    labels.append(f"{loss}\n/{energy}")
                    succ.append(100 * sum(r["successes"] for r in rs) / n)
                    dists.append(np.concatenate([r["distances"] for r in rs]))
            axes[0, j].bar(range(len(labels)), succ, color=["C0", "C0", "C1", "C1", "C2", "C2"][: len(labels)])
            axes[0, j].set_xticks(range(len(labels)), labels, fontsize=8)
            axes[0, j].set_ylabel("success % (seeds pooled)")
            axes[0, j].set_ylim(0, 100)
            axes[0, j].set_title(f"{task}: training loss / planning energy")
            axes[1, j].boxplot(dists, whis=(10, 90), showfliers=True)
            axes[1, j].set_xticks(range(1, len(labels) + 1), labels, fontsize=8)
            axes[1, j].set_ylabel("final distance (m); whiskers p10-p90")
        names.append(_save(fig, images / "loss_ablation_closed_loop.png"))
    # rollout error (L1, L2) and probe error vs imagined steps
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for loss, color in zip(LOSSES, ("C0", "C1", "C2")):
        for seed, style in zip(SEEDS, ("-", "--")):
            name = f"{loss}_s{seed}"
            for ax, metric in zip(axes[:2], ("rollout_l1", "rollout_l2")):
                vals = [np.mean([result["rollout"][t][name][metric][str(k)] for t in TASKS]) for k in STEPS
                        ] if name in result["rollout"]["Push"] else None
                if vals:
                    ax.plot(STEPS, vals, style, color=color, label=name)
            if name in result["probe"]["Push"]["models"]:
                axes[2].plot(STEPS, [np.mean([result["probe"][t]["models"][name]["cube"][str(k)]["from_predicted_m"]
                                              for t in ("Push", "PickPlace")]) for k in STEPS], style, color=color, label=name)
    for ax, metric in zip(axes[:2], ("rollout_l1", "rollout_l2")):
        copy = [np.mean([next(iter(result["rollout"][t].values()))[metric.replace("rollout", "copy_last")][str(k)]
                         for t in TASKS]) for k in STEPS]
        ax.plot(STEPS, copy, ":", color="grey", label="copy last frame")
        ax.set_title(f"held-out {metric.split('_')[1].upper()} error (3 tasks' mean)")
        ax.set_xlabel("imagined steps")
    axes[2].set_title("cube error from predicted features (m)\n(true-feature probe; Push, PickPlace)")
    axes[2].set_xlabel("imagined steps")
    axes[0].legend(fontsize=7)
    names.append(_save(fig, images / "loss_ablation_rollout.png"))
    # training curves: loss relative to its last-20% mean, gradient norm
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for name, tn in result["training"].items():
        c = np.array(tn["curve"])
        color = {"l1": "C0", "l2": "C1", "huber": "C2"}[name.split("_")[0]]
        style = "-" if name.endswith("s0") else "--"
        axes[0].plot(c[:, 0], c[:, 1] / tn["final_loss"], style, color=color, lw=0.7, label=name)
        axes[1].plot(c[:, 0], c[:, 2], style, color=color, lw=0.7, label=name)
    axes[0].set_yscale("log")
    axes[0].set_title("training loss / its final value")
    axes[1].set_yscale("log")
    axes[1].set_title("pre-clip gradient norm (clip at 1)")
    axes[0].legend(fontsize=7)
    names.append(_save(fig, images / "loss_ablation_training.png"))
    return names


def summary_markdown(result: dict) -> str:
    """The tables docs/loss-ablation.md quotes: closed loop (training seeds pooled), paired tests, neutral
    metrics (means over the two training seeds), training noise."""
    cl = result["closed_loop"]
    lines = ["## Closed loop (image-goal, seeds from 1000; training seeds pooled)", "",
             "| task | training loss | energy | episodes | success | median final distance (m) | p90 (m) |", "|---|---|---|---:|---:|---:|---:|"]
    for task in TASKS:
        for loss in LOSSES:
            for energy in ENERGIES:
                rs = [r for r in cl if r["task"] == task and r["loss"] == loss and r["energy"] == energy]
                if not rs:
                    continue
                d = np.concatenate([r["distances"] for r in rs])
                n = sum(r["episodes"] for r in rs)
                part = "" if all(r["complete"] for r in rs) else " (partial: " + ", ".join(
                    f"s{r['seed']} {r['episodes']}" for r in rs) + ")"
                lines.append(f"| {task} | {loss} | {energy} | {n}{part} | {sum(r['successes'] for r in rs)}/{n} | "
                             f"{np.median(d):.3f} | {np.percentile(d, 90):.3f} |")
    lines += ["", "## Paired on Reach's episodes (same env seeds; training seeds pooled)", "",
              "| A | B | A succeeds, B fails | B succeeds, A fails | sign test p |", "|---|---|---:|---:|---:|"]
    lines += [f"| {p['a']} | {p['b']} | {p['a_only']} | {p['b_only']} | {p['p']:.4f} |" for p in result.get("paired_reach", [])]
    lines += ["", "## Held-out rollout error, the same 40 episodes per task for every predictor (mean of 2 training seeds)", "",
              "| task | training loss | L1 @1 | @2 | @4 | @8 | L2 @1 | @2 | @4 | @8 |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for task in TASKS:
        roll = result["rollout"][task]
        if not roll:
            continue
        for loss in [*LOSSES, "copy last frame"]:
            names = [n for n in roll if n.startswith(loss + "_")] if loss != "copy last frame" else [next(iter(roll))]
            pre = ("rollout_l1", "rollout_l2") if loss != "copy last frame" else ("copy_last_l1", "copy_last_l2")
            vals = [np.mean([roll[n][m][str(k)] for n in names]) for m in pre for k in STEPS]
            lines.append(f"| {task} | {loss} | " + " | ".join(f"{v:.4f}" for v in vals) + " |")
    lines += ["", "## Position read from imagined features by a probe fitted on true features (m; mean of 2 training seeds)", "",
              "| task | target | training loss | after 1 step | 4 steps | 8 steps | true features @8 |", "|---|---|---|---:|---:|---:|---:|"]
    for task in TASKS:
        pr = result["probe"][task]["models"]
        for target in ("ee", "cube"):
            for loss in LOSSES:
                names = [n for n in pr if n.startswith(loss + "_") and target in pr[n]]
                if names:
                    vals = [np.mean([pr[n][target][str(k)]["from_predicted_m"] for n in names]) for k in (1, 4, 8)]
                    floor = np.mean([pr[n][target]["8"]["from_true_m"] for n in names])
                    lines.append(f"| {task} | {target} | {loss} | " + " | ".join(f"{v:.4f}" for v in vals) + f" | {floor:.4f} |")
    lines += ["", "## Training, last 20 % of the steps (per run)", "",
              "| run | steps | final loss | loss jitter (rel.) | grad norm mean | grad norm CV | clipped (last 20 %) | clipped (whole run) |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, t in result["training"].items():
        lines.append(f"| {name} | {t['steps']} | {t['final_loss']:.4f} | {t['loss_jitter_rel']:.3f} | {t['grad_norm_mean']:.3f} | "
                     f"{t['grad_norm_cv']:.3f} | {t['clipped_fraction']:.0%} | {t.get('clipped_fraction_whole_run', float('nan')):.0%} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=Path, help="the device run's files (required unless --from-json)")
    ap.add_argument("--heldout", type=Path, help="held-out feature caches, one per task (required unless --from-json)")
    ap.add_argument("--commit", help="the commit the device run ran (its copy of the tree has no git)")
    ap.add_argument("--work", type=Path, default=Path("runs/loss_ablation"))
    ap.add_argument("--out", type=Path, default=Path("docs/results/loss_ablation"))
    ap.add_argument("--images", type=Path, default=Path("docs/images"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--from-json", action="store_true", help="only redraw plots and tables from OUT/loss_ablation.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.from_json:
        result = json.loads((args.out / "loss_ablation.json").read_text())
        print("plots:", plots(result, args.images))
        (args.out / "summary.md").write_text(summary_markdown(result))
        return
    if args.files is None or args.heldout is None:
        ap.error("--files and --heldout are required (or --from-json)")
    unpack(args.files, args.work)
    runs = sorted(p for p in (args.work / "runs").glob("*_s*") if (p / "final.pt").is_file())
    loaded = {p.name: load_world_model(p, with_encoder=False) for p in runs}
    models = {name: wm.predictor.eval() for name, wm in loaded.items()}
    result = {"closed_loop": closed_loop(args.work), "training": training_noise(args.work),
              "rollout": rollout_errors(models, args.heldout), "probe": probe_errors(models, args.heldout),
              "val_json": {p.name: json.loads((p / "val.json").read_text()) for p in runs if (p / "val.json").is_file()},
              "predictor_hashes": {name: wm.info.get("rank_weight_hashes") for name, wm in loaded.items()},
              "train_settings": {name: wm.info.get("train") for name, wm in loaded.items()}}
    result["paired_reach"] = paired(result["closed_loop"])
    logs = sorted(args.files.glob("run*.log"))  # run.log: the first call; run_*.log: later calls, if any
    result["device_run"] = {"commit": args.commit, "log": "\n".join(p.read_text() for p in logs) or None}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "loss_ablation.json").write_text(json.dumps(result, indent=1))
    print("plots:", plots(result, args.images))
    (args.out / "summary.md").write_text(summary_markdown(result))
    for r in result["closed_loop"]:
        print(f"{r['task']:9s} {r['loss']:5s} s{r['seed']} energy {r['energy']}: {r['successes']}/{r['episodes']}"
              f"{'' if r['complete'] else ' (partial)'} median {r['median_distance']:.3f} p90 {r['p90_distance']:.3f}")


if __name__ == "__main__":
    main()
