"""Exact discounted occupancy measures, for one policy or for all 2^n mixed policies.

For a policy ``phi`` the induced kernel and reward are
``P^phi(s' | s) = sum_a phi(a | s) P(s' | s, a)`` and ``r^phi(s) = sum_a phi(a | s) R(s, a)``,
and the normalized discounted state occupancy is the row vector

    d^phi = (1 - gamma) d0^T (I - gamma P^phi)^{-1},

the solution of ``d^phi = (1 - gamma) d0 + gamma d^phi P^phi`` (paper, Appendix A, Step 1).
It sums to one. A factorized policy is contracted one agent axis at a time, so the joint
policy is never built.
"""

from __future__ import annotations

import math

import numpy as np

from ._kernels import _contract_all_agents
from ._validate import check_memory
from .mdp import DecMDP
from .policies import FactorizedPolicy, JointPolicy, Policy, check_policy


def _contract_policies(mdp: DecMDP, candidates) -> np.ndarray:
    """Contract ``[P | R]`` with every combination of per-agent candidate policies (inputs already validated).

    Parameters
    ----------
    mdp : DecMDP
    candidates : sequence of n sequences of C arrays (S, A_i)
        ``candidates[i][c]`` is the c-th candidate policy of agent ``i``.

    Returns
    -------
    ndarray, shape (C^n, S, S + 1)
        Row ``b = sum_i c_i C^i`` holds ``[P^phi | r^phi]`` for ``phi = prod_i candidates[i][c_i]``.
    """
    n_states, sizes = mdp.n_states, mdp.action_sizes
    n_choices = len(candidates[0])
    choices = np.zeros((len(sizes), n_choices, n_states, max(sizes)))  # [n, C, S, A_max]
    for i, options in enumerate(candidates):
        for c, policy_i in enumerate(options):
            choices[i, c, :, : sizes[i]] = policy_i
    # after agent i the partial tensor holds C^(i+1) blocks of prod(A_{i+2..n}) * (S + 1) numbers
    blocks = [n_choices ** (i + 1) * int(np.prod(sizes[i + 1 :])) for i in range(len(sizes))]
    scratch_size = max(blocks) * (n_states + 1)
    tensor = mdp.transition_and_reward.reshape(n_states, mdp.n_joint_actions, n_states + 1)
    out = np.empty((n_choices ** len(sizes), n_states, n_states + 1))
    _contract_all_agents(tensor, choices, np.array(sizes, dtype=np.int64), scratch_size, out)
    return out


def subset_memory_parts(mdp: DecMDP, solve: bool) -> list[tuple[str, int]]:
    """The arrays (formula, bytes) that the 2^n subset contraction builds, and with ``solve`` the occupancy solves.

    Used by :func:`all_subset_kernels`, :func:`all_subset_occupancies` and ``bounds.growth_curve``
    for their memory check before anything is allocated.
    """
    n, n_states, sizes = mdp.n_agents, mdp.n_states, mdp.action_sizes
    n_subsets = 2**n
    parts = [
        (
            f"[P^(S) | r^(S)] of the 2^{n} mixed policies: 2^{n} x {n_states} states x ({n_states} + 1) x 8 bytes",
            n_subsets * n_states * (n_states + 1) * 8,
        )
    ]
    largest_block = max(2 ** (i + 1) * math.prod(sizes[i + 1 :]) for i in range(n))
    scratch = 2 * largest_block * (n_states + 1) * 8
    parts.append((f"contraction scratch: 2 x {largest_block} x ({n_states} + 1) x 8 bytes", scratch))
    if "transition_and_reward" not in mdp.__dict__:  # cached_property, built on first use
        stacked = n_states * math.prod(sizes) * (n_states + 1) * 8
        parts.append((f"[P | R]: {n_states} x {math.prod(sizes)} x ({n_states} + 1) x 8 bytes", stacked))
    if solve:
        parts.append(
            (
                f"I - gamma P^(S) (and a temporary) and the occupancies: 2^{n} x {n_states} x (2 x {n_states} + 1) "
                "x 8 bytes",
                n_subsets * n_states * (2 * n_states + 1) * 8,
            )
        )
    return parts


def induced_kernel(mdp: DecMDP, policy: Policy) -> tuple[np.ndarray, np.ndarray]:
    """The state kernel and reward induced by ``policy``.

    A factorized policy is contracted one agent axis at a time (the joint policy is never
    built); a joint policy over the flattened joint action.

    Returns
    -------
    P_phi : ndarray, shape (S, S)
        ``P^phi[s, s'] = sum_a phi(a | s) P(s' | s, a)``.
    r_phi : ndarray, shape (S,)
        ``r^phi[s] = sum_a phi(a | s) R(s, a)``.
    """
    check_policy("policy", policy, mdp)
    if isinstance(policy, JointPolicy):
        tensor = mdp.transition_and_reward.reshape(mdp.n_states, mdp.n_joint_actions, mdp.n_states + 1)
        contracted = np.einsum("sa,sam->sm", policy.probs.reshape(mdp.n_states, -1), tensor)
    else:
        contracted = _contract_policies(mdp, [[factor] for factor in policy.factors])[0]
    return contracted[:, : mdp.n_states], contracted[:, mdp.n_states]


def occupancy_from_kernel(d0: np.ndarray, P_phi: np.ndarray, gamma: float) -> np.ndarray:
    """Solve ``d (I - gamma P_phi) = (1 - gamma) d0`` for one kernel (S, S) or a stack (B, S, S).

    One LU factorization per kernel (LAPACK ``gesv`` through ``numpy.linalg.solve``).
    """
    n_states = d0.shape[0]
    system = np.eye(n_states) - gamma * P_phi
    # d^T solves (I - gamma P)^T d = (1 - gamma) d0
    rhs = np.broadcast_to((1.0 - gamma) * d0[:, None], (*system.shape[:-2], n_states, 1))
    return np.linalg.solve(np.swapaxes(system, -1, -2), rhs)[..., 0]


def state_occupancy(mdp: DecMDP, policy: Policy) -> np.ndarray:
    """The normalized discounted state occupancy ``d^phi`` of ``policy``.

    ``d^phi = (1 - gamma) d0^T (I - gamma P^phi)^{-1}``, shape (S,), sums to 1.
    """
    P_phi, _ = induced_kernel(mdp, policy)
    return occupancy_from_kernel(mdp.d0, P_phi, mdp.gamma)


def state_action_occupancy(mdp: DecMDP, policy: Policy) -> np.ndarray:
    """The state-action occupancy ``d^phi(s) phi(a | s)``, shape (S, A_1, ..., A_n), sums to 1."""
    d = state_occupancy(mdp, policy)
    joint = policy.joint()
    return d.reshape((-1,) + (1,) * (joint.ndim - 1)) * joint


def all_subset_kernels(mdp: DecMDP, pi: FactorizedPolicy, mu: Policy) -> tuple[np.ndarray, np.ndarray]:
    """Induced kernels and rewards of all 2^n mixed policies ``pi^(S)``.

    Row ``b`` belongs to the subset ``S = {i : bit i of b is set}``; agents outside ``S``
    follow ``mu``'s marginals (``mu`` itself when it is factorized).

    Agents are contracted in order 0, 1, ..., n-1, each with both ``mu_i`` and ``pi_i``, so
    every prefix of choices is contracted once and shared by all the subsets that extend it:
    after agent ``i`` there are ``2^(i+1)`` partial tensors of shape (A_{i+2}, ..., A_n, S + 1)
    per state.

    The memory it needs (``2^n * S * (S + 1)`` numbers and more) is estimated first and checked
    against ``tabular._validate.MEMORY_LIMIT_BYTES``.

    Returns
    -------
    P_sub : ndarray, shape (2^n, S, S)
    r_sub : ndarray, shape (2^n, S)
    """
    _check_subset_inputs(mdp, pi, mu, solve=False)
    pairs = [[behavior_i, learned_i] for behavior_i, learned_i in zip(mu.marginals(), pi.factors, strict=True)]
    contracted = _contract_policies(mdp, pairs)  # [2^n, S, S + 1]; choice 0 = mu_i, 1 = pi_i
    return contracted[:, :, : mdp.n_states], contracted[:, :, mdp.n_states]


def all_subset_occupancies(mdp: DecMDP, pi: FactorizedPolicy, mu: Policy) -> np.ndarray:
    """State occupancies ``d^(S)`` of all 2^n mixed policies ``pi^(S)`` (paper, eq. 10).

    Row ``b`` is ``d^(S)`` for ``S = {i : bit i of b is set}``: row 0 is ``d^(empty)``, which is
    ``d^mu`` for a factorized ``mu`` and ``d^{mu-marginals product}`` for a correlated one
    (use :func:`state_occupancy` for the correlated ``d^mu`` itself); row ``2^n - 1`` is ``d^pi``.

    Parameters
    ----------
    mdp : DecMDP
    pi : FactorizedPolicy
        Learned per-agent policies.
    mu : FactorizedPolicy or JointPolicy
        Behavior policy.

    Returns
    -------
    ndarray, shape (2^n, S)

    The memory it needs is estimated first (:func:`all_subset_kernels`, plus the ``2^n`` solves) and
    checked against ``tabular._validate.MEMORY_LIMIT_BYTES``.
    """
    _check_subset_inputs(mdp, pi, mu, solve=True)
    P_sub, _ = all_subset_kernels(mdp, pi, mu)
    return occupancy_from_kernel(mdp.d0, P_sub, mdp.gamma)


def _check_subset_inputs(mdp: DecMDP, pi, mu, solve: bool) -> None:
    check_policy("pi", pi, mdp)
    check_policy("mu", mu, mdp)
    if not isinstance(pi, FactorizedPolicy):
        raise ValueError(f"pi: must be a FactorizedPolicy (per-agent learned policies), got {type(pi).__name__}")
    check_memory("pi", f"{mdp.n_agents} agents give 2^{mdp.n_agents} mixed policies", subset_memory_parts(mdp, solve))
