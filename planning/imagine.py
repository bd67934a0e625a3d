"""Imagination: autoregressive latent unrolls of many candidate action sequences at once.

Unroll step ``k`` feeds the predictor the context frames plus its own ``k`` previous predictions
(layer-normed, as V-JEPA 2-AC does in training and planning) and keeps only the prediction for the
newest frame. The proprioceptive state of imagined frames is advanced from the planned actions with
the environment's kinematic model, as the official planner does (``compute_new_pose``), because the
predictor is conditioned on states it cannot predict itself.

Every predictor call carries ALL candidates in its batch: ``horizon`` calls per scoring, never a
Python loop over candidates. Predictors with a key/value cache (ours) run each step's tokens once
instead of the whole prefix again; ``reference=True`` keeps the official full-prefix fp32 way.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .energy import normalize_reps
from .protocols import Predictor, StateAdvancer


@dataclass
class Context:
    """What the planner conditions on: the latest ``C`` observed frames.

    ``feats [C, N, D]`` (layer-normed when the planner normalises reps), ``states [C, K]``,
    ``actions [C - 1, A]``: the actions executed between consecutive context frames.
    """

    feats: torch.Tensor
    states: torch.Tensor
    actions: torch.Tensor

    def __post_init__(self) -> None:
        c = self.feats.shape[0]
        if self.states.shape[0] != c or self.actions.shape[0] != c - 1:
            raise ValueError(
                f"context needs C frames, C states and C-1 actions; got {c}, {self.states.shape[0]}, {self.actions.shape[0]}"
            )


def advance_states(start: torch.Tensor, actions: torch.Tensor, advance: StateAdvancer) -> torch.Tensor:
    """Integrate the kinematic model: ``start [K]``, ``actions [S, H, A]`` -> ``[S, H, K]`` states after each action."""
    s, h, _ = actions.shape
    state = np.broadcast_to(start.detach().cpu().numpy().astype(np.float64), (s, start.shape[0])).copy()  # [S, K]
    acts = actions.detach().cpu().numpy().astype(np.float64)
    out = np.empty((s, h, start.shape[0]), dtype=np.float32)
    for k in range(h):
        state = np.asarray(advance(state, acts[:, k]), dtype=np.float64)
        out[:, k] = state
    return torch.from_numpy(out)


def _supports_cache(predictor: Predictor) -> bool:
    """V-JEPA 2-AC predictors of ours unroll incrementally; any other callable is treated as a
    black box with the official signature (full prefix every step)."""
    return callable(getattr(predictor, "decode_step", None)) and callable(getattr(predictor, "new_kv_cache", None))


def imagine(
    predictor: Predictor,
    context: Context,
    actions: torch.Tensor,
    advance: StateAdvancer | None,
    normalize_inputs: bool = True,
    use_autocast: bool = True,
    reference: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unroll ``actions [S, H, A]`` from ``context`` in latent space.

    Returns predicted features ``[S, H, N, D]`` (fp32, always layer-normed, ready for the energy) and
    the states of the predicted frames ``[S, H, K]`` (``advance`` None keeps the last observed state).
    ``normalize_inputs``: feed predictions back layer-normed, matching a predictor trained on
    layer-normed features (V-JEPA 2-AC); the context must then be layer-normed too.

    ``reference``: the official V-JEPA 2 way, kept as the benchmark baseline: fp32, the context
    repeated per candidate, the whole prefix re-run at every step and RoPE recomputed per block.
    Otherwise predictors with a key/value cache (:class:`world_model.ACPredictor`) run each step's
    tokens once, with the observed prefix computed once for all candidates.
    """
    s, h, _ = actions.shape
    device = context.feats.device  # the predictor's device: the agent puts features there
    last_state = context.states[-1].float().cpu()
    if advance is None:
        pred_states = last_state.expand(s, h, -1).clone()  # [S, H, K]
    else:
        pred_states = advance_states(last_state, actions, advance)  # [S, H, K]
    pred_states = pred_states.to(device)
    actions = actions.float().to(device)
    if reference or not _supports_cache(predictor):
        preds = _imagine_full_prefix(predictor, context, actions, pred_states, normalize_inputs,
                                     use_autocast and not reference, reference)
    else:
        preds = _imagine_cached(predictor, context, actions, pred_states, normalize_inputs, use_autocast)
    return preds, pred_states


def _imagine_full_prefix(
    predictor: Predictor, context: Context, actions: torch.Tensor, pred_states: torch.Tensor,
    normalize_inputs: bool, use_autocast: bool, reference: bool,
) -> torch.Tensor:
    """Step k feeds all C + k frames again and keeps the newest prediction (official planner)."""
    s, h, _ = actions.shape
    c = context.feats.shape[0]
    device = context.feats.device
    ctx_feats = context.feats.float().expand(s, *context.feats.shape)  # [S, C, N, D]
    all_actions = torch.cat([context.actions.float().to(device).expand(s, c - 1, -1), actions], dim=1)  # [S, C-1+H, A]
    all_states = torch.cat([context.states.float().to(device).expand(s, c, -1), pred_states[:, :-1]], dim=1)  # [S, C+H-1, K]
    kwargs = {"reference": True} if reference and _supports_cache(predictor) else {}

    feats = ctx_feats
    preds = []
    for k in range(h):
        t = c + k  # frames fed this step
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_autocast), torch.no_grad():
            out = predictor(feats, all_actions[:, :t], all_states[:, :t], **kwargs)  # [S, t, N, D]
        raw = out[:, -1:].float()  # [S, 1, N, D]: prediction of frame t
        normed = normalize_reps(raw)
        preds.append(normed)
        if k + 1 < h:
            feats = torch.cat([feats, normed if normalize_inputs else raw], dim=1)  # [S, t+1, N, D]
    return torch.cat(preds, dim=1)


def _imagine_cached(
    predictor: Predictor, context: Context, actions: torch.Tensor, pred_states: torch.Tensor,
    normalize_inputs: bool, use_autocast: bool,
) -> torch.Tensor:
    """Key/value-cached unroll: one predictor step per horizon step over that step's tokens only.

    What does not depend on a candidate runs once at batch 1: the observed frames before the last
    one (with their executed actions) fill the cache for every candidate, and the last observed
    frame's features and state are embedded once and broadcast. Frame tokens attend to their own
    step's action token, so everything after the first layer of a candidate step is per candidate.
    """
    s, h, _ = actions.shape
    c, n = context.feats.shape[:2]
    device = context.feats.device
    ctx_feats = context.feats.float()  # [C, N, D]
    ctx_states = context.states.float().to(device)  # [C, K]
    ctx_actions = context.actions.float().to(device)  # [C-1, A]
    preds = []
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_autocast):
        cache = predictor.new_kv_cache(s, c + h - 1, n, device=device)
        for t in range(c - 1):  # observed prefix: identical for every candidate
            predictor.decode_step(ctx_feats[t : t + 1], ctx_actions[t : t + 1], ctx_states[t : t + 1], cache, project=False)
        feats, state = ctx_feats[c - 1 : c], ctx_states[c - 1 : c]  # [1, N, D], [1, K]: shared by all candidates
        for k in range(h):
            raw = predictor.decode_step(feats, actions[:, k], state, cache).float()  # [S, N, D]: frame c + k
            normed = normalize_reps(raw)
            preds.append(normed)
            feats, state = (normed if normalize_inputs else raw), pred_states[:, k]
    return torch.stack(preds, dim=1)  # [S, H, N, D]
