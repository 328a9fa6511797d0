"""OMAR: offline multi-agent RL with actor rectification (Pan et al., ICML 2022), as its code runs it.

Facts from ling-pan/OMAR (``algorithms/maddpg.py``, ``main.py``, ``utils/networks.py``), the code the
paper's MPE and HalfCheetah results come from; the per-task values are in :data:`OMAR_TABLE`.

Every agent is an independent TD3-style learner (:mod:`deep.algorithms.independent`) with twin critics
``Q_i1, Q_i2`` on ``[o_i, a_i]`` behind an input BatchNorm, trained with CQL::

    y_i   = r + gamma (1 - d) min_h Q'_ih(o'_i, pi'_i(o'_i))          (no target smoothing in the code)
    L_Q_i = sum_h E[(Q_ih(o_i, a_i) - y_i)^2]
            + alpha sum_h E[ T log sum_j exp((Q_ih(o_i, u_j) - log p(u_j)) / T) - Q_ih(o_i, a_i) ]

with ``u_j`` 10 uniform actions (log p = d log 1/2); on HalfCheetah also 10 noisy current-policy actions
at ``o_i`` and 10 at ``o'_i`` (noise 0.2, each critic call on ``o_i``), from which the code subtracts the
Gaussian noise's *density*, not its log-density (``calc_gaussian_pdf`` is named ``log_pi`` there);
followed here. The actor is rectified: a zeroth-order search around the policy finds
a better action ``a_hat_i``, and::

    L_pi_i = tau E[ (pi_i(o_i) - a_hat_i)^2 ] - (1 - tau) E[ Q_i1(o_i, pi_i(o_i)) ] + 1e-3 E[pi_i(o_i)^2]

``tau`` is ``omar_coe``. The search starts from ``N(mu_0, sigma_0^2)`` (0 and 2) and, per iteration,
samples actions (clipped to [-1, 1]) and refits the Gaussian:

- MPE (``softmax``): 3 iterations of 10 samples; the mean moves to the softmax(Q)-weighted mean of the
  samples, the std to the root mean square distance of the samples from that mean;
- HalfCheetah (``cem``): 2 iterations of 20 samples; the 5 best (by ``Q_i1``) are the elites, the mean
  and (unbiased) std are theirs, and each iteration's elites join the next iteration's candidates.

``a_hat_i`` is the best candidate of the last iteration, or the policy's own action where that has
the higher ``Q_i1``. The search runs without gradients (the code detaches it).

Schedule: one update is one of the code's rounds (every ``steps_per_update = 100`` of its steps; 10 on
HalfCheetah): every agent's critic and actor once, each on its own minibatch, then the targets. Rounds:
``num_steps / steps_per_update``: CN 2000 (random 6000), PP 2000 (medium-replay 1000), World 1000
(main.py's default 1e5 steps), HalfCheetah 100k; the code runs one more (``t = 0..num_steps``).

Remaining differences from the code: the team reward for every agent (:mod:`deep.algorithms.independent`); the
random numbers come from one ``torch.Generator`` in another order; on HalfCheetah main.py sets
gamma 0.99 but, as in CFCQL's copy, never passes it to the learner, whose default 0.95 is what ran and
what is used here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from deep.algorithms.independent import TD3StyleLearner, TD3StyleSettings, mean_over_true_entries


@dataclass(frozen=True)
class OmarSettings(TD3StyleSettings):
    """OMAR's settings (module docstring); the independent learner's plus the penalty's and the search's."""

    cql_alpha: float
    n_sampled_actions: int
    lse_temperature: float
    penalty_policy_samples: bool
    policy_sample_noise: float
    omar_coe: float
    omar_search: str
    omar_iters: int
    omar_samples: int
    omar_elites: int  # CEM only (HalfCheetah); the MPE table keeps OMAR main.py's unused default 10
    omar_mu: float
    omar_sigma: float


SEARCHES = ("softmax", "cem")

# main.py's defaults (MPE) and its HalfCheetah overrides; maddpg.py's env_config_map (omar_coe, cql_alpha)
OMAR_TABLE = {
    "mpe": {
        "hidden": 64,
        "batch_size": 1024,
        "lr": 0.01,
        "tau": 0.01,
        "penalty_policy_samples": False,
        "omar_search": "softmax",
        "omar_iters": 3,
        "omar_samples": 10,
        "omar_elites": 10,
    },
    "halfcheetah": {
        "hidden": 256,
        "batch_size": 256,
        "lr": 3e-4,
        "tau": 0.005,
        "penalty_policy_samples": True,
        "omar_search": "cem",
        "omar_iters": 2,
        "omar_samples": 20,
        "omar_elites": 5,
    },
}
OMAR_SHARED = {
    "gamma": 0.95,
    "input_norm": True,
    "grad_clip": 0.5,
    "action_l2": 1e-3,
    "policy_delay": 1,
    "n_heads": 2,
    "independent_batches": True,
    "n_sampled_actions": 10,
    "lse_temperature": 1.0,
    "policy_sample_noise": 0.2,
    "omar_mu": 0.0,
    "omar_sigma": 2.0,
}
# (omar_coe, cql_alpha) per dataset: random, medium-replay, medium, expert
OMAR_COE_ALPHA = {
    "cn": {"random": (1.0, 0.5), "medium-replay": (1.0, 1.0), "medium": (1.0, 5.0), "expert": (1.0, 5.0)},
    "pp": {"random": (0.9, 0.5), "medium-replay": (0.9, 0.5), "medium": (0.7, 5.0), "expert": (0.9, 5.0)},
    "world": {"random": (1.0, 0.5), "medium-replay": (0.7, 1.0), "medium": (0.1, 0.5), "expert": (0.9, 5.0)},
    "halfcheetah": {"random": (1.0, 1.0), "medium-replay": (0.9, 5.0), "medium": (0.7, 1.0), "expert": (0.5, 5.0)},
}
OMAR_ROUNDS = {"cn": 2_000, "pp": 2_000, "world": 1_000, "halfcheetah": 100_000}
OMAR_ROUND_OVERRIDES = {("cn", "random"): 6_000, ("pp", "medium-replay"): 1_000}


def defaults(task: str, dataset: str) -> dict:
    """OMAR's values for (task, dataset), and ``updates`` (its rounds)."""
    coe, alpha = OMAR_COE_ALPHA[task][dataset]
    return {
        **OMAR_SHARED,
        **OMAR_TABLE["halfcheetah" if task == "halfcheetah" else "mpe"],
        "omar_coe": coe,
        "cql_alpha": alpha,
        "updates": OMAR_ROUND_OVERRIDES.get((task, dataset), OMAR_ROUNDS[task]),
    }


def td_targets(rewards, terminals, q_next, gamma: float) -> torch.Tensor:
    """``y = r + gamma (1 - d) min_h Q'_h``: ``rewards, terminals [n, B]``, ``q_next [n, H, B]`` -> ``[n, B]``."""
    return rewards + gamma * (1.0 - terminals) * q_next.min(dim=1).values


def cql_penalty(q_samples, log_density, q_data, temperature: float) -> torch.Tensor:
    """CQL(H) per agent and head, summed over heads: ``[n]``.

    ``q_samples [n, H, S, B]`` at the sampled actions, ``log_density [n, S, B]`` what is subtracted
    from each, ``q_data [n, H, B]`` at the dataset actions:
    ``sum_h E_B[ T logsumexp_j((Q_h(u_j) - log p_j) / T) - Q_h(a) ]``.
    """
    logits = (q_samples - log_density.unsqueeze(1)) / temperature
    lse = temperature * torch.logsumexp(logits, dim=2)  # [n, H, B]
    return (lse - q_data).mean(dim=-1).sum(dim=1)


def softmax_refit(samples, q) -> tuple[torch.Tensor, torch.Tensor]:
    """MPE's refit: ``mu = sum_j softmax_j(Q) a_j``, ``sigma = sqrt(mean_j (a_j - mu)^2)``.

    ``samples [n, K, B, A]``, ``q [n, K, B]`` -> ``mu, sigma [n, B, A]``.
    """
    weights = torch.softmax(q, dim=1).unsqueeze(-1)  # [n, K, B, 1]
    mu = (weights * samples).sum(dim=1)
    sigma = (samples - mu.unsqueeze(1)).square().mean(dim=1).sqrt()
    return mu, sigma


def rectified_actions(q_fn, policy_actions, q_policy, normals, settings: OmarSettings, mask) -> torch.Tensor:
    """The search's action ``a_hat [n, B, A]`` (module docstring), without gradients.

    ``q_fn(actions [n, K, B, A]) -> [n, K, B]`` is ``Q_i1(o_i, .)``; ``policy_actions [n, B, A]`` and
    ``q_policy [n, B]`` the policy's actions and their ``Q_i1``; ``normals [iters, n, K, B, A]``
    standard normal; ``mask [n, A]`` the true action entries.
    """
    s = settings
    mask = mask.unsqueeze(1).unsqueeze(1)  # [n, 1, 1, A]
    mu = torch.full_like(policy_actions, s.omar_mu)
    sigma = torch.full_like(policy_actions, s.omar_sigma)
    elites = elite_q = None
    for normal in normals:
        samples = (mu.unsqueeze(1) + sigma.unsqueeze(1) * normal).clamp(-1.0, 1.0) * mask  # [n, K, B, A]
        q = q_fn(samples)  # [n, K, B]
        if s.omar_search == "softmax":
            mu, sigma = softmax_refit(samples, q)
            continue
        if elites is not None:  # CEM: the last iteration's elites compete again
            samples, q = torch.cat([samples, elites], dim=1), torch.cat([q, elite_q], dim=1)
        elite_q, index = q.topk(s.omar_elites, dim=1)  # [n, E, B]
        elites = samples.gather(1, index.unsqueeze(-1).expand(-1, -1, -1, samples.shape[-1]))
        mu, sigma = elites.mean(dim=1), elites.std(dim=1)
    best_q, best = q.max(dim=1)  # [n, B]
    best_action = samples.gather(1, best.view(*best.shape[:1], 1, -1, 1).expand(-1, 1, -1, samples.shape[-1]))
    return torch.where((q_policy >= best_q).unsqueeze(-1), policy_actions, best_action.squeeze(1))


def rectified_actor_loss(actions, mimic, q_policy, coe: float, action_l2: float, mask) -> torch.Tensor:
    """``sum_i [coe E(pi_i - a_hat_i)^2 - (1 - coe) E Q_i1(o_i, pi_i) + l2 E pi_i^2]``.

    ``actions, mimic [n, B, A]``, ``q_policy [n, B]``; the means over each agent's true entries
    (``F.mse_loss`` and ``(pi ** 2).mean()`` over ``[B, d_i]`` in OMAR's code).
    """
    imitation = mean_over_true_entries((actions - mimic).square(), mask)  # [n]
    l2 = mean_over_true_entries(actions.square(), mask)
    return (coe * imitation - (1.0 - coe) * q_policy.mean(dim=1) + action_l2 * l2).sum()


class OmarLearner(TD3StyleLearner):
    """OMAR (module docstring) on the shared independent learner."""

    def draw_noise(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        s = self.settings
        n, act = self.n_agents, self.act_dim

        def draw(function, *shape):
            return function(shape, generator=generator, device=self.device)

        noise = {
            "uniform": draw(torch.rand, n, s.n_sampled_actions, batch_size, act),
            "search": draw(torch.randn, s.omar_iters, n, s.omar_samples, batch_size, act),
        }
        if s.penalty_policy_samples:
            noise["policy"] = draw(torch.randn, 2, n, s.n_sampled_actions, batch_size, act)
        return noise

    def _critic_losses(self, data, noise):
        s = self.settings
        mask = self.action_mask.unsqueeze(1).unsqueeze(1)  # [n, 1, 1, act]
        with torch.no_grad():
            next_actions = self.policy(self.target_actors, data["next_obs"])
            q_next = self.q_values(self.target_critics, data["next_obs"], next_actions.unsqueeze(1))[:, :, 0]
            y = td_targets(data["rewards"], data["terminals"], q_next, s.gamma)  # [n, B]
            uniform = (2.0 * noise["uniform"] - 1.0) * mask  # [n, S, B, act]
            log_uniform = -math.log(2.0) * self.action_mask.sum(dim=-1)  # [n]
            sources = [(uniform, log_uniform.view(-1, 1, 1).expand(uniform.shape[:3]))]
            if s.penalty_policy_samples:
                for obs, normal in zip((data["obs"], data["next_obs"]), noise["policy"], strict=True):
                    centre = self.policy(self.actors, obs).unsqueeze(1)  # [n, 1, B, act]
                    offset = s.policy_sample_noise * normal * mask
                    density = torch.exp(  # the code subtracts the density itself (module docstring)
                        (-0.5 * (offset / s.policy_sample_noise) ** 2 * mask).sum(dim=-1)
                        - math.log(s.policy_sample_noise * math.sqrt(2.0 * math.pi)) * mask.sum(dim=-1)
                    )
                    sources.append(((centre + offset).clamp(-1.0, 1.0) * mask, density))
        q_data = self.q_values(self.critics, data["obs"], data["actions"].unsqueeze(1))[:, :, 0]  # [n, H, B]
        td = (q_data - y.unsqueeze(1)).square().mean(dim=-1).sum(dim=1)  # [n]
        q_samples = torch.cat([self.q_values(self.critics, data["obs"], actions) for actions, _ in sources], dim=2)
        subtracted = torch.cat([value for _, value in sources], dim=1)
        penalty = cql_penalty(q_samples, subtracted, q_data, s.lse_temperature)  # [n]
        loss = (td + s.cql_alpha * penalty).sum()
        metrics = {
            "critic_loss": loss.detach(),
            "td_loss": td.detach().mean(),
            "penalty": penalty.detach().mean(),
            "q_data": q_data.detach().mean(),
            "target": y.mean(),
        }
        return loss, metrics

    def _actor_loss(self, data, noise):
        s = self.settings
        obs = data["obs"]
        actions = self.policy(self.actors, obs)  # [n, B, act]
        q_policy = self.q_values(self.critics, obs, actions.unsqueeze(1), first_only=True)[:, 0, 0]  # Q_i1; [n, B]
        with torch.no_grad():
            mimic = rectified_actions(
                lambda candidates: self.q_values(self.critics, obs, candidates, first_only=True)[:, 0],
                actions.detach(),
                q_policy.detach(),
                noise["search"],
                s,
                self.action_mask,
            )
        loss = rectified_actor_loss(actions, mimic, q_policy, s.omar_coe, s.action_l2, self.action_mask)
        return loss, {"q_policy": q_policy.detach().mean()}

    def metric_names(self) -> list[str]:
        return ["critic_loss", "td_loss", "penalty", "q_data", "target", "actor_loss", "q_policy"]
