"""Lemma 1 (eq. 11) on random factorized Dec-MDP instances."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import bounds
import tabular
from tests.strategies import assert_holds_and_seek_tight_cases, factorized_policies, instances_with_subset

factorized_instances = instances_with_subset(behavior=factorized_policies)


@given(factorized_instances)
def test_lemma1_linear_divergence_bound(instance):
    """W1(d^(S), d^(empty)) <= gamma / (1 - gamma) * sum_{i in S} TV(pi_i, mu_i)   (Lemma 1, eq. 11)."""
    mdp, mu, pi, subset = instance
    check = bounds.lemma1(mdp, pi, mu, subset)
    assert_holds_and_seek_tight_cases(check)
    assert np.isclose(check.slack, check.rhs - check.lhs)


@given(factorized_instances)
def test_lemma1_sides_are_the_stated_quantities(instance):
    """The left side is the TV of the two occupancies and the right side the scaled sum of agent TVs."""
    mdp, mu, pi, subset = instance
    check = bounds.lemma1(mdp, pi, mu, subset)
    d_mixed = tabular.state_occupancy(mdp, tabular.mixed_policy(pi, mu, subset))
    d_mu = tabular.state_occupancy(mdp, mu)
    assert check.lhs == tabular.w1(d_mixed, d_mu)
    tvs = [tabular.policy_tv(pi.factors[i], mu.factors[i]) for i in subset]
    assert np.isclose(check.rhs, mdp.gamma / (1 - mdp.gamma) * sum(tvs), rtol=1e-12, atol=0)


def test_lemma1_reports_a_violation_when_the_sides_are_swapped():
    """holds is computed, not assumed: a positive shift against a zero right side fails."""
    mdp = tabular.random_decmdp(4, (3, 3), 0.9, seed=1)
    mu = tabular.random_factorized_policy(mdp, seed=2)
    pi = tabular.perturbed_policy(mu, 0.5, seed=3)
    check = bounds.lemma1(mdp, pi, mu, [0, 1])
    assert check.lhs > 0 and check.holds
    swapped = bounds.BoundCheck(check.claim, lhs=check.rhs + 1e-6, rhs=check.rhs)
    assert not swapped.holds and swapped.slack < 0


@given(factorized_instances)
def test_no_deviation_and_no_discounting_give_no_shift(instance):
    """S = {} gives d^(S) = d^mu; gamma = 0 gives d^(S) = d0 for every S."""
    mdp, mu, pi, subset = instance
    assert bounds.lemma1(mdp, pi, mu, []).lhs <= bounds.ROUNDOFF
    myopic = tabular.DecMDP(mdp.P, mdp.R, mdp.d0, 0.0)
    check = bounds.lemma1(myopic, pi, mu, subset)
    assert check.lhs <= bounds.ROUNDOFF and check.rhs == 0.0


@given(st.floats(0.01, 0.99), st.floats(1e-4, 1.0))
def test_lemma1_is_attained_in_the_limit_of_small_deviations(gamma, t):
    """Closed form: one agent leaves state 0 for an absorbing state 1 with probability t per step.

    W1(d^pi, d^mu) = gamma t / (1 - gamma (1 - t)) against the bound gamma t / (1 - gamma), so
    lhs / rhs = (1 - gamma) / (1 - gamma + gamma t) -> 1 as t -> 0: the constant of Lemma 1 is sharp.
    """
    P = np.zeros((2, 2, 2))
    P[0, 0, 0] = P[0, 1, 1] = P[1, :, 1] = 1.0
    mdp = tabular.DecMDP(P, np.zeros((2, 2)), [1.0, 0.0], gamma)
    mu = tabular.FactorizedPolicy([[[1.0, 0.0], [1.0, 0.0]]])
    pi = tabular.FactorizedPolicy([[[1.0 - t, t], [1.0, 0.0]]])
    check = bounds.lemma1(mdp, pi, mu, [0])
    # W1 = 1 - d(0) is a difference of O(1) probabilities: accurate in absolute, not relative, terms
    assert abs(check.lhs - gamma * t / (1.0 - gamma * (1.0 - t))) <= 1e-14
    assert np.isclose(check.rhs, gamma * t / (1.0 - gamma), rtol=1e-12, atol=0)
    assert check.holds
