"""benchmarks/goal_energy_probe.py: the cube's share of the energy under its three reads, and --encoder."""
import torch

from benchmarks.goal_energy_probe import cube_shares


def test_cube_shares_divide_the_cube_only_frame_by_the_start_under_each_read():
    # tokens: 0-1 the arm (wrong at start, right when the arm is at its goal pose), 2 the cube, 3 static
    per_token = torch.tensor([[4.0, 4.0, 1.0, 0.0],    # start: arm and cube wrong
                              [0.0, 0.0, 1.0, 0.0]])  # arm_at_goal: only the cube wrong
    s = cube_shares(per_token)
    assert abs(s["mean"] - 1 / 9) < 1e-6  # (1/4) / (9/4)
    # weights 4/9, 4/9, 1/9, 0: start 33/9, cube-only 1/9
    assert abs(s["start_goal_weighted"] - 1 / 33) < 1e-6
    assert abs(s["top4_tokens"] - 1 / 9) < 1e-6  # all four tokens: the mean again
    wide = torch.cat([per_token, torch.zeros(2, 60)], 1)  # 60 more static tokens dilute the mean, not the top 4
    assert abs(cube_shares(wide)["mean"] - 1 / 9) < 1e-6 and abs(cube_shares(wide)["top4_tokens"] - 1 / 9) < 1e-6
