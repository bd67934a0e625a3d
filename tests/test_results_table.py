"""scripts/results_table.py: protocol labels and the headline order.

The README's headline table is generated; these tests pin what must never slip: a result that
used the expert's demonstration or the goal's simulator state is labelled privileged, and the
image-goal rows come first.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load_module():
    spec = importlib.util.spec_from_file_location("results_table", ROOT / "scripts" / "results_table.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


rt = _load_module()


def _episodes(seed_start: int, n: int, successes: int, subgoal_steps=...):
    rows = []
    for i in range(n):
        row = {"seed": seed_start + i, "success": i < successes, "final_distance": 0.04 if i < successes else 0.2}
        if subgoal_steps is not ...:
            row["subgoal_steps"] = subgoal_steps
        rows.append(row)
    return rows


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    """Two fake evaluation files: a new one recording its protocol, a legacy one with sub-goals."""
    root = tmp_path / "results"
    _write(root / "eval" / "Push-planner-image-goal.json", {
        "env": "simjepa/Push-v0", "policy": "planner", "protocol": "image-goal",
        "command": "simjepa evaluate --env simjepa/Push-v0 --episodes 50 --seed-start 1000 --out r",
        "commit": "0" * 40, "complete": True, "seeds": list(range(1000, 1050)),
        "model": {"path": "default", "predictor_hash": "abc", "encoder_hash": "def"}, "seed_start": 1000,
        "success_rate": 0.1, "mean_final_distance": 0.15,
        "settings": {"policy": "planner", "subgoals": "none"},
        "planner": {"samples": 100, "state_weight": 0.0},
        "episodes": _episodes(1000, 50, 5),
    })
    # Written before the "protocol" key: Push planned through expert-demo sub-goals, which the
    # file shows only by its settings and per-episode sub-goal budget.
    _write(root / "eval" / "Push-planner-v2-subgoals-yaw-grip05.json", {
        "env": "simjepa/Push-v0", "policy": "planner", "model": "runs/x.pt", "seed_start": 1000,
        "success_rate": 0.78, "mean_final_distance": 0.047,
        "settings": {"policy": "planner", "subgoals": True, "subgoal_steps": None,
                     "planner_overrides": {"state_weight": None}},
        "planner": {"samples": 100, "state_weight": 0.0, "yaw_from_goal": True,
                    "gripper_init_mean": 0.5, "gripper_init_std": 0.0},
        "episodes": _episodes(1000, 50, 39, subgoal_steps=10),
    })
    return root


def test_protocol_labels(results_dir: Path) -> None:
    rows = {r.stem: r for r in rt.load_results(results_dir).evals}
    new = rows["Push-planner-image-goal"].protocol
    assert (new.label, new.inferred) == ("image-goal", False)
    legacy = rows["Push-planner-v2-subgoals-yaw-grip05"].protocol
    assert (legacy.label, legacy.inferred) == ("expert-replay (privileged)", True)
    assert "expert-demo sub-goals" in legacy.privileged_inputs
    assert "yaw_from_goal" in legacy.privileged_inputs
    assert rows["Push-planner-v2-subgoals-yaw-grip05"].success_text() == "39/50 (78%)"


def test_legacy_inference_cases() -> None:
    base = {"env": "simjepa/Push-v0", "policy": "planner", "settings": {"subgoals": True}}
    # Push before per-episode sub-goal budgets: "subgoals" did nothing for Push then.
    assert rt.infer_protocol({**base, "episodes": [{"seed": 1}]}).label == "image-goal"
    # Rows that record a sub-goal budget say per episode whether sub-goals were used.
    assert rt.infer_protocol({**base, "episodes": [{"seed": 1, "subgoal_steps": None}]}).label == "image-goal"
    assert rt.infer_protocol({**base, "episodes": [{"seed": 1, "subgoal_steps": 10}]}).label \
        == "expert-replay (privileged)"
    # PickPlace planned through the expert's grasp / lift / place images from the start.
    assert rt.infer_protocol({**base, "env": "simjepa/PickPlace-v0", "episodes": [{"seed": 1}]}).label \
        == "expert-replay (privileged)"
    # Sub-goals switched off, but the energy reads the goal's state.
    state = {**base, "settings": {"subgoals": False, "planner_overrides": {"state_weight": 1.0}}}
    assert rt.infer_protocol(state).label == "goal-state (privileged)"
    # Reach has no sub-goals whatever the flag says.
    assert rt.infer_protocol({**base, "env": "simjepa/Reach-v0", "episodes": [{"seed": 1}]}).label == "image-goal"
    assert rt.infer_protocol({**base, "policy": "random"}).label == "baseline"
    expert = rt.infer_protocol({**base, "policy": "expert", "protocol": "expert (privileged: simulator state)"})
    assert expert.label == "baseline: expert (privileged: simulator state)" and expert.rank == 2
    # A recorded protocol is used as recorded, and privileged names keep their label.
    assert rt.infer_protocol({**base, "protocol": "expert-replay"}).label == "expert-replay (privileged)"


def test_headline_puts_image_goal_first_and_labels_privileged(results_dir: Path) -> None:
    results = rt.load_results(results_dir)
    rows = rt.headline_rows(results)
    ranks = [h.rank for h in rows]
    assert ranks == sorted(ranks) and ranks[0] == 0
    filled = [h for h in rows if h.row is not None]
    assert [h.row.stem for h in filled] == ["Push-planner-image-goal", "Push-planner-v2-subgoals-yaw-grip05"]

    table = rt.render_headline(results).splitlines()
    body = [line for line in table if line.startswith("| ") and not line.startswith("| task")]
    assert body[0].startswith("| Reach | image-goal | - | - | not yet measured")  # no Reach file here
    push_image = next(i for i, line in enumerate(body) if "Push-planner-image-goal" in line)
    push_replay = next(i for i, line in enumerate(body) if "Push-planner-v2-subgoals-yaw-grip05" in line)
    assert push_image < push_replay
    assert "image-goal" in body[push_image] and "privileged" not in body[push_image]
    assert "expert-replay (privileged), inferred" in body[push_replay]
    assert "5/50 (10%)" in body[push_image] and "39/50 (78%)" in body[push_replay]
    assert "| CEM + world model |" in body[push_image]  # the method column: no proposal in this file
    assert "| default |" in body[push_image]  # the model column: a hash of no shipped model, so the recorded path


def test_privileged_file_never_fills_the_image_goal_slot(results_dir: Path) -> None:
    """A file named as the image-goal result but recording a privileged protocol stays out of that slot."""
    path = results_dir / "eval" / "Push-planner-image-goal.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "protocol": "expert-replay (privileged)"}))
    rows = rt.headline_rows(rt.load_results(results_dir))
    assert all(h.row is None for h in rows if h.task == "Push" and h.slot == "image-goal")


def test_cli_writes_docs_and_readme_block(results_dir: Path, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{rt.START_MARK}\nold table\n{rt.END_MARK}\nrest\n")
    docs = tmp_path / "docs" / "results.md"
    args = ["--results", str(results_dir), "--docs", str(docs), "--readme", str(readme)]
    assert rt.main(args) == 0
    text = readme.read_text()
    assert "old table" not in text and text.startswith("intro\n") and text.endswith("rest\n")
    assert "Push-planner-v2-subgoals-yaw-grip05" in text
    assert "expert-replay (privileged), inferred" in docs.read_text()
    assert rt.main(args + ["--check"]) == 0
    readme.write_text(text.replace("39/50", "40/50"))
    assert rt.main(args + ["--check"]) == 1


def _push_image_slot(results_dir: Path):
    """The Push image-goal slot that Push-planner-image-goal.json may fill (the other one is the proposal's)."""
    slots = [h for h in rt.headline_rows(rt.load_results(results_dir)) if h.task == "Push" and h.slot == "image-goal"]
    assert len(slots) == 2 and slots[0].row is None  # the fixture has no proposal file
    return slots[1]


def test_tuning_seed_rows_never_headline(results_dir: Path) -> None:
    """Only evaluation seeds (1000-1049) may fill a headline slot; a first part of them is fine."""
    path = results_dir / "eval" / "Push-planner-image-goal.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "episodes": _episodes(500, 10, 9)}))
    push = _push_image_slot(results_dir)
    assert push.row is None
    path.write_text(json.dumps({**data, "episodes": _episodes(1000, 10, 0)}))
    push = _push_image_slot(results_dir)
    assert push.row is not None and push.row.success_text() == "0/10 (0%)"
    path.write_text(json.dumps({**data, "episodes": _episodes(1000, 10, 0), "complete": False}))
    push = _push_image_slot(results_dir)
    assert push.row.success_text() == "0/10 (0%), run incomplete"


def test_output_does_not_depend_on_string_hashing(results_dir: Path, tmp_path: Path) -> None:
    """Sections of envs outside the known tasks come in name order, not set order, so --check is stable
    across processes (it failed at random with Reacher-v5 and Pusher-v5 rows)."""
    import subprocess

    for env in ("Reacher-v5", "Pusher-v5", "Hopper-v5"):
        _write(results_dir / "eval" / f"{env}-random.json", {
            "env": env, "policy": "random", "protocol": "random", "command": "c", "complete": True,
            "seeds": list(range(1000, 1005)), "seed_start": 1000, "success_rate": 0.0, "mean_final_distance": 0.1,
            "settings": {"policy": "random"}, "planner": None, "episodes": _episodes(1000, 5, 0)})
    outs = []
    for seed in ("1", "2", "3"):
        docs = tmp_path / f"docs{seed}.md"
        script = Path(__file__).resolve().parent.parent / "scripts" / "results_table.py"
        subprocess.run([sys.executable, str(script), "--results", str(results_dir), "--docs", str(docs),
                        "--readme", str(tmp_path / "none.md")], check=True, env={"PYTHONHASHSEED": seed, "PATH": ""})
        outs.append(docs.read_text())
    assert outs[0] == outs[1] == outs[2]
    assert outs[0].index("### Hopper") < outs[0].index("### Pusher") < outs[0].index("### Reacher")


def test_a_merged_run_names_its_continuations(results_dir: Path) -> None:
    path = results_dir / "eval" / "Push-planner-image-goal.json"
    data = json.loads(path.read_text())
    data["merged_from"] = [{"command": data["command"], "seeds": list(range(1000, 1021))},
                           {"command": "simjepa evaluate ... --seed-start 1020", "seeds": list(range(1020, 1050))}]
    _write(path, data)
    row = next(r for r in rt.load_results(results_dir).evals if r.stem == "Push-planner-image-goal")
    assert row.command.startswith(data["command"]) and "continued from seed 1020" in row.command
    assert row.episodes == 50 and row.complete


def test_a_planner_row_that_ran_no_search_reads_as_the_proposal_alone(results_dir: Path) -> None:
    """The default model runs Push with search "none": its `evaluate --policy planner` row is the proposal alone."""
    path = results_dir / "eval" / "Push-planner-image-goal.json"
    data = json.loads(path.read_text())
    rows = {r.stem: r for r in rt.load_results(results_dir).evals}
    assert rows["Push-planner-image-goal"].method_text() == "CEM + world model"
    path.write_text(json.dumps({**data, "proposal": {"path": "embedded in default"}, "planner": {"search": "cem"}}))
    rows = {r.stem: r for r in rt.load_results(results_dir).evals}
    assert rows["Push-planner-image-goal"].method_text() == "CEM + world model + learned proposal"
    path.write_text(json.dumps({**data, "proposal": {"path": "embedded in default"}, "planner": {"search": "cem"},
                                "macro_model": {"path": "runs/macro5", "macro_steps": 5}}))
    rows = {r.stem: r for r in rt.load_results(results_dir).evals}
    assert rows["Push-planner-image-goal"].method_text() == ("CEM + world model + learned proposal"
                                                             " + macro-step model (two-level)")
    path.write_text(json.dumps({**data, "proposal": {"path": "embedded in default"}, "planner": {"search": "none"}}))
    rows = {r.stem: r for r in rt.load_results(results_dir).evals}
    assert rows["Push-planner-image-goal"].method_text() == "learned proposal alone (no world model)"


def test_the_model_column_names_shipped_models_by_their_predictor_hash(results_dir: Path) -> None:
    path = results_dir / "eval" / "Push-planner-image-goal.json"
    data = json.loads(path.read_text())
    shipped = next(h for h, name in rt.MODEL_NAMES.items() if name == "default v3")
    path.write_text(json.dumps({**data, "model": {**data["model"], "predictor_hash": shipped}}))
    body = [line for line in rt.render_headline(rt.load_results(results_dir)).splitlines() if "Push-planner-image-goal" in line]
    assert "| default v3 |" in body[0]
    v31 = next(k for k, name in rt.PROPOSAL_NAMES.items() if name == "default v3.1")  # same predictor, new proposal
    path.write_text(json.dumps({**data, "model": {**data["model"], "predictor_hash": v31[0]},
                                "proposal": {"path": "embedded in default", "weights_hash": v31[1]}}))
    body = [line for line in rt.render_headline(rt.load_results(results_dir)).splitlines() if "Push-planner-image-goal" in line]
    assert "| default v3.1 |" in body[0]


def test_goal_energy_probes_get_a_table_with_the_cube_share(tmp_path: Path) -> None:
    common = {"env": "simjepa/Push-v0", "model": "default", "seeds": [500, 519], "share_arm_at_goal_below_cube_at_goal": 1.0,
              "mean_energy": {"start": 0.25, "arm_at_goal": 0.0275, "cube_at_goal": 0.24, "goal": 0.0},
              # per-seed shares 5 % and 15 %: their mean is 10 %; the ratio of the mean energies would be 11 %
              "rows": [{"seed": 500, "start": 0.2, "arm_at_goal": 0.01}, {"seed": 501, "start": 0.3, "arm_at_goal": 0.045}]}
    _write(tmp_path / "hierarchy" / "goal_energy_push_old.json", common)  # written before the cube_share key
    _write(tmp_path / "hierarchy" / "goal_energy_push_new.json",
           {**common, "encoder": "runs/e.pt", "cube_share": {"mean": 0.1, "start_goal_weighted": 0.07, "top4_tokens": 0.25}})
    results = rt.load_results(tmp_path)
    assert [Path(rel).stem for rel, _ in results.energy] == ["goal_energy_push_new", "goal_energy_push_old"]
    assert not results.other
    lines = rt.render_results_md(results).splitlines()
    new = next(x for x in lines if "goal_energy_push_new" in x)
    old = next(x for x in lines if "goal_energy_push_old" in x)
    assert "`runs/e.pt`" in new and "| 0.250 | 10.0 % / 7.0 % / 25.0 % | 100% |" in new
    assert "`default`" in old and "| 0.250 | 10.0 % | 100% |" in old


def test_probe_ceilings_get_a_row_per_read_out(tmp_path: Path) -> None:
    _write(tmp_path / "probe" / "ceiling_push.json", {
        "data": ["data/probe/push400k", "data/probe_side/push400k"], "env": "simjepa/Push-v0", "episodes_used": 297,
        "cube_hidden_fraction": {"per_view": [0.09, 0.014], "every_view": 0.002},
        "encoder": {"weights_hash": "319ab93cda29ed13", "random_init": True, "pool": 8},
        "readouts": {"red_centroid": {"features": 22, "cube": {"r2": 0.981}},
                     "cnn": {"input": [64, 64, 6], "cube": {"r2": 0.844}, "ee": {"r2": 0.97}, "gripper": {"r2": -0.001}},
                     "encoder": {"features": 24960, "cube": {"r2": 0.8}, "ee": {"r2": 0.984}}}})
    results = rt.load_results(tmp_path)
    assert len(results.ceiling) == 1 and not results.other
    rows = [x for x in rt.render_results_md(results).splitlines() if "ceiling_push" in x]
    assert len(rows) == 3
    assert "probe/push400k + probe_side/push400k | 297 | 0.2 % | red_centroid | 22 | 0.981 | - | - |" in rows[0]
    assert "| cnn | 64x64x6 | 0.844 | 0.970 | -0.001 |" in rows[1]
    assert "| encoder `319ab93cda29ed13` random init every token | 24960 | 0.800 | 0.984 | - |" in rows[2]
