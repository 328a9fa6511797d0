"""MATD3: a short CPU run learns nothing broken, resumes to the same result, and is deterministic."""

import json

import numpy as np
import pytest
import torch

from deep.generation.matd3 import ReplayBuffer, train
from tests.deep.tiny import tiny_matd3_config

torch.set_num_threads(1)


def parameters(agent) -> list[torch.Tensor]:
    return [p.detach().clone() for p in agent.state_dict()["actors"].values()] + [
        p.detach().clone() for p in agent.state_dict()["critics"].values()
    ]


def test_short_run_writes_checkpoint_actor_and_eval_log(tmp_path):
    result = train(tiny_matd3_config(tmp_path), progress=False)
    assert result["steps"] == 400
    assert (tmp_path / "checkpoint.pt").is_file() and (tmp_path / "actor.pt").is_file()
    rows = [json.loads(line) for line in (tmp_path / "eval.jsonl").read_text().splitlines()]
    assert [row["steps"] for row in rows] == [200, 400]
    assert all(np.isfinite(row["return_mean"]) for row in rows)
    assert result["agent"].updates > 0
    assert not list(tmp_path.glob("*.tmp"))
    assert sorted(p.name for p in (tmp_path / "snapshots").iterdir()) == ["actor_000000200.pt", "actor_000000400.pt"]


def test_resume_continues_to_the_same_result(tmp_path):
    """A run stopped at 200 transitions and resumed equals an uninterrupted 400-transition run (CPU)."""
    whole = train(tiny_matd3_config(tmp_path / "whole"), progress=False)
    train(tiny_matd3_config(tmp_path / "split", total_steps=200), progress=False)
    resumed = train(tiny_matd3_config(tmp_path / "split", resume=True), progress=False)
    for a, b in zip(parameters(whole["agent"]), parameters(resumed["agent"]), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert whole["log"][-1]["return_mean"] == resumed["log"][-1]["return_mean"]


def test_resume_drops_evaluations_written_after_the_checkpoint(tmp_path):
    """A run killed after an evaluation but before its checkpoint leaves no duplicate line once resumed."""
    train(tiny_matd3_config(tmp_path, total_steps=200), progress=False)
    with open(tmp_path / "eval.jsonl", "a") as handle:
        handle.write(json.dumps({"steps": 300, "return_mean": 0.0}) + "\n")
    train(tiny_matd3_config(tmp_path, resume=True), progress=False)
    rows = [json.loads(line) for line in (tmp_path / "eval.jsonl").read_text().splitlines()]
    assert [row["steps"] for row in rows] == [200, 400]


def test_same_seed_same_networks_other_seed_differs(tmp_path):
    first = train(tiny_matd3_config(tmp_path / "a", total_steps=200), progress=False)
    second = train(tiny_matd3_config(tmp_path / "b", total_steps=200), progress=False)
    other = train(tiny_matd3_config(tmp_path / "c", total_steps=200, seed=4), progress=False)
    for a, b in zip(parameters(first["agent"]), parameters(second["agent"]), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert any(
        not torch.equal(a, c) for a, c in zip(parameters(first["agent"]), parameters(other["agent"]), strict=True)
    )


def test_resume_refuses_a_missing_checkpoint_or_another_config(tmp_path):
    with pytest.raises(FileNotFoundError, match="resume: no checkpoint"):
        train(tiny_matd3_config(tmp_path / "none", resume=True), progress=False)
    train(tiny_matd3_config(tmp_path / "run", total_steps=200), progress=False)
    with pytest.raises(ValueError, match=r"resume: the checkpoint .* another config: gamma .* \(this run: 0.5\)$"):
        train(tiny_matd3_config(tmp_path / "run", resume=True, gamma=0.5), progress=False)


def test_replay_buffer_is_fifo_and_round_trips():
    buffer = ReplayBuffer(5, n_agents=2, obs_dim=3, act_dim=1, state_dim=4)
    for start in range(0, 7, 1):
        buffer.add(
            obs=np.full((1, 2, 3), start),
            actions=np.zeros((1, 2, 1)),
            rewards=np.array([start]),
            next_obs=np.zeros((1, 2, 3)),
            terminals=np.zeros(1),
            state=np.zeros((1, 4)),
            next_state=np.zeros((1, 4)),
        )
    assert buffer.size == 5 and sorted(buffer.data["rewards"].tolist()) == [2, 3, 4, 5, 6]
    copy = ReplayBuffer(5, 2, 3, 1, 4)
    copy.load_state_dict(buffer.state_dict())
    assert copy.cursor == buffer.cursor and np.array_equal(copy.data["obs"], buffer.data["obs"])


def test_training_against_a_fixed_opponent_actor(tmp_path):
    """The prey of pp trains against the predators' saved actor (the other side's task: pp)."""
    train(tiny_matd3_config(tmp_path / "predators", task="pp", total_steps=200), progress=False)
    prey = train(
        tiny_matd3_config(
            tmp_path / "prey",
            task="pp-prey",
            total_steps=200,
            opponent_actor=str(tmp_path / "predators" / "actor.pt"),
            opponent_hidden=16,
        ),
        progress=False,
    )
    assert prey["steps"] == 200 and np.isfinite(prey["log"][-1]["return_mean"])
    with pytest.raises(FileNotFoundError, match="no actor weights"):
        train(
            tiny_matd3_config(tmp_path / "x", task="pp-prey", opponent_actor=str(tmp_path / "none.pt")), progress=False
        )


def test_resume_reads_a_checkpoint_written_before_a_config_field_existed(tmp_path):
    """A field added to MATD3Config later takes its default when the checkpoint does not have it."""
    train(tiny_matd3_config(tmp_path, total_steps=200), progress=False)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    del state["config"]["opponent_hidden"]
    torch.save(state, tmp_path / "checkpoint.pt")
    assert train(tiny_matd3_config(tmp_path, resume=True), progress=False)["steps"] == 400
