"""Multi-block mask sampler: shapes, disjointness, official masking ratios, seeded determinism."""
import torch

from world_model.masks import LONG_RANGE, SHORT_RANGE, VJEPA_MASKS, BlockMaskSpec, sample_block_masks, sample_multiblock_masks


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_shapes_sorted_disjoint_and_in_range():
    grid = (2, 8, 8)
    pairs = sample_multiblock_masks(grid, batch_size=5, generator=_gen(0))
    assert len(pairs) == len(VJEPA_MASKS)
    for keep, pred in pairs:
        assert keep.dtype == torch.int64 and pred.dtype == torch.int64
        assert keep.shape[0] == pred.shape[0] == 5
        assert keep.shape[1] >= 1 and pred.shape[1] >= 1
        for k, p in zip(keep, pred):
            assert torch.equal(k, k.sort().values) and torch.equal(p, p.sort().values)
            assert len(set(k.tolist()) & set(p.tolist())) == 0
            assert int(torch.cat([k, p]).min()) >= 0 and int(torch.cat([k, p]).max()) < 2 * 8 * 8


def test_masking_ratios_match_official_families():
    """On the official 8x16x16 grid: ~66% masked short-range (8 x 15%), ~89% long-range (2 x 70%)."""
    g = _gen(1)
    ratios = {}
    for name, spec in (("short", SHORT_RANGE), ("long", LONG_RANGE)):
        fr = []
        for _ in range(30):
            keep, pred = sample_block_masks((8, 16, 16), spec, 4, g)
            fr.append(pred.shape[1] / (keep.shape[1] + pred.shape[1]))
        ratios[name] = sum(fr) / len(fr)
    assert 0.55 < ratios["short"] < 0.78, ratios
    assert 0.82 < ratios["long"] < 0.95, ratios
    assert ratios["long"] > ratios["short"] + 0.1


def test_blocks_span_time_and_form_rectangles():
    """temporal_scale 1 -> a masked token is masked at every time step; one block is a rectangle."""
    spec = BlockMaskSpec(num_blocks=1, spatial_scale=(0.25, 0.25), aspect_ratio=(1.0, 1.0))
    keep, pred = sample_block_masks((3, 8, 8), spec, 1, _gen(2))
    masked = torch.zeros(3 * 8 * 8, dtype=torch.bool)
    masked[pred[0]] = True
    masked = masked.view(3, 8, 8)
    assert torch.equal(masked[0], masked[1]) and torch.equal(masked[0], masked[2])
    rows, cols = masked[0].nonzero(as_tuple=True)
    h, w = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
    assert h * w == int(masked[0].sum()) == 16


def test_deterministic_given_seed_and_varies_with_seed():
    a = sample_multiblock_masks((1, 8, 8), 6, _gen(7))
    b = sample_multiblock_masks((1, 8, 8), 6, _gen(7))
    c = sample_multiblock_masks((1, 8, 8), 6, _gen(8))
    assert all(torch.equal(x, y) for pa, pb in zip(a, b) for x, y in zip(pa, pb))
    assert not all(torch.equal(x, y) for pa, pc in zip(a, c) for x, y in zip(pa, pc))


def test_context_never_empty_on_a_tiny_grid():
    spec = BlockMaskSpec(num_blocks=4, spatial_scale=(0.9, 0.9))
    for seed in range(5):
        keep, pred = sample_block_masks((1, 2, 2), spec, 3, _gen(seed))
        assert keep.shape[1] >= 1 and pred.shape[1] >= 1
