"""Proposition 1 (eq. 15-16): gradient equivalence of ICQL-QS on the tabular parameterization theta = Q."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import bounds
import tabular
from tabular.datasets import exact_dataset, sample_dataset
from tests.strategies import gammas, instances, q_hats, seeds


@st.composite
def gradient_cases(draw):
    """(dataset, q, pi, gamma): a sampled or exact dataset of a small instance, a Q table and a discount.

    The discount of the targets is drawn apart from the instance's: Proposition 1 holds for any.
    """
    mdp, mu, pi = draw(instances(max_states=4, max_agents=3, max_actions=3))
    if draw(st.booleans()):
        dataset = exact_dataset(mdp, mu)
    else:
        dataset = sample_dataset(mdp, mu, draw(st.integers(1, 200)), draw(seeds))
    return dataset, draw(q_hats(mdp, pi)), pi, draw(gammas)


@given(gradient_cases())
def test_averaged_individual_semi_gradients_equal_the_centralized_one(case):
    """(1/n) sum_i grad J_i(theta) = grad J^centralized(theta) with targets held fixed   (Proposition 1, eq. 15-16)."""
    check = bounds.proposition1(*case)
    assert check.holds
    assert check.lhs <= 1e-12
    assert np.array_equal(check.lhs, np.abs(check.grad_averaged - check.grad_centralized).max())


def individual_target(dataset, q, pi, gamma, t, i) -> float:
    """``y_{t,i} = r_t + gamma sum_b pi_i(b | s'_t) Q(s'_t, a'_t with a'_i replaced by b)``, one transition."""
    s_next, a_next = dataset.next_states[t], list(dataset.next_actions[t])
    expected = 0.0
    for b, probability in enumerate(pi.factors[i][s_next]):
        replaced = [*a_next[:i], b, *a_next[i + 1 :]]
        expected += probability * q[(s_next, *replaced)]
    return dataset.rewards[t] + gamma * expected


@given(gradient_cases())
def test_gradients_and_losses_match_a_per_transition_recomputation(case):
    """grad J_i[s, a] = sum_{t: (s_t, a_t) = (s, a)} w_t (Q(s, a) - y_{t,i}), J_i = 1/2 sum_t w_t (Q_t - y_{t,i})^2.

    Accumulated transition by transition, from targets y_{t,i} = r_t + gamma E_{b ~ pi_i(.|s'_t)} Q(s'_t, a'_{-i}, b)
    built by hand.
    """
    dataset, q, pi, gamma = case
    check = bounds.proposition1(dataset, q, pi, gamma)
    n = dataset.n_agents
    averaged, centralized = np.zeros(q.shape), np.zeros(q.shape)
    loss_averaged = loss_centralized = 0.0
    for t in range(len(dataset)):
        cell = (dataset.states[t], *dataset.actions[t])
        targets = [individual_target(dataset, q, pi, gamma, t, i) for i in range(n)]
        weight = dataset.weights[t]
        for y in targets:
            averaged[cell] += weight * (q[cell] - y) / n
            loss_averaged += 0.5 * weight * (q[cell] - y) ** 2 / n
        centralized[cell] += weight * (q[cell] - sum(targets) / n)
        loss_centralized += 0.5 * weight * (q[cell] - sum(targets) / n) ** 2
    assert np.allclose(check.grad_averaged, averaged, rtol=1e-9, atol=1e-10)
    assert np.allclose(check.grad_centralized, centralized, rtol=1e-9, atol=1e-10)
    assert np.isclose(check.loss_averaged, loss_averaged, rtol=1e-9, atol=1e-10)
    assert np.isclose(check.loss_centralized, loss_centralized, rtol=1e-9, atol=1e-10)


@given(gradient_cases())
def test_loss_gap_is_half_the_weighted_variance_of_the_targets(case):
    """J^ai(theta) - J^centralized(theta) = 1/2 E_w[Var_i y_i] >= 0: the losses differ although the gradients agree."""
    check = bounds.proposition1(*case)
    targets = check.details["targets"]
    variance = 0.5 * sum(w * np.var(row) for w, row in zip(case[0].weights, targets, strict=True))
    assert np.isclose(check.target_variance_term, variance, rtol=1e-9, atol=1e-12)
    assert np.isclose(check.loss_gap, check.target_variance_term, rtol=1e-8, atol=1e-10)
    assert check.loss_gap == check.loss_averaged - check.loss_centralized
    assert check.loss_gap >= -1e-10


def test_losses_differ_when_the_individual_targets_disagree():
    """Two agents whose deviations lead to different next values: equal gradients, a positive loss gap."""
    mdp = tabular.random_decmdp(3, (2, 2), 0.9, seed=0)
    mu = tabular.random_factorized_policy(mdp, seed=1)
    pi = tabular.perturbed_policy(mu, 0.5, seed=2)
    q = np.random.default_rng(3).uniform(-5, 5, size=mdp.R.shape)
    check = bounds.proposition1(exact_dataset(mdp, mu), q, pi, mdp.gamma)
    assert check.holds and check.target_variance_term > 0.01
    assert np.isclose(check.loss_gap, check.target_variance_term, rtol=1e-10)


# --- validation -------------------------------------------------------------------------------


@pytest.fixture
def setting():
    mdp = tabular.random_decmdp(3, (2, 3), 0.9, seed=0)
    mu = tabular.random_factorized_policy(mdp, seed=1)
    return sample_dataset(mdp, mu, 20, seed=2), np.zeros(mdp.R.shape), tabular.perturbed_policy(mu, 0.2, seed=3)


@pytest.mark.parametrize("gamma", [1.0, -0.1, float("nan"), "high"])
def test_proposition1_rejects_gamma_outside_the_unit_interval(setting, gamma):
    with pytest.raises(ValueError, match=r"gamma: must"):
        bounds.proposition1(*setting, gamma)


def test_proposition1_rejects_bad_q_pi_and_dataset(setting):
    dataset, q, pi = setting
    with pytest.raises(ValueError, match=r"q: expected shape \(3, 2, 3\)"):
        bounds.proposition1(dataset, np.zeros((3, 6)), pi, 0.9)
    with pytest.raises(ValueError, match=r"q: contains NaN"):
        bounds.proposition1(dataset, np.full(q.shape, np.nan), pi, 0.9)
    with pytest.raises(ValueError, match=r"pi: must be a FactorizedPolicy"):
        bounds.proposition1(dataset, q, tabular.JointPolicy(pi.joint()), 0.9)
    with pytest.raises(ValueError, match=r"dataset: must be a tabular\.datasets\.Dataset"):
        bounds.proposition1({"states": dataset.states}, q, pi, 0.9)
