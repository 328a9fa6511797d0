"""Factorized and correlated joint policies, mixed policies pi^(S), and random draws.

A factorized policy is ``phi(a | s) = prod_i phi_i(a_i | s)`` (paper, Assumption 1) and is
stored as its n factors, never as the joint array: the engine contracts one agent axis at a
time. A correlated policy is stored as the joint array ``phi(a_1, ..., a_n | s)``.
"""

from __future__ import annotations

import math

import numpy as np

from ._validate import (
    as_float_array,
    check_distributions,
    check_memory,
    check_seed,
    check_subset,
    joint_actions_text,
)
from .mdp import DecMDP


def _check_joint_memory(name: str, n_states: int, action_sizes, n_arrays: int, what: str) -> None:
    """Refuse building ``n_arrays`` joint arrays (S, A_1, ..., A_n) beyond the memory limit."""
    check_memory(
        name,
        f"{len(action_sizes)} agents with {joint_actions_text(action_sizes)} joint actions",
        [
            (
                f"{what}: {n_arrays} x {n_states} states x {joint_actions_text(action_sizes, short=True)} "
                "joint actions x 8 bytes",
                n_arrays * n_states * math.prod(action_sizes) * 8,
            )
        ],
    )


class FactorizedPolicy:
    """A product policy ``phi(a | s) = prod_i phi_i(a_i | s)``.

    Parameters
    ----------
    factors : sequence of array_like, each of shape (S, A_i)
        ``factors[i][s, a_i] = phi_i(a_i | s)``; each row is a probability vector.
    """

    def __init__(self, factors):
        if isinstance(factors, np.ndarray) or not hasattr(factors, "__len__") or len(factors) == 0:
            raise ValueError("factors: must be a non-empty list of (S, A_i) arrays, one per agent")
        checked = []
        for i, factor in enumerate(factors):
            name = f"factors[{i}]"
            factor = as_float_array(name, factor, ndim=2)
            check_distributions(name, factor, n_leading=1)
            if checked and factor.shape[0] != checked[0].shape[0]:
                raise ValueError(f"{name}: has {factor.shape[0]} states but factors[0] has {checked[0].shape[0]}")
            factor.setflags(write=False)
            checked.append(factor)
        self.factors = tuple(checked)

    @property
    def n_states(self) -> int:
        return self.factors[0].shape[0]

    @property
    def action_sizes(self) -> tuple[int, ...]:
        return tuple(f.shape[1] for f in self.factors)

    @property
    def n_agents(self) -> int:
        return len(self.factors)

    def marginals(self) -> tuple[np.ndarray, ...]:
        """The per-agent policies ``phi_i``, each of shape (S, A_i)."""
        return self.factors

    def joint(self) -> np.ndarray:
        """The joint array ``phi(a_1, ..., a_n | s)``, shape (S, A_1, ..., A_n).

        This materializes ``S * prod(A_i)`` numbers (checked first against
        ``tabular._validate.MEMORY_LIMIT_BYTES``); the exact engine's occupancies never call it.
        """
        _check_joint_memory("factors", self.n_states, self.action_sizes, 1, "the joint policy array")
        joint = self.factors[0]
        for factor in self.factors[1:]:
            # broadcast factor [S, A_k] against joint [S, A_1, ..., A_{k-1}] -> [S, A_1, ..., A_k]
            joint = joint[..., None] * factor.reshape((factor.shape[0],) + (1,) * (joint.ndim - 1) + (-1,))
        return joint

    def __repr__(self) -> str:
        return f"FactorizedPolicy(n_states={self.n_states}, action_sizes={self.action_sizes})"


class JointPolicy:
    """A possibly correlated joint policy ``phi(a_1, ..., a_n | s)``.

    Parameters
    ----------
    probs : array_like, shape (S, A_1, ..., A_n)
        ``probs[s]`` is a probability table over joint actions.
    """

    def __init__(self, probs):
        probs = as_float_array("probs", probs, min_ndim=2)
        check_distributions("probs", probs, n_leading=1)
        probs.setflags(write=False)
        self.probs = probs

    @property
    def n_states(self) -> int:
        return self.probs.shape[0]

    @property
    def action_sizes(self) -> tuple[int, ...]:
        return self.probs.shape[1:]

    @property
    def n_agents(self) -> int:
        return self.probs.ndim - 1

    def marginals(self) -> tuple[np.ndarray, ...]:
        """The per-agent marginals ``phi_i(a_i | s)``, each of shape (S, A_i)."""
        axes = range(1, self.probs.ndim)
        return tuple(self.probs.sum(axis=tuple(a for a in axes if a != i)) for i in axes)

    def joint(self) -> np.ndarray:
        """The joint array, shape (S, A_1, ..., A_n)."""
        return self.probs

    def __repr__(self) -> str:
        return f"JointPolicy(n_states={self.n_states}, action_sizes={self.action_sizes})"


Policy = FactorizedPolicy | JointPolicy


def check_policy(name: str, policy, mdp: DecMDP) -> None:
    """Refuse a policy that is not a FactorizedPolicy/JointPolicy or does not fit ``mdp``."""
    if not isinstance(policy, (FactorizedPolicy, JointPolicy)):
        raise ValueError(f"{name}: must be a FactorizedPolicy or JointPolicy, got {type(policy).__name__}")
    if policy.n_states != mdp.n_states or policy.action_sizes != mdp.action_sizes:
        raise ValueError(
            f"{name}: has {policy.n_states} states and action sizes {policy.action_sizes}, "
            f"but the Dec-MDP has {mdp.n_states} states and action sizes {mdp.action_sizes}"
        )


def mixed_policy(pi: FactorizedPolicy, mu: Policy, subset) -> FactorizedPolicy:
    """The mixed policy ``pi^(S) = prod_{i in S} pi_i * prod_{j not in S} mu_j`` (paper, eq. 10).

    Agents in ``subset`` follow their learned policy ``pi_i``, the others follow ``mu_j``.
    For a correlated ``mu`` the others follow ``mu``'s marginals, as in Lemma 2, so
    ``mixed_policy(pi, mu, [])`` is the product of ``mu``'s marginals, ``mu`` itself only
    when ``mu`` is factorized.

    Parameters
    ----------
    pi : FactorizedPolicy
        The learned per-agent policies.
    mu : FactorizedPolicy or JointPolicy
        The behavior policy.
    subset : iterable of int
        The deviating agents ``S``, indices in ``0 .. n-1``.
    """
    if not isinstance(pi, FactorizedPolicy):
        raise ValueError(f"pi: must be a FactorizedPolicy (per-agent learned policies), got {type(pi).__name__}")
    if not isinstance(mu, (FactorizedPolicy, JointPolicy)):
        raise ValueError(f"mu: must be a FactorizedPolicy or JointPolicy, got {type(mu).__name__}")
    if (pi.n_states, pi.action_sizes) != (mu.n_states, mu.action_sizes):
        raise ValueError(
            f"mu: has {mu.n_states} states and action sizes {mu.action_sizes}, "
            f"but pi has {pi.n_states} and {pi.action_sizes}"
        )
    members = set(check_subset(subset, pi.n_agents))
    behavior = mu.marginals()
    return FactorizedPolicy([pi.factors[i] if i in members else behavior[i] for i in range(pi.n_agents)])


def _random_rows(rng: np.random.Generator, n_rows: int, n_actions: int, concentration: float, deterministic: bool):
    if deterministic:
        rows = np.zeros((n_rows, n_actions))
        rows[np.arange(n_rows), rng.integers(n_actions, size=n_rows)] = 1.0
        return rows
    return rng.dirichlet(np.full(n_actions, concentration), size=n_rows)


def random_factorized_policy(
    mdp: DecMDP, seed: int, *, concentration: float = 1.0, deterministic: bool = False
) -> FactorizedPolicy:
    """Draw ``mu_i(. | s) ~ Dirichlet(concentration)`` independently for every agent and state.

    ``deterministic=True`` draws a random deterministic policy instead; small
    ``concentration`` gives nearly deterministic ones.
    """
    if concentration <= 0:
        raise ValueError(f"concentration: must be positive, got {concentration}")
    rng = np.random.default_rng(check_seed(seed))
    return FactorizedPolicy(
        [_random_rows(rng, mdp.n_states, a, concentration, deterministic) for a in mdp.action_sizes]
    )


def random_correlated_policy(
    mdp: DecMDP, seed: int, *, correlation: float = 0.5, concentration: float = 1.0
) -> JointPolicy:
    """Draw a correlated behavior policy with a knob for how correlated it is.

    ``mu(a | s) = (1 - c) prod_i nu_i(a_i | s) + c * sigma(a | s)`` with ``c = correlation``:
    ``nu_i`` are Dirichlet(concentration) factors and ``sigma`` is a *shared-signal* policy:
    a latent ``z ~ Dirichlet(1)`` over ``max_i A_i`` values is drawn per state, and every
    agent plays a fixed (random, per state) function of ``z``, so the agents move together.
    ``correlation = 0`` gives a factorized policy (``kappa = 0`` up to round-off); ``kappa`` tends to
    grow with ``correlation`` but not monotonically on every draw (the marginals move too), so
    measure it with :func:`tabular.excess_correlation`.
    """
    if not 0.0 <= correlation <= 1.0:
        raise ValueError(f"correlation: must lie in [0, 1], got {correlation}")
    # the independent and shared parts, their mix (two temporaries) and JointPolicy's validated copy
    _check_joint_memory("mdp", mdp.n_states, mdp.action_sizes, 5, "joint policy arrays")
    rng = np.random.default_rng(check_seed(seed))
    independent = random_factorized_policy(mdp, int(rng.integers(2**63)), concentration=concentration).joint()
    n_signals = max(mdp.action_sizes)
    signal = rng.dirichlet(np.ones(n_signals), size=mdp.n_states)  # [S, Z]
    shared = np.zeros((mdp.n_states, *mdp.action_sizes))
    for s in range(mdp.n_states):
        plays = [rng.integers(a, size=n_signals) for a in mdp.action_sizes]  # agent i plays plays[i][z]
        for z in range(n_signals):
            shared[(s, *(p[z] for p in plays))] += signal[s, z]
    return JointPolicy((1.0 - correlation) * independent + correlation * shared)


def policy_at_distance(mu_i, distance: float, seed: int) -> np.ndarray:
    """Draw ``pi_i`` with ``TV(pi_i(. | s), mu_i(. | s)) = distance`` in every state.

    In each state a target action ``a*`` is drawn among those with ``mu_i(a* | s) <= 1 - distance``
    and ``pi_i = (1 - t) mu_i + t e_{a*}`` with ``t = distance / (1 - mu_i(a* | s))``, whose TV to
    ``mu_i`` is exactly ``distance``. The largest reachable distance in state ``s`` is
    ``1 - min_a mu_i(a | s)``.

    Parameters
    ----------
    mu_i : array_like, shape (S, A_i)
    distance : float in [0, 1]
    seed : int

    Returns
    -------
    ndarray, shape (S, A_i)
    """
    mu_i = as_float_array("mu_i", mu_i, ndim=2)
    check_distributions("mu_i", mu_i, n_leading=1)
    if not 0.0 <= distance <= 1.0:
        raise ValueError(f"distance: must lie in [0, 1], got {distance}")
    rng = np.random.default_rng(check_seed(seed))
    pi_i = mu_i.copy()
    if distance == 0.0:
        return pi_i
    for s, row in enumerate(mu_i):
        candidates = np.flatnonzero(1.0 - row >= distance)
        if candidates.size == 0:
            raise ValueError(
                f"distance: {distance} is out of reach in state {s}, where the largest TV to mu_i is "
                f"{1.0 - row.min():.6g} (= 1 - min_a mu_i(a | s))"
            )
        target = rng.choice(candidates)
        t = distance / (1.0 - row[target])
        pi_i[s] = (1.0 - t) * row
        pi_i[s, target] += t
    return pi_i


def perturbed_policy(mu: Policy, distances, seed: int) -> FactorizedPolicy:
    """Learned policies ``pi_i`` at exactly ``TV(pi_i, mu_i) = distances[i]`` in every state.

    ``mu`` may be correlated; distances are then to its marginals, as in Lemma 2.
    """
    marginals = mu.marginals()
    distances = np.broadcast_to(np.asarray(distances, dtype=float), (len(marginals),))
    seeds = np.random.default_rng(check_seed(seed)).integers(2**63, size=len(marginals))
    return FactorizedPolicy(
        [policy_at_distance(m, float(d), int(k)) for m, d, k in zip(marginals, distances, seeds, strict=True)]
    )
