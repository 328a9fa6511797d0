"""Total variation, Wasserstein-1 and the excess correlation kappa (paper, eq. 8 and Definition 1)."""

from __future__ import annotations

import numpy as np

from ._validate import as_float_array, check_distributions
from .policies import FactorizedPolicy, JointPolicy


def _distribution_pair(p, q) -> tuple[np.ndarray, np.ndarray]:
    p = as_float_array("p", p)
    q = as_float_array("q", q)
    if p.shape != q.shape:
        raise ValueError(f"q: shape {q.shape} does not match p's shape {p.shape}")
    check_distributions("p", p, n_leading=0)
    check_distributions("q", q, n_leading=0)
    return p.ravel(), q.ravel()


def tv(p, q) -> float:
    """``TV(p, q) = 1/2 ||p - q||_1`` for two distributions of the same shape (all axes form the support)."""
    p, q = _distribution_pair(p, q)
    return 0.5 * float(np.abs(p - q).sum())


def _policy_pair(pi_i, mu_i) -> tuple[np.ndarray, np.ndarray]:
    pi_i = as_float_array("pi_i", pi_i, min_ndim=2)
    mu_i = as_float_array("mu_i", mu_i, min_ndim=2)
    if pi_i.shape != mu_i.shape:
        raise ValueError(f"mu_i: shape {mu_i.shape} does not match pi_i's shape {pi_i.shape}")
    check_distributions("pi_i", pi_i, n_leading=1)
    check_distributions("mu_i", mu_i, n_leading=1)
    return pi_i.reshape(pi_i.shape[0], -1), mu_i.reshape(mu_i.shape[0], -1)


def policy_tv_per_state(pi_i, mu_i) -> np.ndarray:
    """``TV(pi_i(. | s), mu_i(. | s))`` for every state, shape (S,).

    ``pi_i`` and ``mu_i`` have shape (S, A_i), or (S, A_1, ..., A_n) for joint policies.
    """
    pi_i, mu_i = _policy_pair(pi_i, mu_i)
    return 0.5 * np.abs(pi_i - mu_i).sum(axis=1)


def policy_tv(pi_i, mu_i) -> float:
    """The kernel distance ``TV(pi_i, mu_i) = sup_s 1/2 ||pi_i(. | s) - mu_i(. | s)||_1`` (paper, Section 4)."""
    return float(policy_tv_per_state(pi_i, mu_i).max())


def w1(p, q, metric=None) -> float:
    """Wasserstein-1 distance between two distributions of the same shape.

    With ``metric=None`` the ground metric is the 0-1 metric, for which ``W1 = TV``
    (paper, eq. 8). Otherwise ``metric`` is a (K, K) ground-distance matrix over the
    ``K = p.size`` support points (flattened in C order) and the exact optimal transport cost
    is computed with POT's network simplex.
    """
    p, q = _distribution_pair(p, q)
    if metric is None:
        return 0.5 * float(np.abs(p - q).sum())
    metric = as_float_array("metric", metric, ndim=2)
    if metric.shape != (p.size, p.size):
        raise ValueError(f"metric: expected shape ({p.size}, {p.size}) for {p.size} support points, got {metric.shape}")
    if np.any(metric < 0) or np.any(np.diag(metric) != 0):
        raise ValueError("metric: a ground metric needs non-negative entries and a zero diagonal")
    import ot

    return float(ot.emd2(p, q, metric))


def excess_correlation(mu) -> float:
    """The maximal excess correlation ``kappa = sup_s TV(mu(. | s), mu^(x)(. | s))`` (Definition 1).

    ``mu^(x)`` is the product of ``mu``'s marginals; ``kappa = 0`` exactly when ``mu`` is factorized.
    ``mu`` is a JointPolicy, a FactorizedPolicy (kappa = 0) or a joint array (S, A_1, ..., A_n).
    """
    if isinstance(mu, FactorizedPolicy):
        return 0.0
    if not isinstance(mu, JointPolicy):
        mu = JointPolicy(mu)
    product = FactorizedPolicy(mu.marginals()).joint()
    return policy_tv(mu.probs, product)
