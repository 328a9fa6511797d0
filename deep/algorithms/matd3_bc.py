"""MA-TD3+BC: TD3+BC (Fujimoto & Gu 2021) on every agent, the multi-agent form of the OMAR paper.

The OMAR paper (Pan et al. 2022, Section 5) builds all its baselines "on the independent TD3 based on
decentralized critics": each agent runs TD3+BC on its own observation and action
(:mod:`deep.algorithms.independent`). The method is not in OMAR's public code, so its pieces come from TD3+BC's
paper and code (sfujim/TD3_BC: ``TD3_BC.py``, ``main.py``) and the shared settings from OMAR's code::

    a'_i  = clip(pi'_i(o'_i) + clip(sigma eps, -c, c), -1, 1)               TD3 target smoothing
    y_i   = r + gamma (1 - d) min_h Q'_ih(o'_i, a'_i)
    L_Q_i = sum_h E[(Q_ih(o_i, a_i) - y_i)^2]
    L_pi_i = -lambda_i E[Q_i1(o_i, pi_i(o_i))] + E[(pi_i(o_i) - a_i)^2],   lambda_i = alpha / E|Q_i1(o_i, pi_i(o_i))|

with ``lambda_i`` not differentiated (as TD3+BC's code detaches it). The actors and targets move every
``policy_delay = 2`` critic updates.

=====================  =====================================  =============================================
setting                value                                  source
=====================  =====================================  =============================================
alpha                  2.5                                    TD3+BC (the OMAR paper gives no other value)
sigma, c, delay        0.2, 0.5, 2                            TD3+BC (``policy_noise``, ``noise_clip``,
                                                              ``policy_freq``)
networks, lr, batch,   as OMAR's code: MPE hidden 64, batch   the OMAR paper's baselines share its code's
tau, gamma, schedule   1024, lr 0.01, tau 0.01; HalfCheetah   learner; gamma 0.95 (what OMAR's learner runs
                       256 / 256 / 3e-4 / 0.005; rounds as    with, :mod:`deep.algorithms.omar`)
                       :data:`deep.algorithms.omar.OMAR_ROUNDS`
=====================  =====================================  =============================================

Differences from TD3+BC written down: TD3+BC normalizes the states by the dataset's mean and std;
here the networks' input BatchNorm (OMAR's networks) takes that role. TD3+BC's actor loss has no
action L2 term (OMAR's code adds ``1e-3 E[pi^2]`` to its own actor losses): ``action_l2 = 0``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from deep.algorithms import omar
from deep.algorithms.independent import TD3StyleLearner, TD3StyleSettings, mean_over_true_entries


@dataclass(frozen=True)
class TD3BCSettings(TD3StyleSettings):
    """MA-TD3+BC's settings: the independent learner's plus TD3+BC's."""

    bc_alpha: float
    target_noise: float
    target_noise_clip: float


TD3BC_SHARED = {"bc_alpha": 2.5, "target_noise": 0.2, "target_noise_clip": 0.5, "policy_delay": 2, "action_l2": 0.0}


def defaults(task: str, dataset: str) -> dict:
    """The table's values for (task, dataset) and ``updates``: OMAR's learner and schedule, TD3+BC's constants."""
    base = omar.defaults(task, dataset)
    names = {"hidden", "batch_size", "lr", "tau", "gamma", "input_norm", "grad_clip", "n_heads", "independent_batches"}
    return {name: base[name] for name in names} | TD3BC_SHARED | {"updates": base["updates"]}


def smoothed_actions(actions, normal, noise: float, noise_clip: float, mask) -> torch.Tensor:
    """TD3's target smoothing ``clip(a + clip(noise eps, -c, c), -1, 1)``; ``actions, normal [n, B, A]``."""
    return (actions + (noise * normal).clamp(-noise_clip, noise_clip)).clamp(-1.0, 1.0) * mask.unsqueeze(1)


def td3_bc_actor_loss(actions, data_actions, q_policy, alpha: float, action_l2: float, mask) -> torch.Tensor:
    """``sum_i [-lambda_i E Q_i1 + E (pi_i - a_i)^2 + l2 E pi_i^2]``, ``lambda_i = alpha / E|Q_i1|`` (no gradient).

    ``actions, data_actions [n, B, A]``, ``q_policy [n, B]``; the squared terms are means over each
    agent's true entries (``F.mse_loss`` over ``[B, d_i]``).
    """
    lam = alpha / q_policy.abs().mean(dim=1).detach()  # [n]
    imitation = mean_over_true_entries((actions - data_actions).square(), mask)  # [n]
    l2 = mean_over_true_entries(actions.square(), mask)
    return (-lam * q_policy.mean(dim=1) + imitation + action_l2 * l2).sum()


class TD3BCLearner(TD3StyleLearner):
    """MA-TD3+BC (module docstring) on the shared independent learner."""

    def draw_noise(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        shape = (self.n_agents, batch_size, self.act_dim)
        return {"target": torch.randn(shape, generator=generator, device=self.device)}

    def _critic_losses(self, data, noise):
        s = self.settings
        with torch.no_grad():
            next_policy = self.policy(self.target_actors, data["next_obs"])
            next_actions = smoothed_actions(
                next_policy, noise["target"], s.target_noise, s.target_noise_clip, self.action_mask
            )
            q_next = self.q_values(self.target_critics, data["next_obs"], next_actions.unsqueeze(1))[:, :, 0]
            y = omar.td_targets(data["rewards"], data["terminals"], q_next, s.gamma)  # [n, B]
        q_data = self.q_values(self.critics, data["obs"], data["actions"].unsqueeze(1))[:, :, 0]  # [n, H, B]
        td = (q_data - y.unsqueeze(1)).square().mean(dim=-1).sum(dim=1)  # [n]
        loss = td.sum()
        return loss, {"critic_loss": loss.detach(), "q_data": q_data.detach().mean(), "target": y.mean()}

    def _actor_loss(self, data, noise):
        s = self.settings
        actions = self.policy(self.actors, data["obs"])  # [n, B, act]
        q_policy = self.q_values(self.critics, data["obs"], actions.unsqueeze(1), first_only=True)[:, 0, 0]  # Q_i1
        loss = td3_bc_actor_loss(actions, data["actions"], q_policy, s.bc_alpha, s.action_l2, self.action_mask)
        return loss, {"q_policy": q_policy.detach().mean()}

    def metric_names(self) -> list[str]:
        return ["critic_loss", "q_data", "target", "actor_loss", "q_policy"]
