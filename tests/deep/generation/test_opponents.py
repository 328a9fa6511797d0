"""The fixed opponents of pp and world: the two-stage training, loading, and their use by behavior and collect."""

import json
import shutil

import numpy as np
import pytest
import torch

from deep import collect
from deep.envs.tasks import TeamEnv, task_spec
from deep.generation.behavior import (
    BehaviorConfig,
    build_behavior,
    medium_replay_config,
    read_behavior,
    with_shipped_opponent,
)
from deep.generation.opponents import OPPONENT_FILE, OpponentConfig, load_opponent, train_opponent
from deep.storage.datasets import load
from deep.storage.files import file_sha256
from tests.deep.tiny import tiny_matd3_config

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def behavior_dir(tmp_path_factory):
    """A tiny pp opponent (both stages 120 transitions) and tiny pp behavior policies trained against it."""
    root = tmp_path_factory.mktemp("opponents")
    policies = root / "policies"
    opponent = OpponentConfig(
        task="pp",
        team_steps=120,
        opponent_steps=120,
        hidden=16,
        n_envs=4,
        eval_episodes=3,
        out_dir=str(root / "runs"),
        behavior_dir=str(policies),
        device="cpu",
    )
    train_opponent(opponent, progress=False)
    run = tiny_matd3_config(root / "behavior-run", task="pp", seed=0)
    build_behavior(BehaviorConfig(matd3=run, reference_episodes=10, behavior_dir=str(policies)), progress=False)
    return policies


def test_opponent_record_names_both_stages_and_the_measurements(behavior_dir):
    record = json.loads((behavior_dir / "pp" / "opponent.json").read_text())
    assert record["opponent_task"] == "pp-prey"
    assert record["stages"]["team"]["opponent_actor"] is None  # stage 1: uniform random prey
    assert record["stages"]["opponent"]["opponent_actor"].endswith("pp-team/actor.pt")
    assert {"vs_uniform_opponent", "vs_trained_opponent", "how"} <= set(record["stage1_team_return"])


def test_loaded_opponent_is_deterministic_with_the_opponents_shapes(behavior_dir):
    spec = task_spec("pp")
    opponent = load_opponent("pp", behavior_dir)
    obs = np.random.default_rng(0).normal(size=(5, spec.n_opponents, spec.opponent_obs_dim)).astype(np.float32)
    actions = opponent(obs)
    assert actions.shape == (5, spec.n_opponents, spec.opponent_act_dim)
    assert np.abs(actions).max() <= 1.0 and np.array_equal(actions, opponent(obs))
    assert load_opponent("cn", behavior_dir) is None


def test_missing_or_altered_opponent_is_explained(tmp_path, behavior_dir):
    with pytest.raises(FileNotFoundError, match=r"python -m deep\.generation\.opponents --task world"):
        load_opponent("world", behavior_dir)
    altered = tmp_path / "pp"
    altered.mkdir()
    (altered / "opponent.json").write_text((behavior_dir / "pp" / "opponent.json").read_text())
    weights = bytearray((behavior_dir / "pp" / OPPONENT_FILE).read_bytes())
    weights[-1] ^= 1
    (altered / OPPONENT_FILE).write_bytes(bytes(weights))
    with pytest.raises(ValueError, match="does not match the sha256"):
        load_opponent("pp", tmp_path)
    with pytest.raises(ValueError, match="no opponents"):
        train_opponent(OpponentConfig(task="cn", out_dir=str(tmp_path / "runs"), behavior_dir=str(tmp_path)))


def test_behavior_of_pp_plays_the_shipped_opponent(tmp_path, behavior_dir):
    record = read_behavior("pp", behavior_dir)
    assert record["matd3_config"]["opponent_actor"] == OPPONENT_FILE
    assert record["opponent"]["sha256"] == json.loads((behavior_dir / "pp" / "opponent.json").read_text())["sha256"]
    run = medium_replay_config(record, tmp_path, behavior_dir)
    assert run.opponent_actor == str(behavior_dir / "pp" / OPPONENT_FILE) and run.opponent_hidden == 16
    with pytest.raises(ValueError, match=r"matd3\.opponent_actor"):
        with_shipped_opponent(tiny_matd3_config(tmp_path, task="pp", opponent_actor="other.pt"), behavior_dir)


def test_datasets_of_pp_are_played_against_the_opponent(tmp_path, behavior_dir):
    """The random dataset equals a rollout of TeamEnv driven by the loaded opponent, and records its hash."""
    values = dict(task="pp", size=50, seed=0, data_dir=str(tmp_path), behavior_dir=str(behavior_dir), n_envs=2)
    path = collect.build_dataset(collect.CollectConfig(**values, progress=False), "pp", "random")
    dataset = load(path)
    opponent_sha = json.loads((behavior_dir / "pp" / "opponent.json").read_text())["sha256"]
    assert dataset.metadata["opponent"] == {"checkpoint": OPPONENT_FILE, "sha256": opponent_sha}
    env = TeamEnv("pp", n_envs=2, seed=0, opponent=load_opponent("pp", behavior_dir))
    obs, _ = env.reset(seed=0)
    for t in range(25):
        np.testing.assert_array_equal(dataset.obs[t], obs[0])
        obs, *_ = env.step(dataset.actions[[t, 25 + t]])
    replay = load(collect.build_dataset(collect.CollectConfig(**values, progress=False), "pp", "medium-replay"))
    assert replay.n_transitions == read_behavior("pp", behavior_dir)["medium"]["steps"]
    assert replay.metadata["opponent"]["sha256"] == opponent_sha


def test_cached_dataset_played_against_another_opponent_is_not_kept(tmp_path, behavior_dir):
    values = dict(task="pp", size=25, seed=0, data_dir=str(tmp_path / "data"), n_envs=1, progress=False)
    collect.build_dataset(collect.CollectConfig(**values, behavior_dir=str(behavior_dir)), "pp", "random")
    other = tmp_path / "other"
    shutil.copytree(behavior_dir, other)
    weights = torch.load(other / "pp" / OPPONENT_FILE, weights_only=True)
    torch.save({name: value + 0.01 for name, value in weights.items()}, other / "pp" / OPPONENT_FILE)
    record = json.loads((other / "pp" / "opponent.json").read_text())
    record["sha256"] = file_sha256(other / "pp" / OPPONENT_FILE)
    (other / "pp" / "opponent.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="built with another opponent"):
        collect.build_dataset(collect.CollectConfig(**values, behavior_dir=str(other)), "pp", "random")
