"""benchmarks/probe_ceiling.py: the cube detector and the read-outs built on it."""
import numpy as np

from benchmarks.probe_ceiling import GRID, cnn_input, red_centroid, red_pooled, red_tokens, redness, train_cnn
from world_model.probe import probe_features

TABLE = (158, 120, 77)  # the table, lit (rgba 0.62 0.47 0.3)


def _scene(n: int, size: int = 64, seed: int = 0, half: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """``n`` frames of a table with a red square of side ``2 * half`` at a random place; targets its centre (pixels)."""
    rng = np.random.default_rng(seed)
    frames = np.empty((n, size, size, 3), np.uint8)
    frames[:] = TABLE
    frames[:, :8] = (230, 230, 235)  # the white arm
    frames[:, 8:12, :10] = (26, 204, 64)  # the green target
    centre = rng.uniform(12, size - 2 * half, (n, 2))
    for f, (x, y) in zip(frames, centre):
        f[int(y) - half:int(y) + half, int(x) - half:int(x) + half] = (219, 31, 26)
    return frames, np.floor(centre)


def test_redness_keeps_the_cube_and_nothing_else_in_the_scene():
    px = np.array([[[219, 31, 26], [150, 40, 35], TABLE, [230, 230, 235], [46, 46, 51], [26, 204, 64]]], np.uint8)
    r = redness(px[None])[0, 0]
    assert r[0] == 1.0 and r[1] > 0.4  # lit and shaded cube faces
    assert (r[2:] == 0).all()  # table, arm, hand, green target


def test_the_centroid_read_out_locates_the_square_and_coarse_grids_do_worse():
    frames, centre = _scene(600)
    feats = {fn.__name__: [fn(frames[i:i + 20]) for i in range(0, 600, 20)] for fn in (red_centroid, red_tokens, red_pooled)}
    targets = [centre[i:i + 20] for i in range(0, 600, 20)]
    r2 = {k: probe_features(v, targets)["r2"] for k, v in feats.items()}
    assert r2["red_centroid"] > 0.99
    assert r2["red_pooled"] < r2["red_tokens"] < r2["red_centroid"]
    assert feats["red_tokens"][0].shape == (20, GRID * GRID) and feats["red_pooled"][0].shape == (20, 17)


def test_a_hidden_cube_leaves_only_a_zero_visible_flag():
    frames, _ = _scene(3)
    frames[1] = TABLE  # the cube is hidden in frame 1
    f = red_centroid(frames)
    assert (f[1] == 0).all() and f[0, -2] == 1.0 and f[2, -2] == 1.0  # [..., visible flag, area]


def test_the_cnn_read_out_learns_the_square_and_not_a_target_the_frames_do_not_show():
    frames, centre = _scene(400, seed=1, half=6)
    x = [cnn_input(frames[i:i + 10]) for i in range(0, 400, 10)]
    noise = np.random.default_rng(2).normal(size=(400, 1))  # nothing in the frames says it
    r = train_cnn(x, {"cube": [centre[i:i + 10] for i in range(0, 400, 10)],
                      "noise": [noise[i:i + 10] for i in range(0, 400, 10)]}, epochs=10, batch_size=32)
    assert r["cube"]["r2"] > 0.8 and r["noise"]["r2"] < 0.1
