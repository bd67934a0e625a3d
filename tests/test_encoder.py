"""The V-JEPA 2 encoder: official sizes, official checkpoint layouts, parity with the official code."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from simjepa_core.errors import SimjepaError
from world_model.checkpoints import CheckpointError, save_file, save_model
from world_model.encoder import (
    ENCODER_CONFIGS,
    EncoderInputError,
    VideoViT,
    as_feature_map,
    build_encoder,
    random_init_like,
)
from world_model.encoder_loading import DEFAULT_ENCODER_PATH, encoder_identity, load_encoder, save_encoder
from world_model.frozen_encoder import FrozenEncoder
from world_model.preprocessing import IMAGENET_MEAN, IMAGENET_STD, FramesError, frames_to_clips
from tests.helpers import official_reference

# a second, larger reference some development machines have; optional
GOLDEN = Path(__file__).resolve().parents[1].parent / "shared" / "golden" / "vjepa2_reference.pt"


def tiny(**kw) -> VideoViT:
    return build_encoder("vit_tiny", depth=2, **kw)


def clip(b=2, t=2, h=32, w=48, seed=0) -> torch.Tensor:
    return torch.randn(b, 3, t, h, w, generator=torch.Generator().manual_seed(seed))


def official_param_count(dim: int, depth: int, mlp_hidden: int, patch: int = 16, tubelet: int = 2) -> int:
    """Parameters of the official ``VisionTransformer(use_rope=True)``: tubelet conv, blocks, final norm."""
    patch_embed = 3 * tubelet * patch * patch * dim + dim
    block = 2 * 2 * dim + (dim * 3 * dim + 3 * dim) + (dim * dim + dim) + (dim * mlp_hidden + mlp_hidden) + (mlp_hidden * dim + dim)
    return patch_embed + depth * block + 2 * dim


def test_vit_giant_matches_official_size_on_meta():
    # Official ViT-g (vit_giant_xformers): width 1408, 40 blocks, 22 heads, MLP 48/11 -> 6144 hidden,
    # which gives 1,012,173,952 parameters (the "1B" V-JEPA 2 ViT-g).
    official = official_param_count(1408, 40, int(1408 * 48 / 11))
    assert official == 1_012_173_952
    with torch.device("meta"):
        enc = build_encoder("vit_giant")
        out = enc(torch.empty(1, 3, 2, 256, 256))
    n = sum(p.numel() for p in enc.parameters())
    assert abs(n - official) / official < 0.01
    assert n == official
    assert tuple(out.shape) == (1, 256, 1408)


def test_family_matches_official_table_on_meta():
    expected = {  # width, depth, heads of the official factories
        "vit_tiny": (192, 12, 3), "vit_small": (384, 12, 6), "vit_base": (768, 12, 12),
        "vit_large": (1024, 24, 16), "vit_huge": (1280, 32, 16), "vit_giant": (1408, 40, 22),
        "vit_gigantic": (1664, 48, 26),
    }
    for name, (d, depth, heads) in expected.items():
        c = ENCODER_CONFIGS[name]
        assert (c.embed_dim, c.depth, c.num_heads) == (d, depth, heads)
    with torch.device("meta"):
        large = build_encoder("vit_large")
    # ViT-L/16 with a tubelet-2 conv: 303,885,312 parameters (the "300M" V-JEPA 2 ViT-L)
    assert sum(p.numel() for p in large.parameters()) == official_param_count(1024, 24, 4096)


def test_output_shape_nonsquare_and_feature_map():
    enc = tiny()
    with torch.no_grad():
        y = enc(clip(b=2, t=4, h=32, w=48))
    assert y.shape == (2, 2 * 2 * 3, 192)
    fmap = as_feature_map(y[:, :6], 2, 3)
    assert fmap.shape == (2, 2, 3, 192)
    assert torch.equal(fmap[:, 1, 2], y[:, 5])


def test_bad_inputs_raise_one_line_errors():
    enc = tiny()
    with pytest.raises(EncoderInputError, match="height 30"):
        enc(torch.zeros(1, 3, 2, 30, 32))
    with pytest.raises(EncoderInputError, match="single image is a 2-frame clip"):
        enc(torch.zeros(1, 3, 32, 32))
    with pytest.raises(EncoderInputError, match=r"\[0, 4\)"):
        enc(torch.zeros(1, 3, 2, 32, 32), keep=torch.tensor([[0, 4]]))
    with pytest.raises(SimjepaError, match="unknown encoder"):
        build_encoder("vit_enormous")


def test_keep_uses_original_positions():
    enc = tiny()
    c = clip(b=2, t=4, h=32, w=32)  # grid 2x2x2 = 8 tokens
    with torch.no_grad():
        full = enc(c)
        perm = torch.stack([torch.randperm(8, generator=torch.Generator().manual_seed(s)) for s in (1, 2)])
        permuted = enc(c, keep=perm)
        # keeping the first time slice == encoding only the first tubelet (same tokens, same positions)
        first = enc(c, keep=torch.arange(4).expand(2, 4))
        only_first = enc(c[:, :, :2])
        two = enc(c, keep=[torch.arange(4).expand(2, 4), torch.arange(4, 8).expand(2, 4)])
    assert torch.allclose(permuted, torch.gather(full, 1, perm.unsqueeze(-1).expand(-1, -1, 192)), atol=1e-5)
    assert torch.allclose(first, only_first, atol=1e-5)
    assert not torch.allclose(first, full[:, :4], atol=1e-3)  # attention saw fewer tokens
    assert two.shape == (4, 4, 192) and torch.allclose(two[:2], first, atol=1e-6)


def official_layout(state_dict: dict) -> dict:
    return {f"module.backbone.{k}": v.clone() for k, v in state_dict.items()}


def test_official_layout_round_trip(tmp_path):
    enc = tiny()
    path = tmp_path / "vjepa2.pt"
    save_file({"encoder": official_layout(enc.state_dict()), "epoch": 3}, path)
    loaded = load_encoder(path)
    assert loaded.config == enc.config
    c = clip()
    with torch.no_grad():
        assert torch.equal(loaded(c), enc(c))
    assert loaded.source == str(path.resolve())


def test_target_encoder_preferred_and_selectable(tmp_path):
    context, target = tiny(seed=1), tiny(seed=2)
    path = tmp_path / "train.pt"
    save_file({"encoder": official_layout(context.state_dict()),
               "target_encoder": official_layout(target.state_dict()),
               "predictor": {"module.backbone.x": torch.zeros(1)}}, path)
    c = clip()
    with torch.no_grad():
        assert torch.equal(load_encoder(path)(c), target(c))
        assert torch.equal(load_encoder(path, which="encoder")(c), context(c))


def test_mismatches_named(tmp_path):
    sd = official_layout(tiny().state_dict())
    sd["module.backbone.blocks.1.mlp.fc2.bias"] = torch.zeros(7)
    sd["module.backbone.blocks.0.attn.extra_scale"] = torch.zeros(1)
    path = tmp_path / "bad.pt"
    save_file({"encoder": sd}, path)
    with pytest.raises(CheckpointError) as err:
        load_encoder(path)
    msg = str(err.value)
    assert "blocks.0.attn.extra_scale" in msg and "blocks.1.mlp.fc2.bias (7,)" in msg
    save_file({"encoder": {"foo": torch.zeros(3)}}, path)
    with pytest.raises(CheckpointError, match="patch_embed.proj.weight"):
        load_encoder(path)


def test_unused_pos_embed_is_ignored_and_heads_follow_table(tmp_path):
    enc = build_encoder("vit_small", depth=1)
    sd = official_layout(enc.state_dict())
    sd["module.backbone.pos_embed"] = torch.zeros(1, 8 * 16 * 16, 384)  # official files may carry it
    path = tmp_path / "s.pt"
    save_file({"encoder": sd}, path)
    loaded = load_encoder(path, image_size=64)
    assert loaded.config.num_heads == 6 and loaded.config.image_size == 64


def test_parity_with_official_code(tmp_path):
    ref = official_reference("encoder")
    path = tmp_path / "official.pt"  # an official-layout file: {"encoder": {"module.backbone.<key>": fp32}}
    torch.save({"encoder": {k: v.float() for k, v in ref["checkpoint"]["encoder"].items()}}, path)
    enc = load_encoder(path)
    c, cfg = enc.config, ref["config"]
    assert (c.embed_dim, c.depth, c.num_heads, c.mlp_ratio, c.patch_size, c.tubelet_size, c.norm_eps) == (
        cfg["embed_dim"], cfg["depth"], cfg["num_heads"], cfg["mlp_ratio"], cfg["patch_size"],
        cfg["tubelet_size"], cfg["norm_eps"])
    with torch.no_grad():
        out = enc(ref["clip"].float())
    assert out.shape == ref["out"].shape == (2, 30, 128)  # 2 tubelets of a 3x5 patch grid
    diff = (out - ref["out"]).abs().max().item()
    assert diff < 1e-4, f"max |ours - official| = {diff:.2e} (tolerance 1e-4)"


@pytest.mark.skipif(not GOLDEN.is_file(), reason="the optional ../shared/golden reference is not on this machine")
def test_parity_with_shared_golden(tmp_path):
    ref = torch.load(GOLDEN, weights_only=True)["encoder"]
    path = tmp_path / "official.pt"
    torch.save(ref["checkpoint"], path)
    enc = load_encoder(path)
    cfg = ref["config"]
    assert (enc.config.embed_dim, enc.config.depth, enc.config.num_heads) == (
        cfg["embed_dim"], cfg["depth"], cfg["num_heads"])
    with torch.no_grad():
        out = enc(ref["clip"].float())
    assert out.shape == ref["out"].shape == (2, 24, 192)
    assert (out - ref["out"]).abs().max().item() < 1e-4


def test_own_checkpoint_round_trip_and_refusals(tmp_path):
    enc = tiny(image_size=64)
    path = tmp_path / "enc.pt"
    save_encoder(path, enc)
    loaded = load_encoder(path)
    assert loaded.config == enc.config
    assert encoder_identity(loaded)["weights_hash"] == encoder_identity(enc)["weights_hash"]
    save_model(tmp_path / "pred.pt", "predictor", {"x": 1}, torch.nn.Linear(2, 2))
    with pytest.raises(CheckpointError, match="not a simjepa encoder checkpoint"):
        load_encoder(tmp_path / "pred.pt")
    (tmp_path / "cut.pt").write_bytes(path.read_bytes()[:2000])  # an interrupted download
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_encoder(tmp_path / "cut.pt")


def test_hugging_face_layout(tmp_path):
    from safetensors.torch import save_file as save_safetensors

    enc = tiny()
    d = enc.config.embed_dim
    hf = {}
    for k, v in enc.state_dict().items():  # inverse of the transformers conversion script
        k2 = "layernorm." + k[5:] if k.startswith("norm.") else k
        k2 = k2.replace("patch_embed.", "embeddings.patch_embeddings.").replace("attn.", "attention.")
        k2 = k2.replace("blocks.", "layer.")
        if ".qkv." in k2:
            for i, part in enumerate(("query", "key", "value")):
                hf["encoder." + k2.replace("qkv", part)] = v[i * d : (i + 1) * d].clone()
        else:
            hf["encoder." + k2] = v.clone()
    hf["predictor.layernorm.weight"] = torch.ones(4)
    save_safetensors(hf, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text('{"num_attention_heads": 3}')
    loaded = load_encoder(tmp_path)
    c = clip()
    with torch.no_grad():
        assert torch.equal(loaded(c), enc(c))


def test_random_init_like_is_a_fresh_seeded_init_of_the_same_shape():
    trained = tiny(image_size=32)
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(0.5)  # stands in for pretraining
    fresh = random_init_like(trained)
    assert fresh.config == trained.config and not fresh.training
    assert encoder_identity(fresh)["weights_hash"] == encoder_identity(tiny(image_size=32))["weights_hash"]
    assert encoder_identity(random_init_like(trained, seed=1))["weights_hash"] != encoder_identity(fresh)["weights_hash"]


def test_names_default_and_unknown():
    a, b = load_encoder("vit_tiny"), load_encoder("vit_tiny")
    assert encoder_identity(a) == encoder_identity(b)  # fixed seed: same weights every time
    assert encoder_identity(a)["name"] == "vit_tiny"
    if not DEFAULT_ENCODER_PATH.is_file():
        with pytest.raises(CheckpointError, match="not shipped yet"):
            load_encoder("default")
    with pytest.raises(CheckpointError, match="neither a checkpoint path nor an encoder name"):
        load_encoder("no/such/encoder.pt")


def test_preprocessing_matches_official_facts():
    frames = np.zeros((2, 32, 32, 3), np.uint8)
    frames[..., 0] = round(255 * IMAGENET_MEAN[0])
    frames[1, :, :, 2] = 255
    clips = frames_to_clips(frames, 32)
    assert clips.shape == (2, 3, 2, 32, 32) and clips.dtype == torch.float32
    assert torch.equal(clips[:, :, 0], clips[:, :, 1])  # one image = the same frame twice
    assert clips[0, 0].abs().max() < 0.01  # red channel at the ImageNet mean -> ~0
    assert torch.allclose(clips[1, 2], torch.tensor((1 - IMAGENET_MEAN[2]) / IMAGENET_STD[2]))
    small = frames_to_clips(np.full((64, 64, 3), 255, np.uint8), 16)  # single [H, W, 3] image, resized
    assert small.shape == (1, 3, 2, 16, 16)
    with pytest.raises(FramesError, match="uint8"):
        frames_to_clips(np.zeros((1, 8, 8, 3), np.float32), 16)
    with pytest.raises(FramesError, match="multiples of 16"):
        frames_to_clips(frames, 30)


def test_frozen_encoder_batches_precisions():
    enc = tiny(image_size=32)
    frames = np.random.default_rng(0).integers(0, 256, (5, 48, 40, 3), dtype=np.uint8)
    fp32 = FrozenEncoder(enc, batch_size=2, precision="fp32")
    y = fp32.encode(frames)
    assert y.shape == (5, 4, 192) and y.dtype == torch.float32 and fp32.grid == (2, 2)
    with torch.no_grad():
        assert torch.allclose(y, enc(frames_to_clips(frames, 32)), atol=1e-5)
    assert torch.allclose(FrozenEncoder(enc, batch_size=5, precision="fp32").encode(frames), y, atol=1e-5)
    bf16 = FrozenEncoder(enc, batch_size=3).encode(frames)
    cos = torch.nn.functional.cosine_similarity(bf16, y, dim=-1)
    assert bf16.dtype == torch.float32 and cos.min() > 0.99
    with pytest.raises(SimjepaError, match="precision"):
        FrozenEncoder(enc, precision="fp8")
