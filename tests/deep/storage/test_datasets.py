"""Offline dataset files: schema round trip, atomic writes, load errors, OMAR import, summary CLI."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deep.storage import datasets, omar_files
from deep.storage.datasets import OfflineDataset


def make_dataset(
    episode_lengths=(3, 2),
    terminal_ends=(True, False),
    obs_dims=(4, 3),
    act_dims=(2, 2),
    state_dim=5,
    seed=0,
    reference={"random": 0.0, "expert": 10.0},  # noqa: B006 (never mutated)
) -> OfflineDataset:
    """Random valid dataset: episodes of the given lengths, each ending terminal or truncated."""
    rng = np.random.default_rng(seed)
    n, size = len(obs_dims), sum(episode_lengths)
    episode_ids = np.repeat(np.arange(len(episode_lengths)), episode_lengths).astype(np.int64)
    ends = np.cumsum(episode_lengths) - 1
    terminals = np.zeros(size, bool)
    terminals[ends[list(terminal_ends)]] = True
    truncations = np.zeros(size, bool)
    truncations[ends[~np.array(terminal_ends)]] = True

    def padded(dims):
        values = rng.uniform(-1, 1, (size, n, max(dims))).astype(np.float32)
        for i, d in enumerate(dims):
            values[:, i, d:] = 0.0
        return values

    return OfflineDataset(
        obs=padded(obs_dims),
        actions=padded(act_dims),
        rewards=rng.normal(size=size).astype(np.float32),
        next_obs=padded(obs_dims),
        next_actions=padded(act_dims),
        terminals=terminals,
        truncations=truncations,
        state=rng.normal(size=(size, state_dim)).astype(np.float32),
        next_state=rng.normal(size=(size, state_dim)).astype(np.float32),
        episode_ids=episode_ids,
        metadata={
            "task": "cn",
            "quality": "medium",
            "seed": seed,
            "obs_dims": list(obs_dims),
            "act_dims": list(act_dims),
            "generator": {"name": "test", "version": 1, "config": {"episodes": len(episode_lengths)}},
            "env_versions": {"mpe2": "1.1.1"},
            "behavior_checkpoint_sha256": None,
            "reference_returns": reference,
        },
    )


def arrays_of(dataset: OfflineDataset) -> dict:
    return {name: getattr(dataset, name) for name in datasets.ARRAY_FIELDS}


def assert_same(a: OfflineDataset, b: OfflineDataset):
    for name in datasets.ARRAY_FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)
    assert a.metadata == b.metadata


def forge(path: Path, dataset: OfflineDataset, **replace) -> Path:
    """Write a file like save() does, with some arrays or the metadata replaced."""
    contents = {"metadata": np.array(json.dumps(dataset.metadata)), **arrays_of(dataset), **replace}
    np.savez(path, **contents)
    return path


@st.composite
def random_datasets(draw):
    n_agents = draw(st.integers(1, 3))
    n_episodes = draw(st.integers(1, 4))
    return make_dataset(
        episode_lengths=tuple(draw(st.lists(st.integers(1, 5), min_size=n_episodes, max_size=n_episodes))),
        terminal_ends=tuple(draw(st.lists(st.booleans(), min_size=n_episodes, max_size=n_episodes))),
        obs_dims=tuple(draw(st.lists(st.integers(1, 4), min_size=n_agents, max_size=n_agents))),
        act_dims=tuple(draw(st.lists(st.integers(1, 3), min_size=n_agents, max_size=n_agents))),
        state_dim=draw(st.integers(1, 5)),
        seed=draw(st.integers(0, 2**16)),
        reference=draw(st.sampled_from([None, {"random": -1.5, "expert": 2.0, "how": "test"}])),
    )


@settings(max_examples=25)
@given(dataset=random_datasets())
def test_save_load_round_trip(dataset):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cn_medium_seed0.npz"
        datasets.save(dataset, path)
        assert_same(datasets.load(path), dataset)
    assert dataset.metadata["size"] == dataset.n_transitions
    assert dataset.metadata["schema_version"] == datasets.SCHEMA_VERSION


def test_episode_returns_and_counts():
    dataset = make_dataset(episode_lengths=(3, 2, 1), terminal_ends=(True, False, True))
    expected = [dataset.rewards[:3].sum(), dataset.rewards[3:5].sum(), dataset.rewards[5]]
    np.testing.assert_allclose(dataset.episode_returns(), expected, rtol=1e-6)
    assert (dataset.n_transitions, dataset.n_episodes) == (6, 3)


def test_save_refuses_to_overwrite(tmp_path):
    path = tmp_path / "d.npz"
    datasets.save(make_dataset(seed=1), path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        datasets.save(make_dataset(seed=2), path)
    datasets.save(make_dataset(seed=2), path, overwrite=True)
    assert datasets.load(path).metadata["seed"] == 2


def test_failed_write_leaves_old_file_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "d.npz"
    datasets.save(make_dataset(seed=1), path)
    before = path.read_bytes()

    def fail_midway(file, **arrays):
        file.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", fail_midway)
    with pytest.raises(OSError, match="disk full"):
        datasets.save(make_dataset(seed=2), path, overwrite=True)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["d.npz"]


def test_save_leaves_only_the_dataset_file(tmp_path):
    datasets.save(make_dataset(), tmp_path / "d.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["d.npz"]


def test_missing_file_names_path_and_collect_command(tmp_path):
    path = datasets.dataset_path(tmp_path, "pp", "medium-replay", 3)
    with pytest.raises(FileNotFoundError) as error:
        datasets.load(path)
    assert str(path) in str(error.value)
    assert f"python deep/collect.py --task pp --quality medium-replay --seed 3 --data-dir {tmp_path}" in str(
        error.value
    )


def test_truncated_file_is_reported_corrupted(tmp_path):
    path = tmp_path / "d.npz"
    datasets.save(make_dataset(), path)
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(ValueError, match="corrupted"):
        datasets.load(path)


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        ({"rewards": np.zeros(6, np.float32)}, r"rewards: expected shape \(5,\)"),
        ({"obs": np.zeros((5, 2), np.float32)}, r"obs: expected a non-empty array of shape"),
        ({"next_obs": np.zeros((5, 3, 4), np.float32)}, r"next_obs: expected shape \(5, 2, 4\)"),
        ({"state": np.zeros((5, 5), np.float64)}, "state: expected dtype float32"),
        ({"terminals": np.zeros(5, np.int8)}, "terminals: expected dtype bool"),
    ],
)
def test_wrong_array_is_reported(tmp_path, replace, message):
    path = forge(tmp_path / "d.npz", make_dataset(), **replace)
    with pytest.raises(ValueError, match=message) as error:
        datasets.load(path)
    assert str(path) in str(error.value)


def test_nan_is_reported(tmp_path):
    dataset = make_dataset()
    obs = dataset.obs.copy()
    obs[2, 1, 0] = np.nan
    with pytest.raises(ValueError, match=r"obs: contains NaN or infinity \(first at row 2\)"):
        datasets.load(forge(tmp_path / "d.npz", dataset, obs=obs))


def test_missing_array_is_reported(tmp_path):
    dataset = make_dataset()
    path = tmp_path / "d.npz"
    contents = {"metadata": np.array(json.dumps(dataset.metadata)), **arrays_of(dataset)}
    del contents["next_actions"]
    np.savez(path, **contents)
    with pytest.raises(ValueError, match=r"missing arrays.*next_actions"):
        datasets.load(path)


def test_other_schema_version_names_both_versions(tmp_path):
    dataset = make_dataset()
    metadata = {**dataset.metadata, "schema_version": 99}
    path = forge(tmp_path / "d.npz", dataset, metadata=np.array(json.dumps(metadata)))
    with pytest.raises(ValueError, match=f"schema version 99.*schema version {datasets.SCHEMA_VERSION}"):
        datasets.load(path)


@pytest.mark.parametrize("array", [np.array([{"a": 1}], dtype=object), np.zeros(3)])
def test_pickled_or_foreign_file_is_refused(tmp_path, array):
    np.save(tmp_path / "d.npy", array, allow_pickle=True)
    path = (tmp_path / "d.npy").rename(tmp_path / "d.npz")
    with pytest.raises(ValueError, match="corrupted"):
        datasets.load(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a, m: a.update(episode_ids=np.array([0, 0, 0, 2, 1])), "episode_ids: must be non-negative"),
        (lambda a, m: a["terminals"].__setitem__(1, True), "row 1 lies inside its episode"),
        (lambda a, m: a["truncations"].__setitem__(4, False), "row 4 ends its episode"),
        (lambda a, m: a["terminals"].__setitem__(4, True), "row 4 is both terminal and truncated"),
        (lambda a, m: a.update(obs=a["obs"].astype(np.float64)), "obs: expected dtype float32"),
        (lambda a, m: a.update(rewards=list(a["rewards"])), "rewards: expected a numpy array"),
        (lambda a, m: m.pop("generator"), r"missing keys \['generator'\]"),
        (lambda a, m: m.update(size=7), "size = 7 but the arrays give 5"),
        (lambda a, m: m.update(obs_dims=[4]), "obs_dims must list 2 true sizes"),
        (lambda a, m: m.update(act_dims=[1, 1]), r"act_dims must list 2 true sizes in \[1, 2\] with maximum 2"),
        (lambda a, m: m.update(seed=np.int64(3)), "JSON-serializable"),
        (lambda a, m: m.update(reference_returns={"random": 1.0}), "reference_returns must be None or valid"),
    ],
)
def test_construction_validates(change, message):
    dataset = make_dataset()
    arrays = {name: value.copy() for name, value in arrays_of(dataset).items()}
    metadata = dict(dataset.metadata)
    change(arrays, metadata)
    with pytest.raises(ValueError, match=message):
        OfflineDataset(**arrays, metadata=metadata)


def test_normalized_score():
    reference = {"random": -10.0, "expert": 30.0}
    assert datasets.normalized_score(-10.0, reference) == 0.0
    assert datasets.normalized_score(30.0, reference) == 100.0
    np.testing.assert_allclose(datasets.normalized_score([10.0, 50.0], reference), [50.0, 150.0])
    with pytest.raises(ValueError, match="reference: need a dict"):
        datasets.normalized_score(1.0, None)
    with pytest.raises(ValueError, match="reference: need a dict"):
        datasets.normalized_score(1.0, {"random": 0.0})
    with pytest.raises(ValueError, match="expert and random returns are equal"):
        datasets.normalized_score(1.0, {"random": 5.0, "expert": 5.0})


def write_omar(folder: Path, episode_lengths, obs_dims, act_dim, dones_at=(), states_dim=None, seed=0):
    """Synthetic OMAR files: continuous episodes (next_obs[t] == obs[t+1] inside an episode)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    size = sum(episode_lengths)
    starts = np.r_[0, np.cumsum(episode_lengths)[:-1]]
    dones = np.zeros(size)
    dones[list(dones_at)] = 1.0

    def trajectories(dim):
        current, following = np.empty((size, dim)), np.empty((size, dim))
        for start, length in zip(starts, episode_lengths, strict=True):
            path = rng.normal(size=(length + 1, dim))
            current[start : start + length], following[start : start + length] = path[:-1], path[1:]
        return current, following

    for i, dim in enumerate(obs_dims):
        obs, next_obs = trajectories(dim)
        np.save(folder / f"obs_{i}.npy", obs)
        np.save(folder / f"next_obs_{i}.npy", next_obs)
        np.save(folder / f"acs_{i}.npy", rng.uniform(-1, 1, (size, act_dim)))
        np.save(folder / f"rews_{i}.npy", rng.normal(size=size))
        np.save(folder / f"dones_{i}.npy", dones)
    if states_dim is not None:
        states, next_states = trajectories(states_dim)
        for i in range(len(obs_dims)):
            np.save(folder / f"states_{i}.npy", states)
            np.save(folder / f"next_states_{i}.npy", next_states)


def test_import_omar_mpe_cooperative_navigation(tmp_path):
    folder = tmp_path / "omar" / "simple_spread" / "medium-replay" / "seed_2_data"
    write_omar(folder, [25] * 4, obs_dims=(18, 18, 18), act_dim=2)
    out = tmp_path / "cn_medium-replay_seed2.npz"
    dataset = omar_files.import_omar(tmp_path / "omar", "cn", "medium-replay", 2, out)
    assert_same(datasets.load(out), dataset)

    def load(name):
        return np.load(folder / name)

    assert dataset.obs.shape == (100, 3, 18) and dataset.actions.shape == (100, 3, 2)
    np.testing.assert_array_equal(dataset.obs[:, 1], load("obs_1.npy").astype(np.float32))
    expected_rewards = np.mean([load(f"rews_{i}.npy") for i in range(3)], axis=0)
    np.testing.assert_allclose(dataset.rewards, expected_rewards, rtol=1e-6)
    np.testing.assert_array_equal(dataset.episode_ids, np.arange(100) // 25)
    assert not dataset.terminals.any()
    np.testing.assert_array_equal(np.flatnonzero(dataset.truncations), [24, 49, 74, 99])
    state = np.concatenate([load(f"obs_{i}.npy") for i in range(3)], axis=1).astype(np.float32)
    np.testing.assert_array_equal(dataset.state, state)
    meta = dataset.metadata
    assert meta["obs_dims"] == [18, 18, 18] and meta["act_dims"] == [2, 2, 2] and meta["state_dim"] == 54
    assert meta["reference_returns"]["random"] == 159.6 and meta["reference_returns"]["expert"] == 530.9
    assert meta["next_row_continuity"] == 1.0
    assert "next dataset row" in meta["next_actions_source"]


def test_import_omar_next_actions_follow_episode_order(tmp_path):
    # a done at step 10 of episode 1 splits it: episodes [0, 25), [25, 36), [36, 61), [61, 75)
    folder = tmp_path / "simple_tag" / "expert" / "seed_0_data"
    write_omar(folder, [25, 50], obs_dims=(16, 16, 16, 14), act_dim=2, dones_at=[35])
    dataset = omar_files.import_omar(tmp_path, "pp", "expert", 0, tmp_path / "pp.npz")
    ends = [24, 35, 60, 74]
    np.testing.assert_array_equal(np.flatnonzero(np.diff(dataset.episode_ids)), ends[:-1])
    np.testing.assert_array_equal(np.flatnonzero(dataset.terminals), [35])
    np.testing.assert_array_equal(np.flatnonzero(dataset.truncations), [24, 60, 74])
    for t in range(75):
        expected = dataset.actions[t] if t in ends else dataset.actions[t + 1]
        np.testing.assert_array_equal(dataset.next_actions[t], expected)
    assert dataset.obs.shape == (75, 3, 16)  # the prey (agent 3) is not in the team ...
    assert dataset.state.shape == (75, 3 * 16)  # ... nor in the state (CFCQL's critic input: the team's obs)
    # the synthetic files are continuous inside each stored 25/50-step trajectory only
    assert dataset.metadata["next_row_continuity"] == 1.0


def test_import_omar_world_team_is_the_three_adversaries():
    """simple_world: 3 adversaries (24) and the good agent (22); the team and its state are the adversaries'."""
    folder = Path(tempfile.mkdtemp()) / "simple_world" / "medium" / "seed_0_data"
    write_omar(folder, [25, 25], obs_dims=(24, 24, 24, 22), act_dim=2)
    dataset = omar_files.import_omar(folder.parents[2], "world", "medium", 0, folder.parents[2] / "w.npz")
    assert dataset.obs.shape == (50, 3, 24) and dataset.state.shape == (50, 72)
    np.testing.assert_array_equal(dataset.state[:, 48:], np.load(folder / "obs_2.npy").astype(np.float32))


def test_import_omar_refuses_observations_of_another_task(tmp_path):
    """The original HalfCheetah files (6-dim agent observations, agent_obsk=0) and mpe2-sized files are refused."""
    write_omar(
        tmp_path / "HalfCheetah-v2" / "random" / "seed_0_data", [1000], obs_dims=(6, 6), act_dim=3, states_dim=17
    )
    with pytest.raises(
        ValueError, match=r"obs_0.npy: 6 features per row, but agent 0 of task 'halfcheetah' observes 12"
    ):
        omar_files.import_omar(tmp_path, "halfcheetah", "random", 0, tmp_path / "hc.npz")
    write_omar(tmp_path / "simple_spread" / "random" / "seed_0_data", [25], obs_dims=(18, 18, 18), act_dim=3)
    with pytest.raises(ValueError, match=r"acs_0.npy: 3 action entries per row, but agent 0 of task 'cn' acts with 2"):
        omar_files.import_omar(tmp_path, "cn", "random", 0, tmp_path / "cn.npz")
    assert not (tmp_path / "hc.npz").exists() and not (tmp_path / "cn.npz").exists()


def test_import_omar_halfcheetah_uses_states(tmp_path):
    folder = tmp_path / "HalfCheetah-v2" / "random" / "seed_1_data"
    write_omar(folder, [1000, 1000], obs_dims=(12, 12), act_dim=3, dones_at=[999, 1999], states_dim=17)
    dataset = omar_files.import_omar(tmp_path, "halfcheetah", "random", 1, tmp_path / "hc.npz")
    assert dataset.obs.shape == (2000, 2, 12) and dataset.state.shape == (2000, 17)
    np.testing.assert_array_equal(dataset.next_state, np.load(folder / "next_states_0.npy").astype(np.float32))
    np.testing.assert_array_equal(np.flatnonzero(dataset.terminals), [999, 1999])
    assert not dataset.truncations.any() and dataset.n_episodes == 2
    assert dataset.metadata["reference_returns"]["expert"] == 3338.7


def test_import_omar_errors(tmp_path):
    with pytest.raises(ValueError, match="task: unknown task 'spread'"):
        omar_files.import_omar(tmp_path, "spread", "expert", 0, tmp_path / "x.npz")
    with pytest.raises(ValueError, match=r"quality: unknown quality 'medium_replay'.*medium-replay"):
        omar_files.import_omar(tmp_path, "cn", "medium_replay", 0, tmp_path / "x.npz")
    with pytest.raises(FileNotFoundError, match="simple_world/expert/seed_0_data"):
        omar_files.import_omar(tmp_path, "world", "expert", 0, tmp_path / "x.npz")
    folder = tmp_path / "HalfCheetah-v2" / "expert" / "seed_0_data"
    write_omar(folder, [5], obs_dims=(12, 12), act_dim=3)
    with pytest.raises(FileNotFoundError, match=r"states_0\.npy"):
        omar_files.import_omar(tmp_path, "halfcheetah", "expert", 0, tmp_path / "x.npz")
    np.save(folder / "rews_1.npy", np.zeros(4))
    with pytest.raises(ValueError, match=r"rews_1.npy: expected 1-D rows of 5 transitions"):
        omar_files.import_omar(tmp_path, "halfcheetah", "expert", 0, tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()
    (tmp_path / "x.npz").touch()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        omar_files.import_omar(tmp_path, "halfcheetah", "expert", 0, tmp_path / "x.npz")


def test_summary_command(tmp_path, capsys):
    first = make_dataset(episode_lengths=(3, 2), reference={"random": 0.0, "expert": 10.0})
    datasets.save(first, datasets.dataset_path(tmp_path, "cn", "medium", 0))
    (tmp_path / "sub").mkdir()
    datasets.save(
        make_dataset(episode_lengths=(4,), terminal_ends=(False,), seed=1, reference=None),
        tmp_path / "sub" / "other.npz",
    )
    assert datasets.main(["summary", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:6] == ["file", "task", "quality", "seed", "size", "episodes"]
    returns = first.episode_returns()
    numbers = [f"{returns.mean():.2f}", f"{returns.std():.2f}", f"{10 * returns.mean():.1f}"]
    assert lines[1].split() == ["cn_medium_seed0.npz", "cn", "medium", "0", "5", "2", *numbers]
    assert lines[2].split()[0] == str(Path("sub") / "other.npz") and lines[2].split()[-1] == "-"

    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    assert datasets.main(["summary", str(tmp_path)]) == 1
    broken = [line for line in capsys.readouterr().out.splitlines() if line.startswith("broken.npz")]
    assert len(broken) == 1 and "ERROR" in broken[0] and "corrupted" in broken[0]


@pytest.mark.parametrize("field", ["actions", "next_actions"])
def test_out_of_range_actions_are_refused_naming_file_and_worst_value(tmp_path, field):
    dataset = make_dataset()
    values = getattr(dataset, field).copy()
    values[3, 1, 0], values[1, 0, 1] = -50.0, 7.0
    path = forge(tmp_path / "d.npz", dataset, **{field: values})
    with pytest.raises(ValueError, match=rf"{field}: actions must lie in \[-1, 1\].*worst value -50 at row 3") as error:
        datasets.load(path)
    assert str(path) in str(error.value)
    nearly = getattr(dataset, field).copy()
    nearly[0, 0, 0] = 1.0 + datasets.ACTION_TOLERANCE / 2  # rounding is tolerated
    datasets.load(forge(tmp_path / "ok.npz", dataset, **{field: nearly}))


def test_import_omar_refuses_out_of_range_actions(tmp_path):
    folder = tmp_path / "simple_spread" / "expert" / "seed_0_data"
    write_omar(folder, [25], obs_dims=(18, 18, 18), act_dim=2)
    actions = np.random.default_rng(0).uniform(-1, 1, (25, 2))
    actions[7, 1], actions[3, 0] = 50.0, -20.0
    np.save(folder / "acs_1.npy", actions)
    with pytest.raises(ValueError, match=r"acs_1\.npy: actions must lie in \[-1, 1\].*worst value 50 at row 7"):
        omar_files.import_omar(tmp_path, "cn", "expert", 0, tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()


def test_load_of_a_directory_or_dangling_link_says_so(tmp_path):
    (tmp_path / "cn_random_seed0.npz").mkdir()
    with pytest.raises(IsADirectoryError, match=r"cn_random_seed0\.npz: is a directory, not a dataset file"):
        datasets.load(tmp_path / "cn_random_seed0.npz")
    (tmp_path / "x.npz").symlink_to(tmp_path / "gone.npz")
    with pytest.raises(FileNotFoundError, match=r"x\.npz: dangling symbolic link"):
        datasets.load(tmp_path / "x.npz")


def test_summary_skips_directories_and_reports_dangling_links(tmp_path, capsys):
    datasets.save(make_dataset(), datasets.dataset_path(tmp_path, "cn", "medium", 0))
    (tmp_path / "x.npz").mkdir()
    (tmp_path / "y.npz").symlink_to(tmp_path / "gone.npz")
    assert datasets.main(["summary", str(tmp_path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 4 and out[1].startswith("cn_medium_seed0.npz")
    assert out[2].split(maxsplit=1) == ["x.npz", "skipped: a directory, not a dataset file"]
    assert out[3].startswith("y.npz") and "ERROR" in out[3] and "dangling symbolic link" in out[3]
    (tmp_path / "y.npz").unlink()
    assert datasets.main(["summary", str(tmp_path)]) == 0  # a skipped directory is not an error


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda file: file.write_bytes(file.read_bytes()[:-30]), "truncated"),
        (lambda file: file.write_bytes(file.read_bytes()[:60]), "truncated"),
        (lambda file: file.write_bytes(b""), "not a .npy file"),
        (lambda file: np.save(file, np.array([{"a": 1}] * 25, dtype=object), allow_pickle=True), "pickled"),
        (lambda file: file.write_bytes(b"\x80\x04K\x01."), "not a .npy file"),
        (lambda file: np.save(file, np.array(["a"] * 25)), "expected numbers"),
    ],
    ids=["truncated-data", "truncated-header", "empty", "object-array", "raw-pickle", "strings"],
)
@pytest.mark.parametrize("name", ["obs_0.npy", "acs_2.npy", "rews_1.npy"])
def test_import_omar_unreadable_file_is_named(tmp_path, monkeypatch, damage, message, name):
    folder = tmp_path / "simple_spread" / "expert" / "seed_0_data"
    write_omar(folder, [25], obs_dims=(18, 18, 18), act_dim=2)
    damage(folder / name)
    monkeypatch.setattr("pickle.loads", lambda *a, **k: pytest.fail("unpickled"))
    with pytest.raises(ValueError, match=message) as error:
        omar_files.import_omar(tmp_path, "cn", "expert", 0, tmp_path / "x.npz")
    assert str(folder / name) in str(error.value)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["summary", "{tmp}/missing"], "error: DIR: {tmp}/missing does not exist"),
        (["summary", "{tmp}/file.txt"], "error: DIR: {tmp}/file.txt is not a directory"),
        ([], "error: the following arguments are required: command"),
        (["summarize", "{tmp}"], "error: argument command: invalid choice: 'summarize'"),
        (["summary"], "error: the following arguments are required: DIR"),
    ],
)
def test_cli_user_error_is_one_line_with_exit_status_2(tmp_path, capsys, argv, message):
    (tmp_path / "file.txt").write_text("x")
    assert datasets.main([arg.format(tmp=tmp_path) for arg in argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.splitlines()) == 1 and captured.err.startswith(message.format(tmp=tmp_path))
