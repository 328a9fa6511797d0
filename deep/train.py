"""Offline training of SPaCQL and its baselines on one dataset (paper, Algorithm 1; see deep/algorithms/offline.py).

    python deep/train.py --algo spacql --task cn --dataset random --seed 0
    python deep/train.py --algo cfcql --task cn --dataset expert --seed 1 --updates 2000 --out-dir runs/x
    python deep/train.py --algo spacql --task cn --dataset random --seed 0 --resume   # continue a killed run
    python deep/train.py --preset quick --task cn --dataset random   # a first run: about a minute on a CPU
    python deep/train.py --algo cfcql --task cn --dataset random --seeds 0 1 2 3 4   # 5 runs as one program

Reads ``<data-dir>/<task>_<dataset>_seed<dataset-seed>.npz`` (built by deep/collect.py; the dataset seed is the
run's seed unless ``--dataset-seed`` is given, as each original run trained on its own dataset), trains for
``--updates`` critic updates (default: CFCQL's schedule, see deep/algorithms/offline.py) on minibatches drawn
fresh or, with ``--minibatches original``, replayed in the original code's fixed cycle
(deep/algorithms/minibatches.py), evaluates the deterministic team every ``--eval-every`` updates over
``--eval-episodes`` episodes, and writes to the out dir:

- ``metrics.jsonl`` and ``metrics.csv``: one row per ``--log-every`` updates (losses, mean Q, the
  target's ensemble std; for SPaCQL also the mean weights ``w_1..w_n`` and ``u_1..u_n``, the paper's
  Figures 2-3), with the evaluation's return and normalized score on evaluation rows;
- ``tb/``: the same as TensorBoard scalars;
- ``checkpoint.pt`` (atomically, at every evaluation and at the end; ``--resume`` continues from it
  to the same result as an uninterrupted run on the CPU), ``actor.pt`` (the final team);
- ``summary.json`` at the end: ``final_normalized_score``, ``best_normalized_score``, ``config``,
  ``settings`` (every resolved hyperparameter), ``dataset_seed``, ``minibatches`` (the stream and its cycle),
  ``versions``, ``wall_time_s``, ...

A non-finite loss stops the run with its update number after writing ``nan_checkpoint.pt``.

``--seeds s1 s2 ...`` trains R runs of one config that differ only in their seed as one batched program
(:mod:`deep.algorithms.batched`: the value family, omar, matd3-bc): run s writes to
``<out-dir>/<task>-<dataset>-<algo>-seed<s>/`` (``--out-dir`` is then the parent, default
``runs/offline``; the sweep's layout) the same files as a run of ``--seed s``, whose checkpoint a single
run resumes too. Each run keeps its own random stream, minibatches, metrics and evaluation episodes;
the runs equal separate runs to float32 rounding (tests/deep/test_train_batched.py), evaluated together as one
batch of environment copies. ``--resume`` continues every run; a run whose checkpoint is behind the
others' (a process killed between their writes) first catches up alone. A run whose loss turns non-finite
stops alone: the others restart from their last checkpoint without it and finish before the error.

An out dir that already holds a run's files is refused unless ``--resume`` continues the run or
``--overwrite`` deletes its files first; a run holds a lock on its out dir (``.lock``), so a second
run into it is refused while the first is alive. Checkpoints record their SHA-256, checked on
``--resume``. Every setting is validated before anything is loaded (deep/settings.py), and the
dataset is checked against ``--task`` and ``--dataset`` (shapes, quality, actions in [-1, 1]); these
problems are one ``error:`` line on stderr and exit code 2.
"""

from __future__ import annotations

import csv
import importlib.metadata
import json
import platform
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch
import tyro
from tqdm import tqdm

from deep.algorithms.batched import BatchedRuns
from deep.algorithms.evaluation import (
    deterministic_policy,
    evaluation_report,
    runs_team_returns,
    stacked_policy,
    team_returns,
)
from deep.algorithms.learner import DeviceDataset, keep_freed_memory
from deep.algorithms.methods import METHODS, MethodName
from deep.algorithms.minibatches import MinibatchStream, minibatch_stream
from deep.algorithms.networks import resolve_device
from deep.envs.tasks import task_spec
from deep.generation.opponents import load_opponent
from deep.settings import SettingsError, apply_preset, validate_settings
from deep.storage import datasets
from deep.storage.files import (
    OutDirError,
    load_resume_checkpoint,
    locked_out_dir,
    remove_run_files,
    remove_stale_temporaries,
    save_atomically,
    write_atomically,
    write_error,
)

EVAL_SEED = 10_000_019
"""Environment seed of the evaluation episodes (plus the run's seed): every evaluation plays the same episodes."""


@dataclass
class TrainConfig:
    """Train one offline MARL algorithm of the SPaCQL family on one dataset."""

    algo: MethodName = "spacql"
    """spacql (eq. 3-7), icql-qs (eq. 1-2), cfcql, macql, the ablations spacql-fixed-k, spacql-uniform, or the
    decentralized baselines omar, matd3-bc (MA-TD3+BC), iql (deep/algorithms/methods.py)."""
    task: Literal["cn", "pp", "world", "halfcheetah"] = "cn"
    """Benchmark task."""
    dataset: Literal["random", "medium-replay", "medium", "expert"] = "random"
    """Dataset quality."""
    seed: int = 0
    """Seed of the networks, the minibatches and all sampled noise."""
    seeds: list[int] | None = None
    """Train these seeds as one batched program instead of --seed (value family, omar, matd3-bc); run s writes to
    <out-dir>/<task>-<dataset>-<algo>-seed<s>, the same files as a run of --seed s."""
    dataset_seed: int | None = None
    """Which dataset file of the quality: <task>_<dataset>_seed<dataset-seed>.npz; default the run's seed (each of
    the original five runs trained on its own dataset, seed_<k>_data)."""
    data_dir: str = "data"
    """Folder of the dataset files (deep/collect.py --data-dir)."""
    out_dir: str | None = None
    """Where logs, checkpoints and summary.json go; default runs/offline/<task>-<dataset>-<algo>-seed<seed>. With
    --seeds: the parent of the runs' directories (default runs/offline)."""
    updates: int | None = None
    """Updates, >= 1; default the method's schedule: for the value family 5 x CFCQL's rounds of critic updates (an
    actor update every policy-delay): CN 10k, PP 10k, World 25k, HalfCheetah 500k; for omar, matd3-bc and iql OMAR's
    rounds (every agent once): CN 2k (random 6k), PP 2k (medium-replay 1k), World 1k, HalfCheetah 100k."""
    eval_every: int = 1000
    """Evaluate (and checkpoint) every this many updates, and at the end; must be a positive multiple of
    --log-every."""
    eval_episodes: int = 100
    """Episodes per evaluation, run as parallel environment copies."""
    log_every: int = 100
    """Write a metrics row every this many updates (the only host synchronization of the loop)."""
    minibatches: Annotated[str, tyro.conf.arg(metavar="{fresh,original}")] = "fresh"
    """fresh: every update draws its minibatch anew from the whole dataset; original: the original code's stream, a
    fixed cycle of minibatches (each without replacement) replayed every evaluation period of the original main.py
    (CFCQL's: 50 on CN and PP, 250 on World; OMAR's: 10 rounds of one minibatch per agent; HalfCheetah: no cycle,
    minibatches without replacement drawn on); deep/algorithms/minibatches.py."""
    resume: bool = False
    """Continue from out_dir/checkpoint.pt (written by a run with the same config, possibly fewer updates)."""
    overwrite: bool = False
    """Delete the files of a run in out_dir and start over (without it or --resume such an out dir is refused)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto: cuda when available."""
    compile: bool = False
    """torch.compile the loss functions (with --seeds: the batched losses and gradients; mode reduce-overhead, i.e.
    CUDA graphs, on a GPU)."""
    k: int = 1
    """Subset size of spacql-fixed-k."""
    n_critics: int | None = None
    """Critics E: default 10 for spacql, icql-qs and the ablations (the paper's ensemble), 2 for cfcql and macql
    (CFCQL's twin critics)."""
    cql_alpha: float | None = None
    """Weight of the conservative penalty (the value family and omar); default: CFCQL's (OMAR's for omar) value
    for (task, dataset)."""
    hidden: int | None = None
    """Hidden width of actors and critics; default 64 (MPE) or 256 (HalfCheetah)."""
    batch_size: int | None = None
    """Minibatch size; default 1024 (MPE) or 256 (HalfCheetah); omar, matd3-bc and iql: one minibatch of this size
    per agent."""
    lr: float | None = None
    """Adam learning rate of actors and critics; default 0.01 (CN), 1e-3 (PP, World), 3e-4 (HalfCheetah); omar and
    matd3-bc 0.01 on every MPE task, iql 1e-3 (MPE); 3e-4 on HalfCheetah for all."""
    gamma: float | None = None
    """Discount; default 0.95 (also on HalfCheetah: CFCQL's learner never receives its main.py's 0.99)."""
    tau: float | None = None
    """Polyak rate of the targets; default 0.01 (MPE) or 0.005 (HalfCheetah); iql 0.005 everywhere."""
    policy_delay: int | None = None
    """Critic updates per actor update; default 5 (CFCQL's round), omar 1, matd3-bc 2 (TD3+BC); not for iql."""
    n_sampled_actions: int | None = None
    """Sampled actions per source in the penalty's log-sum-exp; default 10."""
    penalty_policy_samples: bool | None = None
    """Also sample noisy current- and next-policy actions in the penalty; default: on for HalfCheetah only."""
    input_norm: bool | None = None
    """An input BatchNorm1d in every actor and critic (CFCQL's and OMAR's networks); default on. Off: plain MLPs
    (an ablation, e.g. of the critic's batch statistics in the penalty's calls)."""
    omar_coe: float | None = None
    """omar: weight in [0, 1] of the rectified action's imitation against the Q term; default: OMAR's value for
    (task, dataset)."""
    bc_alpha: float | None = None
    """matd3-bc: TD3+BC's alpha (lambda = alpha / E|Q|); default 2.5."""
    expectile: float | None = None
    """iql: expectile tau in (0, 1) of the value loss; default 0.7."""
    temperature: float | None = None
    """iql: inverse temperature beta of the advantage weights; default 3.0."""
    tensorboard: bool = True
    """Write TensorBoard scalars to out_dir/tb."""
    progress: bool = True
    """Show a progress bar."""
    preset: Literal["quick"] | None = None
    """quick: a first run for newcomers, about a minute on a CPU on the MPE datasets (200 updates of batch 256,
    evaluated every 100 over 10 episodes, a metrics row every 50); it sets only the fields left at their
    defaults, so explicit flags win."""


# Fields that may differ between a checkpoint and the run that resumes it.
_RESUME_FREE = ("updates", "resume", "overwrite", "device", "progress", "compile", "out_dir", "data_dir", "preset")

RUN_FILES = ("summary.json", "checkpoint.pt", "actor.pt", "metrics.jsonl", "metrics.csv", "tb", "nan_checkpoint.pt")
"""What a run writes into its out dir (besides ``.lock``): any of them means the out dir holds a run."""


def run_name(config: TrainConfig, seed: int) -> str:
    """A run's directory name: ``<task>-<dataset>-<algo>-seed<seed>`` (train.py's default and the sweep's)."""
    return f"{config.task}-{config.dataset}-{config.algo}-seed{seed}"


def out_dir_of(config: TrainConfig) -> Path:
    if config.out_dir is not None:
        return Path(config.out_dir)
    return Path("runs/offline") / run_name(config, config.seed)


def run_configs(config: TrainConfig) -> list[TrainConfig]:
    """The config of each run: ``config`` itself, or with ``--seeds`` one ``--seed s`` config per seed, its
    out dir ``<out-dir or runs/offline>/<run name>``."""
    if config.seeds is None:
        return [config]
    parent = Path(config.out_dir) if config.out_dir is not None else Path("runs/offline")
    return [
        replace(config, seed=seed, seeds=None, out_dir=str(parent / run_name(config, seed))) for seed in config.seeds
    ]


def evaluation_opponent(task: str):
    """The opponent the team is evaluated against: the one place where it is chosen.

    The shipped pretrained opponent of pp / world (:func:`deep.generation.opponents.load_opponent`, played
    deterministically, the one deep/collect.py builds their datasets against); None for CN and
    HalfCheetah, which have no opponents.
    """
    return load_opponent(task)


def dataset_seed_of(config: TrainConfig) -> int:
    """The run's dataset seed: ``--dataset-seed`` when given, else the run's own seed."""
    return config.seed if config.dataset_seed is None else config.dataset_seed


def dataset_file(config: TrainConfig) -> Path:
    """The run's dataset file: ``<data-dir>/<task>_<dataset>_seed<dataset seed>.npz``."""
    return datasets.dataset_path(config.data_dir, config.task, config.dataset, dataset_seed_of(config))


def load_checked_dataset(config: TrainConfig) -> datasets.OfflineDataset:
    """Load the run's dataset and check it against the task (agent count, shapes) and ``--dataset``.

    Also refuses a dataset whose metadata quality is not ``config.dataset`` (a file renamed to another
    quality) or whose metadata seed is not the run's dataset seed (a file renamed to another seed);
    ``datasets.load`` already refuses actions outside [-1, 1] (``datasets.ACTION_TOLERANCE``).
    """
    path = dataset_file(config)
    try:
        dataset = datasets.load(path)
    except FileNotFoundError as error:  # its message holds the deep/collect.py command that builds it
        raise MissingDatasetError(f"dataset: {error}") from error
    except ValueError as error:  # a damaged or invalid file: the message starts with its path
        raise DatasetError(f"dataset: {error}") from error
    spec, meta = task_spec(config.task), dataset.metadata
    _, n_agents, obs_dim = dataset.obs.shape
    found = {
        "task": meta["task"],
        "n_agents": n_agents,
        "obs_dim": obs_dim,
        "act_dim": dataset.actions.shape[2],
        "state_dim": dataset.state.shape[1],
        "act_dims": tuple(meta["act_dims"]),
    }
    expected = {
        "task": config.task,
        "n_agents": spec.n_agents,
        "obs_dim": spec.obs_dim,
        "act_dim": spec.act_dim,
        "state_dim": spec.state_dim,
        "act_dims": tuple(spec.act_dims),
    }
    wrong = [
        f"{key} {found[key]!r} (task {config.task!r} has {expected[key]!r})"
        for key in found
        if found[key] != expected[key]
    ]
    if wrong:
        raise DatasetError(f"dataset: {path} does not match the task: " + ", ".join(wrong))
    if meta.get("quality") != config.dataset:
        raise DatasetError(
            f"dataset: {path} holds a {meta.get('quality')!r} dataset by its metadata, not --dataset "
            f"{config.dataset!r}; rename it or rebuild it with deep/collect.py"
        )
    if meta.get("seed") != dataset_seed_of(config):
        raise DatasetError(
            f"dataset: {path} holds dataset seed {meta.get('seed')!r} by its metadata, not {dataset_seed_of(config)}; "
            "rename it or rebuild it with deep/collect.py"
        )
    if meta.get("reference_returns") is None:
        raise DatasetError(f"dataset: {path} has no reference returns, so no normalized score")
    return dataset


class DatasetError(ValueError):
    """A dataset file that does not fit the run (task, shapes, quality, action range); names the file."""


class MissingDatasetError(DatasetError, FileNotFoundError):
    """No dataset file where the run looks (or a directory there); names the command that builds it."""


def versions() -> dict:
    found = {"python": platform.python_version()}
    for package in ("spacql", "torch", "numpy", "mpe2", "gymnasium-robotics", "mujoco", "tyro"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    return found


class MetricLog:
    """Per-update metrics summed on the device; ``row()`` syncs once and returns their means."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, metrics: dict[str, torch.Tensor]) -> None:
        for key, value in metrics.items():
            self.sums[key] = self.sums[key] + value if key in self.sums else value.clone()
            self.counts[key] = self.counts.get(key, 0) + 1

    def rows(self) -> list[dict]:
        """One row per run of the means since the last call (metrics ``[R, ...]``: run r's are ``[r]``)."""
        values = {key: (total / self.counts[key]).tolist() for key, total in self.sums.items()}
        self.sums, self.counts = {}, {}
        runs = len(next(iter(values.values())))
        rows = [{} for _ in range(runs)]
        for key, per_run in values.items():
            for row, value in zip(rows, per_run, strict=True):
                if isinstance(value, list):  # per-k vectors: weights -> w_1..w_K, current_std -> u_1..u_K
                    prefix = {"weights": "w", "current_std": "u"}[key]
                    row |= {f"{prefix}_{k + 1}": v for k, v in enumerate(value)}
                else:
                    row[key] = value
        return rows


def columns(learner) -> list[str]:
    """The metrics.csv header (every key a row of this learner can have)."""
    return [
        "update",
        "wall_time_s",
        *learner.metric_names(),
        "return_mean",
        "return_std",
        "normalized_score",
        "normalized_std",
    ]


def write_logs(out_dir: Path, rows: list[dict], header: list[str]) -> None:
    """Rewrite metrics.jsonl and metrics.csv from ``rows`` (used at start and on resume)."""
    jsonl = "".join(json.dumps(row) + "\n" for row in rows)
    write_atomically(out_dir / "metrics.jsonl", lambda temporary: temporary.write_text(jsonl))

    def write_csv(temporary: Path) -> None:
        with open(temporary, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=header)
            writer.writeheader()
            writer.writerows(rows)

    write_atomically(out_dir / "metrics.csv", write_csv)


def append_logs(out_dir: Path, row: dict, header: list[str]) -> None:
    for name in ("metrics.jsonl", "metrics.csv"):
        try:
            with open(out_dir / name, "a", newline="") as handle:
                if name.endswith(".csv"):
                    csv.DictWriter(handle, fieldnames=header).writerow(row)
                else:
                    handle.write(json.dumps(row) + "\n")
        except OSError as error:
            raise write_error(out_dir / name, error) from error


def prepare_out_dir(out_dir: Path, resume: bool, overwrite: bool) -> None:
    """Clean a locked out dir for a run: stale temporary files go; a run's files stay only with ``resume``.

    Raises :class:`OutDirError` when the out dir holds a run and neither ``resume`` nor
    ``overwrite`` is given; ``overwrite`` deletes the run's files.
    """
    remove_stale_temporaries(out_dir)  # of writers killed mid-write
    found = [name for name in RUN_FILES if (out_dir / name).exists()]
    if found and not (resume or overwrite):
        raise OutDirError(
            f"out_dir {out_dir} already holds a run ({', '.join(found)}); pass --resume to continue it "
            "or --overwrite to delete it and start over"
        )
    if overwrite:
        remove_run_files(out_dir, found)


def _resumable(config: dict) -> dict:
    config = asdict(TrainConfig()) | config
    return {key: value for key, value in config.items() if key not in _RESUME_FREE}


def train(config: TrainConfig) -> dict:
    """Run (or resume) one training run; returns ``{"summary", "learner", "log"}`` (with ``--seeds``:
    ``{"runs": [...]}``, one such dict per seed).

    Raises
    ------
    OutDirError
        An out dir that holds a run without ``resume`` or ``overwrite``, or that another run is
        using; ``resume`` and ``overwrite`` together. Its subclasses: :class:`CheckpointError`
        (also a ValueError: a damaged or foreign checkpoint, or one written with another config),
        :class:`MissingCheckpointError` (also a FileNotFoundError: ``resume`` without a
        checkpoint), :class:`WriteError` (also an OSError: a file that could not be written).
    SettingsError
        (also a ValueError) A setting out of its range or inconsistent with another one (unknown
        ``algo``, ``gamma`` outside [0, 1), ``eval_every`` not a multiple of ``log_every``, ...),
        checked by :func:`deep.settings.validate_settings` before anything is loaded.
    DatasetError
        (also a ValueError) A dataset that does not match the task or ``dataset`` (its metadata
        quality), or with actions outside [-1, 1].
    ValueError
        An unavailable device.
    MissingDatasetError
        (a DatasetError and a FileNotFoundError) A missing dataset (the message holds the
        deep/collect.py command that builds it).
    FloatingPointError
        A non-finite loss; ``nan_checkpoint.pt`` in the out dir holds the state at detection.
    """
    if config.resume and config.overwrite:
        raise OutDirError("--resume and --overwrite exclude each other: continue the run in out_dir or replace it")
    config = apply_preset(config)
    settings, total_updates = validate_settings(config)
    device = resolve_device(config.device)
    if device.type == "cpu":
        keep_freed_memory()
    configs = run_configs(config)
    loaded = {}  # dataset seed -> the dataset: runs of one program may share one
    for run_config in configs:
        seed = dataset_seed_of(run_config)
        if seed not in loaded:
            loaded[seed] = load_checked_dataset(run_config)
    opponent = evaluation_opponent(config.task)
    with ExitStack() as locks:  # held for the whole run; the OS releases them if the process dies
        out_dirs = [locks.enter_context(locked_out_dir(out_dir_of(run_config))) for run_config in configs]
        for out_dir in out_dirs:  # after every lock is held: a refused run dir deletes nothing in the others
            prepare_out_dir(out_dir, config.resume, config.overwrite)
        results = _train_in(config, configs, settings, total_updates, device, loaded, opponent)
    return results[0] if config.seeds is None else {"runs": results}


@dataclass(eq=False)  # a run is itself: compared by identity
class _Run:
    """One run of the program: its config and out dir, learner, random stream and log rows."""

    config: TrainConfig
    learner: object
    generator: torch.Generator
    dataset: datasets.OfflineDataset
    minibatches: MinibatchStream
    log: list[dict] = field(default_factory=list)
    wall_before: float = 0.0
    writer: object = None

    @property
    def out_dir(self) -> Path:
        return out_dir_of(self.config)

    def checkpoint(self, path: Path, elapsed: float) -> None:
        save_atomically(
            {
                "config": asdict(self.config),
                "learner": self.learner.state_dict(),
                "generator": self.generator.get_state(),
                "log": json.dumps(self.log),
                "wall_time_s": self.wall_before + elapsed,
            },
            path,
        )


class _SingleProgram:
    """One run on its learner's own update (on the CPU the penalty's cache-blocked path)."""

    def __init__(self, runs: list[_Run]):
        self.learner = runs[0].learner

    @property
    def updates(self) -> int:
        return self.learner.updates

    def compile(self, mode: str | None) -> None:
        self.learner.compile(mode)

    def update(self, batches, generators) -> dict[str, torch.Tensor]:
        metrics = self.learner.update(batches[0], generators[0])
        return {key: value.unsqueeze(0) for key, value in metrics.items()}  # [1, ...]

    def returns(self, task: str, episodes: int, seeds: list[int], opponent) -> np.ndarray:
        actors = self.learner.actors
        return team_returns(task, deterministic_policy(actors), episodes, seed=seeds[0], opponent=opponent)[None]

    def write_back(self) -> None:
        """Nothing: the learner is the run's state."""


class _BatchedProgram:
    """R runs as one program (:class:`deep.algorithms.batched.BatchedRuns`), evaluated as one batch of copies."""

    def __init__(self, runs: list[_Run]):
        self.batched = BatchedRuns([run.learner for run in runs])

    @property
    def updates(self) -> int:
        return self.batched.updates

    def compile(self, mode: str | None) -> None:
        self.batched.compile(mode)

    def update(self, batches, generators) -> dict[str, torch.Tensor]:
        return self.batched.update(batches, generators)

    def returns(self, task: str, episodes: int, seeds: list[int], opponent) -> np.ndarray:
        policy = stacked_policy(self.batched.template.actors, self.batched.actor_params())
        return runs_team_returns(task, policy, episodes, seeds, opponent)

    def write_back(self) -> None:
        self.batched.to_learners()


def _start_run(
    config: TrainConfig, run_config: TrainConfig, settings, device: torch.device, resume: bool, data
) -> _Run:
    """A run's learner, random stream and minibatches, from its seed or (``resume``) from its out dir's checkpoint.

    ``data``: dataset seed -> ``(OfflineDataset, DeviceDataset)``. The original minibatch cycle is a function of
    the seed and the update count, so a resumed run needs nothing from the checkpoint to continue it.
    """
    spec = task_spec(config.task)
    torch.manual_seed(run_config.seed)
    learner = METHODS[config.algo].learner(settings, spec.n_agents, spec.obs_dim, spec.act_dims, spec.state_dim, device)
    dataset, device_data = data[dataset_seed_of(run_config)]
    stream = minibatch_stream(config.minibatches, device_data, learner, config.task, run_config.seed, device)
    run = _Run(run_config, learner, torch.Generator(device=device).manual_seed(run_config.seed), dataset, stream)
    if resume:
        required = ("learner", "generator", "log", "wall_time_s")
        path = run.out_dir / "checkpoint.pt"
        state = load_resume_checkpoint(path, device, asdict(run_config), _resumable, required)
        learner.load_state_dict(state["learner"])
        run.generator.set_state(state["generator"].cpu())
        run.log, run.wall_before = json.loads(state["log"]), float(state["wall_time_s"])
    write_logs(run.out_dir, run.log, columns(learner))  # drops rows written after the checkpoint by a killed run
    if config.tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        run.writer = SummaryWriter(str(run.out_dir / "tb"), purge_step=learner.updates)
    return run


class _NonFiniteRuns(Exception):
    """Runs of the program whose loss became non-finite; their ``nan_checkpoint.pt`` is written."""

    def __init__(self, runs: list[_Run], messages: list[str]):
        super().__init__("; ".join(messages))
        self.runs, self.messages = runs, messages


def _train_in(
    config: TrainConfig,
    configs: list[TrainConfig],
    settings,
    total_updates: int,
    device: torch.device,
    loaded: dict[int, datasets.OfflineDataset],
    opponent,
) -> list[dict]:
    """The runs of :func:`train` in their prepared, locked out dirs: load or start them, train, summarize.

    A run whose loss becomes non-finite stops alone: the others restart from their last checkpoint
    without it, finish, and then the error names every stopped run.
    """
    data = {seed: (dataset, DeviceDataset(dataset, device)) for seed, dataset in loaded.items()}
    runs = [_start_run(config, run_config, settings, device, config.resume, data) for run_config in configs]
    failures = []
    while runs:
        try:
            _train_runs(config, runs, total_updates, opponent, device)
            break
        except _NonFiniteRuns as error:
            failures += error.messages
            for run in runs:
                if run.writer is not None:
                    run.writer.close()
            healthy = [run.config for run in runs if run not in error.runs]
            runs = [
                _start_run(
                    config, run_config, settings, device, (out_dir_of(run_config) / "checkpoint.pt").is_file(), data
                )
                for run_config in healthy
            ]
    for run in runs:
        if run.writer is not None:
            run.writer.close()
    results = [_finish(run, settings, device, config.seeds) for run in runs]
    if failures:
        raise FloatingPointError("; ".join(failures))
    return results


def _train_runs(config: TrainConfig, runs: list[_Run], total_updates: int, opponent, device) -> None:
    """Train ``runs`` to ``total_updates``: a run behind the others catches up alone, then the program."""
    latest = min(max(run.learner.updates for run in runs), total_updates)
    for run in runs:  # a run whose checkpoint is behind the others' (a kill between their writes) first
        if run.learner.updates < latest:
            _train_loop(config, [run], _SingleProgram([run]), latest, opponent, device)
    active = [run for run in runs if run.learner.updates < total_updates]
    if not active:
        return
    program = (_SingleProgram if config.seeds is None else _BatchedProgram)(active)
    if config.compile:
        # a process that trains run after run (a sweep's worker) would pile up recompiles of the same loss
        # functions (one per settings: guards on their constants) past dynamo's limit, then run them eager
        torch.compiler.reset()
        program.compile("reduce-overhead" if device.type == "cuda" else None)
    _train_loop(config, active, program, total_updates, opponent, device)
    program.write_back()


def _train_loop(config, runs: list[_Run], program, until: int, opponent, device) -> None:
    """Update every run of ``program`` to ``until`` updates, logging, evaluating and checkpointing each run.

    Raises :class:`_NonFiniteRuns` (after writing their ``nan_checkpoint.pt``) at the first log row where a
    run's loss has been non-finite.
    """
    header = columns(runs[0].learner)
    metric_log = MetricLog()
    first_nonfinite = torch.full((len(runs),), -1, dtype=torch.long, device=device)
    counter = torch.full((), program.updates, dtype=torch.long, device=device)
    start = time.perf_counter()
    seeds = [run.config.seed for run in runs]
    name = f"{config.algo} {config.task}-{config.dataset}" + (f" seeds {seeds}" if config.seeds else "")
    bar = tqdm(total=until, initial=program.updates, disable=not config.progress, desc=name)
    while program.updates < until:
        batches = [run.minibatches.batch(program.updates, run.generator) for run in runs]
        metrics = program.update(batches, [run.generator for run in runs])  # [R, ...] each
        counter += 1
        finite = torch.isfinite(metrics["critic_loss"])
        for key in metrics.keys() - {"critic_loss"}:  # every loss of the update (IQL's value loss too)
            if key.endswith("_loss"):
                finite = finite & torch.isfinite(metrics[key])
        first_nonfinite = torch.where((first_nonfinite < 0) & ~finite, counter, first_nonfinite)
        metric_log.add(metrics)
        bar.update(1)
        done = program.updates == until
        if program.updates % config.log_every and not done:
            continue
        bad = first_nonfinite.tolist()  # the loop's only host synchronization, once per log_every updates
        elapsed = time.perf_counter() - start
        if max(bad) >= 0:
            program.write_back()
            stopped, messages = [], []
            for run, update in zip(runs, bad, strict=True):
                if update >= 0:
                    path = run.out_dir / "nan_checkpoint.pt"
                    run.checkpoint(path, elapsed)
                    stopped.append(run)
                    messages.append(
                        f"update {update}: non-finite loss (critic or actor); state at update {program.updates} "
                        f"saved to {path}"
                    )
            bar.close()
            raise _NonFiniteRuns(stopped, messages)
        evaluate = program.updates % config.eval_every == 0 or done
        if evaluate:
            for run in runs:  # the input normalization's running statistics, as CFCQL's prep_rollouts
                run.learner.actors.eval()
            program.write_back()
            returns = program.returns(config.task, config.eval_episodes, [EVAL_SEED + seed for seed in seeds], opponent)
            for run in runs:
                run.learner.actors.train()
        for r, (run, metric_row) in enumerate(zip(runs, metric_log.rows(), strict=True)):
            row = {"update": program.updates, "wall_time_s": run.wall_before + elapsed} | metric_row
            if evaluate:
                report = evaluation_report(returns[r], run.dataset.metadata["reference_returns"])
                row |= {
                    "return_mean": report["return_mean"],
                    "return_std": report["return_std"],
                    "normalized_score": report["normalized_mean"],
                    "normalized_std": report["normalized_std"],
                }
            run.log.append(row)
            append_logs(run.out_dir, row, header)
            if run.writer is not None:
                for key, value in row.items():
                    if key != "update":
                        run.writer.add_scalar(key, value, program.updates)
            if evaluate:
                run.checkpoint(run.out_dir / "checkpoint.pt", time.perf_counter() - start)
                if run.writer is not None:
                    run.writer.flush()
        if evaluate and len(runs) == 1:
            bar.set_postfix(score=f"{runs[0].log[-1]['normalized_score']:.1f}")
    bar.close()
    for run in runs:
        run.wall_before += time.perf_counter() - start


def _finish(run: _Run, settings, device: torch.device, seeds) -> dict:
    """Write the run's ``actor.pt`` and ``summary.json``; returns ``{"summary", "learner", "log"}``."""
    config, learner, log, dataset = run.config, run.learner, run.log, run.dataset
    save_atomically(learner.actors.state_dict(), run.out_dir / "actor.pt")
    scores = [row["normalized_score"] for row in log if "normalized_score" in row]
    wall_time = run.wall_before  # every segment of a resumed run, evaluations included
    summary = {
        "algo": config.algo,
        "task": config.task,
        "dataset": config.dataset,
        "seed": config.seed,
        "updates": learner.updates,
        "final_normalized_score": scores[-1] if scores else None,
        "best_normalized_score": max(scores) if scores else None,
        "final_return_mean": next((row["return_mean"] for row in reversed(log) if "return_mean" in row), None),
        "evaluations": len(scores),
        "eval_episodes": config.eval_episodes,
        "config": asdict(config),
        "settings": asdict(settings),
        "dataset_file": str(dataset_file(config)),
        "dataset_seed": dataset_seed_of(config),
        "dataset_size": dataset.n_transitions,
        "minibatches": run.minibatches.description,
        "reference_returns": dataset.metadata["reference_returns"],
        "device": str(device),
        "versions": versions(),
        "wall_time_s": wall_time,
        "updates_per_second": learner.updates / wall_time if wall_time > 0 else None,
    }
    if seeds is not None:  # the wall time is the whole program's, shared by its runs
        summary["batched_seeds"] = list(seeds)
    text = json.dumps(summary, indent=2) + "\n"
    write_atomically(run.out_dir / "summary.json", lambda temporary: temporary.write_text(text))
    return {"summary": summary, "learner": learner, "log": log}


def main(argv: list[str] | None = None) -> dict:
    """The CLI: the run's summary (with ``--seeds``: ``{"runs": [summary, ...]}``).

    An :class:`OutDirError`, :class:`SettingsError` or :class:`DatasetError` is one ``error:`` line on
    stderr and exit code 2.
    """
    config = tyro.cli(TrainConfig, args=argv, description=__doc__.split("\n\n")[0])
    try:
        result = train(config)
        return result["summary"] if config.seeds is None else {"runs": [run["summary"] for run in result["runs"]]}
    except (OutDirError, SettingsError, DatasetError) as error:
        print("error: " + " ".join(str(error).split("\n")), file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    summary = main()
    for run in summary.get("runs", [summary]):
        keys = ("seed", "final_normalized_score", "best_normalized_score", "wall_time_s")
        print(json.dumps({key: run[key] for key in keys}))
