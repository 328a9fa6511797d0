"""R runs as one program (deep/algorithms/batched.py): equal to R separate runs to float32 rounding, resumable."""

from __future__ import annotations

import pytest
import torch

from deep.algorithms.batched import BatchedRuns
from deep.algorithms.offline import LearnerSettings, OfflineLearner, default_hyperparameters

torch.set_num_threads(1)
MODULES = ("actors", "critics", "target_actors", "target_critics")
RUNS = 3


def settings(algo: str, **changes) -> LearnerSettings:
    values = default_hyperparameters("cn", "random", algo)
    values.pop("updates")
    return LearnerSettings(algo=algo, **(values | {"hidden": 16, "batch_size": 32, "n_critics": 4} | changes))


def learner(algo: str, seed: int, **changes) -> OfflineLearner:
    torch.manual_seed(seed)
    return OfflineLearner(settings(algo, **changes), 3, 6, [2, 2, 2], 18, "cpu")


DATA_SIZE = 400


def dataset(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)

    def uniform(*shape):
        return torch.rand(shape, generator=generator) * 2 - 1

    return {
        "obs": uniform(DATA_SIZE, 3, 6),
        "actions": uniform(DATA_SIZE, 3, 2),
        "rewards": uniform(DATA_SIZE),
        "next_obs": uniform(DATA_SIZE, 3, 6),
        "next_actions": uniform(DATA_SIZE, 3, 2),
        "terminals": (torch.rand(DATA_SIZE, generator=generator) < 0.1).float(),
        "state": uniform(DATA_SIZE, 18),
        "next_state": uniform(DATA_SIZE, 18),
    }


def sample(data: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
    rows = torch.randint(DATA_SIZE, (32,), generator=generator)
    return {key: value.index_select(0, rows) for key, value in data.items()}


def generators() -> list[torch.Generator]:
    return [torch.Generator().manual_seed(100 + r) for r in range(RUNS)]


def train_separately(algo: str, updates: int) -> tuple[list[OfflineLearner], list[list[dict]]]:
    data, runs, logs = dataset(), [learner(algo, r) for r in range(RUNS)], []
    for run, generator in zip(runs, generators(), strict=True):
        logs.append([run.update(sample(data, generator), generator) for _ in range(updates)])
    return runs, logs


def train_batched(batched: BatchedRuns, updates: int, streams: list[torch.Generator]) -> list[dict]:
    data = dataset()
    return [batched.update([sample(data, generator) for generator in streams], streams) for _ in range(updates)]


def states(runs: list[OfflineLearner]) -> list[dict[str, torch.Tensor]]:
    return [{f"{m}.{k}": v for m in MODULES for k, v in getattr(run, m).state_dict().items()} for run in runs]


@pytest.mark.parametrize("algo", ["spacql", "cfcql", "macql", "icql-qs"])
def test_batched_runs_equal_separate_runs_to_float32_rounding(algo):
    """12 updates of 3 runs as one program = 3 separate runs (each its own seed, minibatches and noise), to 1e-5."""
    separate, separate_logs = train_separately(algo, 12)
    batched = BatchedRuns([learner(algo, r) for r in range(RUNS)])
    logs = train_batched(batched, 12, generators())
    for mine, theirs in zip(states(batched.to_learners()), states(separate), strict=True):
        assert mine.keys() == theirs.keys()
        for key in mine:
            torch.testing.assert_close(mine[key], theirs[key], rtol=1e-5, atol=1e-5, msg=key)
    for step, row in enumerate(logs):  # every run's metrics are its own
        for r in range(RUNS):
            for key, value in separate_logs[r][step].items():
                torch.testing.assert_close(row[key][r], value, rtol=1e-4, atol=1e-5, msg=f"{key} {step} {r}")
    assert all(run.updates == 12 for run in batched.learners)


def test_runs_differ_from_each_other():
    """The stacked runs are not copies: different seeds give different parameters after the same updates."""
    batched = BatchedRuns([learner("spacql", r) for r in range(RUNS)])
    train_batched(batched, 3, generators())
    weights = batched.params["critics.net.layers.0.weight"]
    assert not torch.equal(weights[0], weights[1]) and not torch.equal(weights[1], weights[2])


def test_runs_written_back_and_restacked_continue_bit_for_bit():
    """to_learners -> each run's state_dict -> fresh learners -> BatchedRuns continues as the uninterrupted one."""
    whole = BatchedRuns([learner("spacql", r) for r in range(RUNS)])
    streams = generators()
    train_batched(whole, 7, streams)
    checkpoints = [run.state_dict() for run in whole.to_learners()]
    stream_states = [generator.get_state() for generator in streams]
    train_batched(whole, 5, streams)

    resumed_runs = []
    for r, checkpoint in enumerate(checkpoints):
        run = learner("spacql", 50 + r)  # other initial weights: the checkpoint must replace them all
        run.load_state_dict(checkpoint)
        resumed_runs.append(run)
    resumed = BatchedRuns(resumed_runs)
    restored = generators()
    for generator, state in zip(restored, stream_states, strict=True):
        generator.set_state(state)
    train_batched(resumed, 5, restored)
    for mine, theirs in zip(states(resumed.to_learners()), states(whole.to_learners()), strict=True):
        for key in mine:
            assert torch.equal(mine[key], theirs[key]), key
    assert resumed.updates == whole.updates == 12


def test_runs_of_other_settings_or_updates_are_refused():
    with pytest.raises(ValueError, match=r"^learners: the batched runs must share their settings"):
        BatchedRuns([learner("spacql", 0), learner("spacql", 1, lr=0.5)])
    late = learner("cfcql", 1)
    late.updates = 3
    with pytest.raises(ValueError, match=r"^learners: the batched runs must be at the same update"):
        BatchedRuns([learner("cfcql", 0), late])
