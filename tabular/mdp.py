"""Finite Dec-MDPs and random instances.

Conventions used throughout the package (paper, section "Setting and key assumptions"):

* ``n`` agents, numbered ``0 .. n-1`` (the paper numbers them ``1 .. n``); agent ``i`` has
  ``A_i`` actions.
* ``P`` has shape ``(S, A_1, ..., A_n, S)`` with ``P[s, a_1, ..., a_n, s'] = P(s' | s, a)``.
* ``R`` has shape ``(S, A_1, ..., A_n)`` with ``|R| <= 1``.
* ``d0`` has shape ``(S,)``, the initial-state distribution; ``gamma`` lies in ``[0, 1)``.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from ._validate import as_float_array, check_distributions, check_gamma

#: Rewards may exceed 1 in magnitude by this much (decimal round-off), no more.
REWARD_TOL = 1e-12


class DecMDP:
    """A finite decentralized MDP ``<S, {A_i}, P, R, d0, gamma>``, validated on construction.

    Parameters
    ----------
    P : array_like, shape (S, A_1, ..., A_n, S)
        Transition kernel, ``P[s, a_1, ..., a_n, s'] = P(s' | s, a)``; every
        ``P[s, a, :]`` is a probability vector.
    R : array_like, shape (S, A_1, ..., A_n)
        Reward ``R(s, a)`` with ``|R| <= 1``.
    d0 : array_like, shape (S,)
        Initial-state distribution.
    gamma : float
        Discount factor in ``[0, 1)``.

    The arrays are copied and made read-only, so a DecMDP never changes after validation.
    """

    def __init__(self, P, R, d0, gamma):
        P = as_float_array("P", P, min_ndim=3)
        n_states = P.shape[0]
        if P.shape[-1] != n_states:
            raise ValueError(f"P: first and last axes are the state and next state and must match, got shape {P.shape}")
        check_distributions("P", P, n_leading=P.ndim - 1)
        R = as_float_array("R", R)
        if R.shape != P.shape[:-1]:
            raise ValueError(f"R: expected shape {P.shape[:-1]} (S, A_1, ..., A_n) to match P, got {R.shape}")
        if np.abs(R).max() > 1.0 + REWARD_TOL:
            raise ValueError(f"R: rewards must satisfy |R| <= 1, got max |R| = {np.abs(R).max():.6g}")
        d0 = as_float_array("d0", d0, ndim=1)
        if d0.shape != (n_states,):
            raise ValueError(f"d0: expected shape ({n_states},) to match P, got {d0.shape}")
        check_distributions("d0", d0, n_leading=0)
        self.gamma = check_gamma(gamma)
        for array in (P, R, d0):
            array.setflags(write=False)
        self.P, self.R, self.d0 = P, R, d0

    @property
    def n_states(self) -> int:
        return self.P.shape[0]

    @property
    def action_sizes(self) -> tuple[int, ...]:
        return self.P.shape[1:-1]

    @property
    def n_agents(self) -> int:
        return len(self.action_sizes)

    @property
    def n_joint_actions(self) -> int:
        return int(np.prod(self.action_sizes))

    @cached_property
    def transition_and_reward(self) -> np.ndarray:
        """``[P | R]`` stacked on the last axis, shape (S, A_1, ..., A_n, S + 1).

        Contracting this tensor with a policy gives the induced kernel ``P^phi`` and the
        expected reward ``r^phi`` in one pass.
        """
        stacked = np.concatenate([self.P, self.R[..., None]], axis=-1)
        stacked.setflags(write=False)
        return stacked

    def __repr__(self) -> str:
        return f"DecMDP(n_states={self.n_states}, action_sizes={self.action_sizes}, gamma={self.gamma})"


def random_decmdp(
    n_states: int,
    action_sizes,
    gamma: float,
    seed: int,
    *,
    concentration: float = 1.0,
    n_absorbing: int = 0,
    deterministic: bool = False,
) -> DecMDP:
    """Draw a random Dec-MDP.

    Parameters
    ----------
    n_states : int
        Number of states ``S >= 1``.
    action_sizes : sequence of int
        ``(A_1, ..., A_n)``, each ``>= 1``.
    gamma : float
        Discount factor in ``[0, 1)``.
    seed : int
        Seed of the generator; the same seed gives the same instance.
    concentration : float
        Dirichlet concentration of each ``P(. | s, a)``; small values give nearly
        deterministic transitions.
    n_absorbing : int
        The last ``n_absorbing`` states are absorbing: ``P(s | s, a) = 1`` for every ``a``.
    deterministic : bool
        Each ``P(. | s, a)`` puts all its mass on one random next state.

    Rewards are uniform on ``[-1, 1]``; ``d0`` is Dirichlet(1).
    """
    action_sizes = tuple(int(a) for a in action_sizes)
    if int(n_states) < 1:
        raise ValueError(f"n_states: must be at least 1, got {n_states}")
    if not action_sizes or min(action_sizes) < 1:
        raise ValueError(f"action_sizes: need at least one agent and one action each, got {action_sizes}")
    if not 0 <= n_absorbing <= n_states:
        raise ValueError(f"n_absorbing: must lie in [0, n_states={n_states}], got {n_absorbing}")
    if concentration <= 0:
        raise ValueError(f"concentration: must be positive, got {concentration}")
    rng = np.random.default_rng(seed)
    shape = (n_states, *action_sizes)
    if deterministic:
        next_state = rng.integers(n_states, size=shape)
        P = np.zeros((*shape, n_states))
        np.put_along_axis(P, next_state[..., None], 1.0, axis=-1)
    else:
        P = rng.dirichlet(np.full(n_states, concentration), size=shape)
    for s in range(n_states - n_absorbing, n_states):
        P[s] = 0.0
        P[s, ..., s] = 1.0
    R = rng.uniform(-1.0, 1.0, size=shape)
    d0 = rng.dirichlet(np.ones(n_states))
    return DecMDP(P, R, d0, gamma)
