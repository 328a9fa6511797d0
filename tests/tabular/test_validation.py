"""Bad input gets a clear ValueError that names the offending argument.

Every case is built by hand on a tiny instance (S = 2 states, two agents with 2 actions each)
and checks the message, not only the exception type.
"""

from __future__ import annotations

import numpy as np
import pytest

import bounds
import tabular

S = 2
ACTIONS = (2, 2)


def valid_arrays():
    """A valid (P, R, d0) triple: S = 2, two agents with 2 actions each."""
    P = np.full((S, *ACTIONS, S), 0.5)
    R = np.linspace(-1.0, 1.0, S * int(np.prod(ACTIONS))).reshape(S, *ACTIONS)
    d0 = np.array([0.25, 0.75])
    return P, R, d0


@pytest.fixture
def mdp():
    return tabular.DecMDP(*valid_arrays(), gamma=0.9)


@pytest.fixture
def pi():
    return tabular.FactorizedPolicy([np.array([[1.0, 0.0], [0.3, 0.7]]), np.array([[0.5, 0.5], [0.0, 1.0]])])


@pytest.fixture
def mu():
    return tabular.FactorizedPolicy([np.array([[0.5, 0.5], [0.5, 0.5]]), np.array([[0.2, 0.8], [0.9, 0.1]])])


# --- DecMDP: the transition kernel P ---------------------------------------------------------


def test_decmdp_rejects_p_row_not_summing_to_one():
    P, R, d0 = valid_arrays()
    P[1, 0, 1] = [0.5, 0.6]
    with pytest.raises(ValueError, match=r"P: is not stochastic: probabilities sum to 1\.1 at P\[1, 0, 1, \.\.\.\]"):
        tabular.DecMDP(P, R, d0, 0.9)


def test_decmdp_rejects_negative_transition_probability():
    P, R, d0 = valid_arrays()
    P[0, 1, 0] = [1.5, -0.5]  # still sums to one
    with pytest.raises(ValueError, match=r"P: has a negative entry -0\.5 at index \(0, 1, 0, 1\)"):
        tabular.DecMDP(P, R, d0, 0.9)


def test_decmdp_rejects_nan_in_p():
    P, R, d0 = valid_arrays()
    P[1, 1, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"P: contains NaN or infinity \(first at index \(1, 1, 0, 0\)\)"):
        tabular.DecMDP(P, R, d0, 0.9)


def test_decmdp_rejects_nan_in_r():
    P, R, d0 = valid_arrays()
    R[0, 1, 1] = np.nan
    with pytest.raises(ValueError, match=r"R: contains NaN or infinity \(first at index \(0, 1, 1\)\)"):
        tabular.DecMDP(P, R, d0, 0.9)


def test_decmdp_rejects_inf_in_r():
    P, R, d0 = valid_arrays()
    R[1, 0, 0] = np.inf
    with pytest.raises(ValueError, match=r"R: contains NaN or infinity \(first at index \(1, 0, 0\)\)"):
        tabular.DecMDP(P, R, d0, 0.9)


def test_decmdp_rejects_nan_in_d0():
    P, R, d0 = valid_arrays()
    d0[1] = np.nan
    with pytest.raises(ValueError, match=r"d0: contains NaN or infinity \(first at index \(1,\)\)"):
        tabular.DecMDP(P, R, d0, 0.9)


# --- DecMDP: gamma ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gamma", "message"),
    [
        (1.0, r"gamma: must lie in \[0, 1\), got 1\.0"),
        (-0.1, r"gamma: must lie in \[0, 1\), got -0\.1"),
        (float("nan"), r"gamma: must lie in \[0, 1\), got nan"),
        ("abc", r"gamma: must be a number in \[0, 1\), got 'abc'"),
    ],
)
def test_decmdp_rejects_bad_gamma(gamma, message):
    with pytest.raises(ValueError, match=message):
        tabular.DecMDP(*valid_arrays(), gamma=gamma)


# --- DecMDP: shapes and ranges ---------------------------------------------------------------


def test_decmdp_rejects_r_not_matching_p():
    P, R, d0 = valid_arrays()
    with pytest.raises(ValueError, match=r"R: expected shape \(2, 2, 2\) .* to match P, got \(2, 2\)"):
        tabular.DecMDP(P, R[:, :, 0], d0, 0.9)


def test_decmdp_rejects_d0_of_wrong_length():
    P, R, _ = valid_arrays()
    with pytest.raises(ValueError, match=r"d0: expected shape \(2,\) to match P, got \(3,\)"):
        tabular.DecMDP(P, R, np.full(3, 1.0 / 3.0), 0.9)


def test_decmdp_rejects_p_with_different_first_and_last_axes():
    _, _, d0 = valid_arrays()
    P = np.full((S, *ACTIONS, 3), 1.0 / 3.0)
    R = np.zeros((S, *ACTIONS))
    with pytest.raises(ValueError, match=r"P: first and last axes .* must match, got shape \(2, 2, 2, 3\)"):
        tabular.DecMDP(P, R, d0, 0.9)


def test_decmdp_rejects_p_with_fewer_than_three_dimensions():
    with pytest.raises(ValueError, match=r"P: expected at least 3 dimensions, got shape \(2, 2\)"):
        tabular.DecMDP(np.eye(2), np.zeros(2), np.array([0.5, 0.5]), 0.9)


def test_decmdp_rejects_reward_above_one_in_magnitude():
    P, R, d0 = valid_arrays()
    R[1, 1, 0] = -1.5
    with pytest.raises(ValueError, match=r"R: rewards must satisfy \|R\| <= 1, got max \|R\| = 1\.5"):
        tabular.DecMDP(P, R, d0, 0.9)


def test_decmdp_rejects_d0_not_summing_to_one():
    P, R, _ = valid_arrays()
    with pytest.raises(ValueError, match=r"d0: is not stochastic: probabilities sum to 0\.9, not 1"):
        tabular.DecMDP(P, R, np.array([0.4, 0.5]), 0.9)


def test_decmdp_arrays_are_read_only():
    mdp = tabular.DecMDP(*valid_arrays(), gamma=0.9)
    for array in (mdp.P, mdp.R, mdp.d0):
        assert not array.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        mdp.P[0, 0, 0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        mdp.R[0, 0, 0] = 0.0
    with pytest.raises(ValueError, match="read-only"):
        mdp.d0[0] = 1.0


def test_decmdp_copies_list_input():
    P, R, d0 = (a.tolist() for a in valid_arrays())
    mdp = tabular.DecMDP(P, R, d0, 0.9)
    P[0][0][0] = [0.9, 0.1]
    d0[0] = 1.0
    np.testing.assert_array_equal(mdp.P[0, 0, 0], [0.5, 0.5])
    np.testing.assert_array_equal(mdp.d0, [0.25, 0.75])


def test_decmdp_copies_ndarray_input():
    P, R, d0 = valid_arrays()
    P_view, R_view, d0_view = P.view(), R.view(), d0.view()  # writable handles on the caller's memory
    mdp = tabular.DecMDP(P, R, d0, 0.9)
    P_before, R_before, d0_before = P.copy(), R.copy(), d0.copy()
    assert mdp.P is not P and mdp.R is not R and mdp.d0 is not d0
    P_view[0, 0, 0] = [0.9, 0.2]  # would make the validated kernel non-stochastic
    R_view[:] = 0.0
    d0_view[:] = [1.0, 0.0]
    np.testing.assert_array_equal(mdp.P, P_before)
    np.testing.assert_array_equal(mdp.R, R_before)
    np.testing.assert_array_equal(mdp.d0, d0_before)
    assert P.flags.writeable, "the constructor froze the caller's own array"


# --- policies --------------------------------------------------------------------------------


def test_factorized_policy_rejects_non_stochastic_factor():
    good = np.array([[0.5, 0.5], [1.0, 0.0]])
    bad = np.array([[0.5, 0.5], [0.2, 0.2]])
    with pytest.raises(
        ValueError, match=r"factors\[1\]: is not stochastic: probabilities sum to 0\.4 at factors\[1\]\[1"
    ):
        tabular.FactorizedPolicy([good, bad])


def test_factorized_policy_rejects_factors_with_different_state_counts():
    with pytest.raises(ValueError, match=r"factors\[1\]: has 3 states but factors\[0\] has 2"):
        tabular.FactorizedPolicy([np.full((2, 2), 0.5), np.full((3, 2), 0.5)])


def test_factorized_policy_rejects_empty_list():
    with pytest.raises(ValueError, match=r"factors: must be a non-empty list"):
        tabular.FactorizedPolicy([])


def test_joint_policy_rejects_negative_entry():
    probs = np.full((S, *ACTIONS), 0.25)
    probs[1, 0, 1] = -0.25
    probs[1, 1, 1] = 0.75
    with pytest.raises(ValueError, match=r"probs: has a negative entry -0\.25 at index \(1, 0, 1\)"):
        tabular.JointPolicy(probs)


@pytest.mark.parametrize(
    "policy",
    [
        tabular.FactorizedPolicy([np.full((3, 2), 0.5), np.full((3, 2), 0.5)]),  # 3 states, not 2
        tabular.FactorizedPolicy([np.full((2, 2), 0.5), np.full((2, 3), 1.0 / 3.0)]),  # 3 actions for agent 1
        tabular.JointPolicy(np.full((2, 4), 0.25)),  # one agent with 4 actions
    ],
)
def test_state_occupancy_rejects_policy_that_does_not_fit_the_mdp(mdp, policy):
    with pytest.raises(ValueError, match=r"policy: has .* but the Dec-MDP has 2 states and action sizes \(2, 2\)"):
        tabular.state_occupancy(mdp, policy)


# --- subsets of agents -----------------------------------------------------------------------

BAD_SUBSETS = [
    pytest.param([0, 2], r"subset: names agent 2, but agents are numbered 0\.\.1", id="agent-n"),
    pytest.param([-1], r"subset: names agent -1, but agents are numbered 0\.\.1", id="agent-minus-1"),
    pytest.param([1, 1], r"subset: names an agent twice: \[1, 1\]", id="repeated"),
    pytest.param([1.5], r"subset: agent indices must be integers, got 1\.5", id="non-integer"),
]


@pytest.mark.parametrize(("subset", "message"), BAD_SUBSETS)
def test_mixed_policy_rejects_bad_subset(pi, mu, subset, message):
    with pytest.raises(ValueError, match=message):
        tabular.mixed_policy(pi, mu, subset)


@pytest.mark.parametrize(("subset", "message"), BAD_SUBSETS)
def test_lemma1_rejects_bad_subset(mdp, pi, mu, subset, message):
    with pytest.raises(ValueError, match=message):
        bounds.lemma1(mdp, pi, mu, subset)


def test_mixed_policy_checks_a_subset_given_as_one_shot_iterator(pi, mu):
    with pytest.raises(ValueError, match=r"subset: names agent 5"):
        tabular.mixed_policy(pi, mu, iter([5]))
    with pytest.raises(ValueError, match=r"subset: agent indices must be integers, got 1\.5"):
        tabular.mixed_policy(pi, mu, (i for i in [1.5]))


def test_lemma1_rejects_correlated_behavior_policy(mdp, pi):
    correlated = np.zeros((S, *ACTIONS))
    correlated[:, 0, 0] = correlated[:, 1, 1] = 0.5
    with pytest.raises(ValueError, match=r"mu: Lemma 1 assumes a factorized behavior policy .*kappa = 0\.5.*lemma2"):
        bounds.lemma1(mdp, pi, tabular.JointPolicy(correlated), [0])


# --- policy_at_distance ----------------------------------------------------------------------


def test_policy_at_distance_rejects_unreachable_distance():
    mu_i = np.array([[0.5, 0.5], [0.1, 0.9]])  # state 0 reaches at most TV 0.5
    with pytest.raises(ValueError, match=r"distance: 0\.6 is out of reach in state 0, where the largest TV .* is 0\.5"):
        tabular.policy_at_distance(mu_i, 0.6, seed=0)


def test_policy_at_distance_rejects_distance_above_one():
    with pytest.raises(ValueError, match=r"distance: must lie in \[0, 1\], got 1\.5"):
        tabular.policy_at_distance(np.array([[1.0, 0.0]]), 1.5, seed=0)


# --- distances -------------------------------------------------------------------------------


def test_tv_rejects_shape_mismatch():
    with pytest.raises(ValueError, match=r"q: shape \(3,\) does not match p's shape \(2,\)"):
        tabular.tv([0.5, 0.5], [0.2, 0.3, 0.5])


def test_tv_rejects_non_distribution_p():
    with pytest.raises(ValueError, match=r"p: is not stochastic: probabilities sum to 1\.5, not 1"):
        tabular.tv([1.0, 0.5], [0.5, 0.5])


def test_w1_rejects_metric_of_wrong_shape():
    with pytest.raises(ValueError, match=r"metric: expected shape \(2, 2\) for 2 support points, got \(3, 3\)"):
        tabular.w1([0.5, 0.5], [1.0, 0.0], metric=1.0 - np.eye(3))


def test_w1_rejects_metric_with_non_zero_diagonal():
    with pytest.raises(ValueError, match=r"metric: a ground metric needs non-negative entries and a zero diagonal"):
        tabular.w1([0.5, 0.5], [1.0, 0.0], metric=np.ones((2, 2)))


# --- random instances and the product-difference inequality ----------------------------------


def test_random_decmdp_rejects_zero_states():
    with pytest.raises(ValueError, match=r"n_states: must be at least 1, got 0"):
        tabular.random_decmdp(0, ACTIONS, 0.9, seed=0)


def test_random_decmdp_rejects_no_agents():
    with pytest.raises(ValueError, match=r"action_sizes: need at least one agent and one action each, got \(\)"):
        tabular.random_decmdp(2, (), 0.9, seed=0)


def test_product_difference_rejects_mismatched_factor_counts():
    with pytest.raises(ValueError, match=r"q_factors: has 1 factors but p_factors has 2"):
        bounds.product_difference([[0.5, 0.5], [1.0, 0.0]], [[0.5, 0.5]])
