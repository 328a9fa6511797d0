"""Finite Dec-MDPs and random instances.

Conventions used throughout the package (paper, section "Setting and key assumptions"):

* ``n`` agents, numbered ``0 .. n-1`` (the paper numbers them ``1 .. n``); agent ``i`` has
  ``A_i`` actions.
* ``P`` has shape ``(S, A_1, ..., A_n, S)`` with ``P[s, a_1, ..., a_n, s'] = P(s' | s, a)``.
* ``R`` has shape ``(S, A_1, ..., A_n)`` with ``|R| <= 1``.
* ``d0`` has shape ``(S,)``, the initial-state distribution; ``gamma`` lies in ``[0, 1)``.
"""

from __future__ import annotations

import math
from functools import cached_property

import numpy as np

from ._validate import as_float_array, check_distributions, check_memory, check_seed, joint_actions_text
from .validation import check_gamma, check_size

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
            raise ValueError(f"R: rewards must satisfy |R| <= 1, got max |R| = {float(np.abs(R).max())!r}")
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
        expected reward ``r^phi`` in one pass. Built on first use, after a memory check
        (``tabular._validate.MEMORY_LIMIT_BYTES``).
        """
        n_states, n_joint = self.n_states, math.prod(self.action_sizes)
        check_memory(
            "mdp",
            f"{self.n_agents} agents with {joint_actions_text(self.action_sizes)} joint actions",
            [
                (
                    f"[P | R]: {n_states} states x {joint_actions_text(self.action_sizes, short=True)} joint actions "
                    f"x ({n_states} next states + 1) x 8 bytes",
                    n_states * n_joint * (n_states + 1) * 8,
                )
            ],
        )
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

    Sizes are integers (Python or numpy); an integral float such as ``3.0`` is accepted, ``2.5``
    and booleans are refused. Before drawing, the bytes of ``P`` and ``R`` (drawn, then copied by
    :class:`DecMDP`) are checked against ``tabular._validate.MEMORY_LIMIT_BYTES`` (4 GiB unless
    raised), so an instance with too many agents fails at once with the figure.
    """
    n_states = check_size("n_states", n_states, minimum=1)
    if isinstance(action_sizes, (str, bytes)) or not hasattr(action_sizes, "__iter__"):
        raise ValueError(f"action_sizes: must be a sequence of integers, one per agent, got {action_sizes!r}")
    action_sizes = tuple(action_sizes)
    if not action_sizes:
        raise ValueError(f"action_sizes: need at least one agent and one action each, got {action_sizes}")
    checked = []
    for i, size in enumerate(action_sizes):
        try:
            checked.append(check_size("action_sizes", size, minimum=1))
        except ValueError as error:
            detail = str(error).split(": ", 1)[1]
            raise ValueError(f"action_sizes: agent {i}'s number of actions {detail}") from None
    action_sizes = tuple(checked)
    n_absorbing = check_size("n_absorbing", n_absorbing)
    if not 0 <= n_absorbing <= n_states:
        raise ValueError(f"n_absorbing: must lie in [0, n_states={n_states}], got {n_absorbing}")
    if not concentration > 0:
        raise ValueError(f"concentration: must be positive, got {concentration}")
    n_joint = math.prod(action_sizes)
    check_memory(
        "action_sizes",
        f"{len(action_sizes)} agents with {joint_actions_text(action_sizes)} joint actions",
        [
            (
                f"P and R, drawn and then copied by DecMDP: 2 x {n_states} states x "
                f"{joint_actions_text(action_sizes, short=True)} joint actions "
                f"x ({n_states} next states + 1) x 8 bytes",
                2 * n_states * n_joint * (n_states + 1) * 8,
            )
        ],
    )
    rng = np.random.default_rng(check_seed(seed))
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
