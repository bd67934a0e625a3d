"""benchmarks/oracle_search.py: the greedy search with the simulator as predictor."""
import numpy as np

from benchmarks.oracle_search import candidate_actions, make_featurizer, search_episode
from envs import make_env


def test_candidates_cover_every_direction_with_the_task_gripper():
    reach = candidate_actions("reach", fine=False)
    assert reach.shape == (26, 7)
    assert len({tuple(a[:3]) for a in reach}) == 26 and not np.any(reach[:, 3:6])
    assert np.all(reach[:, 6] == -1.0)  # Reach's goal image shows the gripper open
    fine = candidate_actions("push", fine=True)
    assert fine.shape == (52, 7) and np.all(fine[:, 6] == 1.0)
    assert np.allclose(np.sort(np.unique(np.abs(fine[:, :3]))), [0.0, 1 / 3, 1.0])
    assert sorted(set(candidate_actions("pickplace", fine=False)[:, 6])) == [-1.0, 1.0]


def test_greedy_search_on_real_frames_reaches_an_easy_goal_and_leaves_no_trial_moves_behind():
    """Seed 501's goal is a few moves away; if trial moves leaked into the episode (a missing restore)
    the arm would drift off and the step count would not match the distance covered."""
    env = make_env("simjepa/Reach-v0", render_size=64)
    featurize = make_featurizer("pixels", "default", False, 64)
    out = search_episode(env, featurize, candidate_actions("reach", False), seed=501, stride=0, per=5)
    assert out["success"] and out["final_distance"] < 0.05
    assert 1 <= out["steps"] <= 6
    again = search_episode(env, featurize, candidate_actions("reach", False), seed=501, stride=0, per=5)
    assert again == out  # deterministic
    env.close()


def test_two_views_score_the_sum_of_both_energies():
    """With a side camera each candidate's energy is front + side: the side goal and the side frames
    of every trial move are featurized, and the move taken is the argmin of the sum."""
    from benchmarks.oracle_search import GreedyOracle
    from planning.energy import feature_energy

    env = make_env("simjepa/Reach-v0", render_size=64, cameras=("front", "side"))
    pixels = make_featurizer("pixels", "default", False, 64)
    seen = []

    def featurize(frames):
        seen.append(frames)
        return pixels(frames)

    actions = candidate_actions("reach", False)
    oracle = GreedyOracle(env, featurize, actions)
    assert oracle.views == ["pixels", "pixels_side"]
    obs, info = env.reset(seed=501)
    goal = info["goal"]
    action = oracle.act(obs, goal)
    goal_front, goal_side, front, side = seen  # goal views once, then the 26 trial frames per view
    assert np.array_equal(goal_side[0], goal["pixels_side"]) and np.array_equal(goal_front[0], goal["pixels"])
    assert front.shape == side.shape == (26, 64, 64, 3) and not np.array_equal(front, side)
    e = sum(feature_energy(pixels(f)[:, None], pixels(g)[0]) for f, g in ((front, goal_front), (side, goal_side)))
    assert np.array_equal(action, actions[int(e.argmin())])
    assert np.array_equal(env.step(action)[0]["pixels_side"], side[int(e.argmin())])  # trials were undone
    env.close()


def test_waypoints_are_every_stride_th_demo_observation_ending_on_the_last():
    from planning.policies import ExpertPolicy
    from planning.rollout import rollout

    from benchmarks.oracle_search import demo_waypoints

    env = make_env("simjepa/Push-v0", render_size=64)
    demo = [obs for obs, _ in rollout(env, ExpertPolicy(env), 500, record=True)["frames"][1:]]
    env.close()
    points = demo_waypoints("simjepa/Push-v0", 500, 64, 2)
    expected = demo[1::2] + ([] if len(demo) % 2 == 0 else [demo[-1]])
    assert len(points) == len(expected) >= 2
    assert all(np.array_equal(p["pixels"], e) for p, e in zip(points, expected))
