"""Decentralized offline actor-critics: each agent's critics see only its own observation and action.

OMAR (Pan et al. 2022) and MA-TD3+BC (its multi-agent TD3+BC) train every agent as an independent
learner, as OMAR's code does (``algorithms/maddpg.py``: one ``TD3Agent`` per agent, its twin critic
``Q_i(o_i, a_i)`` on its own observation and action, each agent updated on its own minibatch); IQL runs
the same way in its multi-agent baseline form. :class:`IndependentLearner` holds what they share:

- per-agent actors :class:`deep.algorithms.networks.Actors` and per-agent critics
  :class:`deep.algorithms.networks.AgentCritics` (``H`` heads each, one input normalization per agent), their
  target copies, one Adam per network family (Adam is element-wise, so one optimizer over the
  batched agents equals one per agent);
- the batch: with ``independent_batches`` the caller draws ``n x B`` rows and agent i trains on the
  i-th block of ``B`` (OMAR's ``replay_buffer.sample`` per agent), else all agents on the same ``B``
  rows; :meth:`IndependentLearner.agent_batch` turns either into agent-major ``[n, B, ...]`` tensors
  of each agent's own observation, action, next observation;
- one update: the critic objective of every agent (a sum of independent per-agent losses), its
  gradient clipped per agent (each agent's critic by its own norm, as OMAR's
  ``clip_grad_norm(curr_agent.critic.parameters(), 0.5)``), then every ``policy_delay``-th update the
  actor objective, clipped per agent, then the targets (TD3's order: the targets move with the
  actor).

The reward: the datasets store the team reward (the mean over the team; :mod:`deep.storage.datasets`), which
each agent trains on. OMAR trains agent i on its own reward ``rews[i]``: on PP and World all predators
get the same reward, so the two agree; on CN agent i's reward differs from the mean by its own
collision penalty (-5 per collision against the mean's).

:class:`TD3StyleLearner` adds the TD3 update skeleton (OMAR, MA-TD3+BC: their files give the noise,
the critic and the actor objectives as compositions of pure loss functions); IQL's update has its own
order (value, actor, critic) and derives from :class:`IndependentLearner` directly.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from deep.algorithms.learner import CheckpointState, action_mask, clip_grad_norm_per_member
from deep.algorithms.networks import Actors, AgentCritics, soft_update


@dataclass(frozen=True)
class IndependentSettings:
    """What every decentralized learner needs; the methods' settings extend it."""

    algo: str
    hidden: int
    batch_size: int
    lr: float
    gamma: float
    tau: float
    input_norm: bool
    grad_clip: float | None  # None: no clipping (IQL)
    n_heads: int
    independent_batches: bool


@dataclass(frozen=True)
class TD3StyleSettings(IndependentSettings):
    """What the TD3 skeleton adds (:class:`TD3StyleLearner`): the actor's delay and its action L2 weight."""

    action_l2: float
    policy_delay: int


def own_rows(x: torch.Tensor, n_agents: int) -> torch.Tensor:
    """Agent i's own entry of block i: ``x [n * B, n, ...]`` -> ``[n, B, ...]``."""
    agents = torch.arange(n_agents, device=x.device)
    return x.unflatten(0, (n_agents, -1))[agents, :, agents]  # [n, B, ...]


def mean_over_true_entries(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Each agent's mean of ``x [n, B, A]`` over its ``B x d_i`` true action entries (``mask [n, A]``): ``[n]``.

    What ``F.mse_loss`` and ``(pi ** 2).mean()`` over one agent's ``[B, d_i]`` actions give in OMAR's code.
    """
    return (x * mask.unsqueeze(1)).sum(dim=(1, 2)) / (mask.sum(dim=-1) * x.shape[1])


class IndependentLearner(CheckpointState):
    """Per-agent actors and critics, their targets and the update skeleton (module docstring)."""

    NETWORKS = ("actors", "critics", "target_actors", "target_critics", "actor_optimizer", "critic_optimizer")

    def __init__(self, settings, n_agents: int, obs_dim: int, act_dims, state_dim: int, device):
        self.settings, self.device = settings, torch.device(device)
        self.n_agents, self.act_dim = n_agents, max(act_dims)
        self.action_mask = action_mask(act_dims, self.act_dim, self.device)  # [n, act]
        s = settings
        self.actors = Actors(n_agents, obs_dim, self.act_dim, s.hidden, s.input_norm).to(self.device)
        self.critics = AgentCritics(n_agents, s.n_heads, obs_dim + self.act_dim, s.hidden, s.input_norm).to(self.device)
        if "target_actors" in self.NETWORKS:
            self.target_actors = copy.deepcopy(self.actors).requires_grad_(False)
        self.target_critics = copy.deepcopy(self.critics).requires_grad_(False)
        self.actor_optimizer = torch.optim.Adam(self.actors.parameters(), lr=s.lr)
        self.critic_optimizer = torch.optim.Adam(self.critics.parameters(), lr=s.lr)
        self.updates = 0

    @property
    def batch_rows(self) -> int:
        """Dataset rows one update takes: ``n x B`` with independent minibatches, else ``B``."""
        return self.settings.batch_size * (self.n_agents if self.settings.independent_batches else 1)

    def agent_batch(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each agent's own rows, agent-major: ``obs, next_obs [n, B, obs]``, ``actions [n, B, act]``,
        ``rewards, terminals [n, B]``."""
        n = self.n_agents
        if self.settings.independent_batches:
            per_agent = {key: own_rows(batch[key], n) for key in ("obs", "next_obs", "actions")}
            flags = {key: batch[key].view(n, -1) for key in ("rewards", "terminals")}
        else:
            per_agent = {key: batch[key].transpose(0, 1) for key in ("obs", "next_obs", "actions")}
            flags = {key: batch[key].unsqueeze(0).expand(n, -1) for key in ("rewards", "terminals")}
        return per_agent | flags

    def policy(self, actors: Actors, obs: torch.Tensor) -> torch.Tensor:
        """Each agent's deterministic action on its own rows: ``obs [n, N, obs]`` -> ``[n, N, act]``."""
        return actors(obs.transpose(0, 1)).transpose(0, 1) * self.action_mask.unsqueeze(1)

    def q_values(
        self, critics: AgentCritics, obs: torch.Tensor, actions: torch.Tensor, first_only: bool = False
    ) -> torch.Tensor:
        """``Q_ih(o_i, a)`` ``[n, H, K, N]`` of ``K`` actions per row: ``obs [n, N, obs]``, ``actions [n, K, N, act]``.

        One critic call over the ``K * N`` rows: an input normalization takes their batch statistics,
        as OMAR's call on the repeated observations. ``first_only``: ``Q_i1`` alone, ``[n, 1, K, N]``.
        """
        n, k, rows, _ = actions.shape
        obs_k = obs.unsqueeze(1).expand(n, k, rows, obs.shape[-1])
        x = torch.cat([obs_k, actions], dim=-1).reshape(n, k * rows, -1)
        return critics(x, first_only).unflatten(2, (k, rows))

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """Deterministic team actions ``[B, n, act]``, padded entries zero."""
        return self.actors(obs) * self.action_mask


class TD3StyleLearner(IndependentLearner):
    """The TD3 skeleton of OMAR and MA-TD3+BC: a critic step, every ``policy_delay``-th an actor step and the targets.

    Subclasses give ``draw_noise(batch_size, generator)``, ``_critic_losses(data, noise) -> (loss,
    metrics)`` and ``_actor_loss(data, noise) -> (loss, metrics)``.
    """

    def __init__(self, settings, n_agents: int, obs_dim: int, act_dims, state_dim: int, device):
        super().__init__(settings, n_agents, obs_dim, act_dims, state_dim, device)
        self.critic_losses = self._critic_losses
        self.actor_loss = self._actor_loss

    def compile(self, mode: str | None = None) -> None:
        """Compile the loss functions with ``torch.compile`` (the optimizer steps stay eager)."""
        self.critic_losses = torch.compile(self._critic_losses, mode=mode)
        self.actor_loss = torch.compile(self._actor_loss, mode=mode)

    @property
    def critic_clip_groups(self) -> int:
        """Gradient-norm clip groups of the critic: one per agent (each agent's twin critic by its own norm)."""
        return self.n_agents

    def actor_due(self, update: int) -> bool:
        """Whether this update has an actor step (and the targets after it): TD3's ``total_it % policy_freq``
        after its increment."""
        return (update + 1) % self.settings.policy_delay == 0

    def targets_due(self, update: int) -> bool:
        """Whether the targets move after this update: right after each actor step (TD3's order)."""
        return self.actor_due(update)

    def prepare(self, batch: dict[str, torch.Tensor], generator: torch.Generator):
        """``(data, noise)`` of one update: each agent's own rows, then their noise from ``generator``."""
        data = self.agent_batch(batch)
        return data, self.draw_noise(data["rewards"].shape[1], generator)

    def update(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        """One critic update of every agent, the actors every ``policy_delay``-th with the targets after them."""
        s = self.settings
        data, noise = self.prepare(batch, generator)
        loss, metrics = self.critic_losses(data, noise)
        self.critic_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip_grad_norm_per_member(list(self.critics.parameters()), s.grad_clip, self.critic_clip_groups)
        self.critic_optimizer.step()
        if self.actor_due(self.updates):
            actor_loss, actor_metrics = self.actor_loss(data, noise)
            self.actor_optimizer.zero_grad(set_to_none=True)
            actor_loss.backward(inputs=list(self.actors.parameters()))
            clip_grad_norm_per_member(list(self.actors.parameters()), s.grad_clip)
            self.actor_optimizer.step()
            metrics |= {"actor_loss": actor_loss.detach()} | actor_metrics
        if self.targets_due(self.updates):
            soft_update(self.target_critics, self.critics, s.tau)
            soft_update(self.target_actors, self.actors, s.tau)
        self.updates += 1
        return metrics
