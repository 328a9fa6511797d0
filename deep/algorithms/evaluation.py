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
    return _play(env, policy, env.reset())


def runs_team_returns(task: str, policy, episodes: int, seeds: list[int], opponent) -> np.ndarray:
    """The evaluations of R runs as one batch of ``R x episodes`` copies: shape (R, episodes).

    Run r plays the episodes of ``team_returns(task, ..., episodes, seeds[r], opponent)`` (copy ``e`` of
    run r seeded with ``seeds[r] + e``); ``policy(obs [R * E, n, obs_dim])`` acts for run r on rows
    ``r * E .. (r + 1) * E - 1`` (:func:`stacked_policy`). ``opponent`` must act on each row alone
    (the shipped opponents do: deterministic, evaluation-mode networks); None for tasks without one.
    """
    if opponent is None and task_spec(task).opponents:
        raise ValueError(f"opponent: task {task!r} needs one (a uniform stream would mix the runs)")
    runs = len(seeds)
    env = TeamEnv(task, n_envs=runs * episodes, opponent=opponent)
    start = env.reset(copy_seeds=[seed + e for seed in seeds for e in range(episodes)])
    return _play(env, policy, start).reshape(runs, episodes)


def _play(env: TeamEnv, policy, start: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Play one episode in every copy of ``env`` from its reset ``start``; the team returns (E,)."""
    obs, _ = start
    episodes = env.n_envs
    returns = np.zeros(episodes)
    done = np.zeros(episodes, dtype=bool)
    while not done.all():
        obs, _, reward, terminated, truncated = env.step(policy(obs))
        returns += reward * ~done
        done |= terminated | truncated
    return returns


def stacked_policy(actors: torch.nn.Module, params: dict[str, torch.Tensor]):
    """R teams as one numpy policy: ``params`` are R stacked ``actors.state_dict()`` entries ``[R, ...]``.

    ``obs [R * E, n, obs_dim]`` (run-major) -> ``[R * E, n, act_dim]``: run r's team acts on its block of
    E rows, in ``actors``' current mode (evaluation: the running statistics), without gradients.
    """
    runs = next(iter(params.values())).shape[0]

    def run_actions(run_params, obs):
        return torch.func.functional_call(actors, run_params, (obs,))

    def act(obs: np.ndarray) -> np.ndarray:
        device = next(iter(params.values())).device
        with torch.no_grad():
            blocks = torch.as_tensor(obs, device=device).unflatten(0, (runs, -1))  # [R, E, n, obs]
            return torch.func.vmap(run_actions)(params, blocks).flatten(0, 1).cpu().numpy()

    return act


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
