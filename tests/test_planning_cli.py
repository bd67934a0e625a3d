"""End to end: plan-episode and simjepa evaluate on a tiny randomly initialised world model (64 px)."""
from __future__ import annotations

import json

import imageio.v2 as imageio
import pytest
from click.testing import CliRunner

import simjepa_cli

TINY_PLANNER = ["--samples", "8", "--iters", "2", "--topk", "2", "--horizon", "2", "--render-size", "64"]
METRIC_KEYS = {"success", "final_distance", "steps", "seconds_per_action", "energy", "distance"}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A world model built and saved through the world_model API: 1-block ViT encoder, 1-block predictor."""
    bundle = pytest.importorskip("world_model.model_file")
    from world_model.encoder import build_encoder
    from world_model.encoder_loading import encoder_identity
    from world_model.predictor import build_predictor

    enc = build_encoder("vit_tiny", depth=1, image_size=64)
    pred = build_predictor("tiny", embed_dim=enc.config.embed_dim, depth=1)
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    bundle.save_world_model(path, pred, bundle.encoder_entry(encoder_identity(enc), enc), 64, (4, 4),
                            planner={"samples": 16, "iterations": 2, "topk": 4})
    return path


def run(main, args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code, capsys.readouterr()


def test_plan_episode_writes_video_and_metrics(tiny_model, tmp_path):
    out = tmp_path / "ep"
    res = CliRunner().invoke(simjepa_cli.plan_episode_cmd, ["--env", "simjepa/Reach-v0", "--seed", "0", "--model", str(tiny_model),
                                                           "--out", str(out), "--max-steps", "3", "--landscape", *TINY_PLANNER])
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert METRIC_KEYS <= set(metrics)
    assert metrics["steps"] == len(metrics["energy"]) == 3 and all(isinstance(e, float) for e in metrics["energy"])
    assert metrics["planner"]["samples"] == 8 and metrics["planner"]["iterations"] == 2  # flags beat the model's defaults
    reader = imageio.get_reader(out / "episode.mp4")
    assert reader.count_frames() == 4  # initial frame + one per step
    frame = reader.get_data(0)
    assert frame.shape[1] >= 2 * frame.shape[0] - 64  # observation | goal side by side under a header
    assert (out / "landscape.png").stat().st_size > 0
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left behind


def test_push_plans_towards_its_goal_image_unless_expert_replay_is_asked_for(tiny_model, tmp_path):
    """The default is the image-goal protocol (one goal, labelled image-goal); --subgoals expert-replay
    plans through the expert demo's sub-goals (above, behind, goal), labelled privileged."""
    seen = {}
    for flags in ((), ("--subgoals", "expert-replay")):
        out = tmp_path / ("-".join(flags) or "default")
        res = CliRunner().invoke(simjepa_cli.plan_episode_cmd, ["--env", "simjepa/Push-v0", "--seed", "0", "--model", str(tiny_model),
                                                               "--out", str(out), "--max-steps", "6", *flags, "--quiet", *TINY_PLANNER])
        assert res.exit_code == 0, res.output
        seen[flags] = json.loads((out / "metrics.json").read_text())
    assert seen[()]["subgoal"] == [0] * 6 and seen[()]["protocol"] == "image-goal"
    replay = seen[("--subgoals", "expert-replay")]
    assert replay["subgoal"] == [0, 0, 1, 1, 2, 2] and replay["protocol"] == "expert-replay (privileged)"
    model = seen[()]["model"]
    assert model["path"] == str(tiny_model) and len(model["predictor_hash"]) == 16 and len(model["encoder_hash"]) == 16
    assert seen[()]["command"] and "commit" in seen[()] and seen[()]["seed"] == 0


def test_default_planning_path_never_calls_the_expert(tiny_model, tmp_path, monkeypatch):
    """plan-episode and evaluate with the default protocol on Push fail if anything asks for the expert."""
    import envs.experts

    def trap(*args, **kwargs):
        raise AssertionError("the image-goal planning path called the scripted expert")

    monkeypatch.setattr(envs.experts, "demo_subgoals", trap)
    monkeypatch.setattr(envs.experts, "make_expert", trap)
    res = CliRunner().invoke(simjepa_cli.plan_episode_cmd, ["--env", "simjepa/Push-v0", "--seed", "0", "--model", str(tiny_model),
                                                           "--out", str(tmp_path / "ep"), "--max-steps", "2", "--quiet", *TINY_PLANNER])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(simjepa_cli.cli, ["evaluate", "--env", "simjepa/Push-v0", "--episodes", "1", "--model", str(tiny_model),
                                               "--out", str(tmp_path / "ev"), "--max-steps", "2", *TINY_PLANNER])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(simjepa_cli.plan_episode_cmd, ["--env", "simjepa/Push-v0", "--seed", "0", "--model", str(tiny_model),
                                                           "--out", str(tmp_path / "rp"), "--max-steps", "2", "--quiet",
                                                           "--subgoals", "expert-replay", *TINY_PLANNER])
    assert isinstance(res.exception, AssertionError)  # the trap works: expert-replay does call it


def test_a_model_recording_removed_action_rules_plans_the_image_goal_protocol(tiny_model, tmp_path):
    """A model file from before the image-goal protocol (gripper_from_goal recorded for PickPlace) still
    plans, with a warning that the rule is ignored; nothing reads the goal's state."""
    from world_model.model_file import with_planner_defaults

    old = tmp_path / "old.pt"
    with_planner_defaults(tiny_model, old, {"per_env": {"simjepa/PickPlace-v0": {"gripper_from_goal": True}}})
    out = tmp_path / "pp"
    with pytest.warns(UserWarning, match="gripper_from_goal"):
        res = CliRunner().invoke(simjepa_cli.plan_episode_cmd, ["--env", "simjepa/PickPlace-v0", "--seed", "0", "--model", str(old),
                                                               "--out", str(out), "--max-steps", "2", "--quiet", *TINY_PLANNER])
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["protocol"] == "image-goal" and "gripper_from_goal" not in metrics["planner"]


def test_state_weight_without_the_privileged_protocol_is_one_line_exit_2(tiny_model, tmp_path, capsys):
    code, cap = run(simjepa_cli.plan_episode_main, ["--env", "simjepa/Reach-v0", "--seed", "0", "--model", str(tiny_model),
                                                    "--out", str(tmp_path / "x"), "--state-weight", "1"], capsys)
    assert code == 2 and cap.err.startswith("error: ") and "privileged" in cap.err and cap.err.count("\n") == 1
    code, cap = run(simjepa_cli.main, ["evaluate", "--env", "simjepa/Reach-v0", "--episodes", "1", "--model", str(tiny_model),
                                       "--out", str(tmp_path / "y"), "--subgoals", "expert-replay", *TINY_PLANNER], capsys)
    assert code == 2 and "phases" in cap.err and cap.err.count("\n") == 1
    code, cap = run(simjepa_cli.plan_episode_main, ["--env", "simjepa/Push-v0", "--seed", "0", "--model", str(tiny_model),
                                                    "--out", str(tmp_path / "z"), "--subgoal-steps", "3"], capsys)
    assert code == 2 and "expert-replay" in cap.err and cap.err.count("\n") == 1


def test_plan_episode_bad_input_is_one_line_exit_2(tiny_model, tmp_path, capsys):
    base = ["--env", "simjepa/Reach-v0", "--seed", "0", "--out", str(tmp_path / "x")]
    code, cap = run(simjepa_cli.plan_episode_main, [*base, "--model", str(tiny_model), "--samples", "4", "--topk", "8"], capsys)
    assert code == 2 and cap.err.startswith("error: ") and "topk" in cap.err and cap.err.count("\n") == 1
    code, cap = run(simjepa_cli.plan_episode_main, [*base, "--model", str(tmp_path / "missing.pt")], capsys)
    assert code == 2 and cap.err.startswith("error: ")
    assert not (tmp_path / "x" / "metrics.json").exists()


def test_evaluate_planner_and_random(tiny_model, tmp_path):
    out = tmp_path / "eval"
    res = CliRunner().invoke(simjepa_cli.cli, ["evaluate", "--env", "simjepa/Reach-v0", "--episodes", "2", "--seed-start", "5",
                                               "--model", str(tiny_model), "--policy", "planner", "--out", str(out),
                                               "--max-steps", "2", *TINY_PLANNER])
    assert res.exit_code == 0, res.output
    results = json.loads((out / "results.json").read_text())
    assert {"success_rate", "mean_final_distance", "episodes"} <= set(results)
    assert [r["seed"] for r in results["episodes"]] == [5, 6] and all(r["steps"] == 2 for r in results["episodes"])
    assert results["protocol"] == "image-goal" and results["seeds"] == [5, 6] and results["complete"]
    assert results["model"]["path"] == str(tiny_model) and results["model"]["predictor_hash"]
    assert results["command"].split()[:2] and "commit" in results
    assert "| 5 |" in (out / "results.md").read_text()


def test_evaluate_labels_expert_replay_privileged(tiny_model, tmp_path):
    out = tmp_path / "replay"
    res = CliRunner().invoke(simjepa_cli.cli, ["evaluate", "--env", "simjepa/Push-v0", "--episodes", "1", "--seed-start", "3",
                                               "--model", str(tiny_model), "--out", str(out), "--max-steps", "2",
                                               "--subgoals", "expert-replay", *TINY_PLANNER])
    assert res.exit_code == 0, res.output
    results = json.loads((out / "results.json").read_text())
    assert results["protocol"] == "expert-replay (privileged)" and results["settings"]["subgoals"] == "expert-replay"
    assert "expert-replay (privileged)" in (out / "results.md").read_text()


def test_evaluate_workers_match_serial(tmp_path):
    rows = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        res = CliRunner().invoke(simjepa_cli.cli, ["evaluate", "--env", "simjepa/Reach-v0", "--episodes", "2", "--policy", "random",
                                                   "--out", str(out), "--workers", str(workers), "--max-steps", "3", "--render-size", "64"])
        assert res.exit_code == 0, res.output
        rows[workers] = [(r["seed"], r["final_distance"]) for r in json.loads((out / "results.json").read_text())["episodes"]]
    assert rows[1] == rows[2]


def test_from_pretrained_layers_model_defaults_and_overrides(tiny_model, tmp_path):
    import numpy as np

    import planning
    from world_model.model_file import load_world_model, save_world_model

    agent = planning.Agent.from_pretrained(tiny_model, iters=3)
    assert (agent.config.cem.samples, agent.config.cem.iterations, agent.config.cem.topk) == (16, 3, 4)
    wm = load_world_model(tiny_model)
    odd = tmp_path / "odd.pt"
    from world_model.model_file import encoder_entry
    from world_model.encoder_loading import encoder_identity

    save_world_model(odd, wm.predictor, encoder_entry(encoder_identity(wm.encoder.encoder), wm.encoder.encoder), 64, (4, 4),
                     planner={"samples": 12, "topk": 3, "future_knob": 1})
    with pytest.warns(UserWarning, match="future_knob"):
        agent = planning.Agent.from_pretrained(odd)
    assert agent.config.cem.samples == 12
    with pytest.raises(planning.PlannerConfigError, match="future_knob"):
        planning.Agent.from_pretrained(odd, future_knob=2)
    frame = np.zeros((100, 80, 3), np.uint8)  # any frame size: the world model resizes to 64
    action = agent.act({"pixels": frame, "state": np.zeros(7, np.float32)}, {"pixels": frame})
    assert action.shape == (7,) and action.dtype == np.float32


def test_per_env_planner_defaults_apply_to_their_env_only(tiny_model, tmp_path):
    """A model's ``planner["per_env"][env_id]`` beats its general defaults for that env; flags beat both."""
    import planning
    from world_model.model_file import with_planner_defaults

    tuned = tmp_path / "tuned.pt"
    with_planner_defaults(tiny_model, tuned, {"per_env": {"simjepa/Reach-v0": {"samples": 24, "iterations": 5}}})
    reach = planning.Agent.from_pretrained(tuned, env_id="simjepa/Reach-v0")
    push = planning.Agent.from_pretrained(tuned, env_id="simjepa/Push-v0")
    unnamed = planning.Agent.from_pretrained(tuned)
    assert (reach.config.cem.samples, reach.config.cem.iterations, reach.config.cem.topk) == (24, 5, 4)
    assert (push.config.cem.samples, push.config.cem.iterations) == (16, 2) == (unnamed.config.cem.samples, unnamed.config.cem.iterations)
    assert planning.Agent.from_pretrained(tuned, env_id="simjepa/Reach-v0", samples=8).config.cem.samples == 8
    from planning.bench import Scene, make_agent
    from world_model.model_file import load_world_model

    wm = load_world_model(tuned)  # the other two ways to build an agent read the same recorded defaults
    assert planning.Agent(wm).config.cem.samples == 16
    assert make_agent(wm, Scene("simjepa/Reach-v0", 64)).config.cem.samples == 24

    out = tmp_path / "eval"
    res = CliRunner().invoke(simjepa_cli.cli, ["evaluate", "--env", "simjepa/Reach-v0", "--episodes", "1", "--model", str(tuned),
                                               "--out", str(out), "--max-steps", "1", "--render-size", "64", "--topk", "2"])
    assert res.exit_code == 0, res.output
    planner = json.loads((out / "results.json").read_text())["planner"]
    assert (planner["samples"], planner["iterations"], planner["topk"]) == (24, 5, 2)  # results say what searched


def test_two_level_planning_end_to_end_records_its_macro_model(tiny_model, tmp_path, monkeypatch):
    """--macro-model on plan-episode and evaluate: runs on Push in the image-goal protocol (expert trapped)
    and records the macro model (k, search, hash) in metrics.json / results.json."""
    import envs.experts
    import torch

    def trap(*args, **kwargs):
        raise AssertionError("the two-level planning path called the scripted expert")

    monkeypatch.setattr(envs.experts, "demo_subgoals", trap)
    monkeypatch.setattr(envs.experts, "make_expert", trap)
    obj = torch.load(tiny_model, weights_only=False)
    obj["info"] = {**obj.get("info", {}), "macro_steps": 5}
    macro = tmp_path / "macro.pt"
    torch.save(obj, macro)
    flags = ["--macro-model", str(macro), "--macro-samples", "8", "--macro-iters", "1", "--macro-horizon", "3", "--macro-every", "2"]
    res = CliRunner().invoke(simjepa_cli.plan_episode_cmd, ["--env", "simjepa/Push-v0", "--seed", "0", "--model", str(tiny_model),
                                                           "--out", str(tmp_path / "ep"), "--max-steps", "2", "--quiet",
                                                           *TINY_PLANNER, *flags])
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "ep" / "metrics.json").read_text())["macro_model"]
    assert m["macro_steps"] == 5 and m["search"] == {"samples": 8, "iterations": 1, "topk": 4, "horizon": 3}
    assert len(m["predictor_hash"]) == 16
    res = CliRunner().invoke(simjepa_cli.cli, ["evaluate", "--env", "simjepa/Push-v0", "--episodes", "1", "--model", str(tiny_model),
                                               "--out", str(tmp_path / "ev"), "--max-steps", "2", *TINY_PLANNER, *flags])
    assert res.exit_code == 0, res.output
    r = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert r["macro_model"]["macro_steps"] == 5 and r["protocol"] == "image-goal"
    assert m["replan_every"] == 2 and r["macro_model"]["replan_every"] == 2
    res = CliRunner().invoke(simjepa_cli.cli, ["evaluate", "--env", "simjepa/Push-v0", "--episodes", "1", "--policy", "random",
                                               "--out", str(tmp_path / "rnd"), "--macro-model", str(macro)])
    assert res.exit_code != 0 and "--macro-model applies to --policy planner" in str(res.exception)


def test_macro_search_flags_without_a_macro_model_are_refused(tiny_model, tmp_path):
    """--macro-samples alone would change nothing; it is a usage error (exit 2), not a silent no-op."""
    res = CliRunner().invoke(simjepa_cli.plan_episode_cmd, ["--env", "simjepa/Reach-v0", "--seed", "0", "--model", str(tiny_model),
                                                           "--out", str(tmp_path / "ep"), "--macro-samples", "50", *TINY_PLANNER])
    assert res.exit_code == 2 and "pass --macro-model" in res.output
    assert not (tmp_path / "ep").exists()
    res = CliRunner().invoke(simjepa_cli.cli, ["evaluate", "--env", "simjepa/Reach-v0", "--episodes", "1", "--model", str(tiny_model),
                                               "--out", str(tmp_path / "ev"), "--macro-every", "5", *TINY_PLANNER])
    assert res.exit_code == 2 and "pass --macro-model" in res.output
    assert not (tmp_path / "ev").exists()


def test_evaluate_device_is_checked_before_any_episode_runs(tiny_model, tmp_path, capsys):
    """--device puts the planner's world model on a GPU; an unusable device or a CPU-only part
    (proposal, macro model, non-planner policy) is a one-line error and no results file."""
    import torch

    base = ["evaluate", "--env", "simjepa/Reach-v0", "--episodes", "1", "--model", str(tiny_model), *TINY_PLANNER]
    code, cap = run(simjepa_cli.main, [*base, "--out", str(tmp_path / "r"), "--policy", "random", "--device", "cuda"], capsys)
    assert code == 2 and "--device cuda applies to --policy planner" in cap.err and cap.err.count("\n") == 1
    if not torch.cuda.is_available():
        code, cap = run(simjepa_cli.main, [*base, "--out", str(tmp_path / "c"), "--device", "cuda"], capsys)
        assert code == 2 and "not usable here" in cap.err and cap.err.count("\n") == 1
        assert not (tmp_path / "c" / "results.json").exists()
    res = CliRunner().invoke(simjepa_cli.cli, [*base, "--out", str(tmp_path / "x"), "--device", "cpu", "--max-steps", "1"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "x" / "results.json").read_text())["settings"]["device"] == "cpu"


def test_world_model_and_agent_load_onto_the_asked_device(tiny_model):
    from planning.agent import Agent
    from planning.errors import PlannerConfigError
    from world_model import load_world_model

    wm = load_world_model(tiny_model, device="cpu")
    assert next(wm.predictor.parameters()).device.type == "cpu" and wm.encoder.device.type == "cpu"
    with pytest.raises(PlannerConfigError, match="CPU only"):
        Agent.from_pretrained(tiny_model, device="cuda", proposal="p.pt")


def test_plan_episode_device_is_checked_before_anything_loads(tiny_model, tmp_path, capsys):
    import torch

    base = ["--env", "simjepa/Reach-v0", "--seed", "0", "--model", str(tiny_model), "--out", str(tmp_path / "x")]
    code, cap = run(simjepa_cli.plan_episode_main, [*base, "--device", "cuda", "--proposal", "p.pt"], capsys)
    assert code == 2 and "--device cuda applies to --policy planner without --proposal" in cap.err
    if not torch.cuda.is_available():
        code, cap = run(simjepa_cli.plan_episode_main, [*base, "--device", "cuda"], capsys)
        assert code == 2 and "not usable here" in cap.err and cap.err.count("\n") == 1
    assert not (tmp_path / "x" / "metrics.json").exists()
