"""Exact engine for small finite Dec-MDPs (paper: "Setting and key assumptions" to Lemma 2).

Conventions: ``n`` agents numbered ``0 .. n-1``; ``P`` has shape (S, A_1, ..., A_n, S) with
``P[s, a_1, ..., a_n, s'] = P(s' | s, a)``; ``R`` has shape (S, A_1, ..., A_n) with ``|R| <= 1``;
``d0`` has shape (S,); ``gamma`` lies in [0, 1). Occupancies are the normalized discounted state
occupancy ``d^phi = (1 - gamma) d0^T (I - gamma P^phi)^{-1}`` and the state-action occupancy
``d^phi(s) phi(a | s)``.
"""

from .distances import excess_correlation, policy_tv, policy_tv_per_state, tv, w1
from .mdp import DecMDP, random_decmdp
from .occupancy import (
    all_subset_kernels,
    all_subset_occupancies,
    induced_kernel,
    occupancy_from_kernel,
    state_action_occupancy,
    state_occupancy,
)
from .policies import (
    FactorizedPolicy,
    JointPolicy,
    mixed_policy,
    perturbed_policy,
    policy_at_distance,
    random_correlated_policy,
    random_factorized_policy,
)
from .values import OptimalQ, q_optimal, q_policy, state_value

__all__ = [
    "DecMDP",
    "FactorizedPolicy",
    "JointPolicy",
    "OptimalQ",
    "all_subset_kernels",
    "all_subset_occupancies",
    "excess_correlation",
    "induced_kernel",
    "mixed_policy",
    "occupancy_from_kernel",
    "perturbed_policy",
    "policy_at_distance",
    "policy_tv",
    "policy_tv_per_state",
    "q_optimal",
    "q_policy",
    "random_correlated_policy",
    "random_decmdp",
    "random_factorized_policy",
    "state_action_occupancy",
    "state_occupancy",
    "state_value",
    "tv",
    "w1",
]
