"""Evaluation shared by the trainers and the dataset tools: many episodes at once, batched policy calls."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from deep.algorithms.networks import Actors
from deep.envs.tasks import TeamEnv, task_spec


def team_returns(task: str, policy, episodes: int, seed: int, opponent=None) -> np.ndarray:
    """Team return of each of ``episodes`` episodes run as parallel copies, shape (episodes,).

    ``policy(obs [E, n, obs_dim]) -> actions [E, n, act_dim]`` is called once per step for all copies;
    ``opponent`` drives the other side (see :class:`deep.envs.tasks.TeamEnv`).
    """
    env = TeamEnv(task, n_envs=episodes, seed=seed, opponent=opponent)
    obs, _ = env.reset()
    returns = np.zeros(episodes)
    done = np.zeros(episodes, dtype=bool)
    while not done.all():
        obs, _, reward, terminated, truncated = env.step(policy(obs))
        returns += reward * ~done
        done |= terminated | truncated
    return returns


def uniform_policy(task: str, seed: int):
    """Uniform random team actions in [-1, 1], seeded (a reference policy for tests and quick checks; the Random
    quality is MATD3's initial actor, deep/collect.py)."""
    spec, rng = task_spec(task), np.random.default_rng(seed)
    return lambda obs: rng.uniform(-1.0, 1.0, size=(len(obs), spec.n_agents, spec.act_dim)).astype(np.float32)


def deterministic_policy(actors: torch.nn.Module):
    """Wrap actors (``[B, n, obs_dim] -> [B, n, act_dim]``) as a numpy policy without gradients."""

    def act(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return actors(torch.as_tensor(obs, device=next(actors.parameters()).device)).cpu().numpy()

    return act


def noisy_policy(policy, noise: float, act_shape: tuple[int, int], seed: int):
    """``clip(policy(o) + N(0, noise^2), -1, 1)`` with its own seeded generator (the datasets' behavior).

    ``act_shape`` is ``(n, act_dim)``; noise is added to the padded entries too (they are ignored).
    """
    rng = np.random.default_rng(seed)

    def act(obs: np.ndarray) -> np.ndarray:
        actions = policy(obs) + rng.normal(scale=noise, size=(len(obs), *act_shape))
        return np.clip(actions, -1.0, 1.0).astype(np.float32)

    return act


def evaluation_report(returns: np.ndarray, reference: dict | None = None) -> dict:
    """Mean and std of the team returns and, with reference returns ``{random, expert}``, of the normalized score."""
    from deep.storage.datasets import normalized_score

    report = {"episodes": len(returns), "return_mean": float(np.mean(returns)), "return_std": float(np.std(returns))}
    if reference is not None:
        scores = normalized_score(np.asarray(returns, dtype=float), reference)
        report |= {"normalized_mean": float(np.mean(scores)), "normalized_std": float(np.std(scores))}
    return report


def load_actor(path, task: str, hidden: int) -> Actors:
    """Load actor weights of ``task``'s team written by a trainer (``weights_only``: no code runs on load).

    The weights say whether the actors normalize their input (``norm.*`` entries: the offline learners'
    ``actor.pt``) or not (MATD3's behavior actors); the actors come back in evaluation mode.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"path: no actor weights at {path}; train them with python -m deep.generation.behavior --matd3.task {task}"
        )
    spec = task_spec(task)
    state = torch.load(path, weights_only=True, map_location="cpu")
    input_norm = any(name.startswith("norm.") for name in state)
    actors = Actors(spec.n_agents, spec.obs_dim, spec.act_dim, hidden, input_norm=input_norm)
    actors.load_state_dict(state)
    return actors.eval()
