"""Batched evaluation: returns per episode, and the report with normalized scores."""

import numpy as np

from deep.algorithms.evaluation import evaluation_report, team_returns, uniform_policy


def test_team_returns_sum_each_episodes_rewards_and_are_seeded():
    first = team_returns("cn", uniform_policy("cn", 1), episodes=3, seed=4)
    second = team_returns("cn", uniform_policy("cn", 1), episodes=3, seed=4)
    assert first.shape == (3,) and np.array_equal(first, second) and np.all(first > 0)  # coverage terms are positive


def test_report_normalizes_with_the_reference_returns():
    report = evaluation_report(np.array([-10.0, -20.0]), {"random": -30.0, "expert": -10.0})
    assert report == {
        "episodes": 2,
        "return_mean": -15.0,
        "return_std": 5.0,
        "normalized_mean": 75.0,
        "normalized_std": 25.0,
    }
    assert "normalized_mean" not in evaluation_report(np.array([1.0]))
