"""Bellman targets of the value-regularized family: full joint, individual, soft-partial (paper eq. 1-7).

Every target is one *partial backup*: each transition ``(s, a, r, s', a')`` gets ``K`` candidate next
joint actions ``a'^(k)``, in which the agents of a boolean mask take the target policy's smoothed
action and the others keep the logged ``a'`` (the dataset's exact next joint action). The candidates
are evaluated in one batched forward of the target ensemble (``[E, K, B]``), reduced by the minimum
over members, and mixed with weights ``w_k``::

    y = r + gamma (1 - terminal) sum_k w_k min_e Q'_e(s', a'^(k))

Truncated transitions are not terminal: they bootstrap like any other. The replacing actions are the
*target* policies' smoothed actions, as in TD3 and CFCQL's targets; Algorithm 1 (line 8) writes them
as samples of the current policies ``pi_i(.|s')``, which for deterministic actors differ only by the
Polyak lag of the target copies. The schemes (the masks) and
weightings:

=================  ==================================================  ===============================
scheme             candidates (masks ``[K, B, n]``)                    weights ``w_k``
=================  ==================================================  ===============================
``joint``          K = 1: every agent replaced (CFCQL, MACQL)          1
``individual``     K = n: only agent i replaced, i = 1..n (eq. 1)      1/n: the average over agents of
                                                                       the individual targets, the
                                                                       operator T^ai of eq. 15 (ICQL-QS)
``soft-partial``   K = n: a uniformly random subset of k agents per    ``inverse-std`` (eq. 6-7): w_k =
                   transition, k = 1..n (eq. 3; Algorithm 1 l. 6-9)    (1/u_k) / sum_j (1/u_j), u_k the
                                                                       std over the *current* ensemble
                                                                       of Q(s', a'^(k)) (l. 10-13);
                                                                       ``uniform``: 1/n (ablation)
``fixed-k``        K = 1: a random subset of k agents (ablation)       1
=================  ==================================================  ===============================

The functions are pure: the random subsets come from uniform scores drawn by the caller (so that the
whole update can be replayed and compiled), and everything runs under ``torch.no_grad``: the target
and its weights carry no gradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from deep.algorithms.networks import Critics

Scheme = Literal["joint", "individual", "soft-partial", "fixed-k"]
Weighting = Literal["uniform", "inverse-std"]

SCHEMES: tuple[str, ...] = ("joint", "individual", "soft-partial", "fixed-k")
WEIGHTINGS: tuple[str, ...] = ("uniform", "inverse-std")

STD_FLOOR = 1e-6
"""Added to ``u_k`` before inverting it (eq. 7), so that members agreeing exactly give a finite weight."""


def n_candidates(scheme: Scheme, n_agents: int) -> int:
    """Number ``K`` of candidate next joint actions per transition of ``scheme``."""
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    return n_agents if scheme in ("individual", "soft-partial") else 1


def random_subsets(sizes: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Uniformly random agent subsets of the given sizes, one per transition.

    ``sizes [K]`` (integers in ``0..n``) and ``scores [K, B, n]`` (i.i.d. uniform) give the mask
    ``[K, B, n]``: the ``sizes[k]`` agents with the smallest scores of row ``(k, b)``, a uniformly
    random subset of that size (the ranks of i.i.d. scores form a uniform random permutation).
    """
    ranks = scores.argsort(dim=-1).argsort(dim=-1)  # [K, B, n]
    return ranks < sizes.view(-1, 1, 1)


def replacement_masks(scheme: Scheme, scores: torch.Tensor, k: int = 1) -> torch.Tensor:
    """Which agents take the target policy's action in each candidate: ``[K, B, n]`` bool.

    ``scores [K, B, n]`` are uniform random numbers (only the random schemes use them; their shape
    fixes ``K``, ``B`` and ``n``). ``k`` is the subset size of ``fixed-k``.
    """
    n_masks, batch, n_agents = scores.shape
    if n_masks != n_candidates(scheme, n_agents):
        raise ValueError(f"scores: scheme {scheme!r} needs {n_candidates(scheme, n_agents)} masks, got {n_masks}")
    device = scores.device
    if scheme == "joint":
        return torch.ones(1, batch, n_agents, dtype=torch.bool, device=device)
    if scheme == "individual":
        return torch.eye(n_agents, dtype=torch.bool, device=device).unsqueeze(1).expand(n_agents, batch, n_agents)
    if scheme == "soft-partial":
        return random_subsets(torch.arange(1, n_agents + 1, device=device), scores)
    if not 1 <= k <= n_agents:
        raise ValueError(f"k: the fixed-k subset size must lie in 1..{n_agents}, got {k}")
    return random_subsets(torch.tensor([k], device=device), scores)


def replace_actions(logged: torch.Tensor, policy: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Candidates ``[K, B, n, act]``: ``policy [B, n, act]`` where ``masks [K, B, n]``, else ``logged [B, n, act]``."""
    return torch.where(masks.unsqueeze(-1), policy, logged)


def inverse_std_weights(std: torch.Tensor) -> torch.Tensor:
    """Eq. 7's weights ``w_k = (1/u_k) / sum_j (1/u_j)`` over the first axis of ``std [K, B]``."""
    inverse = 1.0 / (std + STD_FLOOR)
    return inverse / inverse.sum(dim=0, keepdim=True)  # [K, B]


@dataclass
class Target:
    """A batch of Bellman targets and what the logs show about them (all detached).

    Attributes
    ----------
    y : Tensor [B]
        The regression target.
    weights : Tensor [K, B]
        ``w_k`` per transition.
    target_std : Tensor [K, B]
        Std over the target ensemble of ``Q'_e(s', a'^(k))`` (the uncertainty of the paper's Figure 2).
    current_std : Tensor [K, B] or None
        ``u_k``: std over the current ensemble (only computed by ``inverse-std``).
    """

    y: torch.Tensor
    weights: torch.Tensor
    target_std: torch.Tensor
    current_std: torch.Tensor | None


@torch.no_grad()
def partial_target(
    rewards: torch.Tensor,
    terminals: torch.Tensor,
    next_state: torch.Tensor,
    next_actions: torch.Tensor,
    policy_next_actions: torch.Tensor,
    masks: torch.Tensor,
    target_critics: Critics,
    gamma: float,
    weighting: Weighting = "uniform",
    critics: Critics | None = None,
    chunked: bool = False,
) -> Target:
    """``y = r + gamma (1 - terminal) sum_k w_k min_e Q'_e(s', a'^(k))`` for the candidates of ``masks``.

    Parameters
    ----------
    rewards, terminals : Tensor [B]
        Team reward and the terminal flag as float (truncations are not terminal).
    next_state : Tensor [B, state_dim]
    next_actions : Tensor [B, n, act]
        The logged next joint action ``a'``.
    policy_next_actions : Tensor [B, n, act]
        The target policy's smoothed actions at ``s'`` (``clip(pi'(o') + noise)``).
    masks : Tensor [K, B, n] of bool
        From :func:`replacement_masks`.
    target_critics : Critics
        The target ensemble ``Q'`` (min over its members).
    gamma : float
    weighting : {"uniform", "inverse-std"}
        ``uniform``: ``w_k = 1/K``; ``inverse-std``: eq. 7 with ``u_k`` from ``critics``.
    critics : Critics, optional
        The current ensemble, required by ``inverse-std``.
    chunked : bool
        Evaluate the candidates in cache-sized blocks (:class:`deep.algorithms.networks.ChunkedCandidateMLP`).
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    candidates = replace_actions(next_actions, policy_next_actions, masks)  # [K, B, n, act]
    q_target = target_critics.candidates(next_state, candidates, chunked=chunked)  # [E, K, B]
    target_std = q_target.std(dim=0, correction=0)  # [K, B]
    current_std = None
    if weighting == "inverse-std":
        if critics is None:
            raise ValueError("critics: the inverse-std weighting needs the current ensemble")
        current_std = critics.candidates(next_state, candidates, chunked=chunked).std(dim=0, correction=0)  # [K, B]
        weights = inverse_std_weights(current_std)
    else:
        weights = torch.full_like(target_std, 1.0 / masks.shape[0])
    next_value = (weights * q_target.min(dim=0).values).sum(dim=0)  # [B]
    y = rewards + gamma * (1.0 - terminals) * next_value
    return Target(y=y, weights=weights, target_std=target_std, current_std=current_std)
