"""The user-facing planning agent: observation + goal image in, one action out (receding-horizon MPC).

Each ``act`` encodes the current frame, plans a short action sequence with CEM against the
(cached) goal features, and returns its first action; the rest of the plan warm-starts the next
search. Frames of any size work: the world model's ``encode`` resizes them to its ``image_size``
(the same resize its training features went through, so planning sees what training saw).

Protocol ("image goal", the default): the agent reads ``obs["pixels"]``, ``obs["state"][:7]`` (the
arm's own proprioception) and the goal's image, nothing else. A goal dict's ``state`` (the goal
configuration's simulator state, which a real user does not have) is ignored unless the agent is
built with ``privileged_goal_state=True``, the privileged protocol that the energy's state term
(``state_weight``) needs.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from envs.scene import pixels_key

from .cem import shift_plan
from .energy import normalize_reps
from .errors import InvalidObservationError, PlannerConfigError
from .imagine import Context
from .planner import LatentPlanner, PlannerConfig, PlanResult
from .protocols import Predictor

# Key of a model's planner defaults that holds per-task overrides: {env_id: {name: value}}.
PER_ENV_KEY = "per_env"
NO_PROPOSAL = "none"  # Agent.from_pretrained(proposal="none") / --proposal none: flat CEM, embedded proposal unused

GOAL_CACHE_SIZE = 32

# Protocol labels written into every result file (metrics.json, results.json).
IMAGE_GOAL = "image-goal"


def tuned_planner_defaults(planner: Mapping[str, Any] | None, env_id: str | None = None) -> dict[str, Any]:
    """A model's recorded planner defaults as flat settings for ``PlannerConfig.from_flat``.

    The general defaults, then the ones recorded for ``env_id`` under ``planner["per_env"]``. Names this
    version does not know are dropped with a warning: a model file from another version must not block
    planning (user overrides, by contrast, stay strict in ``from_flat``).
    """
    tuned = dict(planner or {})
    per_env = tuned.pop(PER_ENV_KEY, None) or {}
    if env_id is not None:
        tuned.update(per_env.get(env_id, {}))
    unknown = sorted(set(tuned) - PlannerConfig.known_names())
    if unknown:
        warnings.warn(f"ignoring planner defaults this version does not know: {unknown}", stacklevel=3)
    return {k: v for k, v in tuned.items() if k not in unknown}


class WorldModelLike(Protocol):
    """What the agent needs from ``world_model.WorldModel``."""

    predictor: Predictor
    image_size: int
    planner: dict[str, Any]
    info: dict[str, Any]

    def encode(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor: ...


def _default_advance_state() -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None:
    try:
        from envs.proprio import advance_state
    except ImportError:  # envs without a kinematic model: states are held at the observed value
        return None
    return advance_state


def _check_frame(pixels: Any, what: str) -> np.ndarray:
    if isinstance(pixels, torch.Tensor):
        pixels = pixels.detach().cpu().numpy()
    if not isinstance(pixels, np.ndarray):
        raise InvalidObservationError(f"{what} pixels must be a uint8 array [H, W, 3], got {type(pixels).__name__}; pass the env's observation")
    if pixels.dtype != np.uint8:
        raise InvalidObservationError(f"{what} pixels must have dtype uint8, got {pixels.dtype}; convert with (x * 255).round().astype(np.uint8)")
    if pixels.ndim != 3 or pixels.shape[-1] != 3 or min(pixels.shape[:2]) < 1:
        raise InvalidObservationError(f"{what} pixels must have shape [H, W, 3], got {tuple(pixels.shape)}; pass one RGB frame")
    return pixels


def _check_state(state: Any, what: str, state_dim: int) -> np.ndarray:
    try:
        arr = np.asarray(state.detach().cpu() if isinstance(state, torch.Tensor) else state, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidObservationError(f"{what} state is not numeric ({exc}); pass a float vector") from None
    if arr.ndim != 1 or arr.shape[0] < state_dim:
        raise InvalidObservationError(f"{what} state must be a vector with at least {state_dim} entries, got shape {arr.shape}")
    arr = arr[:state_dim]  # the arm's proprioception; the rest (object, target) is not the planner's to read
    if not np.all(np.isfinite(arr)):
        raise InvalidObservationError(f"{what} state contains NaN or inf; reset the environment")
    return arr


def _split(obs: Any, what: str, cameras: tuple[str, ...] = ("front",)) -> tuple[list[np.ndarray], Any]:
    """The checked frame of every camera the model plans with (``pixels``, then ``pixels_<name>``), and the state."""
    return _frames(obs, what, cameras), obs.get("state")


def _frames(obs: Any, what: str, cameras: tuple[str, ...] = ("front",)) -> list[np.ndarray]:
    """The checked frame of every camera the model plans with; nothing else of ``obs`` is read."""
    if not isinstance(obs, Mapping) or "pixels" not in obs:
        raise InvalidObservationError(f"{what} must be a dict with 'pixels' (and 'state'), got {type(obs).__name__}")
    frames = []
    for i in range(len(cameras)):
        key = pixels_key(cameras, i)
        if key not in obs:
            raise InvalidObservationError(
                f"{what} lacks {key!r}: this world model plans with cameras {', '.join(cameras)}; make the env with "
                f"make_env(env_id, cameras={tuple(cameras)!r})"
            )
        frames.append(_check_frame(obs[key], what if i == 0 else f"{what} {key}"))
    return frames


def as_goal(goal: Any) -> Mapping[str, Any]:
    """A goal as a dict: an image array (numpy or torch) becomes ``{"pixels": image}``; a dict stays as is."""
    if isinstance(goal, (np.ndarray, torch.Tensor)):
        return {"pixels": goal}
    return goal


class Agent:
    """Latent MPC agent: ``act(obs, goal) -> action [A] float32``.

    ``action_scale``: per-dim action maxima of the env (``env.unwrapped.action_scale``); with the
    kinematic model ``advance_state(state, action, action_scale)`` it gives the proprioceptive state
    of imagined frames. Without one, the world model's ``info["action_scale"]`` is used, and failing
    that, imagined states are held at the observed state (with a warning).

    ``proposal``: an initial-mean provider (:class:`planning.proposal.InitialMeanProvider`, e.g. a
    trained proposal): at each re-plan its actions for the horizon are the CEM's initial mean (instead
    of the warm start) and the anchor ``anchor_fraction`` of the samples are drawn around; the energy
    still decides. It sees the first camera's features, ``state[:7]`` and the goal image's features.
    With the planner setting ``search="none"`` its plan is executed as it is (no world-model search).

    ``high_level``: a :class:`planning.hierarchy.HighLevelPlanner` (a macro-step model): at each
    re-plan it picks the latent sub-goal the search below steers to instead of the goal image's
    features (two-level planning). It sees what the low level sees.

    ``privileged_goal_state``: read the goal dict's ``state`` (the goal configuration's simulator
    state) for the energy's state term. Off by default (image-goal protocol): the goal's ``state`` is
    then never read, so garbage there changes nothing. ``state_weight > 0`` needs it on.
    """

    def __init__(
        self,
        world_model: WorldModelLike,
        config: PlannerConfig | None = None,
        action_scale: np.ndarray | None = None,
        advance_state: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None,
        privileged_goal_state: bool = False,
        proposal: Any = None,
        high_level: Any = None,
    ) -> None:
        self.world_model = world_model
        self.proposal = proposal
        self.high_level = high_level
        self.cameras: tuple[str, ...] = tuple(getattr(world_model, "cameras", None) or ("front",))
        self.config = config or PlannerConfig.from_flat(tuned_planner_defaults(getattr(world_model, "planner", None)))
        if self.config.search == "none" and (proposal is None or high_level is not None):
            raise PlannerConfigError(
                "search='none' executes the learned proposal's plan with no world-model search: it needs a proposal "
                "(a model with one embedded, or --proposal FILE) and no macro model; use search='cem' otherwise"
            )
        self.privileged_goal_state = bool(privileged_goal_state)
        if self.config.energy.state_weight and not self.privileged_goal_state:
            raise PlannerConfigError(
                f"state_weight={self.config.energy.state_weight} scores the goal's simulator state, a privileged input "
                "the image-goal protocol does not have; leave it 0, or ask for the privileged protocol "
                "(Agent(..., privileged_goal_state=True); on the CLI --subgoals expert-replay)"
            )
        info = getattr(world_model, "info", {}) or {}
        pcfg = getattr(world_model.predictor, "config", None)
        self.action_dim = int(getattr(pcfg, "action_dim", info.get("action_dim", 7)))
        self.state_dim = int(getattr(pcfg, "state_dim", info.get("state_dim", 7)))
        self._advance_fn = advance_state if advance_state is not None else _default_advance_state()
        params = getattr(world_model.predictor, "parameters", None)
        first = next(iter(params()), None) if callable(params) else None
        self.device = first.device if first is not None else torch.device("cpu")  # features go where the predictor is
        self._goal_cache: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self._warned = False
        self.set_action_scale(action_scale if action_scale is not None else info.get("action_scale"))
        self.reset()

    @classmethod
    def from_pretrained(
        cls, model: str | Path = "default", action_scale: np.ndarray | None = None, env_id: str | None = None,
        privileged_goal_state: bool = False, proposal: str | Path | None = None, macro_model: str | Path | None = None,
        macro_overrides: Mapping[str, Any] | None = None, device: str = "cpu", **planner_overrides: Any,
    ) -> "Agent":
        """Load ``world_model.load_world_model(model)``; its tuned ``planner`` defaults, then overrides, apply.

        ``env_id``: a model may record a search size tuned for one task under ``planner["per_env"][env_id]``
        (e.g. a bigger search for a task with short episodes); they apply on top of the model's general
        defaults and under ``planner_overrides``. The shipped default model records a bigger search for Reach.
        ``privileged_goal_state``: see the class doc (off: the image-goal protocol).
        ``proposal``: a proposal file (``simjepa train-proposal``) seeding every search (see the class doc);
        ``None``: the proposal embedded in the model file, if it has one (the default model v3 does);
        ``"none"``: no proposal at all (flat CEM).
        ``macro_model``: a macro-step world model (``simjepa train --macro-steps k``) as the high level of
        two-level planning, its search set by its recorded planner defaults and ``macro_overrides``.
        ``device``: where the world model runs (``"cuda"``: searches on a GPU); the proposal and the
        macro-step model run on the CPU, so they need ``device="cpu"``.
        """
        try:
            from world_model import load_world_model
        except ImportError:  # older layouts export it only from the bundle module
            from world_model.model_file import load_world_model

        use_embedded = proposal is None
        if proposal is not None and str(proposal) == NO_PROPOSAL:
            proposal = None
        check_device(device, "planner", proposal, macro_model)
        wm = load_world_model(model, device=device)
        config = PlannerConfig.from_flat(tuned_planner_defaults(getattr(wm, "planner", None), env_id), planner_overrides)
        from .proposal import embedded_prior, load_prior

        prior = None
        if proposal is not None:
            prior = load_prior(proposal, wm)
        elif use_embedded and device == "cpu":  # the proposal runs on the CPU only
            prior = embedded_prior(wm, str(model))
        high = None
        if macro_model is not None:
            from .hierarchy import load_high_level

            high = load_high_level(macro_model, wm, dict(macro_overrides or {}))
        return cls(wm, config, action_scale=action_scale, privileged_goal_state=privileged_goal_state, proposal=prior,
                   high_level=high)

    # -- state -------------------------------------------------------------------------------------
    def set_action_scale(self, action_scale: np.ndarray | None) -> None:
        """Bind the env's action maxima so imagined states follow the planned actions."""
        self.action_scale = None if action_scale is None else np.asarray(action_scale, dtype=np.float64).reshape(-1)
        advance = None
        if self.action_scale is not None and self._advance_fn is not None:
            advance = functools.partial(self._advance_fn, action_scale=self.action_scale)
        self.planner = LatentPlanner(self.world_model.predictor, advance, self.config)
        if self.high_level is not None:
            self.high_level.bind(advance)

    def reset(self, action_scale: np.ndarray | None = None, action_box: tuple[float, float] | None = None) -> None:
        """Start a new episode: forget history and the previous plan, reseed the search.

        ``action_box``: for an env whose actions are not the arm's 7-D deltas (an adapted Gymnasium env's
        torques), its action bounds ``(low, high)``: the search then covers that box and treats every dim
        alike (no frozen rotation, no gripper dim). Pusher-v5's torques span [-2, 2]; a search kept in the
        arm's [-1, 1] could not use half of them.
        """
        if action_box is not None:
            low, high = (float(v) for v in action_box)
            cem = dataclasses.replace(self.config.cem, action_low=low, action_high=high, arm_actions=False,
                                      gripper_init_mean=min(max(self.config.cem.gripper_init_mean, low), high))
            if cem != self.config.cem:  # the first episode of an env: later resets find the planner bound already
                cem.validate()
                self.config = dataclasses.replace(self.config, cem=cem)  # a config shared with other agents stays as it was
                self.set_action_scale(self.action_scale)
        if action_scale is not None:
            self.set_action_scale(action_scale)
        self._feats: list[torch.Tensor] = []  # each [V, N, D]: one frame per camera
        self._states: list[np.ndarray] = []
        self._prev_state: np.ndarray | None = None
        self._actions: list[np.ndarray] = []
        self._queue: list[np.ndarray] = []
        self._prev_plan: torch.Tensor | None = None
        self._recent_plans: list[torch.Tensor] = []  # the proposal's last plans, newest first (ensemble_plans)
        self.generator = torch.Generator().manual_seed(int(self.config.cem.seed))
        self.last_energy: float | None = None
        self.last_plan: PlanResult | None = None
        self.last_macro_plan: PlanResult | None = None
        if self.high_level is not None:
            self.high_level.reset()

    def clear_plan(self) -> None:
        """Drop the queued actions and warm start (the goal changed, e.g. the next sub-goal)."""
        self._queue = []
        self._prev_plan = None
        self._recent_plans = []

    # -- features ----------------------------------------------------------------------------------
    def encode(self, pixels: np.ndarray) -> torch.Tensor:
        """Layer-normed (if the predictor expects it) features of one frame: ``[N, D]`` fp32."""
        return self.encode_views([pixels])[0]

    def encode_views(self, frames: list[np.ndarray]) -> torch.Tensor:
        """Features of one frame per camera, in one encoder batch: ``[V, N, D]`` fp32."""
        z = self.world_model.encode(np.stack(frames)).float().to(self.device)  # [V, N, D]; resized to image_size
        return normalize_reps(z) if self.config.normalize_inputs else z

    def goal_features(self, pixels: np.ndarray) -> torch.Tensor:
        """Layer-normed goal features ``[N, D]``, cached per goal image (goals repeat every step)."""
        key = (pixels.shape, hashlib.blake2b(np.ascontiguousarray(pixels).tobytes(), digest_size=16).hexdigest())
        if key in self._goal_cache:
            self._goal_cache.move_to_end(key)
            return self._goal_cache[key]
        z = normalize_reps(self.world_model.encode(pixels[None])[0].to(self.device))
        self._goal_cache[key] = z
        while len(self._goal_cache) > GOAL_CACHE_SIZE:
            self._goal_cache.popitem(last=False)
        return z

    # -- acting ------------------------------------------------------------------------------------
    def goal_inputs(self, goal: Any) -> tuple[list[np.ndarray], np.ndarray | None]:
        """What the planner may see of ``goal``: its checked image(s), and its state only when privileged.

        ``goal``: an image ``[H, W, 3]`` uint8, or a dict with ``pixels`` (``pixels_<camera>`` for a
        multi-camera model). Without ``privileged_goal_state`` a ``state`` entry is not even read.
        """
        goal = as_goal(goal)
        goal_frames = _frames(goal, "goal", self.cameras)
        if not self.privileged_goal_state:
            return goal_frames, None
        goal_state = goal.get("state")
        if goal_state is None:
            raise InvalidObservationError("this agent plans with the goal's state (privileged_goal_state=True), "
                                          "but the goal has no 'state'; pass the env's goal dict")
        return goal_frames, _check_state(goal_state, "goal", self.state_dim)

    def act(self, obs: Mapping[str, Any], goal: Any) -> np.ndarray:
        """Next action for ``obs`` (the env's observation dict) towards ``goal`` (an image or ``{"pixels": image}``)."""
        frames, state = _split(obs, "observation", self.cameras)
        if state is None:
            raise InvalidObservationError("observation has no 'state'; pass the env's observation dict")
        state = _check_state(state, "observation", self.state_dim)
        goal_frames, goal_state = self.goal_inputs(goal)

        c = self.config.context_frames
        self._prev_state = self._states[-1] if self._states else None  # the proposal's velocity input
        self._feats = (self._feats + [self.encode_views(frames)])[-c:]
        self._states = (self._states + [state])[-c:]
        self._actions = self._actions[-(len(self._feats) - 1):] if len(self._feats) > 1 else []
        if not self._queue:
            self._replan(goal_frames, goal_state)
        action = self._queue.pop(0)
        self._actions.append(action.copy())
        return action

    def _replan(self, goal_frames: list[np.ndarray], goal_state: np.ndarray | None) -> None:
        # the kinematic model is the 7-D arm's; other action spaces (adapted Gymnasium envs) hold the state
        if (self.action_scale is None and self._advance_fn is not None and self.action_dim == 7 and not self._warned
                and self.config.search == "cem"):
            warnings.warn("Agent has no action_scale: imagined states are held at the observed state; "
                          "call agent.reset(action_scale=env.unwrapped.action_scale)", stacklevel=3)
            self._warned = True
        states = torch.from_numpy(np.stack(self._states)).float().to(self.device)  # [C, K]
        actions = (torch.from_numpy(np.stack(self._actions[-(len(self._feats) - 1):])).float() if len(self._feats) > 1
                   else torch.zeros(0, self.action_dim))
        feats = torch.stack(self._feats, dim=1)  # [V, C, N, D]
        contexts = [Context(feats[v], states, actions) for v in range(len(self.cameras))]  # one per camera
        arm = self.config.cem.arm_actions
        init = shift_plan(self._prev_plan, arm) if (self.config.cem.warm_start and self._prev_plan is not None) else None
        goal_t = None if goal_state is None else torch.from_numpy(goal_state).float()
        goals = [self.goal_features(g) for g in goal_frames]
        anchor = None
        if self.proposal is not None:  # the initial-mean hook: the proposal seeds the search
            anchor = self.proposal(feats[0, -1], self._states[-1], goals[0], self.config.cem.horizon, self._prev_state)
            init = anchor
        if self.config.search == "none":  # the proposal's plan as it is: no world-model call
            plan = anchor
            if self.config.ensemble_plans > 1:  # plan j (made j steps ago) gives its j-th action for this step
                self._recent_plans = ([anchor] + self._recent_plans)[: self.config.ensemble_plans]
                now = torch.stack([p[j] for j, p in enumerate(self._recent_plans)]).mean(0)
                plan = torch.cat([now[None], anchor[1:]])
            result = PlanResult(plan.numpy().astype(np.float32), float("nan"), [], 0, None)
        else:
            if self.high_level is not None:  # two-level planning: steer to the macro model's next latent sub-goal
                high = self.high_level.subgoals(contexts, goals, self.action_dim, self.generator,
                                                elapsed=self.config.execute_steps)
                goals, self.last_macro_plan = high.subgoals, high.plan
            result = self.planner.plan(contexts, goals, self.action_dim, goal_t, init, self.generator, anchor=anchor)
        steps = self.config.execute_steps
        self._prev_plan = torch.from_numpy(result.actions)
        if steps > 1:  # warm start from what remains after executing `steps` actions
            for _ in range(steps - 1):
                self._prev_plan = shift_plan(self._prev_plan, arm)
        self._queue = [a.astype(np.float32) for a in result.actions[:steps]]
        self.last_energy = None if self.config.search == "none" else result.energy
        self.last_plan = result


def check_device(device: str, policy: str = "planner", proposal: Any = None, macro_model: Any = None) -> None:
    """Refuse an unusable ``device`` before any model loads or episode runs (a missing GPU is a one-line
    error); the proposal and the macro-step model run on the CPU, so they need ``device="cpu"``."""
    if device == "cpu":
        return
    if str(proposal) == NO_PROPOSAL:
        proposal = None
    if policy != "planner" or proposal is not None or macro_model is not None:
        raise PlannerConfigError(f"--device {device} applies to --policy planner without --proposal or --macro-model; "
                                 "those run on the CPU only (use --device cpu)")
    from world_model.distributed import device_problem

    problem = device_problem(device)
    if problem is not None:
        raise PlannerConfigError(f"--device {device} is not usable here ({problem}); use --device cpu")
