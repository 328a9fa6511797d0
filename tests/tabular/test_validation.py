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
        (1.0, r"gamma: must be a number in \[0, 1\), got 1\.0"),
        (-0.1, r"gamma: must be a number in \[0, 1\), got -0\.1"),
        (float("nan"), r"gamma: must be a number in \[0, 1\), got nan"),
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
    with pytest.raises(ValueError, match=r"n_states: must be an integer >= 1, got 0"):
        tabular.random_decmdp(0, ACTIONS, 0.9, seed=0)


def test_random_decmdp_rejects_no_agents():
    with pytest.raises(ValueError, match=r"action_sizes: need at least one agent and one action each, got \(\)"):
        tabular.random_decmdp(2, (), 0.9, seed=0)


def test_product_difference_rejects_mismatched_factor_counts():
    with pytest.raises(ValueError, match=r"q_factors: has 1 factors but p_factors has 2"):
        bounds.product_difference([[0.5, 0.5], [1.0, 0.0]], [[0.5, 0.5]])


# --- memory: refused with the figure, before anything is allocated ---------------------------


def raises_before_allocating(error, match, function, *args, **kwargs):
    """Check that ``function(*args, **kwargs)`` raises ``error`` and allocated less than 16 MiB meanwhile."""
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(error, match=match):
            function(*args, **kwargs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20, f"allocated {peak} bytes before refusing"


def singleton_agents_mdp(n_states, n_agents):
    """A valid Dec-MDP with ``n_agents`` agents of one action each: tiny arrays, but 2^n subsets."""
    shape = (n_states,) + (1,) * n_agents
    P = np.full((*shape, n_states), 1.0 / n_states)
    return tabular.DecMDP(P, np.zeros(shape), np.full(n_states, 1.0 / n_states), 0.9)


def test_random_decmdp_refuses_30_agents_with_the_figure_before_allocating():
    raises_before_allocating(
        ValueError,
        r"^action_sizes: 30 agents with 2\^30 joint actions: needs about 672 GiB \(P and R, .*"
        r"2 x 6 states x 2\^30 joint actions x \(6 next states \+ 1\) x 8 bytes = 672 GiB\), "
        r"more than the 4 GiB limit; .*tabular\._validate\.MEMORY_LIMIT_BYTES",
        tabular.random_decmdp,
        6,
        (2,) * 30,
        0.9,
        seed=0,
    )


def test_all_subset_occupancies_and_kernels_refuse_24_agents_before_allocating():
    mdp = singleton_agents_mdp(6, 24)
    mu = tabular.FactorizedPolicy([np.ones((6, 1))] * 24)
    raises_before_allocating(
        ValueError,
        r"^pi: 24 agents give 2\^24 mixed policies: needs about 16\.8 GiB \(.*"
        r"2\^24 x 6 states x \(6 \+ 1\) x 8 bytes = 5\.25 GiB.*\), more than the 4 GiB limit",
        tabular.all_subset_occupancies,
        mdp,
        mu,
        mu,
    )
    raises_before_allocating(
        ValueError,
        r"^pi: 24 agents give 2\^24 mixed policies: needs about 7 GiB \(.*\), more than the 4 GiB limit",
        tabular.all_subset_kernels,
        mdp,
        mu,
        mu,
    )


def test_factorized_joint_refuses_40_agents_before_allocating():
    policy = tabular.FactorizedPolicy([np.full((1, 2), 0.5)] * 40)
    raises_before_allocating(
        ValueError,
        r"^factors: 40 agents with 2\^40 joint actions: needs about 8 TiB \(the joint policy array: "
        r"1 x 1 states x 2\^40 joint actions x 8 bytes = 8 TiB\), more than the 4 GiB limit",
        policy.joint,
    )


def test_the_memory_limit_is_read_at_each_call_and_can_be_raised(monkeypatch):
    import tabular._validate

    monkeypatch.setattr(tabular._validate, "MEMORY_LIMIT_BYTES", 100)
    with pytest.raises(
        ValueError,
        match=r"^action_sizes: 2 agents with 2\^2 joint actions: needs about 384 B \(.*"
        r"2 x 2 states x 2\^2 joint actions x \(2 next states \+ 1\) x 8 bytes = 384 B\), more than the 100 B limit",
    ):
        tabular.random_decmdp(2, ACTIONS, 0.9, seed=0)
    monkeypatch.setattr(tabular._validate, "MEMORY_LIMIT_BYTES", 384)
    assert tabular.random_decmdp(2, ACTIONS, 0.9, seed=0).action_sizes == ACTIONS


# --- FQE: a certified stop, refused up front when gamma is too close to 1 ----------------------


def small_dataset():
    from tabular.datasets import exact_dataset

    mdp = tabular.random_decmdp(2, ACTIONS, 0.9, seed=0)
    mu = tabular.random_factorized_policy(mdp, seed=1)
    return exact_dataset(mdp, mu), mu


def test_fqe_refuses_gamma_too_close_to_one_instead_of_running_millions_of_sweeps():
    from tabular import learners

    dataset, mu = small_dataset()
    with pytest.raises(
        ValueError,
        match=r"^gamma: 0\.999999 is so close to 1 that certifying tol=1e-10 can take up to 51,349,994 sweeps "
        r"per policy evaluation .* more than the default cap of 1,000,000 \(tabular\.learners\.MAX_SWEEPS\)",
    ):
        learners.fitted_q_evaluation(dataset, 0.999999, mu)
    with pytest.raises(ValueError, match=r"^gamma: 0\.999999 is so close to 1"):
        learners.q_learning(dataset, 0.999999)
    with pytest.raises(
        RuntimeError,
        match=r"^max_iter: fitted_q_evaluation stopped a policy evaluation after 50 sweeps with certified error "
        r"\d.* > tol=1e-10 \(gamma=0\.999999\); raise max_iter or tol",
    ):
        learners.fitted_q_evaluation(dataset, 0.999999, mu, max_iter=50)


def test_fqe_stop_is_certified_by_the_contraction_bound():
    from tabular import learners

    mdp = tabular.random_decmdp(3, ACTIONS, 0.99, seed=3)
    mu = tabular.random_factorized_policy(mdp, seed=4)
    pi = tabular.random_factorized_policy(mdp, seed=5)
    from tabular.datasets import exact_dataset

    result = learners.fitted_q_evaluation(exact_dataset(mdp, mu), mdp.gamma, pi, tol=1e-10)
    assert result.converged and result.error_bound <= 1e-10
    # the change-only rule stopped up to gamma / (1 - gamma) * tol = 1e-8 away; the certified one does not
    assert np.abs(result.q - tabular.q_policy(mdp, pi)).max() <= 1e-10 + 1e-12


# --- sizes are integers, arrays are real -------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_states": 2.5}, r"^n_states: must be an integer >= 1, got 2\.5"),
        ({"n_states": True}, r"^n_states: must be an integer >= 1, got True"),
        ({"action_sizes": (2.5,)}, r"^action_sizes: agent 0's number of actions must be an integer >= 1, got 2\.5"),
        ({"action_sizes": (2, True)}, r"^action_sizes: agent 1's number of actions must be an integer >= 1, got True"),
        ({"action_sizes": (2, 0)}, r"^action_sizes: agent 1's number of actions must be an integer >= 1, got 0"),
        ({"action_sizes": 3}, r"^action_sizes: must be a sequence of integers, one per agent, got 3"),
        ({"n_absorbing": 1.5}, r"^n_absorbing: must be an integer >= 0, got 1\.5"),
    ],
)
def test_random_decmdp_refuses_non_integer_sizes(kwargs, message):
    arguments = {"n_states": 2, "action_sizes": ACTIONS, "gamma": 0.9, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=message):
        tabular.random_decmdp(**arguments)


def test_random_decmdp_accepts_numpy_integers_and_integral_floats():
    mdp = tabular.random_decmdp(np.int64(3), (np.int32(2), 3.0), 0.9, seed=0, n_absorbing=np.uint8(1))
    assert (mdp.n_states, mdp.action_sizes) == (3, (2, 3))
    assert all(type(a) is int for a in mdp.action_sizes)
    reference = tabular.random_decmdp(3, (2, 3), 0.9, seed=0, n_absorbing=1)
    np.testing.assert_array_equal(mdp.P, reference.P)


@pytest.mark.parametrize("which", ["P", "R", "d0"])
def test_decmdp_refuses_complex_arrays(which):
    arrays = dict(zip(("P", "R", "d0"), valid_arrays(), strict=True))
    arrays[which] = arrays[which] + 0.5j
    with pytest.raises(ValueError, match=rf"^{which}: has complex entries \(dtype complex128\)"):
        tabular.DecMDP(arrays["P"], arrays["R"], arrays["d0"], 0.9)


def test_policies_refuse_complex_arrays():
    with pytest.raises(ValueError, match=r"^factors\[1\]: has complex entries"):
        tabular.FactorizedPolicy([np.full((2, 2), 0.5), np.full((2, 2), 0.5 + 0j)])
    with pytest.raises(ValueError, match=r"^probs: has complex entries"):
        tabular.JointPolicy(np.full((S, *ACTIONS), 0.25 + 1e-3j))
    with pytest.raises(ValueError, match=r"^mu_i: has complex entries"):
        tabular.policy_at_distance([[0.5 + 0j, 0.5]], 0.1, seed=0)


@pytest.mark.parametrize("seed", [-1, 1.5, "3", True, None])
def test_a_bad_seed_is_named(seed):
    """Every seeded generator refuses a seed that is not a non-negative integer, in its own words."""
    mdp = tabular.random_decmdp(2, (2,), 0.5, 0)
    calls = [
        lambda: tabular.random_decmdp(2, (2,), 0.5, seed),
        lambda: tabular.random_factorized_policy(mdp, seed),
        lambda: tabular.random_correlated_policy(mdp, seed),
        lambda: tabular.perturbed_policy(tabular.random_factorized_policy(mdp, 0), 0.1, seed),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=r"seed: must be a non-negative integer, got "):
            call()


def test_a_reward_just_above_one_is_printed_as_it_is():
    P = np.ones((1, 2, 1))
    with pytest.raises(ValueError, match=r"got max \|R\| = 1\.0000001$"):
        tabular.DecMDP(P, np.array([[1.0000001, 0.0]]), np.ones(1), 0.5)
