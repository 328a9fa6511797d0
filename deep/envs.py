"""The paper's four deep tasks as batched team environments on the maintained Farama packages.

The paper evaluates on Cooperative Navigation (``cn``), Predator-Prey (``pp``) and World
(``world``) from the Multi-Agent Particle Environments and on 2-agent HalfCheetah
(``halfcheetah``) from Multi-Agent MuJoCo. :class:`TeamEnv` runs ``n_envs`` copies of one task and
exposes only the learning team: padded ``float32`` arrays in, padded ``float32`` arrays out.

``cn``
    ``mpe2.simple_spread_v3.parallel_env(N=3, continuous_actions=True, max_cycles=25)``; team
    ``agent_0..2`` (observation 18, action 2); no opponents; state 54.
``pp``
    ``mpe2.simple_tag_v3.parallel_env(num_good=1, num_adversaries=3, num_obstacles=2,
    continuous_actions=True, max_cycles=25)``; team ``adversary_0..2`` (observation 16, action 2);
    opponent the prey ``agent_0`` (observation 14, action 2); state 62.
``world``
    ``mpe2.simple_world_comm_v3.parallel_env(continuous_actions=True, max_cycles=25)`` with its
    default agents; team ``leadadversary_0`` (observation 34, action 6 = 2 move + 4 say) and
    ``adversary_0..2`` (observation 34, action 2); opponents the good agents ``agent_0``, ``agent_1``
    (observation 28, action 2); state 192.
``halfcheetah``
    ``gymnasium_robotics.mamujoco_v1.parallel_env("HalfCheetah", "2x3")``; team ``agent_0``,
    ``agent_1`` (observation 12, action 3); no opponents; state 17 (HalfCheetah-v5's observation).

Actions
    Every action the adapter takes (team and opponents) lies in ``[-1, 1]``; values outside are
    clipped to ``[-1, 1]`` here (otherwise pettingzoo would clip mpe2's ``[0, 1]`` actions with a
    logged warning that it also keeps forever in ``EnvLogger.mqueue``, and MuJoCo would clamp the
    controls but charge HalfCheetah's control cost on the unclipped action). NaN, infinite values or
    a wrong shape raise ``ValueError``. Per agent, only the first ``act_dims[i]`` entries of the
    padded action are used; the others are ignored.

MPE action mapping
    mpe2's continuous action is ``Box(0, 1, (5,))`` with index 0 a no-op, and the agent moves with
    ``u = [a2 - a1, a4 - a3] * sensitivity``. A team or opponent action ``(x, y)`` in ``[-1, 1]^2``
    becomes ``[0, max(-x, 0), max(x, 0), max(-y, 0), max(y, 0)]``, so ``u = (x, y) * sensitivity``:
    ``(x, y)`` is the direction and strength of the push. The World leader's four extra "say"
    entries ``s`` in ``[-1, 1]^4`` become its communication ``(s + 1) / 2`` in ``[0, 1]^4``
    (its 9-dim mpe2 action is the 5 movement entries followed by these 4).

Team reward
    The mean of the team agents' per-step rewards. In PP and HalfCheetah every team agent gets the
    same reward, so the mean is that shared reward. In CN mpe2 (``local_ratio=0.5``) gives agent i
    ``0.5 * (-sum over landmarks of the closest agent's distance) + 0.5 * (-collisions of agent i)``,
    so the agents differ by their collisions and the mean is ``0.5 * (-sum of those distances) -
    (number of colliding pairs) / 3``. In World every adversary gets ``+5`` per (good agent,
    adversary) collision plus its own shaping ``-0.1 * distance to the nearest good agent``; the mean
    averages the shaping. These rewards are mpe2's, not the modified CN reward of the original
    OMAR/CFCQL datasets, so returns are not comparable with the numbers printed in those papers.

Opponents
    An opponent is a callable ``opponent(obs) -> actions`` with ``obs`` the opponents' padded
    observations ``[E, m, opponent_obs_dim]`` and ``actions`` ``[E, m, opponent_act_dim]`` in
    ``[-1, 1]`` (same mapping and clipping as the team). The default is :func:`uniform_opponent`,
    seeded with the environment's ``seed``. The original
    benchmark used pretrained prey / good agents; the deep training code will load such opponents
    from its own checkpoints and pass them here.

Seeding
    Copy ``e`` is reset with seed ``seed + e`` at the first :meth:`TeamEnv.reset` and without a seed
    afterwards: mpe2 and Gymnasium keep the generator of the seeded reset when ``reset`` gets no
    seed, so later episodes continue each copy's own random stream. The dynamics have no noise, so
    a run is deterministic given ``seed``, the team's actions and a deterministic opponent.
    ``reset(seed=k)`` reseeds copy ``e`` with ``k + e`` (trainers do this every episode so that a run
    resumed from a checkpoint continues exactly); it does not reseed a random opponent such as
    :func:`uniform_opponent`, whose stream simply continues.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

TASKS = ("cn", "pp", "world", "halfcheetah")
#: The other side of the competitive tasks, for training the fixed opponents: the prey of pp, the
#: good agents of world, with the benchmark team as their opponents.
OPPONENT_TASKS = ("pp-prey", "world-good")

MPE_EPISODE_LENGTH = 25
HALFCHEETAH_EPISODE_LENGTH = 1000  # HalfCheetah-v5's TimeLimit

# An MPE agent's first 5 action entries move it; a speaking agent's "say" entries follow.
MPE_MOVE_DIMS = 5
MOVE_DIMS = 2

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
        state_dim=62,
        episode_length=MPE_EPISODE_LENGTH,
        opponent_obs_dims=(14,),
        opponent_act_dims=(2,),
    ),
    "world": TaskSpec(
        name="world",
        team=("leadadversary_0", "adversary_0", "adversary_1", "adversary_2"),
        opponents=("agent_0", "agent_1"),
        obs_dims=(34, 34, 34, 34),
        act_dims=(6, 2, 2, 2),
        state_dim=192,
        episode_length=MPE_EPISODE_LENGTH,
        opponent_obs_dims=(28, 28),
        opponent_act_dims=(2, 2),
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


_SPECS["pp-prey"] = TaskSpec(
    name="pp-prey",
    team=_SPECS["pp"].opponents,
    opponents=_SPECS["pp"].team,
    obs_dims=_SPECS["pp"].opponent_obs_dims,
    act_dims=_SPECS["pp"].opponent_act_dims,
    state_dim=_SPECS["pp"].state_dim,
    episode_length=MPE_EPISODE_LENGTH,
    opponent_obs_dims=_SPECS["pp"].obs_dims,
    opponent_act_dims=_SPECS["pp"].act_dims,
    environment="pp",
)
_SPECS["world-good"] = TaskSpec(
    name="world-good",
    team=_SPECS["world"].opponents,
    opponents=_SPECS["world"].team,
    obs_dims=_SPECS["world"].opponent_obs_dims,
    act_dims=_SPECS["world"].opponent_act_dims,
    state_dim=_SPECS["world"].state_dim,
    episode_length=MPE_EPISODE_LENGTH,
    opponent_obs_dims=_SPECS["world"].obs_dims,
    opponent_act_dims=_SPECS["world"].act_dims,
    environment="world",
)


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


def _make_env(task: str):
    """A fresh pettingzoo parallel environment of ``task`` (unseeded)."""
    if task == "halfcheetah":
        from gymnasium_robotics import mamujoco_v1

        return mamujoco_v1.parallel_env("HalfCheetah", "2x3")
    from mpe2 import simple_spread_v3, simple_tag_v3, simple_world_comm_v3

    if task == "cn":
        return simple_spread_v3.parallel_env(N=3, continuous_actions=True, max_cycles=MPE_EPISODE_LENGTH)
    if task == "pp":
        return simple_tag_v3.parallel_env(
            num_good=1, num_adversaries=3, num_obstacles=2, continuous_actions=True, max_cycles=MPE_EPISODE_LENGTH
        )
    return simple_world_comm_v3.parallel_env(continuous_actions=True, max_cycles=MPE_EPISODE_LENGTH)


def _mpe_actions(actions: np.ndarray) -> np.ndarray:
    """Map ``[..., d]`` actions in ``[-1, 1]`` (move ``x, y`` then ``d - 2`` say entries) to mpe2's ``[..., d + 3]``."""
    move = actions[..., :MOVE_DIMS]
    mpe_move = np.zeros((*actions.shape[:-1], MPE_MOVE_DIMS), dtype=np.float32)
    mpe_move[..., 1::2] = np.maximum(-move, 0.0)  # entries 1, 3: push left, down
    mpe_move[..., 2::2] = np.maximum(move, 0.0)  # entries 2, 4: push right, up
    say = (actions[..., MOVE_DIMS:] + 1.0) / 2.0
    return np.concatenate([mpe_move, say], axis=-1)


def _checked_actions(actions, expected_shape: tuple[int, ...], name: str) -> np.ndarray:
    """``actions`` as float32 of ``expected_shape``, clipped to ``[-1, 1]``; ``ValueError`` naming ``name``."""
    array = np.asarray(actions)
    if array.shape != expected_shape:
        raise ValueError(f"{name} must have shape {expected_shape}, got {array.shape}")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    return np.clip(array, -1.0, 1.0)


class TeamEnv:
    """``n_envs`` independent copies of one task stepped together.

    The copies are stepped in a Python loop, so policies are evaluated once per step on the batch.
    All copies of a task have episodes of the same fixed length and end together (MPE truncates at
    25 steps, HalfCheetah at 1000 and never terminates); after the end, call :meth:`reset`.

    Parameters
    ----------
    task : str
        One of :data:`TASKS`.
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
        if n_envs < 1:
            raise ValueError(f"n_envs must be at least 1, got {n_envs}")
        if opponent is not None and not self.spec.opponents:
            raise ValueError(f"opponent: task {task!r} has no opponents")
        if opponent is None and self.spec.opponents:
            opponent = uniform_opponent(self.spec, seed)
        self.n_envs = n_envs
        self.seed = seed
        self._opponent = opponent
        self._is_mpe = task != "halfcheetah"
        self._envs = [_make_env(self.spec.environment) for _ in range(n_envs)]
        self._check_installed_env(self._envs[0])
        self._first_reset = True
        self._needs_reset = True
        self._opponent_obs = np.zeros((n_envs, self.spec.n_opponents, self.spec.opponent_obs_dim), dtype=np.float32)

    def _env_act_dim(self, act_dim: int) -> int:
        return act_dim + MPE_MOVE_DIMS - MOVE_DIMS if self._is_mpe else act_dim

    def _check_installed_env(self, env) -> None:
        """Fail early, with a clear message, if the installed package's spaces differ from the spec."""
        spec = self.spec
        agents = spec.team + spec.opponents
        expected = {
            agent: ((obs_dim,), (self._env_act_dim(act_dim),))
            for agent, obs_dim, act_dim in zip(
                agents, spec.obs_dims + spec.opponent_obs_dims, spec.act_dims + spec.opponent_act_dims, strict=True
            )
        }
        found = {
            agent: (env.observation_space(agent).shape, env.action_space(agent).shape) for agent in env.possible_agents
        }
        if found != expected:
            raise RuntimeError(
                f"the installed {spec.name!r} environment has agents (observation, action shapes) {found}, "
                f"expected {expected}; check the mpe2 / gymnasium-robotics versions"
            )

    def _padded_obs(self, obs_by_agent: dict, agents, obs_dims, width: int) -> np.ndarray:
        # obs_by_agent: one copy's observations -> [len(agents), width] float32, zero-padded
        padded = np.zeros((len(agents), width), dtype=np.float32)
        for i, (agent, obs_dim) in enumerate(zip(agents, obs_dims, strict=True)):
            padded[i, :obs_dim] = obs_by_agent[agent]
        return padded

    def _observe(self, e: int, obs_by_agent: dict) -> np.ndarray:
        """Store copy ``e``'s opponent observations and return its team observations ``[n, obs_dim]``."""
        spec = self.spec
        self._opponent_obs[e] = self._padded_obs(
            obs_by_agent, spec.opponents, spec.opponent_obs_dims, spec.opponent_obs_dim
        )
        return self._padded_obs(obs_by_agent, spec.team, spec.obs_dims, spec.obs_dim)

    def _state(self, env, obs_by_agent: dict) -> np.ndarray:
        """``env.state()``; for MPE built from the observations already at hand.

        mpe2's ``state()`` is the concatenation of every agent's observation in ``possible_agents``
        order, recomputing them; reusing them makes World's steps about 1.4x faster.
        """
        if self._is_mpe:
            return np.concatenate([obs_by_agent[agent] for agent in env.possible_agents])
        return env.state()

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Start a new episode in every copy.

        Parameters
        ----------
        seed : int, optional
            Reseed copy ``e`` with ``seed + e`` (a trainer that resumes from a checkpoint reseeds every
            episode this way). By default the first reset uses ``self.seed + e`` and later ones continue
            each copy's own random stream.

        Returns
        -------
        obs : ndarray, shape [E, n, obs_dim], float32
            Team observations, zero-padded.
        state : ndarray, shape [E, state_dim], float32
            Global states ``env.state()``.
        """
        obs = np.empty((self.n_envs, self.spec.n_agents, self.spec.obs_dim), dtype=np.float32)
        state = np.empty((self.n_envs, self.spec.state_dim), dtype=np.float32)
        for e, env in enumerate(self._envs):
            if seed is not None:
                copy_seed = seed + e
            else:
                copy_seed = self.seed + e if self._first_reset else None
            obs_by_agent, _ = env.reset(seed=copy_seed)
            obs[e] = self._observe(e, obs_by_agent)
            state[e] = self._state(env, obs_by_agent)
        self._first_reset = False
        self._needs_reset = False
        return obs, state

    def _env_actions(self, actions: np.ndarray) -> np.ndarray:
        # [E, k, d] in [-1, 1] -> the environment's action layout [E, k, d'] (per agent, a prefix is used)
        return _mpe_actions(actions) if self._is_mpe else actions

    def _opponent_env_actions(self) -> np.ndarray:
        # the opponents' actions [E, m, d'] in the environment's layout ([E, 0, 0] without opponents)
        if self._opponent is None:
            return np.empty((self.n_envs, 0, 0), dtype=np.float32)
        spec = self.spec
        # a copy, so that an opponent keeping or editing its input cannot change the next step's input
        actions = self._opponent(self._opponent_obs.copy())
        expected_shape = (self.n_envs, spec.n_opponents, spec.opponent_act_dim)
        return self._env_actions(_checked_actions(actions, expected_shape, "opponent actions"))

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
        team_actions = self._env_actions(
            _checked_actions(actions, (self.n_envs, spec.n_agents, spec.act_dim), "actions")
        )
        opponent_actions = self._opponent_env_actions()
        obs = np.empty((self.n_envs, spec.n_agents, spec.obs_dim), dtype=np.float32)
        state = np.empty((self.n_envs, spec.state_dim), dtype=np.float32)
        reward = np.empty(self.n_envs, dtype=np.float32)
        terminated = np.empty(self.n_envs, dtype=bool)
        truncated = np.empty(self.n_envs, dtype=bool)
        for e, env in enumerate(self._envs):
            joint_action = {
                agent: team_actions[e, i, : self._env_act_dim(act_dim)]
                for i, (agent, act_dim) in enumerate(zip(spec.team, spec.act_dims, strict=True))
            }
            for j, (agent, act_dim) in enumerate(zip(spec.opponents, spec.opponent_act_dims, strict=True)):
                joint_action[agent] = opponent_actions[e, j, : self._env_act_dim(act_dim)]
            obs_by_agent, rewards, terminations, truncations, _ = env.step(joint_action)
            obs[e] = self._observe(e, obs_by_agent)
            state[e] = self._state(env, obs_by_agent)
            reward[e] = np.mean([rewards[agent] for agent in spec.team])
            terminated[e] = any(terminations[agent] for agent in spec.team)
            truncated[e] = any(truncations[agent] for agent in spec.team)
        self._needs_reset = bool((terminated | truncated).any())
        return obs, state, reward, terminated, truncated
