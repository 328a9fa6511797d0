"""Tiny settings, learners and random rows shared by the tests of the decentralized methods."""

from __future__ import annotations

import torch

from deep.algorithms.learner import action_mask
from deep.algorithms.methods import METHODS


def tiny_settings(algo: str, task: str = "cn", dataset: str = "random", **changes):
    """The method's table for (task, dataset) at tiny sizes, with ``changes``."""
    method = METHODS[algo]
    values = method.defaults(task, dataset)
    values.pop("updates")
    values |= {"hidden": 8, "batch_size": 16} | changes
    return method.settings(algo=algo, **values)


def make_learner(algo: str, n_agents=3, obs_dim=7, act_dims=(2, 3, 2), seed=0, **changes):
    torch.manual_seed(seed)
    return METHODS[algo].learner(tiny_settings(algo, **changes), n_agents, obs_dim, list(act_dims), 5, "cpu")


def random_batch(rows, n, obs_dim, act_dims, seed):
    """Random dataset rows (observations, padded actions in [-1, 1], rewards, 30% terminals)."""
    generator = torch.Generator().manual_seed(seed)
    return {
        "obs": torch.randn(rows, n, obs_dim, generator=generator),
        "next_obs": torch.randn(rows, n, obs_dim, generator=generator),
        "actions": (torch.rand(rows, n, max(act_dims), generator=generator) * 2 - 1)
        * action_mask(act_dims, max(act_dims)),
        "rewards": torch.randn(rows, generator=generator),
        "terminals": (torch.rand(rows, generator=generator) < 0.3).float(),
    }
