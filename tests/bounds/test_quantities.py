"""The audit's quantities: the float path against the tabular engine, the exact path against the float one."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bounds
import tabular
from bounds.claims import BY_NAME, CLAIMS
from bounds.quantities import Problem, Quantities, solve
from tabular import FactorizedPolicy
from tabular.datasets import exact_dataset
from tests.strategies import audit_instances


def _exact(instance) -> Quantities:
    """The instance's float values read as exact rationals (every float is a rational)."""
    return Quantities(Problem.from_json(instance.to_json(), exact=True))


@given(instance=audit_instances())
def test_float_quantities_match_the_tabular_engine(instance):
    """Occupancies, Q^pi, Q*, TVs, kappa and the theorems' terms equal the engine's (bounds.theorem1-3, lemma1-2)."""
    q = Quantities(instance)
    mdp, mu = instance.mdp, instance.mu
    product = FactorizedPolicy(mu.marginals())
    S = mdp.n_states
    assert np.allclose(q.named_occupancy("pi_joint"), tabular.state_occupancy(mdp, instance.pi), atol=1e-10)
    assert np.allclose(q.named_occupancy("mu_joint"), tabular.state_occupancy(mdp, mu), atol=1e-10)
    assert np.allclose(q.q_pi, tabular.q_policy(mdp, instance.pi).reshape(S, -1), atol=1e-8)
    assert np.allclose(q.q_star, tabular.q_optimal(mdp, tol=1e-11).q.reshape(S, -1), atol=1e-8)
    assert np.isclose(q.kappa, tabular.excess_correlation(mu), atol=1e-12)
    assert np.allclose(q.agent_tv, bounds.agent_tvs(instance.pi, mu), atol=1e-12)
    check = bounds.lemma2(mdp, instance.pi, mu, instance.subset)
    assert np.isclose(BY_NAME["lemma2"].evaluate(q)[0], check.lhs, atol=1e-10)
    t1 = bounds.theorem1(mdp, instance.pi, product, instance.q_hat)
    assert np.isclose(q.value_error, t1.lhs, atol=1e-8) and np.isclose(q.eps_fqi, t1.eps_fqi, atol=1e-8)
    t3 = bounds.theorem3(mdp, instance.pi, product, instance.q_hat, instance.weights)
    assert np.isclose(q.named_occupancy("pi_joint") @ q.k_eff, t3.expected_k_eff, atol=1e-10)
    assert np.allclose(q.soft_partial, t3.soft_partial_policy.probs.reshape(S, -1), atol=1e-12)


#: Claims that report the sides at their worst state or agent: at a near-tie float and exact arithmetic may
#: pick different ones, so only their margin ``lhs - rhs`` (the maximum over states / agents) is compared.
PICK_THE_WORST = {"eq25", "eq50"}


@settings(max_examples=25)
@given(instance=audit_instances(max_states=2, max_agents=2, max_actions=2))
def test_exact_quantities_agree_with_the_float_ones_on_every_claim(instance):
    """Every claim's (lhs, rhs) in exact rationals equals its float value up to float round-off."""
    exact, floating = _exact(instance), Quantities(instance)
    for claim in CLAIMS:
        exact_sides = claim.evaluate(exact)
        assert all(isinstance(x, Fraction) for x in exact_sides), claim.name
        float_sides = claim.evaluate(floating)
        pairs = [(exact_sides[0] - exact_sides[1], float_sides[0] - float_sides[1])]
        if claim.name not in PICK_THE_WORST:
            pairs += list(zip(exact_sides, float_sides, strict=True))
        for e, f in pairs:
            assert abs(float(e) - float(f)) <= 1e-8 * (1 + abs(float(e))), (claim.name, e, f)


@given(st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_exact_solve_matches_lapack(n, seed):
    rng = np.random.default_rng(seed)
    A = np.eye(n) * n + rng.uniform(-1, 1, size=(n, n))
    b = rng.uniform(-1, 1, size=n)
    to_fraction = np.vectorize(Fraction, otypes=[object])
    x = solve(to_fraction(A), to_fraction(b))
    assert all(isinstance(v, Fraction) for v in x)
    assert np.all(to_fraction(A).dot(x) == to_fraction(b))  # exact: A x = b holds with no round-off
    assert np.allclose(x.astype(float), np.linalg.solve(A, b))


def test_exact_solve_refuses_a_singular_matrix():
    with pytest.raises(ZeroDivisionError, match="singular"):
        solve(np.array([[Fraction(1), Fraction(2)], [Fraction(2), Fraction(4)]], dtype=object), np.array([1, 1]))


@given(instance=audit_instances(max_states=3, max_agents=3, max_actions=2))
def test_proposition1_semi_gradient_matches_bounds_proposition1_on_the_exact_dataset(instance):
    """The generic semi-gradients equal bounds.proposition1's scatter-add on tabular.exact_dataset (mu factorized)."""
    mu = FactorizedPolicy(instance.mu.marginals())
    from bounds.instances import Instance

    instance = Instance(instance.mdp, mu, instance.pi, instance.subset, instance.q_hat, instance.weights)
    terms = Quantities(instance).proposition1_terms
    check = bounds.proposition1(exact_dataset(instance.mdp, mu), instance.q_hat, instance.pi, instance.mdp.gamma)
    S = instance.mdp.n_states
    assert np.allclose(terms["semi_averaged"], check.grad_averaged.reshape(S, -1), atol=1e-9)
    assert np.isclose(terms["loss_averaged"], check.loss_averaged, atol=1e-9)
    assert np.isclose(terms["loss_centralized"], check.loss_centralized, atol=1e-9)


def _losses(q: Quantities, table: np.ndarray) -> np.ndarray:
    """Slow reference: ``[J_1, ..., J_n, J_cen]`` at the table ``table`` [S, J], by loops over transitions."""
    S, J = table.shape
    full = table.reshape(S, *q.action_sizes)
    w = q.transition_weights
    out = np.zeros(q.n_agents + 1)
    for s, a, s2, a2 in np.ndindex(S, J, S, J):
        next_action = np.unravel_index(a2, q.action_sizes)
        targets = []
        for i in range(q.n_agents):
            backup = 0.0
            for b in range(q.action_sizes[i]):
                swapped = list(next_action)
                swapped[i] = b
                backup += q.problem.pi[i][s2, b] * full[(s2, *swapped)]
            targets.append(q.problem.R[s, a] + q.gamma * backup)
        residuals = table[s, a] - np.array(targets)
        out[:-1] += 0.5 * w[s, a, s2, a2] * residuals**2
        out[-1] += 0.5 * w[s, a, s2, a2] * (table[s, a] - np.mean(targets)) ** 2
    return out


@settings(max_examples=10)
@given(instance=audit_instances(max_states=2, max_agents=2, max_actions=2))
def test_full_gradients_match_finite_differences_of_a_slow_loss(instance):
    """``grad J_i`` through the target and ``grad J_cen`` equal central differences of the loop-built losses.

    The losses are quadratic in the table, so central differences are exact up to round-off.
    """
    q = Quantities(instance)
    table = q.problem.q_hat.copy()
    step = 1e-4 * (1 + np.abs(table).max())
    numeric = np.zeros((q.n_agents + 1, *table.shape))
    for cell in np.ndindex(table.shape):
        up, down = table.copy(), table.copy()
        up[cell] += step
        down[cell] -= step
        numeric[(slice(None), *cell)] = (_losses(q, up) - _losses(q, down)) / (2 * step)
    terms = q.proposition1_terms
    scale = 1e-6 * (1 + np.abs(numeric).max())
    assert np.allclose(terms["full_averaged"], numeric[:-1].mean(axis=0), atol=scale)
    assert np.allclose(terms["full_centralized"], numeric[-1], atol=scale)
    assert np.allclose(
        _losses(q, table)[:-1].mean(), terms["loss_averaged"], atol=1e-9 * (1 + np.abs(table).max()) ** 2
    )
