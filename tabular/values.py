"""Exact Q-functions: ``Q^pi`` by policy evaluation and ``Q*`` by certified value iteration."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._kernels import _value_iteration
from .mdp import DecMDP
from .occupancy import induced_kernel
from .policies import Policy


def state_value(mdp: DecMDP, policy: Policy) -> np.ndarray:
    """``V^phi = (I - gamma P^phi)^{-1} r^phi``, shape (S,)."""
    P_phi, r_phi = induced_kernel(mdp, policy)
    return np.linalg.solve(np.eye(mdp.n_states) - mdp.gamma * P_phi, r_phi)


def q_policy(mdp: DecMDP, policy: Policy) -> np.ndarray:
    """``Q^phi(s, a) = R(s, a) + gamma sum_s' P(s' | s, a) V^phi(s')`` by exact evaluation.

    Returns
    -------
    ndarray, shape (S, A_1, ..., A_n)
    """
    return mdp.R + mdp.gamma * mdp.P @ state_value(mdp, policy)


@dataclass(frozen=True)
class OptimalQ:
    """Result of :func:`q_optimal`.

    Attributes
    ----------
    q : ndarray, shape (S, A_1, ..., A_n)
        The last value-iteration iterate.
    error_bound : float
        A certified bound ``||q - Q*||_inf <= error_bound``.
    iterations : int
    """

    q: np.ndarray
    error_bound: float
    iterations: int


def q_optimal(mdp: DecMDP, tol: float = 1e-10, max_iter: int = 1_000_000) -> OptimalQ:
    """``Q*`` by value iteration on the joint action, with a certified stopping rule.

    Iterates ``Q_{t+1} = R + gamma P max_a' Q_t`` and stops at the first ``t`` with
    ``gamma / (1 - gamma) ||Q_{t+1} - Q_t||_inf <= tol``; by the contraction property this
    certifies ``||Q_{t+1} - Q*||_inf <= tol``.

    Raises
    ------
    RuntimeError
        If ``max_iter`` iterations do not reach ``tol`` (e.g. a ``tol`` below round-off).
    """
    if not tol > 0:
        raise ValueError(f"tol: must be positive, got {tol}")
    P_flat = np.ascontiguousarray(mdp.P.reshape(mdp.n_states, mdp.n_joint_actions, mdp.n_states))
    R_flat = np.ascontiguousarray(mdp.R.reshape(mdp.n_states, mdp.n_joint_actions))
    q, bound, iterations = _value_iteration(P_flat, R_flat, mdp.gamma, float(tol), int(max_iter))
    if bound > tol:
        raise RuntimeError(
            f"q_optimal: value iteration stopped after {iterations} iterations with certified error "
            f"{bound:.3g} > tol={tol:.3g}; raise max_iter or tol"
        )
    return OptimalQ(q.reshape(mdp.R.shape), float(bound), int(iterations))
