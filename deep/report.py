"""The report of a folder of runs: scores with intervals beside the paper's, learning curves, weights, uncertainty.

    python -m deep.report runs/sweep --out reports/sweep
    python -m deep.report runs/cn runs/pp --out reports/cn-pp

Reads every run under each RUNS_DIR (a folder at any depth holding deep/train.py's ``summary.json`` and
``metrics.jsonl``, e.g. deep.sweep's ``--out-dir``) and writes into ``--out`` (default RUNS_DIR/report when
there is one RUNS_DIR; required with several):

- ``table.md`` and ``table.tex``: per task, dataset and method the mean ± std over seeds (ddof 0) of the
  runs' final normalized score with the paper's value beside it (:data:`TABLE_2`; ICQL-QS from
  :data:`TABLE_1`), the IQM with its 95% stratified-bootstrap interval (rliable), the best per row in bold;
  then the probability of improvement of SPaCQL over each baseline, with its 95% interval (rliable);
- ``report.json``: every number of the tables, and the runs that are unfinished or failed;
- ``learning_curves.png``: normalized score over updates, mean over seeds with a 95% bootstrap band of the
  mean, one panel per task-dataset;
- ``weights.png``: SPaCQL's weights ``w_1..w_n`` over training, raw and min-max normalized (the paper's
  Figure 3);
- ``uncertainty.png``: the std of the target ensemble over training for SPaCQL, ICQL-QS and CFCQL (the
  paper's Figure 2);
- ``penalty.png``: the conservative penalty of every SPaCQL, ICQL-QS and CFCQL run over training, one line
  per seed (a diagnostic: on PP and World random a penalty collapsed to about 0 goes with a failed run).

Every file is written atomically. A user error (no such folder, no finished run in them, one RUNS_DIR inside
another, two runs of the same task, dataset, method and seed, an --out that is a file or missing with several
RUNS_DIRs, ...) is one ``error:`` line on stderr and exit code 2.
"""

from __future__ import annotations

import json
import math
import os
import sys
import textwrap
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from deep.envs.tasks import TASKS
from deep.storage.datasets import QUALITIES
from deep.storage.files import OutDirError, write_atomically
from tabular.validation import SettingsError, check_int

PROG = "python -m deep.report"

# Jin & Montana, "Partial Action Replacement: Tackling Distribution Shift in Offline MARL", Table 2 ("The
# average normalized score on offline MARL tasks"; mean ± std over 5 seeds; the baselines' values "as
# reported in the corresponding papers"), copied from ../shared/paper/partial-action-replacement.txt.
# Method names are deep.algorithms.offline's algorithm names (matd3-bc: MA-TD3+BC; DoF, a diffusion model, has no
# HalfCheetah value).
TABLE_2: dict[tuple[str, str], dict[str, tuple[float, float]]] = {
    ("cn", "expert"): {"omar": (114.9, 2.6), "macql": (12.2, 31.0), "iql": (103.7, 2.5), "matd3-bc": (108.3, 3.3),
                       "dof": (136.4, 3.9), "cfcql": (112.0, 4.0), "spacql": (111.9, 4.5)},
    ("cn", "medium"): {"omar": (47.9, 18.9), "macql": (14.3, 20.2), "iql": (28.2, 3.9), "matd3-bc": (29.3, 4.8),
                       "dof": (75.6, 8.7), "cfcql": (65.0, 10.2), "spacql": (78.6, 6.4)},
    ("cn", "medium-replay"): {"omar": (37.9, 12.3), "macql": (25.5, 5.9), "iql": (10.8, 4.5),
                              "matd3-bc": (15.4, 5.6), "dof": (57.4, 6.8), "cfcql": (52.2, 9.6),
                              "spacql": (71.9, 13.2)},
    ("cn", "random"): {"omar": (34.4, 5.3), "macql": (45.6, 8.7), "iql": (5.5, 1.1), "matd3-bc": (9.8, 4.9),
                       "dof": (35.9, 6.8), "cfcql": (62.2, 8.1), "spacql": (78.2, 14.0)},
    ("pp", "expert"): {"omar": (116.2, 19.8), "macql": (108.4, 21.5), "iql": (109.3, 10.1),
                       "matd3-bc": (115.2, 12.5), "dof": (125.6, 8.6), "cfcql": (118.2, 13.1),
                       "spacql": (111.2, 16.4)},
    ("pp", "medium"): {"omar": (66.7, 23.2), "macql": (55.0, 43.2), "iql": (53.6, 19.9), "matd3-bc": (65.1, 29.5),
                       "dof": (86.3, 10.6), "cfcql": (68.5, 21.8), "spacql": (61.9, 20.0)},
    ("pp", "medium-replay"): {"omar": (47.1, 15.3), "macql": (11.9, 9.2), "iql": (23.2, 12.0),
                              "matd3-bc": (28.7, 20.9), "dof": (65.4, 12.5), "cfcql": (71.1, 6.0),
                              "spacql": (75.0, 12.7)},
    ("pp", "random"): {"omar": (11.1, 2.8), "macql": (25.2, 11.5), "iql": (1.3, 1.6), "matd3-bc": (5.7, 3.5),
                       "dof": (16.5, 6.3), "cfcql": (78.5, 15.6), "spacql": (89.4, 13.7)},
    ("world", "expert"): {"omar": (110.4, 25.7), "macql": (99.7, 31.0), "iql": (107.8, 17.7),
                          "matd3-bc": (110.3, 21.3), "dof": (135.2, 19.1), "cfcql": (119.7, 26.4),
                          "spacql": (112.3, 7.8)},
    ("world", "medium"): {"omar": (74.6, 11.5), "macql": (67.4, 48.4), "iql": (70.5, 15.3), "matd3-bc": (73.4, 9.3),
                          "dof": (85.2, 11.2), "cfcql": (93.8, 31.8), "spacql": (98.1, 17.7)},
    ("world", "medium-replay"): {"omar": (42.9, 19.5), "macql": (13.2, 16.2), "iql": (41.5, 9.5),
                                 "matd3-bc": (17.4, 8.1), "dof": (58.6, 10.4), "cfcql": (73.4, 23.2),
                                 "spacql": (105.2, 11.1)},
    ("world", "random"): {"omar": (5.9, 5.2), "macql": (11.7, 11.0), "iql": (2.9, 4.0), "matd3-bc": (2.8, 5.5),
                          "dof": (13.1, 2.1), "cfcql": (68.0, 20.8), "spacql": (94.3, 7.4)},
    ("halfcheetah", "expert"): {"omar": (113.5, 4.3), "macql": (50.1, 20.1), "iql": (115.6, 4.2),
                                "matd3-bc": (114.4, 3.8), "cfcql": (118.5, 4.9), "spacql": (110.5, 5.9)},
    ("halfcheetah", "medium"): {"omar": (80.4, 10.2), "macql": (51.5, 26.7), "iql": (81.3, 3.7),
                                "matd3-bc": (75.5, 3.7), "cfcql": (80.5, 9.6), "spacql": (70.3, 7.8)},
    ("halfcheetah", "medium-replay"): {"omar": (57.7, 5.1), "macql": (37.0, 7.1), "iql": (58.8, 6.8),
                                       "matd3-bc": (27.1, 5.5), "cfcql": (59.5, 8.2), "spacql": (66.1, 3.4)},
    ("halfcheetah", "random"): {"omar": (13.5, 7.0), "macql": (5.3, 0.5), "iql": (7.4, 0.0), "matd3-bc": (7.4, 0.0),
                                "cfcql": (39.7, 4.0), "spacql": (43.8, 4.9)},
}  # fmt: skip
"""(task, dataset) -> method -> (mean, std) of the paper's Table 2."""

TABLE_1: dict[tuple[str, str], float] = {
    ("cn", "expert"): 97.2, ("cn", "medium"): 62.5, ("cn", "medium-replay"): 58.2, ("cn", "random"): 77.7,
    ("world", "expert"): 106.5, ("world", "medium"): 88.6, ("world", "medium-replay"): 82.5,
    ("world", "random"): 89.9,
}  # fmt: skip
"""(task, dataset) -> ICQL-QS's score in the paper's Table 1 ("Performance comparison between CFCQL and ICQL-QS";
mean only, CN and World only)."""

PAPER_METHODS = ("spacql", "icql-qs", "cfcql", "macql", "omar", "matd3-bc", "iql", "dof")
"""The methods of the paper's Tables 1-2, SPaCQL first (deep.sweep's ``--preset table2`` runs those registered
in deep.algorithms.methods; DoF, a diffusion model, is a quoted row)."""

UNCERTAINTY_METHODS = ("spacql", "icql-qs", "cfcql")
"""The methods of uncertainty.png (the paper's Figure 2 compares CFCQL and ICQL-QS)."""
PENALTY_METHODS = ("spacql", "icql-qs", "cfcql")
"""The methods of penalty.png: those of one penalty, CFCQL's counterfactual one (SPaCQL eq. 5's xi_c)."""


def paper_score(task: str, dataset: str, method: str) -> tuple[float, float | None, str] | None:
    """The paper's (mean, std, source) for a cell, std None where the paper gives none; None without a value."""
    if method == "icql-qs":
        mean = TABLE_1.get((task, dataset))
        return None if mean is None else (mean, None, "Table 1")
    value = TABLE_2.get((task, dataset), {}).get(method)
    return None if value is None else (*value, "Table 2")


@dataclass
class ReportConfig:
    """Tables and figures of the runs in folders (deep.sweep's out dirs, or any folders of deep/train.py runs)."""

    runs_dirs: tyro.conf.Positional[tuple[str, ...]]
    """Folders of the runs (one or more, none inside another): every folder below them holding a summary.json is
    one run."""
    out: str | None = None
    """Folder of the report's files; default RUNS_DIR/report with one RUNS_DIR, required with several."""
    reps: int = 2000
    """Bootstrap resamples of every interval (rliable's default, 50000, takes ~25x longer)."""
    seed: int = 0
    """Seed of the bootstrap resamples."""

    def __post_init__(self) -> None:
        if isinstance(self.runs_dirs, str | os.PathLike):  # ReportConfig("runs") from Python: one folder
            self.runs_dirs = (str(self.runs_dirs),)


class ReportError(Exception):
    """A folder of runs that cannot be reported on; the CLI prints it as one ``error:`` line, exit code 2."""


@dataclass
class Run:
    """One finished run: its cell, seed, final normalized score, ensemble size and metrics rows."""

    task: str
    dataset: str
    algo: str
    seed: int
    final: float
    n_critics: int | None  # the central critic ensemble's size; None for the decentralized methods
    rows: list[dict]


def _finite(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def load_runs(runs_dirs: Sequence[Path]) -> tuple[list[Run], list[str], list[str]]:
    """The finished runs under the folders ``runs_dirs``, and the unfinished and failed ones (their folders).

    A folder with a ``metrics.jsonl`` but no ``summary.json`` is unfinished; one whose summary or metrics cannot
    be read, or whose summary holds no final score, is failed.

    Raises
    ------
    ReportError
        No folder given, one that is not a folder, one inside another (or given twice), or two runs that share
        task, dataset, method and seed.
    """
    if not runs_dirs:
        raise ReportError("RUNS_DIR: give at least one folder of runs")
    for runs_dir in runs_dirs:
        if not runs_dir.is_dir():
            raise ReportError(f"RUNS_DIR: {runs_dir} is not a folder")
    for i, inner in enumerate(runs_dirs):
        for j, outer in enumerate(runs_dirs):
            if i != j and inner.resolve().is_relative_to(outer.resolve()):
                raise ReportError(
                    f"RUNS_DIR: {inner} is inside {outer} (or the same folder): its runs would be read twice"
                )
    summaries = sorted(path for runs_dir in runs_dirs for path in runs_dir.rglob("summary.json"))
    runs, failed, seen = [], [], {}
    for summary_path in summaries:
        folder = summary_path.parent
        try:
            summary = json.loads(summary_path.read_text())
            final = summary["final_normalized_score"]
            key = (summary["task"], summary["dataset"], summary["algo"], int(summary["seed"]))
            rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
            settings = summary["settings"]
            n_critics = int(settings["n_critics"]) if "n_critics" in settings else None
        except (OSError, ValueError, KeyError, TypeError):
            failed.append(str(folder))
            continue
        if not _finite(final):
            failed.append(str(folder))
            continue
        if key in seen:
            raise ReportError(
                f"RUNS_DIR: two runs of task {key[0]}, dataset {key[1]}, algo {key[2]}, seed {key[3]}: "
                f"{seen[key]} and {folder}; keep one of them, or report on each folder separately"
            )
        seen[key] = folder
        runs.append(Run(*key, final=float(final), n_critics=n_critics, rows=rows))
    unfinished = sorted(
        str(path.parent)
        for runs_dir in runs_dirs
        for path in runs_dir.rglob("metrics.jsonl")
        if not (path.parent / "summary.json").exists()
    )
    return runs, unfinished, failed


def _order(values, canonical) -> list:
    """``values`` (unique) in the order of ``canonical``, the others after them in sorted order."""
    values = set(values)
    return [v for v in canonical if v in values] + sorted(values - set(canonical))


@contextmanager
def _numpy_seed(seed: int):
    """Seed numpy's global generator inside the block (rliable's bootstraps draw from it), then restore it."""
    state = np.random.get_state()  # noqa: NPY002 (rliable draws from the global generator)
    np.random.seed(seed)  # noqa: NPY002
    try:
        yield
    finally:
        np.random.set_state(state)  # noqa: NPY002


def _rliable():
    """rliable's ``library`` and ``metrics`` (the ``report`` extra; pandas, seaborn, arch: imported for a report only).

    Raises :class:`ReportError` with the install command when rliable is not installed.
    """
    try:
        from rliable import library, metrics
    except ImportError as error:
        raise ReportError(
            "the report's intervals need rliable: pip install -c constraints.txt -e '.[report]'"
        ) from error
    return library, metrics


def iqm_interval(scores: np.ndarray, reps: int, seed: int) -> tuple[float, float, float]:
    """IQM of one cell's scores [runs] and its 95% stratified-bootstrap interval (rliable): (iqm, low, high)."""
    library, metrics = _rliable()

    with _numpy_seed(seed):
        point, interval = library.get_interval_estimates(
            {"cell": scores.reshape(-1, 1)}, lambda x: np.array([metrics.aggregate_iqm(x)]), reps=reps
        )
    return float(point["cell"][0]), float(interval["cell"][0, 0]), float(interval["cell"][1, 0])


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> np.float64:
    """rliable's probability of improvement of X over Y: P(X_m > Y_m) + P(X_m = Y_m) / 2 averaged over tasks m.

    The same value as ``rliable.metrics.probability_of_improvement`` (its Mann-Whitney U statistic over the
    ``runs_x x runs_y`` pairs of each task), computed for all tasks at once, so that the bootstrap of a full
    grid takes seconds instead of minutes. ``x`` [runs_x, tasks], ``y`` [runs_y, tasks].
    """
    pairs_greater = (x[:, None, :] > y[None, :, :]).mean(axis=(0, 1))  # [tasks]
    pairs_tied = (x[:, None, :] == y[None, :, :]).mean(axis=(0, 1))
    return np.mean(pairs_greater + 0.5 * pairs_tied)


def improvement_probability(x: np.ndarray, y: np.ndarray, reps: int, seed: int) -> tuple[float, float, float]:
    """:func:`probability_of_improvement` of scores [runs, tasks] and its 95% stratified-bootstrap interval
    (rliable: the runs of each task resampled, independently for X and Y): (p, low, high)."""
    library, _ = _rliable()

    with _numpy_seed(seed):
        point, interval = library.get_interval_estimates({"x,y": [x, y]}, probability_of_improvement, reps=reps)
    low, high = interval["x,y"].ravel()  # [2, 1]
    return float(point["x,y"]), float(low), float(high)


def cell_statistics(runs: list[Run], reps: int, seed: int) -> list[dict]:
    """Per (task, dataset, method) with runs: their seeds and scores, mean, std (ddof 0), IQM and its interval,
    and the paper's value."""
    cells: dict[tuple[str, str, str], list[Run]] = {}
    for run in runs:
        cells.setdefault((run.task, run.dataset, run.algo), []).append(run)
    statistics = []
    for (task, dataset, algo), members in sorted(cells.items(), key=lambda item: _cell_order(item[0])):
        members.sort(key=lambda run: run.seed)
        scores = np.array([run.final for run in members])
        iqm, low, high = iqm_interval(scores, reps, seed)
        paper = paper_score(task, dataset, algo)
        statistics.append(
            {
                "task": task,
                "dataset": dataset,
                "algo": algo,
                "seeds": [run.seed for run in members],
                "scores": scores.tolist(),
                "mean": float(np.mean(scores)),
                "std": float(np.std(scores)),
                "iqm": iqm,
                "iqm_low": low,
                "iqm_high": high,
                "paper_mean": None if paper is None else paper[0],
                "paper_std": None if paper is None else paper[1],
                "paper_source": None if paper is None else paper[2],
            }
        )
    return statistics


def _cell_order(key: tuple[str, str, str]) -> tuple:
    task, dataset, algo = key
    rank = {name: i for i, name in enumerate((*TASKS, *QUALITIES, *PAPER_METHODS))}
    return (rank.get(task, 99), task, rank.get(dataset, 99), dataset, rank.get(algo, 99), algo)


def improvement_statistics(runs: list[Run], reps: int, seed: int) -> list[dict]:
    """The probability of improvement of SPaCQL over each other method, over the task-datasets both have runs on.

    rliable needs as many runs on every task-dataset: each method keeps its first n seeds there, n its
    smallest seed count over those task-datasets (all of them for a complete grid).
    """
    scores: dict[str, dict[tuple[str, str], list[float]]] = {}
    for run in sorted(runs, key=lambda run: run.seed):
        scores.setdefault(run.algo, {}).setdefault((run.task, run.dataset), []).append(run.final)
    if "spacql" not in scores:
        return []
    statistics = []
    for baseline in _order(scores, PAPER_METHODS):
        if baseline == "spacql":
            continue
        shared = sorted(set(scores["spacql"]) & set(scores[baseline]), key=lambda cell: _cell_order((*cell, "")))
        if not shared:
            continue
        n_x = min(len(scores["spacql"][cell]) for cell in shared)
        n_y = min(len(scores[baseline][cell]) for cell in shared)
        x = np.array([scores["spacql"][cell][:n_x] for cell in shared]).T  # [runs, task-datasets]
        y = np.array([scores[baseline][cell][:n_y] for cell in shared]).T
        p, low, high = improvement_probability(x, y, reps, seed)
        statistics.append(
            {
                "baseline": baseline,
                "probability": p,
                "low": low,
                "high": high,
                "task_datasets": [f"{task}/{dataset}" for task, dataset in shared],
                "runs": [n_x, n_y],
            }
        )
    return statistics


def _rows_of(cells: list[dict]) -> tuple[list[tuple[str, str]], list[str]]:
    """The table's rows (task, dataset) and method columns (SPaCQL first, then the paper's order)."""
    rows = sorted({(c["task"], c["dataset"]) for c in cells}, key=lambda cell: _cell_order((*cell, "")))
    return rows, _order({c["algo"] for c in cells}, PAPER_METHODS)


def _best(cells: dict[str, dict], key: str) -> set[str]:
    """The methods with the row's highest ``key`` (none when fewer than two methods have runs in the row)."""
    if len(cells) < 2:
        return set()
    top = max(cell[key] for cell in cells.values())
    return {algo for algo, cell in cells.items() if cell[key] == top}


def _paper_text(task: str, dataset: str, algo: str, plus_minus: str) -> str:
    paper = paper_score(task, dataset, algo)
    if paper is None:
        return "-"
    mean, std, _ = paper
    return f"{mean:.1f}" if std is None else f"{mean:.1f}{plus_minus}{std:.1f}"


def _tables(cells: list[dict], improvements: list[dict], reps: int, latex: bool) -> str:
    """table.md (``latex`` False) or table.tex: scores beside the paper's, IQMs, probabilities of improvement."""
    rows, methods = _rows_of(cells)
    by_key = {(c["task"], c["dataset"], c["algo"]): c for c in cells}
    pm = " $\\pm$ " if latex else " ± "

    def bold(text: str, on: bool) -> str:
        if not on:
            return text
        return f"\\textbf{{{text}}}" if latex else f"**{text}**"

    score_lines, iqm_lines = [], []
    for task, dataset in rows:
        row = {algo: by_key[(task, dataset, algo)] for algo in methods if (task, dataset, algo) in by_key}
        best_mean, best_iqm = _best(row, "mean"), _best(row, "iqm")
        scores, iqms = [task, dataset], [task, dataset]
        for algo in methods:
            cell = row.get(algo)
            if cell is None:
                scores.append("-")
                iqms.append("-")
            else:
                scores.append(
                    bold(f"{cell['mean']:.1f}{pm}{cell['std']:.1f}", algo in best_mean) + f" ({len(cell['scores'])})"
                )
                interval = f"[{cell['iqm_low']:.1f}, {cell['iqm_high']:.1f}]"
                iqms.append(bold(f"{cell['iqm']:.1f}", algo in best_iqm) + f" {interval}")
            scores.append(_paper_text(task, dataset, algo, pm))
        score_lines.append(scores)
        iqm_lines.append(iqms)
    improvement_lines = [
        [i["baseline"], f"{i['probability']:.2f}", f"[{i['low']:.2f}, {i['high']:.2f}]", str(len(i["task_datasets"])),
         f"{i['runs'][0]} / {i['runs'][1]}"]
        for i in improvements
    ]  # fmt: skip
    score_header = ["task", "dataset"] + [f"{algo} {which}" for algo in methods for which in ("(ours)", "(paper)")]
    iqm_header = ["task", "dataset", *methods]
    improvement_header = ["baseline", "P(spacql > baseline)", "95% interval", "task-datasets", "runs (spacql / it)"]
    captions = [
        "Final normalized score: mean ± std over seeds (ddof 0; the number of seeds in parentheses) of each run's last "
        "evaluation, beside the paper's value (Table 2; ICQL-QS: Table 1, which gives no std). Bold: the best mean "
        "of the row.",
        "IQM of the final normalized score (the mean of the seeds left after dropping a quarter at each end: the "
        f"middle 3 of 5; the mean below 4 seeds) with its 95% stratified-bootstrap interval (rliable, {reps} "
        "resamples). Bold: the best IQM of the row.",
        "Probability of improvement of SPaCQL over each baseline: P(a SPaCQL run scores higher than a baseline run "
        "on the same task-dataset), averaged over the task-datasets both have runs on, with its 95% "
        f"stratified-bootstrap interval (rliable, {reps} resamples). rliable needs as many runs on every "
        "task-dataset: each method keeps its first n seeds on each, n in the last column.",
    ]
    tables = (
        (score_header, score_lines),
        (iqm_header, iqm_lines),
        (improvement_header, improvement_lines),
    )
    render = _latex_table if latex else _markdown_table
    return "\n".join(render(caption, header, lines) for caption, (header, lines) in zip(captions, tables, strict=True))


def _markdown_table(caption: str, header: list[str], lines: list[list[str]]) -> str:
    text = [caption, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    text += ["| " + " | ".join(line) + " |" for line in lines] or ["| " + " | ".join("-" * len(header)) + " |"]
    return "\n".join(text) + "\n"


def _latex_table(caption: str, header: list[str], lines: list[list[str]]) -> str:
    def escaped(text: str) -> str:
        return text.replace("%", "\\%").replace("_", "\\_").replace(">", "$>$").replace("±", "$\\pm$")

    text = [
        "% needs \\usepackage{booktabs}",
        "\\begin{table}[ht]",
        "\\centering",
        f"\\caption{{{escaped(caption)}}}",
        "\\begin{tabular}{" + "l" * 2 + "r" * (len(header) - 2) + "}",
        "\\toprule",
        " & ".join(escaped(name) for name in header) + " \\\\",
        "\\midrule",
    ]
    text += [" & ".join(line) + " \\\\" for line in lines]
    text += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(text) + "\n"


def _colors(methods: list[str]) -> dict[str, str]:
    """One color per method, the same in every figure."""
    palette = [f"C{i}" for i in range(10)]
    ordered = _order(methods, PAPER_METHODS)
    return {algo: palette[i % len(palette)] for i, algo in enumerate(ordered)}


def _curve(runs: list[Run], column: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The updates logged with ``column`` by every run, and the values [runs, updates]; None without any."""
    series = [{row["update"]: row[column] for row in run.rows if _finite(row.get(column))} for run in runs]
    updates = sorted(set.intersection(*(set(s) for s in series)))
    if not updates:
        return None
    return np.array(updates), np.array([[s[u] for u in updates] for s in series])


def mean_band(values: np.ndarray, rng: np.random.Generator, reps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over runs of ``values [runs, points]`` and the 95% percentile-bootstrap band of that mean.

    The runs are resampled as whole curves (one index draw per resample for every point).
    """
    indices = rng.integers(0, values.shape[0], size=(reps, values.shape[0]))
    means = values[indices].mean(axis=1)  # [reps, points]
    low, high = np.percentile(means, [2.5, 97.5], axis=0)
    return values.mean(axis=0), low, high


def _panel_grid(n_panels: int, columns: int, panel_size: tuple[float, float]) -> tuple[Figure, list]:
    columns = min(columns, n_panels)
    rows = math.ceil(n_panels / columns)
    figure = Figure(figsize=(panel_size[0] * columns, panel_size[1] * rows + 0.8), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel().tolist()
    for unused in axes[n_panels:]:
        unused.set_visible(False)
    return figure, axes[:n_panels]


def _updates_axis(axis) -> None:
    """x: critic updates, ticks as 500, 1k, 10k."""
    axis.set_xlabel("critic updates")
    axis.xaxis.set_major_formatter(
        FuncFormatter(lambda value, _: f"{value / 1000:g}k" if value >= 1000 else f"{value:g}")
    )


def _suptitle(figure: Figure, title: str, details: str) -> None:
    """A bold title and its details, wrapped to the figure's width."""
    wrapped = textwrap.fill(details, width=max(40, int(figure.get_figwidth() * 12)))
    figure.suptitle(f"$\\bf{{{title.replace(' ', '~')}}}$\n{wrapped}", fontsize="medium")


TASK_NAMES = {"cn": "CN", "pp": "PP", "world": "World", "halfcheetah": "HalfCheetah"}


def _title(task: str, dataset: str, by_method: dict[str, list[Run]] | None = None) -> str:
    """``CN random``, with the seeds of each method when given: ``(3 seeds)``, or on the next lines
    ``seeds: spacql 3, cfcql 2``."""
    title = f"{TASK_NAMES.get(task, task)} {dataset}"
    if by_method is None:
        return title
    counts = {algo: len(members) for algo, members in by_method.items()}
    if len(set(counts.values())) == 1:
        return f"{title} ({next(iter(counts.values()))} seeds)"
    seeds = ", ".join(f"{algo} {n}" for algo, n in counts.items())
    return f"{title}\n" + textwrap.fill(f"seeds: {seeds}", 36)  # beside another panel: wrapped, not overlapping


def _legend(figure: Figure, axes: list) -> None:
    """One legend below the panels with every labeled line of ``axes`` (the same color in every panel)."""
    entries = {}
    for axis in axes:
        for handle, label in zip(*axis.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    figure.legend(entries.values(), entries.keys(), loc="outside lower center", ncols=min(len(entries), 5))


def _groups(runs: list[Run], methods) -> dict[tuple[str, str], dict[str, list[Run]]]:
    """(task, dataset) -> method -> its runs, for the methods in ``methods``, in the tables' order."""
    groups: dict[tuple[str, str], dict[str, list[Run]]] = {}
    for run in sorted(runs, key=lambda run: _cell_order((run.task, run.dataset, run.algo))):
        if run.algo in methods:
            groups.setdefault((run.task, run.dataset), {}).setdefault(run.algo, []).append(run)
    return groups


def learning_curves(runs: list[Run], rng: np.random.Generator, reps: int) -> Figure:
    """Normalized score over updates, mean over seeds and its 95% bootstrap band, per method and task-dataset."""
    methods = _order({run.algo for run in runs}, PAPER_METHODS)
    colors = _colors(methods)
    groups = _groups(runs, methods)
    figure, axes = _panel_grid(len(groups), 4, (4.2, 3.2))
    for axis, ((task, dataset), by_method) in zip(axes, groups.items(), strict=True):
        for algo, members in by_method.items():
            curve = _curve(members, "normalized_score")
            if curve is None:  # the seeds share no evaluation update
                continue
            updates, values = curve
            mean, low, high = mean_band(values, rng, reps)
            axis.plot(updates, mean, color=colors[algo], label=algo, marker=".")
            axis.fill_between(updates, low, high, color=colors[algo], alpha=0.2, linewidth=0)
        axis.set_title(_title(task, dataset, by_method))
        axis.set_ylabel("normalized score")
        axis.grid(alpha=0.3)
        _updates_axis(axis)
    _legend(figure, axes)
    _suptitle(
        figure,
        "Learning curves",
        "normalized score 100 (R - R_random) / (R_expert - R_random) of the deterministic team at each evaluation; "
        "line: mean over seeds, band: 95% bootstrap interval of the mean",
    )
    return figure


def min_max_normalized(weights: np.ndarray) -> np.ndarray:
    """``weights [n, updates]`` mapped at every update to [0, 1]: the smallest to 0, the largest to 1 (all 0
    where the n weights are equal)."""
    low = weights.min(axis=0)
    spread = weights.max(axis=0) - low
    return (weights - low) / np.where(spread > 0, spread, 1.0)


def weights_figure(runs: list[Run], rng: np.random.Generator, reps: int) -> Figure | None:
    """SPaCQL's w_1..w_n over updates per task-dataset: raw (mean over seeds, 95% band) and min-max normalized.

    The normalized panel maps, at every logged update, the smallest of the n mean weights to 0 and the largest
    to 1, so that which subset size dominates stays visible when the raw weights differ by little.
    None without SPaCQL runs.
    """
    groups = _groups(runs, ("spacql",))
    if not groups:
        return None
    figure, axes = _panel_grid(2 * len(groups), 4, (4.2, 3.2))
    for (task, dataset), by_method in groups.items():
        members = by_method["spacql"]
        n_weights = sum(key.startswith("w_") for key in members[0].rows[0])
        raw, normalized = axes.pop(0), axes.pop(0)
        means = []
        for k in range(1, n_weights + 1):
            updates, values = _curve(members, f"w_{k}")
            mean, low, high = mean_band(values, rng, reps)
            means.append(mean)
            raw.plot(updates, mean, color=f"C{k - 1}", label=f"$w_{k}$: {k} agent{'s' if k > 1 else ''} replaced")
            raw.fill_between(updates, low, high, color=f"C{k - 1}", alpha=0.2, linewidth=0)
        for k, values in enumerate(min_max_normalized(np.array(means)), start=1):
            normalized.plot(updates, values, color=f"C{k - 1}")
        raw.axhline(1 / n_weights, color="gray", linestyle=":", linewidth=1, label="uniform weights 1/n")
        raw.set_title(_title(task, dataset, by_method))
        raw.set_ylabel("weight $w_k$")
        normalized.set_title(f"{_title(task, dataset)}, normalized")
        normalized.set_ylabel("min-max normalized $w_k$")
        normalized.set_ylim(-0.05, 1.05)
        for axis in (raw, normalized):
            axis.grid(alpha=0.3)
            _updates_axis(axis)
    _legend(figure, figure.axes)
    _suptitle(
        figure,
        "SPaCQL's weights (eq. 7; the paper's Figure 3)",
        "w_k: the weight of the backup in which k random agents take the policy's action, mean over the batch and "
        "the seeds (band: 95% bootstrap interval); normalized: at each update the smallest weight is 0, the "
        "largest 1",
    )
    return figure


def uncertainty_figure(runs: list[Run], rng: np.random.Generator, reps: int) -> Figure | None:
    """The target ensemble's std over updates for SPaCQL, ICQL-QS and CFCQL, per task-dataset; None without runs."""
    groups = _groups(runs, UNCERTAINTY_METHODS)
    if not groups:
        return None
    colors = _colors([run.algo for run in runs])
    figure, axes = _panel_grid(len(groups), 4, (4.2, 3.2))
    for axis, ((task, dataset), by_method) in zip(axes, groups.items(), strict=True):
        lowest = math.inf
        for algo, members in by_method.items():
            updates, values = _curve(members, "target_std")
            mean, low, high = mean_band(values, rng, reps)
            lowest = min(lowest, float(low.min()))
            sizes = ", ".join(str(size) for size in sorted({run.n_critics for run in members}))
            axis.plot(updates, mean, color=colors[algo], label=f"{algo} (E = {sizes} critics)")
            axis.fill_between(updates, low, high, color=colors[algo], alpha=0.2, linewidth=0)
        if lowest > 0:
            axis.set_yscale("log")
        axis.set_title(_title(task, dataset, by_method))
        axis.set_ylabel(r"std$_e\ Q'_e(s', a')$ (log scale)" if lowest > 0 else r"std$_e\ Q'_e(s', a')$")
        axis.grid(alpha=0.3, which="both")
        _updates_axis(axis)
    _legend(figure, axes)
    _suptitle(
        figure,
        "Uncertainty of the Bellman target (the paper's Figure 2)",
        "std over the E target critics of Q'_e(s', a') at the candidate next joint actions, mean over the batch, "
        "the candidates and the seeds (band: 95% bootstrap interval); CFCQL and MACQL have E = 2 twin critics, "
        "whose std is half their difference",
    )
    return figure


def penalty_figure(runs: list[Run]) -> Figure | None:
    """The conservative penalty of every SPaCQL, ICQL-QS and CFCQL run over updates, one line per seed, per
    task-dataset; None without such runs. Seeds are not averaged: they may part ways (collapse or not)."""
    groups = _groups(runs, PENALTY_METHODS)
    if not groups:
        return None
    colors = _colors([run.algo for run in runs])
    figure, axes = _panel_grid(len(groups), 4, (4.2, 3.2))
    for axis, ((task, dataset), by_method) in zip(axes, groups.items(), strict=True):
        for algo, members in by_method.items():
            for seed_index, run in enumerate(members):
                curve = _curve([run], "penalty")
                if curve is not None:
                    updates, values = curve
                    label = f"{algo} (one line per seed)" if seed_index == 0 else None
                    axis.plot(updates, values[0], color=colors[algo], linewidth=1.0, alpha=0.8, label=label)
        axis.set_title(_title(task, dataset, by_method))
        axis.set_ylabel(r"penalty $\xi$ (mean over critics)")
        axis.grid(alpha=0.3)
        _updates_axis(axis)
    _legend(figure, axes)
    _suptitle(
        figure,
        "Conservative penalty",
        "E_B[ mean_i logsumexp_j (Q(s, a_i^j, a_-i) - log p(a_i^j)) - Q(s, a) ] over the batch, before alpha, at "
        "each logged update of each seed; a critic flat in each agent's action gives ln S + d ln 2 (3.69 for S = 10 "
        "uniform samples of a 2-D action), one that ranks the data's action above the samples gives less",
    )
    return figure


def _save_figure(figure: Figure, path: Path) -> None:
    write_atomically(path, lambda temporary: figure.savefig(temporary, format="png", dpi=90))


def _save_text(text: str, path: Path) -> None:
    write_atomically(path, lambda temporary: temporary.write_text(text))


def report_folder(config: ReportConfig) -> Path:
    """The report's folder: ``--out``, else RUNS_DIR/report when there is one RUNS_DIR.

    Raises
    ------
    ReportError
        No --out with several RUNS_DIRs (no one folder of them is the natural home of the report).
    """
    if config.out is not None:
        return Path(config.out)
    if len(config.runs_dirs) != 1:
        raise ReportError(f"--out: required with several RUNS_DIRs (got {len(config.runs_dirs)})")
    return Path(config.runs_dirs[0]) / "report"


def report(config: ReportConfig) -> dict:
    """Write the report's files (module docstring) into ``config.out``; returns report.json's content.

    Raises
    ------
    ReportError
        No folder of runs, no finished run with a score in them, one RUNS_DIR inside another, two runs of the
        same cell, or an --out that cannot be a folder or is missing with several RUNS_DIRs.
    SettingsError
        ``reps`` below 1.
    """
    check_int("--reps", config.reps, 1, numpy=False)
    check_int("--seed", config.seed, 0, numpy=False)
    runs_dirs = [Path(folder) for folder in config.runs_dirs]
    out = report_folder(config)
    runs, unfinished, failed = load_runs(runs_dirs)
    if not runs:
        raise ReportError(
            f"RUNS_DIR: no finished run with a score under {', '.join(map(str, runs_dirs))} "
            "(no summary.json of deep/train.py)"
        )
    _rliable()  # before anything is written
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ReportError(f"--out: cannot make the folder {out}: {error.strerror or error}") from error
    cells = cell_statistics(runs, config.reps, config.seed)
    improvements = improvement_statistics(runs, config.reps, config.seed)
    notes = "".join(f"\nUnfinished (not in the tables): {folder}" for folder in unfinished)
    notes += "".join(
        f"\nNot reported (no final score, or an unreadable summary.json or metrics.jsonl): {folder}"
        for folder in failed
    )
    _save_text(
        _tables(cells, improvements, config.reps, latex=False) + notes + ("\n" if notes else ""), out / "table.md"
    )
    _save_text(_tables(cells, improvements, config.reps, latex=True), out / "table.tex")
    rng = np.random.default_rng(config.seed)
    figures = {
        "learning_curves.png": learning_curves(runs, rng, config.reps),
        "weights.png": weights_figure(runs, rng, config.reps),
        "uncertainty.png": uncertainty_figure(runs, rng, config.reps),
        "penalty.png": penalty_figure(runs),
    }
    for name, figure in figures.items():
        if figure is None:
            print(f"{name}: not written (no runs of its methods)")
        else:
            _save_figure(figure, out / name)
    content = {
        "runs_dirs": [str(folder) for folder in runs_dirs],
        "reps": config.reps,
        "seed": config.seed,
        "cells": cells,
        "probability_of_improvement": improvements,
        "unfinished": unfinished,
        "failed": failed,
        "figures": [name for name, figure in figures.items() if figure is not None],
    }
    _save_text(json.dumps(content, indent=2) + "\n", out / "report.json")
    return content


def main(argv: list[str] | None = None) -> int:
    config = tyro.cli(ReportConfig, args=argv, prog=PROG, description=__doc__.split("\n\n")[0])
    try:
        content = report(config)
    except (ReportError, SettingsError, OutDirError) as error:
        print("error: " + " ".join(str(error).split("\n")), file=sys.stderr)
        raise SystemExit(2) from None
    out = report_folder(config)
    print(f"{len(content['cells'])} cells from {sum(len(c['scores']) for c in content['cells'])} runs -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
