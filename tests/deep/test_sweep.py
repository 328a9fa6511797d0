"""deep.sweep: trains the grid, skips finished runs, resumes unfinished ones, tabulates mean and std."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deep.settings import SettingsError
from deep.sweep import SweepConfig, main, run_configs, sweep
from tests.deep.tiny_offline import write_tiny_dataset

torch.set_num_threads(1)
TINY = dict(n_critics=2, hidden=8, batch_size=16, log_every=25, tensorboard=False)


def tiny_sweep_config(tmp_path, **fields) -> SweepConfig:
    """A sweep over the tiny CN random dataset (written to tmp_path/data) into tmp_path/runs."""
    data = tmp_path / "data"
    write_tiny_dataset(data)
    settings = {"updates": 50, "eval_every": 25, "eval_episodes": 2, "device": "cpu"}
    return SweepConfig(data_dir=str(data), out_dir=str(tmp_path / "runs"), **(settings | fields))


def test_sweep_skips_finished_resumes_unfinished_and_tabulates(tmp_path):
    config = tiny_sweep_config(tmp_path, algos=("spacql", "cfcql"), datasets=("random", "expert"), seeds=(0, 1))
    cells, failures = sweep(config, **TINY)
    # no expert dataset: those runs fail with the build command, the others finish
    assert len(failures) == 4 and all("deep/collect.py" in line for line in failures)
    spacql = cells["spacql/random"]
    finals = [
        json.loads((tmp_path / "runs" / f"cn-random-spacql-seed{s}" / "summary.json").read_text())[
            "final_normalized_score"
        ]
        for s in (0, 1)
    ]
    assert spacql["seeds"] == 2 and np.isclose(spacql["final_mean"], np.mean(finals))
    assert np.isclose(spacql["final_std"], np.std(finals))
    assert cells["cfcql/expert"]["seeds"] == 0
    table = (tmp_path / "runs" / "results.md").read_text()
    assert "| spacql | " in table and "(2) | - |" in table

    # a finished run is skipped, an interrupted one (checkpoint, no summary) resumed
    finished = tmp_path / "runs" / "cn-random-spacql-seed0"
    stamp = (finished / "summary.json").stat().st_mtime_ns
    (tmp_path / "runs" / "cn-random-cfcql-seed1" / "summary.json").unlink()
    configs = {c.out_dir: c for c in run_configs(config, **TINY)}
    assert configs[str(tmp_path / "runs" / "cn-random-cfcql-seed1")].resume
    cells_again, _ = sweep(config, **TINY)
    assert (finished / "summary.json").stat().st_mtime_ns == stamp
    assert cells_again["cfcql/random"] == cells["cfcql/random"]


def test_a_run_killed_before_its_first_checkpoint_starts_over(tmp_path):
    """Its out dir holds logs but no checkpoint.pt: the sweep passes --overwrite, not --resume."""
    config = tiny_sweep_config(tmp_path, algos=("spacql",), datasets=("random",), seeds=(0,), updates=25)
    killed = tmp_path / "runs" / "cn-random-spacql-seed0"
    killed.mkdir(parents=True)
    (killed / "metrics.jsonl").write_text('{"update": 25, "critic_loss": 0.0}\n')
    (run,) = run_configs(config, **TINY)
    assert run.overwrite and not run.resume
    cells, failures = sweep(config, **TINY)
    assert failures == [] and cells["spacql/random"]["seeds"] == 1
    assert json.loads((killed / "metrics.jsonl").read_text().splitlines()[0])["critic_loss"] != 0.0


def test_a_finished_run_without_scores_is_reported_as_failed_not_a_crash(tmp_path, capsys):
    """A summary.json with null scores (as `--updates 0` wrote before validation) or unreadable JSON."""
    runs = tmp_path / "runs"
    for seed, text in ((0, '{"final_normalized_score": null, "best_normalized_score": null}'), (1, "{not json")):
        (runs / f"cn-random-spacql-seed{seed}").mkdir(parents=True)
        (runs / f"cn-random-spacql-seed{seed}" / "summary.json").write_text(text)
    config = SweepConfig(algos=("spacql",), datasets=("random",), seeds=(0, 1), out_dir=str(runs), table_only=True)
    cells, failures = sweep(config)
    cell = cells["spacql/random"]
    assert cell["seeds"] == 0 and cell["failed"] == 2 and cell["final_mean"] is None
    assert len(failures) == 2 and all("finished without a score" in line for line in failures)
    assert "| spacql | failed (2) |" in (runs / "results.md").read_text()
    assert main(["--algos", "spacql", "--datasets", "random", "--seeds", "0", "1", "--out-dir", str(runs)]) == 1
    assert "failed (2)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--updates", "0"], "error: --updates: must be an integer >= 1, got 0"),
        (["--updates", "0", "--table-only"], "error: --updates: must be an integer >= 1, got 0"),
        (["--eval-every", "250"], "error: --eval-every: must be a positive multiple of --log-every=100, got 250"),
        (["--eval-episodes", "0"], "error: --eval-episodes: must be an integer >= 1, got 0"),
        (["--workers", "0"], "error: --workers: must be an integer >= 1, got 0"),
    ],
)
def test_a_bad_setting_stops_the_sweep_before_the_grid_with_exit_2(argv, message, tmp_path, capsys):
    out = tmp_path / "runs"
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--out-dir", str(out), "--data-dir", str(tmp_path / "data"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err == message + "\n"
    assert not out.exists()


def test_bad_run_overrides_are_refused_before_any_run_starts(tmp_path):
    config = SweepConfig(algos=("cfcql", "spacql"), datasets=("random",), seeds=(0,), out_dir=str(tmp_path / "runs"))
    with pytest.raises(SettingsError, match="--n-critics: must be >= 2 for --algo spacql"):
        sweep(config, **(TINY | {"n_critics": 1}))
    assert not (tmp_path / "runs").exists()  # not even cfcql, the first run, was trained


def test_help_names_the_module_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0 and "usage: python -m deep.sweep " in out and "/deep/sweep.py" not in out
