"""Partial-action-replacement backups at the dataset's next states (paper, eq. 1, 3 and 6).

For a transition with logged next joint action ``a'`` and a set ``K`` of deviating agents, the
partial next action ``a'^(K)`` takes ``a'_i ~ pi_i(. | s')`` for ``i in K`` and keeps ``a'_j`` for
``j not in K``. All functions here return the *expected* next value over the ``pi_i`` draws,

    B_K Q(s', a') = E_{a'_K ~ pi_K(. | s')} Q(s', a'_K, a'_{-K}),

computed by contracting one agent axis of ``Q[s']`` at a time (never building a joint policy).
Then ``T_i^ind Q = r + gamma B_{{i}} Q`` (eq. 1) and ``T^(k) Q = r + gamma mean_{|K| = k} B_K Q``
(eq. 3, K uniform among the subsets of size k).
"""

from __future__ import annotations

from math import comb, prod

import numpy as np

from ._validate import as_float_array, check_memory, check_subset, joint_actions_text
from .datasets import Dataset
from .policies import FactorizedPolicy


def _check(q, dataset: Dataset, pi: FactorizedPolicy) -> np.ndarray:
    q = as_float_array("q", q)
    expected = (dataset.n_states, *dataset.action_sizes)
    if q.shape != expected:
        raise ValueError(f"q: expected shape {expected} (S, A_1, ..., A_n) to match the dataset, got {q.shape}")
    if not isinstance(pi, FactorizedPolicy):
        raise ValueError(f"pi: must be a FactorizedPolicy (per-agent learned policies), got {type(pi).__name__}")
    if (pi.n_states, pi.action_sizes) != (dataset.n_states, dataset.action_sizes):
        raise ValueError(
            f"pi: has {pi.n_states} states and action sizes {pi.action_sizes}, "
            f"but the dataset has {dataset.n_states} and {dataset.action_sizes}"
        )
    check_memory(
        "dataset",
        f"{len(dataset)} transitions over {joint_actions_text(dataset.action_sizes)} joint actions",
        [
            (
                f"Q at the next states and its contractions: 3 x {len(dataset)} transitions x "
                f"{joint_actions_text(dataset.action_sizes, short=True)} joint actions x 8 bytes",
                3 * len(dataset) * prod(dataset.action_sizes) * 8,
            )
        ],
    )
    return q


def _reduce_first_agent(values: np.ndarray, deviates: bool, pi_i: np.ndarray, logged: np.ndarray, states):
    """Remove the leading agent axis of ``values`` [N, A_i, ...]: average under pi_i or pick the logged action."""
    if deviates:
        return np.einsum("na,na...->n...", pi_i[states], values)
    return values[np.arange(len(values)), logged]


def subset_backup(q, dataset: Dataset, pi: FactorizedPolicy, subset) -> np.ndarray:
    """``B_K Q`` for every transition, shape (N,): agents in ``subset`` deviate to ``pi_i``."""
    q = _check(q, dataset, pi)
    members = set(check_subset(subset, dataset.n_agents))
    values = q[dataset.next_states]  # [N, A_1, ..., A_n]
    for i in range(dataset.n_agents):
        values = _reduce_first_agent(
            values, i in members, pi.factors[i], dataset.next_actions[:, i], dataset.next_states
        )
    return values


def individual_backups(q, dataset: Dataset, pi: FactorizedPolicy) -> np.ndarray:
    """``B_{{i}} Q`` for every transition and agent, shape (N, n): the next values of ``T_i^ind`` (eq. 1)."""
    return np.stack([subset_backup(q, dataset, pi, [i]) for i in range(dataset.n_agents)], axis=1)


def k_backups(q, dataset: Dataset, pi: FactorizedPolicy) -> np.ndarray:
    """``mean_{|K| = k} B_K Q`` for every transition and ``k = 0..n``, shape (N, n + 1).

    Column 0 is ``Q(s', a')`` at the logged next action, column ``n`` is ``E_{a' ~ pi} Q(s', a')``,
    and column ``k`` is the next value of ``T^(k)`` (eq. 3). The sum over subsets of each size is
    accumulated agent by agent: after agent ``i``, ``partial[j]`` holds the sum over the subsets of
    agents ``0..i`` with ``j`` members, so ``n (n + 1)`` contractions replace ``2^n``.
    """
    q = _check(q, dataset, pi)
    n = dataset.n_agents
    partial = [q[dataset.next_states]]  # partial[j]: [N, A_{i+1}, ..., A_n]
    for i in range(n):
        logged = [
            _reduce_first_agent(v, False, pi.factors[i], dataset.next_actions[:, i], dataset.next_states)
            for v in partial
        ]
        deviated = [
            _reduce_first_agent(v, True, pi.factors[i], dataset.next_actions[:, i], dataset.next_states)
            for v in partial
        ]
        partial = [
            (logged[j] if j < len(logged) else 0.0) + (deviated[j - 1] if j >= 1 else 0.0)
            for j in range(len(partial) + 1)
        ]
    return np.stack([partial[k] / comb(n, k) for k in range(n + 1)], axis=1)
