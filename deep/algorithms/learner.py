"""What every offline learner shares: the dataset on the device, action masks, per-member clipping, and the
interface :mod:`deep.train` drives (:class:`Learner`).

A learner is built as ``Learner(settings, n_agents, obs_dim, act_dims, state_dim, device)`` and offers
``actors`` (the team :mod:`deep.train` evaluates and saves), ``update(batch, generator)`` (one update on
``batch_rows`` dataset rows drawn by the caller; metrics stay on the device, ``critic_loss`` always
among them), ``metric_names()`` (the metrics.csv columns of its rows), ``updates``, ``state_dict`` /
``load_state_dict`` and ``compile``.
"""

from __future__ import annotations

import ctypes

import numpy as np
import torch

from deep.storage.datasets import OfflineDataset


class DeviceDataset:
    """The whole dataset as tensors on the device; minibatches drawn there with ``torch.randint``."""

    FIELDS = ("obs", "actions", "rewards", "next_obs", "next_actions", "terminals", "state", "next_state")

    def __init__(self, dataset: OfflineDataset, device):
        self.size = dataset.n_transitions
        self.tensors = {
            name: torch.as_tensor(np.asarray(getattr(dataset, name), dtype=np.float32), device=device)
            for name in self.FIELDS
        }

    def sample(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """``batch_size`` rows drawn uniformly, with replacement (the ``fresh`` minibatches)."""
        return self.rows(torch.randint(self.size, (batch_size,), generator=generator, device=generator.device))

    def rows(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        """The rows ``indices`` (int64 on the device) of every field."""
        return {name: tensor.index_select(0, indices) for name, tensor in self.tensors.items()}


def action_mask(act_dims, act_dim: int, device=None) -> torch.Tensor:
    """``[n, act_dim]`` float, 1 on agent i's first ``act_dims[i]`` entries (the rest is padding)."""
    return (torch.arange(act_dim).unsqueeze(0) < torch.tensor(act_dims).unsqueeze(1)).float().to(device)


def clip_grad_norm_per_member(parameters, max_norm: float, n_groups: int | None = None) -> torch.Tensor:
    """Clip the gradient of each batched member (leading axis ``M`` of every parameter) to ``max_norm``.

    Batched parameters hold M independent networks (the actors: one per agent, each with its own
    input normalization), so each member is clipped by its own norm, as CFCQL clips each agent's
    policy. ``n_groups`` G < M clips groups of consecutive members together: every parameter's
    leading axis is split into G equal blocks (an agent's critic heads ``[n * H, ...]`` with its own
    normalization ``[n, ...]``: one norm per agent, as OMAR clips each agent's twin critic). No host
    synchronization. Returns the norms before clipping ``[G]``.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    groups = n_groups if n_groups is not None else grads[0].shape[0]
    norms = torch.stack([g.reshape(groups, -1).pow(2).sum(dim=1) for g in grads]).sum(dim=0).sqrt()  # [G]
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.view(groups, -1).mul_(scale.unsqueeze(1))
    return norms


def keep_freed_memory() -> None:
    """Let glibc keep and reuse large freed blocks instead of returning them to the OS (CPU only).

    The penalty's activations are ~80 MB tensors; above glibc's mmap threshold (at most 32 MB by
    default) each is a fresh ``mmap`` whose pages fault in on first touch, which made the element-wise
    operations 2-3x slower than the matmuls (measured: 0.41 s -> 0.19 s per CN penalty forward and
    backward). A no-op where glibc's ``mallopt`` is not available.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    limit = 1 << 30
    libc.mallopt(-1, limit)  # M_TRIM_THRESHOLD
    libc.mallopt(-3, limit)  # M_MMAP_THRESHOLD


class CheckpointState:
    """``state_dict`` / ``load_state_dict`` of a learner: every module and optimizer named in ``NETWORKS``,
    and the update count."""

    NETWORKS: tuple[str, ...] = ()

    def state_dict(self) -> dict:
        return {name: getattr(self, name).state_dict() for name in self.NETWORKS} | {"updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        for name in self.NETWORKS:
            getattr(self, name).load_state_dict(state[name])
        self.updates = int(state["updates"])
