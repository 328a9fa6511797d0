"""IQL: implicit Q-learning (Kostrikov, Nair & Levine, ICLR 2022) on every agent.

The paper's Table 2 quotes IQL's numbers from the CFCQL paper (Shao et al. 2023), whose continuous
code has no IQL; its multi-agent form here is the common one of the offline MARL baselines: each
agent runs IQL on its own observation and action (:mod:`deep.algorithms.independent`), with twin critics
``Q_ih(o_i, a_i)``, a value network ``V_i(o_i)`` and a Gaussian policy. One update, in the order of
IQL's code (ikostrikov/implicit_q_learning, ``learner.py``)::

    L_V_i  = E[ |tau - 1(u < 0)| u^2 ],  u = min_h Q'_ih(o_i, a_i) - V_i(o_i)        expectile regression
    L_pi_i = -E[ min(exp(beta (min_h Q'_ih(o_i, a_i) - V_i(o_i))), 100) log pi_i(a_i | o_i) ]  AWR
    L_Q_i  = sum_h E[ (Q_ih(o_i, a_i) - r - gamma (1 - d) V_i(o'_i))^2 ]               Q from V
    Q'     <- (1 - tau_target) Q' + tau_target Q

the actor and the Q update reading the V just updated, the targets every update. The policy is
IQL's: ``N(tanh(f_i(o_i)), exp(log_std_i)^2)`` with a learned state-independent ``log_std`` clipped to
``[-5, 2]``; the team is evaluated with the mean (IQL evaluates with temperature 0), the same
:class:`deep.algorithms.networks.Actors` every method saves. The actor's learning rate decays to zero on a
cosine over ``cosine_updates`` (IQL's ``cosine_decay_schedule``): the method's default schedule, also when
``--updates`` differs, so that a run continued with ``--resume`` to more updates follows the schedule it
started with.

=====================  ===================================  =============================================
setting                value                                source
=====================  ===================================  =============================================
expectile tau, beta,   0.7, 3.0, 100                        IQL's MuJoCo config and ``actor.py``; CFCQL's
advantage clip                                              discrete IQL baseline uses the same 0.7 / 3.0
target rate            0.005                                IQL (CFCQL's discrete IQL: 0.005)
lr                     MPE 1e-3, HalfCheetah 3e-4           MPE: CFCQL's discrete IQL and its continuous
                                                            default lr; HalfCheetah: IQL's MuJoCo value
networks, batch,       as the other baselines: MPE hidden   chosen: the benchmark's shared settings
gamma, schedule        64, batch 1024; HalfCheetah 256 /    (gamma 0.95 as every learner of the
                       256; rounds of :mod:`deep.algorithms.omar`      benchmark's code runs)
gradient clipping      none                                 IQL's code clips nothing
=====================  ===================================  =============================================

Differences written down: IQL rescales MuJoCo rewards by ``1000 / (max return - min return)`` of the
dataset; not done here (the MPE returns of the benchmark are not D4RL locomotion returns, and the
other methods train on the raw reward). The value network takes the agent's observation, as IQL's
takes the state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from deep.algorithms import omar
from deep.algorithms.independent import IndependentLearner, IndependentSettings
from deep.algorithms.learner import clip_grad_norm_per_member
from deep.algorithms.networks import AgentCritics, soft_update

LOG_STD_RANGE = (-5.0, 2.0)
"""IQL's ``log_std_min`` (set to -5 by its learner) and the policy's default ``log_std_max``."""


@dataclass(frozen=True)
class IQLSettings(IndependentSettings):
    """IQL's settings: the independent learner's plus the expectile, the temperature and the schedule."""

    expectile: float
    temperature: float
    advantage_clip: float
    cosine_updates: int


def defaults(task: str, dataset: str) -> dict:
    """The table's values for (task, dataset) and ``updates`` (module docstring)."""
    base = omar.defaults(task, dataset)
    halfcheetah = task == "halfcheetah"
    names = {"hidden", "batch_size", "gamma", "input_norm", "n_heads", "independent_batches"}
    return {name: base[name] for name in names} | {
        "lr": 3e-4 if halfcheetah else 1e-3,
        "tau": 0.005,
        "grad_clip": None,
        "expectile": 0.7,
        "temperature": 3.0,
        "advantage_clip": 100.0,
        "cosine_updates": base["updates"],
        "updates": base["updates"],
    }


def expectile_loss(difference: torch.Tensor, expectile: float) -> torch.Tensor:
    """``|tau - 1(u < 0)| u^2`` element-wise (IQL's asymmetric L2 of the value loss)."""
    weight = torch.where(difference < 0, 1.0 - expectile, expectile)
    return weight * difference.square()


def advantage_weights(advantage: torch.Tensor, temperature: float, clip: float) -> torch.Tensor:
    """``min(exp(beta A), clip)`` (IQL's advantage weights, capped as in its code)."""
    return torch.exp(temperature * advantage).clamp(max=clip)


def gaussian_log_prob(actions, mean, log_std, mask) -> torch.Tensor:
    """``log N(a; mean, exp(log_std)^2)`` summed over each agent's true entries: ``[n, B, A]`` -> ``[n, B]``.

    ``log_std [n, A]`` (state-independent), ``mask [n, A]``.
    """
    log_std = log_std.unsqueeze(1)
    z = (actions - mean) * torch.exp(-log_std)
    per_entry = -0.5 * z.square() - log_std - 0.5 * math.log(2.0 * math.pi)
    return (per_entry * mask.unsqueeze(1)).sum(dim=-1)


def cosine_lr(lr: float, update: int, horizon: int) -> float:
    """``lr (1 + cos(pi min(t, T) / T)) / 2``: optax's ``cosine_decay_schedule`` (alpha 0)."""
    return 0.5 * lr * (1.0 + math.cos(math.pi * min(update, horizon) / horizon))


class PolicyLogStd(nn.Module):
    """Each agent's state-independent ``log_std [n, act]`` of IQL's Gaussian policy (initially 0)."""

    def __init__(self, n_agents: int, act_dim: int):
        super().__init__()
        self.log_std = nn.Parameter(torch.zeros(n_agents, act_dim))

    def forward(self) -> torch.Tensor:
        return self.log_std.clamp(*LOG_STD_RANGE)


class IQLLearner(IndependentLearner):
    """IQL (module docstring): value, actor and critic steps in IQL's order, no target actors (IQL
    bootstraps from V). Eager only (``--compile`` is refused for it by deep/settings.py)."""

    NETWORKS = (
        "actors",
        "policy_log_std",
        "critics",
        "target_critics",
        "values",
        "actor_optimizer",
        "critic_optimizer",
        "value_optimizer",
    )

    def __init__(self, settings, n_agents: int, obs_dim: int, act_dims, state_dim: int, device):
        super().__init__(settings, n_agents, obs_dim, act_dims, state_dim, device)
        s = settings
        self.policy_log_std = PolicyLogStd(n_agents, self.act_dim).to(self.device)
        self.values = AgentCritics(n_agents, 1, obs_dim, s.hidden, s.input_norm).to(self.device)
        self.actor_optimizer = torch.optim.Adam([*self.actors.parameters(), *self.policy_log_std.parameters()], s.lr)
        self.value_optimizer = torch.optim.Adam(self.values.parameters(), lr=s.lr)

    def _step(self, optimizer, loss, parameters) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward(inputs=parameters)
        if self.settings.grad_clip is not None:
            clip_grad_norm_per_member(parameters, self.settings.grad_clip, self.n_agents)
        optimizer.step()

    def update(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        s = self.settings
        data = self.agent_batch(batch)
        obs, actions = data["obs"], data["actions"]
        with torch.no_grad():
            q_target = self.q_values(self.target_critics, obs, actions.unsqueeze(1))[:, :, 0].min(dim=1).values
        v = self.values(obs)[:, 0]  # [n, B]
        value_loss = expectile_loss(q_target - v, s.expectile).mean(dim=1).sum()
        self._step(self.value_optimizer, value_loss, list(self.values.parameters()))

        with torch.no_grad():
            advantage = q_target - self.values(obs)[:, 0]
            weights = advantage_weights(advantage, s.temperature, s.advantage_clip)  # [n, B]
        mean = self.policy(self.actors, obs)
        log_prob = gaussian_log_prob(actions, mean, self.policy_log_std(), self.action_mask)
        actor_loss = -(weights * log_prob).mean(dim=1).sum()
        for group in self.actor_optimizer.param_groups:
            group["lr"] = cosine_lr(s.lr, self.updates, s.cosine_updates)
        self._step(self.actor_optimizer, actor_loss, [*self.actors.parameters(), *self.policy_log_std.parameters()])

        with torch.no_grad():
            y = data["rewards"] + s.gamma * (1.0 - data["terminals"]) * self.values(data["next_obs"])[:, 0]
        q = self.q_values(self.critics, obs, actions.unsqueeze(1))[:, :, 0]  # [n, H, B]
        critic_loss = (q - y.unsqueeze(1)).square().mean(dim=-1).sum()
        self._step(self.critic_optimizer, critic_loss, list(self.critics.parameters()))
        soft_update(self.target_critics, self.critics, s.tau)
        self.updates += 1
        return {
            "critic_loss": critic_loss.detach(),
            "value_loss": value_loss.detach(),
            "actor_loss": actor_loss.detach(),
            "q_data": q.detach().mean(),
            "v_data": v.detach().mean(),
            "advantage": advantage.mean(),
            "target": y.mean(),
        }

    def metric_names(self) -> list[str]:
        return ["critic_loss", "value_loss", "actor_loss", "q_data", "v_data", "advantage", "target"]
