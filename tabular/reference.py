"""Slow, obviously-correct numpy versions of the engine, for tests and benchmarks only.

Everything here builds the joint policy as a full array and follows the textbook formula
literally; the fast engine must agree with it on random inputs.
"""

from __future__ import annotations

import itertools
import string

import numpy as np

from .mdp import DecMDP


def joint_from_factors(factors) -> np.ndarray:
    """``phi(a | s) = prod_i phi_i(a_i | s)`` as an array (S, A_1, ..., A_n), by one einsum."""
    letters = "".join(c for c in string.ascii_letters if c != "s")[: len(factors)]
    inputs = ",".join(f"s{letter}" for letter in letters)
    return np.einsum(f"{inputs}->s{letters}", *factors)


def mixed_joint(pi_factors, mu_marginals, subset) -> np.ndarray:
    """The joint array of ``pi^(S)``: agents in ``subset`` use ``pi_i``, the others ``mu_j``."""
    return joint_from_factors([pi_factors[i] if i in subset else mu_marginals[i] for i in range(len(pi_factors))])


def kernel(mdp: DecMDP, joint: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``P^phi = sum_a phi(a | s) P(. | s, a)`` and ``r^phi`` from the joint array, by einsum."""
    S = mdp.n_states
    flat = joint.reshape(S, -1)
    P_phi = np.einsum("sa,sat->st", flat, mdp.P.reshape(S, -1, S))
    r_phi = np.einsum("sa,sa->s", flat, mdp.R.reshape(S, -1))
    return P_phi, r_phi


def occupancy(mdp: DecMDP, joint: np.ndarray) -> np.ndarray:
    """``d = (1 - gamma) d0^T (I - gamma P^phi)^{-1}`` with an explicit solve."""
    P_phi, _ = kernel(mdp, joint)
    return np.linalg.solve((np.eye(mdp.n_states) - mdp.gamma * P_phi).T, (1.0 - mdp.gamma) * mdp.d0)


def occupancy_power_series(mdp: DecMDP, joint: np.ndarray, n_terms: int) -> np.ndarray:
    """``(1 - gamma) sum_{t < n_terms} gamma^t d0^T (P^phi)^t``: the truncated Neumann series."""
    P_phi, _ = kernel(mdp, joint)
    term = (1.0 - mdp.gamma) * mdp.d0
    total = np.zeros_like(term)
    for _ in range(n_terms):
        total += term
        term = mdp.gamma * term @ P_phi
    return total


def all_subset_occupancies(mdp: DecMDP, pi_factors, mu_marginals) -> np.ndarray:
    """Every ``d^(S)`` from scratch: build the joint ``pi^(S)``, einsum, solve; rows by bit mask."""
    n = len(pi_factors)
    rows = []
    for mask in range(2**n):
        subset = {i for i in range(n) if mask >> i & 1}
        rows.append(occupancy(mdp, mixed_joint(pi_factors, mu_marginals, subset)))
    return np.array(rows)


def q_policy(mdp: DecMDP, joint: np.ndarray) -> np.ndarray:
    """``Q^phi`` from the state-action Bellman equation ``Q = R + gamma P Pi Q`` solved directly.

    ``(P Pi)[(s, a), (s', a')] = P(s' | s, a) phi(a' | s')``: a linear system on S * |A| unknowns.
    """
    S = mdp.n_states
    P = mdp.P.reshape(S, -1, S)
    n_joint = P.shape[1]
    flat = joint.reshape(S, n_joint)
    state_action_kernel = (P[:, :, :, None] * flat[None, None, :, :]).reshape(S * n_joint, S * n_joint)
    q = np.linalg.solve(np.eye(S * n_joint) - mdp.gamma * state_action_kernel, mdp.R.reshape(-1))
    return q.reshape(mdp.R.shape)


def q_optimal(mdp: DecMDP) -> np.ndarray:
    """``Q*`` by Howard's policy iteration over deterministic joint policies (exact at termination)."""
    S = mdp.n_states
    n_joint = mdp.n_joint_actions
    greedy = np.zeros(S, dtype=int)
    while True:
        joint = np.zeros((S, n_joint))
        joint[np.arange(S), greedy] = 1.0
        q = q_policy(mdp, joint.reshape(mdp.R.shape)).reshape(S, n_joint)
        # keep the current action on ties so that the iteration terminates
        current = q[np.arange(S), greedy]
        improved = np.where(q.max(axis=1) > current + 1e-12, q.argmax(axis=1), greedy)
        if np.array_equal(improved, greedy):
            return q.reshape(mdp.R.shape)
        greedy = improved


def subset_backup(q: np.ndarray, dataset, pi_factors, subset) -> np.ndarray:
    """``E_{a'_K ~ pi_K} Q(s', a'_K, a'_-K)`` per transition by enumerating the deviating agents' actions."""
    values = np.zeros(len(dataset))
    for t, (s_next, logged) in enumerate(zip(dataset.next_states, dataset.next_actions, strict=True)):
        for replaced in itertools.product(*(range(len(pi_factors[i][s_next])) for i in subset)):
            action = list(logged)
            probability = 1.0
            for i, a_i in zip(subset, replaced, strict=True):
                action[i] = a_i
                probability *= pi_factors[i][s_next, a_i]
            values[t] += probability * q[(s_next, *action)]
    return values


def k_backups(q: np.ndarray, dataset, pi_factors) -> np.ndarray:
    """Column k: the mean of :func:`subset_backup` over all subsets of size k, shape (N, n + 1)."""
    n = len(pi_factors)
    return np.stack(
        [
            np.mean(
                [subset_backup(q, dataset, pi_factors, list(s)) for s in itertools.combinations(range(n), k)], axis=0
            )
            for k in range(n + 1)
        ],
        axis=1,
    )


def conservative_penalty(dataset, policy_factors, kind: str) -> np.ndarray:
    """``G(s, a)`` of the CQL penalties by explicit loops over transitions and actions."""
    shape = (dataset.n_states, *dataset.action_sizes)
    G = np.zeros(shape)
    n = len(shape) - 1
    for s, logged, w in zip(dataset.states, dataset.actions, dataset.weights, strict=True):
        G[(s, *logged)] -= w
        for action in itertools.product(*(range(a) for a in dataset.action_sizes)):
            if kind == "joint":
                G[(s, *action)] += w * np.prod([policy_factors[i][s, action[i]] for i in range(n)])
            else:
                for i in range(n):
                    if all(action[j] == logged[j] for j in range(n) if j != i):
                        G[(s, *action)] += w * policy_factors[i][s, action[i]] / n
    return G
