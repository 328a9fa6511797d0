"""deep.report: the table's numbers, bold and paper columns, probability of improvement, figures, CLI errors."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.image import imread
from rliable import metrics
from scipy.stats import trim_mean

from deep.report import (
    PENALTY_METHODS,
    TABLE_1,
    TABLE_2,
    ReportConfig,
    load_runs,
    main,
    mean_band,
    min_max_normalized,
    penalty_figure,
    probability_of_improvement,
    report,
)
from deep.sweep import SweepConfig, sweep
from deep.train import TrainConfig, train
from tests.deep.test_sweep import TINY
from tests.deep.tiny_offline import write_tiny_dataset

torch.set_num_threads(1)
ALGOS = ("spacql", "icql-qs", "cfcql")
PAPER = Path(__file__).resolve().parents[3] / "shared" / "paper" / "partial-action-replacement.txt"


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    """12 tiny real runs in deep.sweep's layout: spacql, icql-qs, cfcql x CN random, expert x seeds 0, 1."""
    root = tmp_path_factory.mktemp("report")
    for quality in ("random", "expert"):
        for seed in (0, 1):  # each run trains on the dataset of its own seed
            write_tiny_dataset(root / "data", quality=quality, seed=seed)
    config = SweepConfig(
        algos=ALGOS,
        datasets=("random", "expert"),
        seeds=(0, 1),
        updates=50,
        eval_every=25,
        eval_episodes=2,
        device="cpu",
        data_dir=str(root / "data"),
        out_dir=str(root / "runs"),
    )
    _, failures = sweep(config, **TINY)
    assert failures == []
    return root / "runs"


def _finals(runs: Path, dataset: str, algo: str, seeds=(0, 1)) -> np.ndarray:
    return np.array(
        [
            json.loads((runs / f"cn-{dataset}-{algo}-seed{seed}" / "summary.json").read_text())[
                "final_normalized_score"
            ]
            for seed in seeds
        ]
    )


def _table_row(table: str, task: str, dataset: str, section: int = 0) -> dict[str, str]:
    """The cells of a row of table.md's ``section``-th table, by column name."""
    tables = [block for block in table.split("\n\n") if block.startswith("| ")]
    header, _, *lines = tables[section].splitlines()
    names = [cell.strip() for cell in header.strip("|").split("|")]
    for line in lines:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells[:2] == [task, dataset]:
            return dict(zip(names, cells, strict=True))
    raise AssertionError(f"no row {task} {dataset}")


@pytest.fixture(scope="module")
def reported(runs_dir, tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("out") / "report"
    return report(ReportConfig(str(runs_dir), out=str(out), reps=200)), out


def test_the_table_holds_mean_std_and_iqm_of_the_final_scores(runs_dir, reported):
    content, out = reported
    cells = {(c["task"], c["dataset"], c["algo"]): c for c in content["cells"]}
    assert set(cells) == {("cn", dataset, algo) for dataset in ("random", "expert") for algo in ALGOS}
    table = (out / "table.md").read_text()
    for (_, dataset, algo), cell in cells.items():
        finals = _finals(runs_dir, dataset, algo)
        assert cell["seeds"] == [0, 1] and np.allclose(cell["scores"], finals)
        assert np.isclose(cell["mean"], np.mean(finals)) and np.isclose(cell["std"], np.std(finals))
        assert np.isclose(cell["iqm"], trim_mean(finals, 0.25)) and cell["iqm_low"] <= cell["iqm"] <= cell["iqm_high"]
        shown = _table_row(table, "cn", dataset)[f"{algo} (ours)"].replace("**", "")
        assert shown == f"{np.mean(finals):.1f} ± {np.std(finals):.1f} (2)"


def test_the_iqm_drops_a_quarter_of_the_seeds_at_each_end(runs_dir, tmp_path):
    """5 seeds of chosen scores (copies of a real run): IQM = mean of the middle 3, not the mean."""
    runs = tmp_path / "runs"
    scores = [0.0, 10.0, 20.0, 30.0, 100.0]
    for seed, score in enumerate(scores):
        folder = runs / f"cn-random-spacql-seed{seed}"
        shutil.copytree(runs_dir / "cn-random-spacql-seed0", folder)
        summary = json.loads((folder / "summary.json").read_text()) | {"seed": seed, "final_normalized_score": score}
        (folder / "summary.json").write_text(json.dumps(summary))
    content = report(ReportConfig(str(runs), out=str(tmp_path / "out"), reps=500))
    (cell,) = content["cells"]
    assert cell["iqm"] == pytest.approx(20.0) and cell["mean"] == pytest.approx(32.0)
    assert 0.0 <= cell["iqm_low"] < 20.0 < cell["iqm_high"] <= 100.0
    again = report(ReportConfig(str(runs), out=str(tmp_path / "again"), reps=500))
    assert again["cells"] == content["cells"]  # the bootstrap is seeded
    assert "**" not in (tmp_path / "out" / "table.md").read_text()  # one method: nothing to single out


def test_the_best_of_each_row_is_bold_and_the_papers_value_stands_beside_ours(runs_dir, reported):
    _, out = reported
    table, tex = (out / "table.md").read_text(), (out / "table.tex").read_text()
    for dataset in ("random", "expert"):
        means = {algo: np.mean(_finals(runs_dir, dataset, algo)) for algo in ALGOS}
        best = max(means, key=means.get)
        row = _table_row(table, "cn", dataset)
        assert [algo for algo in ALGOS if row[f"{algo} (ours)"].startswith("**")] == [best]
        assert f"\\textbf{{{means[best]:.1f} $\\pm$ " in tex
        iqm_row = _table_row(table, "cn", dataset, section=1)
        assert [algo for algo in ALGOS if iqm_row[algo].startswith("**")] == [best]  # IQM = mean with 2 seeds
    row = _table_row(table, "cn", "random")
    assert row["spacql (paper)"] == "78.2 ± 14.0" and row["cfcql (paper)"] == "62.2 ± 8.1"
    assert row["icql-qs (paper)"] == "77.7"  # Table 1: no std
    assert _table_row(table, "cn", "expert")["spacql (paper)"] == "111.9 ± 4.5"
    assert "78.2 $\\pm$ 14.0" in tex and tex.count("\\begin{tabular}") == 3


def test_the_probability_of_improvement_is_rliables_over_the_shared_task_datasets(runs_dir, reported):
    content, out = reported
    improvements = {i["baseline"]: i for i in content["probability_of_improvement"]}
    assert set(improvements) == {"icql-qs", "cfcql"}
    for baseline, found in improvements.items():
        x = np.array([_finals(runs_dir, dataset, "spacql") for dataset in ("random", "expert")]).T  # [runs, tasks]
        y = np.array([_finals(runs_dir, dataset, baseline) for dataset in ("random", "expert")]).T
        direct = np.mean(
            [np.mean([(a > b) + 0.5 * (a == b) for a in x[:, m] for b in y[:, m]]) for m in range(x.shape[1])]
        )
        assert found["probability"] == pytest.approx(direct)
        assert found["probability"] == pytest.approx(metrics.probability_of_improvement(x, y))
        assert 0.0 <= found["low"] <= found["probability"] <= found["high"] <= 1.0
        assert found["task_datasets"] == ["cn/random", "cn/expert"] and found["runs"] == [2, 2]
        line = next(line for line in (out / "table.md").read_text().splitlines() if line.startswith(f"| {baseline} |"))
        assert f"| {found['probability']:.2f} | [{found['low']:.2f}, {found['high']:.2f}] | 2 | 2 / 2 |" in line


def test_probability_of_improvement_equals_rliables_with_ties_and_unequal_run_counts():
    rng = np.random.default_rng(0)
    for _ in range(50):
        runs_x, runs_y, tasks = rng.integers(1, 6, size=3)
        x = rng.integers(0, 3, (runs_x, tasks)).astype(float)
        y = rng.integers(0, 3, (runs_y, tasks)).astype(float)
        assert probability_of_improvement(x, y) == pytest.approx(metrics.probability_of_improvement(x, y))


def test_every_figure_is_written_and_shows_something(reported):
    content, out = reported
    assert content["figures"] == ["learning_curves.png", "weights.png", "uncertainty.png", "penalty.png"]
    for name in content["figures"]:
        path = out / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000
        pixels = imread(path)[..., :3]
        assert pixels.shape[0] > 300 and pixels.shape[1] > 600
        assert (pixels.min(axis=-1) < 0.9).mean() > 0.03  # not a blank page: lines, bands, text
    assert not [path for path in out.iterdir() if path.name.endswith(".tmp")]  # atomic writes left no temporaries


def test_the_penalty_figure_draws_each_seeds_logged_penalty(runs_dir):
    """One line per run of SPaCQL, ICQL-QS and CFCQL, in its task-dataset's panel: the run's penalty column."""
    runs, _, _ = load_runs([runs_dir])
    figure = penalty_figure(runs)
    drawn = {
        (axis.get_title().split(" (")[0], tuple(line.get_ydata()))
        for axis in figure.axes
        if axis.get_visible()
        for line in axis.lines
    }
    expected = {
        (f"CN {run.dataset}", tuple(row["penalty"] for row in run.rows if "penalty" in row))
        for run in runs
        if run.algo in PENALTY_METHODS
    }
    assert drawn == expected and len(expected) == 12
    assert penalty_figure([run for run in runs if run.algo not in PENALTY_METHODS]) is None


def test_a_folder_without_spacql_runs_gets_no_weights_figure(runs_dir, tmp_path, capsys):
    runs = tmp_path / "runs"
    shutil.copytree(runs_dir / "cn-random-cfcql-seed0", runs / "cn-random-cfcql-seed0")
    content = report(ReportConfig(str(runs), reps=50))
    assert content["figures"] == ["learning_curves.png", "uncertainty.png", "penalty.png"]
    assert not (runs / "report" / "weights.png").exists() and (runs / "report" / "table.md").is_file()
    assert "weights.png: not written (no runs of its methods)" in capsys.readouterr().out
    assert content["probability_of_improvement"] == []


def test_a_decentralized_baselines_run_is_tabulated_beside_the_papers_value(runs_dir, tmp_path):
    """A run of omar (decentralized critics: no n_critics in its settings) is a cell with Table 2's OMAR value."""
    runs = tmp_path / "runs"
    shutil.copytree(runs_dir / "cn-random-cfcql-seed0", runs / "cn-random-cfcql-seed0")
    train(
        TrainConfig(
            algo="omar",
            dataset="random",
            updates=50,
            eval_every=25,
            eval_episodes=2,
            device="cpu",
            hidden=8,
            batch_size=16,
            log_every=25,
            tensorboard=False,
            progress=False,
            data_dir=str(runs_dir.parent / "data"),
            out_dir=str(runs / "cn-random-omar-seed0"),
        )
    )
    content = report(ReportConfig(str(runs), reps=50))
    assert {cell["algo"] for cell in content["cells"]} == {"cfcql", "omar"} and content["failed"] == []
    row = _table_row((runs / "report" / "table.md").read_text(), "cn", "random")
    final = json.loads((runs / "cn-random-omar-seed0" / "summary.json").read_text())["final_normalized_score"]
    assert row["omar (ours)"].replace("**", "") == f"{final:.1f} ± 0.0 (1)" and row["omar (paper)"] == "34.4 ± 5.3"


def test_unfinished_and_unscored_runs_are_listed_not_tabulated(runs_dir, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(runs_dir / "cn-random-spacql-seed0", runs / "cn-random-spacql-seed0")
    (runs / "cn-random-spacql-seed1").mkdir()
    (runs / "cn-random-spacql-seed1" / "metrics.jsonl").write_text('{"update": 25}\n')
    (runs / "cn-random-spacql-seed2").mkdir()
    (runs / "cn-random-spacql-seed2" / "summary.json").write_text('{"final_normalized_score": null}')
    content = report(ReportConfig(str(runs), reps=50))
    assert [cell["seeds"] for cell in content["cells"]] == [[0]]
    assert content["unfinished"] == [str(runs / "cn-random-spacql-seed1")]
    assert content["failed"] == [str(runs / "cn-random-spacql-seed2")]
    table = (runs / "report" / "table.md").read_text()
    assert f"Unfinished (not in the tables): {runs / 'cn-random-spacql-seed1'}" in table
    assert str(runs / "cn-random-spacql-seed2") in table


def test_runs_in_several_folders_are_reported_as_one_folder_of_them_all(runs_dir, reported, tmp_path):
    """The random runs in one folder, the expert runs in another: the same cells as the report of all 12."""
    for run in runs_dir.glob("cn-*-seed*"):
        shutil.copytree(run, tmp_path / run.name.split("-")[1] / run.name)
    folders = (str(tmp_path / "random"), str(tmp_path / "expert"))
    content = report(ReportConfig(folders, out=str(tmp_path / "out"), reps=200))
    assert content["cells"] == reported[0]["cells"]
    assert content["probability_of_improvement"] == reported[0]["probability_of_improvement"]
    assert content["runs_dirs"] == list(folders) and reported[0]["runs_dirs"] == [str(runs_dir)]


def test_the_band_is_a_bootstrap_interval_of_the_mean_and_the_weights_are_min_max_normalized():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(5, 7))
    mean, low, high = mean_band(values, rng, 2000)
    assert np.allclose(mean, values.mean(axis=0)) and np.all(low <= mean) and np.all(mean <= high)
    assert np.all(high - low < values.max(axis=0) - values.min(axis=0))  # narrower than the seeds' range
    constant = mean_band(np.ones((3, 4)), rng, 100)
    assert all(np.allclose(part, 1.0) for part in constant)
    weights = np.array([[0.30, 0.40, 0.25], [0.33, 0.33, 0.25], [0.37, 0.27, 0.50]])
    assert np.allclose(min_max_normalized(weights), [[0, 1, 0], [3 / 7, 6 / 13, 0], [1, 0, 1]])
    assert np.allclose(min_max_normalized(np.full((3, 2), 1 / 3)), 0.0)


def test_the_papers_values_are_stored_with_every_cell_of_its_tables():
    methods = {"omar", "macql", "iql", "matd3-bc", "dof", "cfcql", "spacql"}
    assert len(TABLE_2) == 16 and len(TABLE_1) == 8
    for (task, _), row in TABLE_2.items():
        assert set(row) == (methods - {"dof"} if task == "halfcheetah" else methods)
    assert TABLE_2[("world", "random")]["spacql"] == (94.3, 7.4) and TABLE_2[("world", "random")]["cfcql"] == (
        68.0,
        20.8,
    )
    assert TABLE_1[("world", "random")] == 89.9


@pytest.mark.skipif(not PAPER.is_file(), reason="the paper's text is not next to the checkout")
def test_the_stored_values_are_the_papers_table_2():
    text = PAPER.read_text()
    block = text[text.index("Dataset OMAR MACQL") : text.index("Experimental settings and results")]
    columns = ("omar", "macql", "iql", "matd3-bc", "dof", "cfcql", "spacql")
    names = {"Exp": "expert", "Med": "medium", "Med-R": "medium-replay", "Rand": "random"}
    tasks = {"CN": "cn", "PP": "pp", "World": "world", "Half-C": "halfcheetah"}
    task, checked = None, 0
    for line in block.splitlines():
        match = re.match(r"^(CN|PP|World|Half-C)?\s*(Exp|Med-R|Med|Rand)\s+(.*)$", line)
        if match is None:
            continue
        task = tasks[match.group(1)] if match.group(1) else task
        values = re.findall(r"-(?=\s|$)|[\d.]+\s*±\\pm\s*[\d.]+", match.group(3))
        for method, value in zip(columns, values, strict=True):
            stored = TABLE_2[(task, names[match.group(2)])].get(method)
            expected = None if value == "-" else tuple(float(x) for x in re.findall(r"[\d.]+", value))
            assert stored == expected, (task, match.group(2), method)
            checked += 1
    assert checked == 16 * 7


@pytest.mark.parametrize(
    ("make", "argv", "message"),
    [
        (lambda root: None, ["missing"], "error: RUNS_DIR: missing is not a folder"),
        (lambda root: (root / "empty").mkdir(), ["empty"], "error: RUNS_DIR: no finished run with a score under"),
        (lambda root: (root / "out").write_text("x"), ["runs", "--out", "out"], "error: --out: cannot make the folder"),
        (lambda root: None, ["runs", "--reps", "0"], "error: --reps: must be an integer >= 1, got 0"),
        (
            lambda root: shutil.copytree(root / "runs" / "cn-random-cfcql-seed0", root / "runs" / "old" / "copy"),
            ["runs"],
            "error: RUNS_DIR: two runs of task cn, dataset random, algo cfcql, seed 0:",
        ),
        (
            lambda root: shutil.copytree(root / "runs", root / "again"),
            ["runs", "again", "--out", "out"],
            "error: RUNS_DIR: two runs of task cn, dataset random, algo cfcql, seed 0:",
        ),
        (
            lambda root: None,
            ["runs", "runs/cn-random-cfcql-seed0", "--out", "out"],
            "error: RUNS_DIR: runs/cn-random-cfcql-seed0 is inside runs (or the same folder)",
        ),
        (lambda root: None, ["runs", "runs", "--out", "out"], "error: RUNS_DIR: runs is inside runs"),
        (
            lambda root: (root / "more").mkdir(),
            ["runs", "more"],
            "error: --out: required with several RUNS_DIRs (got 2)",
        ),
    ],
)
def test_a_user_error_is_one_line_and_exit_code_2(make, argv, message, runs_dir, tmp_path, capsys, monkeypatch):
    shutil.copytree(runs_dir / "cn-random-cfcql-seed0", tmp_path / "runs" / "cn-random-cfcql-seed0")
    make(tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith(message) and err.count("\n") == 1
    assert not (tmp_path / "runs" / "report").exists()


def test_a_report_without_rliable_installed_is_a_user_error(runs_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "rliable", None)  # import rliable raises ImportError
    with pytest.raises(SystemExit) as exit_info:
        main([str(runs_dir), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2 and not (tmp_path / "out").exists()
    message = "error: the report's intervals need rliable: pip install -c constraints.txt -e '.[report]'\n"
    assert capsys.readouterr().err == message


def test_the_cli_writes_the_report(runs_dir, tmp_path, capsys):
    assert main([str(runs_dir), "--out", str(tmp_path / "out"), "--reps", "20"]) == 0
    assert f"6 cells from 12 runs -> {tmp_path / 'out'}" in capsys.readouterr().out
    assert {path.name for path in (tmp_path / "out").iterdir()} == {
        "table.md", "table.tex", "report.json", "learning_curves.png", "weights.png", "uncertainty.png",
        "penalty.png",
    }  # fmt: skip
