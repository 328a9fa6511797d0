"""A tiny synthetic CN dataset and a tiny offline training config shared by the offline tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from deep.algorithms.batched import BatchedRuns
from deep.envs.tasks import task_spec
from deep.storage import datasets
from deep.storage.datasets import OfflineDataset
from deep.train import TrainConfig

REFERENCE = {"random": -26.0, "expert": -10.0}


def tiny_dataset(
    task: str = "cn", quality: str = "random", episodes: int = 8, seed: int = 0, **replace
) -> OfflineDataset:
    """Random transitions with the task's shapes: ``episodes`` whole episodes of 25 steps, the last one truncated."""
    spec = task_spec(task)
    rng = np.random.default_rng(seed)
    length = 25
    size = episodes * length
    n = spec.n_agents

    def padded(dims, width):
        values = rng.uniform(-1, 1, (size, n, width)).astype(np.float32)
        for i, d in enumerate(dims):
            values[:, i, d:] = 0.0
        return values

    ends = np.arange(length - 1, size, length)
    terminals = np.zeros(size, bool)
    terminals[ends[:-1]] = True  # a mix: every episode terminal but the last, which is truncated
    truncations = np.zeros(size, bool)
    truncations[ends[-1]] = True
    arrays = dict(
        obs=padded(spec.obs_dims, spec.obs_dim),
        actions=padded(spec.act_dims, spec.act_dim),
        rewards=rng.normal(-1.0, 0.5, size).astype(np.float32),
        next_obs=padded(spec.obs_dims, spec.obs_dim),
        next_actions=padded(spec.act_dims, spec.act_dim),
        terminals=terminals,
        truncations=truncations,
        state=rng.normal(size=(size, spec.state_dim)).astype(np.float32),
        next_state=rng.normal(size=(size, spec.state_dim)).astype(np.float32),
        episode_ids=np.repeat(np.arange(episodes), length).astype(np.int64),
    )
    arrays |= replace
    metadata = {
        "task": task,
        "quality": quality,
        "seed": seed,
        "obs_dims": list(spec.obs_dims),
        "act_dims": list(spec.act_dims),
        "generator": {"name": "tests.deep.tiny_offline", "version": 1, "config": {"episodes": episodes}},
        "env_versions": {},
        "behavior_checkpoint_sha256": None,
        "reference_returns": REFERENCE,
    }
    return OfflineDataset(**arrays, metadata=metadata)


def write_tiny_dataset(data_dir: Path, task: str = "cn", quality: str = "random", seed: int = 0, **replace) -> Path:
    path = datasets.dataset_path(data_dir, task, quality, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.save(tiny_dataset(task, quality, seed=seed, **replace), path, overwrite=True)
    return path


def tiny_train_config(data_dir: Path, out_dir: Path, **changes) -> TrainConfig:
    values = dict(
        algo="spacql",
        task="cn",
        dataset="random",
        seed=1,
        dataset_seed=0,  # the tiny dataset of seed 0 for every run seed
        data_dir=str(data_dir),
        out_dir=str(out_dir),
        updates=200,
        eval_every=100,
        eval_episodes=2,
        log_every=50,
        n_critics=4,
        hidden=16,
        batch_size=32,
        device="cpu",
        progress=False,
        tensorboard=False,
    )
    values.update(changes)
    return TrainConfig(**values)


def make_second_of_two_batched_runs_non_finite(monkeypatch, at_update: int) -> None:
    """Multiply the second run's critic loss by inf at ``at_update`` of a 2-run BatchedRuns (not once it runs alone)."""
    original = BatchedRuns.update

    def update(self, batches, generators):
        metrics = original(self, batches, generators)
        if self.updates == at_update and len(self.learners) == 2:
            metrics["critic_loss"] = metrics["critic_loss"] * torch.tensor([1.0, float("inf")])
        return metrics

    monkeypatch.setattr(BatchedRuns, "update", update)
