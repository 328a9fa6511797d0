"""Theorems 1-3 (eq. 12, 14 and the SPaCQL bound) on random instances, term by term."""

import string
from itertools import combinations

import numpy as np
import pytest
from hypothesis import given, target
from hypothesis import strategies as st

import bounds
import tabular
from tabular import reference
from tests.strategies import (
    assert_holds_and_seek_tight_cases,
    behavior_policies,
    factorized_policies,
    instances,
    q_hats,
    soft_partial_weights,
)

# value iteration and Q^pi are exact on the joint action: keep |A| <= 81 so that examples stay fast
SMALL = {"max_states": 6, "max_agents": 4, "max_actions": 3}
# the reference engine solves a linear system on S * |A| unknowns
TINY = {"max_states": 4, "max_agents": 3, "max_actions": 3}


@st.composite
def theorem_cases(draw, behavior=behavior_policies, sizes=SMALL):
    """(mdp, mu, pi, q_hat, weights): an instance, a learned Q table and SPaCQL weights."""
    mdp, mu, pi = draw(instances(behavior, **sizes))
    return mdp, mu, pi, draw(q_hats(mdp, pi)), draw(soft_partial_weights(mdp.n_states, mdp.n_agents))


def close(a, b) -> bool:
    """Agreement between two computations of the same quantity; values reach 1/(1-gamma) = 100."""
    return bool(np.allclose(a, b, rtol=1e-9, atol=1e-9))


@given(theorem_cases(behavior=factorized_policies))
def test_theorem1_value_error_bound(case):
    """|V^pi - V^hat^pi| <= eps_Subopt + eps_FQI + 4 gamma/(1-gamma)^2 * sum_i TV(pi_i, mu_i)   (Theorem 1, eq. 12)."""
    mdp, mu, pi, q_hat, _ = case
    assert_holds_and_seek_tight_cases(bounds.theorem1(mdp, pi, mu, q_hat))


@given(theorem_cases())
def test_theorem2_value_error_bound_with_correlations(case):
    """|V^pi - V^hat^pi| <= eps_Subopt + eps_FQI + 4 gamma/(1-gamma)^2 * (sum_i TV(pi_i, mu_i) + kappa)   (eq. 14)."""
    mdp, mu, pi, q_hat, _ = case
    assert_holds_and_seek_tight_cases(bounds.theorem2(mdp, pi, mu, q_hat))


@given(theorem_cases(behavior=factorized_policies))
def test_theorem3_spacql_value_error_bound(case):
    """|V^pi - V^hat^pi| <= eps_Subopt + eps_FQI + 4 gamma/(1-gamma)^2 * E_{s~d^pi}[k_eff(s)] * TVbar   (Theorem 3)."""
    mdp, mu, pi, q_hat, weights = case
    assert_holds_and_seek_tight_cases(bounds.theorem3(mdp, pi, mu, q_hat, weights))


@given(theorem_cases())
def test_value_error_is_bounded_without_the_shift_term(case):
    """|V^pi - V^hat^pi| <= ||Q^pi - q_hat||_inf <= eps_Subopt + eps_FQI: Theorems 1-3 hold with no shift term.

    A finding about the paper, not a property of the code: the shift term is never needed.
    """
    mdp, mu, pi, q_hat, weights = case
    checks = [bounds.theorem2(mdp, pi, mu, q_hat)]
    if isinstance(mu, tabular.FactorizedPolicy):
        checks += [bounds.theorem1(mdp, pi, mu, q_hat), bounds.theorem3(mdp, pi, mu, q_hat, weights)]
    for check in checks:
        assert check.holds_without_shift_term, (check.claim, check.lhs, check.eps_subopt + check.eps_fqi)
    errors = [check.eps_subopt + check.eps_fqi for check in checks]
    target(max((c.lhs / e for c, e in zip(checks, errors, strict=True) if e > 0), default=0.0), label="lhs / eps")


def marginals_of(joint: np.ndarray) -> list[np.ndarray]:
    agent_axes = range(1, joint.ndim)
    return [joint.sum(axis=tuple(a for a in agent_axes if a != i)) for i in agent_axes]


def sup_tv(p: np.ndarray, q: np.ndarray) -> float:
    """``sup_s 1/2 sum_a |p(a | s) - q(a | s)|``."""
    return float(0.5 * np.abs(p - q).reshape(len(p), -1).sum(axis=1).max())


def expectation(d: np.ndarray, joint: np.ndarray, table: np.ndarray) -> float:
    """``sum_{s, a} d(s) phi(a | s) table(s, a)`` by one einsum."""
    letters = string.ascii_lowercase[1 : joint.ndim]
    return float(np.einsum(f"s,s{letters},s{letters}->", d, joint, table))


@given(theorem_cases(sizes=TINY))
def test_theorem_terms_match_an_independent_recomputation(case):
    """Every term of Theorem 2 (Theorem 1 for a factorized mu) equals its textbook formula on reference.* results.

    V^pi = E_{d^pi, pi} Q^pi and Vhat^pi = E_{d^pi, pi} q_hat with d^pi, Q^pi, Q* from the slow reference
    engine (explicit solves, Q* by policy iteration), the TVs and kappa from the joint arrays.
    """
    mdp, mu, pi, q_hat, _ = case
    check = bounds.theorem2(mdp, pi, mu, q_hat)
    pi_joint = reference.joint_from_factors(pi.factors)
    mu_joint = mu.probs if isinstance(mu, tabular.JointPolicy) else reference.joint_from_factors(mu.factors)
    d_pi, d_mu = reference.occupancy(mdp, pi_joint), reference.occupancy(mdp, mu_joint)
    q_pi, q_star = reference.q_policy(mdp, pi_joint), reference.q_optimal(mdp)
    v_pi, v_hat = expectation(d_pi, pi_joint, q_pi), expectation(d_pi, pi_joint, q_hat)
    mu_marginals = marginals_of(mu_joint)
    tvs = [sup_tv(p, m) for p, m in zip(pi.factors, mu_marginals, strict=True)]
    kappa = sup_tv(mu_joint, reference.joint_from_factors(mu_marginals))
    shift = 4 * mdp.gamma / (1 - mdp.gamma) ** 2 * (sum(tvs) + kappa)
    fqi_error = q_star - q_hat
    scale = 1.0 / (1.0 - mdp.gamma)
    expected = {
        "v_pi": v_pi,
        "v_hat_pi": v_hat,
        "lhs": abs(v_pi - v_hat),
        "eps_subopt": np.abs(q_pi - q_star).max(),
        "eps_fqi": np.abs(fqi_error).max(),
        "agent_tv": tvs,
        "kappa": kappa,
        "shift_term": shift,
        "rhs": np.abs(q_pi - q_star).max() + np.abs(fqi_error).max() + shift,
        "d_pi": d_pi,
        "d_mu": d_mu,
        "w1_state": 0.5 * np.abs(d_pi - d_mu).sum(),
        "w1_state_action": 0.5
        * np.abs(
            d_pi[:, None] * pi_joint.reshape(len(d_pi), -1) - d_mu[:, None] * mu_joint.reshape(len(d_mu), -1)
        ).sum(),
        "term_I": abs(expectation(d_pi, pi_joint, q_pi - q_star)),
        "term_II": abs(expectation(d_pi, pi_joint, fqi_error)),
        "term_II_under_mu": abs(expectation(d_mu, mu_joint, fqi_error)),
        "term_II_shift": abs(expectation(d_pi, pi_joint, fqi_error) - expectation(d_mu, mu_joint, fqi_error)),
        "q_hat_range": q_hat.max() - q_hat.min(),
    }
    for name, value in expected.items():
        assert close(getattr(check, name), value), (name, getattr(check, name), value)
    assert 0.0 <= check.q_star_error_bound <= 1e-10
    assert check.lipschitz_assumption == (q_hat.max() - q_hat.min() <= 2.0 * scale * (1 + 1e-12))
    assert check.holds == (check.lhs <= check.rhs + bounds.ROUNDOFF * (1 + abs(check.rhs)))


@given(theorem_cases(behavior=factorized_policies, sizes=TINY))
def test_theorem3_terms_match_an_independent_recomputation(case):
    """k_eff(s) = sum_k k w_k(s), E_{d^pi}[k_eff], TVbar = mean_i TV(pi_i, mu_i) and the shift of
    pi_w = sum_k w_k(s) mean_{|K|=k} pi^(K), each rebuilt from reference.mixed_joint and reference.occupancy."""
    mdp, mu, pi, q_hat, weights = case
    check = bounds.theorem3(mdp, pi, mu, q_hat, weights)
    n = mdp.n_agents
    k_eff = np.array([sum((k + 1) * row[k] for k in range(n)) for row in weights])
    d_pi = reference.occupancy(mdp, reference.joint_from_factors(pi.factors))
    tv_bar = np.mean([sup_tv(p, m) for p, m in zip(pi.factors, mu.factors, strict=True)])
    soft = np.zeros((mdp.n_states, *mdp.action_sizes))
    for s in range(mdp.n_states):
        for k in range(1, n + 1):
            subsets = list(combinations(range(n), k))
            for subset in subsets:
                soft[s] += weights[s, k - 1] / len(subsets) * reference.mixed_joint(pi.factors, mu.factors, subset)[s]
    d_soft = reference.occupancy(mdp, soft)
    d_mu = reference.occupancy(mdp, reference.joint_from_factors(mu.factors))
    assert close(check.k_eff, k_eff)
    assert close(check.expected_k_eff, d_pi @ k_eff)
    assert close(check.tv_bar, tv_bar)
    assert close(check.shift_term, 4 * mdp.gamma / (1 - mdp.gamma) ** 2 * (d_pi @ k_eff) * tv_bar)
    assert close(check.soft_partial_policy.probs, soft)
    assert close(check.d_soft_partial, d_soft)
    assert close(check.soft_partial_shift, 0.5 * np.abs(d_soft - d_mu).sum())


@given(theorem_cases(behavior=factorized_policies))
def test_theorem2_equals_theorem1_for_factorized_behavior(case):
    """With a factorized mu, kappa = 0 and the two statements coincide term by term."""
    mdp, mu, pi, q_hat, _ = case
    one, two = bounds.theorem1(mdp, pi, mu, q_hat), bounds.theorem2(mdp, pi, mu, q_hat)
    assert two.kappa == 0.0
    assert (one.lhs, one.rhs, one.shift_term, one.w1_state_action) == (
        two.lhs,
        two.rhs,
        two.shift_term,
        two.w1_state_action,
    )


@given(theorem_cases(behavior=factorized_policies))
def test_theorem3_with_all_weight_on_n_agents_is_theorem1(case):
    """w_n(s) = 1: k_eff = n, E[k_eff] TVbar = sum_i TV(pi_i, mu_i), pi_w = pi and its shift is W1(d^pi, d^mu)."""
    mdp, mu, pi, q_hat, _ = case
    n = mdp.n_agents
    weights = np.zeros((mdp.n_states, n))
    weights[:, n - 1] = 1.0
    three, one = bounds.theorem3(mdp, pi, mu, q_hat, weights), bounds.theorem1(mdp, pi, mu, q_hat)
    assert np.array_equal(three.k_eff, np.full(mdp.n_states, n))
    assert close(three.expected_k_eff, n)
    assert close(three.shift_term, one.shift_term)
    assert close(three.rhs, one.rhs)
    assert close(three.soft_partial_policy.probs, pi.joint())
    assert close(three.soft_partial_shift, one.w1_state)


@given(theorem_cases())
def test_soft_partial_policy_with_all_weight_on_one_agent_is_the_mean_single_agent_mixture(case):
    """w_1(s) = 1: pi_w = (1/n) sum_i pi^({i}), for factorized and correlated mu (whose marginals are used)."""
    mdp, mu, pi, _, _ = case
    weights = np.zeros((mdp.n_states, mdp.n_agents))
    weights[:, 0] = 1.0
    single = np.mean([tabular.mixed_policy(pi, mu, [i]).joint() for i in range(mdp.n_agents)], axis=0)
    assert close(bounds.soft_partial_policy(pi, mu, weights).probs, single)


def test_lipschitz_assumption_is_reported_not_enforced():
    """A q_hat with range 30 > 2/(1-gamma) = 20 breaks the assumption; the theorem is still evaluated (and holds)."""
    mdp = tabular.random_decmdp(3, (2, 2), 0.9, seed=0)
    mu = tabular.random_factorized_policy(mdp, seed=1)
    pi = tabular.perturbed_policy(mu, 0.3, seed=2)
    q_star = tabular.q_optimal(mdp).q
    assert bounds.theorem1(mdp, pi, mu, q_star).lipschitz_assumption
    wide = np.zeros(mdp.R.shape)
    wide[0, 0, 0] = 30.0
    check = bounds.theorem1(mdp, pi, mu, wide)
    assert not check.lipschitz_assumption and check.q_hat_range == 30.0
    assert check.holds and check.holds_without_shift_term


# --- validation -------------------------------------------------------------------------------


@pytest.fixture
def setting():
    mdp = tabular.random_decmdp(3, (2, 3), 0.9, seed=0)
    mu = tabular.random_factorized_policy(mdp, seed=1)
    pi = tabular.perturbed_policy(mu, 0.2, seed=2)
    return mdp, mu, pi, np.zeros(mdp.R.shape), np.full((3, 2), 0.5)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        (np.full((3, 3), 1 / 3), r"weights: expected shape \(3, 2\) \(S, n\)"),
        (np.full(6, 0.5), r"weights: expected 2 dimensions"),
        (np.array([[0.5, 0.5], [0.5, 0.6], [1.0, 0.0]]), r"weights: is not stochastic: .* at weights\[1, \.\.\.\]"),
        (np.array([[0.5, 0.5], [1.5, -0.5], [1.0, 0.0]]), r"weights: has a negative entry -0\.5 at index \(1, 1\)"),
        (np.array([[0.5, 0.5], [np.nan, 0.5], [1.0, 0.0]]), r"weights: contains NaN or infinity"),
    ],
)
def test_theorem3_rejects_bad_weights(setting, weights, message):
    mdp, mu, pi, q_hat, _ = setting
    with pytest.raises(ValueError, match=message):
        bounds.theorem3(mdp, pi, mu, q_hat, weights)
    with pytest.raises(ValueError, match=message):
        bounds.soft_partial_policy(pi, mu, weights)


@pytest.mark.parametrize("theorem", [bounds.theorem1, bounds.theorem2])
def test_theorems_reject_a_q_hat_of_the_wrong_shape_or_with_nan(setting, theorem):
    mdp, mu, pi, _, _ = setting
    with pytest.raises(ValueError, match=r"q_hat: expected shape \(3, 2, 3\) \(S, A_1, \.\.\., A_n\).*got \(3, 6\)"):
        theorem(mdp, pi, mu, np.zeros((3, 6)))
    with pytest.raises(ValueError, match=r"q_hat: contains NaN"):
        theorem(mdp, pi, mu, np.full(mdp.R.shape, np.nan))


def test_theorems_1_and_3_refuse_a_correlated_behavior_policy(setting):
    mdp, _, pi, q_hat, weights = setting
    correlated = tabular.random_correlated_policy(mdp, seed=3)
    with pytest.raises(ValueError, match=r"mu: Theorem 1 assumes a factorized .*use bounds\.theorem2"):
        bounds.theorem1(mdp, pi, correlated, q_hat)
    with pytest.raises(ValueError, match=r"mu: Theorem 3 assumes a factorized .*use bounds\.theorem2"):
        bounds.theorem3(mdp, pi, correlated, q_hat, weights)
    assert bounds.theorem2(mdp, pi, correlated, q_hat).kappa > 0


def test_theorems_refuse_a_joint_learned_policy(setting):
    mdp, mu, pi, q_hat, weights = setting
    joint_pi = tabular.JointPolicy(pi.joint())
    with pytest.raises(ValueError, match=r"pi: must be a FactorizedPolicy"):
        bounds.theorem2(mdp, joint_pi, mu, q_hat)
    for not_factorized in (joint_pi, pi.joint()):
        with pytest.raises(ValueError, match=r"pi: must be a FactorizedPolicy"):
            bounds.soft_partial_policy(not_factorized, mu, weights)
