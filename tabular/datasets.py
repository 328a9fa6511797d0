"""Offline datasets of transitions ``(s, a, r, s', a')`` for the tabular learners.

The paper's setting (section "Setting and key assumptions") is a dataset of i.i.d. transitions:
``s ~ d^mu``, ``a ~ mu(. | s)``, ``r = R(s, a)``, ``s' ~ P(. | s, a)`` and ``a' ~ mu(. | s')`` (the
logged next joint action used by the partial backups, eq. 1 and 3). A dataset carries a weight
per transition: ``1 / N`` for a sample of size ``N``, and the exact probability
``d^mu(s) mu(a | s) P(s' | s, a) mu(a' | s')`` for :func:`exact_dataset`, the infinite-data limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._validate import check_memory, joint_actions_text
from .mdp import DecMDP
from .occupancy import state_occupancy
from .policies import Policy, check_policy
from .validation import check_size


@dataclass(frozen=True)
class Dataset:
    """Weighted transitions of a finite Dec-MDP; agent ``i``'s actions are column ``i``.

    Attributes
    ----------
    states, next_states : ndarray of int, shape (N,)
    actions, next_actions : ndarray of int, shape (N, n)
    rewards : ndarray, shape (N,)
    weights : ndarray, shape (N,)
        Non-negative, summing to 1.
    n_states : int
    action_sizes : tuple of int
    """

    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_states: np.ndarray
    next_actions: np.ndarray
    weights: np.ndarray
    n_states: int
    action_sizes: tuple[int, ...]

    def __post_init__(self):
        n_transitions = np.shape(self.states)[0] if np.ndim(self.states) == 1 else -1
        if n_transitions <= 0:
            raise ValueError(
                f"states: a dataset needs a non-empty 1-D array of states, got shape {np.shape(self.states)}"
            )
        n_agents = len(self.action_sizes)
        for name, shape in (
            ("actions", (n_transitions, n_agents)),
            ("next_actions", (n_transitions, n_agents)),
            ("rewards", (n_transitions,)),
            ("next_states", (n_transitions,)),
            ("weights", (n_transitions,)),
        ):
            if np.shape(getattr(self, name)) != shape:
                raise ValueError(f"{name}: expected shape {shape}, got {np.shape(getattr(self, name))}")
        for name in ("states", "next_states"):
            values = np.asarray(getattr(self, name))
            if values.min() < 0 or values.max() >= self.n_states:
                raise ValueError(
                    f"{name}: indices must lie in [0, {self.n_states}), got {values.min()}..{values.max()}"
                )
        for name in ("actions", "next_actions"):
            values = np.asarray(getattr(self, name))
            too_large = values >= np.array(self.action_sizes)
            if values.min() < 0 or too_large.any():
                agent = int(np.argwhere((values < 0) | too_large)[0, 1])
                raise ValueError(
                    f"{name}: agent {agent}'s actions must lie in [0, {self.action_sizes[agent]}), "
                    f"got {values[:, agent].min()}..{values[:, agent].max()}"
                )
        weights = np.asarray(self.weights, dtype=float)
        if not np.all(np.isfinite(weights)) or weights.min() < 0 or abs(weights.sum() - 1.0) > 1e-9:
            raise ValueError("weights: must be finite, non-negative and sum to 1")
        if not np.all(np.isfinite(self.rewards)):
            raise ValueError("rewards: contains NaN or infinity")

    @property
    def n_agents(self) -> int:
        return len(self.action_sizes)

    def __len__(self) -> int:
        return len(self.states)

    def joint_index(self, actions: np.ndarray) -> np.ndarray:
        """Flat index of joint actions (N, n) in C order over (A_1, ..., A_n)."""
        return np.ravel_multi_index(tuple(np.asarray(actions).T), self.action_sizes)

    def empirical_behavior(self) -> np.ndarray:
        """``mu_hat(a | s)`` from the (weighted) logged actions, shape (S, A_1, ..., A_n).

        States that never appear have an all-zero row.
        """
        counts = np.zeros((self.n_states, int(np.prod(self.action_sizes))))
        np.add.at(counts, (self.states, self.joint_index(self.actions)), self.weights)
        totals = counts.sum(axis=1, keepdims=True)
        np.divide(counts, totals, out=counts, where=totals > 0)
        return counts.reshape((self.n_states, *self.action_sizes))


def sample_dataset(mdp: DecMDP, mu: Policy, size: int, seed: int) -> Dataset:
    """Draw ``size`` i.i.d. transitions from ``d^mu x mu x P x mu`` (weights ``1 / size``).

    Parameters
    ----------
    mdp : DecMDP
    mu : FactorizedPolicy or JointPolicy
        The behavior policy (correlated behavior samples joint actions).
    size : int
        ``N >= 1``.
    seed : int
    """
    check_policy("mu", mu, mdp)
    if check_size("size", size) < 1:
        raise ValueError(f"size: a dataset needs at least one transition, got {size}")
    size = int(size)
    n_joint = math.prod(mdp.action_sizes)
    check_memory(
        "size",
        f"{size} transitions over {joint_actions_text(mdp.action_sizes)} joint actions",
        [
            (
                f"the behavior rows, their cumulative sums and comparisons: {size} transitions x "
                f"({joint_actions_text(mdp.action_sizes, short=True)} joint actions + {mdp.n_states} next states) "
                "x 17 bytes",
                size * (n_joint + mdp.n_states) * 17,
            ),
            (
                f"the behavior policy: {mdp.n_states} states x {joint_actions_text(mdp.action_sizes, short=True)} "
                "joint actions x 8 bytes",
                mdp.n_states * n_joint * 8,
            ),
        ],
    )
    rng = np.random.default_rng(seed)
    behavior = mu.joint().reshape(mdp.n_states, -1)  # [S, |A|]
    states = rng.choice(mdp.n_states, size=size, p=_normalized(state_occupancy(mdp, mu)))
    joint = _sample_rows(rng, behavior[states])
    P = mdp.P.reshape(mdp.n_states, -1, mdp.n_states)
    next_states = _sample_rows(rng, P[states, joint])
    next_joint = _sample_rows(rng, behavior[next_states])
    return _from_joint_indices(mdp, states, joint, next_states, next_joint, np.full(size, 1.0 / size))


def exact_dataset(mdp: DecMDP, mu: Policy) -> Dataset:
    """Every transition ``(s, a, s', a')`` with positive probability, weighted by that probability.

    The weight is ``d^mu(s) mu(a | s) P(s' | s, a) mu(a' | s')``: the limit of :func:`sample_dataset`
    as ``N -> infinity``. Size is at most ``S^2 |A|^2``, for small instances.
    """
    check_policy("mu", mu, mdp)
    n_joint, n_agents = math.prod(mdp.action_sizes), mdp.n_agents
    per_cell = 8 + 1 + 5 * 8 + 2 * n_agents * 8 + 8  # probability, mask, 4 indices + weight, actions, reward
    check_memory(
        "mdp",
        f"{n_agents} agents with {joint_actions_text(mdp.action_sizes)} joint actions",
        [
            (
                f"up to (S |A|)^2 transitions: ({mdp.n_states} states x "
                f"{joint_actions_text(mdp.action_sizes, short=True)} joint actions)^2 x {per_cell} bytes",
                (mdp.n_states * n_joint) ** 2 * per_cell,
            )
        ],
    )
    behavior = mu.joint().reshape(mdp.n_states, -1)
    P = mdp.P.reshape(mdp.n_states, -1, mdp.n_states)
    d = state_occupancy(mdp, mu)
    # probability[s, a, s', a'] = d(s) mu(a|s) P(s'|s,a) mu(a'|s')
    probability = (d[:, None] * behavior)[:, :, None, None] * P[:, :, :, None] * behavior[None, None, :, :]
    s, a, s_next, a_next = np.nonzero(probability > 0)
    weights = probability[s, a, s_next, a_next]
    return _from_joint_indices(mdp, s, a, s_next, a_next, weights / weights.sum())


def _from_joint_indices(mdp: DecMDP, states, joint, next_states, next_joint, weights) -> Dataset:
    """Build a Dataset from flat joint-action indices (C order over A_1..A_n); rewards read from ``R``."""
    return Dataset(
        states=states,
        actions=np.stack(np.unravel_index(joint, mdp.action_sizes), axis=1),
        rewards=mdp.R.reshape(mdp.n_states, -1)[states, joint],
        next_states=next_states,
        next_actions=np.stack(np.unravel_index(next_joint, mdp.action_sizes), axis=1),
        weights=weights,
        n_states=mdp.n_states,
        action_sizes=mdp.action_sizes,
    )


def _normalized(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 0.0, None)
    return p / p.sum()


def _sample_rows(rng: np.random.Generator, probabilities: np.ndarray) -> np.ndarray:
    """One index per row of ``probabilities`` (N, K), by inverse-CDF sampling."""
    cumulative = np.cumsum(probabilities, axis=1)
    draws = rng.random(len(probabilities)) * cumulative[:, -1]
    return np.minimum((cumulative <= draws[:, None]).sum(axis=1), probabilities.shape[1] - 1)
