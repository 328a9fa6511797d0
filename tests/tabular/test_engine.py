"""The numba engine against the slow numpy reference (tabular.reference) on random inputs."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import tabular
from tabular import reference
from tests.strategies import decmdps, instances, subsets

EXACT = 1e-10


@given(instances())
def test_joint_and_marginals_match_reference(instance):
    _mdp, mu, pi = instance
    np.testing.assert_allclose(pi.joint(), reference.joint_from_factors(pi.factors), rtol=0, atol=1e-15)
    product = tabular.FactorizedPolicy(mu.marginals())
    for own, recovered in zip(product.marginals(), tabular.JointPolicy(product.joint()).marginals(), strict=True):
        np.testing.assert_allclose(recovered, own, rtol=0, atol=1e-14)


@given(instances())
def test_induced_kernel_matches_reference(instance):
    mdp, mu, pi = instance
    for policy in (mu, pi):
        P_phi, r_phi = tabular.induced_kernel(mdp, policy)
        P_ref, r_ref = reference.kernel(mdp, policy.joint())
        np.testing.assert_allclose(P_phi, P_ref, rtol=0, atol=EXACT)
        np.testing.assert_allclose(r_phi, r_ref, rtol=0, atol=EXACT)


@given(instances())
def test_state_occupancy_matches_reference_and_is_a_distribution(instance):
    mdp, mu, pi = instance
    for policy in (mu, pi):
        d = tabular.state_occupancy(mdp, policy)
        np.testing.assert_allclose(d, reference.occupancy(mdp, policy.joint()), rtol=0, atol=EXACT)
        assert d.min() >= -EXACT
        assert abs(d.sum() - 1.0) <= EXACT


@given(instances(max_states=4, max_agents=3))
def test_state_occupancy_equals_truncated_power_series(instance):
    """d^phi = (1 - gamma) sum_t gamma^t d0^T (P^phi)^t; the tail after T terms is at most gamma^T."""
    mdp, mu, _ = instance
    n_terms = int(np.ceil(np.log(1e-13) / np.log(mdp.gamma))) if mdp.gamma > 0 else 1
    series = reference.occupancy_power_series(mdp, mu.joint(), n_terms)
    np.testing.assert_allclose(tabular.state_occupancy(mdp, mu), series, rtol=0, atol=EXACT)


@given(instances())
def test_state_action_occupancy_is_d_times_policy(instance):
    mdp, mu, _ = instance
    d_sa = tabular.state_action_occupancy(mdp, mu)
    assert d_sa.shape == (mdp.n_states, *mdp.action_sizes)
    assert abs(d_sa.sum() - 1.0) <= EXACT
    d = reference.occupancy(mdp, mu.joint())
    np.testing.assert_allclose(d_sa, d.reshape((-1,) + (1,) * mdp.n_agents) * mu.joint(), rtol=0, atol=EXACT)


@given(instances(), st.data())
def test_mixed_policy_takes_pi_on_the_subset_and_mu_marginals_elsewhere(instance, data):
    mdp, mu, pi = instance
    subset = data.draw(subsets(mdp.n_agents))
    mixed = tabular.mixed_policy(pi, mu, subset)
    expected = reference.mixed_joint(pi.factors, mu.marginals(), set(subset))
    np.testing.assert_allclose(mixed.joint(), expected, rtol=0, atol=1e-15)


@given(instances())
def test_all_subset_occupancies_match_reference(instance):
    """Row b of all_subset_occupancies is d^(S) for S = {i : bit i of b}, built from scratch."""
    mdp, mu, pi = instance
    fast = tabular.all_subset_occupancies(mdp, pi, mu)
    slow = reference.all_subset_occupancies(mdp, pi.factors, mu.marginals())
    assert fast.shape == (2**mdp.n_agents, mdp.n_states)
    np.testing.assert_allclose(fast, slow, rtol=0, atol=EXACT)
    np.testing.assert_allclose(fast.sum(axis=1), 1.0, rtol=0, atol=EXACT)


@given(instances())
def test_all_subset_kernels_end_rows_are_mu_marginals_and_pi(instance):
    mdp, mu, pi = instance
    P_sub, r_sub = tabular.all_subset_kernels(mdp, pi, mu)
    P_mu, r_mu = tabular.induced_kernel(mdp, tabular.FactorizedPolicy(mu.marginals()))
    P_pi, r_pi = tabular.induced_kernel(mdp, pi)
    np.testing.assert_allclose(P_sub[0], P_mu, rtol=0, atol=EXACT)
    np.testing.assert_allclose(r_sub[0], r_mu, rtol=0, atol=EXACT)
    np.testing.assert_allclose(P_sub[-1], P_pi, rtol=0, atol=EXACT)
    np.testing.assert_allclose(r_sub[-1], r_pi, rtol=0, atol=EXACT)


@given(instances(max_states=4, max_agents=3, max_actions=3))
def test_q_policy_matches_state_action_linear_system(instance):
    """Q^phi from V^phi equals the solution of Q = R + gamma P Pi Q on state-action pairs."""
    mdp, mu, pi = instance
    for policy in (mu, pi):
        np.testing.assert_allclose(
            tabular.q_policy(mdp, policy), reference.q_policy(mdp, policy.joint()), rtol=0, atol=1e-9
        )


@given(decmdps(max_states=4, max_agents=3, max_actions=3))
def test_q_optimal_is_within_its_certified_bound_of_policy_iteration(mdp):
    """||Q_VI - Q*||_inf <= error_bound, with Q* from exact policy iteration."""
    result = tabular.q_optimal(mdp, tol=1e-8)
    exact = reference.q_optimal(mdp)
    assert result.error_bound <= 1e-8
    # the certificate is exact arithmetic; 1e-11 covers round-off in the two linear solves
    assert np.abs(result.q - exact).max() <= result.error_bound + 1e-11
    assert np.abs(exact).max() <= 1.0 / (1.0 - mdp.gamma) + 1e-9


def test_q_optimal_refuses_an_unreachable_tolerance():
    mdp = tabular.random_decmdp(3, (2, 2), 0.99, seed=0)
    try:
        tabular.q_optimal(mdp, tol=1e-6, max_iter=5)
    except RuntimeError as error:
        assert "max_iter" in str(error)
    else:
        raise AssertionError("q_optimal accepted an uncertified result")


def test_same_seed_gives_the_same_numbers():
    draws = [
        (
            tabular.random_decmdp(5, (3, 2, 4), 0.9, seed=7, concentration=0.5),
            tabular.random_correlated_policy(tabular.random_decmdp(5, (3, 2, 4), 0.9, seed=7), seed=3),
        )
        for _ in range(2)
    ]
    (mdp_a, mu_a), (mdp_b, mu_b) = draws
    assert np.array_equal(mdp_a.P, mdp_b.P) and np.array_equal(mdp_a.R, mdp_b.R)
    assert np.array_equal(mu_a.probs, mu_b.probs)
    pi = tabular.perturbed_policy(mu_a, 0.2, seed=11)
    assert np.array_equal(
        tabular.all_subset_occupancies(mdp_a, pi, mu_a), tabular.all_subset_occupancies(mdp_b, pi, mu_b)
    )
