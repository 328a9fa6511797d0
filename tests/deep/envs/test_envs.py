"""TeamEnv against the original scenarios and MaMuJoCo driven directly; shapes, episode ends, seeding, bad input."""

import numpy as np
import pytest
from gymnasium_robotics import mamujoco_v1

from deep.envs.particles import SCENARIOS, ParticleCopies
from deep.envs.tasks import TASKS, TeamEnv, task_spec, uniform_opponent

MPE_TASKS = ("cn", "pp", "world")


def raw_env(task):
    """HalfCheetah's pettingzoo environment, built here independently of deep.envs.tasks."""
    assert task == "halfcheetah"
    return mamujoco_v1.parallel_env("HalfCheetah", "2x3")


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


def test_specs_are_the_original_scenarios():
    """Team sizes and dimensions of OMAR's simple_spread, simple_tag, simple_world; the state is the team's obs."""
    for task in MPE_TASKS:
        spec, scenario = task_spec(task), SCENARIOS[task]()
        assert spec.obs_dims == tuple(scenario.obs_dims[i] for i in scenario.team)
        assert spec.opponent_obs_dims == tuple(scenario.obs_dims[i] for i in scenario.opponents)
        assert spec.act_dims == (2,) * spec.n_agents and spec.state_dim == sum(spec.obs_dims)
        assert spec.episode_length == 25
    assert [task_spec(t).obs_dims for t in MPE_TASKS] == [(18,) * 3, (16,) * 3, (24,) * 3]
    assert task_spec("pp").opponent_obs_dims == (14,) and task_spec("world").opponent_obs_dims == (22,)
    assert task_spec("halfcheetah").episode_length == 1000


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
def test_mpe_adapter_equals_the_scenario_driven_directly(task):
    """Two copies over two episodes (the second reset unseeded) against ParticleCopies seeded 7 and 8: padded
    team observations, the state as the team's observations, the mean team reward, the opponents' actions."""
    spec, scenario = task_spec(task), SCENARIOS[task]()
    opponent = RecordingOpponent(spec, seed=1) if spec.opponents else None
    env = TeamEnv(task, n_envs=2, seed=7, opponent=opponent)
    raw = ParticleCopies(scenario, n_envs=2)
    rng = np.random.default_rng(0)

    def check(obs, state, raw_obs):
        for i, agent in enumerate(scenario.team):
            np.testing.assert_array_equal(obs[:, i, : spec.obs_dims[i]], raw_obs[agent].astype(np.float32))
        team_obs = np.concatenate([raw_obs[i] for i in scenario.team], -1)
        np.testing.assert_array_equal(state, team_obs.astype(np.float32))

    for episode in range(2):
        obs, state = env.reset()
        check(obs, state, raw.reset([7, 8] if episode == 0 else [None, None]))
        for _ in range(25):
            actions = random_actions(rng, env, -1.3, 1.3)  # out-of-range values are clipped
            obs, state, reward, terminated, truncated = env.step(actions)
            joint = np.zeros((2, scenario.bodies.n_agents, 2))
            joint[:, list(scenario.team)] = np.clip(actions, -1, 1)
            if opponent is not None:
                joint[:, list(scenario.opponents)] = np.clip(opponent.history[-1], -1, 1).astype(np.float32)
            raw_obs, raw_rewards = raw.step(joint)
            check(obs, state, raw_obs)
            np.testing.assert_array_equal(reward, raw_rewards[:, list(scenario.team)].mean(axis=1).astype(np.float32))
            assert not terminated.any()
        assert truncated.all()


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
    """From rest and out of contact, one step gives velocity dt * 5 * (x, y) = 0.5 (x, y) for CN agents."""
    env = TeamEnv("cn", n_envs=1, seed=0)
    obs, _ = env.reset()
    positions = obs[0, :, 2:4]
    assert min(np.linalg.norm(positions[i] - positions[j]) for i in range(3) for j in range(i)) > 0.4
    actions = random_actions(np.random.default_rng(1), env)
    obs, *_ = env.step(actions)
    np.testing.assert_allclose(obs[:, :, :2], 0.5 * actions, atol=1e-6)  # obs starts with the own velocity


def test_predators_push_with_accel_squared_and_stop_at_their_max_speed():
    """simple_tag's predators: accel 3 applied twice, so v = 0.1 * 9 u from rest, then at most speed 1."""
    env = TeamEnv("pp", n_envs=1, seed=3, opponent=lambda obs: np.zeros((1, 1, 2)))
    obs, _ = env.reset()
    positions = obs[0, :, 2:4]
    assert min(np.linalg.norm(positions[i] - positions[j]) for i in range(3) for j in range(i)) > 0.2
    actions = np.array([[[0.5, 0.0], [0.0, -0.5], [1.0, 1.0]]], dtype=np.float32)
    obs, *_ = env.step(actions)
    np.testing.assert_allclose(obs[0, :2, :2], [[0.45, 0.0], [0.0, -0.45]], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(obs[0, 2, :2]), 1.0, atol=1e-6)


@pytest.mark.parametrize("task", ["cn", "halfcheetah"])
def test_out_of_range_actions_are_clipped_to_the_unit_box(task):
    rng = np.random.default_rng(0)
    first, second = TeamEnv(task, seed=0), TeamEnv(task, seed=0)
    first.reset(), second.reset()
    actions = 3.0 * random_actions(rng, first)
    for a, b in zip(first.step(actions), second.step(np.clip(actions, -1, 1)), strict=True):
        np.testing.assert_array_equal(a, b)


def test_predators_share_their_reward_and_cn_agents_differ_by_their_collisions_only():
    """What makes the team reward (the mean) CFCQL's evaluated return in all three MPE tasks."""
    rng = np.random.default_rng(0)
    for task in MPE_TASKS:
        scenario = SCENARIOS[task]()
        copies = ParticleCopies(scenario, n_envs=64)
        copies.reset(list(range(64)))
        for _ in range(25):
            _, rewards = copies.step(rng.uniform(-1, 1, size=(64, scenario.bodies.n_agents, 2)))
            team = rewards[:, list(scenario.team)]
            if task == "cn":  # agent i gets coverage - 5 * (its collisions)
                gaps = (team - team[:, :1]) / 5
                np.testing.assert_allclose(gaps, np.round(gaps), atol=1e-9)
            else:
                assert (team == team[:, :1]).all()


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
    assert actions.shape == (4, 1, 2) and actions.dtype == np.float32 and np.abs(actions).max() <= 1
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
    from deep.envs.tasks import OPPONENT_TASKS, opponent_task

    spec, mirrored = task_spec(task), task_spec(benchmark_task)
    assert task in OPPONENT_TASKS and opponent_task(task) == benchmark_task and opponent_task(benchmark_task) == task
    assert (spec.team, spec.opponents) == (mirrored.opponents, mirrored.team)
    assert spec.environment == benchmark_task and spec.state_dim == sum(mirrored.opponent_obs_dims)
    env = TeamEnv(task, n_envs=2, seed=1)
    obs, state = env.reset()
    assert obs.shape == (2, spec.n_agents, spec.obs_dim) and state.shape == (2, spec.state_dim)
    _, _, reward, _, truncated = env.step(np.zeros((2, spec.n_agents, spec.act_dim), dtype=np.float32))
    assert reward.shape == (2,) and not truncated.any()
    with pytest.raises(ValueError, match="has no opponents"):
        opponent_task("cn")


def test_copy_seeds_reset_each_copy_as_its_own_seed_would():
    """reset(copy_seeds=[s_0, s_1, ...]) starts copy e as reset(seed=s_e) starts copy 0; a wrong length is refused."""
    together = TeamEnv("cn", n_envs=3)
    obs, state = together.reset(copy_seeds=[7, 100, 7])
    for e, seed in enumerate([7, 100, 7]):
        alone_obs, alone_state = TeamEnv("cn", n_envs=1).reset(seed=seed)
        np.testing.assert_array_equal(obs[e], alone_obs[0])
        np.testing.assert_array_equal(state[e], alone_state[0])
    assert not np.array_equal(obs[0], obs[1])
    with pytest.raises(ValueError, match=r"^copy_seeds: must be 3 seeds, one per copy, without seed"):
        together.reset(copy_seeds=[1, 2])
    with pytest.raises(ValueError, match=r"^copy_seeds: must be 3 seeds"):
        together.reset(seed=1, copy_seeds=[1, 2, 3])
