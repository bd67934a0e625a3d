"""The fast planner computes what the official-style reference computes: cached RoPE tables,
key/value-cached rollouts and bf16 autocast change speed, not results (tiny predictor, seeded)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from planning import CEMConfig, Context, LatentPlanner, PlannerConfig, imagine
from planning.energy import EnergyConfig, normalize_reps
from world_model.layers import RoPEAttention, apply_rope, rope_tables
from world_model.predictor import build_predictor

D, N = 48, 16  # encoder width, tokens per frame (4 x 4 grid)


def _predictor(seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return build_predictor("tiny", D, **overrides).eval()


def _context(frames: int = 1, seed: int = 0) -> Context:
    g = torch.Generator().manual_seed(seed)
    return Context(normalize_reps(torch.randn(frames, N, D, generator=g)), torch.randn(frames, 7, generator=g),
                   torch.rand(frames - 1, 7, generator=g) * 2 - 1)


def _advance(state: np.ndarray, action: np.ndarray) -> np.ndarray:
    return state + 0.05 * action  # a kinematic model: imagined states depend on the candidate


@pytest.mark.parametrize("head_dim", [64, 32, 20])
def test_rope_tables_equal_official_rotation(head_dim):
    attn = RoPEAttention(head_dim * 2, 2)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 2, 10, head_dim, generator=g)
    pos = torch.randint(0, 7, (10, 3), generator=g).float()
    ref = attn.rotate(x, pos)
    fast = apply_rope(x, rope_tables(pos, attn.head_dim, attn.rope_dim))
    assert (fast - ref).abs().max().item() < 1e-5
    per_sample = torch.randint(0, 7, (3, 10, 3), generator=g).float()  # encoder masking: positions per sample
    ref_b = attn.rotate(x, per_sample)
    fast_b = apply_rope(x, rope_tables(per_sample, attn.head_dim, attn.rope_dim))
    assert (fast_b - ref_b).abs().max().item() < 1e-5
    assert rope_tables(pos, attn.head_dim, attn.rope_dim) is rope_tables(pos.clone(), attn.head_dim, attn.rope_dim)  # cached


def test_fast_forward_equals_reference_forward():
    pred = _predictor()
    g = torch.Generator().manual_seed(1)
    f, a, s = torch.randn(2, 3, N, D, generator=g), torch.randn(2, 3, 7, generator=g), torch.randn(2, 3, 7, generator=g)
    with torch.no_grad():
        assert (pred(f, a, s) - pred(f, a, s, reference=True)).abs().max().item() < 1e-5


@pytest.mark.parametrize("use_extrinsics", [False, True])
def test_kv_cache_rollout_equals_full_prefix(use_extrinsics):
    pred = _predictor(use_extrinsics=use_extrinsics)
    g = torch.Generator().manual_seed(2)
    b, t = 3, 4
    f, a, s = torch.randn(b, t, N, D, generator=g), torch.randn(b, t, 7, generator=g), torch.randn(b, t, 7, generator=g)
    e = torch.randn(b, t, 6, generator=g) if use_extrinsics else None
    with torch.no_grad():
        full = pred(f, a, s, e)  # [B, T, N, D]
    cache = pred.new_kv_cache(b, t, N)
    with torch.inference_mode():
        steps = [pred.decode_step(f[:, i], a[:, i], s[:, i], cache, None if e is None else e[:, i]) for i in range(t)]
    assert (torch.stack(steps, 1) - full).abs().max().item() < 1e-4
    # a prefix shared by all sequences runs once at batch 1 and is broadcast into every row
    f[:, 0], a[:, 0], s[:, 0] = f[:1, 0], a[:1, 0], s[:1, 0]
    if e is not None:
        e[:, 0] = e[:1, 0]
    with torch.no_grad():
        full = pred(f, a, s, e)
    cache = pred.new_kv_cache(b, t, N)
    with torch.inference_mode():
        first = pred.decode_step(f[:1, 0], a[:1, 0], s[:1, 0], cache, None if e is None else e[:1, 0])
        rest = [pred.decode_step(f[:, i], a[:, i], s[:, i], cache, None if e is None else e[:, i]) for i in range(1, t)]
    assert first.shape[0] == 1
    assert (torch.stack(rest, 1) - full[:, 1:]).abs().max().item() < 1e-4
    with pytest.raises(ValueError, match="cache holds"):
        pred.decode_step(f[:, 0], a[:, 0], s[:, 0], cache, None if e is None else e[:, 0])


def _kinematic_states(ctx: Context, acts: torch.Tensor) -> torch.Tensor:
    """``_advance`` integrated in closed form: state after step k = last state + 0.05 * sum of actions 0..k."""
    return ctx.states[-1] + 0.05 * acts.cumsum(dim=1)  # [S, H, K]


def _official_rollout(pred, ctx: Context, acts: torch.Tensor) -> torch.Tensor:
    """The official planner's rollout written out here, independent of ``imagine``: step k feeds the
    context plus the k layer-normed predictions so far (full prefix, fp32) and keeps the newest output."""
    s, h, _ = acts.shape
    states = torch.cat([ctx.states.expand(s, -1, -1), _kinematic_states(ctx, acts)[:, :-1]], dim=1)
    actions = torch.cat([ctx.actions.expand(s, -1, -1), acts], dim=1)
    feats, out = ctx.feats.expand(s, -1, -1, -1), []
    with torch.no_grad():
        for k in range(h):
            t = feats.shape[1]
            newest = normalize_reps(pred(feats, actions[:, :t], states[:, :t], reference=True)[:, -1:])
            out.append(newest)
            feats = torch.cat([feats, newest], dim=1)
    return torch.cat(out, dim=1)


@pytest.mark.parametrize("frames", [1, 3])
def test_fast_imagination_equals_reference(frames):
    pred = _predictor()
    ctx = _context(frames)
    acts = torch.rand(24, 3, 7, generator=torch.Generator().manual_seed(3)) * 2 - 1
    official = _official_rollout(pred, ctx, acts)
    ref, ref_states = imagine(pred, ctx, acts, _advance, reference=True)
    fast32, states = imagine(pred, ctx, acts, _advance, use_autocast=False)
    fast16, _ = imagine(pred, ctx, acts, _advance, use_autocast=True)
    expected_states = _kinematic_states(ctx, acts)
    assert (states - expected_states).abs().max().item() < 1e-5
    assert (ref_states - expected_states).abs().max().item() < 1e-5
    assert (ref - official).abs().max().item() < 1e-5
    assert (fast32 - official).abs().max().item() < 1e-4
    # bf16 autocast: features are layer-normed (unit scale), bf16 keeps ~3 significant digits
    assert (fast16 - official).abs().mean().item() < 2e-2
    goal = normalize_reps(torch.randn(N, D, generator=torch.Generator().manual_seed(4)))
    e_ref = (official[:, -1] - goal).abs().mean((1, 2))
    e32 = (fast32[:, -1] - goal).abs().mean((1, 2))
    e16 = (fast16[:, -1] - goal).abs().mean((1, 2))
    assert (e32 - e_ref).abs().max().item() < 1e-4
    assert (e16 - e_ref).abs().max().item() < 1e-2


def test_fast_and_reference_planners_pick_the_same_plan():
    pred = _predictor()
    ctx = _context(1)
    goal = normalize_reps(torch.randn(N, D, generator=torch.Generator().manual_seed(5)))
    cem = CEMConfig(samples=32, iterations=3, topk=4, horizon=2)

    def plan(**flags):
        cfg = PlannerConfig(cem=CEMConfig(**vars(cem)), energy=EnergyConfig(), **flags)
        return LatentPlanner(pred, _advance, cfg).plan(ctx, goal, 7, generator=torch.Generator().manual_seed(0))

    ref, fast32, fast16 = plan(reference=True), plan(autocast=False), plan()
    np.testing.assert_allclose(fast32.actions, ref.actions, atol=1e-5)
    np.testing.assert_allclose(fast32.iteration_energies, ref.iteration_energies, atol=1e-4)
    assert abs(fast16.energy - ref.energy) < 1e-2
    assert fast16.predictor_calls == ref.predictor_calls == 3 * 2


def test_tables_built_in_inference_mode_serve_training():
    pred = _predictor()
    imagine(pred, _context(1), torch.zeros(4, 2, 7), None)  # tables and positions cached in inference_mode
    pred.train()
    g = torch.Generator().manual_seed(6)
    out = pred(torch.randn(2, 2, N, D, generator=g), torch.randn(2, 2, 7, generator=g), torch.randn(2, 2, 7, generator=g))
    out.square().mean().backward()
    assert pred.predictor_embed.weight.grad is not None


def test_compile_failure_falls_back_to_eager(monkeypatch):
    import world_model.predictor as predictor_module

    pred = _predictor()
    ctx, acts = _context(1), torch.rand(8, 2, 7, generator=torch.Generator().manual_seed(7)) * 2 - 1
    eager, _ = imagine(pred, ctx, acts, None)

    def broken(*args):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(predictor_module, "COMPILE_MIN_NUMEL", 0)
    pred._block_step = broken
    with pytest.warns(UserWarning, match="running eager"):
        again, _ = imagine(pred, ctx, acts, None)
    assert torch.equal(again, eager) and pred._block_step is None
