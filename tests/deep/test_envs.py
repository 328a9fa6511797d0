"""TeamEnv against mpe2 and MaMuJoCo driven directly, plus shapes, episode ends, seeding and bad input."""

import numpy as np
import pytest
from gymnasium_robotics import mamujoco_v1
from mpe2 import simple_spread_v3, simple_tag_v3, simple_world_comm_v3
from pettingzoo.utils.env_logger import EnvLogger

from deep.envs import TASKS, TeamEnv, task_spec, uniform_opponent

MPE_TASKS = ("cn", "pp", "world")


def raw_env(task):
    """The task's pettingzoo environment, built here independently of deep.envs."""
    if task == "cn":
        return simple_spread_v3.parallel_env(N=3, continuous_actions=True, max_cycles=25)
    if task == "pp":
        return simple_tag_v3.parallel_env(
            num_good=1, num_adversaries=3, num_obstacles=2, continuous_actions=True, max_cycles=25
        )
    if task == "world":
        return simple_world_comm_v3.parallel_env(continuous_actions=True, max_cycles=25)
    return mamujoco_v1.parallel_env("HalfCheetah", "2x3")


def mpe2_action(action, act_dim):
    """The documented mapping, written out: (x, y, say...) in [-1, 1] -> mpe2's [0, 1] action."""
    x, y, *say = np.clip(action[:act_dim], -1.0, 1.0)
    move = [0.0, max(-x, 0.0), max(x, 0.0), max(-y, 0.0), max(y, 0.0)]
    return np.array(move + [(s + 1.0) / 2.0 for s in say], dtype=np.float32)


def random_actions(rng, env, low=-1.0, high=1.0):
    spec = env.spec
    return rng.uniform(low, high, size=(env.n_envs, spec.n_agents, spec.act_dim)).astype(np.float32)


class RecordingOpponent:
    """Random opponent actions (some out of range) that the test can replay into the raw environment."""

    def __init__(self, spec, seed):
        self.spec = spec
        self.rng = np.random.default_rng(seed)
        self.history = []

    def __call__(self, obs):
        actions = self.rng.uniform(-1.3, 1.3, size=(len(obs), self.spec.n_opponents, self.spec.opponent_act_dim))
        self.history.append(actions)
        return actions


def run_episode(env, rng):
    """Reset, then step with random actions until the episode ends; every array returned, stacked."""
    obs, state = env.reset()
    trajectory = [(obs, state)]
    while True:
        obs, state, reward, terminated, truncated = env.step(random_actions(rng, env))
        trajectory.append((obs, state, reward, terminated, truncated))
        if (terminated | truncated).any():
            return trajectory


def test_unknown_task_raises():
    with pytest.raises(ValueError, match="task"):
        task_spec("spread")
    with pytest.raises(ValueError, match="task"):
        TeamEnv("HalfCheetah")


@pytest.mark.parametrize("task", TASKS)
def test_spec_matches_the_installed_environment(task):
    spec = task_spec(task)
    env = raw_env(task)
    env.reset(seed=0)
    assert set(env.possible_agents) == set(spec.team + spec.opponents)
    for agent, obs_dim, act_dim in zip(spec.team, spec.obs_dims, spec.act_dims, strict=True):
        assert env.observation_space(agent).shape == (obs_dim,)
        # mpe2 spends 5 entries on moving (2 dims of the team action) and keeps the "say" entries
        assert env.action_space(agent).shape == ((act_dim + 3,) if task in MPE_TASKS else (act_dim,))
    for agent, obs_dim in zip(spec.opponents, spec.opponent_obs_dims, strict=True):
        assert env.observation_space(agent).shape == (obs_dim,)
        assert env.action_space(agent).shape == (5,)
    assert env.state().shape == (spec.state_dim,)
    assert spec.episode_length == (1000 if task == "halfcheetah" else 25)


def test_world_defaults_are_the_leader_three_adversaries_and_two_good_agents():
    spec = task_spec("world")
    assert raw_env("world").possible_agents == list(spec.team + spec.opponents)
    assert spec.team[0] == "leadadversary_0" and spec.act_dims == (6, 2, 2, 2) and spec.act_dim == 6
    assert spec.opponents == ("agent_0", "agent_1")


@pytest.mark.parametrize("task", TASKS)
def test_shapes_dtypes_and_finite_values(task):
    env = TeamEnv(task, n_envs=3, seed=0)
    spec = env.spec
    obs, state = env.reset()
    assert obs.shape == (3, spec.n_agents, spec.obs_dim) and obs.dtype == np.float32
    assert state.shape == (3, spec.state_dim) and state.dtype == np.float32
    obs, state, reward, terminated, truncated = env.step(random_actions(np.random.default_rng(0), env))
    assert obs.shape == (3, spec.n_agents, spec.obs_dim) and obs.dtype == np.float32
    assert state.shape == (3, spec.state_dim) and state.dtype == np.float32
    assert reward.shape == (3,) and reward.dtype == np.float32
    assert terminated.shape == truncated.shape == (3,) and terminated.dtype == truncated.dtype == bool
    assert np.isfinite(obs).all() and np.isfinite(state).all() and np.isfinite(reward).all()
    for i, obs_dim in enumerate(spec.obs_dims):
        assert not obs[:, i, obs_dim:].any()


@pytest.mark.parametrize("task", MPE_TASKS)
def test_mpe_adapter_equals_mpe2_driven_directly_with_the_mapped_actions(task):
    """Two copies over two episodes (the second reset is unseeded) against two raw envs seeded 7 and 8."""
    spec = task_spec(task)
    opponent = RecordingOpponent(spec, seed=1) if spec.opponents else None
    env = TeamEnv(task, n_envs=2, seed=7, opponent=opponent)
    raws = [raw_env(task) for _ in range(2)]
    rng = np.random.default_rng(0)
    for episode in range(2):
        obs, state = env.reset()
        for e, raw in enumerate(raws):
            raw_obs, _ = raw.reset(seed=7 + e if episode == 0 else None)
            for i, agent in enumerate(spec.team):
                np.testing.assert_array_equal(obs[e, i], raw_obs[agent])
            np.testing.assert_array_equal(state[e], raw.state())
        for _ in range(25):
            actions = random_actions(rng, env, -1.3, 1.3)  # out-of-range values are clipped on both sides
            obs, state, reward, terminated, truncated = env.step(actions)
            for e, raw in enumerate(raws):
                joint = {agent: mpe2_action(actions[e, i], spec.act_dims[i]) for i, agent in enumerate(spec.team)}
                for j, agent in enumerate(spec.opponents):
                    joint[agent] = mpe2_action(opponent.history[-1][e, j], spec.opponent_act_dims[j])
                raw_obs, raw_rewards, raw_terminations, raw_truncations, _ = raw.step(joint)
                for i, agent in enumerate(spec.team):
                    np.testing.assert_array_equal(obs[e, i], raw_obs[agent])
                np.testing.assert_array_equal(state[e], raw.state())
                assert reward[e] == np.float32(np.mean([raw_rewards[agent] for agent in spec.team]))
                assert terminated[e] == raw_terminations[spec.team[0]]
                assert truncated[e] == raw_truncations[spec.team[0]]
        assert truncated.all() and not terminated.any()


def test_halfcheetah_adapter_equals_mamujoco_driven_directly():
    env = TeamEnv("halfcheetah", n_envs=1, seed=3)
    raw = raw_env("halfcheetah")
    obs, state = env.reset()
    raw_obs, _ = raw.reset(seed=3)
    np.testing.assert_array_equal(obs[0], np.stack([raw_obs["agent_0"], raw_obs["agent_1"]]).astype(np.float32))
    rng = np.random.default_rng(0)
    for _ in range(5):
        actions = random_actions(rng, env)
        obs, state, reward, _, _ = env.step(actions)
        raw_obs, raw_rewards, _, _, _ = raw.step({"agent_0": actions[0, 0], "agent_1": actions[0, 1]})
        np.testing.assert_array_equal(obs[0], np.stack([raw_obs["agent_0"], raw_obs["agent_1"]]).astype(np.float32))
        np.testing.assert_array_equal(state[0], raw.state().astype(np.float32))
        assert raw_rewards["agent_0"] == raw_rewards["agent_1"]
        assert reward[0] == np.float32(raw_rewards["agent_0"])


def test_move_action_pushes_in_its_own_direction():
    """From rest, one step gives velocity dt * sensitivity * (x, y) = 0.1 * 5 * (x, y) for CN agents."""
    env = TeamEnv("cn", n_envs=2, seed=0)
    env.reset()
    actions = random_actions(np.random.default_rng(1), env)
    obs, *_ = env.step(actions)
    np.testing.assert_allclose(obs[:, :, :2], 0.5 * actions, atol=1e-6)  # obs starts with the own velocity


def test_world_leader_say_entries_reach_the_adversaries():
    """The leader's say s in [-1, 1]^4 is broadcast as (s + 1) / 2: the last 4 entries of each adversary's obs."""
    env = TeamEnv("world", n_envs=2, seed=0)
    env.reset()
    actions = random_actions(np.random.default_rng(1), env)
    obs, *_ = env.step(actions)
    for adversary in range(1, 4):
        np.testing.assert_allclose(obs[:, adversary, -4:], (actions[:, 0, 2:6] + 1) / 2, rtol=1e-6)


def test_padded_action_entries_are_ignored():
    rng = np.random.default_rng(0)
    first, second = TeamEnv("world", n_envs=2, seed=0), TeamEnv("world", n_envs=2, seed=0)
    first.reset(), second.reset()
    for _ in range(5):
        actions = random_actions(rng, first)
        scrambled = actions.copy()
        scrambled[:, 1:, 2:] = rng.uniform(-1, 1, size=scrambled[:, 1:, 2:].shape)  # the adversaries' padding
        for a, b in zip(first.step(actions), second.step(scrambled), strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("task", ["cn", "halfcheetah"])
def test_out_of_range_actions_are_clipped_to_the_unit_box(task):
    rng = np.random.default_rng(0)
    first, second = TeamEnv(task, seed=0), TeamEnv(task, seed=0)
    first.reset(), second.reset()
    warnings_before = len(EnvLogger.mqueue)
    actions = 3.0 * random_actions(rng, first)
    for a, b in zip(first.step(actions), second.step(np.clip(actions, -1, 1)), strict=True):
        np.testing.assert_array_equal(a, b)
    assert len(EnvLogger.mqueue) == warnings_before  # pettingzoo never had to clip (and log) anything


def test_team_reward_is_shared_in_pp_and_differs_by_collisions_only_in_cn():
    rng = np.random.default_rng(0)
    for task in ("pp", "cn"):
        spec, raw = task_spec(task), raw_env(task)
        raw.reset(seed=0)
        while raw.agents:
            _, rewards, _, _, _ = raw.step({agent: rng.uniform(0, 1, 5).astype(np.float32) for agent in raw.agents})
            team_rewards = np.array([rewards[agent] for agent in spec.team])
            if task == "pp":
                assert (team_rewards == team_rewards[0]).all()
            else:  # agent i gets 0.5 * global - 0.5 * (its collisions)
                gaps = 2 * (team_rewards - team_rewards[0])
                np.testing.assert_allclose(gaps, np.round(gaps), atol=1e-9)


@pytest.mark.parametrize("task", MPE_TASKS)
def test_mpe_episodes_truncate_after_25_steps(task):
    env = TeamEnv(task, n_envs=2, seed=0)
    trajectory = run_episode(env, np.random.default_rng(0))
    assert len(trajectory) - 1 == 25
    assert not any(step[3].any() for step in trajectory[1:])
    assert not any(step[4].any() for step in trajectory[1:-1]) and trajectory[-1][4].all()


def test_halfcheetah_truncates_after_1000_steps_and_never_terminates():
    env = TeamEnv("halfcheetah", n_envs=1, seed=0)
    trajectory = run_episode(env, np.random.default_rng(0))
    assert len(trajectory) - 1 == 1000
    assert not any(step[3].any() for step in trajectory[1:])
    assert trajectory[-1][4].all()


def test_step_needs_a_reset_first_and_after_the_episode_ends():
    env = TeamEnv("cn", seed=0)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros((1, 3, 2)))
    run_episode(env, np.random.default_rng(0))
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros((1, 3, 2)))


@pytest.mark.parametrize("task", TASKS)
def test_same_seed_gives_identical_arrays_and_another_seed_does_not(task):
    """Reset, 3 steps, reset again: the unseeded second reset continues each copy's own stream."""

    def rollout(seed):
        env, rng = TeamEnv(task, n_envs=2, seed=seed), np.random.default_rng(0)
        arrays = list(env.reset())
        for _ in range(3):
            arrays += env.step(random_actions(rng, env))
        return arrays + list(env.reset())

    first, again, other = rollout(5), rollout(5), rollout(6)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])
    assert not np.array_equal(first[0][0], first[0][1])  # copies are seeded differently
    assert not np.array_equal(first[0], first[-2])  # the second episode starts elsewhere
    np.testing.assert_array_equal(first[0][1], other[0][0])  # copy e is seeded with seed + e


def test_bad_input_raises():
    env = TeamEnv("pp", n_envs=2, seed=0)
    env.reset()
    with pytest.raises(ValueError, match="actions"):
        env.step(np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="actions"):
        env.step(np.zeros((3, 2)))
    for bad in (np.nan, np.inf):
        actions = np.zeros((2, 3, 2))
        actions[1, 2, 0] = bad
        with pytest.raises(ValueError, match="actions"):
            env.step(actions)
    with pytest.raises(ValueError, match="opponent"):
        TeamEnv("cn", opponent=uniform_opponent(task_spec("pp"), 0))
    with pytest.raises(ValueError, match="n_envs"):
        TeamEnv("cn", n_envs=0)
    wrong_opponent = TeamEnv("pp", seed=0, opponent=lambda obs: np.zeros((len(obs), 1, 5)))
    wrong_opponent.reset()
    with pytest.raises(ValueError, match="opponent"):
        wrong_opponent.step(np.zeros((1, 3, 2)))


def test_uniform_opponent_is_seeded_and_in_the_unit_box():
    spec = task_spec("world")
    obs = np.zeros((4, spec.n_opponents, spec.opponent_obs_dim), dtype=np.float32)
    actions = uniform_opponent(spec, 3)(obs)
    assert actions.shape == (4, 2, 2) and actions.dtype == np.float32 and np.abs(actions).max() <= 1
    np.testing.assert_array_equal(actions, uniform_opponent(spec, 3)(obs))
    assert not np.array_equal(actions, uniform_opponent(spec, 4)(obs))
    assert not np.allclose(actions.ravel(), np.random.default_rng(3).uniform(-1, 1, actions.size))
    with pytest.raises(ValueError, match="spec"):
        uniform_opponent(task_spec("cn"), 0)


def test_reset_with_a_seed_reseeds_every_copy():
    """reset(seed=k) makes copy e start as a fresh env seeded k + e, whatever happened before."""
    fresh = TeamEnv("cn", n_envs=2, seed=50)
    used = TeamEnv("cn", n_envs=2, seed=7)
    used.reset()
    used.step(np.zeros((2, 3, 2), dtype=np.float32))
    obs_fresh, state_fresh = fresh.reset()
    obs_used, state_used = used.reset(seed=50)
    np.testing.assert_array_equal(obs_fresh, obs_used)
    np.testing.assert_array_equal(state_fresh, state_used)


@pytest.mark.parametrize(("task", "benchmark_task"), [("pp-prey", "pp"), ("world-good", "world")])
def test_opponent_side_tasks_swap_team_and_opponents(task, benchmark_task):
    """pp-prey / world-good run the same environment with the benchmark team as the opponents."""
    from deep.envs import OPPONENT_TASKS, opponent_task

    spec, mirrored = task_spec(task), task_spec(benchmark_task)
    assert task in OPPONENT_TASKS and opponent_task(task) == benchmark_task and opponent_task(benchmark_task) == task
    assert (spec.team, spec.opponents) == (mirrored.opponents, mirrored.team)
    assert spec.environment == benchmark_task and spec.state_dim == mirrored.state_dim
    env = TeamEnv(task, n_envs=2, seed=1)
    obs, state = env.reset()
    assert obs.shape == (2, spec.n_agents, spec.obs_dim) and state.shape == (2, mirrored.state_dim)
    _, _, reward, _, truncated = env.step(np.zeros((2, spec.n_agents, spec.act_dim), dtype=np.float32))
    assert reward.shape == (2,) and not truncated.any()
    with pytest.raises(ValueError, match="has no opponents"):
        opponent_task("cn")
