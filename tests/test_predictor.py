"""AC predictor: official parity and layout, block-causality, presets, loaders' errors."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from world_model.checkpoints import CheckpointError
from world_model.predictor import (
    ACPredictor,
    block_causal_mask,
    build_predictor,
    config_from_official,
    load_predictor,
    save_predictor,
    to_official,
)
from tests.helpers import official_reference

# a second, larger reference some development machines have; optional
GOLDEN = Path(__file__).resolve().parents[1].parent / "shared" / "golden" / "vjepa2_reference.pt"


def _inputs(pred: ACPredictor, b: int = 2, t: int = 3, n: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    c = pred.config
    return (torch.randn(b, t, n, c.embed_dim, generator=g), torch.randn(b, t, c.action_dim, generator=g),
            torch.randn(b, t, c.state_dim, generator=g))


def test_parity_with_official_code(tmp_path):
    ref = official_reference("predictor")
    path = tmp_path / "official.pt"  # an official-layout file: {"predictor": {"module.<key>": fp32}}
    torch.save({"predictor": {k: v.float() for k, v in ref["checkpoint"]["predictor"].items()}}, path)
    pred = load_predictor(path).eval()
    c, cfg = pred.config, ref["config"]
    assert (c.embed_dim, c.width, c.depth, c.num_heads, c.mlp_ratio, c.action_dim, c.state_dim, c.norm_eps) == (
        cfg["embed_dim"], cfg["predictor_embed_dim"], cfg["depth"], cfg["num_heads"], cfg["mlp_ratio"],
        cfg["action_embed_dim"], cfg["action_embed_dim"], cfg["norm_eps"])
    with torch.no_grad():
        out = pred(ref["feats"].float(), ref["actions"].float(), ref["states"].float())
    assert out.shape == ref["out"].shape == (2, 3, 36, 128)  # step t predicts step t+1, block-causally
    diff = (out - ref["out"]).abs().max().item()
    assert diff < 1e-4, f"max |ours - official| = {diff:.2e} (tolerance 1e-4)"


@pytest.mark.skipif(not GOLDEN.is_file(), reason="the optional ../shared/golden reference is not on this machine")
def test_parity_with_shared_golden(tmp_path):
    ref = torch.load(GOLDEN, weights_only=True)["predictor"]
    path = tmp_path / "official.pt"
    torch.save(ref["checkpoint"], path)  # an official-layout file: {"predictor": {"module.<key>": t}}
    pred = load_predictor(path).eval()
    c = pred.config
    assert (c.embed_dim, c.width, c.depth, c.num_heads, c.action_dim, c.state_dim) == (192, 128, 2, 2, 7, 7)
    with torch.no_grad():
        out = pred(ref["feats"], ref["actions"], ref["states"])
    assert out.shape == ref["out"].shape == (2, 3, 36, 192)
    assert (out - ref["out"]).abs().max().item() < 1e-4


def test_official_layout_round_trip(tmp_path):
    torch.manual_seed(0)
    pred = build_predictor("tiny", embed_dim=48, action_dim=7, state_dim=7).eval()
    official = to_official(pred)
    assert all(k.startswith("module.") for k in official["predictor"])
    assert "module.extrinsics_encoder.weight" in official["predictor"]  # the official model always has it
    torch.save(official, tmp_path / "o.pt")
    back = load_predictor(tmp_path / "o.pt").eval()
    assert config_from_official({k[7:]: v for k, v in official["predictor"].items()}).width == 128
    x = _inputs(pred)
    with torch.no_grad():
        assert torch.equal(pred(*x), back(*x))


def test_own_checkpoint_round_trip_and_mismatch_named(tmp_path):
    pred = build_predictor("tiny", embed_dim=32, action_dim=2, state_dim=4).eval()
    save_predictor(tmp_path / "p.pt", pred)
    back = load_predictor(tmp_path / "p.pt").eval()
    x = _inputs(pred, n=4)
    with torch.no_grad():
        assert torch.equal(pred(*x), back(*x))
    obj = torch.load(tmp_path / "p.pt", weights_only=True)
    obj["config"]["depth"] = 3
    torch.save(obj, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="missing keys: predictor_blocks.2"):
        load_predictor(tmp_path / "bad.pt")


def test_block_causal_future_inputs_never_change_past_outputs():
    torch.manual_seed(0)
    pred = build_predictor("tiny", embed_dim=32).eval()
    feats, actions, states = _inputs(pred, t=4, n=4)
    with torch.no_grad():
        base = pred(feats, actions, states)
        for t in range(3):
            f2, a2, s2 = feats.clone(), actions.clone(), states.clone()
            f2[:, t + 1 :] += 5.0
            a2[:, t + 1 :] -= 3.0
            s2[:, t + 1 :] *= -2.0
            out = pred(f2, a2, s2)
            assert torch.equal(out[:, : t + 1], base[:, : t + 1])
            assert not torch.allclose(out[:, t + 1 :], base[:, t + 1 :])
        # the action of step t conditions the prediction of step t+1 (output t)
        a3 = actions.clone()
        a3[:, 1] += 1.0
        assert not torch.allclose(pred(feats, a3, states)[:, 1], base[:, 1])


def test_mask_matches_official_construction():
    t, k = 3, 2 + 4
    m = block_causal_mask(t, k)
    ref = torch.zeros(t * k, t * k, dtype=torch.bool)
    for t1 in range(t):
        for t2 in range(t1 + 1):
            ref[t1 * k : (t1 + 1) * k, t2 * k : (t2 + 1) * k] = True
    assert torch.equal(m, ref)


def test_presets_and_vjepa2_ac_size():
    with torch.device("meta"):
        big = build_predictor("vjepa2-ac", embed_dim=1408)
    n = sum(p.numel() for p in big.parameters())
    assert 300e6 < n < 310e6
    assert (big.config.depth, big.config.width, big.config.num_heads, big.config.mlp_ratio) == (24, 1024, 16, 4.0)
    sizes = [build_predictor(name, embed_dim=32).config.width for name in ("tiny", "small", "base")]
    assert sizes == sorted(sizes)
    with pytest.raises(ValueError, match="unknown predictor config"):
        build_predictor("huge", embed_dim=32)


def test_grid_inferred_or_explicit_and_shape_errors():
    pred = build_predictor("tiny", embed_dim=32).eval()
    feats, actions, states = _inputs(pred, t=2, n=6)
    with pytest.raises(ValueError, match="not a square grid"):
        pred(feats, actions, states)
    assert pred(feats, actions, states, grid=(2, 3)).shape == feats.shape
    with pytest.raises(ValueError, match="7-D actions"):
        pred(feats, actions[..., :3], states, grid=(2, 3))


def test_load_errors_are_one_line(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint file"):
        load_predictor(tmp_path / "missing.pt")
    torch.save({"encoder": {"module.backbone.x": torch.zeros(1)}}, tmp_path / "enc.pt")
    with pytest.raises(CheckpointError, match="holds no predictor weights"):
        load_predictor(tmp_path / "enc.pt")
    (tmp_path / "trunc.pt").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_predictor(tmp_path / "trunc.pt")
    (tmp_path / "run").mkdir()
    with pytest.raises(CheckpointError, match="without final.pt"):
        load_predictor(tmp_path / "run")


def test_a_residual_predictor_starts_by_copying_its_input_and_decodes_as_its_forward(tmp_path):
    """--residual: the head predicts the change, starting at zero, so the untrained model is copy-last."""
    from world_model.predictor import normalize_reps

    pred = build_predictor("tiny", embed_dim=32, residual=True).eval()
    feats, actions, states = _inputs(pred)
    z = normalize_reps(feats)  # the predictor's inputs are layer-normed, as training and planning feed them
    with torch.no_grad():
        assert torch.allclose(normalize_reps(pred(z, actions, states)), z, atol=1e-4)
        torch.nn.init.normal_(pred.predictor_proj.weight, std=0.05)  # a trained change: no longer a copy
        whole = pred(z, actions, states)
        assert not torch.allclose(normalize_reps(whole), z, atol=1e-2)
        cache = pred.new_kv_cache(2, 3, 16)
        steps = [pred.decode_step(z[:, t], actions[:, t], states[:, t], cache) for t in range(3)]
    assert torch.allclose(torch.stack(steps, 1), whole, atol=1e-5)
    save_predictor(tmp_path / "r.pt", pred)
    back = load_predictor(tmp_path / "r.pt").eval()
    assert back.config.residual
    with torch.no_grad():
        assert torch.equal(back(z, actions, states), whole)
    with pytest.raises(ValueError, match="no official layout"):
        to_official(pred)
