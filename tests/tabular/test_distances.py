"""Property tests of TV, W1, the per-state policy TV, kappa and policy_at_distance (paper, eq. 8, Definition 1).

Distributions are drawn by hypothesis as non-negative weights (with exact zeros, so sparse vectors and
point masses come up) over supports of 1 to 30 points, then normalized. Every quantity is compared
with an independent computation: POT's exact optimal transport, the closed-form 1-D Wasserstein
distance, or explicit python loops.
"""

from __future__ import annotations

import itertools

import numpy as np
import ot
from hypothesis import given, settings
from hypothesis import strategies as st

import tabular
from tests.strategies import decmdps, seeds

SETTINGS = settings(deadline=None, max_examples=100)

support_sizes = st.integers(1, 30)
# the positive weights span twelve orders of magnitude; exact zeros make sparse vectors
positive_weights = st.one_of(st.floats(1e-6, 1.0), st.floats(1.0, 1e6))
sparse_weights = st.one_of(st.just(0.0), positive_weights)


def _normalized(w: np.ndarray, fallback: int) -> np.ndarray:
    """``w / w.sum()``, with a point mass at ``fallback`` when every weight is zero."""
    w = np.array(w, dtype=float)
    if not w.any():
        w[fallback % w.size] = 1.0
    return w / w.sum()


@st.composite
def distributions(draw, size: int) -> np.ndarray:
    weights = sparse_weights if draw(st.booleans()) else positive_weights
    w = draw(st.lists(weights, min_size=size, max_size=size))
    return _normalized(w, draw(st.integers(0, size - 1)))


@st.composite
def distribution_tuples(draw, count: int, max_size: int = 30) -> tuple[np.ndarray, ...]:
    """``count`` distributions over a common support; each one equals the one before with probability 1/5."""
    size = draw(st.integers(1, max_size))
    out = [draw(distributions(size))]
    for _ in range(count - 1):
        out.append(out[-1].copy() if draw(st.integers(0, 4)) == 4 else draw(distributions(size)))
    return tuple(out)


@st.composite
def conditional_tables(draw, n_states: int, action_shape: tuple[int, ...], deterministic_rows: bool = False):
    """An array (S, *action_shape) whose every ``[s]`` is a distribution over the action axes.

    With ``deterministic_rows`` each row is a point mass with probability 1/2 (always, if a drawn flag says so).
    """
    size = int(np.prod(action_shape))
    all_deterministic = deterministic_rows and draw(st.booleans())
    rows = []
    for _ in range(n_states):
        if deterministic_rows and (all_deterministic or draw(st.booleans())):
            row = np.zeros(size)
            row[draw(st.integers(0, size - 1))] = 1.0
        else:
            row = draw(distributions(size))
        rows.append(row)
    return np.array(rows).reshape((n_states, *action_shape))


def _hand_tv(p: np.ndarray, q: np.ndarray) -> float:
    return 0.5 * sum(abs(float(a) - float(b)) for a, b in zip(p.ravel(), q.ravel(), strict=True))


# --- W1 ------------------------------------------------------------------------------------------


@SETTINGS
@given(distribution_tuples(2))
def test_w1_01_metric_equals_exact_optimal_transport(pq):
    """W1 under the 0-1 metric equals TV (paper eq. 8); checked against POT's exact emd2 with M = 1 - I."""
    p, q = pq
    exact = ot.emd2(p, q, 1.0 - np.eye(p.size))
    assert abs(tabular.w1(p, q) - exact) <= 1e-10
    assert abs(tabular.tv(p, q) - exact) <= 1e-10


@SETTINGS
@given(st.data())
def test_w1_line_metric_equals_closed_form(data):
    """W1 for points on a line is the integral of |CDF_p - CDF_q|: an independent check of the metric path."""
    p, q = data.draw(distribution_tuples(2))
    x = np.sort(np.array(data.draw(st.lists(st.floats(-10.0, 10.0), min_size=p.size, max_size=p.size))))
    metric = np.abs(x[:, None] - x[None, :])
    cdf_gap = np.abs(np.cumsum(p) - np.cumsum(q))[:-1]
    closed_form = float(np.sum(cdf_gap * np.diff(x)))
    assert abs(tabular.w1(p, q, metric=metric) - closed_form) <= 1e-9


# --- TV ------------------------------------------------------------------------------------------


@SETTINGS
@given(distribution_tuples(3))
def test_tv_is_a_metric_on_distributions(pqr):
    p, q, r = pqr
    d_pq = tabular.tv(p, q)
    assert d_pq == tabular.tv(q, p)
    assert 0.0 <= d_pq <= 1.0 + 1e-12
    assert tabular.tv(p, p) == 0.0
    assert (d_pq == 0.0) == np.array_equal(p, q)
    assert tabular.tv(p, r) <= d_pq + tabular.tv(q, r) + 1e-12
    assert abs(d_pq - _hand_tv(p, q)) <= 1e-12


# --- per-state policy TV ---------------------------------------------------------------------


@st.composite
def policy_pairs(draw):
    n_states = draw(st.integers(1, 6))
    # per-agent policies (S, A_i) or joint ones (S, A_1, A_2)
    action_shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=2)))
    return (
        draw(conditional_tables(n_states, action_shape, deterministic_rows=True)),
        draw(conditional_tables(n_states, action_shape, deterministic_rows=True)),
    )


@SETTINGS
@given(policy_pairs())
def test_policy_tv_is_max_over_states_of_per_state_tv(pair):
    pi, mu = pair
    per_state = tabular.policy_tv_per_state(pi, mu)
    assert per_state.shape == (pi.shape[0],)
    by_hand = [_hand_tv(pi[s], mu[s]) for s in range(pi.shape[0])]
    np.testing.assert_allclose(per_state, by_hand, rtol=0, atol=1e-12)
    assert tabular.policy_tv(pi, mu) == per_state.max()
    assert abs(tabular.policy_tv(pi, mu) - max(by_hand)) <= 1e-12


# --- excess correlation kappa ----------------------------------------------------------------


def test_excess_correlation_of_perfect_coordination_is_one_half():
    mu = np.zeros((3, 2, 2))
    mu[:, 0, 0] = mu[:, 1, 1] = 0.5  # both agents copy a fair coin: marginals uniform, product 1/4 everywhere
    assert tabular.excess_correlation(mu) == 0.5
    assert tabular.excess_correlation(tabular.JointPolicy(mu)) == 0.5


@st.composite
def factor_lists(draw):
    n_states = draw(st.integers(1, 4))
    sizes = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))
    return [draw(conditional_tables(n_states, (a,), deterministic_rows=True)) for a in sizes]


@SETTINGS
@given(factor_lists())
def test_excess_correlation_of_a_product_is_zero(factors):
    joint = tabular.FactorizedPolicy(factors).joint()
    assert tabular.excess_correlation(tabular.JointPolicy(joint)) <= 1e-15
    assert tabular.excess_correlation(tabular.FactorizedPolicy(factors)) == 0.0


@SETTINGS
@given(st.data())
def test_random_correlated_policy_without_correlation_is_factorized(data):
    mdp = data.draw(decmdps(max_states=4, max_agents=3, max_actions=3))
    mu = tabular.random_correlated_policy(mdp, data.draw(seeds), correlation=0.0)
    assert tabular.excess_correlation(mu) <= 1e-12


def _brute_force_kappa(probs: np.ndarray) -> float:
    """sup_s TV(mu(. | s), prod_i mu_i(. | s)) with explicit loops over joint actions."""
    sizes = probs.shape[1:]
    joint_actions = list(itertools.product(*(range(a) for a in sizes)))
    kappa = 0.0
    for s in range(probs.shape[0]):
        marginals = [[0.0] * a for a in sizes]
        for action in joint_actions:
            for i, a_i in enumerate(action):
                marginals[i][a_i] += float(probs[(s, *action)])
        gap = 0.0
        for action in joint_actions:
            product = 1.0
            for i, a_i in enumerate(action):
                product *= marginals[i][a_i]
            gap += abs(float(probs[(s, *action)]) - product)
        kappa = max(kappa, 0.5 * gap)
    return kappa


@st.composite
def joint_policies(draw):
    if draw(st.booleans()):
        n_states = draw(st.integers(1, 3))
        sizes = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=3)))
        return draw(conditional_tables(n_states, sizes, deterministic_rows=True))
    mdp = draw(decmdps(max_states=3, max_agents=3, max_actions=3))
    return tabular.random_correlated_policy(mdp, draw(seeds), correlation=draw(st.floats(0.0, 1.0))).probs


@SETTINGS
@given(joint_policies())
def test_excess_correlation_matches_brute_force(probs):
    kappa = tabular.excess_correlation(probs)
    assert abs(kappa - _brute_force_kappa(probs)) <= 1e-12
    assert 0.0 <= kappa <= 1.0


# --- policy_at_distance --------------------------------------------------------------------------


@st.composite
def marginal_policies(draw):
    n_states = draw(st.integers(1, 6))
    n_actions = draw(st.integers(1, 6))
    return draw(conditional_tables(n_states, (n_actions,), deterministic_rows=True))


@SETTINGS
@given(marginal_policies(), st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0)), seeds)
def test_policy_at_distance_hits_the_distance_in_every_state(mu_i, fraction, seed):
    reachable = float((1.0 - mu_i.min(axis=1)).min())
    if np.all(mu_i.max(axis=1) == 1.0) and mu_i.shape[1] > 1:
        assert reachable == 1.0  # deterministic rows can be moved all the way to TV 1
    distance = fraction * reachable
    pi_i = tabular.policy_at_distance(mu_i, distance, seed)
    assert pi_i.shape == mu_i.shape
    assert np.all(pi_i >= 0.0)
    np.testing.assert_allclose(pi_i.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    tabular.JointPolicy(pi_i)  # passes the package's own stochasticity check
    for s in range(mu_i.shape[0]):
        assert abs(_hand_tv(pi_i[s], mu_i[s]) - distance) <= 1e-12
    np.testing.assert_allclose(tabular.policy_tv_per_state(pi_i, mu_i), distance, rtol=0, atol=1e-12)
