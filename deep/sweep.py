"""A resumable grid of deep/train.py runs and its results table (mean +- std over seeds per algorithm and dataset).

    python -m deep.sweep --task cn --algos spacql cfcql icql-qs --datasets random medium-replay medium expert \
        --seeds 0 1 2 --out-dir runs/sweep

Each run writes to ``<out-dir>/<task>-<dataset>-<algo>-seed<seed>/``. A run with a ``summary.json``
is finished and skipped; one with a ``checkpoint.pt`` is resumed (``--resume``), so the same command
continues a killed sweep; one without (killed before its first checkpoint) starts over
(``--overwrite``). At the end (and with ``--table-only`` without training) the table of the final
and best normalized scores is printed and written to ``<out-dir>/results.md`` and ``results.json``.
``--workers K`` runs K runs at once in separate processes (one thread each).

Every run's settings are validated before the grid starts (deep/settings.py); a bad setting is one
``error:`` line on stderr and exit code 2. A finished run whose summary holds no score (or cannot be
read) is counted as failed in the table (``failed (n)``) and listed in the failures.
"""

from __future__ import annotations

import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Literal

import numpy as np
import tyro

from tabular.validation import check_int

from ._files import write_atomically
from .offline import Algorithm
from .settings import SettingsError, flag, validate_settings
from .train import TrainConfig, train

PROG = "python -m deep.sweep"

Quality = Literal["random", "medium-replay", "medium", "expert"]


@dataclass
class SweepConfig:
    """Train every (algorithm, dataset, seed) of a grid on one task and tabulate the normalized scores."""

    task: Literal["cn", "pp", "world", "halfcheetah"] = "cn"
    """Benchmark task."""
    algos: tuple[Algorithm, ...] = ("spacql", "cfcql", "icql-qs")
    """Algorithms (rows of the table)."""
    datasets: tuple[Quality, ...] = ("random", "medium-replay", "medium", "expert")
    """Dataset qualities (columns of the table)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Training seeds of every cell."""
    updates: int | None = None
    # CFCQL reports ~2k update rounds for CN/PP (5k World, 100k HalfCheetah); its round is one critic+actor
    # update plus ca_ratio - 1 = 4 critic-only updates, so 2k rounds are 10k critic updates here.
    """Critic updates per run, >= 1; default 5 x CFCQL's rounds: 10k on CN and PP, 25k World, 500k HalfCheetah."""
    eval_every: int = 1000
    """Evaluate every this many updates (and at the end); must be a positive multiple of the runs' log interval
    (deep/train.py --log-every, 100)."""
    eval_episodes: int = 100
    """Episodes per evaluation."""
    dataset_seed: int = 0
    """Which dataset file of each quality."""
    data_dir: str = "data"
    """Folder of the dataset files."""
    out_dir: str = "runs/sweep"
    """Folder of the runs and of results.md / results.json."""
    workers: int = 1
    """Runs trained at once, each in its own process with one thread."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Device of every run."""
    table_only: bool = False
    """Only tabulate the finished runs."""


def run_configs(config: SweepConfig, **overrides) -> list[TrainConfig]:
    """The grid's training configs, each resuming its checkpoint when one exists, else starting over.

    ``overrides`` sets further :class:`TrainConfig` fields of every run (Python API only, e.g. small
    networks in tests).
    """
    configs = []
    # seed-major, algorithms innermost: a partly finished sweep holds comparable cells
    for seed in config.seeds:
        for quality in config.datasets:
            for algo in config.algos:
                out_dir = Path(config.out_dir) / f"{config.task}-{quality}-{algo}-seed{seed}"
                resume = (out_dir / "checkpoint.pt").is_file()
                configs.append(
                    TrainConfig(
                        algo=algo,
                        task=config.task,
                        dataset=quality,
                        seed=seed,
                        dataset_seed=config.dataset_seed,
                        data_dir=config.data_dir,
                        out_dir=str(out_dir),
                        updates=config.updates,
                        eval_every=config.eval_every,
                        eval_episodes=config.eval_episodes,
                        device=config.device,
                        resume=resume,
                        overwrite=not resume,  # a run killed before its first checkpoint left nothing to keep
                        progress=False,
                        **overrides,
                    )
                )
    return configs


def _train_one(config: TrainConfig) -> dict:
    import torch

    torch.set_num_threads(1)
    return train(config)["summary"]


def validate(config: SweepConfig, **overrides) -> list[TrainConfig]:
    """Check the sweep's own settings and every run's (:func:`deep.settings.validate_settings`); the run configs.

    Raises :class:`SettingsError` naming the first bad setting.
    """
    check_int(flag("workers"), config.workers, 1, numpy=False)
    for name in ("algos", "datasets", "seeds"):
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


def results(config: SweepConfig) -> dict:
    """Mean, std (over seeds, ddof 0) and count of the final and best scores per (algorithm, dataset).

    A finished run (``summary.json``) without scores counts in ``failed``, not in ``seeds``.
    """
    cells = {}
    for algo in config.algos:
        for quality in config.datasets:
            finals, bests, failed = [], [], []
            for seed in config.seeds:
                path = Path(config.out_dir) / f"{config.task}-{quality}-{algo}-seed{seed}" / "summary.json"
                if path.is_file():
                    scores = _scores(path)
                    if scores is None:
                        failed.append(str(path.parent))
                        continue
                    finals.append(scores[0])
                    bests.append(scores[1])
            cells[f"{algo}/{quality}"] = {
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


def markdown_table(config: SweepConfig, cells: dict, which: str) -> str:
    """One markdown table of ``which`` ("final" or "best") normalized scores: ``mean ± std (seeds)``."""
    lines = [f"| {config.task} ({which}) | " + " | ".join(config.datasets) + " |"]
    lines.append("|---|" + "---|" * len(config.datasets))
    for algo in config.algos:
        row = []
        for quality in config.datasets:
            cell = cells[f"{algo}/{quality}"]
            text = "-"
            if cell["seeds"]:
                text = f"{cell[which + '_mean']:.1f} ± {cell[which + '_std']:.1f} ({cell['seeds']})"
            if cell.get("failed"):
                failed = f"failed ({cell['failed']})"
                text = failed if text == "-" else f"{text}, {failed}"
            row.append(text)
        lines.append(f"| {algo} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def sweep(config: SweepConfig, **overrides) -> tuple[dict, list[str]]:
    """Train the unfinished runs, write the tables; returns the cells and the failures (one line each).

    ``overrides``: further :class:`TrainConfig` fields of every run (see :func:`run_configs`).

    Raises :class:`SettingsError` (before any run starts) for a bad setting of the sweep or of its runs.
    """
    todo = [c for c in validate(config, **overrides) if not (Path(c.out_dir) / "summary.json").is_file()]
    failures = []
    if not config.table_only and todo:
        print(f"{len(todo)} run(s) to train ({sum(c.resume for c in todo)} resumed), {config.workers} worker(s)")
        if config.workers == 1:
            for run in todo:
                try:
                    summary = _train_one(run)
                    print(f"done {run.out_dir}: {_score_text(summary)}", flush=True)
                except Exception as error:  # a failed run must not stop the grid
                    failures.append(f"{run.out_dir}: {type(error).__name__}: {error}")
                    print(f"FAILED {failures[-1]}", flush=True)
        else:
            with ProcessPoolExecutor(config.workers, mp_context=get_context("spawn")) as pool:
                futures = {pool.submit(_train_one, run): run for run in todo}
                for future in as_completed(futures):
                    run = futures[future]
                    try:
                        summary = future.result()
                        print(f"done {run.out_dir}: {_score_text(summary)}", flush=True)
                    except Exception as error:
                        failures.append(f"{run.out_dir}: {type(error).__name__}: {error}")
                        print(f"FAILED {failures[-1]}", flush=True)
    cells = results(config)
    for cell in cells.values():
        failures += [
            f"{run}: finished without a score (delete its summary.json to train it again)"
            for run in cell["failed_runs"]
        ]
    text = markdown_table(config, cells, "final") + "\n" + markdown_table(config, cells, "best")
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
