"""Behavior selection and dataset collection on tiny runs (CI never builds the real datasets)."""

import shutil
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from deep import collect
from deep.algorithms.evaluation import deterministic_policy, load_actor
from deep.generation.behavior import BehaviorConfig, build_behavior, read_behavior
from deep.generation.matd3 import ReplayBuffer
from deep.storage.datasets import load
from tests.deep.tiny import tiny_matd3_config

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def behavior_dir(tmp_path_factory):
    """A tiny CN behavior build: 400 transitions, two evaluated snapshots."""
    root = tmp_path_factory.mktemp("behavior")
    run = tiny_matd3_config(root / "run", seed=0)
    build_behavior(BehaviorConfig(matd3=run, reference_episodes=4, behavior_dir=str(root / "policies")), progress=False)
    return root / "policies"


def config(tmp_path, behavior_dir, **changes) -> collect.CollectConfig:
    values = dict(
        task="cn",
        quality="random",
        size=100,
        seed=0,
        data_dir=str(tmp_path / "data"),
        behavior_dir=str(behavior_dir),
        n_envs=3,
        progress=False,
    )
    values.update(changes)
    return collect.CollectConfig(**values)


def test_behavior_record_names_reference_returns_and_the_medium_step(behavior_dir):
    record = read_behavior("cn", behavior_dir)
    assert {"random", "expert", "how"} <= set(record["reference_returns"])
    assert record["medium"]["steps"] in (200, 400)
    assert (behavior_dir / "cn" / "expert.pt").is_file() and (behavior_dir / "cn" / "medium.pt").is_file()


def test_rollout_keeps_whole_episodes_and_exact_next_actions():
    """a' is the next step's action in the episode; after the last step, the policy's action at the final state."""

    def policy(obs):  # deterministic in the observation, so a' can be recomputed
        return np.tanh(obs[:, :, :2]).astype(np.float32)

    arrays = collect.rollout("cn", policy, 60, seed=5, n_envs=2)
    assert len(arrays["rewards"]) == 75  # 60 rounded up to 3 whole 25-step episodes
    assert np.array_equal(np.unique(arrays["episode_ids"]), [0, 1, 2])
    for episode in range(3):
        rows = np.flatnonzero(arrays["episode_ids"] == episode)
        np.testing.assert_array_equal(arrays["next_actions"][rows[:-1]], arrays["actions"][rows[1:]])
        np.testing.assert_array_equal(arrays["next_actions"][rows[-1]], policy(arrays["next_obs"][rows[-1:]])[0])
        np.testing.assert_array_equal(arrays["obs"][rows[1:]], arrays["next_obs"][rows[:-1]])
        assert arrays["truncations"][rows[-1]] and not arrays["truncations"][rows[:-1]].any()


def test_same_seed_same_dataset_other_seed_differs(tmp_path, behavior_dir):
    paths = [
        collect.build_dataset(config(tmp_path / name, behavior_dir, seed=seed), "cn", "expert")
        for name, seed in (("a", 0), ("b", 0), ("c", 1))
    ]
    a, b, c = (load(path) for path in paths)
    for field in ("obs", "actions", "next_actions", "rewards", "state"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.actions, c.actions)
    assert a.metadata["behavior_checkpoint_sha256"] == read_behavior("cn", behavior_dir)["expert"]["sha256"]
    assert a.metadata["generator"]["version"] == collect.GENERATOR_VERSION


def test_existing_dataset_is_kept_not_regenerated(tmp_path, behavior_dir, capsys):
    path = collect.build_dataset(config(tmp_path, behavior_dir), "cn", "random")
    before = path.read_bytes()
    collect.build_dataset(config(tmp_path, behavior_dir, seed=0, size=200), "cn", "random")
    assert "exists, kept" in capsys.readouterr().out and path.read_bytes() == before


def test_medium_replay_is_the_behavior_training_buffer_up_to_medium(tmp_path, behavior_dir):
    record = read_behavior("cn", behavior_dir)
    dataset = load(
        collect.build_dataset(config(tmp_path, behavior_dir, quality="medium-replay"), "cn", "medium-replay")
    )
    assert dataset.n_transitions == record["medium"]["steps"]
    assert dataset.n_episodes == record["medium"]["steps"] // 25
    for episode in range(dataset.n_episodes):
        rows = np.flatnonzero(dataset.episode_ids == episode)
        np.testing.assert_array_equal(dataset.obs[rows[1:]], dataset.next_obs[rows[:-1]])
        np.testing.assert_array_equal(dataset.next_actions[rows[:-1]], dataset.actions[rows[1:]])
    assert dataset.metadata["behavior"] == {
        "dataset_seed": 0,
        "behavior_run_seed": 0,
        "policy": "MATD3 behavior training (the config of behavior.json, seed 0) up to step "
        f"{record['medium']['steps']}",
    }


def test_medium_replay_of_another_seed_is_another_run_of_the_recipe_to_the_same_step(tmp_path, behavior_dir):
    record = read_behavior("cn", behavior_dir)
    first, other = (
        load(
            collect.build_dataset(
                config(tmp_path / f"s{seed}", behavior_dir, quality="medium-replay", seed=seed), "cn", "medium-replay"
            )
        )
        for seed in (0, 1)
    )
    assert other.n_transitions == first.n_transitions == record["medium"]["steps"]
    assert not np.array_equal(first.actions, other.actions) and not np.array_equal(first.obs, other.obs)
    assert other.metadata["seed"] == 1 and other.metadata["behavior"]["dataset_seed"] == 1
    assert "seed 1" in other.metadata["behavior"]["policy"]


def test_random_of_another_seed_rolls_out_another_initialization(tmp_path, behavior_dir):
    """Dataset seed 0 (the behavior run's) rolls out the shipped random.pt; seed k MATD3's actor initialized with
    seed k: another network, not only other rollouts."""
    from deep.generation.behavior import initial_actor
    from deep.generation.matd3 import MATD3Config

    record = read_behavior("cn", behavior_dir)
    run = MATD3Config(**record["matd3_config"])
    shipped = torch.load(behavior_dir / "cn" / "random.pt", weights_only=True)
    for key, value in initial_actor(run).state_dict().items():  # the recipe of random.pt itself
        assert torch.equal(shipped[key], value), key
    datasets = {
        seed: load(collect.build_dataset(config(tmp_path / f"s{seed}", behavior_dir, seed=seed), "cn", "random"))
        for seed in (0, 1, 2)
    }
    assert datasets[0].metadata["behavior_checkpoint_sha256"] == record["random"]["sha256"]
    assert datasets[0].metadata["behavior"]["policy"] == "random.pt"
    assert (
        datasets[1].metadata["behavior"]["policy"]
        == "MATD3's actor as initialized with seed 1 (the config of behavior.json)"
    )
    hashes = {seed: dataset.metadata["behavior_checkpoint_sha256"] for seed, dataset in datasets.items()}
    assert len(set(hashes.values())) == 3
    assert hashes[1] == collect.actors_sha256(initial_actor(replace(run, seed=1)))
    # the same observations through seed 0's and seed 1's actors: other actions (the networks differ)
    obs = torch.as_tensor(datasets[0].obs[:50])
    with torch.no_grad():
        actions = [initial_actor(replace(run, seed=seed)).eval()(obs) for seed in (0, 1)]
    assert not torch.allclose(actions[0], actions[1], atol=1e-3)
    rebuilt = load(collect.build_dataset(config(tmp_path / "again", behavior_dir, seed=1), "cn", "random"))
    np.testing.assert_array_equal(rebuilt.actions, datasets[1].actions)  # same seed, same dataset


def test_missing_behavior_and_bad_names_are_explained(tmp_path, behavior_dir):
    with pytest.raises(FileNotFoundError, match=r"python -m deep\.generation\.opponents --task pp"):
        collect.build_dataset(config(tmp_path, behavior_dir), "pp", "expert")
    with pytest.raises(ValueError, match="task: must be one of"):
        collect.main(config(tmp_path, behavior_dir, task="spread"))
    with pytest.raises(ValueError, match="quality: must be one of"):
        collect.main(config(tmp_path, behavior_dir, quality="medium_replay"))


def test_replay_buffer_rows_are_reordered_episode_major():
    """Rows arrive step-major over 2 copies; episodes of 25 steps come out contiguous, in time order."""
    buffer = ReplayBuffer(200, n_agents=3, obs_dim=18, act_dim=2, state_dim=54)
    for t in range(50):
        batch = {name: np.zeros((2, *buffer.data[name].shape[1:]), np.float32) for name in buffer.FIELDS}
        batch["rewards"] = np.array([t, 100 + t], np.float32)  # copy e at global step t
        buffer.add(**batch)
    arrays = collect.replay_buffer_arrays(buffer, "cn", n_envs=2)
    expected = np.concatenate([np.arange(25), 100 + np.arange(25), 25 + np.arange(25), 125 + np.arange(25)])
    np.testing.assert_array_equal(arrays["rewards"], expected)
    np.testing.assert_array_equal(arrays["episode_ids"], np.repeat(np.arange(4), 25))
    assert arrays["truncations"].sum() == 4


def test_all_builds_what_it_can_and_lists_what_it_skipped(tmp_path, behavior_dir, capsys):
    """CN has its random actor here but no expert; pp and world have no opponent, halfcheetah no behavior."""
    partial = behavior_dir.parent / "partial"
    (partial / "cn").mkdir(parents=True, exist_ok=True)
    for name in ("behavior.json", "random.pt"):
        shutil.copy(behavior_dir / "cn" / name, partial / "cn" / name)
    built, skipped = collect.main(config(tmp_path, partial, task="all", quality="random", size=50))
    assert [path.name for path in built] == ["cn_random_seed0.npz"]
    assert [message.split(":")[0] for message in skipped] == ["pp random", "world random", "halfcheetah random"]
    assert all("python -m deep.generation.opponents" in message for message in skipped[:2])
    assert "python -m deep.generation.behavior" in skipped[2]
    assert "skipped world random" in capsys.readouterr().out
    assert load(built[0]).metadata["opponent"] is None
    built, skipped = collect.main(config(tmp_path, partial, quality="all", size=50))
    assert [path.name for path in built] == ["cn_random_seed0.npz", "cn_medium-replay_seed0.npz"]
    assert [message.split(":")[0] for message in skipped] == ["cn medium", "cn expert"]


def test_random_data_is_the_initial_actor_with_exploration_noise(tmp_path, behavior_dir):
    """OMAR's random quality: the randomly initialized MATD3 actor (random.pt) plus N(0, 0.1^2), clipped."""
    dataset = load(collect.build_dataset(config(tmp_path, behavior_dir, size=2000), "cn", "random"))
    record = read_behavior("cn", behavior_dir)
    actor = deterministic_policy(load_actor(behavior_dir / "cn" / "random.pt", "cn", record["matd3_config"]["hidden"]))
    residual = dataset.actions - actor(dataset.obs)
    inside = np.abs(dataset.actions) < 1.0
    assert abs(residual[inside].mean()) < 0.01 and 0.095 < residual[inside].std() < 0.105
    assert dataset.metadata["behavior_checkpoint_sha256"] == record["random"]["sha256"]


def test_cached_dataset_of_another_generator_version_is_not_kept(tmp_path, behavior_dir, monkeypatch):
    collect.build_dataset(config(tmp_path, behavior_dir), "cn", "random")
    monkeypatch.setattr(collect, "GENERATOR_VERSION", collect.GENERATOR_VERSION + 1)
    with pytest.raises(ValueError, match=r"built with another generator version.*--overwrite"):
        collect.build_dataset(config(tmp_path, behavior_dir), "cn", "random")


def test_progress_bar_ends_exactly_at_its_total(monkeypatch):
    """3 episodes on 2 copies: the second round's extra copy is dropped, and not counted either."""
    bars = []

    class Recorder:
        def __init__(self, total, disable, desc):
            self.total, self.n, self.disable = total, 0, disable
            bars.append(self)

        def update(self, n):
            self.n += n

        def refresh(self):
            pass

        def close(self):
            assert self.n <= self.total

    monkeypatch.setattr(collect, "tqdm", Recorder)
    arrays = collect.rollout("cn", lambda obs: np.zeros((len(obs), 3, 2), np.float32), 60, seed=0, n_envs=2)
    assert len(bars) == 1 and bars[0].n == bars[0].total == len(arrays["rewards"]) == 75


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--task", "spread"], "error: --task: must be one of cn, pp, world, halfcheetah, all, got 'spread'"),
        (["--quality", "medium_replay"], "error: --quality: must be one of"),
        (["--size", "0"], "error: --size: must be an integer >= 1, got 0"),
        (["--n-envs", "0"], "error: --n-envs: must be an integer >= 1, got 0"),
        (["--seed", "-1"], "error: --seed: must be an integer >= 0, got -1"),
        (["--exploration-noise", "nan"], "error: --exploration-noise: must be a number in [0, inf), got nan"),
        (["--profile", "medium"], "error: --profile: must be one of small, full, got 'medium'"),
        (["--quality", "medium-replay"], "error: --size: must be unset for --quality medium-replay"),
        (["--bogus"], "error: Unrecognized options: --bogus"),
        (["--size", "many"], "error: Error parsing --size"),
        (["--task", "cn", "--quality", "expert"], "error: behavior_dir: no behavior policies for 'cn'"),
        (["--task", "pp", "--quality", "random"], "error: behavior_dir: no pretrained opponent for 'pp'"),
        (["--data-dir", "{tmp}/file.txt"], "error: data_dir: {tmp}/file.txt exists and is not a directory"),
        (
            ["--data-dir", "{tmp}/cached", "--behavior-dir", "{behavior}"],
            "error: {tmp}/cached/cn_random_seed0.npz: unreadable cached dataset",
        ),
        (
            ["--data-dir", "{tmp}/empty", "--behavior-dir", "{behavior}"],
            "error: {tmp}/empty/cn_random_seed0.npz: unreadable cached dataset",
        ),
    ],
)
def test_cli_user_error_is_one_line_with_exit_status_2(tmp_path, behavior_dir, capsys, argv, message):
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "cached").mkdir()
    (tmp_path / "cached" / "cn_random_seed0.npz").write_bytes(b"not a dataset")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "cn_random_seed0.npz").touch()
    defaults = ["--task", "cn", "--quality", "random", "--size", "25", "--no-progress"]
    defaults += ["--data-dir", str(tmp_path / "data"), "--behavior-dir", str(tmp_path / "nowhere")]
    assert collect.cli(defaults + [arg.format(tmp=tmp_path, behavior=behavior_dir) for arg in argv]) == 2
    captured = capsys.readouterr()
    assert len(captured.err.splitlines()) == 1 and captured.err.startswith(message.format(tmp=tmp_path)), captured.err
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())


INF, NAN = float("inf"), float("nan")
# (field, bad value, the message after "--<flag>: must be ")
BAD_COLLECT_SETTINGS = [
    ("task", "spread", "one of cn, pp, world, halfcheetah, all, got 'spread'"),
    ("task", None, "one of cn, pp, world, halfcheetah, all, got None"),
    ("quality", "medium_replay", "one of random, medium-replay, medium, expert, all, got 'medium_replay'"),
    ("quality", ["random"], "one of random, medium-replay, medium, expert, all, got ['random']"),
    ("size", 0, "an integer >= 1, got 0"),
    ("size", -100, "an integer >= 1, got -100"),
    ("size", 2.5, "an integer >= 1, got 2.5"),
    ("size", 100.0, "an integer >= 1, got 100.0"),
    ("size", True, "an integer >= 1, got True"),
    ("size", np.int64(100), "an integer >= 1, got np.int64(100)"),
    ("profile", "medium", "one of small, full, got 'medium'"),
    ("seed", -1, "an integer >= 0, got -1"),
    ("seed", 1.5, "an integer >= 0, got 1.5"),
    ("seed", "0", "an integer >= 0, got '0'"),
    ("seed", False, "an integer >= 0, got False"),
    ("data_dir", "", "a non-empty path, got ''"),
    ("data_dir", Path("data"), "a non-empty path, got PosixPath('data')"),
    ("behavior_dir", "", "a non-empty path, got ''"),
    ("behavior_dir", None, "a non-empty path, got None"),
    ("exploration_noise", -0.1, "a number in [0, inf), got -0.1"),
    ("exploration_noise", NAN, "a number in [0, inf), got nan"),
    ("exploration_noise", INF, "a number in [0, inf), got inf"),
    ("exploration_noise", "0.1", "a number in [0, inf), got '0.1'"),
    ("exploration_noise", True, "a number in [0, inf), got True"),
    ("exploration_noise", np.float64(0.1), "a number in [0, inf), got np.float64(0.1)"),
    ("n_envs", 0, "an integer >= 1, got 0"),
    ("n_envs", 2.5, "an integer >= 1, got 2.5"),
    ("n_envs", True, "an integer >= 1, got True"),
    ("overwrite", 1, "true or false, got 1"),
    ("overwrite", "yes", "true or false, got 'yes'"),
    ("progress", 0, "true or false, got 0"),
    ("progress", np.True_, "true or false, got np.True_"),
]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    BAD_COLLECT_SETTINGS,
    ids=[f"{name}={value!r}" for name, value, _ in BAD_COLLECT_SETTINGS],
)
def test_a_bad_collect_setting_is_named_with_its_value_and_range_before_anything_is_written(
    tmp_path, name, value, message
):
    with pytest.raises(ValueError) as error:
        collect.main(replace(config(tmp_path, tmp_path / "nowhere"), **{name: value}))
    assert str(error.value) == f"--{name.replace('_', '-')}: must be {message}"
    assert not (tmp_path / "data").exists()


def test_every_collect_setting_has_bad_values_checked():
    assert {field.name for field in fields(collect.CollectConfig)} == {name for name, _, _ in BAD_COLLECT_SETTINGS}


def test_size_is_refused_for_medium_replay_whose_size_is_the_buffer_s(tmp_path):
    with pytest.raises(ValueError) as error:
        collect.main(config(tmp_path, tmp_path / "nowhere", quality="medium-replay", size=1000))
    assert str(error.value) == (
        "--size: must be unset for --quality medium-replay (its size is what the behavior run stored), got 1000"
    )
