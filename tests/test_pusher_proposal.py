"""The shipped Pusher-v5 proposal (world_model/assets/pusher_proposal.pt): an object read-out on the
default encoder, and it pushes the object onto the goal from the goal image."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

ASSET = Path(__file__).resolve().parents[1] / "world_model" / "assets" / "pusher_proposal.pt"


def test_the_shipped_pusher_proposal_reads_the_object_on_the_default_encoder():
    from world_model.proposal import load_proposal

    net = load_proposal(ASSET)
    assert net.config.readout == "object" and net.config.object_dim == 3 and net.config.proprio_delta
    assert net.config.action_bound == pytest.approx(2.0)  # Pusher's torques span [-2, 2]
    assert net.encoder["weights_hash"] == "0b4ed6c8e0b49fc5"  # the shipped default encoder's features


def test_the_shipped_pusher_proposal_pushes_the_object_onto_the_goal_from_the_goal_image():
    """Closed loop on two training-range seeds it solved in 60 steps (eval seeds untouched); one of the two
    must succeed, so a CPU whose bf16 rounding shifts one trajectory does not fail the suite."""
    from envs import make_env
    from planning import Agent, rollout

    torch.set_num_threads(1)
    agent = Agent.from_pretrained("default", env_id="Pusher-v5", proposal=str(ASSET), search="none")
    env = make_env("Pusher-v5", render_size=64)
    try:
        results = [rollout(env, agent, seed=seed) for seed in (84, 87)]
    finally:
        env.close()
    assert any(r["success"] and r["final_distance"] < 0.05 for r in results), results
    assert all(r["seconds_per_action"] < 1.0 for r in results)
