"""A resumable grid of deep/train.py runs, on this machine or a Ray cluster, and its results table.

    python -m deep.sweep --tasks cn --algos spacql cfcql icql-qs --datasets random medium-replay medium expert \
        --seeds 0 1 2 --out-dir runs/sweep
    python -m deep.sweep --preset table2 --out-dir runs/table2 --backend ray          # the paper's Table 2 grid
    python -m deep.sweep --preset table2 --tasks pp world --algos spacql cfcql icql-qs --backend ray \
        --address auto --gpus-per-run 0.25                                           # on a running cluster

Each run writes to ``<out-dir>/<task>-<dataset>-<algo>-seed<seed>/``, whichever backend trains it. A
run with a ``summary.json`` is finished and skipped; one with a ``checkpoint.pt`` is resumed
(``--resume``), so the same command continues a killed sweep; one without (killed before its first
checkpoint) starts over (``--overwrite``). The choice is made when the run starts, so a run retried
after its worker died continues from the checkpoint that worker wrote. At the end (and with
``--table-only`` without training) the tables of the final and best normalized scores are printed and
written to ``<out-dir>/results.md`` and ``results.json``; ``python -m deep.report`` draws the figures.

Backends (``--backend``):

- ``local`` (default): ``--workers K`` runs at once on this machine, each in its own process with one
  thread (K = 1: one after another in this process).
- ``ray``: every run is a Ray task on the cluster at ``--address`` (default: a local cluster started for
  the sweep and stopped at its end), with ``--cpus-per-run`` CPUs and ``--gpus-per-run`` GPUs (fractions
  share a GPU between runs); a task whose worker dies is retried ``--max-retries`` times, resuming its
  checkpoint. On a cluster of several machines the data and out dirs must be on a file system that all
  of them see, and spacql must be installed on each.

``--batch-seeds`` trains the seeds of each (task, dataset, method) cell as one batched program
(``deep/train.py --seeds``; the value family, omar, matd3-bc; iql's runs stay separate): one backend task
per cell, into the same run directories. The runs of a cell that have a checkpoint resume as one program,
the others start over as another. This is the GPU's mode: one small run leaves most of a GPU idle.

``--preset table2`` is the paper's Table 2 grid: the four tasks and datasets, every method of the table
registered in deep.algorithms.methods (spacql, icql-qs, cfcql, macql, omar, matd3-bc, iql), 5 seeds,
each task's schedule; ``--tasks``, ``--datasets``, ``--algos`` and ``--seeds`` narrow it. While the grid
trains, the sweep prints an ETA from the measured speed (``wall_time_s / updates`` of the finished runs'
summaries, per task and algorithm, of every finished run in ``--out-dir``).

Every run's settings are validated before the grid starts (deep/settings.py); a bad setting is one
``error:`` line on stderr and exit code 2. A run that fails (an exception, or a finished run whose summary
holds no score) is counted as failed in the table (``failed (n)``), listed in the failures, and does not
stop the other runs.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Annotated, ClassVar, Literal, Protocol

import numpy as np
import tyro

from deep.algorithms.methods import METHODS, MethodName
from deep.envs.tasks import TASKS
from deep.report import PAPER_METHODS
from deep.settings import SettingsError, flag, validate_settings
from deep.storage.datasets import QUALITIES
from deep.storage.files import write_atomically
from deep.train import TrainConfig, run_name, train
from deep.train import run_configs as train_run_configs
from tabular.validation import check_bool, check_int, check_real, invalid

PROG = "python -m deep.sweep"

Task = Literal["cn", "pp", "world", "halfcheetah"]
Quality = Literal["random", "medium-replay", "medium", "expert"]

DEFAULT_GRID = {"tasks": ("cn",), "algos": ("spacql", "cfcql", "icql-qs"), "datasets": QUALITIES, "seeds": (0, 1, 2)}
"""The grid of a sweep without a preset."""

PRESETS: dict[str, dict[str, tuple]] = {
    # the paper's Table 2: its methods registered in deep.algorithms.methods, 5 seeds ("we run all experiments with
    # 5 different random seeds"); --updates stays unset, so every run takes its task's schedule
    "table2": {
        "tasks": TASKS,
        "algos": tuple(method for method in PAPER_METHODS if method in METHODS),
        "datasets": QUALITIES,
        "seeds": (0, 1, 2, 3, 4),
    },
}
"""Preset name -> the grid it sets (the grid fields not given on the command line)."""


def _grid_flag(name: str, choices, *aliases: str):
    """tyro's settings of the grid flag ``name``: its choices, and its default (or the preset's) in the help."""
    values = choices[0] if len(choices) == 1 else "{" + ",".join(choices) + "}"
    default = " ".join(str(value) for value in DEFAULT_GRID[name])
    return tyro.conf.arg(
        aliases=aliases, metavar=f"{values} [...]", help_behavior_hint=f"(default: {default}, or the preset's)"
    )


@dataclass
class SweepConfig:
    """Train every (task, algorithm, dataset, seed) of a grid and tabulate the normalized scores."""

    tasks: Annotated[tuple[Task, ...] | None, _grid_flag("tasks", TASKS, "--task")] = None
    """Benchmark tasks (one table each)."""
    algos: Annotated[tuple[MethodName, ...] | None, _grid_flag("algos", tuple(METHODS))] = None
    """Algorithms (rows of the tables)."""
    datasets: Annotated[tuple[Quality, ...] | None, _grid_flag("datasets", QUALITIES)] = None
    """Dataset qualities (columns of the tables)."""
    seeds: Annotated[tuple[int, ...] | None, _grid_flag("seeds", ("INT",))] = None
    """Training seeds of every cell."""
    preset: Literal["table2"] | None = None
    """table2: the paper's Table 2 grid (4 tasks x 4 datasets x its implemented methods x 5 seeds, each task's
    schedule); the grid flags given narrow it."""
    updates: int | None = None
    # CFCQL reports ~2k update rounds for CN/PP (5k World, 100k HalfCheetah); its round is one critic+actor
    # update plus ca_ratio - 1 = 4 critic-only updates, so 2k rounds are 10k critic updates here.
    """Updates per run, >= 1; default each method's schedule (value family: 5 x CFCQL's rounds, 10k on CN and PP,
    25k World, 500k HalfCheetah; omar, matd3-bc, iql: OMAR's rounds)."""
    eval_every: int = 1000
    """Evaluate every this many updates (and at the end); must be a positive multiple of the runs' log interval
    (deep/train.py --log-every, 100)."""
    eval_episodes: int = 100
    """Episodes per evaluation."""
    dataset_seed: int | None = None
    """Which dataset file of each quality: <task>_<dataset>_seed<dataset-seed>.npz; default each run's own seed."""
    minibatches: Annotated[str, tyro.conf.arg(metavar="{fresh,original}")] = "fresh"
    """Every run's minibatch stream (deep/train.py --minibatches): fresh draws, or the original code's fixed cycle."""
    data_dir: str = "data"
    """Folder of the dataset files."""
    out_dir: str = "runs/sweep"
    """Folder of the runs and of results.md / results.json."""
    backend: Literal["local", "ray"] = "local"
    """Where the runs train: local (this machine, --workers) or ray (Ray tasks on --address)."""
    workers: int = 1
    """local: runs trained at once, each in its own process with one thread."""
    address: str | None = None
    """ray: the cluster (ray.init's address: auto for the one `ray start` runs here, ray://HOST:10001, ...);
    default: a local cluster started for the sweep and stopped at its end."""
    cpus_per_run: float = 1.0
    """ray: CPUs each run reserves (its torch threads: the integer part, at least 1)."""
    gpus_per_run: float = 0.0
    """ray: GPUs each run reserves; a fraction such as 0.25 puts four runs on one GPU."""
    max_retries: int = 3
    """ray: how often a run whose worker died (killed, out of memory, node lost) is started again; it resumes
    its checkpoint. A run that raises an error is not retried."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Device of every run."""
    batch_seeds: bool = False
    """Train the seeds of each (task, dataset, method) cell as one batched program (deep/train.py --seeds), one
    backend task per cell; iql's runs stay separate."""
    table_only: bool = False
    """Only tabulate the finished runs."""

    def __post_init__(self):
        grid = PRESETS[self.preset] if self.preset is not None else DEFAULT_GRID
        for name, default in grid.items():
            if getattr(self, name) is None:
                setattr(self, name, default)


def run_dir(config: SweepConfig, task: str, quality: str, algo: str, seed: int) -> Path:
    """The out dir of one run of the grid: ``<out-dir>/<task>-<dataset>-<algo>-seed<seed>`` (train.py's name)."""
    return Path(config.out_dir) / run_name(TrainConfig(algo=algo, task=task, dataset=quality), seed)


def resuming(run: TrainConfig) -> TrainConfig:
    """``run`` resuming its checkpoint when its out dir holds one, else starting over (``overwrite``)."""
    resume = (Path(run.out_dir) / "checkpoint.pt").is_file()
    # a run killed before its first checkpoint left nothing to keep
    return replace(run, resume=resume, overwrite=not resume)


def run_configs(config: SweepConfig, **overrides) -> list[TrainConfig]:
    """The grid's training configs, each resuming its checkpoint when one exists, else starting over.

    ``overrides`` sets further :class:`TrainConfig` fields of every run (Python API only, e.g. small
    networks in tests).
    """
    configs = []
    # seed-major, algorithms innermost: a partly finished sweep holds comparable cells
    for seed in config.seeds:
        for task in config.tasks:
            for quality in config.datasets:
                for algo in config.algos:
                    run = TrainConfig(
                        algo=algo,
                        task=task,
                        dataset=quality,
                        seed=seed,
                        dataset_seed=config.dataset_seed,
                        minibatches=config.minibatches,
                        data_dir=config.data_dir,
                        out_dir=str(run_dir(config, task, quality, algo, seed)),
                        updates=config.updates,
                        eval_every=config.eval_every,
                        eval_episodes=config.eval_episodes,
                        device=config.device,
                        progress=False,
                        **overrides,
                    )
                    configs.append(resuming(run))
    return configs


def batched_units(runs: list[TrainConfig]) -> list[TrainConfig]:
    """``runs`` as training units: the runs of a batchable method in one (task, dataset, method) cell become
    one ``--seeds`` config (out dir: the runs' parent); the others stay as they are."""
    units, cells = [], {}
    for run in runs:
        if METHODS[run.algo].batchable:
            cells.setdefault((run.task, run.dataset, run.algo), []).append(run)
        else:
            units.append(run)
    for members in cells.values():
        parent = str(Path(members[0].out_dir).parent)
        seeds = [member.seed for member in members]
        units.append(replace(members[0], seed=0, seeds=seeds, out_dir=parent, resume=False, overwrite=False))
    return units


def unit_runs(unit: TrainConfig) -> list[TrainConfig]:
    """The runs a training unit trains: itself, or one per seed of a ``--seeds`` unit."""
    return [unit] if unit.seeds is None else train_run_configs(unit)


def train_run(unit: TrainConfig, threads: int = 1) -> dict | list[dict]:
    """Train one unit of the grid in this process with ``threads`` torch threads; its summary (a list for a
    ``--seeds`` unit, in the order of its seeds).

    Whether a run resumes is decided here, when it starts (:func:`resuming`), not when the grid was planned:
    a run retried after its worker was killed continues from the last checkpoint of that worker. The runs
    of a ``--seeds`` unit that have a checkpoint resume together; the others start over together. A run
    that another sweep into the same out dir finished meanwhile is not trained again: its summary is read.
    """
    import torch

    torch.set_num_threads(threads)
    summaries = {summary["seed"]: summary for summary in _finished_summaries(unit_runs(unit))}
    if unit.seeds is None:
        return summaries[unit.seed] if summaries else train(resuming(unit))["summary"]
    decided = [resuming(run) for run in unit_runs(unit) if run.seed not in summaries]
    for resume in (True, False):
        seeds = [run.seed for run in decided if run.resume == resume]
        if seeds:
            result = train(replace(unit, seeds=seeds, resume=resume, overwrite=not resume))
            summaries |= {run["summary"]["seed"]: run["summary"] for run in result["runs"]}
    return [summaries[seed] for seed in unit.seeds]


Outcome = dict | list[dict] | Exception
"""A unit's summary (a list for a ``--seeds`` unit), or the exception that stopped it."""


class Backend(Protocol):
    """Where the grid's runs train. Used as a context manager (it may start and stop a cluster)."""

    name: ClassVar[str]
    """The --backend value."""
    options: ClassVar[tuple[str, ...]]
    """The SweepConfig fields only this backend reads (others refuse them when set)."""

    @classmethod
    def from_config(cls, config: SweepConfig) -> Backend:
        """The backend of a sweep's config."""
        ...

    @property
    def slots(self) -> int:
        """How many runs train at once (for the ETA)."""
        ...

    def __enter__(self) -> Backend: ...

    def __exit__(self, *exc_info) -> None: ...

    def run(self, runs: list[TrainConfig]) -> Iterator[tuple[TrainConfig, Outcome]]:
        """Train ``runs`` (units: :func:`batched_units`); yields each with its outcome as it ends, in any order. A
        failed unit stops no other."""
        ...


@dataclass
class LocalBackend:
    """This machine: one run after another in this process, or ``workers`` at once in spawned processes."""

    workers: int = 1
    name: ClassVar[str] = "local"
    options: ClassVar[tuple[str, ...]] = ("workers",)

    @classmethod
    def from_config(cls, config: SweepConfig) -> LocalBackend:
        return cls(config.workers)

    @property
    def slots(self) -> int:
        return self.workers

    def __enter__(self) -> LocalBackend:
        return self

    def __exit__(self, *exc_info) -> None:
        pass

    def run(self, runs: list[TrainConfig]) -> Iterator[tuple[TrainConfig, Outcome]]:
        if self.workers == 1:
            for run in runs:
                try:
                    outcome = train_run(run)
                except Exception as error:  # a failed run must not stop the grid
                    outcome = error
                yield run, outcome
            return
        with ProcessPoolExecutor(self.workers, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(train_run, run): run for run in runs}
            for future in as_completed(futures):
                error = future.exception()
                yield futures[future], future.result() if error is None else error


@dataclass
class RayBackend:
    """Ray tasks, one per run, on the cluster at ``address`` (None: a local cluster started here).

    A cluster this backend started is shut down at the end; one that was already connected in this
    process (``ray.init`` called before, as the tests do) is used and left running.
    """

    address: str | None = None
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0
    max_retries: int = 3
    name: ClassVar[str] = "ray"
    options: ClassVar[tuple[str, ...]] = ("address", "cpus_per_run", "gpus_per_run", "max_retries")

    @classmethod
    def from_config(cls, config: SweepConfig) -> RayBackend:
        return cls(config.address, config.cpus_per_run, config.gpus_per_run, config.max_retries)

    @property
    def slots(self) -> int:
        import ray

        resources = ray.cluster_resources()
        slots = resources.get("CPU", 0.0) / self.cpus_per_run
        if self.gpus_per_run > 0:
            slots = min(slots, resources.get("GPU", 0.0) / self.gpus_per_run)
        return max(1, math.floor(slots))

    def __enter__(self) -> RayBackend:
        try:
            import ray
        except ImportError as error:
            raise SettingsError("--backend ray: needs ray: pip install -c constraints.txt -e '.[ray]'") from error
        self._started = not ray.is_initialized()
        if self._started and self.address is None:
            # "local": always a new cluster for the sweep (ray.init without an address would join one it finds)
            ray.init(address="local", include_dashboard=False)
        elif self._started:
            try:
                ray.init(address=self.address)
            except ConnectionError as error:
                raise SettingsError(f"--address: no Ray cluster at {self.address!r}: {error}") from error
        return self

    def __exit__(self, *exc_info) -> None:
        import ray

        if self._started:
            ray.shutdown()

    def run(self, runs: list[TrainConfig]) -> Iterator[tuple[TrainConfig, Outcome]]:
        import ray

        task = ray.remote(train_run).options(
            num_cpus=self.cpus_per_run, num_gpus=self.gpus_per_run, max_retries=self.max_retries
        )
        threads = max(1, int(self.cpus_per_run))
        # the workers' working directory may differ from ours: absolute paths
        pending = {
            task.remote(replace(run, out_dir=_absolute(run.out_dir), data_dir=_absolute(run.data_dir)), threads): run
            for run in runs
        }
        try:
            while pending:
                (ready,), _ = ray.wait(list(pending), num_returns=1)
                run = pending.pop(ready)
                try:
                    outcome = ray.get(ready)
                except ray.exceptions.RayTaskError as error:  # the run raised: its own exception
                    outcome = error.cause
                except ray.exceptions.RayError as error:  # its worker died more than max_retries times, ...
                    outcome = error
                yield run, outcome
        finally:  # an interrupted sweep stops its runs; the next one resumes them
            if ray.is_initialized():  # a driver that lost its cluster has nothing left to cancel
                for ref in pending:
                    ray.cancel(ref, force=True)


def _absolute(path: str) -> str:
    return str(Path(path).absolute())


BACKENDS: dict[str, type[Backend]] = {backend.name: backend for backend in (LocalBackend, RayBackend)}
"""--backend value -> its class (built from the sweep's config by ``from_config``)."""


def validate(config: SweepConfig, **overrides) -> list[TrainConfig]:
    """Check the sweep's own settings and every run's (:func:`deep.settings.validate_settings`); the run configs.

    Raises :class:`SettingsError` naming the first bad setting.
    """
    check_int(flag("workers"), config.workers, 1, numpy=False)
    check_bool(flag("batch_seeds"), config.batch_seeds, numpy=False)
    check_real(flag("cpus_per_run"), config.cpus_per_run, 0.0, low_open=True, numpy=False)
    check_real(flag("gpus_per_run"), config.gpus_per_run, 0.0, numpy=False)
    check_int(flag("max_retries"), config.max_retries, 0, numpy=False)
    defaults = SweepConfig()
    for backend in BACKENDS.values():
        for name in backend.options:
            if backend.name != config.backend and getattr(config, name) != getattr(defaults, name):
                rule = f"left unset with --backend {config.backend} (it is an option of --backend {backend.name})"
                raise invalid(flag(name), rule, getattr(config, name))
    for name in ("tasks", "algos", "datasets", "seeds"):
        if not getattr(config, name):
            raise SettingsError(f"{flag(name)}: must name at least one, got none")
    runs = run_configs(config, **overrides)
    for run in runs:
        validate_settings(run)
    return runs


def _scores(path: Path) -> tuple[float, float] | None:
    """The final and best normalized scores of a finished run's summary; None when it holds none."""
    try:
        summary = json.loads(path.read_text())
        final, best = summary["final_normalized_score"], summary["best_normalized_score"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v) for v in (final, best)):
        return None
    return float(final), float(best)


def _score_text(summary: dict) -> str:
    score = summary.get("final_normalized_score")
    return f"final {score:.1f}" if isinstance(score, int | float) else "no score"


def results(config: SweepConfig, errors: dict[str, str] | None = None) -> dict:
    """Mean, std (over seeds, ddof 0) and count of the final and best scores per (task, algorithm, dataset).

    A finished run (``summary.json``) without scores, and a run in ``errors`` (out dir -> the error that
    stopped it in this sweep), count in ``failed``, not in ``seeds``.
    """
    errors = errors or {}
    cells = {}
    for task in config.tasks:
        for algo in config.algos:
            for quality in config.datasets:
                finals, bests, failed = [], [], []
                for seed in config.seeds:
                    out_dir = run_dir(config, task, quality, algo, seed)
                    path = out_dir / "summary.json"
                    if str(out_dir) in errors:
                        failed.append(str(out_dir))
                    elif path.is_file():
                        scores = _scores(path)
                        if scores is None:
                            failed.append(str(out_dir))
                            continue
                        finals.append(scores[0])
                        bests.append(scores[1])
                cells[f"{task}/{algo}/{quality}"] = {
                    "task": task,
                    "algo": algo,
                    "dataset": quality,
                    "seeds": len(finals),
                    "failed": len(failed),
                    "failed_runs": failed,
                    "final_mean": float(np.mean(finals)) if finals else None,
                    "final_std": float(np.std(finals)) if finals else None,
                    "best_mean": float(np.mean(bests)) if bests else None,
                    "best_std": float(np.std(bests)) if bests else None,
                }
    return cells


def markdown_table(config: SweepConfig, cells: dict, task: str, which: str) -> str:
    """One markdown table of ``task``'s ``which`` ("final" or "best") normalized scores: ``mean ± std (seeds)``."""
    lines = [f"| {task} ({which}) | " + " | ".join(config.datasets) + " |"]
    lines.append("|---|" + "---|" * len(config.datasets))
    for algo in config.algos:
        row = []
        for quality in config.datasets:
            cell = cells[f"{task}/{algo}/{quality}"]
            text = "-"
            if cell["seeds"]:
                text = f"{cell[which + '_mean']:.1f} ± {cell[which + '_std']:.1f} ({cell['seeds']})"
            if cell["failed"]:
                failed = f"failed ({cell['failed']})"
                text = failed if text == "-" else f"{text}, {failed}"
            row.append(text)
        lines.append(f"| {algo} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours < 48 else f"{hours // 24}d{hours % 24:02d}h"


class Eta:
    """The grid's remaining time from the measured speed of its finished runs.

    The speed of (task, algorithm) is the mean ``wall_time_s / updates`` of its finished runs' summaries
    (evaluations included), else that of the task's finished runs; a run's remaining updates are its
    schedule minus those in its log (a resumed run). The ETA is their time over the backend's slots.
    """

    def __init__(self, slots: int):
        self.slots = slots
        self.speeds: dict[tuple[str, str], list[float]] = {}

    def add(self, summary: dict) -> None:
        """Count a finished run's speed (a summary without a positive wall time and update count is skipped)."""
        wall, updates = summary.get("wall_time_s"), summary.get("updates")
        if isinstance(wall, int | float) and isinstance(updates, int) and wall > 0 and updates > 0:
            batched = len(summary.get("batched_seeds") or [None])  # a batched program's wall time is its runs'
            self.speeds.setdefault((summary.get("task"), summary.get("algo")), []).append(wall / updates / batched)

    def seconds_per_update(self, task: str, algo: str) -> float | None:
        """The measured speed of (task, algo), else of the task; None before any run of the task finished."""
        measured = self.speeds.get((task, algo)) or [s for (t, _), v in self.speeds.items() if t == task for s in v]
        return float(np.mean(measured)) if measured else None

    def text(self, remaining: list[TrainConfig]) -> str:
        """``ETA 3h05m``, or what is known so far; ``remaining``: the runs not finished yet."""
        seconds, unmeasured = 0.0, set()
        for run in remaining:
            speed = self.seconds_per_update(run.task, run.algo)
            if speed is None:
                unmeasured.add(run.task)
                continue
            _, updates = validate_settings(run)
            seconds += speed * max(updates - _logged_updates(Path(run.out_dir)), 0)
        if unmeasured and len(unmeasured) == len({run.task for run in remaining}):
            return "ETA: once a run of " + ", ".join(sorted(unmeasured)) + " has finished"
        eta = _duration(seconds / self.slots)
        if unmeasured:
            return f"ETA > {eta} (plus the runs of {', '.join(sorted(unmeasured))}: none finished yet)"
        return f"ETA {eta}"


def _logged_updates(out_dir: Path) -> int:
    """The update count of the last row of a run's metrics.jsonl (0 without one)."""
    try:
        lines = (out_dir / "metrics.jsonl").read_text().splitlines()
        return int(json.loads(lines[-1])["update"]) if lines else 0
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _finished_summaries(runs: list[TrainConfig]) -> list[dict]:
    return _read_summaries(Path(run.out_dir) / "summary.json" for run in runs)


def _read_summaries(paths: Iterable[Path]) -> list[dict]:
    summaries = []
    for path in paths:
        try:
            summaries.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return [summary for summary in summaries if isinstance(summary, dict)]


def train_grid(config: SweepConfig, runs: list[TrainConfig]) -> dict[str, str]:
    """Train the unfinished ``runs`` on the config's backend, printing each end and the ETA; the errors.

    Returns out dir -> ``ExceptionType: message`` for every run that raised.
    """
    todo = [run for run in runs if not (Path(run.out_dir) / "summary.json").is_file()]
    errors: dict[str, str] = {}
    if not todo:
        return errors
    units = batched_units(todo) if config.batch_seeds else todo
    with BACKENDS[config.backend].from_config(config) as backend:
        eta = Eta(backend.slots)
        # every finished run of the out dir, not only this grid's: a narrowed sweep has its ETA at once
        for summary in _read_summaries(sorted(Path(config.out_dir).glob("*/summary.json"))):
            eta.add(summary)
        grouped = f" in {len(units)} batched unit(s)" if config.batch_seeds else ""
        print(
            f"{len(todo)} run(s) to train ({sum(run.resume for run in todo)} resumed){grouped} "
            f"on {config.backend}, {backend.slots} at a time; {eta.text(todo)}",
            flush=True,
        )
        remaining = list(todo)
        done = 0
        for unit, outcome in backend.run(units):
            members = unit_runs(unit)
            for index, run in enumerate(members):
                done += 1
                remaining = [other for other in remaining if other.out_dir != run.out_dir]
                if not isinstance(outcome, Exception):
                    summary = outcome if unit.seeds is None else outcome[index]
                elif finished := _finished_summaries([run]):  # a failed unit's runs that finished count as such
                    summary = finished[0]
                else:
                    errors[run.out_dir] = f"{type(outcome).__name__}: {outcome}"
                    print(f"FAILED [{done}/{len(todo)}] {run.out_dir}: {errors[run.out_dir]}", flush=True)
                    continue
                eta.add(summary)
                print(
                    f"done [{done}/{len(todo)}] {run.out_dir}: {_score_text(summary)}; {eta.text(remaining)}",
                    flush=True,
                )
    return errors


def sweep(config: SweepConfig, **overrides) -> tuple[dict, list[str]]:
    """Train the unfinished runs, write the tables; returns the cells and the failures (one line each).

    ``overrides``: further :class:`TrainConfig` fields of every run (see :func:`run_configs`).

    Raises :class:`SettingsError` (before any run starts) for a bad setting of the sweep or of its runs.
    """
    runs = validate(config, **overrides)
    errors = {} if config.table_only else train_grid(config, runs)
    cells = results(config, errors)
    failures = [f"{out_dir}: {error}" for out_dir, error in errors.items()]
    for cell in cells.values():
        failures += [
            f"{run}: finished without a score (delete its summary.json to train it again)"
            for run in cell["failed_runs"]
            if run not in errors
        ]
    text = "\n".join(markdown_table(config, cells, task, which) for task in config.tasks for which in ("final", "best"))
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomically(out_dir / "results.md", lambda temporary: temporary.write_text(text))
    payload = json.dumps({"cells": cells, "failures": failures}, indent=2) + "\n"
    write_atomically(out_dir / "results.json", lambda temporary: temporary.write_text(payload))
    print(text, end="")
    return cells, failures


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    config = tyro.cli(SweepConfig, args=argv, prog=PROG, description=__doc__.split("\n\n")[0])
    try:
        _, failures = sweep(config)
    except SettingsError as error:
        print("error: " + " ".join(str(error).split("\n")), file=sys.stderr)
        raise SystemExit(2) from None
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
