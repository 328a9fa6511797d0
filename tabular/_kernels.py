"""Numba kernels of the exact engine. Callers validate and allocate; kernels only compute."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _contract_level(source, n_batch, n_actions, n_rest, weights, target):
    """target[c * B + b, r] = sum_a weights[c, a] * source[b, a, r], all flattened in C order.

    source: [B * A * R], weights: [C, A_max] (only the first A columns are read), target: [C * B * R].
    Each source row is read once and scattered into all C outputs.
    """
    n_choices = weights.shape[0]
    target[: n_choices * n_batch * n_rest] = 0.0
    for b in range(n_batch):
        for a in range(n_actions):
            row = source[(b * n_actions + a) * n_rest : (b * n_actions + a + 1) * n_rest]
            for c in range(n_choices):
                weight = weights[c, a]
                if weight != 0.0:
                    base = (c * n_batch + b) * n_rest
                    for r in range(n_rest):
                        target[base + r] += weight * row[r]


@njit(cache=True)
def _contract_all_agents(tensor, choices, action_sizes, scratch_size, out):
    """Contract every agent axis with each of C candidate policies, all C^n combinations at once.

    tensor: [S, J, M] with the joint action J = A_1 * ... * A_n in C order (agent 0 slowest)
    choices: [n, C, S, A_max], choices[i, c, s, :A_i] = c-th candidate policy of agent i in state s
    out: [C^n, S, M], out[b, s, m] = sum_a prod_i choices[i, c_i, s, a_i] tensor[s, a, m]
         with b = sum_i c_i C^i.
    Agents are contracted in order, so each prefix of choices is contracted once and shared by
    every combination that extends it; one state at a time, so that tensor[s] is read from memory
    once and the partial contractions stay in cache.
    """
    n_states, n_joint, n_out = tensor.shape
    n_agents, n_choices = choices.shape[0], choices.shape[1]
    source = np.empty(scratch_size)
    target = np.empty(scratch_size)
    for s in range(n_states):
        n_batch = 1
        n_rest = n_joint * n_out
        for i in range(n_agents):
            n_rest //= action_sizes[i]
            if i == 0:
                _contract_level(tensor[s].ravel(), n_batch, action_sizes[i], n_rest, choices[i, :, s], target)
            else:
                _contract_level(source, n_batch, action_sizes[i], n_rest, choices[i, :, s], target)
            source, target = target, source
            n_batch *= n_choices
        for b in range(n_batch):
            out[b, s] = source[b * n_out : (b + 1) * n_out]


@njit(cache=True)
def _value_iteration(P, R, gamma, tol, max_iter):
    """Iterate Q <- R + gamma P max_a' Q until the certified error bound falls below tol.

    P: [S, A, S] with the joint action flattened, R: [S, A].
    Stops when gamma / (1 - gamma) * ||Q_{t+1} - Q_t||_inf <= tol, which certifies
    ||Q_{t+1} - Q*||_inf <= tol. Returns (Q, bound, iterations).
    """
    n_states, n_actions, _ = P.shape
    q = R.copy()
    value = np.empty(n_states)
    bound = np.inf
    for iteration in range(1, max_iter + 1):
        for s in range(n_states):
            value[s] = q[s].max()
        change = 0.0
        for s in range(n_states):
            for a in range(n_actions):
                new = R[s, a] + gamma * np.dot(P[s, a], value)
                change = max(change, abs(new - q[s, a]))
                q[s, a] = new
        bound = gamma / (1.0 - gamma) * change if gamma > 0.0 else 0.0
        if bound <= tol:
            return q, bound, iteration
    return q, bound, max_iter
