"""Numba kernels of the exact engine. Callers validate and allocate; kernels only compute."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _contract_agent_axis(tensor, policies, out):
    """out[c, b, s, m] = sum_a policies[c, s, a] * tensor[b, s, a, m].

    tensor: [B, S, A, M] (one agent axis A leading the rest M of the joint tensor)
    policies: [C, S, A] (C candidate policies for this agent, e.g. mu_i and pi_i)
    out: [C, B, S, M]
    Each tensor row is read once and scattered into all C outputs.
    """
    n_batch, n_states, n_actions, n_rest = tensor.shape
    n_choices = policies.shape[0]
    out[:] = 0.0
    for b in range(n_batch):
        for s in range(n_states):
            for a in range(n_actions):
                row = tensor[b, s, a]
                for c in range(n_choices):
                    weight = policies[c, s, a]
                    if weight != 0.0:
                        target = out[c, b, s]
                        for m in range(n_rest):
                            target[m] += weight * row[m]


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
