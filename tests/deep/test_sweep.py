"""deep.sweep: the grid on both backends (local, Ray), skip and resume, failures in the table, presets, the ETA."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from deep.algorithms.methods import METHODS
from deep.report import TABLE_2
from deep.settings import SettingsError, validate_settings
from deep.sweep import Eta, SweepConfig, main, run_configs, sweep, train_run
from tests.deep.tiny_offline import make_second_of_two_batched_runs_non_finite, write_tiny_dataset

torch.set_num_threads(1)
TINY = dict(n_critics=2, hidden=8, batch_size=16, log_every=25, tensorboard=False)


def tiny_sweep_config(tmp_path, **fields) -> SweepConfig:
    """A sweep over the tiny CN random dataset (written to tmp_path/data) into tmp_path/runs."""
    data = tmp_path / "data"
    write_tiny_dataset(data)
    settings = {"updates": 50, "eval_every": 25, "eval_episodes": 2, "device": "cpu", "dataset_seed": 0}
    return SweepConfig(data_dir=str(data), out_dir=str(tmp_path / "runs"), **(settings | fields))


def test_sweep_skips_finished_resumes_unfinished_and_tabulates(tmp_path):
    config = tiny_sweep_config(tmp_path, algos=("spacql", "cfcql"), datasets=("random", "expert"), seeds=(0, 1))
    cells, failures = sweep(config, **TINY)
    # no expert dataset: those runs fail with the build command, the others finish
    assert len(failures) == 4 and all("deep/collect.py" in line for line in failures)
    spacql = cells["cn/spacql/random"]
    finals = [
        json.loads((tmp_path / "runs" / f"cn-random-spacql-seed{s}" / "summary.json").read_text())[
            "final_normalized_score"
        ]
        for s in (0, 1)
    ]
    assert spacql["seeds"] == 2 and np.isclose(spacql["final_mean"], np.mean(finals))
    assert np.isclose(spacql["final_std"], np.std(finals))
    expert = cells["cn/cfcql/expert"]
    assert expert["seeds"] == 0 and expert["failed"] == 2 and expert["final_mean"] is None
    table = (tmp_path / "runs" / "results.md").read_text()
    assert "| spacql | " in table and "(2) | failed (2) |" in table  # a run that raised is reported in the table

    # a finished run is skipped, an interrupted one (checkpoint, no summary) resumed
    finished = tmp_path / "runs" / "cn-random-spacql-seed0"
    stamp = (finished / "summary.json").stat().st_mtime_ns
    (tmp_path / "runs" / "cn-random-cfcql-seed1" / "summary.json").unlink()
    configs = {c.out_dir: c for c in run_configs(config, **TINY)}
    assert configs[str(tmp_path / "runs" / "cn-random-cfcql-seed1")].resume
    cells_again, _ = sweep(config, **TINY)
    assert (finished / "summary.json").stat().st_mtime_ns == stamp
    assert cells_again["cn/cfcql/random"] == cells["cn/cfcql/random"]


def test_a_run_killed_before_its_first_checkpoint_starts_over(tmp_path):
    """Its out dir holds logs but no checkpoint.pt: the sweep passes --overwrite, not --resume."""
    config = tiny_sweep_config(tmp_path, algos=("spacql",), datasets=("random",), seeds=(0,), updates=25)
    killed = tmp_path / "runs" / "cn-random-spacql-seed0"
    killed.mkdir(parents=True)
    (killed / "metrics.jsonl").write_text('{"update": 25, "critic_loss": 0.0}\n')
    (run,) = run_configs(config, **TINY)
    assert run.overwrite and not run.resume
    cells, failures = sweep(config, **TINY)
    assert failures == [] and cells["cn/spacql/random"]["seeds"] == 1
    assert json.loads((killed / "metrics.jsonl").read_text().splitlines()[0])["critic_loss"] != 0.0


def test_a_finished_run_without_scores_is_reported_as_failed_not_a_crash(tmp_path, capsys):
    """A summary.json with null scores (as `--updates 0` wrote before validation) or unreadable JSON."""
    runs = tmp_path / "runs"
    for seed, text in ((0, '{"final_normalized_score": null, "best_normalized_score": null}'), (1, "{not json")):
        (runs / f"cn-random-spacql-seed{seed}").mkdir(parents=True)
        (runs / f"cn-random-spacql-seed{seed}" / "summary.json").write_text(text)
    config = SweepConfig(algos=("spacql",), datasets=("random",), seeds=(0, 1), out_dir=str(runs), table_only=True)
    cells, failures = sweep(config)
    cell = cells["cn/spacql/random"]
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
        (["--backend", "ray", "--cpus-per-run", "0"], "error: --cpus-per-run: must be a number in (0, inf), got 0.0"),
        (["--gpus-per-run", "-0.5"], "error: --gpus-per-run: must be a number in [0, inf), got -0.5"),
        (["--max-retries", "-1"], "error: --max-retries: must be an integer >= 0, got -1"),
        (
            ["--address", "auto"],
            "error: --address: must be left unset with --backend local (it is an option of --backend ray), got 'auto'",
        ),
        (
            ["--backend", "ray", "--workers", "2"],
            "error: --workers: must be left unset with --backend ray (it is an option of --backend local), got 2",
        ),
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


def test_preset_table2_is_the_papers_grid_with_each_tasks_schedule_and_the_flags_narrow_it(tmp_path):
    config = SweepConfig(preset="table2", out_dir=str(tmp_path / "runs"))
    assert config.tasks == ("cn", "pp", "world", "halfcheetah")
    assert config.datasets == ("random", "medium-replay", "medium", "expert")
    assert config.seeds == (0, 1, 2, 3, 4)
    # every implemented method the paper's tables report (ICQL-QS: Table 1), none it does not
    in_paper = {method for row in TABLE_2.values() for method in row} | {"icql-qs"}
    assert set(config.algos) == in_paper & set(METHODS) and {"spacql", "icql-qs", "cfcql", "macql"} <= set(config.algos)
    assert config.algos[0] == "spacql"
    runs = run_configs(config)
    assert len(runs) == 4 * 4 * len(config.algos) * 5
    schedule = {(run.task, run.algo): validate_settings(run)[1] for run in runs if run.dataset == "medium"}
    cfcql = {"cn": 10_000, "pp": 10_000, "world": 25_000, "halfcheetah": 500_000}  # 5 x CFCQL's rounds
    assert {task: schedule[task, "spacql"] for task in config.tasks} == cfcql
    for (task, algo), updates in schedule.items():  # every method its own table's schedule
        assert updates == METHODS[algo].defaults(task, "medium")["updates"]

    narrowed = SweepConfig(preset="table2", tasks=("pp", "world"), algos=("spacql", "cfcql"))
    assert (narrowed.tasks, narrowed.algos, narrowed.seeds) == (("pp", "world"), ("spacql", "cfcql"), (0, 1, 2, 3, 4))
    assert SweepConfig().tasks == ("cn",) and SweepConfig().seeds == (0, 1, 2)  # no preset: the old defaults

    argv = ["--preset", "table2", "--task", "pp", "--algos", "spacql", "--table-only", "--out-dir", str(tmp_path)]
    assert main(argv) == 0
    cells = json.loads((tmp_path / "results.json").read_text())["cells"]
    assert set(cells) == {f"pp/spacql/{quality}" for quality in config.datasets}


def _summary(task, algo, wall_time_s, updates):
    return {"task": task, "algo": algo, "wall_time_s": wall_time_s, "updates": updates}


def test_the_eta_comes_from_the_measured_speed_of_finished_runs(tmp_path):
    config = SweepConfig(tasks=("cn", "pp"), algos=("spacql", "cfcql"), datasets=("random",), seeds=(0, 1))
    runs = run_configs(replace(config, out_dir=str(tmp_path)))  # 10k updates each
    cn = [run for run in runs if run.task == "cn"]
    eta = Eta(slots=2)
    assert eta.text(runs) == "ETA: once a run of cn, pp has finished"
    eta.add(_summary("cn", "spacql", 600.0, 10_000))  # 0.06 s per update
    eta.add(_summary("cn", "spacql", 1800.0, 10_000))  # mean 0.12 s per update
    # cfcql on cn: not measured, so the task's speed; pp: unknown
    assert eta.text(cn) == "ETA 40m"  # 4 runs x 10k updates x 0.12 s / 2 slots
    assert eta.text(runs) == "ETA > 40m (plus the runs of pp: none finished yet)"
    eta.add(_summary("cn", "cfcql", 120.0, 10_000))  # its own speed now: 0.012 s per update
    assert eta.text(cn) == "ETA 22m"  # (2 x 1200 s + 2 x 120 s) / 2
    # a resumed run counts the updates it has left
    Path(cn[0].out_dir).mkdir(parents=True)
    (Path(cn[0].out_dir) / "metrics.jsonl").write_text('{"update": 100}\n{"update": 5000}\n')
    assert cn[0].algo == "spacql" and eta.text(cn) == "ETA 17m"  # (1200 s / 2 + 1200 s + 240 s) / 2
    assert eta.text([]) == "ETA 0s"


def test_the_sweep_prints_its_progress_and_eta(tmp_path, capsys):
    config = tiny_sweep_config(tmp_path, algos=("spacql", "cfcql"), datasets=("random",), seeds=(0,))
    sweep(config, **TINY)
    out = capsys.readouterr().out
    assert "2 run(s) to train (0 resumed) on local, 1 at a time; ETA: once a run of cn has finished" in out
    assert "done [1/2]" in out and "; ETA " in out.split("done [1/2]")[1].splitlines()[0]
    assert "done [2/2]" in out and out.split("done [2/2]")[1].splitlines()[0].endswith("; ETA 0s")


def test_a_narrowed_sweep_takes_its_eta_from_the_finished_runs_of_its_out_dir(tmp_path, capsys):
    config = tiny_sweep_config(tmp_path, algos=("spacql",), datasets=("random",), seeds=(0,))
    sweep(config, **TINY)
    capsys.readouterr()
    sweep(replace(config, seeds=(1,)), **TINY)  # seed 0 is not in this grid, but in its out dir
    first_line = capsys.readouterr().out.splitlines()[0]
    assert first_line.startswith("1 run(s) to train (0 resumed) on local, 1 at a time; ETA ")
    assert "once a run" not in first_line


def test_the_ray_backend_without_ray_installed_is_a_user_error(tmp_path, capsys, monkeypatch):
    config = tiny_sweep_config(tmp_path, algos=("spacql",), datasets=("random",), seeds=(0,))
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    argv = ["--backend", "ray", "--algos", "spacql", "--datasets", "random", "--seeds", "0"]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--data-dir", config.data_dir, "--out-dir", config.out_dir])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: --backend ray: needs ray: pip install -c constraints.txt -e '.[ray]'\n"
    assert not list((tmp_path / "runs").glob("cn-*"))


def test_an_address_without_a_ray_cluster_is_a_user_error(tmp_path, capsys):
    import ray

    if ray.is_initialized():
        pytest.skip("this process is connected to the module's cluster already")
    config = tiny_sweep_config(tmp_path, algos=("spacql",), datasets=("random",), seeds=(0,))
    argv = ["--backend", "ray", "--address", "auto", "--algos", "spacql", "--datasets", "random", "--seeds", "0"]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--data-dir", config.data_dir, "--out-dir", config.out_dir])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: --address: no Ray cluster at 'auto': ")
    assert err.count("\n") == 1


# Ray: one local cluster for the module (its start takes ~30 s on 2 busy cores).


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    ray.init(num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()


def _rows(out_dir: Path) -> list[dict]:
    """metrics.jsonl without wall times (the rest is the same for the same run on the CPU)."""
    rows = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    return [{key: value for key, value in row.items() if key != "wall_time_s"} for row in rows]


def test_the_ray_backend_trains_the_grid_as_the_local_backend_does(tmp_path, ray_cluster):
    local = tiny_sweep_config(tmp_path, algos=("spacql", "cfcql"), datasets=("random", "expert"), seeds=(0,))
    on_ray = replace(local, out_dir=str(tmp_path / "ray"), backend="ray", cpus_per_run=1.0)
    local_cells, local_failures = sweep(local, **TINY)
    ray_cells, ray_failures = sweep(on_ray, **TINY)
    # the same run directories, metrics and scores; the missing expert dataset fails its runs on both,
    # with its own error (the command that builds it), and stops neither the grid nor the other runs
    for algo in ("spacql", "cfcql"):
        name = f"cn-random-{algo}-seed0"
        assert _rows(tmp_path / "ray" / name) == _rows(tmp_path / "runs" / name)
    for key, cell in local_cells.items():
        assert {k: v for k, v in ray_cells[key].items() if k != "failed_runs"} == {
            k: v for k, v in cell.items() if k != "failed_runs"
        }
    assert ray_cells["cn/spacql/random"]["seeds"] == 1 and ray_cells["cn/spacql/expert"]["failed"] == 1
    assert len(ray_failures) == len(local_failures) == 2
    assert all("MissingDatasetError" in line and "deep/collect.py" in line for line in ray_failures)
    assert (tmp_path / "ray" / "results.md").read_text() == (tmp_path / "runs" / "results.md").read_text()


def test_batched_cells_on_ray_write_what_they_write_locally(tmp_path, ray_cluster):
    """--batch-seeds on Ray: a cell's seeds are one Ray task returning their summaries; bit for bit the local
    batched sweep's runs (the same program on the same CPU)."""
    local = tiny_sweep_config(tmp_path, algos=("cfcql",), datasets=("random", "expert"), seeds=(0, 1), batch_seeds=True)
    on_ray = replace(local, out_dir=str(tmp_path / "ray"), backend="ray", cpus_per_run=1.0)
    sweep(local, **TINY)
    ray_cells, ray_failures = sweep(on_ray, **TINY)
    for seed in (0, 1):
        name = f"cn-random-cfcql-seed{seed}"
        assert _rows(tmp_path / "ray" / name) == _rows(tmp_path / "runs" / name)
    assert ray_cells["cn/cfcql/random"]["seeds"] == 2 and ray_cells["cn/cfcql/expert"]["failed"] == 2
    assert len(ray_failures) == 2 and all("MissingDatasetError" in line for line in ray_failures)


# The sweep whose worker is killed runs in a child process with its own cluster: the kill, Ray's retry
# and the driver's shutdown stay out of the pytest process (in-process, a killed worker's cluster
# once aborted pytest in a later module), and the child's exit code says whether the driver survived.
_RAY_SWEEP = """
import json, sys
from deep.sweep import SweepConfig, sweep
config = SweepConfig(**json.loads(sys.argv[1]))
cells, failures = sweep(config, **json.loads(sys.argv[2]))
print(json.dumps({"cells": cells, "failures": failures}))
"""


def test_a_ray_run_whose_worker_is_killed_resumes_its_checkpoint_to_the_same_result(tmp_path):
    local = tiny_sweep_config(tmp_path, algos=("spacql",), datasets=("random",), seeds=(0,), updates=600)
    local = replace(local, eval_every=100)  # a checkpoint every 100 updates: 500 left to kill the run in
    sweep(local, **TINY)
    on_ray = replace(local, out_dir=str(tmp_path / "ray"), backend="ray", max_retries=1)
    out_dir = tmp_path / "ray" / "cn-random-spacql-seed0"
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    arguments = [json.dumps(asdict(on_ray)), json.dumps(TINY)]
    root = Path(__file__).resolve().parents[2]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    child = subprocess.Popen([sys.executable, "-c", _RAY_SWEEP, *arguments], cwd=root, env=env, **pipes)
    try:
        deadline = time.monotonic() + 600  # the child starts its own cluster first (minutes on 2 busy cores)
        while not (out_dir / "checkpoint.pt").is_file():
            assert child.poll() is None and time.monotonic() < deadline, child.stderr.read().decode()[-2000:]
            time.sleep(0.01)
        first_row = (out_dir / "metrics.jsonl").read_text().splitlines()[0]
        worker = int((out_dir / ".lock").read_text())  # the pid of the process training the run
        assert worker not in (os.getpid(), child.pid)
        os.kill(worker, signal.SIGKILL)
        stdout, stderr = child.communicate(timeout=1800)  # a guard against a hang: minutes on 2 busy cores
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, stderr.decode()[-2000:]
    result = json.loads(stdout.decode().splitlines()[-1])
    assert result["failures"] == [] and result["cells"]["cn/spacql/random"]["seeds"] == 1
    assert int((out_dir / ".lock").read_text()) != worker  # a second worker finished it...
    assert (out_dir / "metrics.jsonl").read_text().splitlines()[0] == first_row  # ...from the checkpoint
    local_dir = tmp_path / "runs" / "cn-random-spacql-seed0"
    local_summary = json.loads((local_dir / "summary.json").read_text())
    ray_summary = json.loads((out_dir / "summary.json").read_text())
    assert ray_summary["final_normalized_score"] == local_summary["final_normalized_score"]
    assert _rows(out_dir) == _rows(local_dir)


def test_batch_seeds_trains_each_cell_as_one_program_into_the_same_run_directories(tmp_path, capsys):
    """--batch-seeds: cfcql's 3 seeds as batched programs (the one with a checkpoint resumes alone, the two
    fresh ones start together), iql's runs separately; the same directories and, to float32 rounding, the
    same scores as the unbatched sweep."""
    small = dict(hidden=8, batch_size=16, log_every=25, tensorboard=False)
    grid = dict(algos=("cfcql", "iql"), datasets=("random",), seeds=(0, 1, 2))
    config = tiny_sweep_config(tmp_path, batch_seeds=True, **grid)
    killed = next(run for run in run_configs(config, **small) if run.algo == "cfcql" and run.seed == 1)
    train_run(replace(killed, updates=25))
    (Path(killed.out_dir) / "summary.json").unlink()  # killed after its first checkpoint
    cells, failures = sweep(config, **small)
    assert failures == [] and cells["cn/cfcql/random"]["seeds"] == 3 and cells["cn/iql/random"]["seeds"] == 3
    assert "6 run(s) to train (1 resumed) in 4 batched unit(s) on local" in capsys.readouterr().out

    def summary(directory, algo, seed):
        return json.loads((directory / f"cn-random-{algo}-seed{seed}" / "summary.json").read_text())

    runs = tmp_path / "runs"
    assert [summary(runs, "cfcql", seed)["batched_seeds"] for seed in (0, 1, 2)] == [[0, 2], [1], [0, 2]]
    assert all("batched_seeds" not in summary(runs, "iql", seed) for seed in (0, 1, 2))
    assert [row["update"] for row in map(json.loads, (Path(killed.out_dir) / "metrics.jsonl").open())] == [25, 50]

    separate = replace(config, out_dir=str(tmp_path / "separate"), batch_seeds=False, algos=("cfcql",))
    sweep(separate, **small)
    for seed in (0, 2):
        mine, theirs = summary(runs, "cfcql", seed), summary(tmp_path / "separate", "cfcql", seed)
        assert np.isclose(mine["final_normalized_score"], theirs["final_normalized_score"], rtol=1e-3, atol=1e-3)


def test_a_batched_cell_with_a_failing_seed_counts_its_finished_seeds(tmp_path, monkeypatch):
    """--batch-seeds: seed 1's loss made infinite; seed 0 finishes (restarted from its checkpoint without the
    failed run) and counts in the table, seed 1 is the one failure."""
    make_second_of_two_batched_runs_non_finite(monkeypatch, at_update=30)
    config = tiny_sweep_config(tmp_path, algos=("cfcql",), datasets=("random",), seeds=(0, 1), batch_seeds=True)
    cells, failures = sweep(config, **TINY)
    assert cells["cn/cfcql/random"]["seeds"] == 1 and cells["cn/cfcql/random"]["failed"] == 1
    assert len(failures) == 1 and "cn-random-cfcql-seed1: FloatingPointError: update 30" in failures[0]


def test_the_eta_counts_a_batched_programs_wall_time_once_per_program():
    """R runs of one program share its wall time: each run's speed is the program's divided by R."""
    eta = Eta(slots=1)
    eta.add({"task": "cn", "algo": "cfcql", "wall_time_s": 100.0, "updates": 10, "batched_seeds": [0, 1, 2, 3]})
    eta.add({"task": "cn", "algo": "spacql", "wall_time_s": 100.0, "updates": 10})
    assert eta.seconds_per_update("cn", "cfcql") == 2.5 and eta.seconds_per_update("cn", "spacql") == 10.0


def test_a_run_finished_by_another_sweep_meanwhile_is_not_trained_again(tmp_path):
    """Two sweeps into one out dir plan the same runs: the one that reaches a run the other finished reads its
    summary instead of training it again (the files stay byte for byte)."""
    config = tiny_sweep_config(tmp_path, algos=("cfcql",), datasets=("random",), seeds=(0, 1))
    single = run_configs(config, **TINY)[0]
    summary = train_run(single)
    files = {path.name: path.read_bytes() for path in Path(single.out_dir).iterdir() if path.is_file()}
    assert train_run(single) == summary
    batched = replace(single, seed=0, seeds=[0, 1], out_dir=str(Path(single.out_dir).parent))
    summaries = train_run(batched)
    assert summaries[0] == summary and summaries[1]["seed"] == 1 and summaries[1]["batched_seeds"] == [1]
    assert {path.name: path.read_bytes() for path in Path(single.out_dir).iterdir() if path.is_file()} == files


def test_runs_train_on_their_own_dataset_seed_and_the_stream_passes_through(tmp_path):
    """Without --dataset-seed run s reads dataset seed s; --minibatches reaches every run (its summary)."""
    config = tiny_sweep_config(
        tmp_path, algos=("cfcql",), datasets=("random",), seeds=(0, 1), dataset_seed=None, minibatches="original"
    )
    write_tiny_dataset(tmp_path / "data", seed=1)
    assert [(run.dataset_seed, run.minibatches) for run in run_configs(config)] == [(None, "original")] * 2
    _, failures = sweep(config, **TINY)
    assert not failures
    for seed in (0, 1):
        summary = json.loads((tmp_path / "runs" / f"cn-random-cfcql-seed{seed}" / "summary.json").read_text())
        assert summary["dataset_seed"] == seed and summary["dataset_file"].endswith(f"cn_random_seed{seed}.npz")
        assert summary["minibatches"]["stream"] == "original"


def test_a_bad_stream_is_refused_before_the_grid_starts(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--data-dir", str(tmp_path), "--out-dir", str(tmp_path / "runs"), "--minibatches", "shuffled"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: --minibatches: must be one of fresh, original, got 'shuffled'\n"
    assert not (tmp_path / "runs").exists()
