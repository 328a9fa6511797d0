"""--minibatches original: the original code's fixed cycle of minibatches (deep/algorithms/minibatches.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deep.algorithms.learner import DeviceDataset
from deep.algorithms.methods import METHODS
from deep.algorithms.minibatches import original_cycle, original_cycle_updates, original_minibatches
from deep.train import train
from tests.deep.test_train import cli_args, cli_error, parameters, without_time
from tests.deep.tiny_offline import tiny_train_config, write_tiny_dataset

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("data")
    write_tiny_dataset(directory)
    return directory


def settings_of(algo: str, task: str):
    return METHODS[algo].settings(
        algo=algo, **{key: value for key, value in METHODS[algo].defaults(task, "random").items() if key != "updates"}
    )


@pytest.mark.parametrize(
    ("algo", "task", "updates", "minibatches"),
    [
        ("cfcql", "cn", 50, 50),  # 10 rounds x (1 + ca_ratio - 1 = 4) minibatches
        ("cfcql", "pp", 50, 50),
        ("cfcql", "world", 250, 250),  # steps_per_update 20: 50 rounds
        ("spacql", "cn", 50, 50),  # CFCQL's code base and schedule
        ("omar", "cn", 10, 30),  # 10 rounds x 3 agents
        ("omar", "world", 10, 30),  # no World override in OMAR's main.py; the 3 predators
        ("matd3-bc", "cn", 10, 30),  # OMAR's schedule
    ],
)
def test_cycle_lengths_are_the_original_codes(algo, task, updates, minibatches):
    from deep.envs.tasks import task_spec

    settings = settings_of(algo, task)
    assert original_cycle_updates(settings, task) == updates
    per_update = task_spec(task).n_agents if getattr(settings, "independent_batches", False) else 1
    assert updates * per_update == minibatches


@pytest.mark.parametrize("algo", ["cfcql", "spacql", "omar", "matd3-bc"])
def test_halfcheetah_has_no_cycle(algo):
    """MujocoMulti.seed is a no-op in both original repos: their HalfCheetah evaluations never reset numpy's
    generator, so the stream runs on."""
    assert original_cycle_updates(settings_of(algo, "halfcheetah"), "halfcheetah") is None


def test_without_a_cycle_each_update_draws_its_own_minibatches_without_replacement():
    rows = [original_minibatches(40, 40, 2, seed=1, update=update) for update in range(5)]
    assert all(sorted(row[:40]) == sorted(row[40:]) == list(range(40)) for row in rows)
    assert len({tuple(row) for row in rows}) == 5
    np.testing.assert_array_equal(rows[3], original_minibatches(40, 40, 2, seed=1, update=3))
    assert not np.array_equal(rows[3], original_minibatches(40, 40, 2, seed=2, update=3))


def test_each_minibatch_is_drawn_without_replacement_and_the_seed_fixes_the_cycle():
    cycle = original_cycle(dataset_size=40, cycle_updates=7, batch_size=40, minibatches_per_update=3, seed=2)
    assert cycle.shape == (7, 120) and cycle.dtype == np.int64
    for minibatch in cycle.reshape(21, 40):  # a whole dataset per minibatch: every row exactly once
        assert sorted(minibatch) == list(range(40))
    assert len({tuple(row) for row in cycle.reshape(21, 40)}) == 21  # and in its own order
    np.testing.assert_array_equal(cycle, original_cycle(40, 7, 40, 3, seed=2))
    assert not np.array_equal(cycle, original_cycle(40, 7, 40, 3, seed=3))
    with pytest.raises(ValueError, match="a minibatch of 41 distinct rows needs a dataset of at least that many"):
        original_cycle(40, 7, 41, 1, seed=0)


def recorded_rows(monkeypatch) -> list[tuple]:
    """Patch DeviceDataset so that every minibatch's row indices are recorded (fresh draws as well)."""
    seen = []
    rows = DeviceDataset.rows

    def recording(self, indices):
        seen.append(tuple(indices.tolist()))
        return rows(self, indices)

    monkeypatch.setattr(DeviceDataset, "rows", recording)
    return seen


def test_a_cfcql_run_replays_its_cycle_of_50_minibatches(data_dir, tmp_path, monkeypatch):
    seen = recorded_rows(monkeypatch)
    config = tiny_train_config(data_dir, tmp_path, algo="cfcql", minibatches="original", updates=120, eval_every=50)
    summary = train(config)["summary"]
    assert len(seen) == 120
    assert all(len(set(rows)) == len(rows) == 32 for rows in seen)  # without replacement
    assert len(set(seen[:50])) == 50  # 50 distinct minibatches per cycle ...
    assert seen[50:100] == seen[:50] and seen[100:] == seen[:20]  # ... replayed in order
    assert summary["minibatches"] == {
        "stream": "original",
        "original_code": "cfcql",
        "cycle_updates": 50,
        "minibatches_per_cycle": 50,
        "batch_size": 32,
    }
    assert summary["config"]["minibatches"] == "original"


def test_omar_replays_10_rounds_of_one_minibatch_per_agent(data_dir, tmp_path, monkeypatch):
    seen = recorded_rows(monkeypatch)
    config = tiny_train_config(
        data_dir,
        tmp_path,
        algo="omar",
        minibatches="original",
        updates=20,
        eval_every=10,
        log_every=10,
        n_critics=None,
    )
    summary = train(config)["summary"]
    assert len(seen) == 20 and seen[10:] == seen[:10] and len(set(seen[:10])) == 10
    for rows in seen:  # three agents' minibatches side by side, each of distinct rows
        assert all(len(set(rows[i * 32 : (i + 1) * 32])) == 32 for i in range(3))
    assert summary["minibatches"]["minibatches_per_cycle"] == 30


def test_fresh_draws_do_not_repeat_and_are_the_default(data_dir, tmp_path, monkeypatch):
    seen = recorded_rows(monkeypatch)
    summary = train(tiny_train_config(data_dir, tmp_path, algo="cfcql", updates=100))["summary"]
    assert len(set(seen)) == 100
    assert summary["minibatches"] == {"stream": "fresh"} and summary["config"]["minibatches"] == "fresh"


def test_original_stream_trains_another_run_than_fresh(data_dir, tmp_path):
    fresh = train(tiny_train_config(data_dir, tmp_path / "fresh", algo="cfcql", updates=100))
    original = train(
        tiny_train_config(data_dir, tmp_path / "original", algo="cfcql", updates=100, minibatches="original")
    )
    assert without_time(fresh["log"]) != without_time(original["log"])


@pytest.mark.parametrize("algo", ["cfcql", "omar"])
def test_resume_continues_the_cycle_bit_for_bit(algo, data_dir, tmp_path):
    """Stopped at update 75 (inside CFCQL's second cycle of 50, OMAR's eighth of 10) and resumed = one 130-update
    run, bit for bit."""
    sizes = {"n_critics": None} if algo == "omar" else {}
    common = dict(algo=algo, minibatches="original", eval_every=5, log_every=5, **sizes)
    whole = train(tiny_train_config(data_dir, tmp_path / "whole", updates=130, **common))
    train(tiny_train_config(data_dir, tmp_path / "split", updates=75, **common))
    resumed = train(tiny_train_config(data_dir, tmp_path / "split", updates=130, resume=True, **common))
    for a, b in zip(parameters(whole["learner"]), parameters(resumed["learner"]), strict=True):
        assert torch.equal(a, b)
    assert without_time(whole["log"]) == without_time(resumed["log"])


def test_resume_refuses_another_stream(data_dir, tmp_path):
    train(tiny_train_config(data_dir, tmp_path, algo="cfcql", updates=50))
    with pytest.raises(ValueError, match="another config: minibatches"):
        train(tiny_train_config(data_dir, tmp_path, algo="cfcql", resume=True, minibatches="original"))


def test_a_bad_stream_is_one_error_line_and_exit_2(data_dir, tmp_path, capsys):
    err = cli_error(capsys, [*cli_args(data_dir, tmp_path / "run"), "--minibatches", "shuffled"])
    assert err == "error: --minibatches: must be one of fresh, original, got 'shuffled'\n"
    assert not (tmp_path / "run").exists()


def test_the_summary_file_records_the_stream(data_dir, tmp_path):
    train(tiny_train_config(data_dir, tmp_path, algo="cfcql", updates=50, minibatches="original"))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["minibatches"]["stream"] == "original" and summary["minibatches"]["cycle_updates"] == 50


def test_a_halfcheetah_run_draws_on_and_resumes_bit_for_bit(tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    write_tiny_dataset(data_dir, task="halfcheetah")
    common = dict(algo="cfcql", task="halfcheetah", minibatches="original", eval_every=10, log_every=10)
    common |= dict(eval_episodes=1)
    seen = recorded_rows(monkeypatch)
    whole = train(tiny_train_config(data_dir, tmp_path / "whole", updates=20, **common))
    assert len(set(seen)) == 20 and all(len(set(rows)) == 32 for rows in seen)
    assert whole["summary"]["minibatches"]["cycle_updates"] is None
    train(tiny_train_config(data_dir, tmp_path / "split", updates=10, **common))
    resumed = train(tiny_train_config(data_dir, tmp_path / "split", updates=20, resume=True, **common))
    assert seen[20:] == seen[:20]  # the split run, resumed at 10, drew what the whole run drew
    for a, b in zip(parameters(whole["learner"]), parameters(resumed["learner"]), strict=True):
        assert torch.equal(a, b)
