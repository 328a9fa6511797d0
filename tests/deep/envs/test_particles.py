"""The original MPE scenarios: hand-computed rewards and observations, a per-entity loop reference, mpe2's core."""

import math

import numpy as np
import pytest
from mpe2._mpe_utils import core as mpe2_core

from deep.envs.particles import (
    CONTACT_FORCE,
    CONTACT_MARGIN,
    DAMPING,
    DT,
    SCENARIOS,
    CooperativeNavigation,
    ParticleCopies,
    PredatorPrey,
    World,
    contact_forces,
    step_bodies,
)


def state_of(scenario, positions, velocities=None):
    """``[1, K, 2]`` arrays from lists of points (landmarks' velocities stay zero)."""
    pos = np.array(positions, dtype=float)[None]
    vel = np.zeros_like(pos)
    if velocities is not None:
        vel[0, : len(velocities)] = velocities
    assert pos.shape[1] == len(scenario.bodies.size)
    return pos, vel


# ---------------------------------------------------------------- hand-built states, original formulas


def test_cn_reward_on_a_hand_built_state():
    """Landmarks covered at distances 0.5, 0 (capped at 10) and 1: 2 + 10 + 1; agents 0 and 1 collide (0.2 < 0.3)."""
    scenario = CooperativeNavigation()
    pos, _ = state_of(scenario, [(0, 0), (0.2, 0), (1, 1), (0, 0.5), (1, 1), (-1, 0)])
    np.testing.assert_allclose(scenario.rewards(pos), [[13 - 5, 13 - 5, 13]], rtol=1e-12)


def test_cn_observation_layout():
    """velocity, position, landmarks - p, other agents - p, then 2 x 2 zeros (the silent agents' messages)."""
    scenario = CooperativeNavigation()
    pos, vel = state_of(scenario, [(0.1, 0.2), (0.3, 0), (1, 1), (0, 0.5), (1, 1), (-1, 0)], [(0.1, -0.2)])
    obs = scenario.observations(pos, vel)
    expected = [0.1, -0.2, 0.1, 0.2, -0.1, 0.3, 0.9, 0.8, -1.1, -0.2, 0.2, -0.2, 0.9, 0.8, 0, 0, 0, 0]
    np.testing.assert_allclose(obs[0][0], expected, atol=1e-12)
    assert [o.shape for o in obs] == [(1, 18)] * 3


def test_pp_rewards_on_hand_built_states():
    """Predators: -0.1 * sum of distances to the prey + 10 per catch; prey: the opposite shaping, -10 per catch,
    minus bound(|x|) + bound(|y|) with bound(0.95) = 0.5 and bound(1.2) = min(e^0.4, 10)."""
    scenario = PredatorPrey()
    landmarks = [(-0.8, -0.8), (-0.8, 0.8)]
    pos, _ = state_of(scenario, [(0, 0), (0.5, 0), (0, 0.5), (0.1, 0), *landmarks])
    distances = 0.1 + 0.4 + math.sqrt(0.01 + 0.25)
    np.testing.assert_allclose(scenario.rewards(pos), [[10 - 0.1 * distances] * 3 + [0.1 * distances - 10]], rtol=1e-12)
    pos, _ = state_of(scenario, [(0, 0), (0.5, 0), (0, 0.5), (0.95, 1.2), *landmarks])
    distances = math.hypot(0.95, 1.2) + math.hypot(0.45, 1.2) + math.hypot(0.95, 0.7)
    boundary = (0.95 - 0.9) * 10 + math.exp(2 * 1.2 - 2)
    np.testing.assert_allclose(
        scenario.rewards(pos), [[-0.1 * distances] * 3 + [0.1 * distances - boundary]], rtol=1e-12
    )


def test_pp_observation_layout():
    """Predators: v, p, 2 landmarks, 3 others (16 with the prey's velocity); prey: 14, no velocities of others."""
    scenario = PredatorPrey()
    pos, vel = state_of(
        scenario, [(0, 0), (0.5, 0), (0, 0.5), (0.1, 0), (-0.8, -0.8), (-0.8, 0.8)], [(1, 2), (0, 0), (0, 0), (3, 4)]
    )
    obs = scenario.observations(pos, vel)
    assert [o.shape for o in obs] == [(1, 16)] * 3 + [(1, 14)]
    np.testing.assert_allclose(obs[0][0], [1, 2, 0, 0, -0.8, -0.8, -0.8, 0.8, 0.5, 0, 0, 0.5, 0.1, 0, 3, 4])
    np.testing.assert_allclose(obs[3][0], [3, 4, 0.1, 0, -0.9, -0.8, -0.9, 0.8, -0.1, 0, 0.4, 0, -0.1, 0.5])


def test_world_rewards_on_a_hand_built_state():
    """Adversaries: 5 per catch; the good agent also gets 2 per food it touches + 0.05 * distance to the nearest
    food, and twice the boundary penalty."""
    scenario = World()
    good = (0.95, 0.0)
    entities = [(0, 0), (0.5, 0.5), (-0.5, 0.5), good, (-0.5, -0.5), (0.96, 0.0), (0.0, -0.9), (0.5, -0.5), (0, 0)]
    pos, _ = state_of(scenario, entities)
    distances = 0.95 + math.hypot(0.45, 0.5) + math.hypot(1.45, 0.5)
    good_reward = 0.1 * distances - 2 * (0.95 - 0.9) * 10 + 2 * 1 + 0.05 * 0.01
    np.testing.assert_allclose(scenario.rewards(pos), [[-0.1 * distances] * 3 + [good_reward]], rtol=1e-9)
    caught = [(0, 0), (0.5, 0.5), (-0.5, 0.5), (0.1, 0.0), (-0.5, -0.5), (0.9, 0.9), (0.0, -0.9), (0.5, -0.5), (0, 0)]
    pos, _ = state_of(scenario, caught)
    distances = 0.1 + math.hypot(0.4, 0.5) + math.hypot(0.6, 0.5)
    good_reward = 0.1 * distances - 5 + 0.05 * math.hypot(0.1, 0.9)
    np.testing.assert_allclose(scenario.rewards(pos), [[5 - 0.1 * distances] * 3 + [good_reward]], rtol=1e-9)


def test_world_observation_layout_and_forest_flags():
    """v, p, the 5 landmarks (obstacle, 2 food, 2 forests), 3 others, other good velocities, 2 forest flags."""
    scenario = World()
    entities = [(0, 0), (0.5, 0.5), (-0.5, 0.5), (0.9, 0.0), (-0.5, -0.5), (0.8, 0.0), (0.0, -0.9), (0.1, 0), (2, 2)]
    pos, vel = state_of(scenario, entities, [(1, 2), (0, 0), (0, 0), (3, 4)])
    obs = scenario.observations(pos, vel)
    assert [o.shape for o in obs] == [(1, 24)] * 3 + [(1, 22)]
    landmarks = [-0.5, -0.5, 0.8, 0, 0, -0.9, 0.1, 0, 2, 2]
    others = [0.5, 0.5, -0.5, 0.5, 0.9, 0]
    np.testing.assert_allclose(obs[0][0], [1, 2, 0, 0, *landmarks, *others, 3, 4, 1, -1])
    # the good agent at (0.9, 0) is 0.8 from the first forest: outside (0.045 + 0.3)
    assert obs[3][0][-2:].tolist() == [-1.0, -1.0] and obs[3][0][:2].tolist() == [3, 4]


def test_initial_positions_follow_the_original_ranges():
    """Agents uniform in [-1, 1]^2; landmarks in [-1, 1]^2 for CN and [-0.9, 0.9]^2 for PP and World."""
    for task, landmark_range in (("cn", 1.0), ("pp", 0.9), ("world", 0.9)):
        scenario = SCENARIOS[task]()
        copies = ParticleCopies(scenario, n_envs=2000)
        copies.reset(list(range(2000)))
        agents, landmarks = copies.pos[:, : scenario.bodies.n_agents], copies.pos[:, scenario.bodies.n_agents :]
        assert np.abs(agents).max() <= 1.0 and np.abs(agents).max() > 0.99
        assert np.abs(landmarks).max() <= landmark_range and np.abs(landmarks).max() > landmark_range - 0.01
        assert not copies.vel.any()


# ---------------------------------------------------------------- the vectorized world against slow references


class LoopWorld:
    """The original ``core.World.step`` written out per entity and per pair, as the original code loops."""

    def __init__(self, bodies, pos, vel):
        self.bodies, self.pos, self.vel = bodies, [p.copy() for p in pos], [v.copy() for v in vel]

    def step(self, actions):
        b = self.bodies
        force = [None] * len(b.size)
        for i in range(b.n_agents):
            sensitivity = 5.0 if math.isnan(b.accel[i]) else b.accel[i]
            gain = b.mass[i] if math.isnan(b.accel[i]) else b.mass[i] * b.accel[i]
            force[i] = gain * (actions[i] * sensitivity)
        for a in range(len(b.size)):
            for c in range(a + 1, len(b.size)):
                if not (b.collide[a] and b.collide[c]) or not (b.movable[a] or b.movable[c]):
                    continue
                delta = self.pos[a] - self.pos[c]
                dist = math.sqrt(float(np.sum(np.square(delta))))
                penetration = np.logaddexp(0, -(dist - (b.size[a] + b.size[c])) / CONTACT_MARGIN) * CONTACT_MARGIN
                f = CONTACT_FORCE * delta / dist * penetration
                if b.movable[a] and b.movable[c]:
                    ratio = b.mass[c] / b.mass[a]
                    pair = (ratio * f, -(1 / ratio) * f)
                else:
                    pair = (f if b.movable[a] else None, -f if b.movable[c] else None)
                for k, f_k in zip((a, c), pair, strict=True):
                    if f_k is not None:
                        force[k] = f_k if force[k] is None else f_k + force[k]
        for i in range(len(b.size)):
            if not b.movable[i]:
                continue
            self.vel[i] = self.vel[i] * (1 - DAMPING)
            if force[i] is not None:
                self.vel[i] = self.vel[i] + (force[i] / b.mass[i]) * DT
            speed = math.sqrt(self.vel[i][0] ** 2 + self.vel[i][1] ** 2)
            if speed > b.max_speed[i]:
                self.vel[i] = self.vel[i] / speed * b.max_speed[i]
            self.pos[i] = self.pos[i] + self.vel[i] * DT


def crowded_state(scenario, rng, n_envs):
    """Positions packed into a small square, so that many pairs touch, and random velocities."""
    n_entities = len(scenario.bodies.size)
    pos = rng.uniform(-0.3, 0.3, size=(n_envs, n_entities, 2))
    vel = rng.uniform(-1, 1, size=(n_envs, n_entities, 2)) * scenario.bodies.movable[None, :, None]
    return pos, vel


@pytest.mark.parametrize("task", ["cn", "pp", "world"])
def test_vectorized_steps_equal_the_per_entity_loop(task):
    """Ten steps of 8 crowded copies (contacts, speed limits, pushes outside [-1, 1]) against LoopWorld."""
    scenario, rng = SCENARIOS[task](), np.random.default_rng(0)
    pos, vel = crowded_state(scenario, rng, 8)
    loops = [LoopWorld(scenario.bodies, pos[e], vel[e]) for e in range(8)]
    limited = 0
    for _ in range(10):
        actions = rng.uniform(-1.5, 1.5, size=(8, scenario.bodies.n_agents, 2))
        pos, vel = step_bodies(pos, vel, actions, scenario.bodies)
        for e, loop in enumerate(loops):
            loop.step(actions[e])
            np.testing.assert_allclose(pos[e], np.array(loop.pos), rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(vel[e], np.array(loop.vel), rtol=1e-12, atol=1e-12)
        speeds = np.linalg.norm(vel[:, : scenario.bodies.n_agents], axis=-1)
        limited += np.isclose(speeds, scenario.bodies.max_speed[: scenario.bodies.n_agents]).sum()
    assert task == "cn" or limited > 0  # the speed limit was exercised


def mpe2_world(bodies, pos, vel):
    """mpe2's core World holding the same entities (agents silent, no noise)."""
    world = mpe2_core.World()
    world.dim_c = 0
    world.agents = [mpe2_core.Agent() for _ in range(bodies.n_agents)]
    world.landmarks = [mpe2_core.Landmark() for _ in range(len(bodies.size) - bodies.n_agents)]
    for k, entity in enumerate(world.entities):
        entity.size, entity.collide, entity.movable = bodies.size[k], bool(bodies.collide[k]), bool(bodies.movable[k])
        entity.initial_mass = bodies.mass[k]
        entity.max_speed = None if np.isinf(bodies.max_speed[k]) else bodies.max_speed[k]
        entity.accel = None if np.isnan(bodies.accel[k]) else bodies.accel[k]
        entity.state.p_pos, entity.state.p_vel = pos[k].copy(), vel[k].copy()
        if k < bodies.n_agents:
            entity.silent = True
            entity.state.c = np.zeros(0)
    return world


@pytest.mark.parametrize("task", ["cn", "pp", "world"])
def test_contact_forces_and_velocity_update_equal_mpe2_driven_directly(task):
    """mpe2's core, given the original's push force accel^2 u (5 u without accel) as its action: the same
    contact forces and the same new velocities; its position update uses the old velocity, ours the new one."""
    scenario, rng = SCENARIOS[task](), np.random.default_rng(1)
    pos, vel = crowded_state(scenario, rng, 6)
    actions = rng.uniform(-1, 1, size=(6, scenario.bodies.n_agents, 2))
    new_pos, new_vel = step_bodies(pos, vel, actions, scenario.bodies)
    forces = contact_forces(pos, scenario.bodies)
    for e in range(6):
        world = mpe2_world(scenario.bodies, pos[e], vel[e])
        mpe2_forces = world.apply_environment_force([None] * len(world.entities))
        for k, force in enumerate(mpe2_forces):
            np.testing.assert_allclose(forces[e, k], 0.0 if force is None else force, rtol=1e-12, atol=1e-12)
        for i, agent in enumerate(world.agents):
            agent.action.u = scenario.bodies.push_gain[i] * actions[e, i]
        world.step()
        mpe2_vel = np.array([entity.state.p_vel for entity in world.entities])
        mpe2_pos = np.array([entity.state.p_pos for entity in world.entities])
        np.testing.assert_allclose(new_vel[e], mpe2_vel, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(mpe2_pos, pos[e] + vel[e] * DT * scenario.bodies.movable[:, None], atol=1e-12)
        np.testing.assert_allclose(new_pos[e], pos[e] + new_vel[e] * DT, atol=1e-12)


def test_push_gains_are_the_originals_doubled_accel_factor():
    """environment._set_action scales u by accel (5 without), core.apply_action_force by mass * accel again."""
    assert CooperativeNavigation().bodies.push_gain.tolist() == [5.0] * 3
    assert PredatorPrey().bodies.push_gain.tolist() == [9.0] * 3 + [16.0]
    assert World().bodies.push_gain.tolist() == [9.0] * 3 + [16.0]


# ---------------------------------------------------------------- rewards and observations against loops


def loop_rewards(task, pos):
    """Every agent's reward on one copy's positions ``[K, 2]``, written as the original scenario loops."""
    scenario = SCENARIOS[task]()
    size, n = scenario.bodies.size, scenario.bodies.n_agents

    def dist(a, b):
        return math.sqrt(float(np.sum(np.square(pos[a] - pos[b]))))

    def collide(a, b):
        return dist(a, b) < size[a] + size[b]

    def bound(x):
        return 0 if x < 0.9 else (x - 0.9) * 10 if x < 1.0 else min(math.exp(2 * x - 2), 10)

    if task == "cn":
        coverage = sum(min(1.0 / min(dist(a, l) for a in range(n)), 10.0) for l in range(n, 2 * n))
        return [coverage - 5 * sum(collide(a, i) for a in range(n) if a != i) for i in range(n)]
    catch = 10 if task == "pp" else 5
    adversaries, good = range(3), range(3, n)
    rewards = []
    for i in range(n):
        if i in adversaries:
            rew = -0.1 * sum(min(dist(g, a) for g in good) for a in adversaries)
            rew += catch * sum(collide(g, a) for g in good for a in adversaries)
        else:
            rew = 0.1 * sum(dist(i, a) for a in adversaries) - catch * sum(collide(a, i) for a in adversaries)
            rew -= (1 if task == "pp" else 2) * sum(bound(abs(pos[i][d])) for d in range(2))
            if task == "world":
                rew += 2 * sum(collide(i, f) for f in (5, 6)) + 0.05 * min(dist(f, i) for f in (5, 6))
        rewards.append(rew)
    return rewards


@pytest.mark.parametrize("task", ["cn", "pp", "world"])
def test_vectorized_rewards_equal_the_original_loops(task):
    scenario, rng = SCENARIOS[task](), np.random.default_rng(2)
    pos = rng.uniform(-1.3, 1.3, size=(200, len(scenario.bodies.size), 2))
    pos[:100] *= 0.25  # crowded copies: catches, collisions, food
    rewards = scenario.rewards(pos)
    for e in range(200):
        np.testing.assert_allclose(rewards[e], loop_rewards(task, pos[e]), rtol=1e-12, atol=1e-12)
    assert task == "cn" or (rewards[:, 0] > 0).any()  # some copies have a catch


def test_a_step_computes_observations_and_rewards_on_the_new_state():
    """environment._step: actions set, the world steps, then observations and rewards of the new positions."""
    scenario = PredatorPrey()
    copies = ParticleCopies(scenario, n_envs=3)
    copies.reset([0, 1, 2])
    before = copies.pos.copy(), copies.vel.copy()
    actions = np.random.default_rng(0).uniform(-1, 1, size=(3, 4, 2))
    obs, rewards = copies.step(actions)
    pos, vel = step_bodies(*before, actions, scenario.bodies)
    np.testing.assert_array_equal(rewards, scenario.rewards(pos))
    for got, expected in zip(obs, scenario.observations(pos, vel), strict=True):
        np.testing.assert_array_equal(got, expected)
    assert copies.t == 1
