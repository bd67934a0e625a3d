"""``simjepa bench --quick`` runs every measurement and writes every documented key (tiny settings)."""
from __future__ import annotations

import json

import pytest
import torch

from simjepa_cli import main

KEYS = [
    "seconds_per_action_default", "seconds_per_action_reference", "planner_speedup_vs_reference",
    "planner_peak_fraction", "encoder_frames_per_s", "env_steps_per_s", "train_samples_per_s",
    "seconds_per_action_small", "seconds_per_action_base",
]


def test_bench_quick_writes_all_keys_and_plot(tmp_path, capsys):
    n = torch.get_num_threads()
    out = tmp_path / "bench.json"
    try:
        main(["bench", "--out", str(out), "--quick", "--threads", "1", "--quiet"])
    finally:
        torch.set_num_threads(n)
    res = json.loads(out.read_text())
    for key in KEYS:
        assert isinstance(res[key], float) and res[key] > 0, key
        assert isinstance(res[f"{key}_settings"], dict), key
    m = res["machine"]
    assert m["torch_threads"] == 1 and m["cpu_model"] and m["torch_version"] == torch.__version__
    assert res["model"]["standin"] or res["model"]["source"]
    assert res["plans_match_reference"]["max_abs_energy_diff"] < 1e-2
    assert res["sweep"] and all(r["seconds_per_action"] > 0 for r in res["sweep"])
    reach = res["per_task"]["simjepa/Reach-v0"]  # the whole agent.act at the model's settings for the task
    assert reach["seconds_per_action_shipped"] > 0 and reach["steps_timed"] == res["per_task_settings"]["steps"]
    if reach["settings"]["search"] == "cem":  # the official-style planner timed on the same search
        assert reach["seconds_per_action_reference"] > 0 and reach["speedup_vs_reference"] > 0
        assert set(reach["settings"]) == {"search", "samples", "iterations", "topk", "horizon"}  # what a CEM reads
    else:
        assert set(reach["settings"]) == {"search", "horizon", "execute_steps", "ensemble_plans"}
    assert (tmp_path / res["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "speedup" in capsys.readouterr().out
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left behind


def test_bench_rejects_a_directory_as_out(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--out", str(tmp_path), "--quick"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.startswith("error:")
