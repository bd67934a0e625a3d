"""Training one world model on several tasks' feature caches at once."""
import numpy as np
import pytest

from world_model.data import ArraySource, MultiSource, TrainError, describe_source


def _source(env_id: str, n: int, weights_hash: str = "abc", grid=(2, 2), offset: float = 0.0,
            state_dim: int = 10, **manifest_extra) -> ArraySource:
    rng = np.random.default_rng(n)
    eps = [(rng.standard_normal((5, 4, 8)).astype(np.float16) + offset, np.zeros((4, 7), np.float32),
            np.zeros((5, state_dim), np.float32)) for _ in range(n)]
    manifest = {"encoder": {"name": "e", "config": {}, "weights_hash": weights_hash}, "grid": list(grid),
                "env_id": env_id, "path": f"/feats/{env_id}", **manifest_extra}
    return ArraySource(eps, manifest)


def test_multi_source_concatenates_episodes_and_lists_envs():
    a, b = _source("simjepa/Reach-v0", 2), _source("simjepa/Push-v0", 3, offset=100.0)
    multi = MultiSource([a, b])
    assert len(multi) == 5 and multi.episodes == [0, 1, 2, 3, 4]
    assert np.array_equal(multi.episode(1)[0], a.episode(1)[0])
    assert np.array_equal(multi.episode(2)[0], b.episode(0)[0])
    assert multi.manifest["env_ids"] == ["simjepa/Reach-v0", "simjepa/Push-v0"]
    assert multi.manifest["paths"] == ["/feats/simjepa/Reach-v0", "/feats/simjepa/Push-v0"]


@pytest.mark.parametrize("kw", [{"weights_hash": "other"}, {"grid": (4, 1)}])
def test_multi_source_refuses_caches_from_other_encoders_or_grids(kw):
    with pytest.raises(TrainError):
        MultiSource([_source("simjepa/Reach-v0", 2), _source("simjepa/Push-v0", 2, **kw)])


def test_multi_source_refuses_caches_of_other_image_sizes_or_token_pools_on_the_same_grid():
    """64 px unpooled and 128 px pooled 2x2 both give a 8x8 grid, but their features differ."""
    plain = _source("simjepa/Reach-v0", 2, image_size=[64, 64])
    for other in ({"image_size": [128, 128], "token_pool": 2}, {"image_size": [64, 64], "token_pool": 2}):
        with pytest.raises(TrainError, match="different image sizes or token pools"):
            MultiSource([plain, _source("simjepa/Push-v0", 2, **other)])
    assert len(MultiSource([plain, _source("simjepa/Push-v0", 2, image_size=[64, 64], token_pool=1)])) == 4


def test_tasks_with_different_state_lengths_train_together_on_their_proprio():
    multi = MultiSource([_source("simjepa/Reach-v0", 2, state_dim=10), _source("simjepa/Push-v0", 2, state_dim=16)])
    info = describe_source(multi)
    assert info["state_dim"] == 7 and len(info["lengths"]) == 4
