"""Bad input through the real CLIs and APIs: one line, exit code 2 / a typed error, nothing lost.

Each case feeds one kind of damage (truncated or corrupt files, a checkpoint of another kind, a
malicious pickle, a cache from another encoder, cut shards and episodes, NaN/inf, wrong image
dtypes and shapes, unknown env ids, unwritable outputs) to the command a user would run, then
checks three things: stderr is exactly one ``error: ...`` line naming the problem, the exit code is
2 (a ``ValueError`` subclass for API calls), and every file that existed before is byte-identical
afterwards. The README section "Robustness" lists the messages.
"""
from __future__ import annotations

import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from envs.errors import SimjepaError
from tests.robustness.helpers import (
    REPO, SIZE, TINY_PLANNER, assert_one_line_error, build_workspace, cli, run_console, tree_hashes, truncate,
    writes_blocked_by_chmod,
)

REACH = "simjepa/Reach-v0"


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return build_workspace(tmp_path_factory.mktemp("ws"))


class Evil:
    """A pickle payload whose unpickling creates ``marker`` (stands for arbitrary code execution)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def evil_files(tmp_path: Path) -> tuple[list[tuple[Path, str]], Path]:
    """Payload files that run ``open(marker, 'w')`` when unpickled, each with the refusal it must get,
    and the marker path. A torch zip checkpoint and a protocol-2 pickle reach the forbidden global
    (``refusing to load``); a protocol-4+ pickle stops earlier, at an opcode torch's safe
    unpickler does not accept (``not a PyTorch or safetensors file``)."""
    marker = tmp_path / "PWNED"
    zipped, raw2, raw5 = tmp_path / "evil.pt", tmp_path / "evil_p2.pt", tmp_path / "evil_p5.pth"
    torch.save({"format": "simjepa/world_model", "state_dict": {"w": torch.zeros(1)}, "payload": Evil(marker)}, zipped)
    for path, protocol in ((raw2, 2), (raw5, 5)):
        with open(path, "wb") as f:
            pickle.dump({"state_dict": Evil(marker)}, f, protocol=protocol)
    assert not marker.exists()
    return [(zipped, "refusing to load"), (raw2, "refusing to load"), (raw5, "not a PyTorch or safetensors file")], marker


def plan_args(model: Path | str, out: Path, env: str = REACH) -> list[str]:
    return ["--env", env, "--seed", "0", "--model", str(model), "--out", str(out), "--quiet", *TINY_PLANNER]


def eval_args(model: Path | str, out: Path, env: str = REACH) -> list[str]:
    return ["evaluate", "--env", env, "--episodes", "1", "--model", str(model), "--out", str(out), "--samples", "4",
            "--iters", "1", "--topk", "2", "--horizon", "1", "--max-steps", "1"]


def train_args(ws, out: Path, *extra: str) -> list[str]:
    return ["train", "--features", str(ws.cache), "--out", str(out), "--config", "tiny", "--steps", "2", "--batch-size", "2",
            "--workers", "0", "--ckpt-every", "1", "--val-fraction", "0.34", "--quiet", *extra]


def pretrain_args(data: Path, out: Path) -> list[str]:
    return ["pretrain-encoder", "--data", str(data), "--out", str(out), "--steps", "2", "--batch-size", "2", "--image-size",
            str(SIZE), "--patch-size", "16", "--depth", "1", "--ckpt-every", "1", "--warmup", "1", "--threads", "1", "--quiet"]


# --- damaged checkpoints ---------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["truncated", "junk"])
def test_damaged_model_checkpoint(ws, tmp_path, capsys, damage):
    bad = tmp_path / "final.pt"
    shutil.copy(ws.model / "final.pt", bad)
    if damage == "truncated":
        truncate(bad)
    else:
        bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    before = tree_hashes(bad)
    code, err = cli(plan_args(bad, tmp_path / "ep"), capsys, entry="plan-episode")
    assert_one_line_error(code, err, str(bad), "corrupt")
    code, err = cli(eval_args(bad, tmp_path / "ev"), capsys)
    assert_one_line_error(code, err, str(bad), "corrupt")
    assert tree_hashes(bad) == before
    assert not (tmp_path / "ep" / "metrics.json").exists() and not (tmp_path / "ev" / "results.json").exists()


def test_truncated_encoder_checkpoint(ws, tmp_path, capsys):
    bad = tmp_path / "enc.pt"
    shutil.copy(ws.encoder, bad)
    truncate(bad, 0.3)
    code, err = cli(["encode", "--data", str(ws.data), "--encoder", str(bad), "--out", str(tmp_path / "f"), "--quiet"], capsys)
    assert_one_line_error(code, err, str(bad), "truncated or corrupt")
    code, err = cli(["probe", "--encoder", str(bad), "--env", REACH, "--episodes", "5", "--out", str(tmp_path / "p.json"),
                     "--quiet"], capsys)
    assert_one_line_error(code, err, str(bad), "truncated or corrupt")
    assert not (tmp_path / "f").exists() and not (tmp_path / "p.json").exists()


def test_damaged_train_resume_checkpoint(ws, tmp_path, capsys):
    out = tmp_path / "run"
    code, err = cli(train_args(ws, out, "--stop-after", "1"), capsys)
    assert code == 0, err
    truncate(out / "checkpoint.pt")
    before = tree_hashes(out, ws.cache)
    code, err = cli(train_args(ws, out), capsys)
    assert_one_line_error(code, err, "checkpoint.pt", "truncated or corrupt")
    assert tree_hashes(out, ws.cache) == before and not (out / "final.pt").exists()


def test_damaged_pretrain_resume_state(ws, tmp_path, capsys):
    out = tmp_path / "enc.pt"
    args = pretrain_args(ws.data, out)
    code, err = cli(args, capsys)
    assert code == 0, err
    out.unlink()
    state = Path(f"{out}.run") / "state.pt"
    truncate(state)
    before = tree_hashes(state.parent)
    code, err = cli(args, capsys)
    assert_one_line_error(code, err, "state.pt", "truncated or corrupt")
    assert tree_hashes(state.parent) == before and not out.exists()


# --- a checkpoint of another kind or shape ---------------------------------------------------------
def test_encoder_checkpoint_passed_as_model(ws, tmp_path, capsys):
    code, err = cli(plan_args(ws.encoder, tmp_path / "ep"), capsys, entry="plan-episode")
    assert_one_line_error(code, err, "not a simjepa world_model checkpoint", "encoder")
    from world_model import load_predictor, load_world_model

    with pytest.raises(SimjepaError, match="not a predictor"):
        load_predictor(ws.encoder)
    with pytest.raises(SimjepaError, match="world_model"):
        load_world_model(ws.encoder)


def test_model_checkpoint_passed_as_encoder(ws, tmp_path, capsys):
    code, err = cli(["encode", "--data", str(ws.data), "--encoder", str(ws.model / "final.pt"), "--out", str(tmp_path / "f"),
                     "--quiet"], capsys)
    assert_one_line_error(code, err, "final.pt")
    assert not (tmp_path / "f").exists()


def test_world_model_with_predictor_of_other_width(ws, tmp_path, capsys):
    """A predictor whose feature width is not the encoder's must be refused at load, not crash in a matmul."""
    from world_model.bundle import encoder_entry, save_world_model
    from world_model.encoder_loading import encoder_identity, load_encoder
    from world_model.predictor import build_predictor

    enc = load_encoder(ws.encoder)  # 192-D tokens
    bad = tmp_path / "other_width.pt"
    save_world_model(bad, build_predictor("tiny", embed_dim=64, depth=1), encoder_entry(encoder_identity(enc), enc), SIZE, (2, 2))
    code, err = cli(plan_args(bad, tmp_path / "ep"), capsys, entry="plan-episode")
    assert_one_line_error(code, err, str(bad), "192", "64")
    from world_model import load_world_model

    with pytest.raises(SimjepaError, match="64"):
        load_world_model(bad)


def test_train_resume_from_other_config_or_kind(ws, tmp_path, capsys):
    out = tmp_path / "run"
    code, err = cli(train_args(ws, out, "--stop-after", "1"), capsys)
    assert code == 0, err
    before = tree_hashes(out)
    code, err = cli([a if a != "tiny" else "small" for a in train_args(ws, out)], capsys)
    assert_one_line_error(code, err, "other settings", "config 'tiny' -> 'small'")
    assert tree_hashes(out) == before
    shutil.copy(ws.encoder, out / "checkpoint.pt")  # an encoder file where the training state belongs
    code, err = cli(train_args(ws, out), capsys)
    assert_one_line_error(code, err, "not a simjepa training checkpoint")
    assert not (out / "final.pt").exists()


# --- malicious pickles -----------------------------------------------------------------------------
def test_malicious_pickle_never_runs(ws, tmp_path, capsys):
    files, marker = evil_files(tmp_path)
    from world_model import load_encoder, load_predictor, load_world_model

    for evil, refusal in files:
        code, err = cli(plan_args(evil, tmp_path / "ep"), capsys, entry="plan-episode")
        assert_one_line_error(code, err, refusal, str(evil))
        code, err = cli(["encode", "--data", str(ws.data), "--encoder", str(evil), "--out", str(tmp_path / "f"), "--quiet"], capsys)
        assert_one_line_error(code, err, refusal)
        # the payload where a resumable training state is expected
        run = tmp_path / f"run_{evil.stem}"
        run.mkdir()
        shutil.copy(evil, run / "checkpoint.pt")
        code, err = cli(train_args(ws, run), capsys)
        assert_one_line_error(code, err, refusal, "checkpoint.pt")
        enc_out = tmp_path / f"enc_{evil.stem}.pt"
        Path(f"{enc_out}.run").mkdir()
        shutil.copy(evil, Path(f"{enc_out}.run") / "state.pt")
        code, err = cli(pretrain_args(ws.data, enc_out), capsys)
        assert_one_line_error(code, err, refusal, "state.pt")
        for load in (load_encoder, load_predictor, load_world_model):
            with pytest.raises(SimjepaError, match=refusal):
                load(evil)
    assert not marker.exists()


def test_malicious_pickle_through_the_console_script(tmp_path):
    """The installed entry point, in a fresh process (torch's own warnings would show here): exit 2,
    one line, and the payload never ran."""
    files, marker = evil_files(tmp_path)
    for evil, refusal in files[::2]:
        res = run_console("plan-episode", plan_args(evil, tmp_path / "ep"))
        assert_one_line_error(res.returncode, res.stderr, refusal)
    assert not marker.exists()


def test_no_unsafe_deserialisation_in_the_code_base():
    """Every torch.load passes weights_only=True; no np.load(allow_pickle=True), pickle.load or eval of files."""
    offenders = []
    files = [REPO / "simjepa_cli.py"] + [p for pkg in ("envs", "world_model", "planning", "benchmarks")
                                         for p in sorted((REPO / pkg).rglob("*.py"))]
    assert len(files) > 20
    for path in files:
        text = path.read_text()
        for m in re.finditer(r"torch\.load\(", text):
            depth, end = 1, m.end()
            while depth and end < len(text):  # the whole call, nested parentheses included
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                end += 1
            call = text[m.start(): end]
            if "weights_only=True" not in call:
                offenders.append(f"{path.relative_to(REPO)}: {call}")
        for pattern in (r"allow_pickle\s*=\s*True", r"\bpickle\.loads?\(", r"\bdill\.", r"\bjoblib\.load\("):
            offenders += [f"{path.relative_to(REPO)}: {m.group(0)}" for m in re.finditer(pattern, text)]
    assert not offenders, offenders


# --- data on disk ----------------------------------------------------------------------------------
def test_train_refuses_a_cache_from_another_encoder(ws, tmp_path, capsys):
    from world_model.encoder import build_encoder
    from world_model.encoder_loading import load_encoder, save_encoder

    other = tmp_path / "other.pt"
    save_encoder(other, build_encoder("vit_tiny", depth=1, image_size=SIZE, seed=1))  # other weights
    before = tree_hashes(ws.cache)
    code, err = cli(train_args(ws, tmp_path / "m", "--encoder", str(other)), capsys)
    assert_one_line_error(code, err, "built by encoder", "not by the given encoder")
    # same weights, other head count: the features differ, so this is another encoder too
    heads = tmp_path / "heads.pt"
    enc = load_encoder(ws.encoder)
    moved = build_encoder("vit_tiny", depth=1, image_size=SIZE, num_heads=6)
    moved.load_state_dict(enc.state_dict())
    save_encoder(heads, moved)
    code, err = cli(train_args(ws, tmp_path / "m2", "--encoder", str(heads)), capsys)
    assert_one_line_error(code, err, "num_heads")
    # and encode refuses to append to a cache of another encoder
    code, err = cli(["encode", "--data", str(ws.data), "--encoder", str(other), "--out", str(ws.cache), "--quiet"], capsys)
    assert_one_line_error(code, err, "was built by encoder", "weights hash")
    assert tree_hashes(ws.cache) == before
    assert not (tmp_path / "m" / "final.pt").exists() and not (tmp_path / "m2" / "final.pt").exists()


@pytest.mark.parametrize("part", ["feats.npy", "npz"])
def test_truncated_feature_shard(ws, tmp_path, capsys, part):
    cache = tmp_path / "feats"
    shutil.copytree(ws.cache, cache)
    shard = cache / f"episode_000001.{part}"
    truncate(shard, 0.6)
    before = tree_hashes(cache)
    args = train_args(ws, tmp_path / "m")
    args[args.index("--features") + 1] = str(cache)
    code, err = cli(args, capsys)
    assert_one_line_error(code, err, "episode 1", "unreadable", "re-run `simjepa encode`")
    assert tree_hashes(cache) == before and not (tmp_path / "m" / "final.pt").exists()
    # doing what the message says (re-run encode) rebuilds exactly the damaged file
    code, err = cli(["encode", "--data", str(ws.data), "--encoder", str(ws.encoder), "--out", str(cache), "--quiet"], capsys)
    assert code == 0, err
    after = tree_hashes(cache)
    assert {Path(k).name for k in after if after[k] != before.get(k)} == {shard.name}
    assert shard.read_bytes() == (ws.cache / shard.name).read_bytes()


def test_half_written_episode(ws, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(ws.data, data)
    cut = data / "episode_000002.npz"
    truncate(cut)
    before = tree_hashes(data)
    code, err = cli(["encode", "--data", str(data), "--encoder", str(ws.encoder), "--out", str(tmp_path / "f"), "--quiet"], capsys)
    assert_one_line_error(code, err, str(cut), "corrupt", "delete it")
    code, err = cli(pretrain_args(data, tmp_path / "enc.pt"), capsys)
    assert_one_line_error(code, err, str(cut), "corrupt")
    code, err = cli(["collect", "--env", REACH, "--episodes", "3", "--out", str(data), "--render-size", str(SIZE),
                     "--max-steps", "5", "--quiet"], capsys)
    assert_one_line_error(code, err, str(cut), "corrupt")
    assert tree_hashes(data) == before
    # following the message (delete it, re-run collect) restores the identical file
    cut.unlink()
    code, err = cli(["collect", "--env", REACH, "--episodes", "3", "--out", str(data), "--render-size", str(SIZE),
                     "--max-steps", "5", "--quiet"], capsys)
    assert code == 0, err
    assert cut.read_bytes() == (ws.data / cut.name).read_bytes()


# --- env and agent inputs --------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", [REACH, "Reacher-v5"])
def test_non_finite_or_malformed_actions(env_id):
    from envs import make_env

    env = make_env(env_id, render_size=SIZE)
    obs, _ = env.reset(seed=0)
    dim = env.action_space.shape[0]
    for bad, needle in ((np.full(dim, np.nan, np.float32), "nan"), (np.r_[np.inf, np.zeros(dim - 1)], "inf"),
                        (np.zeros(dim + 1), "shape"), ("left", "numeric")):
        with pytest.raises(SimjepaError, match=f"(?i){needle}") as info:
            env.step(bad)
        assert "\n" not in str(info.value)
    obs2, *_ = env.step(np.zeros(dim, np.float32))  # the env is still usable afterwards
    assert np.isfinite(obs2["state"]).all()
    env.close()


@pytest.fixture(scope="module")
def agent_and_obs(ws):
    from envs import make_env
    from planning import Agent

    env = make_env(REACH, render_size=SIZE)
    agent = Agent.from_pretrained(ws.model, action_scale=env.unwrapped.action_scale, samples=4, iterations=1, topk=2, horizon=1)
    obs, info = env.reset(seed=0)
    env.close()
    return agent, obs, info["goal"]


@pytest.mark.parametrize("hw", [(SIZE, SIZE), (17, 23), (200, 96), (1, 1)])
def test_agent_accepts_any_frame_size(agent_and_obs, hw):
    agent, obs, goal = agent_and_obs
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (*hw, 3), dtype=np.uint8)
    agent.reset()
    action = agent.act({"pixels": frame, "state": obs["state"]}, {"pixels": frame[::-1].copy(), "state": goal["state"]})
    assert action.shape == (7,) and np.isfinite(action).all() and np.all(np.abs(action) <= 1)


def _bad_observations(obs):
    px, st = obs["pixels"], obs["state"]
    nan_state, inf_state = st.copy(), st.copy()
    nan_state[0], inf_state[2] = np.nan, np.inf
    return [
        ({"pixels": px.astype(np.float32) / 255, "state": st}, "dtype"),
        ({"pixels": np.full(px.shape, np.nan, np.float32), "state": st}, "dtype"),
        ({"pixels": px[..., 0], "state": st}, "shape"),
        ({"pixels": px[None], "state": st}, "shape"),
        ({"pixels": np.concatenate([px, px[..., :1]], -1), "state": st}, "shape"),
        ({"pixels": px.tolist(), "state": st}, "uint8 array"),
        ({"pixels": px, "state": nan_state}, "nan"),
        ({"pixels": px, "state": inf_state}, "inf"),
        ({"pixels": px, "state": st[:3]}, "at least"),
        ({"state": st}, "pixels"),
    ]


@pytest.mark.parametrize("which", ["obs", "goal"])
def test_agent_rejects_malformed_or_non_finite_observations(agent_and_obs, which):
    from planning import InvalidObservationError

    agent, obs, goal = agent_and_obs
    for bad, needle in _bad_observations(obs if which == "obs" else goal):
        agent.reset()
        args = (bad, goal) if which == "obs" else (obs, bad)
        if which == "goal" and needle in ("nan", "inf", "at least"):  # image-goal protocol: goal state never read
            assert np.isfinite(agent.act(*args)).all()
            continue
        with pytest.raises(InvalidObservationError, match=f"(?i){needle}") as info:
            agent.act(*args)
        assert isinstance(info.value, ValueError) and "\n" not in str(info.value)
    agent.reset()
    assert np.isfinite(agent.act(obs, goal)).all()  # still works after the refusals


@pytest.mark.parametrize("env_id", ["simjepa/Reach-v9", "Nope-v0", "CartPole-v1"])
def test_unknown_env_id(ws, tmp_path, capsys, env_id):
    from envs import make_env

    with pytest.raises(SimjepaError):
        make_env(env_id, render_size=SIZE)
    needle = env_id
    for args, entry in (
        (["collect", "--env", env_id, "--episodes", "1", "--out", str(tmp_path / "d"), "--render-size", str(SIZE), "--quiet"], "simjepa"),
        (plan_args(ws.model, tmp_path / "ep", env=env_id), "plan-episode"),
        (eval_args(ws.model, tmp_path / "ev", env=env_id), "simjepa"),
        (["evaluate", "--env", env_id, "--episodes", "1", "--policy", "random", "--out", str(tmp_path / "ev2")], "simjepa"),
        (["probe", "--encoder", str(ws.encoder), "--env", env_id, "--episodes", "5", "--out", str(tmp_path / "p.json"),
          "--quiet"], "simjepa"),
    ):
        code, err = cli(args, capsys, entry=entry)
        assert_one_line_error(code, err, needle)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_unknown_env_id_with_worker_processes(ws, tmp_path):
    """Parallel evaluate: the worker's error reaches the parent (it used to respawn workers forever)."""
    res = run_console("simjepa", ["evaluate", "--env", "simjepa/Nope-v0", "--episodes", "2", "--workers", "2", "--policy",
                                  "random", "--out", str(tmp_path / "ev")], timeout=90)
    assert_one_line_error(res.returncode, res.stderr, "unknown env id 'simjepa/Nope-v0'")


# --- outputs that cannot be written ----------------------------------------------------------------
def _out_commands(ws, out: Path) -> list[tuple[list[str], str]]:
    return [
        (["collect", "--env", REACH, "--episodes", "1", "--out", str(out), "--render-size", str(SIZE), "--max-steps", "2",
          "--quiet"], "simjepa"),
        (["encode", "--data", str(ws.data), "--encoder", str(ws.encoder), "--out", str(out), "--quiet"], "simjepa"),
        (train_args(ws, out), "simjepa"),
        (pretrain_args(ws.data, out / "enc.pt"), "simjepa"),
        (plan_args(ws.model, out), "plan-episode"),
        (["evaluate", "--env", REACH, "--episodes", "1", "--policy", "random", "--max-steps", "2", "--render-size", str(SIZE),
          "--out", str(out)], "simjepa"),
        (["probe", "--encoder", str(ws.encoder), "--env", REACH, "--episodes", "5", "--out", str(out / "p.json"), "--quiet"],
         "simjepa"),
    ]


def test_output_under_a_regular_file(ws, tmp_path, capsys):
    """An --out whose parent is a file cannot be created by anyone, root included."""
    blocker = tmp_path / "a_file"
    blocker.write_text("keep me\n")
    inputs = tree_hashes(ws.data, ws.encoder, ws.cache, ws.model, blocker)
    for args, entry in _out_commands(ws, blocker / "out"):
        code, err = cli(args, capsys, entry=entry)
        assert_one_line_error(code, err, "a_file")
    assert tree_hashes(ws.data, ws.encoder, ws.cache, ws.model, blocker) == inputs


def test_output_in_a_read_only_directory(ws, tmp_path, capsys):
    if not writes_blocked_by_chmod(tmp_path):
        pytest.skip("running as root (or on a file system without modes): chmod 555 does not block writes; "
                    "test_output_under_a_regular_file covers unwritable outputs")
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "old.txt").write_text("previous result\n")
    before = tree_hashes(ro)
    ro.chmod(0o555)
    try:
        for args, entry in _out_commands(ws, ro / "out"):
            code, err = cli(args, capsys, entry=entry)
            assert_one_line_error(code, err, "permission denied")
    finally:
        ro.chmod(0o755)
    assert tree_hashes(ro) == before
