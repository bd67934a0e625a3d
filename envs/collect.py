"""Dataset collection behind ``simjepa collect``: policies, one episode, resumable multi-worker runs.

Everything is a function of (env id, render size, policy, seed): episode ``i`` resets with seed
``seed_start + i`` and its policy noise is seeded from the same number, so re-running a command
recreates byte-identical files, which is what makes resuming after a kill safe.
"""
from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from simjepa_core.episodes import (
    FORMAT_VERSION, MANIFEST, Episode, complete_episode_indices, read_manifest, write_episode, write_manifest,
)
from simjepa_core.errors import SimjepaError

POLICIES = ("random", "expert", "mixed", "dart")


class ConfigMismatchError(SimjepaError):
    """An output directory that already holds a dataset collected with other options."""


class OUExploration:
    """Temporally correlated exploration: Ornstein-Uhlenbeck noise on the motion dims.

    Uncorrelated uniform noise makes the end effector jitter in place; OU noise makes it travel, so
    random data covers the workspace. On our 7-D arm action the rotation dims get a third of the
    amplitude (orientation is not needed by the tasks and would otherwise sit at its limits) and the
    gripper is an open/closed command that toggles with probability ``toggle_p`` per step.
    """

    def __init__(self, low: np.ndarray, high: np.ndarray, rng: np.random.Generator, arm: bool,
                 theta: float = 0.15, sigma: float = 0.3, toggle_p: float = 0.1) -> None:
        self.low, self.high, self.rng, self.arm = low, high, rng, arm
        self.theta, self.sigma, self.toggle_p = theta, sigma, toggle_p
        self.amp = np.ones_like(low)
        if arm:
            self.amp[3:6] = 1.0 / 3.0
        self.x = np.zeros_like(low)
        self.grip = float(rng.choice([-1.0, 1.0]))

    def act(self) -> np.ndarray:
        self.x = self.x - self.theta * self.x + self.sigma * self.rng.standard_normal(self.x.shape)
        centre, half = (self.high + self.low) / 2, (self.high - self.low) / 2
        a = np.clip(centre + half * self.amp * self.x, self.low, self.high)
        if self.arm:
            if self.rng.random() < self.toggle_p:
                self.grip = -self.grip
            a[6] = self.grip
        return a.astype(np.float32)


class CollectPolicy:
    """``random``, ``expert``, ``mixed`` (expert with per-episode action noise and random segments) or ``dart``.

    ``dart`` (DART, Laskey et al. 2017): the expert's action plus per-episode Gaussian noise is executed,
    and the expert's clean action at every visited state is kept as ``label``. Behaviour cloning on
    expert episodes alone never sees a state off the expert's path, so a cloned policy that drifts
    has no example of how to recover; these episodes are those examples.
    """

    def __init__(self, kind: str, env, seed: int) -> None:
        if kind not in POLICIES:
            raise SimjepaError(f"unknown policy {kind!r}; use one of {', '.join(POLICIES)}")
        self.kind = kind
        self.rng = np.random.default_rng([int(seed), POLICIES.index(kind), 7919])
        space = env.action_space
        arm = hasattr(env.unwrapped, "action_scale") and space.shape == (7,)
        self.ou = OUExploration(space.low.astype(np.float64), space.high.astype(np.float64), self.rng, arm)
        self.low, self.high = space.low, space.high
        self.expert = None
        if kind != "random":
            from envs.experts import make_expert

            self.expert = make_expert(env)
            self.expert.reset()
        self.noise = float(self.rng.uniform(0.0, 0.3))  # mixed, dart: per-episode noise level
        self.label: np.ndarray | None = None  # dart: the expert's clean action for the last act()
        self.segment_left = 0
        self.arm = arm
        if kind == "mixed" and hasattr(self.expert, "detour") and self.rng.random() < 0.5:
            # adapted envs: half the episodes first visit a random point of the workspace
            self.expert.detour(*self.expert.sample_detour(self.rng))

    def act(self, obs: dict) -> np.ndarray:
        if self.kind == "random":
            return self.ou.act()
        expert_action = self.expert.act(obs)
        if self.kind == "expert":
            return expert_action
        if self.kind == "dart":
            self.label = np.asarray(expert_action, dtype=np.float32)
            return self._noisy(expert_action)
        explore = self.ou.act()  # keep the OU process running so segments start from a moving state
        if self.segment_left == 0 and self.rng.random() < 0.05:
            self.segment_left = int(self.rng.integers(4, 13))
        if self.segment_left > 0:
            self.segment_left -= 1
            return explore
        return self._noisy(expert_action)

    def _noisy(self, expert_action: np.ndarray) -> np.ndarray:
        a = expert_action.astype(np.float64)
        if self.arm:
            a[:6] += self.noise * self.rng.standard_normal(6)
        else:  # adapted envs: every dim, scaled to its half range
            a += self.noise * (self.high - self.low) / 2 * self.rng.standard_normal(a.shape)
        return np.clip(a, self.low, self.high).astype(np.float32)


def record_episode(env, seed: int, obs: dict, info: dict, act: Callable[[dict], tuple[np.ndarray, np.ndarray | None]],
                   max_steps: int) -> Episode:
    """Step ``env`` from ``(obs, info)`` as ``reset(seed=seed)`` returned them; ``act(obs) -> (action, label)``.

    frames[t] is the observation before actions[t]. ``label`` is the expert's clean action at that state
    (``None`` when there is none); the episode keeps them as ``expert_actions`` when every step has one.
    """
    frames, states, success, distance, actions = [obs["pixels"]], [obs["state"]], [info["success"]], [info["distance"]], []
    labels = []
    for _ in range(max_steps):
        a, label = act(obs)
        labels.append(label)
        obs, _, terminated, truncated, info = env.step(a)
        actions.append(a)
        frames.append(obs["pixels"])
        states.append(obs["state"])
        success.append(info["success"])
        distance.append(info["distance"])
        if terminated or truncated:
            break
    expert = np.stack(labels) if all(label is not None for label in labels) else None
    return Episode(np.stack(frames), np.stack(actions), np.stack(states), np.array(success), np.array(distance), seed,
                   expert_actions=expert)


def run_episode(env, policy: str, seed: int, max_steps: int) -> Episode:
    """Roll out one episode of a collection ``policy`` from ``reset(seed=seed)``."""
    obs, info = env.reset(seed=seed)
    pol = CollectPolicy(policy, env, seed)
    return record_episode(env, seed, obs, info, lambda o: (pol.act(o), pol.label), max_steps)


@dataclass(frozen=True)
class CollectConfig:
    env_id: str
    episodes: int
    out: str
    policy: str = "mixed"
    render_size: int = 256
    workers: int = 1
    seed_start: int = 0
    max_steps: int | None = None
    camera: str = "front"  # which view the frames show; same seeds -> same episodes from another camera


# --- worker process state (one env, one EGL context per process) ---------------------------------
_WORKER: dict = {}


def _make_env(env_id: str, render_size: int, max_steps: int | None, camera: str):
    """The env rendering ``camera`` (adapted Gymnasium envs have only their one view: a one-line error)."""
    from envs import make_env

    return make_env(env_id, render_size=render_size, max_episode_steps=max_steps, cameras=(camera,))


def _worker_init(cfg: dict) -> None:
    _WORKER["cfg"] = cfg
    _WORKER["env"] = _make_env(cfg["env_id"], cfg["render_size"], cfg["max_steps"], cfg["camera"])


def _worker_run(index: int) -> tuple[int, bool]:
    cfg = _WORKER["cfg"]
    ep = run_episode(_WORKER["env"], cfg["policy"], cfg["seed_start"] + index, cfg["max_steps"])
    write_episode(cfg["out"], index, ep)
    return index, bool(ep.success[-1])


def _resolve(cfg: CollectConfig) -> dict:
    """Check options and build the manifest this run would write."""
    if cfg.episodes < 1:
        raise SimjepaError(f"--episodes must be at least 1, got {cfg.episodes}")
    if cfg.workers < 1:
        raise SimjepaError(f"--workers must be at least 1, got {cfg.workers}")
    if cfg.policy not in POLICIES:
        raise SimjepaError(f"unknown policy {cfg.policy!r}; use one of {', '.join(POLICIES)}")
    if cfg.max_steps is not None and cfg.max_steps < 1:
        raise SimjepaError(f"--max-steps must be at least 1, got {cfg.max_steps}")
    env = _make_env(cfg.env_id, cfg.render_size, cfg.max_steps, cfg.camera)
    try:
        if cfg.policy != "random":
            from envs.experts import make_expert

            make_expert(env)  # fails early, with the fix, for envs without an expert
        obs, _ = env.reset(seed=cfg.seed_start)
        max_steps = int(cfg.max_steps or env.spec.max_episode_steps)
        return {
            "version": FORMAT_VERSION, "env_id": cfg.env_id, "render_size": cfg.render_size, "episodes": 0,
            "action_dim": int(np.prod(env.action_space.shape)), "state_dim": int(obs["state"].shape[0]),
            "policy": cfg.policy, "seed_start": cfg.seed_start, "max_episode_steps": max_steps,
            "camera": cfg.camera,
        }
    finally:
        env.close()


def check_existing_dataset(out: str, manifest: dict) -> None:
    """Refuse to add episodes to ``out`` when it holds a dataset recorded with other options (or stray
    episode files without a manifest): resuming must never mix two datasets in one directory."""
    path = os.path.join(out, MANIFEST)
    if not os.path.exists(path):
        stray = [n for n in os.listdir(out) if n.startswith("episode_")]
        if stray:
            raise ConfigMismatchError(f"{out} holds episode files but no {MANIFEST}; use a new --out directory")
        return
    old = {"camera": "front", **read_manifest(out)}  # datasets from before the option are front views
    keys = ("env_id", "render_size", "policy", "seed_start", "max_episode_steps", "action_dim", "state_dim", "camera")
    diff = [f"{k}={old[k]!r} (now {manifest[k]!r})" for k in keys if old[k] != manifest[k]]
    if diff:
        raise ConfigMismatchError(
            f"{out} holds a dataset collected with other options: {', '.join(diff)}; use a new --out or the same options"
        )


def collect(cfg: CollectConfig, progress: bool = True) -> dict:
    """Collect episodes ``0 .. cfg.episodes-1`` into ``cfg.out``, skipping the ones already complete.

    Returns the final manifest. Safe to kill at any point and re-run with the same options.
    """
    from tqdm import tqdm

    manifest = _resolve(cfg)
    os.makedirs(cfg.out, exist_ok=True)
    check_existing_dataset(cfg.out, manifest)
    done = set(complete_episode_indices(cfg.out))
    todo = [i for i in range(cfg.episodes) if i not in done]
    manifest["episodes"] = len(done)
    write_manifest(cfg.out, manifest)
    worker_cfg = dict(asdict(cfg), max_steps=manifest["max_episode_steps"])
    bar = tqdm(total=cfg.episodes, initial=cfg.episodes - len(todo), desc=f"collect {cfg.env_id}",
               unit="ep", disable=not progress)
    successes = 0
    pool = None
    try:
        if cfg.workers == 1 or len(todo) <= 1:
            _worker_init(worker_cfg)
            results = map(_worker_run, todo)
        else:
            # spawn, not fork: each worker must create its own EGL context from scratch.
            pool = mp.get_context("spawn").Pool(min(cfg.workers, len(todo)), _worker_init, (worker_cfg,))
            results = pool.imap_unordered(_worker_run, todo)
        for _, ok in results:
            done_count = manifest["episodes"] + 1
            manifest["episodes"] = done_count
            write_manifest(cfg.out, manifest)
            successes += ok
            bar.set_postfix(success=f"{successes}/{done_count - len(done)}", refresh=False)
            bar.update(1)
        if pool is not None:
            pool.close()
            pool.join()
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
        if cfg.workers == 1 and "env" in _WORKER:
            _WORKER.pop("env").close()
    manifest["episodes"] = len(complete_episode_indices(cfg.out))
    write_manifest(cfg.out, manifest)
    return manifest
