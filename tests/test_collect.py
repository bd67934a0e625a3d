"""Episode format and `simjepa collect`: dataset layout, resume, corruption, config mismatch."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from simjepa_core.episodes import (
    DatasetError, Episode, complete_episode_indices, episode_path, load_episode, read_manifest, write_episode,
)
from simjepa_cli import cli


def _collect(out, *extra, episodes=2, env="simjepa/Reach-v0"):
    args = ["collect", "--env", env, "--episodes", str(episodes), "--out", str(out), "--render-size", "64",
            "--max-steps", "6", "--quiet", *extra]
    return CliRunner().invoke(cli, args, standalone_mode=False)


def test_collect_writes_a_readable_dataset(tmp_path):
    res = _collect(tmp_path / "d", "--policy", "mixed", env="simjepa/Push-v0")
    assert res.exit_code == 0, res.output
    m = read_manifest(tmp_path / "d")
    assert m == {"version": 1, "env_id": "simjepa/Push-v0", "render_size": 64, "episodes": 2, "action_dim": 7,
                 "state_dim": 16, "policy": "mixed", "seed_start": 0, "max_episode_steps": 6, "camera": "front"}
    assert complete_episode_indices(tmp_path / "d") == [0, 1]
    ep = load_episode(tmp_path / "d", 1)
    assert ep.frames.shape == (7, 64, 64, 3) and ep.frames.dtype == np.uint8
    assert ep.actions.shape == (6, 7) and ep.states.shape == (7, 16) and ep.seed == 1
    assert ep.success.shape == (7,) and ep.distance.dtype == np.float32


def test_resume_after_partial_run_gives_identical_files(tmp_path):
    assert _collect(tmp_path / "full", episodes=3).exit_code == 0
    assert _collect(tmp_path / "part", episodes=1).exit_code == 0
    os.remove(episode_path(tmp_path / "part", 0))  # a gap, as an interrupted multi-worker run can leave
    open(tmp_path / "part" / ".tmp_x.part", "wb").write(b"half")  # an interrupted write's temp file
    assert complete_episode_indices(tmp_path / "part") == []
    assert _collect(tmp_path / "part", episodes=3).exit_code == 0
    for i in range(3):
        a = open(episode_path(tmp_path / "full", i), "rb").read()
        assert a == open(episode_path(tmp_path / "part", i), "rb").read()
    assert read_manifest(tmp_path / "part")["episodes"] == 3


def test_two_workers_match_one(tmp_path):
    assert _collect(tmp_path / "one", episodes=2).exit_code == 0
    assert _collect(tmp_path / "two", "--workers", "2", episodes=2).exit_code == 0
    for i in range(2):
        assert open(episode_path(tmp_path / "one", i), "rb").read() == open(episode_path(tmp_path / "two", i), "rb").read()


def test_side_camera_records_the_same_episodes_from_another_view(tmp_path):
    """A two-view world model trains on both views of the same episodes: only the frames may differ."""
    assert _collect(tmp_path / "front", env="simjepa/Push-v0").exit_code == 0
    res = _collect(tmp_path / "side", "--camera", "side", env="simjepa/Push-v0")
    assert res.exit_code == 0, res.output
    assert read_manifest(tmp_path / "side")["camera"] == "side"
    for i in range(2):
        f, s = load_episode(tmp_path / "front", i), load_episode(tmp_path / "side", i)
        np.testing.assert_array_equal(f.actions, s.actions)
        np.testing.assert_array_equal(f.states, s.states)
        assert (f.frames != s.frames).mean() > 0.5
    from simjepa_cli import main

    with pytest.raises(SystemExit) as exc:  # resuming as the other camera is refused
        main(["collect", "--env", "simjepa/Push-v0", "--episodes", "2", "--out", str(tmp_path / "side"),
              "--render-size", "64", "--max-steps", "6", "--quiet"])
    assert exc.value.code == 2


def test_side_camera_needs_one_of_our_envs(tmp_path, capsys):
    from simjepa_cli import main

    with pytest.raises(SystemExit) as exc:
        main(["collect", "--env", "Reacher-v5", "--episodes", "1", "--out", str(tmp_path / "r"), "--camera", "side",
              "--policy", "random", "--quiet"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "no camera 'side'" in err and "top" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


@pytest.mark.parametrize("change", [["--render-size", "128"], ["--policy", "random"], ["--seed-start", "5"]])
def test_config_mismatch_exit_2(tmp_path, change):
    assert _collect(tmp_path / "d", episodes=1).exit_code == 0
    from simjepa_cli import main

    args = ["collect", "--env", "simjepa/Reach-v0", "--episodes", "1", "--out", str(tmp_path / "d"),
            "--render-size", "64", "--max-steps", "6", "--quiet", *change]
    # later options override earlier ones in click, so `change` wins
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2


def test_other_env_exit_2(tmp_path, capsys):
    assert _collect(tmp_path / "d", episodes=1).exit_code == 0
    from simjepa_cli import main

    with pytest.raises(SystemExit) as exc:
        main(["collect", "--env", "simjepa/Push-v0", "--episodes", "1", "--out", str(tmp_path / "d"),
              "--render-size", "64", "--max-steps", "6", "--quiet"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "env_id" in err and err.count("\n") == 1


def test_unknown_env_and_no_expert_exit_2(tmp_path):
    from simjepa_cli import main

    for args in (["--env", "simjepa/Rech-v0"], ["--env", "InvertedPendulum-v5", "--policy", "expert"]):
        with pytest.raises(SystemExit) as exc:
            main(["collect", *args, "--episodes", "1", "--out", str(tmp_path / "x"), "--render-size", "64"])
        assert exc.value.code == 2


def test_adapter_env_random_policy(tmp_path):
    res = _collect(tmp_path / "r", "--policy", "random", episodes=1, env="Reacher-v5")
    assert res.exit_code == 0, res.output
    ep = load_episode(tmp_path / "r", 0)
    assert ep.actions.shape == (6, 2) and ep.states.shape == (7, 17)


def test_corrupt_episode_is_named(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    ep = Episode(np.zeros((3, 8, 8, 3)), np.zeros((2, 7)), np.zeros((3, 4)), np.zeros(3), np.zeros(3), seed=4)
    path = write_episode(str(d), 0, ep)
    assert load_episode(str(d), 0).seed == 4
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="episode_000000.npz"):
        load_episode(str(d), 0)
    with pytest.raises(DatasetError, match="episode_000000.npz"):
        complete_episode_indices(str(d))
    with pytest.raises(DatasetError, match="frames"):
        Episode(np.zeros((2, 8, 8, 3)), np.zeros((2, 7)), np.zeros((3, 4)), np.zeros(3), np.zeros(3), seed=0)


def test_bad_manifest_is_named(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"version": 1}))
    with pytest.raises(DatasetError, match="lacks keys"):
        read_manifest(str(tmp_path))
