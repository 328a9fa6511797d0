"""Conservative penalties: CFCQL's per-agent counterfactual penalty (paper eq. 5's xi_c) and MACQL's joint one.

Both are CQL(H) penalties (Kumar et al. 2020), per ensemble member e,
``E_B[ logsumexp_j (Q_e(s, a^j) - log p(a^j)) - Q_e(s, a) ]``, over sampled actions ``a^j`` with
their log-density ``log p`` subtracted (importance sampling of the log-sum-exp integral):

- counterfactual (CFCQL, Shao et al. 2023; SPaCQL eq. 5; ICQL-QS eq. 2): for each agent i only
  agent i's action is sampled while the others keep the dataset's actions ``a_-i``, and the
  per-agent terms are weighted ``lambda_i = 1/n``::

      xi_e = sum_i (1/n) E_B[ logsumexp_j (Q_e(s, a_i^j, a_-i) - log p_i(a_i^j)) ] - E_B[ Q_e(s, a) ]

- joint (MACQL): the whole joint action is sampled, ``log p`` the sum over agents.

The samples (:func:`uniform_samples`, :func:`policy_samples`) follow CFCQL's code: uniform actions
in ``[-1, 1]`` with log-density ``-d_i log 2``; on MaMuJoCo also the current policy's actions at
``o`` and at ``o'`` plus Gaussian noise (std 0.2) with the noise's Gaussian log-density (computed
before clipping to ``[-1, 1]``, as there). The noise is drawn by the caller, so these functions are
pure. Padded action entries (an agent whose true action size is below the padded size) are zero in
every sample, as in the dataset, and do not enter the densities. The log-sum-exp is over the samples
of every source together (CFCQL concatenates them), each source being one critic call.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from deep.algorithms.networks import Critics


def uniform_samples(uniform: torch.Tensor, action_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniform actions from ``uniform [S, B, n, act]`` in ``[0, 1)``: ``(actions, log_density [S, B, n])``.

    ``action_mask [n, act]`` is 1 on each agent's true action entries; the density of agent i is
    ``(1/2)^{d_i}`` on ``[-1, 1]^{d_i}``.
    """
    actions = (2.0 * uniform - 1.0) * action_mask  # [S, B, n, act]
    log_density = -math.log(2.0) * action_mask.sum(dim=-1)  # [n]
    return actions, log_density.expand(actions.shape[:-1])


def policy_samples(
    policy_actions: torch.Tensor, normal: torch.Tensor, noise_std: float, action_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy policy actions ``clip(pi(o) + noise_std * normal, -1, 1)``: ``(actions, log_density)``.

    ``policy_actions [B, n, act]``, ``normal [S, B, n, act]`` standard normal; the log-density
    ``[S, B, n]`` is that of the Gaussian noise on agent i's true entries.
    """
    noise = noise_std * normal * action_mask  # [S, B, n, act]
    actions = (policy_actions.unsqueeze(0) + noise).clamp(-1.0, 1.0) * action_mask
    log_density = (-0.5 * (noise / noise_std) ** 2 - math.log(noise_std * math.sqrt(2.0 * math.pi))) * action_mask
    return actions, log_density.sum(dim=-1)


Source = tuple[torch.Tensor, torch.Tensor]
"""One sample source ``(actions [S, B, n, act], log_density [S, B, n])``, from :func:`uniform_samples` or
:func:`policy_samples`."""


def counterfactual_penalty(
    critics: Critics,
    state: torch.Tensor,
    actions: torch.Tensor,
    q_data: torch.Tensor,
    sources: Sequence[Source],
    temperature: float = 1.0,
    chunked: bool = False,
) -> torch.Tensor:
    """CFCQL's penalty per member, ``[E]`` (module docstring), all agents and samples of a source in one call.

    Parameters
    ----------
    critics : Critics
        The current ensemble (gradients flow into it).
    state : Tensor [B, state_dim]
    actions : Tensor [B, n, act]
        Dataset joint actions.
    q_data : Tensor [E, B]
        ``Q_e(s, a)`` at the dataset actions (shared with the TD loss).
    sources : sequence of (Tensor [S, B, n, act], Tensor [S, B, n])
        Sampled actions and each agent's log-density, per source; agent i's column replaces agent
        i's action. Each source is one critic call, so an input normalization takes the batch
        statistics of its ``n * S * B`` candidates, as CFCQL's one call per source (random, current,
        next policy); the log-sum-exp runs over the samples of all sources.
    temperature : float
        Of the log-sum-exp (CQL's ``lse_temp``, 1 in CFCQL).
    chunked : bool
        Evaluate the candidates in cache-sized blocks (:class:`deep.algorithms.networks.ChunkedCandidateMLP`).
    """
    n_agents = actions.shape[1]
    logits = []
    for samples, log_density in sources:
        n_samples = samples.shape[0]
        # candidate (i, j): agent i takes sample j, the others keep the dataset action
        joint = actions.expand(n_agents, *samples.shape).clone()  # [n, S, B, n, act]
        for i in range(n_agents):  # (10x faster than a broadcast torch.where on the CPU)
            joint[i, :, :, i] = samples[:, :, i]
        q = critics.candidates(state, joint.flatten(0, 1), chunked=chunked).unflatten(1, (n_agents, n_samples))
        logits.append(q - log_density.permute(2, 0, 1))  # [E, n, S, B]
    lse = temperature * torch.logsumexp(torch.cat(logits, dim=2) / temperature, dim=2)  # [E, n, B]
    return (lse.mean(dim=1) - q_data).mean(dim=-1)  # lambda_i = 1/n; [E]


def joint_penalty(
    critics: Critics,
    state: torch.Tensor,
    q_data: torch.Tensor,
    sources: Sequence[Source],
    temperature: float = 1.0,
    chunked: bool = False,
) -> torch.Tensor:
    """MACQL's penalty per member, ``[E]``: the whole joint action sampled, one critic call per source."""
    logits = [
        critics.candidates(state, samples, chunked=chunked) - log_density.sum(dim=-1)  # [E, S, B]
        for samples, log_density in sources
    ]
    lse = temperature * torch.logsumexp(torch.cat(logits, dim=1) / temperature, dim=1)  # [E, B]
    return (lse - q_data).mean(dim=-1)  # [E]
