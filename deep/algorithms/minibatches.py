"""Where each update's minibatch comes from (``deep/train.py --minibatches``): fresh draws or the original stream.

``fresh`` (the default): every update draws its rows anew from the whole dataset (``torch.randint`` on the
run's generator, :meth:`deep.algorithms.learner.DeviceDataset.sample`).

``original``: the stream the original code's runs saw. CFCQL's ``continuous/main.py`` and OMAR's ``main.py``
evaluate every ``eval_interval`` of their steps, and each evaluation re-creates the environment through
``make_parallel_env``, whose ``init_env`` calls ``np.random.seed(seed + 100)``; the replay buffer draws its
minibatches from numpy's global generator (``utils/buffer.py``: ``np.random.choice(np.arange(self.filled_i),
size=N, replace=False)``), and nothing else draws from it between evaluations (the policies, the CQL samples
and the target noise use torch; the evaluation episodes' resets draw the same numbers each time). So every
evaluation period replays the identical sequence of minibatches. Here: a cycle of minibatches drawn once from
the run's seed, each without replacement, replayed in order: update ``u`` takes minibatch ``u mod cycle``, a
function of the seed and the update count alone, so ``--resume`` continues the stream exactly.

HalfCheetah has no cycle: its evaluation builds ``MujocoMulti`` and calls its ``seed``, a no-op in both repos
(``multiagent_mujoco/mujoco_multi.py``: ``def seed(self, args): pass``), so numpy's generator is never reset and
the original stream runs on; here update ``u`` takes fresh minibatches drawn without replacement from the
generator seeded ``(seed, u)``.

Cycle lengths (the original's rounds per evaluation = ``eval_interval / steps_per_update``, one round every
``steps_per_update`` steps):

- CFCQL (thu-rllab/CFCQL ``continuous/main.py``): ``eval_interval`` 1000 and ``steps_per_update`` 100 (argparse
  defaults), 20 on ``simple_world`` (``offline_train``): 10 rounds on CN and PP, 50 on World. A round is one
  critic+actor update and ``ca_ratio - 1 = 4`` critic-only updates, each on its own minibatch: 50 minibatches
  per cycle on CN and PP, 250 on World. Here one update is one critic update, so the cycle is
  ``rounds x policy_delay`` updates.
- OMAR (ling-pan/OMAR ``main.py``): ``eval_interval`` 1000 and ``steps_per_update`` 100 on every MPE task (no
  World override): 10 rounds; a round updates every agent (every predator on PP and World) on its own
  minibatch: 30 minibatches per cycle. Here one update is one round with ``n`` per-agent minibatches, so the
  cycle is ``rounds`` updates of ``n`` minibatches each.

Methods without original code here: the value family besides CFCQL (SPaCQL, ICQL-QS, MACQL and the ablations)
runs in CFCQL's code base in the paper (its settings and schedule, deep/algorithms/offline.py), so it takes
CFCQL's cycle; matd3-bc and iql run OMAR's schedule (rounds of one update per agent) and take OMAR's cycle.

Differences from the original: the indices come from ``numpy.random.default_rng(seed)`` (the original's from
the legacy generator seeded ``seed + 100`` and advanced by the evaluation episodes' resets), so they are other
indices with the same law; the original's CN/PP runs used ``--seed 0`` for all five datasets (CFCQL) and so
the same indices on each, here run ``s`` draws from seed ``s``. The cycle does not follow ``--eval-every``:
it is the original's evaluation period, whatever this run's evaluation cadence.
"""

from __future__ import annotations

import numpy as np
import torch

from deep.algorithms.offline import ALGORITHMS

MINIBATCH_STREAMS = ("fresh", "original")
"""The ``--minibatches`` choices."""

ORIGINAL_ROUNDS_PER_EVALUATION: dict[str, dict[str, int]] = {
    "cfcql": {"cn": 10, "pp": 10, "world": 50},
    "omar": {"cn": 10, "pp": 10, "world": 10},
}
"""The original code (module docstring) -> task -> rounds between two evaluations, i.e. one cycle; a task absent
(HalfCheetah) has no cycle."""


def original_code(algo: str) -> str:
    """Whose main.py's stream a method reproduces: ``cfcql`` for the value family, ``omar`` for the others."""
    return "cfcql" if algo in ALGORITHMS else "omar"


def original_cycle_updates(settings, task: str) -> int | None:
    """Updates per cycle of the original stream: CFCQL's rounds x ``policy_delay``, OMAR's rounds (one per update);
    None where the original stream does not repeat (HalfCheetah)."""
    code = original_code(settings.algo)
    rounds = ORIGINAL_ROUNDS_PER_EVALUATION[code].get(task)
    if rounds is None:
        return None
    return rounds * settings.policy_delay if code == "cfcql" else rounds


def _check_batch(dataset_size: int, batch_size: int) -> None:
    if batch_size > dataset_size:
        raise ValueError(
            f"--minibatches original: a minibatch of {batch_size} distinct rows needs a dataset of at least that "
            f"many transitions, got {dataset_size}"
        )


def original_cycle(
    dataset_size: int, cycle_updates: int, batch_size: int, minibatches_per_update: int, seed: int
) -> np.ndarray:
    """Row indices ``[cycle_updates, minibatches_per_update * batch_size]`` int64: update ``u`` of a cycle takes
    row ``u``, its ``minibatches_per_update`` minibatches side by side (agent-major for per-agent learners), each
    ``batch_size`` distinct rows of ``range(dataset_size)`` (sampling without replacement, as the original's),
    drawn in order from the generator seeded ``seed``."""
    _check_batch(dataset_size, batch_size)
    rng = np.random.default_rng(seed)
    minibatches = [
        rng.choice(dataset_size, batch_size, replace=False) for _ in range(cycle_updates * minibatches_per_update)
    ]
    return np.stack(minibatches).reshape(cycle_updates, minibatches_per_update * batch_size).astype(np.int64)


def original_minibatches(
    dataset_size: int, batch_size: int, minibatches_per_update: int, seed: int, update: int
) -> np.ndarray:
    """The rows of update ``update`` of a stream without a cycle (HalfCheetah), laid out as a row of
    :func:`original_cycle`, from the generator seeded ``(seed, update)``: a function of the update count, so that
    ``--resume`` needs no generator state."""
    _check_batch(dataset_size, batch_size)
    rng = np.random.default_rng([seed, update])
    minibatches = [rng.choice(dataset_size, batch_size, replace=False) for _ in range(minibatches_per_update)]
    return np.concatenate(minibatches).astype(np.int64)


class MinibatchStream:
    """The rows of every update of one run: fresh draws from its generator, or the original stream (a cycle
    replayed, or without a cycle :func:`original_minibatches` of each update)."""

    def __init__(self, data, batch_rows: int, device, description: dict, cycle=None, rows_of_update=None):
        self.data, self.batch_rows, self.device = data, batch_rows, device
        self.cycle = None if cycle is None else torch.as_tensor(cycle, device=device)
        self.rows_of_update = rows_of_update
        self.description = description

    def batch(self, update: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The minibatch of update ``update`` (0-based: the updates done before it)."""
        if self.cycle is not None:
            return self.data.rows(self.cycle[update % len(self.cycle)])
        if self.rows_of_update is not None:
            return self.data.rows(torch.as_tensor(self.rows_of_update(update), device=self.device))
        return self.data.sample(self.batch_rows, generator)


def minibatch_stream(name: str, data, learner, task: str, seed: int, device) -> MinibatchStream:
    """The run's stream ``name`` (one of :data:`MINIBATCH_STREAMS`) over ``data`` for ``learner``'s updates; its
    ``description`` (the run summary's ``minibatches``) says which stream and, for ``original``, its cycle."""
    if name == "fresh":
        return MinibatchStream(data, learner.batch_rows, device, {"stream": "fresh"})
    settings = learner.settings
    per_update = learner.batch_rows // settings.batch_size
    updates = original_cycle_updates(settings, task)
    description = {
        "stream": "original",
        "original_code": original_code(settings.algo),
        "cycle_updates": updates,
        "minibatches_per_cycle": None if updates is None else updates * per_update,
        "batch_size": settings.batch_size,
    }
    if updates is None:
        return MinibatchStream(
            data,
            learner.batch_rows,
            device,
            description,
            rows_of_update=lambda update: original_minibatches(
                data.size, settings.batch_size, per_update, seed, update
            ),
        )
    cycle = original_cycle(data.size, updates, settings.batch_size, per_update, seed)
    return MinibatchStream(data, learner.batch_rows, device, description, cycle=cycle)
