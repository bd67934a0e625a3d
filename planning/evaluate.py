"""Many episodes, one policy: success rate and final distance (``simjepa evaluate``)."""
from __future__ import annotations

import multiprocessing as mp
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from simjepa_core.atomic import write_json, write_text

from .agent import check_device
from .errors import PlannerConfigError
from .provenance import command_line, git_commit, high_level_identity, model_identity
from .subgoals import check_subgoal_steps, is_privileged, load_subgoals, protocol, subgoal_steps

POLICIES = ("planner", "random", "expert", "proposal")
DEFAULT_RENDER_SIZE = 256  # baselines without a model: the env's default

# per-process state of a worker: (env, policy, settings)
_WORKER: dict[str, Any] = {}


def make_policy(policy: str, env: Any, model: str | Path, planner_overrides: dict[str, Any] | None,
                env_id: str | None = None, privileged_goal_state: bool = False, proposal: str | None = None,
                macro_model: str | None = None, macro_overrides: dict[str, Any] | None = None, device: str = "cpu") -> Any:
    from .agent import Agent
    from .policies import ExpertPolicy, RandomPolicy

    if policy == "planner":
        return Agent.from_pretrained(model, env_id=env_id, privileged_goal_state=privileged_goal_state,
                                     proposal=proposal, macro_model=macro_model, macro_overrides=macro_overrides,
                                     device=device, **(planner_overrides or {}))
    if policy == "proposal":  # the proposal alone: the agent with no search (the world model is not called)
        return Agent.from_pretrained(model, env_id=env_id, proposal=proposal, search="none")
    if policy == "random":
        return RandomPolicy(env)
    if policy == "expert":
        return ExpertPolicy(env)
    raise PlannerConfigError(f"unknown policy {policy!r}; use one of {', '.join(POLICIES)}")


def _init(settings: dict[str, Any], threads: int | None) -> None:
    import torch

    from envs.registration import make_env

    if threads is not None:
        torch.set_num_threads(threads)
    settings = dict(settings)
    agent = None
    if settings["policy"] in ("planner", "proposal"):  # loaded first: its input size is the default render size
        agent = make_policy(settings["policy"], None, settings["model"], settings["planner_overrides"],
                            settings["env_id"], is_privileged(settings["subgoals"]), settings.get("proposal"),
                            settings.get("macro_model"), settings.get("macro_overrides"), settings.get("device", "cpu"))
        settings["render_size"] = settings["render_size"] or int(agent.world_model.image_size)
        settings["model_identity"] = model_identity(settings["model"], agent.world_model)
        prior = getattr(agent, "proposal", None) or getattr(agent, "prior", None)
        settings["proposal_identity"] = prior.identity() if prior is not None else None
        settings["macro_identity"] = high_level_identity(agent)
    settings["render_size"] = settings["render_size"] or DEFAULT_RENDER_SIZE
    cameras = agent.cameras if agent is not None else ("front",)  # a two-view model sees both views
    settings["cameras"] = cameras
    env = make_env(settings["env_id"], render_size=settings["render_size"], max_episode_steps=settings["max_steps"],
                   cameras=cameras)
    policy = agent if agent is not None else make_policy(settings["policy"], env, settings["model"], settings["planner_overrides"])
    _WORKER.update(env=env, settings=settings, policy=policy)


def _init_worker(settings: dict[str, Any], threads: int | None) -> None:
    """Pool initializer that never raises: a raising initializer makes ``Pool`` respawn workers
    forever (a hang); the error is kept and raised by the first task, which reaches the parent."""
    try:
        _init(settings, threads)
    except Exception as exc:
        _WORKER["init_error"] = exc


def _episode(seed: int) -> dict[str, Any]:
    from .rollout import rollout

    if "init_error" in _WORKER:
        raise _WORKER["init_error"]
    env, policy, st = _WORKER["env"], _WORKER["policy"], _WORKER["settings"]
    goals = (load_subgoals(st["subgoals"], st["env_id"], seed, st["render_size"], st["cameras"])
             if st["policy"] == "planner" else None)
    limit = st["max_steps"] or getattr(getattr(env, "spec", None), "max_episode_steps", None) or 100
    per_goal = subgoal_steps(st["env_id"], limit, len(goals), st["subgoal_steps"]) if goals else None
    m = rollout(env, policy, seed, max_steps=st["max_steps"], subgoals=goals, subgoal_steps=per_goal,
                privileged_goal_state=st["policy"] == "planner" and is_privileged(st["subgoals"]))
    energies = [e for e in m["energy"] if e is not None]
    config = getattr(policy, "config", None)
    return {
        "planner": config.to_flat() if hasattr(config, "to_flat") else None, "model": st.get("model_identity"),
        "proposal": st.get("proposal_identity"), "macro_model": st.get("macro_identity"),
        "seed": seed, "success": m["success"], "final_distance": m["final_distance"],
        "initial_distance": m["initial_distance"], "steps": m["steps"], "seconds_per_action": m["seconds_per_action"],
        "final_energy": energies[-1] if energies else None, "render_size": st["render_size"], "subgoal_steps": per_goal,
    }


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "success_rate": float(np.mean([r["success"] for r in rows])),
        "mean_final_distance": float(np.mean([r["final_distance"] for r in rows])),
        "mean_steps": float(np.mean([r["steps"] for r in rows])),
        "mean_seconds_per_action": float(np.mean([r["seconds_per_action"] for r in rows])),
    }


def results_markdown(results: dict[str, Any]) -> str:
    """Summary line plus one table row per episode."""
    partial = "" if results.get("complete", True) else " (partial: run still going or stopped)"
    head = (f"**{results['policy']}** on `{results['env']}`, protocol {results.get('protocol', '?')}, "
            f"{len(results['episodes'])} episodes from seed {results['seed_start']}{partial}: success {results['success_rate']:.0%}, mean final distance "
            f"{results['mean_final_distance']:.3f} m, {results['mean_seconds_per_action']:.3f} s/action\n\n")
    lines = ["| seed | success | final distance (m) | initial distance (m) | steps | s/action | final energy |",
             "|---:|:---:|---:|---:|---:|---:|---:|"]
    for r in results["episodes"]:
        e = "-" if r["final_energy"] is None else f"{r['final_energy']:.4f}"
        lines.append(f"| {r['seed']} | {'yes' if r['success'] else 'no'} | {r['final_distance']:.3f} | "
                     f"{r['initial_distance']:.3f} | {r['steps']} | {r['seconds_per_action']:.3f} | {e} |")
    return head + "\n".join(lines) + "\n"


def evaluate(
    env_id: str,
    episodes: int,
    seed_start: int = 0,
    policy: str = "planner",
    model: str | Path = "default",
    out: str | Path | None = None,
    workers: int = 1,
    planner_overrides: dict[str, Any] | None = None,
    max_steps: int | None = None,
    render_size: int | None = None,
    subgoals: str = "none",
    subgoal_steps_per_goal: int | None = None,
    progress: bool = True,
    command: str | None = None,
    proposal: str | Path | None = None,
    macro_model: str | Path | None = None,
    macro_overrides: dict[str, Any] | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Run ``episodes`` seeded episodes (seeds ``seed_start ...``), in ``workers`` processes.

    ``render_size`` None: the planner's model input size (256 for baselines). Each worker loads the
    env and policy once and uses ``torch.set_num_threads(cores // workers)`` so parallel episodes do
    not oversubscribe the CPU. ``subgoals``: ``"none"`` (image-goal protocol) or ``"expert-replay"``
    (privileged, planner only; see :mod:`planning.subgoals`). ``proposal``: a proposal file seeding the
    planner's search, or, with ``policy="proposal"``, acting alone (the model's encoder, no search); None:
    the model's embedded proposal if it has one; ``"none"``: no proposal.
    ``macro_model``: a macro-step model for two-level planning (planner only; :mod:`planning.hierarchy`),
    its search overridden by ``macro_overrides``. ``device``: where the planner's world model runs
    (``"cuda"``: every worker process searches on the GPU; planner without proposal or macro model). Writes ``results.json`` and ``results.md``
    (also after each episode, marked ``"complete": false``, so a killed run keeps what finished), with the
    protocol, command, commit, model identity and seeds.
    """
    if episodes < 1:
        raise PlannerConfigError(f"--episodes {episodes} must be >= 1")
    if workers < 1:
        raise PlannerConfigError(f"--workers {workers} must be >= 1")
    if policy not in POLICIES:
        raise PlannerConfigError(f"unknown policy {policy!r}; use one of {', '.join(POLICIES)}")
    if is_privileged(subgoals) and policy != "planner":
        raise PlannerConfigError(f"--subgoals {subgoals} applies to --policy planner only")
    if proposal is not None and policy not in ("planner", "proposal"):
        raise PlannerConfigError(f"--proposal applies to --policy planner or proposal, not {policy}")
    if macro_model is not None and policy != "planner":
        raise PlannerConfigError(f"--macro-model applies to --policy planner, not {policy}")
    check_subgoal_steps(subgoals, subgoal_steps_per_goal)
    check_device(device, policy, proposal, macro_model)
    header = {"env": env_id, "policy": policy, "protocol": _protocol_of(policy, subgoals),
              "command": command if command is not None else command_line(), "commit": git_commit()}
    settings = dict(env_id=env_id, policy=policy, model=str(model), planner_overrides=planner_overrides or {},
                    max_steps=max_steps, render_size=render_size, subgoals=subgoals, subgoal_steps=subgoal_steps_per_goal,
                    proposal=None if proposal is None else str(proposal),
                    macro_model=None if macro_model is None else str(macro_model), macro_overrides=macro_overrides or {},
                    device=device)
    seeds = list(range(seed_start, seed_start + episodes))
    workers = min(workers, episodes)
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)  # an unwritable --out fails now, not after every episode ran
    t0 = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=episodes, desc=f"evaluate {policy} on {env_id}", unit="ep")
    rows: list[dict[str, Any]] = []
    run = {"header": header, "settings": settings, "seeds": seeds, "t0": t0}

    def add(row: dict[str, Any]) -> None:
        rows.append(row)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(success=f"{np.mean([r['success'] for r in rows]):.0%}")
        if out is not None and len(rows) < len(seeds):
            _write(_results(run, rows, complete=False), Path(out))

    try:
        if workers == 1:
            _init(settings, None)
            for seed in seeds:
                add(_episode(seed))
        else:
            threads = max(1, (os.cpu_count() or 1) // workers)
            with mp.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(settings, threads)) as pool:
                for row in pool.imap(_episode, seeds):
                    add(row)
    except BaseException:
        if bar is not None:
            bar.leave = False  # erase the bar: the error line alone remains on the terminal
        raise
    finally:
        if bar is not None:
            bar.close()
        if workers == 1 and "env" in _WORKER:
            _WORKER.pop("env").close()
    results = _results(run, rows, complete=True)
    if out is not None:
        _write(results, Path(out))
    return results


def _protocol_of(policy: str, subgoals: str) -> str:
    """The planner's protocol; the baselines' own names (the expert reads the simulator state by design)."""
    if policy in ("planner", "proposal"):
        return protocol(subgoals)
    return "expert (privileged: simulator state)" if policy == "expert" else "random"


def _results(run: dict[str, Any], rows: list[dict[str, Any]], complete: bool) -> dict[str, Any]:
    """The results dict of the episodes run so far (``complete`` False while seeds remain)."""
    rows = [dict(r) for r in rows]
    planner, model, prop = rows[0]["planner"], rows[0]["model"], rows[0].get("proposal")  # the same in every row
    macro = rows[0].get("macro_model")
    for row in rows:
        del row["planner"], row["model"]
        row.pop("proposal", None)
        row.pop("macro_model", None)
    settings = {k: v for k, v in run["settings"].items() if k not in ("env_id", "model_identity")}
    settings["render_size"] = rows[0]["render_size"]
    seeds = run["seeds"]
    return {**run["header"], "model": model if run["settings"]["policy"] in ("planner", "proposal") else None,
            "proposal": prop, "macro_model": macro,
            "planner": planner, "seed_start": seeds[0], "seeds": [r["seed"] for r in rows], "seeds_requested": seeds,
            "complete": complete, **summarize(rows), "seconds": time.perf_counter() - run["t0"],
            "settings": settings, "episodes": rows}


def _write(results: dict[str, Any], out: Path) -> None:
    write_json(out / "results.json", results)
    write_text(out / "results.md", results_markdown(results))


# --- merging runs of one configuration -------------------------------------------------------------------
_IDENTITY = ("env", "policy", "protocol", "model", "proposal", "macro_model")


def _settings_key(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings without unset values: files written before a setting existed compare equal to ones that
    leave it unset (``device`` defaults to ``cpu``, as it did before it was recorded)."""
    def unset(v: Any) -> bool:
        return v is None or v == {} or v == []

    cleaned = {k: {kk: vv for kk, vv in v.items() if not unset(vv)} if isinstance(v, dict) else v for k, v in settings.items()}
    return {"device": "cpu"} | {k: v for k, v in cleaned.items() if not unset(v)}


def merge_results(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One results dict from runs of the same configuration over different seeds (a run a session could
    not finish, continued later from the next seed).

    Why this is safe: every episode's planner is reseeded from its env seed, so a seed run twice gives the
    same episode. Refused (``PlannerConfigError``) when the runs differ in env, policy, protocol, model,
    proposal, macro model or settings, when a seed run by two parts disagrees, or when the parts' planner
    configs name different fields (written by different code versions) and no seed was run by both to show
    they plan alike. The merged dict keeps every part's command, commit and seeds under ``merged_from``;
    ``complete`` says whether every seed any part requested ran.
    """
    if not parts:
        raise PlannerConfigError("nothing to merge: give at least one results file")
    first = parts[0]
    for p in parts[1:]:
        for key in _IDENTITY:
            if p.get(key) != first.get(key):
                raise PlannerConfigError(f"runs differ in {key}: {first.get(key)!r} vs {p.get(key)!r}; only runs of "
                                         "one configuration merge")
        if _settings_key(p.get("settings") or {}) != _settings_key(first.get("settings") or {}):
            raise PlannerConfigError(f"runs differ in settings: {first.get('settings')} vs {p.get('settings')}")
        a, b = first.get("planner") or {}, p.get("planner") or {}
        shared = set(a) & set(b)
        if any(a[k] != b[k] for k in shared):
            raise PlannerConfigError("runs differ in planner settings: "
                                     + ", ".join(f"{k} {a[k]!r} vs {b[k]!r}" for k in sorted(shared) if a[k] != b[k]))
    by_seed: dict[int, dict[str, Any]] = {}
    overlap: set[int] = set()
    for p in parts:
        for row in p["episodes"]:
            seen = by_seed.setdefault(int(row["seed"]), row)
            if seen is row:
                continue
            overlap.add(int(row["seed"]))
            if seen["success"] != row["success"] or abs(seen["final_distance"] - row["final_distance"]) > 1e-6:
                raise PlannerConfigError(f"seed {row['seed']} ran twice with different outcomes (final distance "
                                         f"{seen['final_distance']:.4f} vs {row['final_distance']:.4f} m): not the same "
                                         "configuration, or not deterministic; these runs do not merge")
    if len({frozenset(p.get("planner") or {}) for p in parts}) > 1 and not overlap:
        raise PlannerConfigError("the runs' planner configs come from different code versions (different fields) "
                                 "and share no seed; re-run one seed of the earlier run with the later code to show "
                                 "they plan alike, and merge it too")
    rows = [by_seed[s] for s in sorted(by_seed)]
    requested = sorted({int(s) for p in parts for s in p.get("seeds_requested") or [r["seed"] for r in p["episodes"]]})
    merged = {k: v for k, v in first.items() if k not in ("episodes", "seeds", "seeds_requested", "complete", "seconds")}
    merged.update({
        "seed_start": requested[0], "seeds": [r["seed"] for r in rows], "seeds_requested": requested,
        "complete": set(requested) <= set(by_seed), **summarize(rows),
        "seconds": float(sum(p.get("seconds") or 0.0 for p in parts)), "episodes": rows,
        "merged_from": [{"command": p.get("command"), "commit": p.get("commit"), "seeds": [r["seed"] for r in p["episodes"]],
                         "planner": p.get("planner")} for p in parts],
        "seeds_run_twice": sorted(overlap),
    })
    return merged
