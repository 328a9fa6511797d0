"""Lemma 2 (eq. 13) on random instances with correlated behavior policies."""

from hypothesis import given

import bounds
import tabular
from tests.strategies import assert_holds_and_seek_tight_cases, correlated_policies, instances_with_subset


@given(instances_with_subset())
def test_lemma2_linear_divergence_with_correlations(instance):
    """W1(d^(S), d^mu) <= gamma / (1 - gamma) * (sum_{i in S} TV(pi_i, mu_i) + kappa)   (Lemma 2, eq. 13)."""
    mdp, mu, pi, subset = instance
    check = bounds.lemma2(mdp, pi, mu, subset)
    assert_holds_and_seek_tight_cases(check)


@given(instances_with_subset(behavior=correlated_policies))
def test_lemma2_compares_with_the_correlated_occupancy(instance):
    """The left side uses d^mu of the correlated mu itself, and kappa is Definition 1's excess correlation."""
    mdp, mu, pi, subset = instance
    check = bounds.lemma2(mdp, pi, mu, subset)
    d_mixed = tabular.state_occupancy(mdp, tabular.mixed_policy(pi, mu, subset))
    assert check.lhs == tabular.w1(d_mixed, tabular.state_occupancy(mdp, mu))
    assert check.details["kappa"] == tabular.excess_correlation(mu)


@given(instances_with_subset())
def test_lemma2_reduces_to_lemma1_for_factorized_behavior(instance):
    """With kappa = 0 (mu replaced by the product of its marginals) the two lemmas coincide."""
    mdp, mu, pi, subset = instance
    product = tabular.FactorizedPolicy(mu.marginals())
    one, two = bounds.lemma1(mdp, pi, product, subset), bounds.lemma2(mdp, pi, product, subset)
    assert (one.lhs, one.rhs) == (two.lhs, two.rhs)
