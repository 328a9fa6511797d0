"""R runs of the value family as one program: the run index is a leading axis of every tensor of the update.

R independent runs of one method, task and dataset (seeds: the same settings, so the same network shapes)
train together: their parameters, normalization statistics and Adam moments are stacked into ``[R, ...]``
tensors, and one update evaluates all R runs' losses and gradients with ``torch.func.vmap`` over
:meth:`deep.algorithms.offline.OfflineLearner._critic_losses` and ``_actor_loss`` themselves
(``torch.func.functional_call`` puts run r's tensors into the learner's modules for the call), so the
batched update is the single-run update, not a copy of it. Everything else of the update acts on the
stacked tensors directly: Adam is element-wise, so one Adam over ``[R, ...]`` tensors is R Adams; the
gradient clip takes one norm per run (the whole critic; each agent's actor); Polyak averaging is
element-wise.

Each run keeps its own random stream: its minibatch and its noise are drawn from its own generator in the
single run's order (the caller samples the minibatch, then :meth:`BatchedRuns.update` draws the noise),
and its metrics are its own (``[R, ...]``). The batched arithmetic (batched matmuls, the clip's norms)
rounds differently from R separate runs: the runs agree with separate ones to float32 rounding, which
grows with the updates (tested to a stated tolerance, not bit for bit). :meth:`BatchedRuns.to_learners`
writes the runs back into their learners, whose ``state_dict`` is then each run's checkpoint; a
``BatchedRuns`` built from learners loaded from checkpoints resumes them.

The penalties evaluate their candidates as whole tensors (``chunked`` off: the CPU block path is a custom
autograd function that ``vmap`` does not trace).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, grad_and_value, vmap

from deep.algorithms.offline import OfflineLearner

MODULES = ("actors", "critics", "target_actors", "target_critics")


class _Losses(nn.Module):
    """The learner's four networks as one module, its loss functions as ``forward`` (for ``functional_call``)."""

    def __init__(self, learner: OfflineLearner):
        super().__init__()
        self.learner = [learner]  # a list: not a submodule, its networks are registered below
        for name in MODULES:
            self.add_module(name, getattr(learner, name))

    def forward(self, kind: str, batch: dict[str, torch.Tensor], noise: dict[str, torch.Tensor] | None):
        learner = self.learner[0]
        return learner._critic_losses(batch, noise) if kind == "critic" else learner._actor_loss(batch)


def _stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack([t.detach() for t in tensors]).clone()


def _clip_per_run(grads: list[torch.Tensor], max_norm: float, groups: int = 1) -> None:
    """Scale each run's gradients (``[R, ...]`` each; ``groups`` blocks of the next axis clipped alike) in place."""
    squares = sum(g.reshape(g.shape[0], groups, -1).square().sum(dim=-1) for g in grads)  # [R, G]
    scale = (max_norm / (squares.sqrt() + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.view(g.shape[0], groups, -1).mul_(scale.unsqueeze(-1))


class BatchedRuns:
    """R :class:`OfflineLearner` runs of one settings object updated as one program (module docstring)."""

    def __init__(self, learners: list[OfflineLearner]):
        template = learners[0]
        if any(learner.settings != template.settings for learner in learners):
            raise ValueError("learners: the batched runs must share their settings (only the seeds differ)")
        if len({learner.updates for learner in learners}) != 1:
            raise ValueError("learners: the batched runs must be at the same update")
        self.learners, self.template = learners, template
        self.settings, self.runs, self.updates = template.settings, len(learners), template.updates
        template.chunked = False
        self.losses = _Losses(template)
        names = [name for name, _ in self.losses.named_parameters()]
        self.params = {
            name: _stack([dict(_Losses(learner).named_parameters())[name] for learner in learners]) for name in names
        }
        self.buffers = {
            name: _stack([dict(_Losses(learner).named_buffers())[name] for learner in learners])
            for name, _ in self.losses.named_buffers()
        }
        self.critic_names = [name for name in names if name.startswith("critics.")]
        self.actor_names = [name for name in names if name.startswith("actors.")]
        lr = self.settings.lr
        self.critic_optimizer = torch.optim.Adam([self.params[name] for name in self.critic_names], lr=lr)
        self.actor_optimizer = torch.optim.Adam([self.params[name] for name in self.actor_names], lr=lr)
        for optimizer, family in ((self.critic_optimizer, "critic"), (self.actor_optimizer, "actor")):
            self._stack_adam(optimizer, family)

    def _member_params(self, learner: OfflineLearner, family: str) -> list[torch.Tensor]:
        return list(getattr(learner, "critics" if family == "critic" else "actors").parameters())

    def _stack_adam(self, optimizer: torch.optim.Adam, family: str) -> None:
        """Stack the learners' Adam moments (a resumed run's) into ``optimizer``; nothing before the first step."""
        states = [getattr(learner, f"{family}_optimizer").state for learner in self.learners]
        per_run = [
            [state.get(p) for p in self._member_params(learner, family)]
            for state, learner in zip(states, self.learners, strict=True)
        ]
        for index, stacked in enumerate(optimizer.param_groups[0]["params"]):
            entries = [run[index] for run in per_run]
            if entries[0] is None:
                continue
            optimizer.state[stacked] = {
                "step": entries[0]["step"].clone(),
                "exp_avg": _stack([entry["exp_avg"] for entry in entries]),
                "exp_avg_sq": _stack([entry["exp_avg_sq"] for entry in entries]),
            }

    def _gradients(self, names: list[str], kind: str, batch, noise):
        """Each run's loss, metrics and gradients w.r.t. ``names`` (``[R, ...]`` each), one vmapped call."""
        trained = {name: self.params[name] for name in names}
        fixed = {name: value for name, value in self.params.items() if name not in trained}

        def run_objective(trained, fixed, buffers, batch, noise):
            values = {**trained, **fixed, **buffers}
            loss, metrics = functional_call(self.losses, values, (kind, batch, noise))
            return loss, metrics

        in_dims = (0, 0, 0, 0, None if noise is None else 0)
        grads, (loss, metrics) = vmap(grad_and_value(run_objective, has_aux=True), in_dims=in_dims)(
            trained, fixed, self.buffers, batch, noise
        )
        return grads, loss, metrics

    def update(self, batches: list[dict[str, torch.Tensor]], generators: list[torch.Generator]) -> dict:
        """One update of every run: run r on ``batches[r]``, its noise from ``generators[r]``; metrics ``[R, ...]``."""
        s = self.settings
        noise = [
            learner.draw_noise(batch["rewards"].shape[0], generator)
            for learner, batch, generator in zip(self.learners, batches, generators, strict=True)
        ]
        stacked = {key: torch.stack([batch[key] for batch in batches]) for key in batches[0]}
        noise = {key: torch.stack([draws[key] for draws in noise]) for key in noise[0]}
        grads, _, metrics = self._gradients(self.critic_names, "critic", stacked, noise)
        critic_grads = [grads[name] for name in self.critic_names]
        _clip_per_run(critic_grads, s.grad_clip)  # one norm per run: its whole critic
        for name, grad in zip(self.critic_names, critic_grads, strict=True):
            self.params[name].grad = grad
        self.critic_optimizer.step()
        if self.updates % s.policy_delay == 0:
            grads, actor_loss, q_policy = self._gradients(self.actor_names, "actor", stacked, None)
            actor_grads = [grads[name] for name in self.actor_names]
            _clip_per_run(actor_grads, s.grad_clip, groups=self.template.n_agents)  # each agent's actor
            for name, grad in zip(self.actor_names, actor_grads, strict=True):
                self.params[name].grad = grad
            self.actor_optimizer.step()
            metrics |= {"actor_loss": actor_loss.detach(), "q_policy": q_policy.detach()}
        if (self.updates + 1) % s.policy_delay == 0:
            with torch.no_grad():
                for name, value in self.params.items():
                    if name.startswith("target_"):
                        value.lerp_(self.params[name.removeprefix("target_")], s.tau)
        self.updates += 1
        return {key: value.detach() for key, value in metrics.items()}

    def to_learners(self) -> list[OfflineLearner]:
        """Write run r's parameters, statistics, Adam moments and update count into ``learners[r]``."""
        for r, learner in enumerate(self.learners):
            module = _Losses(learner)
            with torch.no_grad():
                for name, value in module.named_parameters():
                    value.copy_(self.params[name][r])
                for name, value in module.named_buffers():
                    value.copy_(self.buffers[name][r])
            for optimizer, family in ((self.critic_optimizer, "critic"), (self.actor_optimizer, "actor")):
                target = getattr(learner, f"{family}_optimizer")
                for stacked, own in zip(
                    optimizer.param_groups[0]["params"], self._member_params(learner, family), strict=True
                ):
                    if stacked in optimizer.state:
                        state = optimizer.state[stacked]
                        target.state[own] = {
                            "step": state["step"].clone(),
                            "exp_avg": state["exp_avg"][r].clone(),
                            "exp_avg_sq": state["exp_avg_sq"][r].clone(),
                        }
            learner.updates = self.updates
        return self.learners
