"""The original MPE benchmark's three scenarios on a batched particle world.

The paper's MPE datasets were collected (OMAR, Pan et al. 2022; reused by CFCQL, Shao et al. 2023)
on a modified copy of OpenAI's ``multiagent-particle-envs`` shipped in both repositories
(``multiagent/core.py``, ``environment.py`` and ``scenarios/simple_spread.py``, ``simple_tag.py``,
``simple_world.py``; the two copies are identical apart from a print). This module rebuilds those
three scenarios from the facts of that code, for ``E`` copies at once as numpy arrays
(``[E, K, 2]`` positions and velocities of the ``K`` entities, agents first, then landmarks).

Physics (``core.World``; dt 0.1, damping 0.25, contact force 100, contact margin 1e-3, mass 1)
    An agent's action ``u`` in ``[-1, 1]^2`` is scaled by its sensitivity (``accel``, or 5 when
    ``accel`` is unset) in ``environment._set_action``, and ``core.apply_action_force`` multiplies it
    by ``mass * accel`` again (``mass`` when unset): the push force is ``accel^2 u`` for the agents of
    PP and World and ``5 u`` in CN. Two colliding entities (both ``collide``, not both immovable)
    push each other apart with ``contact_force * delta / |delta| * k log(1 + exp(-(|delta| - r)/k))``,
    ``r`` the sum of their sizes and ``k`` the margin, scaled by the mass ratio when both move. Then,
    per movable entity: ``v <- (1 - damping) v + F / m dt``, the speed clipped to ``max_speed``, and
    ``p <- p + v dt`` with the new velocity. mpe2's core computes the same contact force and damping,
    but (measured against mpe2 1.1 in tests/deep/test_particles.py) integrates the position with the
    old velocity and applies ``u`` without the second ``accel`` factor: these two steps follow the
    original here.

Step order (``environment._step``)
    Actions are set, the world steps, then every agent's observation and reward are computed on the
    new state; no agent is ever done, and the training loops end an episode after 25 steps.

Scenarios (agents listed team first; the names are labels of this toolkit)
    ``cn`` (``simple_spread``, "modified by ling"): 3 agents (size 0.15, collide, no accel or speed
    limit), 3 landmarks (size 0.05, no collide); agents and landmarks uniform in ``[-1, 1]^2``.
    Agent i's reward ``sum_l min(1 / min_a |p_a - p_l|, 10) - 5 #{j != i colliding with i}``.
    Observation (18): own velocity, own position, landmarks - own position (3 x 2), other agents -
    own position (2 x 2), the other agents' communication (2 x 2, always zero: agents are silent).

    ``pp`` (``simple_tag``): 3 adversaries (size 0.075, accel 3, max speed 1), 1 good agent (size
    0.05, accel 4, max speed 1.3), 2 landmarks (size 0.2, collide); agents uniform in ``[-1, 1]^2``,
    landmarks in ``[-0.9, 0.9]^2``. Every adversary gets ``-0.1 sum_adv min_good |p_adv - p_good| +
    10 #(colliding adversary, good pairs)``; the good agent ``0.1 sum_adv |p - p_adv| - 10
    #(adversaries colliding with it) - sum_d bound(|p_d|)`` with ``bound(x) = 0`` below 0.9, ``10 (x -
    0.9)`` below 1, else ``min(exp(2x - 2), 10)``. Observation: own velocity, own position, landmarks
    (2 x 2), other agents (3 x 2) relative to self, then the velocities of the other good agents
    (adversaries: 16, good agent: 14).

    ``world`` (``simple_world``): 3 adversaries (size 0.075, accel 3, max speed 1) and 1 good agent
    (size 0.045, accel 4, max speed 1.3), all silent; landmarks in this order: 1 obstacle (size 0.2,
    collide), 2 food (size 0.03), 2 forests (size 0.3), none colliding but the obstacle; agents
    uniform in ``[-1, 1]^2``, landmarks in ``[-0.9, 0.9]^2``. Adversaries get PP's reward with 5 per
    collision instead of 10; the good agent ``0.1 sum_adv |p - p_adv| - 5 #(adversaries colliding
    with it) - 2 sum_d bound(|p_d|) + 2 #(food it touches) + 0.05 min_food |p - p_food|``.
    Observation: own velocity, own position, the 5 landmarks relative to self, the other agents (3 x
    2) relative to self, the other good agents' velocities, then per forest +1 if the agent is inside
    it (closer than the sum of sizes) else -1 (adversaries: 24, good agent: 22). Every agent has the
    scenario's ``leader`` flag, which makes every other agent visible whatever the forests (the hiding
    branch of the original observation never runs); food and forests are drawn twice at reset in the
    original (once as landmarks, once again), which gives the same distribution as drawing once.

Team rewards and states (what the original learners used)
    CFCQL's evaluation reports, per step, the mean of the agents' rewards in CN and the first
    adversary's reward in PP and World (every adversary gets the same reward there, so it is also
    their mean); this toolkit's team reward is that mean in all three. CFCQL's centralized critic
    trains on agent 0's reward instead: in CN it differs from the mean by agent 0's own collision
    penalty (a documented difference: the team reward is what is evaluated). The global state is the
    concatenation of the team's observations, CFCQL's centralized-critic input for MPE.

Randomness
    The original draws from numpy's global generator; here copy ``e`` owns a
    ``np.random.default_rng(seed)`` reseeded by :meth:`ParticleCopies.reset`. The distributions are
    the original's; the streams are not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DT = 0.1
DAMPING = 0.25
CONTACT_FORCE = 100.0
CONTACT_MARGIN = 1e-3
DEFAULT_SENSITIVITY = 5.0
"""Action scale of an agent without ``accel`` (``environment._set_action``)."""
EPISODE_LENGTH = 25
LANDMARK_SIZE = 0.05
"""``core.Entity``'s default size, kept by CN's landmarks."""


@dataclass(frozen=True)
class Bodies:
    """Constant properties of the ``K`` entities of a scenario (agents first, then landmarks).

    Attributes
    ----------
    size, mass : ndarray, shape [K]
    accel : ndarray, shape [K]
        ``nan`` where the original leaves ``accel`` unset.
    max_speed : ndarray, shape [K]
        ``inf`` where unset.
    movable, collide : ndarray of bool, shape [K]
    n_agents : int
        The first ``n_agents`` entities are agents and take actions.
    """

    size: np.ndarray
    mass: np.ndarray
    accel: np.ndarray
    max_speed: np.ndarray
    movable: np.ndarray
    collide: np.ndarray
    n_agents: int

    @property
    def push_gain(self) -> np.ndarray:
        """``[A]`` force per unit action: ``mass * accel^2``, or ``mass * 5`` without ``accel``."""
        accel = self.accel[: self.n_agents]
        mass = self.mass[: self.n_agents]
        return np.where(np.isnan(accel), mass * DEFAULT_SENSITIVITY, mass * np.nan_to_num(accel) ** 2)

    @property
    def contact_pairs(self) -> np.ndarray:
        """``[K, K]`` bool: the pairs ``a != b`` that exert contact forces on each other."""
        both_collide = self.collide[:, None] & self.collide[None, :]
        one_moves = self.movable[:, None] | self.movable[None, :]
        return both_collide & one_moves & ~np.eye(len(self.size), dtype=bool)


def _bodies(agents: list[dict], landmarks: list[dict]) -> Bodies:
    entities = [dict(movable=True, **a) for a in agents] + [dict(movable=False, **b) for b in landmarks]

    def column(name, default, dtype=float):
        return np.array([entity.get(name, default) for entity in entities], dtype=dtype)

    return Bodies(
        size=column("size", LANDMARK_SIZE),
        mass=column("mass", 1.0),
        accel=column("accel", np.nan),
        max_speed=column("max_speed", np.inf),
        movable=column("movable", False, bool),
        collide=column("collide", True, bool),
        n_agents=len(agents),
    )


def contact_forces(pos: np.ndarray, bodies: Bodies) -> np.ndarray:
    """Contact force on every entity (``core.World.get_entity_collision_force``, summed over pairs).

    Parameters
    ----------
    pos : ndarray, shape [E, K, 2]

    Returns
    -------
    ndarray, shape [E, K, 2]
        Zero on immovable entities and on entities touching nothing that collides.
    """
    delta = pos[:, :, None, :] - pos[:, None, :, :]  # [E, K, K, 2], delta[a, b] = p_a - p_b
    dist = np.sqrt(np.sum(np.square(delta), axis=-1))  # [E, K, K]
    pairs = bodies.contact_pairs
    dist_min = bodies.size[:, None] + bodies.size[None, :]
    penetration = np.logaddexp(0.0, -(dist - dist_min) / CONTACT_MARGIN) * CONTACT_MARGIN
    # dist is 1 off the contact pairs (never used), so that the self-pairs do not divide by zero
    safe_dist = np.where(pairs, dist, 1.0)
    force = CONTACT_FORCE * delta / safe_dist[..., None] * penetration[..., None]  # [E, K, K, 2]: on a from b
    both_move = bodies.movable[:, None] & bodies.movable[None, :]
    scale = np.where(both_move, bodies.mass[None, :] / bodies.mass[:, None], 1.0) * pairs * bodies.movable[:, None]
    return np.sum(force * scale[None, :, :, None], axis=2)


def step_bodies(pos: np.ndarray, vel: np.ndarray, actions: np.ndarray, bodies: Bodies) -> tuple[np.ndarray, np.ndarray]:
    """One step of ``core.World.step`` for silent agents without motor noise.

    Parameters
    ----------
    pos, vel : ndarray, shape [E, K, 2]
    actions : ndarray, shape [E, A, 2]
        The agents' actions ``u`` (the original takes them unclipped; callers clip to ``[-1, 1]``).

    Returns
    -------
    pos, vel : ndarray, shape [E, K, 2]
        New arrays; immovable entities keep their position and velocity.
    """
    force = contact_forces(pos, bodies)
    force[:, : bodies.n_agents] += bodies.push_gain[None, :, None] * actions
    new_vel = vel * (1.0 - DAMPING) + force / bodies.mass[None, :, None] * DT
    speed = np.sqrt(np.sum(np.square(new_vel), axis=-1, keepdims=True))  # [E, K, 1]
    max_speed = bodies.max_speed[None, :, None]
    too_fast = speed > max_speed
    # the divisor and factor are 1 where the speed is within its limit (and the limit possibly inf)
    limited = new_vel / np.where(too_fast, speed, 1.0) * np.where(too_fast, max_speed, 1.0)
    new_vel = np.where(too_fast, limited, new_vel)
    moves = bodies.movable[None, :, None]
    new_vel = np.where(moves, new_vel, vel)
    return np.where(moves, pos + new_vel * DT, pos), new_vel


def _norm(x: np.ndarray) -> np.ndarray:
    return np.sqrt(np.sum(np.square(x), axis=-1))


def _touching(pos: np.ndarray, bodies: Bodies, rows, cols) -> np.ndarray:
    """``[E, len(rows), len(cols)]`` bool: ``|p_r - p_c| < size_r + size_c`` (``Scenario.is_collision``)."""
    dist = _norm(pos[:, rows, None, :] - pos[:, None, cols, :])
    return dist < bodies.size[rows][:, None] + bodies.size[cols][None, :]


def _boundary_penalty(x: np.ndarray) -> np.ndarray:
    """``bound(x)`` of simple_tag / simple_world for ``x = |coordinate|``, elementwise."""
    return np.where(x < 0.9, 0.0, np.where(x < 1.0, (x - 0.9) * 10.0, np.minimum(np.exp(2.0 * x - 2.0), 10.0)))


class Scenario:
    """One original scenario: its bodies, initial-state distribution, observations and rewards.

    Attributes
    ----------
    bodies : Bodies
    team, opponents : tuple of int
        Agent indices of the learning team and of the fixed opponents.
    obs_dims : tuple of int
        Observation size of every agent, in agent order.
    agent_range, landmark_range : float
        Half-width of the uniform initial positions of agents and landmarks.
    """

    bodies: Bodies
    team: tuple[int, ...]
    opponents: tuple[int, ...] = ()
    obs_dims: tuple[int, ...]
    agent_range = 1.0
    landmark_range = 0.9

    def initial_positions(self, rng: np.random.Generator) -> np.ndarray:
        """``[K, 2]``: agents uniform in ``[-agent_range, agent_range]^2``, then the landmarks."""
        n_agents, n_landmarks = self.bodies.n_agents, len(self.bodies.size) - self.bodies.n_agents
        agents = rng.uniform(-self.agent_range, self.agent_range, size=(n_agents, 2))
        landmarks = rng.uniform(-self.landmark_range, self.landmark_range, size=(n_landmarks, 2))
        return np.concatenate([agents, landmarks])

    def observations(self, pos: np.ndarray, vel: np.ndarray) -> list[np.ndarray]:
        """Each agent's observation, ``[E, obs_dims[i]]`` per agent ``i`` in agent order."""
        raise NotImplementedError

    def rewards(self, pos: np.ndarray) -> np.ndarray:
        """``[E, A]`` every agent's reward on the positions after a step."""
        raise NotImplementedError

    def _relative(self, pos: np.ndarray, i: int, indices) -> list[np.ndarray]:
        return [pos[:, j] - pos[:, i] for j in indices]


class CooperativeNavigation(Scenario):
    """``simple_spread`` as modified for OMAR (see the module docstring)."""

    team = (0, 1, 2)
    obs_dims = (18, 18, 18)
    landmark_range = 1.0

    def __init__(self):
        agent = dict(size=0.15, collide=True)
        self.bodies = _bodies([agent] * 3, [dict(collide=False)] * 3)
        self._landmarks = range(3, 6)

    def observations(self, pos, vel):
        comm = np.zeros((len(pos), 2))
        observations = []
        for i in self.team:
            others = [j for j in self.team if j != i]
            parts = [vel[:, i], pos[:, i], *self._relative(pos, i, self._landmarks), *self._relative(pos, i, others)]
            observations.append(np.concatenate(parts + [comm] * len(others), axis=-1))
        return observations

    def rewards(self, pos):
        agents, landmarks = list(self.team), list(self._landmarks)
        closest = _norm(pos[:, agents, None, :] - pos[:, None, landmarks, :]).min(axis=1)  # [E, L]
        coverage = np.minimum(1.0 / np.maximum(closest, np.finfo(float).tiny), 10.0).sum(axis=-1)  # [E]
        touching = _touching(pos, self.bodies, agents, agents) & ~np.eye(len(agents), dtype=bool)
        return coverage[:, None] - 5.0 * touching.sum(axis=-1)


class _Chase(Scenario):
    """Adversaries chasing good agents with shaped rewards (``simple_tag``, ``simple_world``)."""

    catch_reward: float
    boundary_weight: float
    n_adversaries = 3

    def _agents(self) -> tuple[list[int], list[int]]:
        n = self.bodies.n_agents
        return list(range(self.n_adversaries)), list(range(self.n_adversaries, n))

    def rewards(self, pos):
        adversaries, good = self._agents()
        distance = _norm(pos[:, adversaries, None, :] - pos[:, None, good, :])  # [E, adv, good]
        caught = _touching(pos, self.bodies, adversaries, good)  # [E, adv, good]
        adversary = -0.1 * distance.min(axis=-1).sum(axis=-1) + self.catch_reward * caught.sum(axis=(1, 2))  # [E]
        boundary = _boundary_penalty(np.abs(pos[:, good])).sum(axis=-1)  # [E, good]
        good_reward = 0.1 * distance.sum(axis=1) - self.catch_reward * caught.sum(axis=1)
        good_reward = good_reward - self.boundary_weight * boundary + self._good_bonus(pos)
        return np.concatenate([np.repeat(adversary[:, None], len(adversaries), axis=1), good_reward], axis=1)

    def _good_bonus(self, pos: np.ndarray) -> np.ndarray:
        return 0.0

    def _agent_part(self, pos, vel, i: int) -> list[np.ndarray]:
        """Own velocity and position, the landmarks, the other agents, the other good agents' velocities."""
        adversaries, good = self._agents()
        landmarks = range(self.bodies.n_agents, len(self.bodies.size))
        others = [j for j in adversaries + good if j != i]
        other_good_vel = [vel[:, j] for j in good if j != i]
        relative = [*self._relative(pos, i, landmarks), *self._relative(pos, i, others)]
        return [vel[:, i], pos[:, i], *relative, *other_good_vel]


class PredatorPrey(_Chase):
    """``simple_tag``: 3 predators (the team) and 1 prey (see the module docstring)."""

    team = (0, 1, 2)
    opponents = (3,)
    obs_dims = (16, 16, 16, 14)
    catch_reward = 10.0
    boundary_weight = 1.0

    def __init__(self):
        adversary = dict(size=0.075, accel=3.0, max_speed=1.0)
        prey = dict(size=0.05, accel=4.0, max_speed=1.3)
        self.bodies = _bodies([adversary] * 3 + [prey], [dict(size=0.2, collide=True)] * 2)

    def observations(self, pos, vel):
        return [np.concatenate(self._agent_part(pos, vel, i), axis=-1) for i in range(self.bodies.n_agents)]


class World(_Chase):
    """``simple_world``: 3 adversaries (the team), 1 good agent, an obstacle, food and forests."""

    team = (0, 1, 2)
    opponents = (3,)
    obs_dims = (24, 24, 24, 22)
    catch_reward = 5.0
    boundary_weight = 2.0
    food_reward = 2.0
    food_shaping = 0.05

    def __init__(self):
        adversary = dict(size=0.075, accel=3.0, max_speed=1.0)
        good = dict(size=0.045, accel=4.0, max_speed=1.3)
        obstacle = dict(size=0.2, collide=True)
        food, forest = dict(size=0.03, collide=False), dict(size=0.3, collide=False)
        self.bodies = _bodies([adversary] * 3 + [good], [obstacle, food, food, forest, forest])
        self._food = [5, 6]
        self._forests = [7, 8]

    def _good_bonus(self, pos):
        _, good = self._agents()
        eaten = _touching(pos, self.bodies, good, self._food).sum(axis=-1)  # [E, good]
        nearest_food = _norm(pos[:, good, None, :] - pos[:, None, self._food, :]).min(axis=-1)  # [E, good]
        return self.food_reward * eaten + self.food_shaping * nearest_food

    def observations(self, pos, vel):
        inside = _touching(pos, self.bodies, list(range(self.bodies.n_agents)), self._forests)  # [E, A, forests]
        in_forest = np.where(inside, 1.0, -1.0)
        return [
            np.concatenate([*self._agent_part(pos, vel, i), in_forest[:, i]], axis=-1)
            for i in range(self.bodies.n_agents)
        ]


SCENARIOS: dict[str, type[Scenario]] = {"cn": CooperativeNavigation, "pp": PredatorPrey, "world": World}
"""Task name -> its original scenario."""


class ParticleCopies:
    """``E`` copies of one scenario stepped together, each with its own generator.

    Parameters
    ----------
    scenario : Scenario
    n_envs : int

    Attributes
    ----------
    pos, vel : ndarray, shape [E, K, 2]
        The current state (read-only use).
    t : int
        Steps since the last reset.
    """

    def __init__(self, scenario: Scenario, n_envs: int):
        self.scenario = scenario
        self.n_envs = n_envs
        n_entities = len(scenario.bodies.size)
        self.pos = np.zeros((n_envs, n_entities, 2))
        self.vel = np.zeros((n_envs, n_entities, 2))
        self._rngs = [np.random.default_rng(e) for e in range(n_envs)]
        self.t = 0

    def reset(self, seeds: list[int | None]) -> list[np.ndarray]:
        """New episodes; copy ``e`` reseeded with ``seeds[e]`` unless it is None. Returns the observations."""
        for e, seed in enumerate(seeds):
            if seed is not None:
                self._rngs[e] = np.random.default_rng(seed)
            self.pos[e] = self.scenario.initial_positions(self._rngs[e])
        self.vel[:] = 0.0
        self.t = 0
        return self.scenario.observations(self.pos, self.vel)

    def step(self, actions: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """Apply ``actions [E, A, 2]``; returns the agents' observations and rewards ``[E, A]``."""
        self.pos, self.vel = step_bodies(self.pos, self.vel, actions, self.scenario.bodies)
        self.t += 1
        return self.scenario.observations(self.pos, self.vel), self.scenario.rewards(self.pos)
