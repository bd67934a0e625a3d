"""benchmarks/loss_ablation_report.py: the closed-loop merge, the paired test and the summary tables."""
import json

import numpy as np
import pytest

from benchmarks.loss_ablation_report import closed_loop, paired, sign_test_p, summary_markdown, training_noise


def _cell(root, call, name, successes, distances, first=1000):
    d = root / call / name
    d.mkdir(parents=True)
    eps = [{"seed": first + i, "success": s, "final_distance": x, "steps": 30, "seconds_per_action": 0.1}
           for i, (s, x) in enumerate(zip(successes, distances))]
    (d / "results.json").write_text(json.dumps({"episodes": eps, "complete": len(eps) == 3, "protocol": "image-goal",
                                                "mean_seconds_per_action": 0.1, "command": "simjepa evaluate"}))


def test_sign_test_matches_the_exact_binomial():
    assert sign_test_p(14, 1) == pytest.approx(2 * 16 / 2**15)
    assert sign_test_p(9, 0) == pytest.approx(2 / 2**9)
    assert sign_test_p(3, 3) == 1.0 and sign_test_p(0, 0) == 1.0


def test_closed_loop_merges_every_call_by_seed_and_pairs_by_seed(tmp_path):
    _cell(tmp_path, "eval", "Reach_l1_s0_l1", [True, False], [0.01, 0.3])  # cut by the deadline
    _cell(tmp_path, "eval2", "Reach_l1_s0_l1", [True], [0.01])  # a second call, cut sooner: the same seed agrees
    _cell(tmp_path, "eval3", "Reach_l1_s0_l1/from1002", [True], [0.02], first=1002)  # REST=1: the seed left
    _cell(tmp_path, "eval", "Reach_l1_s0_l2", [False, False, True], [0.2, 0.3, 0.02])
    _cell(tmp_path, "eval", "Push_huber_s1_l2", [False], [0.15])
    rows = closed_loop(tmp_path, wanted=range(1000, 1003))
    by = {(r["task"], r["loss"], r["seed"], r["energy"]): r for r in rows}
    merged = by[("Reach", "l1", 0, "l1")]
    assert merged["seeds"] == [1000, 1001, 1002] and merged["complete"] and len(merged["source"]) == 3
    assert merged["p90_distance"] == pytest.approx(np.percentile([0.01, 0.3, 0.02], 90))
    assert not by[("Push", "huber", 1, "l2")]["complete"]
    pair = next(p for p in paired(rows) if p["a"] == "l1/l1" and p["b"] == "l1/l2")
    assert (pair["a_only"], pair["b_only"]) == (1, 0)  # seed 1000: l1 energy succeeds, l2 fails; 1002 both succeed


def test_closed_loop_refuses_calls_that_disagree_on_a_seed(tmp_path):
    _cell(tmp_path, "eval", "Push_l1_s0_l1", [False], [0.15])
    _cell(tmp_path, "eval2", "Push_l1_s0_l1", [False], [0.17])  # planning is seeded per episode: must not differ
    with pytest.raises(SystemExit, match="seed 1000"):
        closed_loop(tmp_path)


def test_training_noise_sees_l1s_clipped_gradients(tmp_path):
    rng = np.random.default_rng(0)
    for name, g in (("l1_s0", 2.0), ("l2_s0", 0.2)):
        run = tmp_path / "runs" / name
        run.mkdir(parents=True)
        rows = [{"step": 10 * (i + 1), "loss": 1.0 + 0.01 * rng.standard_normal(), "grad_norm": g * (1 + 0.1 * rng.standard_normal())}
                for i in range(100)]
        (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    noise = training_noise(tmp_path)
    assert noise["l1_s0"]["clipped_fraction_whole_run"] == 1.0 and noise["l2_s0"]["clipped_fraction_whole_run"] == 0.0
    assert noise["l1_s0"]["grad_norm_cv"] == pytest.approx(0.1, abs=0.03) and noise["l1_s0"]["steps"] == 1000
    table = summary_markdown({"closed_loop": [], "rollout": {t: {} for t in ("Reach", "Push", "PickPlace")},
                              "probe": {t: {"models": {}} for t in ("Reach", "Push", "PickPlace")}, "training": noise})
    assert "| l1_s0 | 1000 |" in table and "100%" in table
