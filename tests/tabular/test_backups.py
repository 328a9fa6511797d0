"""Partial-action-replacement backups (eq. 1, 3) against enumeration over actions and subsets."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from tabular import reference
from tabular.backups import individual_backups, k_backups, subset_backup
from tabular.datasets import sample_dataset
from tests.strategies import instances, seeds, subsets


@st.composite
def backup_cases(draw):
    mdp, mu, pi = draw(instances(max_states=4, max_agents=4, max_actions=3))
    dataset = sample_dataset(mdp, mu, draw(st.integers(1, 30)), draw(seeds))
    q = np.random.default_rng(draw(seeds)).uniform(-5, 5, size=mdp.R.shape)
    return dataset, q, pi


@given(backup_cases(), st.data())
def test_subset_backup_matches_enumeration(case, data):
    """B_K Q(s', a') = sum over the deviating agents' actions of prod_{i in K} pi_i(a'_i|s') Q(s', a'_K, a'_-K)."""
    dataset, q, pi = case
    subset = data.draw(subsets(dataset.n_agents))
    expected = reference.subset_backup(q, dataset, pi.factors, subset)
    np.testing.assert_allclose(subset_backup(q, dataset, pi, subset), expected, rtol=0, atol=1e-12)


@given(backup_cases())
def test_k_backups_average_every_subset_of_each_size(case):
    """T^(k): the next value averages B_K Q over the C(n, k) subsets of size k (K uniform, eq. 3)."""
    dataset, q, pi = case
    np.testing.assert_allclose(
        k_backups(q, dataset, pi), reference.k_backups(q, dataset, pi.factors), rtol=0, atol=1e-12
    )


@given(backup_cases())
def test_averaged_individual_operator_is_the_one_agent_operator(case):
    """T^ai = (1/n) sum_i T_i^ind (eq. 15) equals T^(1); k = 0 reads the logged action, k = n follows pi."""
    dataset, q, pi = case
    per_k = k_backups(q, dataset, pi)
    np.testing.assert_allclose(per_k[:, 1], individual_backups(q, dataset, pi).mean(axis=1), rtol=0, atol=1e-12)
    logged = q[(dataset.next_states, *dataset.next_actions.T)]
    np.testing.assert_allclose(per_k[:, 0], logged, rtol=0, atol=0)
    expected_under_pi = (q[dataset.next_states] * pi.joint()[dataset.next_states]).reshape(len(dataset), -1).sum(axis=1)
    np.testing.assert_allclose(per_k[:, -1], expected_under_pi, rtol=0, atol=1e-12)
