"""A goal-conditioned action proposal on frozen features (``simjepa train-proposal``).

Why: flat CEM over a 2-step horizon cannot see a push or a grasp happen, so from one goal image its
energy pulls the arm into the goal's arm pose. A small MLP that maps (current features, the arm's
proprioception, goal features) to the next few actions, trained by behaviour cloning with hindsight
goals on the same feature caches ``simjepa train`` uses, proposes where the search should look; the
planner's L1 energy still decides (TD-MPC2 seeds its MPPI with a policy the same way; a GC-IDM
distilled from LeWM features plays the same role).

Inputs per image: the layer-normed features ``[N, D]`` of one frame are reduced to a vector in one of
two ways (``head``). ``"pooled"``: the mean over all patches plus a ``pool_grid x pool_grid`` grid of cell
means (``(1 + g*g) * D`` numbers), so the network sees where things are without taking every patch
token. ``"attentive"``: ``queries`` learned queries cross-attend over every token
(:class:`world_model.attentive.AttentivePool`, shared by the current frame and the goal), which can pick
out a small object that cell means dilute into its neighbours. The network takes
``[current, goal, goal - current, normalised proprio]`` (with ``proprio_delta``, the proprio's change since the
previous observation too: a velocity for envs whose ``state[:7]`` holds none, such as Pusher-v5's joint
angles under torque control) and outputs ``horizon`` actions in
``[-action_bound, action_bound]``: the largest ``|action|`` in the training data, at least 1. Our envs
and Reacher-v5 act in [-1, 1]; Pusher-v5's torques reach 2, and a proposal squashed into [-1, 1] could
not express the scripted controller's strongest torques at all.

Training: episode ``e``, step ``t``, goal frame ``g`` in ``(t, T]`` (the last frame with probability
``last_frame_prob``, else uniform): predict ``actions[t : t + horizon]`` (steps past the episode end
are masked), L1 loss.

Several modes (``modes`` K > 1): the network proposes K action sequences and scores them; training is
multiple-choice learning (winner takes most): only the sequence closest to the label learns from it
(the others with weight ``MODE_SPILL``, so none is left untrained), and a cross-entropy teaches the
scores which one that was; acting takes the best-scored one. Why: a teacher that decides by
thresholds (Pusher-v5's scripted controller picks a side of the object, a turn of the fork) gives
opposite full torques on either side of a threshold; one L1 regressor must pass through every value
between them as its input crosses the threshold, and a network smooths that jump into torques near
zero: the arm can stall where a decision is due. K sequences can hold both branches and the scores'
argmax makes the jump.

Object read-out (``readout="object"``, with an object head): the MLP reads only the object head's estimates
(current, goal, their difference) and the proprio, not the frames' features. Why: on Pusher-v5 the
controller is clonable from joint angles, their change and the object's and goal's positions (DAgger on
the true state), while an MLP on a thousand feature numbers per image fitted its training episodes and
not the held-out ones; the bottleneck leaves the image only the part the task needs. The head is trained
by its own loss alone (its estimates reach the MLP detached).

Batches are drawn from a generator seeded by ``(seed, step)``, so a run killed and re-run resumes to the
same weights as an uninterrupted one (state in ``OUT.run/state.pt``).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from simjepa_core.errors import SimjepaError
from simjepa_core.state_layout import PROPRIO_DIM

from .attentive import AttentivePool
from .checkpoints import CheckpointError, read_model, save_model
from .data import split_episodes
from .training_loop import RunState, SkippedBatches, adamw, set_lr, warmup_cosine, write_row

MODE_SPILL = 0.05  # share of a label's weight the non-winning modes split (relaxed winner-takes-all)
MODE_SCORE_WEIGHT = 0.1  # weight of the modes' cross-entropy beside the action L1

PROPOSAL_KIND = "proposal"
HEADS = ("pooled", "attentive")
READOUTS = ("frames", "object")
STATE_FORMAT = "simjepa/proposal-state"


class ProposalError(SimjepaError):
    """Bad proposal input: caches that cannot train one, a run of other settings, a wrong file."""


@dataclass
class ProposalNetConfig:
    """Shape of the network (stored in the proposal file)."""

    feat_dim: int
    grid: tuple[int, int]
    action_dim: int = 7
    state_dim: int = PROPRIO_DIM
    horizon: int = 4
    pool_grid: int = 2
    hidden: int = 512
    depth: int = 3
    action_bound: float = 1.0  # outputs lie in [-action_bound, action_bound] (files before it: 1)
    proprio_delta: bool = False  # input also state[:S] - previous state[:S] (files before it: no)
    head: str = "pooled"  # how a frame's tokens become a vector: "pooled" | "attentive" (files before it: pooled)
    queries: int = 4  # the attentive head's learned queries
    object_dim: int = 0  # > 0: a linear head locates the task's object in each frame; its estimates feed the MLP
    modes: int = 1  # > 1: K proposed action sequences and a score for each; acting takes the best (files before it: 1)
    readout: str = "frames"  # what the MLP reads of the images: "frames" (features + object estimates) | "object" (files before it: frames)

    @property
    def object_in(self) -> int:
        """MLP inputs from the object head: current, goal and their difference."""
        return 3 * self.object_dim

    @property
    def proprio_in(self) -> int:
        return self.state_dim * (2 if self.proprio_delta else 1)

    @property
    def frame_dim(self) -> int:
        """Numbers per image the MLP sees."""
        if self.head == "attentive":
            return self.queries * self.feat_dim
        return (1 + self.pool_grid * self.pool_grid) * self.feat_dim

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ProposalNetConfig":
        d = dict(d)
        d["grid"] = tuple(int(g) for g in d["grid"])
        return cls(**d)


def pool_features(feats: torch.Tensor, grid: tuple[int, int], pool_grid: int) -> torch.Tensor:
    """Layer-normed features ``[..., N, D]`` (N = grid h * w) -> ``[..., (1 + g*g) * D]``: patch mean + cell means.

    The layer norm is applied here (without affine), so raw cache features and the planner's
    already layer-normed ones give the same input.
    """
    h, w = grid
    if feats.shape[-2] != h * w:
        raise ProposalError(f"features have {feats.shape[-2]} tokens per frame, the proposal expects a {h}x{w} grid")
    x = F.layer_norm(feats.float(), feats.shape[-1:])
    lead = x.shape[:-2]
    d = x.shape[-1]
    mean = x.mean(-2)
    cells = x.reshape(-1, h, w, d).permute(0, 3, 1, 2)  # [B, D, h, w]
    cells = F.adaptive_avg_pool2d(cells, pool_grid).permute(0, 2, 3, 1).reshape(*lead, pool_grid * pool_grid * d)
    return torch.cat([mean, cells], dim=-1)


def frame_input(feats: torch.Tensor, config: ProposalNetConfig) -> torch.Tensor:
    """Features ``[..., N, D]`` -> what the network takes per frame: the pooled vector ``[..., P]`` (pooled head)
    or the layer-normed tokens ``[..., N, D]`` (attentive head, pooled inside the network)."""
    if config.head == "attentive":
        h, w = config.grid
        if feats.shape[-2] != h * w:
            raise ProposalError(f"features have {feats.shape[-2]} tokens per frame, the proposal expects a {h}x{w} grid")
        return F.layer_norm(feats.float(), feats.shape[-1:])
    return pool_features(feats, config.grid, config.pool_grid)


def proprio_input(state: torch.Tensor, prev: torch.Tensor | None, delta: bool) -> torch.Tensor:
    """``[..., S]`` proprio (and the previous step's) -> the network's proprio input ``[..., S]`` or ``[..., 2S]``.

    With ``delta`` the change since ``prev`` is appended; ``prev=None`` (an episode's first step) counts
    as no change, as training sees step 0.
    """
    if not delta:
        return state
    return torch.cat([state, state - (state if prev is None else prev)], dim=-1)


class ProposalNet(nn.Module):
    """``(current [B, P] or [B, N, D], proprio input [B, S or 2S], goal like current) -> actions [B, H, A]`` in
    +-``action_bound``; frames as :func:`frame_input` makes them."""

    def __init__(self, config: ProposalNetConfig) -> None:
        super().__init__()
        if config.head not in HEADS:
            raise ProposalError(f"head={config.head!r}: use one of {', '.join(HEADS)}")
        if config.readout not in READOUTS:
            raise ProposalError(f"readout={config.readout!r}: use one of {', '.join(READOUTS)}")
        if config.readout == "object" and not config.object_dim:
            raise ProposalError("readout='object' needs an object head (object_dim > 0; train with --locate-object)")
        self.config = config
        p = config.frame_dim
        if config.head == "attentive":
            self.pool = AttentivePool(config.feat_dim, config.grid[0] * config.grid[1], queries=config.queries)
        if config.object_dim:
            self.locate = nn.Linear(p, config.object_dim)  # frame vector -> normalised object position
        frames_in = 3 * p if config.readout == "frames" else 0
        layers: list[nn.Module] = [nn.Linear(frames_in + config.proprio_in + config.object_in, config.hidden),
                                   nn.LayerNorm(config.hidden), nn.GELU()]
        for _ in range(config.depth - 1):
            layers += [nn.Linear(config.hidden, config.hidden), nn.LayerNorm(config.hidden), nn.GELU()]
        scores = config.modes if config.modes > 1 else 0
        layers.append(nn.Linear(config.hidden, config.modes * config.horizon * config.action_dim + scores))
        self.mlp = nn.Sequential(*layers)
        # proprio normalisation, fitted on the training data (saved with the weights)
        self.register_buffer("state_mean", torch.zeros(config.proprio_in))
        self.register_buffer("state_std", torch.ones(config.proprio_in))
        if config.object_dim:  # the object head's label normalisation, fitted on the training data
            self.register_buffer("object_mean", torch.zeros(config.object_dim))
            self.register_buffer("object_std", torch.ones(config.object_dim))

    def forward(self, cur: torch.Tensor, state: torch.Tensor, goal: torch.Tensor,
                with_object: bool = False, all_modes: bool = False) -> Any:
        """Actions ``[B, H, A]`` (of the best-scored mode); ``all_modes``: every mode's ``[B, K, H, A]`` and
        their scores ``[B, K]`` instead (training). ``with_object`` also returns the object head's normalised
        estimates for the current frame and the goal (``[B, O]`` each; training's auxiliary loss)."""
        s = (state.float() - self.state_mean) / self.state_std
        if self.config.head == "attentive":
            cur, goal = self.pool(cur), self.pool(goal)  # [B, K*D] each
        parts = [cur, goal, goal - cur, s] if self.config.readout == "frames" else [s]
        obj_cur = obj_goal = None
        if self.config.object_dim:
            obj_cur, obj_goal = self.locate(cur), self.locate(goal)  # [B, O] each
            # detached: the head learns only to locate; the MLP reads its estimates as features
            parts += [obj_cur.detach(), obj_goal.detach(), (obj_goal - obj_cur).detach()]
        c = self.config
        raw = self.mlp(torch.cat(parts, dim=-1))  # [B, K*H*A (+ K scores)]
        n = c.modes * c.horizon * c.action_dim
        modes = (c.action_bound * torch.tanh(raw[..., :n])).reshape(*raw.shape[:-1], c.modes, c.horizon, c.action_dim)
        scores = raw[..., n:] if c.modes > 1 else raw.new_zeros(*raw.shape[:-1], 1)  # [B, K]
        if all_modes:
            actions = (modes, scores)
        else:
            best = scores.argmax(-1)  # [B]
            actions = torch.take_along_dim(modes, best[..., None, None, None], dim=-3).squeeze(-3)  # [B, H, A]
        if with_object:
            if obj_cur is None:
                raise ProposalError("this proposal has no object head (trained without --locate-object)")
            return actions, obj_cur, obj_goal
        return actions

    @torch.no_grad()
    def propose(self, feats: torch.Tensor, state: torch.Tensor | np.ndarray, goal_feats: torch.Tensor,
                prev_state: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
        """One frame's features ``[N, D]``, its proprio ``[>=S]`` (and the previous observation's, ``None`` at an
        episode's start) and the goal's features ``[N, D]`` -> ``[H, A]``."""
        c = self.config
        dev = self.state_mean.device

        def proprio(x: Any) -> torch.Tensor:
            return torch.as_tensor(np.asarray(x, dtype=np.float32)[: c.state_dim], device=dev)[None]

        cur = frame_input(feats.to(dev)[None], c)
        goal = frame_input(goal_feats.to(dev)[None], c)
        st = proprio_input(proprio(state), None if prev_state is None else proprio(prev_state), c.proprio_delta)
        return self(cur, st, goal)[0].cpu()

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


# --- loading ----------------------------------------------------------------------------------------
def load_proposal(path: str | Path) -> ProposalNet:
    """A proposal file written by :func:`train_proposal`; ``.encoder`` holds the encoder identity it needs."""
    return proposal_from_dict(read_model(path, PROPOSAL_KIND), f"proposal {path}")


def proposal_from_dict(obj: Mapping[str, Any], what: str) -> ProposalNet:
    """The network of a proposal file's dict (a file of its own, or one embedded in a world-model file)."""
    try:
        net = ProposalNet(ProposalNetConfig.from_dict(obj["config"]))
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"{what}: proposal config unreadable ({exc}); re-train it with `simjepa train-proposal`") from None
    from .checkpoints import load_weights

    load_weights(net, obj["state_dict"], what)
    net.encoder = dict(obj.get("encoder") or {})  # type: ignore[attr-defined]
    net.info = dict(obj.get("info") or {})  # type: ignore[attr-defined]
    return net.eval()


# --- data -------------------------------------------------------------------------------------------
@dataclass
class PooledEpisode:
    """One episode's frame inputs ``[T+1, P]`` or ``[T+1, N, D]`` (fp16, :func:`frame_input`), proprio ``[T+1, S]``
    and actions ``[T, A]``."""

    pooled: torch.Tensor
    proprio: torch.Tensor
    actions: torch.Tensor
    object: torch.Tensor | None = None  # [T+1, O]: the object's position (simulator state), training labels only


LABELS = ("executed", "expert")


def _slice_width(sl: slice) -> int:
    """How many state entries ``sl`` picks (states are far shorter than the bound)."""
    return len(range(*sl.indices(10_000)))


def _episode_input(feats: np.ndarray, shape: ProposalNetConfig, chunk: int = 8) -> torch.Tensor:
    """One episode's :func:`frame_input`, fp16, computed ``chunk`` frames at a time into one preallocated tensor.

    Why: converting a whole episode to fp32 at once left the heap fragmented between the kept fp16 tensors,
    and pooling a 5000-episode cache peaked at twice the memory it keeps. Per-frame results are the same.
    """
    out = None
    with torch.no_grad():
        for start in range(0, len(feats), chunk):
            part = frame_input(torch.from_numpy(np.asarray(feats[start:start + chunk], dtype=np.float32)), shape).half()
            if out is None:
                out = torch.empty((len(feats), *part.shape[1:]), dtype=torch.float16)
            out[start:start + len(part)] = part
    assert out is not None
    return out


def pool_sources(sources: Sequence[Any], pool_grid: int, progress: bool = False,
                 labels: str = "executed", head: str = "pooled",
                 object_slices: Sequence[slice | None] | None = None) -> tuple[list[PooledEpisode], dict[str, Any]]:
    """Pool every episode of the feature caches (``FeatureCache``-like: ``episodes``, ``episode(i)``,
    ``grid``, ``dim``, ``encoder``) once; all must come from one encoder and share grid and dim.

    ``labels="expert"``: an episode's targets are the expert's clean actions where the cache has them
    (``collect --policy dart``), else the actions executed (the same thing for ``--policy expert``).
    ``head="attentive"`` keeps every token (layer-normed) instead of pooling. ``object_slices`` (one per source,
    ``None`` for a source without an object) picks each episode's object position out of its states: the
    labels of the object head (``--locate-object``); all given slices must have one length."""
    if labels not in LABELS:
        raise ProposalError(f"labels={labels!r}: use one of {', '.join(LABELS)}")
    if not sources:
        raise ProposalError("no feature caches given; pass --features DIR (a cache written by `simjepa encode`)")
    first = sources[0]
    for src in sources[1:]:
        if src.encoder.get("weights_hash") != first.encoder.get("weights_hash"):
            raise ProposalError(
                f"feature caches come from different encoders ({first.encoder.get('name')!r} "
                f"[{first.encoder.get('weights_hash')}] and {src.encoder.get('name')!r} [{src.encoder.get('weights_hash')}]); "
                "encode every dataset with the same --encoder"
            )
        if tuple(src.grid) != tuple(first.grid) or int(src.dim) != int(first.dim):
            raise ProposalError(f"feature caches differ in grid or dim ({first.grid}/{first.dim} vs {src.grid}/{src.dim})")
    grid = tuple(int(g) for g in first.grid)
    if head not in HEADS:
        raise ProposalError(f"head={head!r}: use one of {', '.join(HEADS)}")
    shape = ProposalNetConfig(feat_dim=int(first.dim), grid=grid, pool_grid=pool_grid, head=head)
    if head == "pooled" and min(grid) < pool_grid:
        raise ProposalError(f"pool grid {pool_grid} is finer than the feature grid {grid}; use a smaller --pool-grid")
    slices = list(object_slices) if object_slices is not None else [None] * len(sources)
    if len(slices) != len(sources):
        raise ProposalError(f"{len(slices)} object slices for {len(sources)} feature caches")
    widths = {_slice_width(sl) for sl in slices if sl is not None}
    if len(widths) > 1:
        raise ProposalError(f"object positions of different lengths {sorted(widths)} across caches")
    jobs = [(src, i, sl) for src, sl in zip(sources, slices) for i in src.episodes]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc="pool features", unit="ep")
    episodes: list[PooledEpisode] = []
    action_dim = None
    bound = 1.0
    labelled = 0
    for src, i, sl in jobs:
        feats, actions, states = src.episode(i)
        expert = src.expert_actions(i) if labels == "expert" and hasattr(src, "expert_actions") else None
        if expert is not None:
            actions, labelled = expert, labelled + 1
        if action_dim is None:
            action_dim = int(actions.shape[-1])
        if states.shape[-1] < PROPRIO_DIM or actions.shape[0] < 1:
            raise ProposalError(f"episode {i} of {getattr(src, 'root', src)} has state dim {states.shape[-1]} or no "
                                f"actions; the proposal needs the arm's 7-D proprio and at least one step")
        pooled = _episode_input(feats, shape)
        obj = None
        if sl is not None:
            obj = torch.from_numpy(np.asarray(states[:, sl], np.float32))
            if obj.shape[-1] == 0 or obj.shape[-1] != _slice_width(sl):
                raise ProposalError(f"episode {i} of {getattr(src, 'root', src)} has state dim {states.shape[-1]}: "
                                    f"no object position at {sl.start}:{sl.stop}")
        episodes.append(PooledEpisode(pooled, torch.from_numpy(np.asarray(states[:, :PROPRIO_DIM], np.float32)),
                                      torch.from_numpy(np.asarray(actions, np.float32)), obj))
        bound = max(bound, float(np.abs(actions).max()))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    meta = {"grid": list(grid), "feat_dim": int(first.dim), "action_dim": int(action_dim or 7), "action_bound": bound,
            "encoder": {k: first.encoder[k] for k in ("name", "config", "weights_hash") if k in first.encoder},
            "expert_labelled_episodes": labelled, "object_dim": widths.pop() if widths else 0,
            "object_episodes": sum(e.object is not None for e in episodes),
            "sources": [str(getattr(s, "root", s)) for s in sources], "episodes": len(episodes)}
    return episodes, meta


def sample_batch(episodes: Sequence[PooledEpisode], ids: Sequence[int], size: int, horizon: int, last_frame_prob: float,
                 gen: torch.Generator, proprio_delta: bool = False, object_dim: int = 0) -> tuple[torch.Tensor, ...]:
    """Hindsight-goal batch: ``(cur [B, P], proprio input [B, S or 2S], goal [B, P], actions [B, H, A], mask [B, H])``;
    with ``object_dim`` also the object's position at the current and goal frames ``[B, O]`` each and which
    samples have one ``[B]`` (the object head's labels). The random draws are the same either way."""
    pick = torch.randint(len(ids), (size,), generator=gen)
    u = torch.rand(size, 3, generator=gen)
    cur, st, goal, act, mask, obj_cur, obj_goal, obj_mask = [], [], [], [], [], [], [], []
    no_object = torch.zeros(object_dim)
    for b in range(size):
        ep = episodes[ids[int(pick[b])]]
        n = ep.actions.shape[0]  # T
        t = min(int(u[b, 0] * n), n - 1)
        g = n if float(u[b, 1]) < last_frame_prob else t + 1 + min(int(u[b, 2] * (n - t)), n - t - 1)
        a = ep.actions[t:t + horizon]
        m = torch.zeros(horizon)
        m[: a.shape[0]] = 1.0
        if a.shape[0] < horizon:
            a = torch.cat([a, a.new_zeros(horizon - a.shape[0], a.shape[1])])
        cur.append(ep.pooled[t])
        goal.append(ep.pooled[g])
        st.append(proprio_input(ep.proprio[t], ep.proprio[t - 1] if t > 0 else None, proprio_delta))
        act.append(a)
        mask.append(m)
        if object_dim:
            has = ep.object is not None
            obj_cur.append(ep.object[t] if has else no_object)
            obj_goal.append(ep.object[g] if has else no_object)
            obj_mask.append(float(has))
    batch = (torch.stack(cur).float(), torch.stack(st), torch.stack(goal).float(), torch.stack(act), torch.stack(mask))
    if not object_dim:
        return batch
    return (*batch, torch.stack(obj_cur), torch.stack(obj_goal), torch.tensor(obj_mask))


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return ((pred - target).abs().mean(-1) * mask).sum() / mask.sum().clamp_min(1.0)


def action_losses(out: Any, target: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """``loss`` and ``l1`` (of the actions acting would take) for the network's ``all_modes`` output
    ``(modes [B, K, H, A], scores [B, K])`` against ``target [B, H, A]`` with step ``mask [B, H]``.

    One mode: plain masked L1. Several: relaxed winner-takes-all L1 plus the scores' cross-entropy
    towards the winner (module docstring); ``l1`` is the best-scored mode's, what acting executes."""
    modes, scores = out
    if modes.shape[1] == 1:  # exactly the loss of proposals before modes (every valid step weighs the same)
        l1 = masked_l1(modes[:, 0], target, mask)
        return {"loss": l1, "l1": l1}
    per = ((modes - target[:, None]).abs().mean(-1) * mask[:, None]).sum(-1) / mask.sum(-1, keepdim=True).clamp_min(1.0)  # [B, K]
    k = per.shape[-1]
    win = per.detach().argmin(-1)  # [B]
    weight = torch.full_like(per, MODE_SPILL / (k - 1)).scatter(-1, win[:, None], 1.0 - MODE_SPILL)
    fit = (per * weight).sum(-1).mean()
    score = F.cross_entropy(scores, win)
    chosen = per.gather(-1, scores.detach().argmax(-1, keepdim=True)).mean()
    return {"loss": fit + MODE_SCORE_WEIGHT * score, "l1": chosen.detach(), "l1_best_mode": per.min(-1).values.mean().detach()}


# --- training ---------------------------------------------------------------------------------------
@dataclass
class ProposalTrainConfig:
    """Training settings. ``out`` is the final proposal file; the resumable run state lives in ``out.run/``."""

    out: str
    horizon: int = 4
    pool_grid: int = 2
    hidden: int = 512
    depth: int = 3
    steps: int = 3000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup: int = 100
    last_frame_prob: float = 0.5
    proprio_delta: bool = False  # see ProposalNetConfig; for torque-controlled envs whose state[:7] holds no velocity
    labels: str = "executed"  # or "expert": the expert's clean actions of `collect --policy dart` episodes (DART)
    head: str = "pooled"  # or "attentive": learned queries over every token (see ProposalNetConfig)
    queries: int = 4
    modes: int = 1  # > 1: K proposed action sequences trained by winner-takes-all (see the module docstring)
    # > 0: weight of an auxiliary L1 loss that trains a head to locate the task's object (its position in the
    # training episodes' simulator state, a label like the expert's actions; never an input when acting)
    locate_object: float = 0.0
    readout: str = "frames"  # or "object": the MLP reads only the object head's estimates and the proprio (needs locate_object)
    val_fraction: float = 0.1
    seed: int = 0
    ckpt_every: int = 250
    stop_after: int | None = None  # stop (as if killed) after this many steps; for tests and time-boxed runs
    progress: bool = True

    def check(self) -> None:
        for name in ("horizon", "pool_grid", "hidden", "depth", "steps", "batch_size", "ckpt_every", "queries", "modes"):
            if int(getattr(self, name)) < 1:
                raise ProposalError(f"{name}={getattr(self, name)} must be >= 1")
        if not 0.0 <= self.last_frame_prob <= 1.0:
            raise ProposalError(f"last_frame_prob={self.last_frame_prob} must be in [0, 1]")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ProposalError(f"val_fraction={self.val_fraction} must be in [0, 1)")
        if self.labels not in LABELS:
            raise ProposalError(f"labels={self.labels!r}: use one of {', '.join(LABELS)}")
        if self.head not in HEADS:
            raise ProposalError(f"head={self.head!r}: use one of {', '.join(HEADS)}")
        if not self.lr > 0:
            raise ProposalError(f"lr={self.lr} must be > 0")
        if not self.locate_object >= 0:
            raise ProposalError(f"locate_object={self.locate_object} must be >= 0")
        if self.readout not in READOUTS:
            raise ProposalError(f"readout={self.readout!r}: use one of {', '.join(READOUTS)}")
        if self.readout == "object" and not self.locate_object > 0:
            raise ProposalError("readout='object' reads the object head's estimates: give it a weight with --locate-object")
        if Path(self.out).is_dir():
            raise ProposalError(f"--out {self.out} is a directory; pass a file name such as {Path(self.out) / 'proposal.pt'}")

    def identity(self) -> dict[str, Any]:
        """Settings that must match for a run to resume (not the step budget or stop point)."""
        ident = {k: v for k, v in asdict(self).items() if k not in ("out", "steps", "stop_after", "progress", "ckpt_every")}
        if self.head == "pooled":  # runs started before the option existed resume
            del ident["head"], ident["queries"]
        for name, default in (("proprio_delta", False), ("labels", "executed"), ("locate_object", 0.0), ("modes", 1),
                              ("readout", "frames")):
            if ident[name] == default:  # runs started before the option existed resume
                del ident[name]
        return ident


def _losses(net: ProposalNet, batch: Sequence[torch.Tensor], cfg: ProposalTrainConfig) -> dict[str, torch.Tensor]:
    """``loss`` (what is minimised), ``l1`` (the actions' L1) and, with an object head, ``object_m``: its mean
    absolute error in the state's units (metres for our cubes) over the current and goal frames."""
    cur, st, goal, act, mask = batch[:5]
    if not net.config.object_dim:
        return action_losses(net(cur, st, goal, all_modes=True), act, mask)
    out, obj_cur, obj_goal = net(cur, st, goal, with_object=True, all_modes=True)
    acts = action_losses(out, act, mask)
    true_cur, true_goal, has = batch[5:]
    err = torch.cat([obj_cur - (true_cur - net.object_mean) / net.object_std,
                     obj_goal - (true_goal - net.object_mean) / net.object_std]).abs()  # [2B, O]
    w = torch.cat([has, has])[:, None]
    n = (w.sum() * err.shape[-1]).clamp_min(1.0)
    obj = (err * w).sum() / n
    metres = (err * net.object_std * w).sum() / n
    return {**acts, "loss": acts["loss"] + cfg.locate_object * obj, "object_m": metres.detach()}


def _val_loss(net: ProposalNet, episodes: Sequence[PooledEpisode], ids: Sequence[int],
              cfg: ProposalTrainConfig) -> dict[str, float | None]:
    """Held-out action L1 (``val_l1``) and, with an object head, its error locating the object (``val_object_m``)."""
    if not ids:
        return {"val_l1": None}
    gen = torch.Generator().manual_seed(cfg.seed + 7_777_777)  # the same held-out batch every time
    batch = sample_batch(episodes, ids, 1024, cfg.horizon, cfg.last_frame_prob, gen, cfg.proprio_delta, net.config.object_dim)
    with torch.no_grad():
        out = _losses(net, batch, cfg)
    row: dict[str, float | None] = {"val_l1": float(out["l1"])}
    if "l1_best_mode" in out:  # how close the nearest mode came: the gap to val_l1 is the scores' error
        row["val_l1_best_mode"] = float(out["l1_best_mode"])
    if "object_m" in out:
        row["val_object_m"] = float(out["object_m"])
    return row


def train_proposal(cfg: ProposalTrainConfig, sources: Sequence[Any],
                   object_slices: Sequence[slice | None] | None = None) -> dict[str, Any]:
    """Train (or resume) a proposal on feature caches; writes ``cfg.out`` when all steps are done.

    ``object_slices`` (one per source; ``None`` where the env has no object) say where each cache's states
    hold the object's position, for ``cfg.locate_object``.

    Returns a summary: ``steps``, ``train_l1``, ``val_l1``, ``params``; ``stopped_at`` when ``stop_after`` cut it.
    """
    cfg.check()
    torch.manual_seed(cfg.seed)
    if cfg.locate_object and not any(sl is not None for sl in (object_slices or [])):
        raise ProposalError("--locate-object: none of these caches records an object position (their envs name none); "
                            "train without it")
    episodes, meta = pool_sources(sources, cfg.pool_grid, progress=cfg.progress, labels=cfg.labels, head=cfg.head,
                                  object_slices=object_slices if cfg.locate_object else None)
    if cfg.labels == "expert" and not meta["expert_labelled_episodes"]:
        raise ProposalError("--labels expert: no episode of these caches recorded expert actions; collect some with "
                            "`simjepa collect --policy dart` and encode them")
    if not episodes:
        raise ProposalError("the feature caches hold no episodes; run `simjepa encode` first")
    net_cfg = ProposalNetConfig(feat_dim=meta["feat_dim"], grid=tuple(meta["grid"]), action_dim=meta["action_dim"],
                                action_bound=meta["action_bound"],
                                horizon=cfg.horizon, pool_grid=cfg.pool_grid, hidden=cfg.hidden, depth=cfg.depth,
                                proprio_delta=cfg.proprio_delta, head=cfg.head, queries=cfg.queries,
                                object_dim=meta["object_dim"], modes=cfg.modes, readout=cfg.readout)
    net = ProposalNet(net_cfg)
    all_states = torch.cat([proprio_input(e.proprio, torch.cat([e.proprio[:1], e.proprio[:-1]]), cfg.proprio_delta)
                            for e in episodes])  # the inputs training sees: step 0's previous state is itself
    net.state_mean.copy_(all_states.mean(0))
    net.state_std.copy_(all_states.std(0).clamp_min(1e-3))
    if net_cfg.object_dim:
        all_objects = torch.cat([e.object for e in episodes if e.object is not None])
        net.object_mean.copy_(all_objects.mean(0))
        net.object_std.copy_(all_objects.std(0).clamp_min(1e-3))
    train_ids, val_ids = split_episodes(range(len(episodes)), cfg.val_fraction, cfg.seed)
    opt = adamw([net], cfg.lr, cfg.weight_decay)

    run_dir = Path(str(cfg.out) + ".run")
    run_dir.mkdir(parents=True, exist_ok=True)
    identity = json.loads(json.dumps({**cfg.identity(), "data": meta["sources"], "episodes": meta["episodes"],
                                      "encoder_hash": meta["encoder"].get("weights_hash")}))
    run = RunState(run_dir / "state.pt", run_dir / "log.jsonl", STATE_FORMAT, identity, every=cfg.ckpt_every,
                   last=cfg.steps, error=ProposalError, what="proposal training state", where=str(run_dir))
    skipped = SkippedBatches(ProposalError, "the loss diverged; lower --lr and rerun with a new --out")
    step = 0
    state = run.load()
    if state is not None:  # batches are drawn from a generator seeded by (seed, step): no RNG state to restore
        step, skipped.count = run.restore(state, {"model": net}, opt, {})

    bar = None
    if cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=step, desc="train proposal", unit="step")
    t0 = time.perf_counter()
    last = None
    stop = cfg.steps if cfg.stop_after is None else min(cfg.steps, cfg.stop_after)
    net.train()
    with run.log(step) as log:
        while step < stop:
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
            batch = sample_batch(episodes, train_ids, cfg.batch_size, cfg.horizon, cfg.last_frame_prob, gen,
                                 cfg.proprio_delta, net_cfg.object_dim)
            set_lr(opt, warmup_cosine(step, cfg.lr, cfg.warmup, cfg.steps))
            losses = _losses(net, batch, cfg)
            loss = losses["loss"]
            step += 1
            if not torch.isfinite(loss):
                skipped.skip(step, "loss")
            else:
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                last = float(losses["l1"].detach())
            if bar is not None:
                bar.update(1)
                bar.set_postfix(l1=f"{last:.4f}" if last is not None else "-")
            if run.due(step):
                net.eval()
                write_row(log, {"step": step, "train_l1": last, **_val_loss(net, episodes, val_ids, cfg),
                                "lr": warmup_cosine(step - 1, cfg.lr, cfg.warmup, cfg.steps), "seconds": time.perf_counter() - t0})
                net.train()
                run.save(step, skipped.count, {"model": net}, opt, {})
    if bar is not None:
        bar.close()
    net.eval()
    if last is None:  # a re-run of a finished (or cut-at-this-step) run: no step taken here
        last = run.last_logged("train_l1")
    summary: dict[str, Any] = {"steps": step, "train_l1": last, "params": net.n_params(),
                               "expert_labelled_episodes": meta["expert_labelled_episodes"],
                               "train_episodes": len(train_ids), "val_episodes": len(val_ids)}
    if step < cfg.steps:
        run.save(step, skipped.count, {"model": net}, opt, {})
        summary["stopped_at"] = step
        return summary
    summary.update(_val_loss(net, episodes, val_ids, cfg))
    info = {"train": {k: v for k, v in asdict(cfg).items() if k not in ("progress", "stop_after")}, "data": meta["sources"],
            "summary": summary}
    save_model(cfg.out, PROPOSAL_KIND, asdict(net_cfg), net, encoder=meta["encoder"], info=info)
    return summary


def open_caches(dirs: Sequence[str | Path]) -> list[Any]:
    """Open feature caches (refusing missing or empty ones with a clear error)."""
    from .feature_cache import FeatureCache

    caches = [FeatureCache.open(d) for d in dirs]
    for c, d in zip(caches, dirs):
        if len(c) == 0:
            raise ProposalError(f"feature cache {d} holds no episodes; run `simjepa encode` to fill it")
    return caches
