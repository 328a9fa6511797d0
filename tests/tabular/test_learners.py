"""Tabular offline learners: exact limits, one step against a slow reference, SPaCQL's weights, argument checks."""

import inspect

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.optimize import minimize

import tabular
from tabular import learners, reference
from tabular.datasets import Dataset, exact_dataset, sample_dataset
from tests.strategies import decmdps, seeds


@st.composite
def covered_instances(draw):
    """Small Dec-MDPs with a full-support factorized behavior, so exact data cover every action."""
    mdp = draw(decmdps(max_states=4, max_agents=3, max_actions=3))
    mu = tabular.random_factorized_policy(mdp, draw(seeds), concentration=draw(st.sampled_from([0.5, 1.0, 5.0])))
    return mdp, mu


@given(covered_instances(), seeds)
def test_fqe_on_exact_data_equals_q_pi(instance, seed):
    """With exact data covering every action, fitted evaluation converges to Q^pi."""
    mdp, mu = instance
    pi = tabular.random_factorized_policy(mdp, seed)
    result = learners.fitted_q_evaluation(exact_dataset(mdp, mu), mdp.gamma, pi, tol=1e-12)
    assert result.converged
    np.testing.assert_allclose(result.q, tabular.q_policy(mdp, pi), rtol=0, atol=1e-9)


@given(covered_instances())
def test_q_learning_on_exact_data_equals_q_star(instance):
    """With exact data covering every action, greedy full-joint Q-learning converges to Q*."""
    mdp, mu = instance
    result = learners.q_learning(exact_dataset(mdp, mu), mdp.gamma, tol=1e-12)
    optimum = tabular.q_optimal(mdp, tol=1e-11)
    assert result.converged
    np.testing.assert_allclose(result.q, optimum.q, rtol=0, atol=1e-9)
    greedy = tabular.q_policy(mdp, result.policy)
    np.testing.assert_allclose(greedy, optimum.q, rtol=0, atol=1e-8)


def _behavior_marginals(dataset):
    flat = dataset.empirical_behavior().reshape(dataset.n_states, -1)
    flat[flat.sum(axis=1) == 0] = 1.0 / flat.shape[1]
    joint = flat.reshape((dataset.n_states, *dataset.action_sizes))
    return [joint.sum(axis=tuple(j for j in range(1, joint.ndim) if j != i)) for i in range(1, joint.ndim)]


def assert_minimizes_penalized_loss(q, dataset, targets, G, alpha, v_max):
    """KKT conditions of min_Q mean_i E_D[(Q(s,a) - y_i)^2] + alpha sum G Q over |Q| <= v_max, cell by cell.

    ``targets`` has shape (n_targets, N): one row per averaged loss term (eq. 2 averages agents).
    """
    cells = (dataset.states, *dataset.actions.T)
    data_weight, target_sum = np.zeros(G.shape), np.zeros(G.shape)
    np.add.at(data_weight, cells, dataset.weights)
    np.add.at(target_sum, cells, dataset.weights * targets.mean(axis=0))
    gradient = 2.0 * (data_weight * q - target_sum) + alpha * G
    at_floor, at_ceiling = q <= -v_max + 1e-12, q >= v_max - 1e-12
    free = (data_weight == 0) & ((alpha == 0) | (G == 0))  # no data, no penalty: the initial value 0 stays
    interior = ~(at_floor | at_ceiling | free)
    assert np.all(np.abs(gradient[interior]) <= 1e-9)
    assert np.all(gradient[at_floor & ~free] >= -1e-9) and np.all(gradient[at_ceiling & ~free] <= 1e-9)
    assert np.all(q[free] == 0.0)


@pytest.mark.parametrize("kind", ["joint", "counterfactual"])
@given(covered_instances(), st.integers(1, 40), seeds, st.floats(0.0, 3.0))
def test_one_cql_sweep_minimizes_the_penalized_loss(kind, instance, size, seed, alpha):
    """One sweep from Q = 0 solves min_Q E_D[(Q(s,a) - r)^2] + alpha sum G Q over |Q| <= 1/(1-gamma) (eq. 2, 5)."""
    mdp, mu = instance
    dataset = sample_dataset(mdp, mu, size, seed)
    result = learners.cql(dataset, mdp.gamma, alpha, penalty=kind, max_iter=1, max_policy_iter=1)
    G = reference.conservative_penalty(dataset, _behavior_marginals(dataset), kind)
    cells = (dataset.states, *dataset.actions.T)
    v_max = 1.0 / (1.0 - mdp.gamma)

    def loss(flat):
        table = flat.reshape(G.shape)
        return float(dataset.weights @ (table[cells] - dataset.rewards) ** 2 + alpha * (G * table).sum())

    assert_minimizes_penalized_loss(result.q, dataset, dataset.rewards[None], G, alpha, v_max)
    # and no point of the box does better (L-BFGS-B from the same start as a second opinion)
    solution = minimize(
        loss,
        np.zeros(G.size),
        bounds=[(-v_max, v_max)] * G.size,
        method="L-BFGS-B",
        options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10_000},
    )
    assert loss(result.q.ravel()) <= solution.fun + 1e-12


@given(covered_instances(), st.integers(1, 30), seeds, st.floats(0.0, 3.0))
def test_icql_qs_second_sweep_minimizes_the_averaged_individual_losses(instance, size, seed, alpha):
    """Sweep 2 minimizes (1/n) sum_i [E_D[(Q - T_i^ind Q_1)^2] + alpha (E_{a_i~pi_i} Q - E_D Q)] (eq. 1-2).

    The targets y_i = r + gamma sum_{a'_i} pi_i(a'_i|s') Q_1(s', a'_i, a'_-i) are enumerated action by
    action (tabular.reference.subset_backup) from the first sweep's table Q_1.
    """
    mdp, mu = instance
    dataset = sample_dataset(mdp, mu, size, seed)
    first = learners.icql_qs(dataset, mdp.gamma, alpha, max_iter=1, max_policy_iter=1)
    second = learners.icql_qs(dataset, mdp.gamma, alpha, max_iter=2, max_policy_iter=1)
    behavior = _behavior_marginals(dataset)
    targets = np.stack(
        [
            dataset.rewards + mdp.gamma * reference.subset_backup(first.q, dataset, behavior, [i])
            for i in range(dataset.n_agents)
        ]
    )
    G = reference.conservative_penalty(dataset, behavior, "counterfactual")
    assert_minimizes_penalized_loss(second.q, dataset, targets, G, alpha, 1.0 / (1.0 - mdp.gamma))


@given(covered_instances(), st.floats(0.01, 10.0), seeds)
def test_softmax_improvement_is_a_softmax_of_the_others_averaged_value(instance, temperature, seed):
    """pi_i(a_i|s) proportional to exp(E_{a_-i ~ D(s)} Q(s, a_i, a_-i) / temperature) (Algorithm 1, line 20)."""
    mdp, mu = instance
    dataset = sample_dataset(mdp, mu, 50, seed)
    result = learners.icql_qs(dataset, mdp.gamma, 1.0, temperature=temperature, max_policy_iter=1)
    behavior = dataset.empirical_behavior().reshape(mdp.n_states, -1)
    behavior[behavior.sum(axis=1) == 0] = 1.0 / behavior.shape[1]
    behavior = behavior.reshape(mdp.R.shape)
    for i in range(mdp.n_agents):
        others = behavior.sum(axis=1 + i, keepdims=True)
        value = (others * result.q).sum(axis=tuple(1 + j for j in range(mdp.n_agents) if j != i))
        expected = np.exp((value - value.max(axis=1, keepdims=True)) / temperature)
        np.testing.assert_allclose(result.policy.factors[i], expected / expected.sum(axis=1, keepdims=True), atol=1e-12)


@given(st.lists(st.floats(1e-6, 1e3), min_size=1, max_size=8))
def test_uncertainty_weights_sum_to_one_and_reverse_the_order_of_uncertainty(uncertainty):
    """w_k = (1/u_k) / sum_k (1/u_k) (eq. 7): more disagreement on k gives less weight to k."""
    u = np.array(uncertainty)
    w = learners.uncertainty_weights(u)
    assert abs(w.sum() - 1.0) <= 1e-12 and np.all(w > 0)
    for a in range(len(u)):
        for b in range(len(u)):
            if u[a] < u[b]:
                assert w[a] > w[b]
    np.testing.assert_allclose(
        w * (u + learners.UNCERTAINTY_FLOOR), 1.0 / (1.0 / (u + learners.UNCERTAINTY_FLOOR)).sum()
    )


@given(st.integers(2, 3), seeds)
def test_spacql_weights_come_from_the_final_ensemble(n_agents, seed):
    """The reported w_k(s) average, over transitions into s, eq. 7 applied to the last ensemble's std."""
    mdp = tabular.random_decmdp(3, (2,) * n_agents, 0.8, seed)
    mu = tabular.random_factorized_policy(mdp, seed + 1)
    dataset = sample_dataset(mdp, mu, 40, seed)
    result = learners.spacql(dataset, mdp.gamma, 0.5, n_members=4, seed=seed, max_iter=3, max_policy_iter=1)
    np.testing.assert_allclose(result.weights.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert result.q_ensemble.shape == (4, *mdp.R.shape)
    # rebuild the weights of the last sweep: the ensemble before it is not returned, so rerun one sweep fewer
    before = learners.spacql(dataset, mdp.gamma, 0.5, n_members=4, seed=seed, max_iter=2, max_policy_iter=1)
    from tabular.backups import k_backups

    policy = tabular.FactorizedPolicy(_behavior_marginals(dataset))
    deviating = np.stack([k_backups(member, dataset, policy)[:, 1:] for member in before.q_ensemble])
    per_transition = learners.uncertainty_weights(deviating.std(axis=0))
    expected = np.full((mdp.n_states, n_agents), 1.0 / n_agents)
    for s in range(mdp.n_states):
        into = dataset.next_states == s
        if into.any():
            expected[s] = dataset.weights[into] @ per_transition[into] / dataset.weights[into].sum()
    np.testing.assert_allclose(result.weights, expected, rtol=0, atol=1e-12)


def test_fixed_k_and_uniform_ablations_set_the_weights():
    mdp = tabular.random_decmdp(3, (2, 2, 2), 0.9, seed=0)
    dataset = sample_dataset(mdp, tabular.random_factorized_policy(mdp, 1), 60, 2)
    uniform = learners.spacql(dataset, mdp.gamma, 1.0, weighting="uniform", max_policy_iter=2)
    np.testing.assert_allclose(uniform.weights, 1.0 / 3)
    fixed = learners.spacql(dataset, mdp.gamma, 1.0, weighting=2, max_policy_iter=2)
    np.testing.assert_allclose(fixed.weights, np.tile([0.0, 1.0, 0.0], (3, 1)))


def test_same_seed_gives_the_same_learner_output():
    mdp = tabular.random_decmdp(3, (2, 3), 0.9, seed=4)
    dataset = sample_dataset(mdp, tabular.random_factorized_policy(mdp, 5), 80, 6)
    first, second = (learners.spacql(dataset, mdp.gamma, 1.0, seed=7, max_policy_iter=3) for _ in range(2))
    assert np.array_equal(first.q_ensemble, second.q_ensemble)
    assert np.array_equal(first.weights, second.weights)


def test_bad_input_names_the_argument():
    mdp = tabular.random_decmdp(2, (2, 2), 0.9, seed=0)
    with pytest.raises(ValueError, match="states: a dataset needs a non-empty"):
        Dataset(
            np.array([], dtype=int),
            np.zeros((0, 2), int),
            np.zeros(0),
            np.array([], dtype=int),
            np.zeros((0, 2), int),
            np.zeros(0),
            2,
            (2, 2),
        )
    with pytest.raises(ValueError, match="next_states: indices must lie in"):
        Dataset(
            np.array([0]),
            np.array([[0, 1]]),
            np.array([0.5]),
            np.array([2]),
            np.array([[0, 0]]),
            np.array([1.0]),
            2,
            (2, 2),
        )
    with pytest.raises(ValueError, match="actions: agent 1's actions must lie in"):
        Dataset(
            np.array([0]),
            np.array([[0, 2]]),
            np.array([0.5]),
            np.array([1]),
            np.array([[0, 0]]),
            np.array([1.0]),
            2,
            (2, 2),
        )
    with pytest.raises(ValueError, match="weights: must be finite, non-negative and sum to 1"):
        Dataset(
            np.array([0]),
            np.array([[0, 1]]),
            np.array([0.5]),
            np.array([1]),
            np.array([[0, 0]]),
            np.array([0.7]),
            2,
            (2, 2),
        )
    with pytest.raises(ValueError, match="size: a dataset needs at least one transition"):
        sample_dataset(mdp, tabular.random_factorized_policy(mdp, 1), 0, 2)


LEARNERS = ("fitted_q_evaluation", "q_learning", "cql", "icql_qs", "spacql")
INF, NAN = float("inf"), float("nan")
# (argument, bad value, the message after "<argument>: must be "); the instance has 2 agents
BAD_ARGUMENTS = [
    ("dataset", "data.npz", "a tabular.datasets.Dataset, got str"),
    ("gamma", 1.0, "a number in [0, 1), got 1.0"),
    ("gamma", -0.1, "a number in [0, 1), got -0.1"),
    ("gamma", NAN, "a number in [0, 1), got nan"),
    ("gamma", "0.9", "a number in [0, 1), got '0.9'"),
    ("gamma", True, "a number in [0, 1), got True"),
    ("pi", None, "a FactorizedPolicy (per-agent learned policies), got NoneType"),
    ("alpha", -1.0, "a number in [0, inf), got -1.0"),
    ("alpha", INF, "a number in [0, inf), got inf"),
    ("alpha", NAN, "a number in [0, inf), got nan"),
    ("alpha", True, "a number in [0, inf), got True"),
    ("penalty", "both", "one of joint, counterfactual, got 'both'"),
    ("penalty", None, "one of joint, counterfactual, got None"),
    ("temperature", 0.0, "a number in (0, inf), got 0.0"),
    ("temperature", -1.0, "a number in (0, inf), got -1.0"),
    ("temperature", INF, "a number in (0, inf), got inf"),
    ("temperature", "1", "a number in (0, inf), got '1'"),
    ("max_iter", 0, "an integer >= 1, got 0"),
    ("max_iter", 2.5, "an integer >= 1, got 2.5"),
    ("max_iter", True, "an integer >= 1, got True"),
    ("max_policy_iter", 0, "an integer >= 1, got 0"),
    ("max_policy_iter", 1.5, "an integer >= 1, got 1.5"),
    ("max_policy_iter", "50", "an integer >= 1, got '50'"),
    ("tol", 0.0, "a number in (0, inf), got 0.0"),
    ("tol", -1e-3, "a number in (0, inf), got -0.001"),
    ("tol", NAN, "a number in (0, inf), got nan"),
    ("tol", None, "a number in (0, inf), got None"),
    ("n_members", 1, "an integer >= 2, got 1"),
    ("n_members", 2.5, "an integer >= 2, got 2.5"),
    ("n_members", True, "an integer >= 2, got True"),
    ("weighting", "soft", "uncertainty, uniform or an integer k in [1, 2], got 'soft'"),
    ("weighting", 0, "uncertainty, uniform or an integer k in [1, 2], got 0"),
    ("weighting", 3, "uncertainty, uniform or an integer k in [1, 2], got 3"),
    ("weighting", True, "uncertainty, uniform or an integer k in [1, 2], got True"),
    ("weighting", 1.5, "uncertainty, uniform or an integer k in [1, 2], got 1.5"),
    ("seed", -1, "an integer >= 0, got -1"),
    ("seed", 1.5, "an integer >= 0, got 1.5"),
    ("seed", True, "an integer >= 0, got True"),
    ("seed", None, "an integer >= 0, got None"),
]


def learner_calls() -> list:
    """Every (learner, bad argument) pair: each bad value of each argument, for every learner that takes it."""
    return [
        pytest.param(name, argument, value, message, id=f"{name}-{argument}={value!r}")
        for name in LEARNERS
        for argument, value, message in BAD_ARGUMENTS
        if argument in inspect.signature(getattr(learners, name)).parameters
    ]


@pytest.fixture(scope="module")
def two_agent_data():
    mdp = tabular.random_decmdp(2, (2, 2), 0.9, seed=0)
    mu = tabular.random_factorized_policy(mdp, 1)
    return exact_dataset(mdp, mu), mu


@pytest.mark.parametrize(("learner", "argument", "value", "message"), learner_calls())
def test_a_bad_learner_argument_is_named_with_its_value_and_range(two_agent_data, learner, argument, value, message):
    dataset, mu = two_agent_data
    parameters = inspect.signature(getattr(learners, learner)).parameters
    valid = {"dataset": dataset, "gamma": 0.9, "pi": mu, "alpha": 1.0}
    arguments = {name: value for name, value in valid.items() if name in parameters} | {argument: value}
    with pytest.raises(ValueError) as error:
        getattr(learners, learner)(**arguments)
    assert str(error.value) == f"{argument}: must be {message}"


def test_every_learner_argument_has_bad_values_checked():
    arguments = {name for learner in LEARNERS for name in inspect.signature(getattr(learners, learner)).parameters}
    assert arguments == {argument for argument, _, _ in BAD_ARGUMENTS}


def test_a_learner_refuses_options_that_do_not_apply_to_it(two_agent_data):
    """No silently ignored option: Q-learning's policy is greedy, FQE does not improve, only SPaCQL has members."""
    dataset, mu = two_agent_data
    with pytest.raises(TypeError, match="temperature"):
        learners.q_learning(dataset, 0.9, temperature=0.5)
    with pytest.raises(TypeError, match="max_policy_iter"):
        learners.fitted_q_evaluation(dataset, 0.9, mu, max_policy_iter=3)
    with pytest.raises(TypeError, match="n_members"):
        learners.cql(dataset, 0.9, 1.0, n_members=3)


def test_learner_arguments_may_be_numpy_scalars(two_agent_data):
    dataset, _ = two_agent_data
    plain = learners.spacql(dataset, 0.9, 1.0, n_members=3, weighting=2, seed=4, max_policy_iter=2, tol=1e-8)
    numpy = learners.spacql(
        dataset,
        np.float64(0.9),
        np.float32(1.0),
        n_members=np.int64(3),
        weighting=np.int8(2),
        seed=np.uint16(4),
        max_policy_iter=np.int32(2),
        tol=np.float64(1e-8),
    )
    np.testing.assert_array_equal(plain.q_ensemble, numpy.q_ensemble)
