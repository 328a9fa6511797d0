"""R runs of one method as one program: the run index is a leading axis of every tensor of the update.

R independent runs of one method, task and dataset (seeds: the same settings, so the same network shapes)
train together: their parameters, normalization statistics and Adam moments are stacked into ``[R, ...]``
tensors, and one update evaluates all R runs' losses and gradients with ``torch.func.vmap`` over the
learner's own loss functions (``_critic_losses(data, noise)`` and ``_actor_loss(data, noise)``;
``torch.func.functional_call`` puts run r's tensors into the learner's modules for the call), so the
batched update is the single-run update, not a copy of it. Its schedule is the learner's own too
(``prepare``, ``actor_due``, ``targets_due``, ``critic_clip_groups``). Everything else of the update acts
on the stacked tensors directly: Adam is element-wise, so one Adam over ``[R, ...]`` tensors is R Adams;
the gradient clip takes one norm per run and clip group (the whole critic, or each agent's critic; each
agent's actor); Polyak averaging is element-wise.

Batchable learners (:data:`BATCHABLE`): the value family (:class:`deep.algorithms.offline.OfflineLearner`:
SPaCQL, ICQL-QS, CFCQL, MACQL and the ablations) and the TD3 skeleton
(:class:`deep.algorithms.independent.TD3StyleLearner`: OMAR, MA-TD3+BC). IQL's update has its own order
(value, actor, critic) and is not batched.

Each run keeps its own random stream: its minibatch and its noise are drawn from its own generator in the
single run's order (the caller samples the minibatch, then :meth:`BatchedRuns.update` lets the learner
draw the noise), and its metrics are its own (``[R, ...]``). The batched arithmetic (batched matmuls, the
clip's norms) rounds differently from R separate runs: the runs agree with separate ones to float32
rounding, which grows with the updates (tested in float64, to 1e-9, not bit for bit).
:meth:`BatchedRuns.to_learners` writes the runs back into their learners, whose ``state_dict`` is then
each run's checkpoint; a ``BatchedRuns`` built from learners loaded from checkpoints resumes them.

The value family's penalties evaluate their candidates as whole tensors (``chunked`` off: the CPU block
path is a custom autograd function that ``vmap`` does not trace). :meth:`BatchedRuns.compile` compiles
the vmapped loss-and-gradient functions with ``torch.compile`` (CUDA graphs with
``mode="reduce-overhead"`` on a GPU); the optimizer steps, clips and Polyak averaging stay eager.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, grad_and_value, vmap

from deep.algorithms.independent import TD3StyleLearner
from deep.algorithms.offline import OfflineLearner

MODULES = ("actors", "critics", "target_actors", "target_critics")
BATCHABLE = (OfflineLearner, TD3StyleLearner)
"""The learner classes whose runs :class:`BatchedRuns` stacks."""


class _Losses(nn.Module):
    """The learner's four networks as one module, its loss functions as ``forward`` (for ``functional_call``)."""

    def __init__(self, learner):
        super().__init__()
        self.learner = [learner]  # a list: not a submodule, its networks are registered below
        for name in MODULES:
            self.add_module(name, getattr(learner, name))

    def forward(self, kind: str, data: dict[str, torch.Tensor], noise: dict[str, torch.Tensor]):
        learner = self.learner[0]
        return learner._critic_losses(data, noise) if kind == "critic" else learner._actor_loss(data, noise)


def _stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack([t.detach() for t in tensors]).clone()


def _clip_per_run(grads: list[torch.Tensor], max_norm: float, groups: int = 1) -> None:
    """Scale each run's gradients (``[R, ...]`` each; ``groups`` blocks of the next axis clipped alike) in place."""
    squares = sum(g.reshape(g.shape[0], groups, -1).square().sum(dim=-1) for g in grads)  # [R, G]
    scale = (max_norm / (squares.sqrt() + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.view(g.shape[0], groups, -1).mul_(scale.unsqueeze(-1))


def _stacked_dicts(dicts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {key: torch.stack([d[key] for d in dicts]) for key in dicts[0]}


class BatchedRuns:
    """R runs of one batchable learner class and settings object updated as one program (module docstring)."""

    def __init__(self, learners: list):
        template = learners[0]
        if not isinstance(template, BATCHABLE):
            raise ValueError(
                f"learners: batched runs are built for the value family and the TD3-style methods, "
                f"not {type(template).__name__}"
            )
        if any(type(learner) is not type(template) or learner.settings != template.settings for learner in learners):
            raise ValueError("learners: the batched runs must share their settings (only the seeds differ)")
        if len({learner.updates for learner in learners}) != 1:
            raise ValueError("learners: the batched runs must be at the same update")
        self.learners, self.template = learners, template
        self.settings, self.updates = template.settings, template.updates
        if isinstance(template, OfflineLearner):
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
        self.critic_gradients = self._vmapped("critic")
        self.actor_gradients = self._vmapped("actor")
        self.compiled_cuda_graphs = False

    def compile(self, mode: str | None = None) -> None:
        """Compile the vmapped loss-and-gradient functions (``mode="reduce-overhead"``: CUDA graphs on a GPU).

        Results match eager up to rounding. The clips, Adam and Polyak averaging stay eager.
        """
        self.compiled_cuda_graphs = mode == "reduce-overhead" and self.template.device.type == "cuda"
        for tensor in [*self.params.values(), *self.buffers.values()]:
            # they are arguments, not module attributes: unmarked, CUDA graphs would copy them into the graph
            # at every replay and skip the graph altogether for the statistics updated in place
            torch._dynamo.mark_static_address(tensor)
        self.critic_gradients = torch.compile(self.critic_gradients, mode=mode)
        self.actor_gradients = torch.compile(self.actor_gradients, mode=mode)

    def _member_params(self, learner, family: str) -> list[torch.Tensor]:
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

    def _vmapped(self, kind: str):
        """``(trained, fixed, buffers, data, noise) -> (grads, (loss, metrics))``, every argument and result
        ``[R, ...]``: each run's ``kind`` ("critic" or "actor") loss, its metrics and its gradients w.r.t. the
        ``trained`` tensors."""

        def run_objective(trained, fixed, buffers, data, noise):
            return functional_call(self.losses, {**trained, **fixed, **buffers}, (kind, data, noise))

        return vmap(grad_and_value(run_objective, has_aux=True))

    def _step(self, gradients, names, optimizer, groups: int, data, noise):
        """One optimizer step of ``names`` on every run's own loss; returns ``(loss [R], metrics [R, ...])``."""
        trained = {name: self.params[name] for name in names}
        fixed = {name: value for name, value in self.params.items() if name not in trained}
        grads, (loss, metrics) = gradients(trained, fixed, self.buffers, data, noise)
        if self.compiled_cuda_graphs:  # graph outputs live in a pool that the next replay reuses
            grads = {name: grad.clone() for name, grad in grads.items()}
            loss, metrics = loss.clone(), {key: value.clone() for key, value in metrics.items()}
        ordered = [grads[name] for name in names]
        _clip_per_run(ordered, self.settings.grad_clip, groups)
        for name, grad in zip(names, ordered, strict=True):
            self.params[name].grad = grad
        optimizer.step()
        return loss.detach(), {key: value.detach() for key, value in metrics.items()}

    def update(self, batches: list[dict[str, torch.Tensor]], generators: list[torch.Generator]) -> dict:
        """One update of every run: run r on ``batches[r]``, its noise from ``generators[r]``; metrics ``[R, ...]``."""
        s, template = self.settings, self.template
        if self.compiled_cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        prepared = [template.prepare(batch, generator) for batch, generator in zip(batches, generators, strict=True)]
        data = _stacked_dicts([run_data for run_data, _ in prepared])
        noise = _stacked_dicts([run_noise for _, run_noise in prepared])
        critic_args = (self.critic_names, self.critic_optimizer, template.critic_clip_groups, data, noise)
        _, metrics = self._step(self.critic_gradients, *critic_args)
        if template.actor_due(self.updates):
            actor_args = (self.actor_names, self.actor_optimizer, template.n_agents, data, noise)
            actor_loss, actor_metrics = self._step(self.actor_gradients, *actor_args)
            metrics |= {"actor_loss": actor_loss} | actor_metrics
        if template.targets_due(self.updates):
            with torch.no_grad():
                for name, value in self.params.items():
                    if name.startswith("target_"):
                        value.lerp_(self.params[name.removeprefix("target_")], s.tau)
        self.updates += 1
        return metrics

    def actor_params(self) -> dict[str, torch.Tensor]:
        """The runs' stacked actor parameters and statistics ``[R, ...]``, keyed as ``actors.state_dict()``."""
        stacked = self.params | self.buffers
        return {name.removeprefix("actors."): value for name, value in stacked.items() if name.startswith("actors.")}

    def to_learners(self) -> list:
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
