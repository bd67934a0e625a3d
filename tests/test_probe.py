"""Ridge probe: recovers a known linear signal, scores noise near zero, splits by episode."""
import numpy as np
import pytest
import torch

from tests.helpers import cli_exit_code
from world_model.encoder import build_encoder
from world_model.probe import (
    ProbeEpisode,
    ProbeError,
    ProbeSettings,
    fit_ridge,
    pooled_features,
    probe_features,
    r2_score,
    run_probe,
    split_episodes,
)


def _episodes(n_eps: int, steps: int, dim: int, rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.normal(size=(steps, dim)) for _ in range(n_eps)]


def test_probe_recovers_a_linear_signal():
    rng = np.random.default_rng(0)
    feats = _episodes(10, 30, 40, rng)
    w = rng.normal(size=(40, 3))
    targets = [f @ w + 0.01 * rng.normal(size=(len(f), 3)) + 5.0 for f in feats]
    res = probe_features(feats, targets)
    assert res["r2"] > 0.999
    assert all(r > 0.999 for r in res["r2_per_axis"])
    assert res["frames"] == {"train": 180, "val": 60, "test": 60}


def test_object_error_by_arm_distance_exposes_a_probe_that_reads_the_arm():
    """Features that see only the arm: the cube is guessed from the arm, so error grows with their distance."""
    rng = np.random.default_rng(3)
    feats, cubes, dists = [], [], []
    for _ in range(20):
        arm = rng.uniform(-0.3, 0.3, size=(30, 2))
        cube = arm + rng.normal(size=(30, 2)) * rng.choice([0.01, 0.3], size=(30, 1))  # near or far from the arm
        feats.append(np.concatenate([arm, 0.01 * rng.normal(size=(30, 6))], 1))
        cubes.append(cube)
        dists.append(np.linalg.norm(cube - arm, axis=1))
    rows = probe_features(feats, cubes, arm_distance=dists)["rmse_by_arm_distance"]
    assert [r["from"] for r in rows] == [0.0, 0.05, 0.1, 0.2] and rows[-1]["to"] is None
    assert sum(r["frames"] for r in rows) == 4 * 30
    assert rows[0]["rmse_m"] < 0.05 < 0.2 < rows[-1]["rmse_m"]
    assert "rmse_by_arm_distance" not in probe_features(feats, cubes)


def test_probe_of_unrelated_targets_scores_near_zero():
    rng = np.random.default_rng(1)
    feats = _episodes(10, 30, 40, rng)
    targets = [rng.normal(size=(len(f), 3)) for f in feats]
    res = probe_features(feats, targets)
    assert -0.15 < res["r2"] < 0.1
    assert res["alpha"] >= 100  # validation picks strong shrinkage for noise


def test_wide_features_use_the_dual_path_and_alpha_matters():
    """More features than samples: the SVD solution still fits, and validation picks alpha."""
    rng = np.random.default_rng(2)
    mixing = rng.normal(size=(8, 400))  # features: 8 latent factors spread over 400 noisy dims
    w = rng.normal(size=(8, 2))

    def sample(n):
        z = rng.normal(size=(n, 8))
        return z @ mixing + 0.5 * rng.normal(size=(n, 400)), z @ w

    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = sample(50), sample(20), sample(100)
    probe = fit_ridge(x_tr, y_tr, x_va, y_va)
    assert r2_score(y_te, probe.predict(x_te)) > 0.9
    assert len(set(np.round(list(probe.val_r2.values()), 6))) > 1


def test_blockwise_fit_equals_the_closed_form(monkeypatch):
    """Gram and standardisation summed a few rows at a time (as for the 128 px probe) give the textbook
    ridge solution on float32 features, on both the primal and the dual path."""
    import world_model.probe as probe_mod

    monkeypatch.setattr(probe_mod, "_CHUNK_ROWS", 7)
    rng = np.random.default_rng(4)
    for n, f in ((60, 12), (15, 40)):  # primal (N > F), dual (N <= F)
        x = rng.normal(size=(n, f)).astype(np.float32) * 3 + 1
        y = rng.normal(size=(n, 2))
        mean, scale = probe_mod._standardise(x)
        np.testing.assert_allclose(mean, x.astype(np.float64).mean(0), rtol=1e-10)
        np.testing.assert_allclose(scale, x.astype(np.float64).std(0), rtol=1e-10)
        z = (x.astype(np.float64) - mean) / scale
        yc = y - y.mean(0)
        w = probe_mod._ridge_solutions(x, yc, mean, scale, [10.0])[10.0]
        np.testing.assert_allclose(w, np.linalg.solve(z.T @ z + 10.0 * np.eye(f), z.T @ yc), rtol=1e-6, atol=1e-9)
        ridge = probe_mod.RidgeProbe(mean, scale, w, y.mean(0), 10.0)
        np.testing.assert_allclose(ridge.predict(x), z @ w + y.mean(0), rtol=1e-10, atol=1e-12)
        with pytest.raises(ProbeError, match="feature range"):
            ridge.predict(x, clip=True)
    # the clipping range, found a block at a time, is the fitting features' own range in z units
    x_tr, x_va = x[:10], x[10:]
    fitted = fit_ridge(x_tr, y[:10], x_va, y[10:], alphas=(1.0,))
    z_all = (x.astype(np.float64) - fitted.mean) / fitted.scale
    np.testing.assert_allclose(fitted.z_low, z_all.min(0), rtol=1e-12)
    np.testing.assert_allclose(fitted.z_high, z_all.max(0), rtol=1e-12)
    np.testing.assert_allclose(fitted.predict(x, clip=True), fitted.predict(x), rtol=1e-10, atol=1e-12)


def test_clipped_score_survives_one_test_episode_far_outside_the_fitted_feature_range():
    """A held-out episode whose features leave the fitted range ruins r2 but not r2_clipped."""
    rng = np.random.default_rng(5)
    w = rng.normal(size=(12, 2))
    feats = [rng.normal(size=(20, 12)) for _ in range(30)]
    targets = [f @ w + 0.05 * rng.normal(size=(20, 2)) for f in feats]
    clean = probe_features(feats, targets)
    feats[-1] = feats[-1].copy()
    feats[-1][:, 0] += 200.0  # the last (test) episode: one feature 200 sigma off, targets unchanged
    res = probe_features(feats, targets)
    assert clean["r2"] > 0.95 and abs(clean["r2_clipped"] - clean["r2"]) < 0.02
    assert res["r2"] < 0.0 < 0.8 < res["r2_clipped"]


def test_r2_is_variance_weighted_and_ignores_constant_axes():
    y = np.stack([np.linspace(0, 1, 20), np.full(20, 0.025)], axis=1)  # second axis never varies
    y_hat = y.copy()
    y_hat[:, 1] += 1e-4
    assert r2_score(y, y_hat) == pytest.approx(1.0, abs=1e-5)
    assert np.isnan(r2_score(np.ones((5, 2)), np.zeros((5, 2))))


def test_pooled_features_are_patch_mean_plus_pooled_grid():
    tokens = torch.arange(2 * 16 * 3, dtype=torch.float32).reshape(2, 16, 3)  # 4x4 grid, D=3
    f = pooled_features(tokens, (4, 4), pool=2)
    assert f.shape == (2, 3 + 4 * 3)
    torch.testing.assert_close(f[:, :3], tokens.mean(1))
    top_left = tokens[0].reshape(4, 4, 3)[:2, :2].reshape(4, 3).mean(0)  # cell (0, 0), channel-major layout
    torch.testing.assert_close(f[0, 3::4], top_left)
    assert pooled_features(tokens, (4, 4), pool=8).shape == (2, 3 + 16 * 3)  # small grid: used whole
    with pytest.raises(ProbeError):
        pooled_features(tokens, (3, 3))


def test_too_few_episodes_are_refused():
    with pytest.raises(ProbeError, match="at least 5"):
        split_episodes(3)
    assert split_episodes(5) == ([0, 1, 2], [3], [4])


def test_run_probe_end_to_end_on_a_visible_square():
    """A tiny random encoder on frames showing a square at the 'end-effector' position."""
    rng = np.random.default_rng(3)
    eps = []
    for _ in range(10):
        xy = rng.integers(0, 24, size=(30, 2))
        frames = np.zeros((30, 32, 32, 3), np.uint8)
        for t, (x, y) in enumerate(xy):
            frames[t, y : y + 8, x : x + 8] = 255
        ee = np.concatenate([xy / 32.0, np.zeros((30, 1))], axis=1)
        eps.append(ProbeEpisode(frames=frames, ee=ee, obj=None))
    enc = build_encoder("vit_tiny", depth=1, embed_dim=32, num_heads=2, patch_size=8, image_size=32)
    res = run_probe(enc, ProbeSettings(env="synthetic", episodes=10, seed_start=0, render_size=32), episodes=eps,
                    progress=False)
    assert res["r2_object"] is None and res["object"] is None
    assert res["r2_ee"] > 0.5
    assert res["feature_dim"] == 32 + 4 * 4 * 32
    assert res["settings"]["env"] == "synthetic"


def test_cli_probe_end_to_end_on_reach(tmp_path, capsys):
    """Tiny checkpoint, 5 Reach episodes at 32 px: JSON written, no object probe for Reach."""
    import json

    from world_model.encoder_loading import save_encoder

    enc = build_encoder("vit_tiny", seed=3, depth=1, embed_dim=32, num_heads=2, patch_size=8, image_size=32)
    save_encoder(tmp_path / "enc.pt", enc)
    out = tmp_path / "probe.json"
    code = cli_exit_code(["probe", "--encoder", str(tmp_path / "enc.pt"), "--env", "simjepa/Reach-v0", "--episodes", "5",
                 "--seed-start", "0", "--out", str(out), "--policy", "expert", "--quiet"])
    assert code == 0
    res = json.loads(out.read_text())
    assert res["r2_object"] is None and np.isfinite(res["r2_ee"])
    assert res["settings"]["render_size"] == 32 and res["encoder"]["config"]["patch_size"] == 8
    code = cli_exit_code(["probe", "--encoder", str(tmp_path / "enc.pt"), "--random-init", "--env", "simjepa/Reach-v0",
                 "--episodes", "5", "--out", str(tmp_path / "r.json"), "--quiet"])
    rnd = json.loads((tmp_path / "r.json").read_text())
    assert rnd["encoder"]["random_init"] and rnd["encoder"]["weights_hash"] != res["encoder"]["weights_hash"]


def test_cli_probe_on_a_collected_dataset_equals_probing_freshly_collected_episodes(tmp_path):
    """--data reads the same episodes `probe` would collect with the manifest's seeds and policy."""
    import json

    from world_model.encoder_loading import save_encoder

    enc = build_encoder("vit_tiny", seed=3, depth=1, embed_dim=32, num_heads=2, patch_size=8, image_size=32)
    save_encoder(tmp_path / "enc.pt", enc)
    data = tmp_path / "push"
    assert cli_exit_code(["collect", "--env", "simjepa/Push-v0", "--episodes", "6", "--policy", "mixed", "--render-size",
                          "32", "--seed-start", "7", "--max-steps", "6", "--out", str(data), "--quiet"]) == 0
    assert cli_exit_code(["probe", "--encoder", str(tmp_path / "enc.pt"), "--data", str(data), "--out",
                          str(tmp_path / "d.json"), "--quiet"]) == 0
    from_data = json.loads((tmp_path / "d.json").read_text())
    assert from_data["settings"]["episodes"] == 6 and from_data["settings"]["seed_start"] == 7
    assert from_data["settings"]["env"] == "simjepa/Push-v0" and from_data["data"] == str(data)
    assert from_data["r2_object"] is not None and from_data["r2_gripper"] is not None

    from planning.probe_episodes import collect_probe_episodes, load_probe_episodes

    env_id, loaded = load_probe_episodes(str(data), 6, progress=False)
    fresh = collect_probe_episodes("simjepa/Push-v0", 1, 7, 32, "mixed", progress=False)
    assert env_id == "simjepa/Push-v0" and len(loaded) == 6
    n = len(loaded[0].frames)  # the dataset stopped at 6 steps; the fresh rollout runs the env's full length
    assert np.array_equal(loaded[0].frames, fresh[0].frames[:n])
    np.testing.assert_allclose(loaded[0].obj, fresh[0].obj[:n], atol=1e-6)
    np.testing.assert_allclose(loaded[0].ee, fresh[0].ee[:n], atol=1e-6)


@pytest.mark.parametrize("extra, message", [
    (["--seed-start", "3"], "--seed-start"),
    (["--env", "simjepa/Reach-v0"], "drop --env"),
    (["--episodes", "9"], "fewer than the 9"),
])
def test_cli_probe_data_refuses_conflicting_options(tmp_path, capsys, extra, message):
    assert cli_exit_code(["collect", "--env", "simjepa/Push-v0", "--episodes", "6", "--render-size", "32",
                          "--max-steps", "3", "--out", str(tmp_path / "d"), "--quiet"]) == 0
    capsys.readouterr()
    code = cli_exit_code(["probe", "--encoder", "vit_tiny", "--data", str(tmp_path / "d"), *extra,
                          "--out", str(tmp_path / "p.json"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and not (tmp_path / "p.json").exists()


@pytest.mark.parametrize("args, message", [
    (["--env", "simjepa/Push-v0", "--episodes", "3"], "at least 5"),
    (["--env", "simjepa/Nope-v0", "--encoder", "vit_tiny"], "unknown env id"),
    (["--env", "simjepa/Push-v0", "--encoder", "missing.pt"], "neither a checkpoint path"),
    (["--episodes", "5"], "--env ID (collects them) or --data DIR"),
    (["--data", "no/such/dir"], "not found"),
])
def test_cli_probe_bad_input_exits_2(tmp_path, capsys, args, message):
    code = cli_exit_code(["probe", *args, "--out", str(tmp_path / "p.json"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "p.json").exists()


def test_episodes_whose_object_leaves_the_scene_are_dropped_and_counted():
    rng = np.random.default_rng(4)
    eps = []
    for i in range(7):
        frames = rng.integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)
        obj = np.tile([0.05, 0.0, 0.025], (6, 1)) + 0.002 * rng.normal(size=(6, 3))
        if i == 2:
            obj[3:] = [0.1, 2.3, 2.3]  # launched out of the scene
        eps.append(ProbeEpisode(frames=frames, ee=rng.normal(size=(6, 3)), obj=obj))
    enc = build_encoder("vit_tiny", depth=1, embed_dim=32, num_heads=2, patch_size=8, image_size=32)
    res = run_probe(enc, ProbeSettings(env="synthetic", episodes=7, seed_start=0, render_size=32), episodes=eps,
                    progress=False)
    assert res["episodes_used"] == 6 and res["episodes_dropped_object_left_scene"] == 1
    assert res["object"]["frames"]["test"] == 6 * 1 and res["object"]["frames"]["train"] == 6 * 4


def test_mlp_probe_diagnostic_reads_a_nonlinear_target_a_linear_map_cannot():
    """benchmarks/mlp_probe.py's head: on y = |x| (no linear signal: R^2 < 0.1) it reaches R^2 > 0.7."""
    from benchmarks.mlp_probe import fit_mlp

    gen = torch.Generator().manual_seed(0)
    x = [torch.randn(n, 8, generator=gen) for n in (3000, 500, 500)]
    y = [v[:, :2].abs() for v in x]
    val, test = fit_mlp(x, y)
    assert val > 0.7 and test > 0.7  # input dropout (0.2) caps it near 0.75 on 8 inputs
    linear = torch.linalg.lstsq(torch.cat([x[0], torch.ones(3000, 1)], 1), y[0]).solution
    assert r2_score(y[2].numpy(), (torch.cat([x[2], torch.ones(500, 1)], 1) @ linear).numpy()) < 0.1


def test_probe_episodes_take_their_object_targets_from_envs_object_state():
    """One source for "where is the object in the state": the probe reads Pusher-v5's object (state[17:20])
    as the proposal's --locate-object labels do, and finds none in Reach."""
    import envs
    from envs.collect import run_episode
    from planning.probe_episodes import collect_probe_episodes

    reach = collect_probe_episodes("simjepa/Reach-v0", 1, 3, 32, "random", progress=False)[0]
    assert reach.obj is None and reach.gripper is not None
    pusher = collect_probe_episodes("Pusher-v5", 1, 3, 32, "random", progress=False)[0]
    env = envs.make_env("Pusher-v5", render_size=32)
    try:
        states = run_episode(env, "random", 3, env.spec.max_episode_steps).states
    finally:
        env.close()
    assert pusher.obj is not None and pusher.obj.shape == (len(states), 3)
    np.testing.assert_allclose(pusher.obj, states[:, envs.object_state("Pusher-v5")], atol=1e-9)
