"""SPaCQL, ICQL-QS, CFCQL and MACQL: one offline actor-critic, four choices of target and penalty.

The family shares everything but two pieces (paper, "SPaCQL: An Adaptive Mixture of Partial Backups"),
and the size of the critic ensemble:

=====================  ==============================================  ===============================  =======
algorithm              Bellman target (:mod:`.targets`)                penalty (:mod:`.penalties`)      critics
=====================  ==============================================  ===============================  =======
``spacql``             soft-partial, inverse-std weights (eq. 3-7)     counterfactual (eq. 5's xi_c)    10
``icql-qs``            individual, averaged over agents (eq. 1-2, 15)  counterfactual                   10
``cfcql``              full joint                                      counterfactual                   2
``macql``              full joint                                      joint                            2
``spacql-fixed-k``     one random subset of ``k`` agents (ablation)    counterfactual                   10
``spacql-uniform``     soft-partial, uniform weights (ablation)        counterfactual                   10
=====================  ==============================================  ===============================  =======

CFCQL and MACQL run as in CFCQL's code: twin critics (``DoubleMLPNetwork``, the minimum of the two in
the target). SPaCQL and its variants use the paper's "ensemble of 10 Q-networks" on the same network.

The networks are CFCQL's (``utils/networks.py``): an input ``BatchNorm1d`` (:class:`deep.algorithms.networks.InputNorm`,
``input_norm``), then Linear-ReLU-Linear-ReLU-Linear. The critic ensemble shares one normalization of
its input ``[state, a_1..a_n]`` (CFCQL's twin heads share one ``in_fn``); each agent's actor has its own.
SPaCQL and ICQL-QS get it too: the paper keeps "all hyperparameters ... identical to those specified
in the original CFCQL paper" for SPaCQL and the CFCQL baseline alike, and the normalization is part of
CFCQL's network, not a separate choice. As in CFCQL, every network is in training mode throughout the
updates, so each forward pass normalizes with its own batch statistics: the target actors on
``o'``, the target critics on the ``K x B`` candidate next joint actions, the critics on the batch, on
each penalty sample source (``n x samples x B`` rows each) and in the actor loss on the ``n x B``
joint actions. Only the evaluation of the actors uses the running statistics (CFCQL's
``prep_rollouts``; deep/train.py). The running statistics are buffers: in ``state_dict`` and so in
the checkpoints; the targets' are their own (Polyak averaging moves parameters only, as CFCQL's).

One update (Algorithm 1, with CFCQL's schedule, which the paper reuses):

- critic: ``sum_e E_B[(Q_e(s, a) - y)^2] + alpha sum_e xi_e`` over the ``E`` critics evaluated in one
  batched matmul, the gradient norm of the whole critic (every member and the shared input
  normalization) clipped to 0.5 at once, as CFCQL's ``clip_grad_norm_(critic.parameters(), 0.5)``;
- actor (every ``policy_delay = 5`` critic updates, right after the critic step): per agent i,
  maximize ``Q_1(s, a_1..pi_i(o_i)..a_n)`` with the other agents' *dataset* actions (line 20), plus
  CFCQL's action L2 penalty ``1e-3 E[pi_i(o_i)^2]``, gradient norm clipped to 0.5 per agent;
- targets (critic and actors): Polyak averaging once per round of ``policy_delay`` critic updates,
  after the round's last critic step, as in CFCQL's ``update_all_targets``;
- TD3 target smoothing: ``a'_i = clip(pi'_i(o'_i) + N(0, 0.05^2), -1, 1)`` (CFCQL's ``action_noise``).

Everything random is drawn from one ``torch.Generator`` on the device before the losses
(:meth:`OfflineLearner.draw_noise`), so the loss functions are pure tensor code (compilable) and a
run is reproducible bit for bit on the CPU. Metrics stay on the device; nothing in
:meth:`OfflineLearner.update` synchronizes with the host. On the CPU (eager) the targets and penalties
run their candidates in cache-sized blocks (:class:`deep.algorithms.networks.ChunkedCandidateMLP`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import NamedTuple

import torch

from deep.algorithms import penalties, targets
from deep.algorithms.learner import CheckpointState, action_mask, clip_grad_norm_per_member
from deep.algorithms.networks import Actors, Critics, soft_update


class AlgorithmSpec(NamedTuple):
    """What distinguishes one algorithm of the family (module docstring's table)."""

    scheme: str  # deep.algorithms.targets scheme
    weighting: str  # deep.algorithms.targets weighting
    penalty: str  # "counterfactual" or "joint"
    n_critics: int  # default ensemble size E


ALGORITHMS: dict[str, AlgorithmSpec] = {
    "spacql": AlgorithmSpec("soft-partial", "inverse-std", "counterfactual", 10),
    "icql-qs": AlgorithmSpec("individual", "uniform", "counterfactual", 10),
    "cfcql": AlgorithmSpec("joint", "uniform", "counterfactual", 2),
    "macql": AlgorithmSpec("joint", "uniform", "joint", 2),
    "spacql-fixed-k": AlgorithmSpec("fixed-k", "uniform", "counterfactual", 10),
    "spacql-uniform": AlgorithmSpec("soft-partial", "uniform", "counterfactual", 10),
}

# CFCQL's settings (Shao et al. 2023, continuous code thu-rllab/CFCQL: main.py, algorithms/maddpg_cc.py,
# utils/networks.py; summarized in notes/baselines.md), which the paper reuses for SPaCQL and CFCQL alike.
# "rounds": CFCQL's MPE schedule runs one round every 100 of its 'steps' (steps_per_update = 100; 20 on
# World), a round being 1 critic+actor update and ca_ratio - 1 = 4 more critic updates; ~2k rounds were
# reported for CN/PP, ~5k for World, ~100k for HalfCheetah. One round = policy_delay = 5 critic updates
# here, so the default number of (critic) updates is 5 x rounds.
#
# gamma on HalfCheetah: CFCQL's main.py sets config.gamma = 0.99 for HalfCheetah-v2, but never passes
# gamma to MATD3CC.init_from_env, whose default gamma=0.95 is what its learner uses (tau, lr, hidden_dim
# and batch_size are passed). Its HalfCheetah results, which the paper reports for CFCQL, were trained
# with 0.95, and so is the table's default here ("as the authors ran it"); --gamma 0.99 gives the
# intended value.
#
# Remaining differences from CFCQL's code (continuous/, the paper's command --cql --cf_cql
# --central_critic; MACQL: without --cf_cql):
# - MaMuJoCo counterfactual penalty: CFCQL pairs the current-policy samples' Q with the next-policy
#   samples' log-density and vice versa (Q_list and pi_list in maddpg_cc.py list them in opposite
#   orders); here each sample has its own density. CFCQL also jitters the other agents' dataset actions
#   by Uniform(-1e-5, 1e-5) (beta_action_noise) there; here they are exact.
# - CFCQL's schedule runs num_steps / steps_per_update + 1 rounds (t = 0..num_steps inclusive): one more
#   than ROUNDS.
# - Random numbers come from one torch.Generator in another order; the batch is sampled on the device.
# - The InputNorm keeps no num_batches_tracked counter (BatchNorm1d with momentum 0.1 never reads it).
HYPERPARAMETERS: dict[str, dict] = {
    "mpe": {
        "hidden": 64,
        "batch_size": 1024,
        "lr": 1e-3,
        "gamma": 0.95,
        "tau": 0.01,
        "penalty_policy_samples": False,  # MPE: uniform random actions only
    },
    "halfcheetah": {
        "hidden": 256,
        "batch_size": 256,
        "lr": 3e-4,
        "gamma": 0.95,  # what CFCQL's learner ran with (see above), not main.py's unused 0.99
        "tau": 0.005,
        "penalty_policy_samples": True,  # MaMuJoCo: uniform, current-policy and next-policy actions
    },
}
TASK_OVERRIDES: dict[str, dict] = {"cn": {"lr": 0.01}}  # CFCQL sets lr = 0.01 for simple_spread
ROUNDS = {"cn": 2_000, "pp": 2_000, "world": 5_000, "halfcheetah": 100_000}
# CQL alpha per task and dataset (random, medium-replay, medium, expert): CFCQL's env_config_map.
CQL_ALPHA: dict[str, dict[str, float]] = {
    "cn": {"random": 0.5, "medium-replay": 1.0, "medium": 5.0, "expert": 2.5},
    "pp": {"random": 0.5, "medium-replay": 0.5, "medium": 0.6, "expert": 2.0},
    "world": {"random": 0.5, "medium-replay": 0.5, "medium": 0.32, "expert": 0.3},
    "halfcheetah": {"random": 0.1, "medium-replay": 0.4, "medium": 1.0, "expert": 1.7},
}
SHARED = {
    "input_norm": True,  # CFCQL's networks: BatchNorm1d on the input (weight 1, bias 0), in training mode
    "policy_delay": 5,  # CFCQL ca_ratio: critic updates per actor update
    "target_noise": 0.05,  # CFCQL action_noise_scale (target policy smoothing, no noise clip)
    "n_sampled_actions": 10,  # CFCQL num_sampled_actions, per sample source
    "policy_sample_noise": 0.2,  # CFCQL cql_sample_noise_level
    "lse_temperature": 1.0,  # CFCQL lse_temp
    "grad_clip": 0.5,  # clip_grad_norm_(..., 0.5) for the whole critic and each actor
    "action_l2": 1e-3,  # pol_loss += (pi_i(o_i) ** 2).mean() * 1e-3
}


def default_hyperparameters(task: str, dataset: str, algo: str = "spacql") -> dict:
    """The table's values for (task, dataset, algo): CFCQL's settings, CQL alpha, ``n_critics``, update count."""
    if task not in ROUNDS:
        raise ValueError(f"task must be one of {tuple(ROUNDS)}, got {task!r}")
    if dataset not in CQL_ALPHA[task]:
        raise ValueError(f"dataset must be one of {tuple(CQL_ALPHA[task])}, got {dataset!r}")
    if algo not in ALGORITHMS:
        raise ValueError(f"algo must be one of {tuple(ALGORITHMS)}, got {algo!r}")
    family = HYPERPARAMETERS["halfcheetah" if task == "halfcheetah" else "mpe"]
    return {
        **SHARED,
        **family,
        **TASK_OVERRIDES.get(task, {}),
        "n_critics": ALGORITHMS[algo].n_critics,
        "cql_alpha": CQL_ALPHA[task][dataset],
        "updates": ROUNDS[task] * SHARED["policy_delay"],
    }


@dataclass(frozen=True)
class LearnerSettings:
    """Everything the update needs, resolved from the table and the run's config."""

    algo: str
    n_critics: int
    input_norm: bool
    hidden: int
    batch_size: int
    lr: float
    gamma: float
    tau: float
    cql_alpha: float
    policy_delay: int
    target_noise: float
    n_sampled_actions: int
    penalty_policy_samples: bool
    policy_sample_noise: float
    lse_temperature: float
    grad_clip: float
    action_l2: float
    k: int = 1

    def __post_init__(self):
        if self.algo not in ALGORITHMS:
            raise ValueError(f"algo must be one of {tuple(ALGORITHMS)}, got {self.algo!r}")

    @property
    def scheme(self) -> str:
        return ALGORITHMS[self.algo].scheme

    @property
    def weighting(self) -> str:
        return ALGORITHMS[self.algo].weighting

    @property
    def penalty(self) -> str:
        return ALGORITHMS[self.algo].penalty


class OfflineLearner(CheckpointState):
    """Networks, optimizers and the update of one algorithm of the family (module docstring)."""

    NETWORKS = ("actors", "critics", "target_actors", "target_critics", "actor_optimizer", "critic_optimizer")

    def __init__(self, settings: LearnerSettings, n_agents: int, obs_dim: int, act_dims, state_dim: int, device):
        self.settings, self.device = settings, torch.device(device)
        self.n_agents, self.act_dim = n_agents, max(act_dims)
        self.action_mask = action_mask(act_dims, self.act_dim, self.device)  # [n, act]
        self.actors = Actors(n_agents, obs_dim, self.act_dim, settings.hidden, settings.input_norm).to(self.device)
        self.critics = Critics(
            settings.n_critics, state_dim, n_agents, self.act_dim, settings.hidden, settings.input_norm
        ).to(self.device)
        self.target_actors = copy.deepcopy(self.actors).requires_grad_(False)
        self.target_critics = copy.deepcopy(self.critics).requires_grad_(False)
        self.actor_optimizer = torch.optim.Adam(self.actors.parameters(), lr=settings.lr)
        self.critic_optimizer = torch.optim.Adam(self.critics.parameters(), lr=settings.lr)
        self.updates = 0
        self.critic_losses = self._critic_losses
        self.actor_loss = self._actor_loss
        self.compiled_cuda_graphs = False
        self.chunked = self.device.type == "cpu"  # candidates in cache-sized blocks (eager CPU only)

    def compile(self, mode: str | None = None) -> None:
        """Compile the loss functions (forward and backward) with ``torch.compile``.

        ``mode="reduce-overhead"`` captures them as CUDA graphs on a GPU; the optimizer steps and the
        noise stay eager. Results match eager up to rounding, not bit for bit. On this CPU (one thread)
        the compiled update was 2x *slower* than eager (benchmarks/bench_offline_updates.py --compile).
        The targets and penalties then evaluate their candidates as whole tensors (``chunked`` off).
        """
        self.compiled_cuda_graphs = mode == "reduce-overhead" and self.device.type == "cuda"
        self.chunked = False
        self.critic_losses = torch.compile(self._critic_losses, mode=mode, fullgraph=True)
        self.actor_loss = torch.compile(self._actor_loss, mode=mode, fullgraph=True)

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """Deterministic team actions ``[B, n, act]``, padded entries zero."""
        return self.actors(obs) * self.action_mask

    @property
    def batch_rows(self) -> int:
        """Dataset rows one update takes: one minibatch for the whole team."""
        return self.settings.batch_size

    def metric_names(self) -> list[str]:
        """The metrics of an update, as metrics.csv columns: the weights ``w_k`` (and for SPaCQL ``u_k``)."""
        s = self.settings
        n_masks = targets.n_candidates(s.scheme, self.n_agents)
        names = ["critic_loss", "td_loss", "penalty", "q_data", "target", "target_std"]
        names += [f"w_{k + 1}" for k in range(n_masks)]
        if s.weighting == "inverse-std":
            names += [f"u_{k + 1}" for k in range(n_masks)]
        return [*names, "actor_loss", "q_policy"]

    def draw_noise(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Every random number of one critic update, drawn from ``generator`` on the device."""
        s = self.settings
        n, act = self.n_agents, self.act_dim
        n_masks = targets.n_candidates(s.scheme, n)

        def draw(function, *shape):
            return function(shape, generator=generator, device=self.device)

        noise = {
            "target": draw(torch.randn, batch_size, n, act),
            "subsets": draw(torch.rand, n_masks, batch_size, n),
            "uniform": draw(torch.rand, s.n_sampled_actions, batch_size, n, act),
        }
        if s.penalty_policy_samples:
            noise["policy"] = draw(torch.randn, 2, s.n_sampled_actions, batch_size, n, act)
        return noise

    def _critic_losses(self, batch: dict[str, torch.Tensor], noise: dict[str, torch.Tensor]):
        """``(loss, metrics)``: the critic objective (TD + alpha * penalty) and its logged parts, on the device."""
        s = self.settings
        mask = self.action_mask
        with torch.no_grad():
            smoothed = self.target_actors(batch["next_obs"]) + s.target_noise * noise["target"]
            policy_next = smoothed.clamp(-1.0, 1.0) * mask
            masks = targets.replacement_masks(s.scheme, noise["subsets"], s.k)
            target = targets.partial_target(
                batch["rewards"],
                batch["terminals"],
                batch["next_state"],
                batch["next_actions"],
                policy_next,
                masks,
                self.target_critics,
                s.gamma,
                s.weighting,
                self.critics,
                self.chunked,
            )
            # each source is one critic call (its own batch statistics), as in CFCQL
            sources = [penalties.uniform_samples(noise["uniform"], mask)]
            if s.penalty_policy_samples:
                for obs, normal in ((batch["obs"], noise["policy"][0]), (batch["next_obs"], noise["policy"][1])):
                    sources.append(penalties.policy_samples(self.act(obs), normal, s.policy_sample_noise, mask))
        q_data = self.critics(batch["state"], batch["actions"])  # [E, B]
        td = ((q_data - target.y) ** 2).mean(dim=1)  # [E]
        if s.penalty == "counterfactual":
            penalty = penalties.counterfactual_penalty(
                self.critics, batch["state"], batch["actions"], q_data, sources, s.lse_temperature, self.chunked
            )
        else:
            penalty = penalties.joint_penalty(
                self.critics, batch["state"], q_data, sources, s.lse_temperature, self.chunked
            )
        loss = td.sum() + s.cql_alpha * penalty.sum()
        metrics = {
            "critic_loss": loss.detach(),
            "td_loss": td.detach().mean(),
            "penalty": penalty.detach().mean(),
            "q_data": q_data.detach().mean(),
            "target": target.y.mean(),
            "target_std": target.target_std.mean(),
            "weights": target.weights.mean(dim=1),  # [K]
        }
        if target.current_std is not None:
            metrics["current_std"] = target.current_std.mean(dim=1)  # [K]
        return loss, metrics

    def _actor_loss(self, batch: dict[str, torch.Tensor], noise: dict[str, torch.Tensor]):
        """Each agent i maximizes ``Q_1(s, a_1..pi_i(o_i)..a_n)``, the others' actions from the dataset (line 20).

        ``(loss, {"q_policy"})``; ``noise`` is unused (the actor step draws nothing), kept for the
        learners' common signature (:mod:`deep.algorithms.batched`).
        """
        s = self.settings
        own = self.act(batch["obs"])  # [B, n, act]
        only_i = torch.eye(self.n_agents, dtype=torch.bool, device=self.device).view(self.n_agents, 1, self.n_agents, 1)
        joint = torch.where(only_i, own, batch["actions"])  # [n, B, n, act]
        q = self.critics.candidates(batch["state"], joint, members=slice(0, 1))[0]  # Q_1; [n, B]
        # as CFCQL: -mean over the n * B joint actions, plus each agent's action L2 term
        loss = -q.mean() + s.action_l2 * own.pow(2).mean(dim=(0, 2)).sum()
        return loss, {"q_policy": q.detach().mean()}

    critic_clip_groups = 1
    """Gradient-norm clip groups of the critic: one norm over the whole critic, as CFCQL."""

    def actor_due(self, update: int) -> bool:
        """Whether this update has an actor step: the first of each round of ``policy_delay`` (CFCQL's order)."""
        return update % self.settings.policy_delay == 0

    def targets_due(self, update: int) -> bool:
        """Whether the targets move after this update: at the end of each round (``update_all_targets``)."""
        return (update + 1) % self.settings.policy_delay == 0

    def prepare(self, batch: dict[str, torch.Tensor], generator: torch.Generator):
        """``(data, noise)`` of one update: the minibatch as the losses take it, then its noise from ``generator``."""
        return batch, self.draw_noise(batch["rewards"].shape[0], generator)

    def update(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        """One critic update, the actor update every ``policy_delay``-th, the targets at each round's end."""
        s = self.settings
        if self.compiled_cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()  # the previous step's graph outputs are consumed
        data, noise = self.prepare(batch, generator)
        loss, metrics = self.critic_losses(data, noise)
        if self.compiled_cuda_graphs:  # graph outputs live in a pool that the next replay reuses
            metrics = {key: value.clone() for key, value in metrics.items()}
        self.critic_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.critics.parameters(), s.grad_clip)  # one norm: the whole critic
        self.critic_optimizer.step()
        if self.actor_due(self.updates):
            actor_loss, actor_metrics = self.actor_loss(data, noise)
            self.actor_optimizer.zero_grad(set_to_none=True)
            actor_loss.backward(inputs=list(self.actors.parameters()))
            clip_grad_norm_per_member(list(self.actors.parameters()), s.grad_clip)
            self.actor_optimizer.step()
            metrics |= {"actor_loss": actor_loss.detach().clone()} | {k: v.clone() for k, v in actor_metrics.items()}
        if self.targets_due(self.updates):
            soft_update(self.target_critics, self.critics, s.tau)  # Algorithm 1, line 17
            soft_update(self.target_actors, self.actors, s.tau)  # line 21
        self.updates += 1
        return metrics
