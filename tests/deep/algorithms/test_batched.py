"""R runs as one program (deep/algorithms/batched.py): equal to R separate runs to float32 rounding, resumable,
for the value family and the TD3-style methods; compiled equal to eager."""

from __future__ import annotations

import pytest
import torch

from deep.algorithms.batched import BatchedRuns
from deep.algorithms.methods import METHODS
from deep.algorithms.offline import LearnerSettings, OfflineLearner, default_hyperparameters
from tests.deep.algorithms.host_sync import trap_host_synchronization
from tests.deep.algorithms.tiny_methods import tiny_settings

torch.set_num_threads(1)
MODULES = ("actors", "critics", "target_actors", "target_critics")
RUNS = 3


def settings(algo: str, **changes) -> LearnerSettings:
    values = default_hyperparameters("cn", "random", algo)
    values.pop("updates")
    return LearnerSettings(algo=algo, **(values | {"hidden": 16, "batch_size": 32, "n_critics": 4} | changes))


def learner(algo: str, seed: int, **changes):
    torch.manual_seed(seed)
    if algo in ("omar", "matd3-bc"):  # the TD3-style methods: each agent its own minibatch of 32
        return METHODS[algo].learner(tiny_settings(algo, batch_size=32, **changes), 3, 6, [2, 2, 2], 18, "cpu")
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


def sample(data: dict[str, torch.Tensor], generator: torch.Generator, rows: int = 32) -> dict[str, torch.Tensor]:
    rows = torch.randint(DATA_SIZE, (rows,), generator=generator)
    return {key: value.index_select(0, rows) for key, value in data.items()}


def generators() -> list[torch.Generator]:
    return [torch.Generator().manual_seed(100 + r) for r in range(RUNS)]


def train_separately(algo: str, updates: int, **changes) -> tuple[list[OfflineLearner], list[list[dict]]]:
    data, runs, logs = dataset(), [learner(algo, r, **changes) for r in range(RUNS)], []
    for run, generator in zip(runs, generators(), strict=True):
        logs.append([run.update(sample(data, generator, run.batch_rows), generator) for _ in range(updates)])
    return runs, logs


def train_batched(batched: BatchedRuns, updates: int, streams: list[torch.Generator]) -> list[dict]:
    data, rows = dataset(), batched.template.batch_rows
    return [batched.update([sample(data, g, rows) for g in streams], streams) for _ in range(updates)]


def states(runs: list[OfflineLearner]) -> list[dict[str, torch.Tensor]]:
    return [{f"{m}.{k}": v for m in MODULES for k, v in getattr(run, m).state_dict().items()} for run in runs]


BATCHABLE = ["spacql", "cfcql", "macql", "icql-qs", "omar", "matd3-bc"]


@pytest.fixture
def float64():
    """Learners, data and noise in float64 for the test's duration.

    In float32 the batched and the separate kernels round differently, and Adam turns a rounding
    difference in a near-zero gradient into a visible parameter difference (MA-TD3+BC: 3e-5 after 12
    updates on this machine, under 1e-5 on an earlier one), so a float32 tolerance either fails on some
    CPUs or is too loose to catch a real error; in float64 the same runs agree to ~1e-14.
    """
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


# OMAR's search takes the argmax of Q_i1 over its samples: a tiny critic (hidden 8) can be exactly flat
# in the action where all its second-layer units are dead, and between tied samples the two programs'
# last-bit differences pick different ones (a valid argmax each). Hidden 32 has no such flat regions here.
WIDE_ENOUGH = {"omar": {"hidden": 32}}


@pytest.mark.parametrize("algo", BATCHABLE)
def test_batched_runs_equal_separate_runs_to_rounding(algo, float64):
    """12 updates of 3 runs as one program = 3 separate runs (each its own seed, minibatches and noise), to 1e-9
    in float64."""
    changes = WIDE_ENOUGH.get(algo, {})
    separate, separate_logs = train_separately(algo, 12, **changes)
    batched = BatchedRuns([learner(algo, r, **changes) for r in range(RUNS)])
    assert batched.params["actors.net.layers.0.weight"].dtype == torch.float64
    logs = train_batched(batched, 12, generators())
    for mine, theirs in zip(states(batched.to_learners()), states(separate), strict=True):
        assert mine.keys() == theirs.keys()
        for key in mine:
            torch.testing.assert_close(mine[key], theirs[key], rtol=1e-9, atol=1e-9, msg=key)
    for step, row in enumerate(logs):  # every run's metrics are its own
        for r in range(RUNS):
            for key, value in separate_logs[r][step].items():
                torch.testing.assert_close(row[key][r], value, rtol=1e-9, atol=1e-9, msg=f"{key} {step} {r}")
    assert all(run.updates == 12 for run in batched.learners)


def test_runs_differ_from_each_other():
    """The stacked runs are not copies: different seeds give different parameters after the same updates."""
    batched = BatchedRuns([learner("spacql", r) for r in range(RUNS)])
    train_batched(batched, 3, generators())
    weights = batched.params["critics.net.layers.0.weight"]
    assert not torch.equal(weights[0], weights[1]) and not torch.equal(weights[1], weights[2])


@pytest.mark.parametrize("algo", ["spacql", "omar"])
def test_runs_written_back_and_restacked_continue_bit_for_bit(algo):
    """to_learners -> each run's state_dict -> fresh learners -> BatchedRuns continues as the uninterrupted one."""
    whole = BatchedRuns([learner(algo, r) for r in range(RUNS)])
    streams = generators()
    train_batched(whole, 7, streams)
    checkpoints = [run.state_dict() for run in whole.to_learners()]
    stream_states = [generator.get_state() for generator in streams]
    train_batched(whole, 5, streams)

    resumed_runs = []
    for r, checkpoint in enumerate(checkpoints):
        run = learner(algo, 50 + r)  # other initial weights: the checkpoint must replace them all
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
    with pytest.raises(ValueError, match=r"^learners: the batched runs must share their settings"):
        BatchedRuns([learner("cfcql", 0), learner("macql", 1)])


def test_iql_is_refused():
    """IQL's update order (value, actor, critic) is not the batched skeleton's: a clear error, not a wrong run."""
    torch.manual_seed(0)
    run = METHODS["iql"].learner(tiny_settings("iql"), 3, 6, [2, 2, 2], 18, "cpu")
    with pytest.raises(ValueError, match=r"^learners: batched runs are built for .*not IQLLearner"):
        BatchedRuns([run, run])


@pytest.mark.parametrize("algo", ["cfcql", "matd3-bc"])
def test_compiled_batched_update_equals_eager(algo):
    """torch.compile of the vmapped losses and gradients gives eager's gradients (normwise relative error
    1e-5: each element within 1e-5 of the largest gradient entry) and metrics (1e-5) at the same parameters,
    and over 6 updates the same metrics and running statistics.

    The parameters themselves are compared after one update only: Adam divides each element's step by its
    gradient's magnitude, so a rounding-level difference in a near-zero gradient element moves that element
    by up to lr (here 0.01) in a later update (seen: 8e-5 after 4 updates with all metrics equal to 1e-6).
    """
    eager = BatchedRuns([learner(algo, r) for r in range(2)])
    compiled = BatchedRuns([learner(algo, r) for r in range(2)])
    compiled.compile()
    streams = generators()[:2]
    rows = eager.template.batch_rows
    prepared = [eager.template.prepare(sample(dataset(), g, rows), g) for g in streams]
    data = {key: torch.stack([d[key] for d, _ in prepared]) for key in prepared[0][0]}
    noise = {key: torch.stack([n[key] for _, n in prepared]) for key in prepared[0][1]}
    for kind in ("critic", "actor"):
        names = eager.critic_names if kind == "critic" else eager.actor_names
        trained = {name: eager.params[name] for name in names}
        fixed = {name: value for name, value in eager.params.items() if name not in trained}
        results = [
            getattr(runs, f"{kind}_gradients")(
                trained, fixed, {k: v.clone() for k, v in eager.buffers.items()}, data, noise
            )
            for runs in (eager, compiled)
        ]
        (eager_grads, (eager_loss, eager_metrics)), (compiled_grads, (compiled_loss, compiled_metrics)) = results
        torch.testing.assert_close(compiled_loss, eager_loss, rtol=1e-5, atol=1e-5)
        scale = max(grad.abs().max() for grad in eager_grads.values())  # normwise: sums cancel (TD3+BC's lambda)
        for name in names:
            error = (compiled_grads[name] - eager_grads[name]).abs().max()
            assert error <= 1e-5 * (1.0 + scale), (kind, name, float(error), float(scale))
        for key in eager_metrics:
            torch.testing.assert_close(compiled_metrics[key], eager_metrics[key], rtol=1e-5, atol=1e-5, msg=key)

    initial_buffers = {name: value.clone() for name, value in eager.buffers.items()}
    eager_logs = train_batched(eager, 1, generators()[:2])
    compiled_logs = train_batched(compiled, 1, generators()[:2])
    for name in eager.params:
        torch.testing.assert_close(compiled.params[name], eager.params[name], rtol=1e-5, atol=1e-5, msg=name)
    eager_logs += train_batched(eager, 5, generators()[:2])
    compiled_logs += train_batched(compiled, 5, generators()[:2])
    for name, value in eager.buffers.items():
        assert not torch.equal(value, initial_buffers[name]), name  # the statistics moved
        torch.testing.assert_close(compiled.buffers[name], value, rtol=1e-5, atol=1e-5, msg=name)
    for mine, theirs in zip(compiled_logs, eager_logs, strict=True):
        assert mine.keys() == theirs.keys()
        for key in mine:
            torch.testing.assert_close(mine[key], theirs[key], rtol=1e-4, atol=1e-5, msg=key)


@pytest.mark.parametrize("algo", ["spacql", "omar"])
def test_batched_update_never_synchronizes_with_the_host(algo, monkeypatch):
    """No .item(), .tolist(), bool(), float() or int() of a tensor from deep/ code in 6 batched updates
    (the actor steps and a round of targets included), nor in the preparation of the runs' minibatches."""
    batched = BatchedRuns([learner(algo, r) for r in range(RUNS)])
    data, streams = dataset(), generators()
    calls = trap_host_synchronization(monkeypatch)
    for _ in range(6):
        batched.update([sample(data, g, batched.template.batch_rows) for g in streams], streams)
    assert calls == []
