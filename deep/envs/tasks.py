"""The paper's four deep tasks as batched team environments.

The paper evaluates on Cooperative Navigation (``cn``), Predator-Prey (``pp``) and World
(``world``) from the Multi-Agent Particle Environments and on 2-agent HalfCheetah
(``halfcheetah``) from Multi-Agent MuJoCo. :class:`TeamEnv` runs ``n_envs`` copies of one task and
exposes only the learning team: padded ``float32`` arrays in, padded ``float32`` arrays out.

``cn``, ``pp``, ``world``
    The original benchmark's scenarios (OMAR / CFCQL's ``simple_spread``, ``simple_tag``,
    ``simple_world``), rebuilt on a batched particle world in :mod:`deep.envs.particles` (its docstring
    states every fact and where it comes from). ``cn``: team ``agent_0..2`` (observation 18, action
    2), no opponents. ``pp``: team ``adversary_0..2`` (observation 16, action 2) against the prey
    ``agent_0`` (observation 14, action 2). ``world``: team ``adversary_0..2`` (observation 24,
    action 2) against the good agent ``agent_0`` (observation 22, action 2). State: the concatenation
    of the team's observations (54, 48, 72), the input of CFCQL's centralized critic.
``halfcheetah``
    ``gymnasium_robotics.mamujoco_v1.parallel_env("HalfCheetah", "2x3")``; team ``agent_0``,
    ``agent_1`` (observation 12, action 3); no opponents; state 17 (HalfCheetah-v5's observation).

Actions
    Every action the adapter takes (team and opponents) lies in ``[-1, 1]``; values outside are
    clipped to ``[-1, 1]`` (the original MPE learners clamp their actions to it; MuJoCo would clamp
    the controls but charge HalfCheetah's control cost on the unclipped action). NaN, infinite values
    or a wrong shape raise ``ValueError``. An MPE action ``(x, y)`` is the push of the original's
    continuous ``Box(-1, 1, (2,))`` action space. Per agent, only the first ``act_dims[i]`` entries of
    the padded action are used; the others are ignored.

Team reward
    The mean of the team agents' per-step rewards: CFCQL's evaluation return in CN (the agents differ
    by their own collision penalties) and, in PP and World, the predators' shared reward (see
    :mod:`deep.envs.particles`); HalfCheetah's agents share one reward.

Opponents
    An opponent is a callable ``opponent(obs) -> actions`` with ``obs`` the opponents' padded
    observations ``[E, m, opponent_obs_dim]`` and ``actions`` ``[E, m, opponent_act_dim]`` in
    ``[-1, 1]`` (same clipping as the team). The default is :func:`uniform_opponent`, seeded with the
    environment's ``seed``. The original benchmark used pretrained prey / good agents; the training
    code loads such opponents from its own checkpoints (:mod:`deep.generation.opponents`) and passes them here.

Seeding
    Copy ``e`` is reset with seed ``seed + e`` at the first :meth:`TeamEnv.reset` and without a seed
    afterwards, which continues each copy's own random stream. The dynamics have no noise, so a run
    is deterministic given ``seed``, the team's actions and a deterministic opponent.
    ``reset(seed=k)`` reseeds copy ``e`` with ``k + e`` (trainers do this every episode so that a run
    resumed from a checkpoint continues exactly); it does not reseed a random opponent such as
    :func:`uniform_opponent`, whose stream simply continues.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from deep.envs.particles import SCENARIOS, ParticleCopies

TASKS = ("cn", "pp", "world", "halfcheetah")
#: The other side of the competitive tasks, for training the fixed opponents: the prey of pp, the
#: good agents of world, with the benchmark team as their opponents.
OPPONENT_TASKS = ("pp-prey", "world-good")

MPE_EPISODE_LENGTH = 25  # the original training loops' episode length
HALFCHEETAH_EPISODE_LENGTH = 1000  # HalfCheetah-v5's TimeLimit

# Mixed into uniform_opponent's seed so that its stream differs from np.random.default_rng(seed),
# which a caller may well use for the team's own random actions.
_OPPONENT_STREAM = 0x0E0E

Opponent = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class TaskSpec:
    """Sizes and agent ids of one task.

    Attributes
    ----------
    name : str
        One of :data:`TASKS` or :data:`OPPONENT_TASKS`.
    team : tuple of str
        Environment agent ids the learners control, in the order of the agent axis.
    opponents : tuple of str
        Environment agent ids driven by a fixed opponent policy (empty for CN and HalfCheetah).
    obs_dims, act_dims : tuple of int
        True observation and action size of each team agent (actions in ``[-1, 1]``).
    state_dim : int
        Size of the global state ``env.state()``.
    episode_length : int
        Steps per episode: 25 for MPE, 1000 for HalfCheetah.
    opponent_obs_dims, opponent_act_dims : tuple of int
        True observation and action size of each opponent.
    environment : str
        The benchmark task whose environment runs this spec (itself, except for the opponent-side
        tasks of :data:`OPPONENT_TASKS`).
    """

    name: str
    team: tuple[str, ...]
    opponents: tuple[str, ...]
    obs_dims: tuple[int, ...]
    act_dims: tuple[int, ...]
    state_dim: int
    episode_length: int
    opponent_obs_dims: tuple[int, ...] = ()
    opponent_act_dims: tuple[int, ...] = ()
    environment: str = ""

    def __post_init__(self):
        if not self.environment:
            object.__setattr__(self, "environment", self.name)

    @property
    def n_agents(self) -> int:
        """Number of team agents ``n``."""
        return len(self.team)

    @property
    def obs_dim(self) -> int:
        """Padded observation size: the largest of ``obs_dims``."""
        return max(self.obs_dims)

    @property
    def act_dim(self) -> int:
        """Padded action size: the largest of ``act_dims``."""
        return max(self.act_dims)

    @property
    def n_opponents(self) -> int:
        """Number of opponents ``m`` (0 when the team plays alone)."""
        return len(self.opponents)

    @property
    def opponent_obs_dim(self) -> int:
        """Padded opponent observation size (0 without opponents)."""
        return max(self.opponent_obs_dims, default=0)

    @property
    def opponent_act_dim(self) -> int:
        """Padded opponent action size (0 without opponents)."""
        return max(self.opponent_act_dims, default=0)


_SPECS = {
    "cn": TaskSpec(
        name="cn",
        team=("agent_0", "agent_1", "agent_2"),
        opponents=(),
        obs_dims=(18, 18, 18),
        act_dims=(2, 2, 2),
        state_dim=54,
        episode_length=MPE_EPISODE_LENGTH,
    ),
    "pp": TaskSpec(
        name="pp",
        team=("adversary_0", "adversary_1", "adversary_2"),
        opponents=("agent_0",),
        obs_dims=(16, 16, 16),
        act_dims=(2, 2, 2),
        state_dim=48,
        episode_length=MPE_EPISODE_LENGTH,
        opponent_obs_dims=(14,),
        opponent_act_dims=(2,),
    ),
    "world": TaskSpec(
        name="world",
        team=("adversary_0", "adversary_1", "adversary_2"),
        opponents=("agent_0",),
        obs_dims=(24, 24, 24),
        act_dims=(2, 2, 2),
        state_dim=72,
        episode_length=MPE_EPISODE_LENGTH,
        opponent_obs_dims=(22,),
        opponent_act_dims=(2,),
    ),
    "halfcheetah": TaskSpec(
        name="halfcheetah",
        team=("agent_0", "agent_1"),
        opponents=(),
        obs_dims=(12, 12),
        act_dims=(3, 3),
        state_dim=17,
        episode_length=HALFCHEETAH_EPISODE_LENGTH,
    ),
}


def _opponent_side(name: str, task: str) -> TaskSpec:
    """The spec of ``task``'s opponents as the team (their own observations make the state)."""
    spec = _SPECS[task]
    return TaskSpec(
        name=name,
        team=spec.opponents,
        opponents=spec.team,
        obs_dims=spec.opponent_obs_dims,
        act_dims=spec.opponent_act_dims,
        state_dim=sum(spec.opponent_obs_dims),
        episode_length=MPE_EPISODE_LENGTH,
        opponent_obs_dims=spec.obs_dims,
        opponent_act_dims=spec.act_dims,
        environment=task,
    )


_SPECS["pp-prey"] = _opponent_side("pp-prey", "pp")
_SPECS["world-good"] = _opponent_side("world-good", "world")


def opponent_task(task: str) -> str:
    """The task whose team is ``task``'s opponents (``pp`` <-> ``pp-prey``, ``world`` <-> ``world-good``)."""
    spec = task_spec(task)
    for name, other in _SPECS.items():
        if other.environment == spec.environment and other.team == spec.opponents and spec.opponents:
            return name
    raise ValueError(f"task: {task!r} has no opponents")


def task_spec(task: str) -> TaskSpec:
    """The :class:`TaskSpec` of ``task``; ``ValueError`` naming ``task`` if it is not in :data:`TASKS`."""
    if task not in _SPECS:
        raise ValueError(f"task must be one of {TASKS + OPPONENT_TASKS}, got {task!r}")
    return _SPECS[task]


def uniform_opponent(spec: TaskSpec, seed: int) -> Opponent:
    """Opponents acting uniformly at random in ``[-1, 1]``, reproducibly from ``seed``.

    Parameters
    ----------
    spec : TaskSpec
        A task with opponents (PP or World).
    seed : int
        Seed of the opponent's own generator (a stream distinct from ``np.random.default_rng(seed)``).

    Returns
    -------
    callable
        ``opponent(obs [E, m, opponent_obs_dim]) -> actions [E, m, opponent_act_dim]`` float32.
    """
    if not spec.opponents:
        raise ValueError(f"spec: task {spec.name!r} has no opponents")
    rng = np.random.default_rng([seed, _OPPONENT_STREAM])

    def act(opponent_obs: np.ndarray) -> np.ndarray:
        shape = (len(opponent_obs), spec.n_opponents, spec.opponent_act_dim)
        return rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)

    return act


def _checked_actions(actions, expected_shape: tuple[int, ...], name: str) -> np.ndarray:
    """``actions`` as float32 of ``expected_shape``, clipped to ``[-1, 1]``; ``ValueError`` naming ``name``."""
    array = np.asarray(actions)
    if array.shape != expected_shape:
        raise ValueError(f"{name} must have shape {expected_shape}, got {array.shape}")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    return np.clip(array, -1.0, 1.0)


class _ParticleBackend:
    """The original MPE scenarios (:mod:`deep.envs.particles`), all copies as one array program."""

    def __init__(self, spec: TaskSpec, n_envs: int):
        self._spec = spec
        self._scenario = SCENARIOS[spec.environment]()
        self._copies = ParticleCopies(self._scenario, n_envs)
        names = dict(zip(_SPECS[spec.environment].team, self._scenario.team, strict=True))
        names.update(zip(_SPECS[spec.environment].opponents, self._scenario.opponents, strict=True))
        self._team = [names[agent] for agent in spec.team]
        self._opponents = [names[agent] for agent in spec.opponents]

    def _arrays(self, observations: list[np.ndarray]):
        spec = self._spec
        team = _padded([observations[i] for i in self._team], spec.obs_dim)
        opponents = _padded([observations[i] for i in self._opponents], spec.opponent_obs_dim)
        state = np.concatenate([observations[i] for i in self._team], axis=-1).astype(np.float32)
        return team, opponents, state

    def reset(self, seeds: list[int | None]):
        return self._arrays(self._copies.reset(seeds))

    def step(self, team_actions: np.ndarray, opponent_actions: np.ndarray):
        spec = self._spec
        n_envs = len(team_actions)
        actions = np.zeros((n_envs, self._scenario.bodies.n_agents, 2))
        actions[:, self._team] = team_actions[..., :2]
        if self._opponents:
            actions[:, self._opponents] = opponent_actions[..., :2]
        observations, rewards = self._copies.step(actions)
        reward = rewards[:, self._team].mean(axis=1).astype(np.float32)
        ended = np.full(n_envs, self._copies.t >= spec.episode_length)
        return (*self._arrays(observations), reward, np.zeros(n_envs, dtype=bool), ended)


class _MamujocoBackend:
    """Multi-Agent MuJoCo copies stepped one after another through pettingzoo's parallel API."""

    def __init__(self, spec: TaskSpec, n_envs: int):
        from gymnasium_robotics import mamujoco_v1

        self._spec = spec
        self._envs = [mamujoco_v1.parallel_env("HalfCheetah", "2x3") for _ in range(n_envs)]
        found = {
            agent: (self._envs[0].observation_space(agent).shape, self._envs[0].action_space(agent).shape)
            for agent in self._envs[0].possible_agents
        }
        expected = {
            agent: ((obs_dim,), (act_dim,))
            for agent, obs_dim, act_dim in zip(spec.team, spec.obs_dims, spec.act_dims, strict=True)
        }
        if found != expected:
            raise RuntimeError(
                f"the installed {spec.name!r} environment has agents (observation, action shapes) {found}, "
                f"expected {expected}; check the gymnasium-robotics version"
            )

    def _arrays(self, per_copy: list[dict]):
        spec = self._spec
        team = np.stack([_padded([obs[agent] for agent in spec.team], spec.obs_dim) for obs in per_copy])
        state = np.stack([env.state() for env in self._envs]).astype(np.float32)
        return team, np.zeros((len(per_copy), 0, 0), dtype=np.float32), state

    def reset(self, seeds: list[int | None]):
        return self._arrays([env.reset(seed=seed)[0] for env, seed in zip(self._envs, seeds, strict=True)])

    def step(self, team_actions: np.ndarray, opponent_actions: np.ndarray):
        spec = self._spec
        per_copy, reward, terminated, truncated = [], [], [], []
        for e, env in enumerate(self._envs):
            joint_action = {
                agent: team_actions[e, i, :act_dim]
                for i, (agent, act_dim) in enumerate(zip(spec.team, spec.act_dims, strict=True))
            }
            obs, rewards, terminations, truncations, _ = env.step(joint_action)
            per_copy.append(obs)
            reward.append(np.mean([rewards[agent] for agent in spec.team]))
            terminated.append(any(terminations[agent] for agent in spec.team))
            truncated.append(any(truncations[agent] for agent in spec.team))
        arrays = self._arrays(per_copy)
        return (*arrays, np.array(reward, dtype=np.float32), np.array(terminated), np.array(truncated))


def _padded(observations: list[np.ndarray], width: int) -> np.ndarray:
    """Per-agent ``[E, d_i]`` (or ``[d_i]``) observations -> ``[E, k, width]`` (``[k, width]``) float32, zero-padded."""
    lead = observations[0].shape[:-1] if observations else ()
    padded = np.zeros((*lead, len(observations), width), dtype=np.float32)
    for i, obs in enumerate(observations):
        padded[..., i, : obs.shape[-1]] = obs
    return padded


class TeamEnv:
    """``n_envs`` independent copies of one task stepped together.

    The MPE copies are one array program (:mod:`deep.envs.particles`); HalfCheetah's are stepped in a
    Python loop. Policies are evaluated once per step on the batch. All copies of a task have
    episodes of the same fixed length and end together (MPE after 25 steps, HalfCheetah at 1000; no
    task terminates); after the end, call :meth:`reset`.

    Parameters
    ----------
    task : str
        One of :data:`TASKS` or :data:`OPPONENT_TASKS`.
    n_envs : int
        Number of copies ``E``.
    seed : int
        Copy ``e`` is seeded with ``seed + e`` at the first reset.
    opponent : callable, optional
        Policy of the opponents (see the module docstring); defaults to
        ``uniform_opponent(spec, seed)`` for PP and World. Must be None for CN and HalfCheetah.

    Attributes
    ----------
    spec : TaskSpec
    """

    def __init__(self, task: str, n_envs: int = 1, seed: int = 0, opponent: Opponent | None = None):
        self.spec = task_spec(task)
        if isinstance(n_envs, bool) or not isinstance(n_envs, int | np.integer) or n_envs < 1:
            raise ValueError(f"n_envs must be an integer >= 1, got {n_envs!r}")
        if opponent is not None and not self.spec.opponents:
            raise ValueError(f"opponent: task {task!r} has no opponents")
        if opponent is None and self.spec.opponents:
            opponent = uniform_opponent(self.spec, seed)
        self.n_envs = int(n_envs)
        self.seed = seed
        self._opponent = opponent
        backend = _MamujocoBackend if self.spec.environment == "halfcheetah" else _ParticleBackend
        self._backend = backend(self.spec, self.n_envs)
        self._first_reset = True
        self._needs_reset = True
        self._opponent_obs = np.zeros((self.n_envs, self.spec.n_opponents, self.spec.opponent_obs_dim), np.float32)

    def reset(self, seed: int | None = None, copy_seeds: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Start a new episode in every copy.

        Parameters
        ----------
        seed : int, optional
            Reseed copy ``e`` with ``seed + e`` (a trainer that resumes from a checkpoint reseeds every
            episode this way). By default the first reset uses ``self.seed + e`` and later ones continue
            each copy's own random stream.
        copy_seeds : list of int, optional
            Reseed copy ``e`` with ``copy_seeds[e]`` (length ``E``; excludes ``seed``): the episodes of
            several evaluations, each with its own seed, played as one batch of copies.

        Returns
        -------
        obs : ndarray, shape [E, n, obs_dim], float32
            Team observations, zero-padded.
        state : ndarray, shape [E, state_dim], float32
            Global states.
        """
        if copy_seeds is not None:
            if seed is not None or len(copy_seeds) != self.n_envs:
                raise ValueError(f"copy_seeds: must be {self.n_envs} seeds, one per copy, without seed")
            seeds = [int(value) for value in copy_seeds]
        elif seed is not None:
            seeds = [seed + e for e in range(self.n_envs)]
        else:
            seeds = [self.seed + e if self._first_reset else None for e in range(self.n_envs)]
        obs, self._opponent_obs, state = self._backend.reset(seeds)
        self._first_reset = False
        self._needs_reset = False
        return obs, state

    def _opponent_actions(self) -> np.ndarray:
        # the opponents' actions [E, m, d'] ([E, 0, 0] without opponents)
        spec = self.spec
        if self._opponent is None:
            return np.empty((self.n_envs, 0, 0), dtype=np.float32)
        # a copy, so that an opponent keeping or editing its input cannot change the next step's input
        actions = self._opponent(self._opponent_obs.copy())
        return _checked_actions(actions, (self.n_envs, spec.n_opponents, spec.opponent_act_dim), "opponent actions")

    def step(self, actions) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Advance every copy by one step.

        Parameters
        ----------
        actions : array_like, shape [E, n, act_dim]
            Team actions in ``[-1, 1]`` (clipped to it); padded entries are ignored.

        Returns
        -------
        obs : ndarray, shape [E, n, obs_dim], float32
        state : ndarray, shape [E, state_dim], float32
        reward : ndarray, shape [E], float32
            Team reward: the mean of the team agents' rewards.
        terminated, truncated : ndarray, shape [E], bool
        """
        spec = self.spec
        if self._needs_reset:
            raise RuntimeError("call reset() before step(), and again after an episode ends")
        team_actions = _checked_actions(actions, (self.n_envs, spec.n_agents, spec.act_dim), "actions")
        obs, self._opponent_obs, state, reward, terminated, truncated = self._backend.step(
            team_actions, self._opponent_actions()
        )
        self._needs_reset = bool((terminated | truncated).any())
        return obs, state, reward, terminated, truncated
