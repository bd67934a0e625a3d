#!/usr/bin/env python3
"""Generate docs/results.md and the README's headline table from the result files.

Why a generator: numbers typed by hand into a README drift from the files that hold them, and a
privileged row (one that used the goal's simulator state or an expert replay of the evaluated
episode) can end up presented as the product's result. Here every row comes from a file under
``benchmarks/results/``, and every closed-loop row names its *protocol*:

- ``image-goal``: the planner saw the observation (pixels and the arm's own ``state[:7]``) and ONE
  goal image. This is the product and the only protocol a headline row may claim.
- ``expert-replay (privileged)``: it planned through sub-goal images rendered from the scripted
  expert's demonstration of the very episode being evaluated.
- ``goal-state (privileged)``: it read numbers from the goal's simulator state
  (``state_weight > 0``, ``gripper_from_goal``, ``yaw_from_goal``).
- ``baseline``: the random or the scripted expert policy (the expert reads the true state).

New ``simjepa evaluate`` files carry a ``"protocol"`` key and it is used as recorded. Older files
lack it; their protocol is inferred from what they record (sub-goal settings, planner settings)
and marked "inferred".

Usage (standard library only, so it runs without the project's environment)::

    python scripts/results_table.py                    # write docs/results.md, rewrite README's block
    python scripts/results_table.py --print-headline   # print the headline table only
    python scripts/results_table.py --check            # exit 1 if either file is out of date

The README block sits between ``<!-- results:start -->`` and ``<!-- results:end -->``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
START_MARK = "<!-- results:start -->"
END_MARK = "<!-- results:end -->"

IMAGE_GOAL = "image-goal"
EXPERT_REPLAY = "expert-replay (privileged)"
GOAL_STATE = "goal-state (privileged)"
BASELINE = "baseline"

TASKS = ("Reach", "Push", "PickPlace")
# Names of the shipped default models, by the predictor weights hash their result files record; a model that
# changed only its embedded proposal is named by that proposal's hash (v3.1: v3's encoder and predictor).
MODEL_NAMES = {"c6cdd677e223c833": "default v3", "01ab58b624395723": "default v2"}
PROPOSAL_NAMES = {("c6cdd677e223c833", "40bd250a9d15fe75"): "default v3.1"}
# Tasks whose legacy "subgoals" setting meant expert-demo sub-goals. PickPlace planned through them
# from the first default model on; Push only once rows recorded a per-episode ``subgoal_steps``.
LEGACY_ALWAYS_PHASED = ("PickPlace",)
EVAL_SEEDS = (1000, 1049)

# The headline: per task, which files may fill the image-goal slot and the privileged slot, first
# found wins. ``<Task>-planner-image-goal.json`` is where `simjepa evaluate` results under the
# image-goal default are to be stored; the other names are the measurements that exist today.
HEADLINE_SLOTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    # the shipped default model v3.1 at its settings per task (`evaluate --model default`), else v3, else the
    # earlier model with one learned proposal for all three tasks (each task's method chosen on tuning seeds)
    ("Reach", IMAGE_GOAL, ("Reach-default-v3.1", "Reach-default-v3", "Reach-planner-image-goal-proposal-all3-attentive-s24i2")),
    ("Push", IMAGE_GOAL, ("Push-default-v3.1", "Push-default-v3", "Push-proposal-alone-all3-attentive")),
    ("PickPlace", IMAGE_GOAL, ("PickPlace-default-v3.1", "PickPlace-default-v3", "PickPlace-proposal-alone-all3-attentive")),
    # flat CEM (no proposal) with the same model, else with the previous one
    ("Reach", IMAGE_GOAL, ("Reach-v3-flat-cem100x3", "Reach-planner-image-goal", "Reach-planner-v2-default")),
    ("Push", IMAGE_GOAL, ("Push-v3-flat-cem100x3", "Push-planner-image-goal")),
    ("PickPlace", IMAGE_GOAL, ("PickPlace-v3-flat-cem100x3", "PickPlace-planner-image-goal")),
    ("Push", EXPERT_REPLAY, ("Push-planner-expert-replay", "Push-planner-v2-subgoals-yaw-grip05")),
    ("PickPlace", EXPERT_REPLAY, ("PickPlace-planner-expert-replay", "PickPlace-planner-v2-subgoals")),
)


@dataclass
class Protocol:
    """What the planner was given, and whether the file said so or we worked it out."""

    label: str
    inferred: bool
    privileged_inputs: list[str] = field(default_factory=list)

    @property
    def rank(self) -> int:
        """Sort key: the product (image goal) first, privileged next, baselines last."""
        if self.label == IMAGE_GOAL:
            return 0
        if self.label.startswith(BASELINE):
            return 2
        return 1

    def text(self) -> str:
        return f"{self.label}, inferred" if self.inferred else self.label


@dataclass
class EvalRow:
    """One `simjepa evaluate` result file."""

    file: str  # relative to the results directory
    task: str
    env: str
    policy: str
    protocol: Protocol
    command: str
    command_recorded: bool
    seeds: str
    seed_list: list[int]
    episodes: int
    successes: int
    final_distance: float | None
    seconds_per_action: float | None
    model: str
    complete: bool = True  # False: a run stopped before all its seeds (recorded by newer files)
    proposal: bool = False  # a learned proposal acted alone or seeded the search
    search: str = "cem"  # the planner's setting: "none" ran the proposal's plan with no world-model search
    two_level: bool = False  # a macro-step model picked the search's sub-goals (--macro-model)
    predictor_hash: str = ""  # of the world model, when the file records it
    proposal_hash: str = ""  # of the proposal that acted or seeded the search, when the file records it

    def model_text(self) -> str:
        """The model by name where its hashes are a shipped default model's, else as recorded."""
        return (PROPOSAL_NAMES.get((self.predictor_hash, self.proposal_hash)) or MODEL_NAMES.get(self.predictor_hash)
                or self.model)

    def method_text(self) -> str:
        """What chose the actions: the headline mixes planner rows with the proposal acting alone."""
        if self.policy == "planner" and self.search != "none":
            return ("CEM + world model" + (" + learned proposal" if self.proposal else "")
                    + (" + macro-step model (two-level)" if self.two_level else ""))
        if self.policy in ("planner", "proposal"):
            return "learned proposal alone (no world model)"
        return self.policy

    @property
    def stem(self) -> str:
        return Path(self.file).stem

    def success_text(self) -> str:
        if self.episodes == 0:
            return "-"
        text = f"{self.successes}/{self.episodes} ({100 * self.successes / self.episodes:.0f}%)"
        return text if self.complete else f"{text}, run incomplete"

    def distance_text(self) -> str:
        return "-" if self.final_distance is None else f"{self.final_distance:.3f} m"

    def on_eval_seeds(self) -> bool:
        """Ran on evaluation seeds only (all 50, or a first part of them when time was short)."""
        return bool(self.seed_list) and all(EVAL_SEEDS[0] <= s <= EVAL_SEEDS[1] for s in self.seed_list)


# ---------------------------------------------------------------------------------------------
# protocol


def _task_of(env: str) -> str:
    """'simjepa/Push-v0' -> 'Push'; other ids are kept whole."""
    name = env.split("/")[-1]
    return name.rsplit("-v", 1)[0] if name.startswith(TASKS) else env


def _normalise_recorded(label: str) -> str:
    text = label.strip()
    low = text.lower()
    if low in (IMAGE_GOAL, "image goal", "image_goal"):
        return IMAGE_GOAL
    if low.startswith("baseline"):
        return BASELINE
    if "expert" in low and "privileged" not in low:
        return f"{text} (privileged)"
    if "goal-state" in low and "privileged" not in low:
        return f"{text} (privileged)"
    return text


def _used_expert_subgoals(data: dict[str, Any], task: str) -> bool:
    settings = data.get("settings") or {}
    subgoals = settings.get("subgoals")
    if isinstance(subgoals, str):
        return subgoals.lower() not in ("", "none", "off", "false", IMAGE_GOAL)
    if not subgoals or task not in ("Push", "PickPlace"):
        return False
    rows = [r for r in data.get("episodes") or [] if isinstance(r, dict)]
    if any("subgoal_steps" in r for r in rows) or "subgoal_steps" in settings:
        return any(r.get("subgoal_steps") is not None for r in rows)
    return task in LEGACY_ALWAYS_PHASED


def infer_protocol(data: dict[str, Any]) -> Protocol:
    """The protocol of one evaluation file: as recorded, else inferred from its settings."""
    settings = data.get("settings") or {}
    task = _task_of(str(data.get("env", "")))
    planner = data.get("planner") or {}
    overrides = settings.get("planner_overrides") or {}

    privileged: list[str] = []
    policy = data.get("policy") or settings.get("policy")
    if policy in ("random", "expert"):
        if policy == "expert":
            privileged.append("scripted expert on the true state")
    else:
        if _used_expert_subgoals(data, task):
            privileged.append("expert-demo sub-goals")
        weight = overrides.get("state_weight")
        if weight is None:
            weight = planner.get("state_weight")
        if weight:
            privileged.append(f"state_weight={weight:g}")
        for key in ("gripper_from_goal", "yaw_from_goal"):
            if planner.get(key) or overrides.get(key):
                privileged.append(key)
        if planner.get("gripper_init_std") == 0:
            privileged.append(f"gripper held at {planner.get('gripper_init_mean', 0):g} (task rule)")

    recorded = data.get("protocol") or settings.get("protocol")
    if policy in ("random", "expert"):
        # Baselines keep their own recorded name (e.g. "expert (privileged: simulator state)") but
        # always sort and count as baselines, never as a planner protocol.
        label = BASELINE if not recorded or str(recorded).startswith(BASELINE) else f"{BASELINE}: {recorded}"
        return Protocol(label, not recorded, privileged)
    if recorded:
        return Protocol(_normalise_recorded(str(recorded)), False, privileged)
    if "expert-demo sub-goals" in privileged:
        return Protocol(EXPERT_REPLAY, True, privileged)
    if any(p.startswith(("state_weight", "gripper_from_goal", "yaw_from_goal")) for p in privileged):
        return Protocol(GOAL_STATE, True, privileged)
    return Protocol(IMAGE_GOAL, True, privileged)


# ---------------------------------------------------------------------------------------------
# reading the files


def _seed_ranges(seeds: list[int]) -> str:
    if not seeds:
        return "-"
    seeds = sorted(set(seeds))
    parts, start, prev = [], seeds[0], seeds[0]
    for s in seeds[1:] + [None]:
        if s is not None and s == prev + 1:
            prev = s
            continue
        parts.append(f"{start}-{prev}" if prev != start else str(start))
        if s is not None:
            start = prev = s
    return ", ".join(parts)


def _model_text(model: Any) -> str:
    if model is None:
        return "-"
    if isinstance(model, dict):
        return str(model.get("path") or model.get("name") or model)
    return str(model)


def _reconstruct_command(data: dict[str, Any], episodes: int, seed_start: Any) -> str:
    """The `simjepa evaluate` call a legacy file's settings correspond to (its --out unknown)."""
    settings = data.get("settings") or {}
    policy = data.get("policy") or settings.get("policy") or "planner"
    parts = [f"simjepa evaluate --env {data.get('env')} --episodes {episodes} --seed-start {seed_start}"]
    if policy == "planner":
        parts.append(f"--model {_model_text(data.get('model') or settings.get('model'))}")
    parts.append(f"--policy {policy}")
    flags = {"samples": "--samples", "iterations": "--iters", "topk": "--topk", "horizon": "--horizon",
             "metric": "--energy", "state_weight": "--state-weight", "seed": "--planner-seed"}
    for key, flag in flags.items():
        value = (settings.get("planner_overrides") or {}).get(key)
        if value is not None:
            parts.append(f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}")
    if settings.get("max_steps"):
        parts.append(f"--max-steps {settings['max_steps']}")
    if settings.get("render_size"):
        parts.append(f"--render-size {settings['render_size']}")
    if policy == "planner" and settings.get("subgoals") is False:
        parts.append("--no-subgoals")
    if settings.get("subgoal_steps"):
        parts.append(f"--subgoal-steps {settings['subgoal_steps']}")
    return " ".join(parts)


def _eval_row(rel: str, data: dict[str, Any]) -> EvalRow:
    rows = [r for r in data.get("episodes") or [] if isinstance(r, dict)]
    seeds = [int(r["seed"]) for r in rows if "seed" in r]
    if isinstance(data.get("seeds"), list) and not seeds:
        seeds = [int(s) for s in data["seeds"]]
    successes = sum(bool(r.get("success")) for r in rows)
    episodes = len(rows)
    if not rows and "success_rate" in data and isinstance(data.get("episodes"), int):
        episodes = data["episodes"]
        successes = round(data["success_rate"] * episodes)
    command = data.get("command")
    recorded = bool(command)
    if isinstance(command, list):
        command = " ".join(str(c) for c in command)
    if not command:
        command = _reconstruct_command(data, episodes, data.get("seed_start", min(seeds, default=0)))
    merged = [m for m in data.get("merged_from") or [] if isinstance(m, dict)]  # older files: a list of names
    if len(merged) > 1:  # scripts/merge_results.py: a cut run and its continuations, each command in the file
        starts = ", ".join(str(min(m.get("seeds") or [0])) for m in merged[1:])
        command = f"{command}; continued from seed {starts}, same settings (merged by scripts/merge_results.py)"
    env = str(data.get("env", "?"))
    settings = data.get("settings") or {}
    return EvalRow(
        file=rel, task=_task_of(env), env=env,
        policy=str(data.get("policy") or settings.get("policy") or "?"),
        protocol=infer_protocol(data), command=str(command), command_recorded=recorded,
        seeds=_seed_ranges(seeds), seed_list=seeds, episodes=episodes, successes=successes,
        final_distance=data.get("mean_final_distance"),
        seconds_per_action=data.get("mean_seconds_per_action"),
        model=_model_text(data.get("model")),
        complete=data.get("complete") is not False,
        proposal=bool(data.get("proposal")),
        search=str((data.get("planner") or {}).get("search") or "cem"),
        two_level=bool(data.get("macro_model")),
        predictor_hash=str((data.get("model") or {}).get("predictor_hash") or "") if isinstance(data.get("model"), dict) else "",
        proposal_hash=str((data.get("proposal") or {}).get("weights_hash") or "") if isinstance(data.get("proposal"), dict) else "",
    )


@dataclass
class Results:
    evals: list[EvalRow] = field(default_factory=list)
    bench: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    probe: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    oracle: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    energy: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # benchmarks/goal_energy_probe.py
    ceiling: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # benchmarks/probe_ceiling.py
    other: list[tuple[str, str]] = field(default_factory=list)  # (file, why it is not tabulated)


def load_results(results_dir: Path) -> Results:
    """Every JSON file under ``results_dir``, sorted into the kinds this script knows."""
    out = Results()
    for path in sorted(results_dir.rglob("*.json")):
        rel = path.relative_to(results_dir).as_posix()
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            out.other.append((rel, f"unreadable: {exc.__class__.__name__}"))
            continue
        if not isinstance(data, dict):
            out.other.append((rel, "not a JSON object"))
        elif "success_rate" in data and "episodes" in data:
            out.evals.append(_eval_row(rel, data))
        elif "seconds_per_action_default" in data:
            out.bench.append((rel, data))
        elif "r2_ee" in data:
            out.probe.append((rel, data))
        elif "successes" in data and "episodes_detail" in data:
            out.oracle.append((rel, data))
        elif "share_arm_at_goal_below_cube_at_goal" in data:
            out.energy.append((rel, data))
        elif "cube_hidden_fraction" in data and "readouts" in data:
            out.ceiling.append((rel, data))
        else:
            out.other.append((rel, "unknown layout"))
    return out


# ---------------------------------------------------------------------------------------------
# tables


@dataclass
class HeadlineRow:
    task: str
    slot: str  # the protocol the slot asks for
    row: EvalRow | None

    @property
    def rank(self) -> int:
        return self.row.protocol.rank if self.row else Protocol(self.slot, False).rank


def headline_rows(results: Results) -> list[HeadlineRow]:
    """The headline slots filled from the files, the image-goal protocol first.

    A file fills a slot only when its protocol is the slot's and it ran on the evaluation seeds,
    so a privileged or tuning-seed row can never stand in the image-goal slot. Rows are ordered
    by the protocol they actually have (then task), not by the slot list.
    """
    by_stem = {r.stem: r for r in results.evals}
    chosen: list[HeadlineRow] = []
    for task, slot, stems in HEADLINE_SLOTS:
        found = None
        for stem in stems:
            row = by_stem.get(stem)
            if row and row.protocol.label == slot and row.on_eval_seeds():
                found = row
                break
        chosen.append(HeadlineRow(task, slot, found))
    order = {t: i for i, t in enumerate(TASKS)}
    return sorted(chosen, key=lambda h: (h.rank, order.get(h.task, 99)))


def _baseline_text(results: Results, task: str) -> str:
    parts = []
    for policy in ("random", "expert"):
        rows = [r for r in results.evals if r.task == task and r.policy == policy and r.on_eval_seeds()]
        if rows:
            row = sorted(rows, key=lambda r: r.file)[0]
            parts.append(f"{policy} {row.successes}/{row.episodes}, {row.distance_text()}")
    return "; ".join(parts) or "-"


def render_headline(results: Results) -> str:
    lines = [
        "| task | protocol | model | method | success | mean final distance | baselines: random, expert policy | result file |",
        "|---|---|---|---|---:|---:|---|---|",
    ]
    for h in headline_rows(results):
        if h.row is None:
            label = h.slot
            lines.append(f"| {h.task} | {label} | - | - | not yet measured | - | {_baseline_text(results, h.task)} | - |")
            continue
        r = h.row
        label = r.protocol.text()
        if r.protocol.rank == 0:
            label = f"**{label}**"
        lines.append(
            f"| {r.task} | {label} | {_cell(r.model_text())} | {r.method_text()} | {r.success_text()} | {r.distance_text()} | "
            f"{_baseline_text(results, r.task)} | [`{r.stem}`](benchmarks/results/{r.file}) |"
        )
    lines.append("")
    lines.append(
        f"Evaluation protocol: `simjepa evaluate` on seeds {EVAL_SEEDS[0]}-{EVAL_SEEDS[1]} (never used "
        "for training or tuning; the success column gives the number of episodes), each configuration run once, 64 px frames, success = within 0.05 m "
        "at any step. \"inferred\": the file predates the recorded `protocol` key and its protocol was "
        "read off its settings. Every row, with its command: [docs/results.md](docs/results.md)."
    )
    return "\n".join(lines)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|")


def _file_link(rel: str) -> str:
    """A result file's table cell in docs/results.md: its stem, linked to the file."""
    return f"[`{Path(rel).stem}`](../benchmarks/results/{rel})"


def render_results_md(results: Results) -> str:
    """The full docs/results.md."""
    out = [
        "# Results",
        "",
        "Generated by `python scripts/results_table.py` from the files under `benchmarks/results/`;",
        "do not edit by hand. Protocols: **image-goal** (the product: observation pixels, the arm's",
        "own `state[:7]` and one goal image), **expert-replay (privileged)** (sub-goal images from the",
        "scripted expert's demonstration of the evaluated episode), **goal-state (privileged)** (numbers",
        "read from the goal's simulator state), **baseline** (random or scripted expert policy).",
        "\"inferred\": the file predates the recorded `protocol` key; the protocol was read off its",
        "settings, and the listed privileged inputs say why. A command marked \"reconstructed\" was",
        "rebuilt from the file's settings (its `--out` and `--workers` are not recorded). Files whose",
        "model is `default` and that predate default model v2 ran on the first default model (v1): see",
        "[history.md](history.md).",
        "",
        "## Headline",
        "",
        render_headline(results).replace("](benchmarks/", "](../benchmarks/").replace("](docs/results.md)", "](results.md)"),
        "",
        "## Closed-loop evaluations (`simjepa evaluate`)",
        "",
    ]
    order = {t: i for i, t in enumerate(TASKS)}
    rows = sorted(results.evals, key=lambda r: (order.get(r.task, 99), r.protocol.rank, r.file))
    for task in sorted({r.task for r in rows}, key=lambda t: (order.get(t, 99), t)):  # by name after the known tasks
        out += [f"### {task}", "",
                "| file | protocol | privileged inputs | seeds | episodes | success | final distance | s/action | model | command |",
                "|---|---|---|---|---:|---:|---:|---:|---|---|"]
        for r in (r for r in rows if r.task == task):
            spa = "-" if r.seconds_per_action is None else (
                "<0.01" if r.seconds_per_action < 0.005 else f"{r.seconds_per_action:.2f}")
            cmd = f"`{_cell(r.command)}`" + ("" if r.command_recorded else " (reconstructed)")
            out.append(
                f"| {_file_link(r.file)} | {r.protocol.text()} | "
                f"{_cell(', '.join(r.protocol.privileged_inputs) or '-')} | {r.seeds} | {r.episodes} | "
                f"{r.success_text()} | {r.distance_text()} | {spa} | `{_cell(r.model)}` | {cmd} |"
            )
        out.append("")

    if results.oracle:
        out += ["## Greedy search with the simulator as predictor (`benchmarks/oracle_search.py`)", "",
                "Privileged by construction: the simulator replaces the world model, and Push / PickPlace",
                "follow waypoints from the expert's demonstration. A diagnostic of the energy, not a result.",
                "",
                "| file | env | energy | encoder | random init | fine moves | seeds | success | final distance |",
                "|---|---|---|---|---|---|---|---:|---:|"]
        for rel, d in results.oracle:
            seeds = _seed_ranges([int(e["seed"]) for e in d.get("episodes_detail") or [] if "seed" in e])
            out.append(
                f"| {_file_link(rel)} | {d.get('env')} | {d.get('energy')} | "
                f"`{_cell(d.get('encoder'))}` | {d.get('random_init')} | {d.get('fine')} | {seeds} | "
                f"{d.get('successes')}/{d.get('episodes')} | {d.get('mean_final_distance')} m |"
            )
        out.append("")

    if results.probe:
        out += ["## Linear probes (`simjepa probe`)", "",
                "| file | env | encoder | image size | pool | episodes (seed start) | r2_ee | r2_object |",
                "|---|---|---|---:|---:|---|---:|---:|"]
        for rel, d in results.probe:
            s = d.get("settings") or {}
            enc = (d.get("encoder") or {}).get("name", "?") if isinstance(d.get("encoder"), dict) else d.get("encoder")
            obj = d.get("r2_object")
            out.append(
                f"| {_file_link(rel)} | {s.get('env')} | `{_cell(enc)}` | "
                f"{d.get('image_size')} | {s.get('pool')} | {s.get('episodes')} ({s.get('seed_start')}) | "
                f"{d['r2_ee']:.3f} | {'-' if obj is None else f'{obj:.3f}'} |"
            )
        out.append("")

    if results.energy:
        out += ["## What the goal energy weighs (`benchmarks/goal_energy_probe.py`)", "",
                "The cube's share: the energy of a frame with the arm posed as in the goal and the cube unmoved, over",
                "the start frame's (the part of the energy that can pull the cube), as the planner reads it (mean over",
                "tokens); then weighted by how much each token differs between start and goal, and over the 4 largest",
                "tokens (files written before those reads show the mean only). A probe of the energy: it sets the",
                "simulator's state to build its frames.", "",
                "| file | env | encoder | seeds | start energy | cube share: mean / weighted / top 4 | arm-at-goal below cube-on-target |",
                "|---|---|---|---|---:|---|---:|"]
        for rel, d in results.energy:
            e = d.get("mean_energy") or {}
            share = d.get("cube_share") or {}
            if share:
                reads = " / ".join(f"{100 * share[k]:.1f} %" for k in ("mean", "start_goal_weighted", "top4_tokens"))
            else:
                # the mean over seeds of each seed's ratio, as the probe's own cube_share["mean"] is
                ratios = [r["arm_at_goal"] / r["start"] for r in d.get("rows") or [] if r.get("start")]
                reads = f"{100 * sum(ratios) / len(ratios):.1f} %" if ratios else "-"
            seeds = d.get("seeds") or []
            out.append(
                f"| {_file_link(rel)} | {d.get('env')} | "
                f"`{_cell(d.get('encoder') or d.get('model'))}` | {'-'.join(map(str, seeds))} | "
                f"{e.get('start', float('nan')):.3f} | {reads} | {d['share_arm_at_goal_below_cube_at_goal']:.0%} |"
            )
        out.append("")

    if results.ceiling:
        out += ["## What a read-out of the frame can give (`benchmarks/probe_ceiling.py`)", "",
                "The probe's episodes, split and ridge, on features no pretraining shaped (raw pixels, an ideal red-cube",
                "detector per pixel / 8x8 token / pooled cell, a centroid oracle, a small CNN trained on the frames) or on an",
                "encoder's (`encoder`); one camera or two side by side. R^2 on held-out episodes.", "",
                "| file | env | datasets (one per camera) | episodes | cube hidden (every view) | read-out | features | cube R^2 | end effector R^2 | gripper R^2 |",
                "|---|---|---|---:|---:|---|---:|---:|---:|---:|"]
        for rel, d in results.ceiling:
            views = " + ".join("/".join(Path(p).parts[-2:]) for p in d.get("data") or []) or "?"
            hidden = (d.get("cube_hidden_fraction") or {}).get("every_view")
            enc = d.get("encoder") or {}
            for name, r in (d.get("readouts") or {}).items():
                if name == "encoder":
                    name = (f"encoder `{_cell(enc.get('weights_hash'))}`" + (" random init" if enc.get("random_init") else "")
                            + (" every token" if enc.get("pool") == 8 else ""))
                r2 = lambda k: "-" if not isinstance(r.get(k), dict) else f"{r[k]['r2']:.3f}"  # noqa: E731, B023
                feats = r.get("features") or "x".join(map(str, r.get("input") or [])) or "-"
                out.append(f"| {_file_link(rel)} | {d.get('env')} | {views} | {d.get('episodes_used', '?')} | "
                           f"{'-' if hidden is None else f'{100 * hidden:.1f} %'} | {name} | {feats} | "
                           f"{r2('cube')} | {r2('ee')} | {r2('gripper')} |")
        out.append("")

    if results.bench:
        out += ["## Planner speed (`simjepa bench`)", "",
                "One process, the machine's load average at start and end recorded; see",
                "[benchmarks.md](benchmarks.md) for what each number measures.", "",
                "| file | model | search | s/action (ours) | s/action (official-style reference) | speedup | peak fraction | threads | load average start / end |",
                "|---|---|---|---:|---:|---:|---:|---:|---|"]
        for rel, d in results.bench:
            m = d.get("machine") or {}
            st = d.get("seconds_per_action_default_settings") or {}
            env = st.get("env") or (d.get("env_steps_per_s_settings") or {}).get("env")
            search = ", ".join([str(env)] * bool(env) + [f"{k} {st[k]}" for k in ("samples", "iterations", "horizon") if k in st])
            load = lambda k: "-" if not m.get(k) else f"{m[k][0]:.1f}"  # noqa: E731
            fraction = d.get("planner_peak_fraction")
            out.append(
                f"| {_file_link(rel)} | {_cell((d.get('model') or {}).get('source', '?'))} | "
                f"{_cell(search) or '-'} | {d['seconds_per_action_default']:.2f} | "
                f"{d.get('seconds_per_action_reference', float('nan')):.2f} | "
                f"{d.get('planner_speedup_vs_reference', float('nan')):.1f}x | "
                f"{'-' if fraction is None else f'{fraction:.2f}'} | {m.get('torch_threads', '?')} | "
                f"{load('load_average_start')} / {load('load_average_end')} |"
            )
        out.append("")

    if results.other:
        out += ["## Other files", "", "| file | why not tabulated |", "|---|---|"]
        out += [f"| `{rel}` | {why} |" for rel, why in results.other]
        out.append("")
    return "\n".join(out)


def replace_block(text: str, block: str) -> str:
    """``text`` with the part between the results markers replaced by ``block``."""
    start, end = text.find(START_MARK), text.find(END_MARK)
    if start < 0 or end < start:
        raise ValueError(f"README has no '{START_MARK}' ... '{END_MARK}' block")
    return text[: start + len(START_MARK)] + "\n" + block + "\n" + text[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs" / "results.md")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--print-headline", action="store_true", help="print the headline table and exit")
    parser.add_argument("--check", action="store_true", help="exit 1 if docs or README are out of date")
    args = parser.parse_args(argv)

    if not args.results.is_dir():
        print(f"error: no results directory {args.results}", file=sys.stderr)
        return 2
    results = load_results(args.results)
    headline = render_headline(results)
    if args.print_headline:
        print(headline)
        return 0

    docs = render_results_md(results)
    readme_old = args.readme.read_text() if args.readme.exists() else None
    try:
        readme_new = replace_block(readme_old, headline) if readme_old is not None else None
    except ValueError as exc:
        print(f"error: {args.readme}: {exc}", file=sys.stderr)
        return 2
    if args.check:
        stale = []
        if not args.docs.exists() or args.docs.read_text() != docs + "\n":
            stale.append(str(args.docs))
        if readme_new is not None and readme_new != readme_old:
            stale.append(str(args.readme))
        if stale:
            print(f"out of date: {', '.join(stale)}; run python scripts/results_table.py", file=sys.stderr)
            return 1
        return 0
    args.docs.parent.mkdir(parents=True, exist_ok=True)
    args.docs.write_text(docs + "\n")
    if readme_new is not None and readme_new != readme_old:
        args.readme.write_text(readme_new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
