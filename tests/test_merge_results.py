"""planning.evaluate.merge_results and scripts/merge_results.py: a run continued from a later seed merges into
one results file; runs of other settings, or a seed with two outcomes, do not."""
import json
import sys
from pathlib import Path

import pytest

from planning.errors import PlannerConfigError
from planning.evaluate import merge_results

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import merge_results as merge_script  # noqa: E402


def _run(seeds, requested, planner=None, distances=None, settings=None, env="simjepa/Push-v0"):
    distances = distances or {}
    eps = [{"seed": s, "success": distances.get(s, 0.1) < 0.05, "final_distance": distances.get(s, 0.1 + s / 1e4),
            "steps": 60, "seconds_per_action": 1.0} for s in seeds]
    return {"env": env, "policy": "planner", "protocol": "image-goal", "command": f"simjepa evaluate --seed-start {requested[0]}",
            "commit": "abc", "model": {"path": "default", "predictor_hash": "p"}, "proposal": None, "macro_model": None,
            "planner": planner or {"samples": 100, "iterations": 3},
            "settings": settings or {"policy": "planner", "model": "default", "planner_overrides": {"samples": None}},
            "seed_start": requested[0], "seeds": list(seeds), "seeds_requested": list(requested), "complete": False,
            "seconds": 10.0, "episodes": eps}


def test_a_cut_run_and_its_continuation_merge_into_the_full_seed_range():
    first = _run(range(1000, 1021), range(1000, 1050), distances={1003: 0.01})
    rest = _run(range(1021, 1050), range(1021, 1050))
    merged = merge_results([first, rest])
    assert merged["seeds"] == list(range(1000, 1050)) and merged["complete"]
    assert merged["success_rate"] == pytest.approx(1 / 50)
    assert [p["seeds"][0] for p in merged["merged_from"]] == [1000, 1021] and merged["seeds_run_twice"] == []
    assert not merge_results([first])["complete"]  # alone, the cut run stays marked incomplete


def test_newer_code_needs_a_seed_run_by_both_that_agrees():
    old = _run(range(1000, 1021), range(1000, 1050))
    newer = {"samples": 100, "iterations": 3, "anchor_std": 0.2}  # a field the older code did not record
    with pytest.raises(PlannerConfigError, match="share no seed"):
        merge_results([old, _run(range(1021, 1050), range(1021, 1050), planner=newer)])
    merged = merge_results([old, _run(range(1020, 1050), range(1020, 1050), planner=newer)])
    assert merged["seeds_run_twice"] == [1020] and len(merged["episodes"]) == 50


def test_runs_that_are_not_one_configuration_are_refused():
    base = _run(range(1000, 1010), range(1000, 1050))
    with pytest.raises(PlannerConfigError, match="seed 1005 ran twice"):
        merge_results([base, _run(range(1005, 1020), range(1005, 1050), distances={1005: 0.3})])
    with pytest.raises(PlannerConfigError, match="planner settings: samples 100 vs 300"):
        merge_results([base, _run(range(1010, 1020), range(1010, 1050), planner={"samples": 300, "iterations": 3})])
    with pytest.raises(PlannerConfigError, match="differ in env"):
        merge_results([base, _run(range(1010, 1020), range(1010, 1050), env="simjepa/Reach-v0")])
    other = {"policy": "planner", "model": "default", "planner_overrides": {"samples": 24}}
    with pytest.raises(PlannerConfigError, match="differ in settings"):
        merge_results([base, _run(range(1010, 1020), range(1010, 1050), settings=other)])
    # a setting recorded only by newer files, left at its default, is not a difference
    newer = {"policy": "planner", "model": "default", "planner_overrides": {"samples": None}, "device": "cpu", "proposal": None}
    assert merge_results([base, _run(range(1010, 1020), range(1010, 1050), settings=newer)])["seeds"][-1] == 1019


def test_the_script_merges_in_place_and_refuses_with_one_line(tmp_path, capsys):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(_run(range(1000, 1003), range(1000, 1005))))
    b.write_text(json.dumps(_run(range(1003, 1005), range(1003, 1005))))
    assert merge_script.main([str(a), str(b), "--out", str(a)]) == 0
    assert json.loads(a.read_text())["seeds"] == [1000, 1001, 1002, 1003, 1004]
    assert "5 episodes (seeds 1000-1004)" in capsys.readouterr().out
    b.write_text(json.dumps(_run(range(1003, 1005), range(1003, 1005), env="simjepa/Reach-v0")))
    before = a.read_text()
    assert merge_script.main([str(a), str(b), "--out", str(a)]) == 2
    assert capsys.readouterr().err.startswith("error: runs differ in env") and a.read_text() == before
    (tmp_path / "bad.json").write_text("{")
    assert merge_script.main([str(tmp_path / "bad.json"), "--out", str(tmp_path / "m.json")]) == 2
