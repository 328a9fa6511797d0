"""deep/train.py: a 200-update CPU run per algorithm, resume equivalence, determinism, logs, errors, CLI."""

from __future__ import annotations

import csv
import dataclasses
import fcntl
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from deep.algorithms.methods import METHODS
from deep.algorithms.offline import ALGORITHMS
from deep.settings import PRESETS, SettingsError
from deep.storage.files import CheckpointError
from deep.train import DatasetError, TrainConfig, main, train
from tests.deep.tiny_offline import tiny_train_config, write_tiny_dataset

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("data")
    write_tiny_dataset(directory)
    return directory


def parameters(learner) -> list[torch.Tensor]:
    return [t.detach().clone() for name in ("actors", "critics") for t in getattr(learner, name).state_dict().values()]


def without_time(rows: list[dict]) -> list[dict]:
    return [{key: value for key, value in row.items() if key != "wall_time_s"} for row in rows]


@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
def test_200_update_run_of_every_algorithm(algo, data_dir, tmp_path):
    result = train(tiny_train_config(data_dir, tmp_path, algo=algo, **({"k": 2} if algo == "spacql-fixed-k" else {})))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary == json.loads(json.dumps(result["summary"]))
    for key in ("final_normalized_score", "best_normalized_score", "config", "versions", "wall_time_s"):
        assert key in summary
    assert summary["updates"] == 200 and summary["evaluations"] == 2
    assert summary["best_normalized_score"] >= summary["final_normalized_score"]
    assert summary["config"]["algo"] == algo and summary["settings"]["cql_alpha"] == 0.5
    assert summary["versions"]["torch"] == torch.__version__
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [row["update"] for row in rows] == [50, 100, 150, 200]
    assert [("normalized_score" in row) for row in rows] == [False, True, False, True]
    with open(tmp_path / "metrics.csv") as handle:
        assert [int(row["update"]) for row in csv.DictReader(handle)] == [50, 100, 150, 200]
    weights = [key for key in rows[0] if key.startswith("w_")]
    assert len(weights) == {"soft-partial": 3, "individual": 3}.get(result["learner"].settings.scheme, 1)
    for row in rows:
        assert abs(sum(row[key] for key in weights) - 1) < 1e-5
        assert all(value == value for value in row.values())  # no NaN
    if algo == "spacql":
        assert all(f"u_{k}" in rows[0] for k in (1, 2, 3)) and rows[0]["target_std"] > 0
    assert (tmp_path / "checkpoint.pt").is_file() and (tmp_path / "actor.pt").is_file()
    assert not list(tmp_path.glob(".*.tmp"))


def test_resume_continues_to_the_same_result(data_dir, tmp_path):
    """Stopped after 100 updates (with a metrics row written after its checkpoint) and resumed = one 200-update run."""
    whole = train(tiny_train_config(data_dir, tmp_path / "whole"))
    train(tiny_train_config(data_dir, tmp_path / "split", updates=100))
    with open(tmp_path / "split" / "metrics.jsonl", "a") as handle:  # a killed run's row past the checkpoint
        handle.write(json.dumps({"update": 150, "critic_loss": 0.0}) + "\n")
    resumed = train(tiny_train_config(data_dir, tmp_path / "split", resume=True))
    for a, b in zip(parameters(whole["learner"]), parameters(resumed["learner"]), strict=True):
        assert torch.equal(a, b)
    assert without_time(whole["log"]) == without_time(resumed["log"])
    rows = [json.loads(line) for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert without_time(rows) == without_time(whole["log"])
    for key in ("final_normalized_score", "best_normalized_score", "updates"):
        assert whole["summary"][key] == resumed["summary"][key]


def test_evaluation_plays_the_actors_in_eval_mode_and_training_resumes_in_train_mode(data_dir, tmp_path, monkeypatch):
    """CFCQL's prep_rollouts: the input normalization's running statistics act in evaluation, batch statistics in
    training (a BatchNorm left in train mode would normalize each evaluation step by its own batch)."""
    import deep.train

    modes = []

    def recording_returns(task, policy, episodes, seed, opponent=None):
        modes.append((learner_actors[0].training, learner_actors[0].norm.training))
        return np.zeros(episodes)

    learner_actors = []
    original = METHODS["spacql"]

    class Recording(original.learner):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            learner_actors.append(self.actors)

    monkeypatch.setitem(METHODS, "spacql", dataclasses.replace(original, learner=Recording))
    monkeypatch.setattr(deep.train, "team_returns", recording_returns)
    result = train(tiny_train_config(data_dir, tmp_path, updates=200))
    assert modes == [(False, False), (False, False)]  # the evaluations at 100 and 200 updates
    assert result["learner"].actors.training


def test_the_trained_actor_file_loads_and_acts_as_the_learner_evaluated_it(data_dir, tmp_path):
    """actor.pt (with its input normalization) through evaluation.load_actor: the learner's eval-mode actions."""
    from deep.algorithms.evaluation import load_actor

    result = train(tiny_train_config(data_dir, tmp_path, updates=100))
    learner = result["learner"]
    loaded = load_actor(tmp_path / "actor.pt", "cn", learner.settings.hidden)
    assert loaded.norm is not None and not loaded.training
    obs = torch.randn(16, 3, 18)
    learner.actors.eval()
    with torch.no_grad():
        assert torch.equal(loaded(obs), learner.actors(obs))


def test_same_seed_same_run_other_seed_differs(data_dir, tmp_path):
    first = train(tiny_train_config(data_dir, tmp_path / "a", updates=100))
    second = train(tiny_train_config(data_dir, tmp_path / "b", updates=100))
    other = train(tiny_train_config(data_dir, tmp_path / "c", updates=100, seed=2))
    assert without_time(first["log"]) == without_time(second["log"])
    assert all(
        torch.equal(a, b) for a, b in zip(parameters(first["learner"]), parameters(second["learner"]), strict=True)
    )
    assert any(
        not torch.equal(a, c) for a, c in zip(parameters(first["learner"]), parameters(other["learner"]), strict=True)
    )


def test_tensorboard_scalars(data_dir, tmp_path):
    train(tiny_train_config(data_dir, tmp_path, updates=50, eval_every=50, tensorboard=True))
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


def test_missing_dataset_names_the_command_that_builds_it(tmp_path, capsys):
    """A missing dataset names the command that builds it; on the CLI it is one line and exit 2."""
    with pytest.raises(FileNotFoundError) as error:
        train(tiny_train_config(tmp_path / "nothing", tmp_path / "out", dataset="expert", dataset_seed=3))
    command = f"python deep/collect.py --task cn --quality expert --seed 3 --data-dir {tmp_path / 'nothing'}"
    assert command in str(error.value)
    err = cli_error(capsys, [*cli_args(tmp_path / "nothing", tmp_path / "out"), "--dataset-seed", "3"])
    assert "python deep/collect.py --task cn" in err


def test_dataset_of_another_task_or_shape_is_refused(tmp_path):
    write_tiny_dataset(tmp_path, task="halfcheetah", quality="medium")
    (tmp_path / "halfcheetah_medium_seed0.npz").rename(tmp_path / "cn_medium_seed0.npz")
    with pytest.raises(ValueError, match=r"dataset: .* does not match the task: task 'halfcheetah'.*n_agents 2"):
        train(tiny_train_config(tmp_path, tmp_path / "out", dataset="medium"))


def test_unknown_algorithm_and_bad_intervals_are_refused(data_dir, tmp_path):
    with pytest.raises(SettingsError, match="--algo: must be one of"):
        train(tiny_train_config(data_dir, tmp_path, algo="qmix"))
    with pytest.raises(SettingsError, match="--eval-every: must be a positive multiple of --log-every=50, got 75"):
        train(tiny_train_config(data_dir, tmp_path, eval_every=75))
    assert not list(tmp_path.iterdir())  # refused before anything was written


def test_dataset_labelled_with_another_quality_is_refused(tmp_path, capsys):
    write_tiny_dataset(tmp_path, quality="random")
    path = tmp_path / "cn_expert_seed0.npz"
    (tmp_path / "cn_random_seed0.npz").rename(path)  # a random dataset saved under the expert name
    with pytest.raises(DatasetError, match=rf"dataset: {path} holds a 'random' dataset .* not --dataset 'expert'"):
        train(tiny_train_config(tmp_path, tmp_path / "out", dataset="expert"))
    err = cli_error(capsys, [*cli_args(tmp_path, tmp_path / "out"), "--dataset", "expert"])
    assert str(path) in err and "'random'" in err


def test_dataset_with_actions_outside_the_unit_box_is_refused(tmp_path, capsys):
    path = write_tiny_dataset(tmp_path)
    with np.load(path) as npz:  # the file's arrays rewritten behind the dataset's own validation
        arrays = {name: npz[name] for name in npz.files}
    actions = arrays["actions"]
    np.savez_compressed(path, **(arrays | {"actions": actions * 3.0}))
    with pytest.raises(DatasetError, match=rf"dataset: {path}.*\[-1, 1\]"):
        train(tiny_train_config(tmp_path, tmp_path / "out"))
    err = cli_error(capsys, cli_args(tmp_path, tmp_path / "out"))
    assert str(path) in err and "[-1, 1]" in err
    np.savez_compressed(path, **(arrays | {"actions": np.clip(actions * 3.0, -1 - 1e-6, 1 + 1e-6)}))  # rounding
    assert train(tiny_train_config(tmp_path, tmp_path / "ok", updates=50, eval_every=50))["summary"]["updates"] == 50


BAD_SETTINGS = [
    ("--gamma", "1.5", "[0, 1)"),
    ("--gamma", "-0.1", "[0, 1)"),
    ("--tau", "-0.1", "(0, 1]"),
    ("--tau", "0", "(0, 1]"),
    ("--cql-alpha", "-1", "[0, inf)"),
    ("--cql-alpha", "inf", "[0, inf)"),
    ("--lr", "0", "(0, inf)"),
    ("--lr", "nan", "(0, inf)"),
    ("--updates", "0", ">= 1"),
    ("--updates", "-5", ">= 1"),
    ("--log-every", "0", ">= 1"),
    ("--log-every", "-50", ">= 1"),
    ("--eval-every", "0", "positive multiple of --log-every=50"),
    ("--eval-every", "-50", "positive multiple of --log-every=50"),
    ("--eval-every", "75", "positive multiple of --log-every=50"),
    ("--eval-episodes", "0", ">= 1"),
    ("--policy-delay", "0", ">= 1"),
    ("--hidden", "0", ">= 1"),
    ("--batch-size", "0", ">= 1"),
    ("--n-critics", "0", ">= 1"),
    ("--n-critics", "1", ">= 2 for --algo spacql"),
    ("--n-sampled-actions", "0", ">= 1"),
    ("--seed", "-1", ">= 0"),
    ("--dataset-seed", "-1", ">= 0"),
    ("--k", "4", "[1, 3]"),
    ("--k", "2", "1 (unset) except for --algo spacql-fixed-k"),
    *([("--device", "cuda", "cpu or auto on this machine")] if not torch.cuda.is_available() else []),
]


@pytest.mark.parametrize(("flag", "value", "allowed"), BAD_SETTINGS, ids=[f"{f}={v}" for f, v, _ in BAD_SETTINGS])
def test_a_bad_setting_is_one_error_line_naming_it_and_exit_2(flag, value, allowed, data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    err = cli_error(capsys, [*cli_args(data_dir, out), flag, value])
    assert err.startswith(f"error: {flag}: ") and allowed in err and value in err, err
    assert not out.exists()  # refused before the dataset, the device or the out dir


def test_one_critic_is_enough_for_algorithms_without_ensemble_weights(data_dir, tmp_path):
    summary = train(tiny_train_config(data_dir, tmp_path, algo="cfcql", n_critics=1, updates=50, eval_every=50))
    assert summary["summary"]["settings"]["n_critics"] == 1


@pytest.mark.parametrize("algo", ["cfcql", "spacql"])
def test_input_norm_off_gives_plain_networks_and_another_run(algo, data_dir, tmp_path):
    """--input-norm False: no BatchNorm in any actor or critic; the default (on) keeps CFCQL's networks."""
    runs = {
        flags: main(cli_args(data_dir, tmp_path / str(flags), "--algo", algo, *flags, updates=50))
        for flags in ((), ("--input-norm", "False"))
    }
    for flags, summary in runs.items():
        assert summary["settings"]["input_norm"] is (not flags)
        state = torch.load(tmp_path / str(flags) / "checkpoint.pt", weights_only=False)["learner"]
        norm_keys = [key for net in ("actors", "critics") for key in state[net] if "running_mean" in key]
        assert bool(norm_keys) is (not flags)
    assert runs[()]["final_return_mean"] != runs[("--input-norm", "False")]["final_return_mean"]


def test_python_api_values_of_the_wrong_type_are_refused(data_dir, tmp_path):
    for changes, pattern in (
        ({"hidden": 16.5}, "--hidden: must be an integer"),
        ({"gamma": "0.9"}, r"--gamma: must be a number in \[0, 1\)"),
        ({"progress": 1}, "--progress: must be true or false"),
        ({"preset": "slow"}, "--preset: must be one of quick"),
    ):
        with pytest.raises(SettingsError, match=pattern):
            train(tiny_train_config(data_dir, tmp_path, **changes))


def test_quick_preset_sets_the_defaults_it_names_and_explicit_flags_win(data_dir, tmp_path):
    from deep.settings import apply_preset

    config = apply_preset(TrainConfig(preset="quick", eval_every=150))
    assert config.updates == PRESETS["quick"]["updates"] and config.log_every == PRESETS["quick"]["log_every"]
    assert config.eval_every == 150 and config.eval_episodes == PRESETS["quick"]["eval_episodes"]
    summary = main(cli_args(data_dir, tmp_path / "run", "--preset", "quick", "--updates", "100"))
    assert summary["updates"] == 100 and summary["config"]["preset"] == "quick"


def test_non_finite_loss_stops_with_the_update_number_and_a_checkpoint(data_dir, tmp_path, monkeypatch):
    from deep import settings

    # an infinite penalty weight is refused by the settings' validation: bypass it to reach the guard
    monkeypatch.setattr("deep.train.validate_settings", settings.resolve_settings)
    with pytest.raises(FloatingPointError, match=r"update 1: non-finite loss"):
        train(tiny_train_config(data_dir, tmp_path, cql_alpha=float("inf")))
    state = torch.load(tmp_path / "nan_checkpoint.pt", weights_only=True)
    assert state["learner"]["updates"] == 50 and not (tmp_path / "summary.json").exists()


def test_resume_refuses_a_missing_checkpoint_or_another_config(data_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="resume: no checkpoint"):
        train(tiny_train_config(data_dir, tmp_path / "none", resume=True))
    train(tiny_train_config(data_dir, tmp_path / "run", updates=100))
    differs = r"resume: the checkpoint .* another config: gamma the default \(this run: 0.5\)$"  # names the setting
    with pytest.raises(ValueError, match=differs):
        train(tiny_train_config(data_dir, tmp_path / "run", resume=True, gamma=0.5))


def test_cli_help_and_unknown_algorithm():
    done = subprocess.run(
        [sys.executable, "deep/train.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    for text in ("--algo", "spacql", "icql-qs", "--updates", "--data-dir", "--out-dir", "--resume", "--compile"):
        assert text in done.stdout
    words = " ".join(done.stdout.replace("│", " ").split())
    assert "must be a positive multiple of --log-every" in words
    assert "--preset {None,quick}" in words and "quick: a first run for newcomers" in words
    from deep.algorithms.offline import default_hyperparameters

    names = {"cn": "CN", "pp": "PP", "world": "World", "halfcheetah": "HalfCheetah"}
    for task, name in names.items():  # the help's default schedule is the table's
        assert f"{name} {default_hyperparameters(task, 'random')['updates'] // 1000}k" in words, (task, words)
    with pytest.raises(SystemExit):
        main(["--algo", "qmix"])


def test_default_out_dir_and_updates_follow_the_table():
    from deep.settings import resolve_settings
    from deep.train import out_dir_of

    config = TrainConfig(algo="icql-qs", task="cn", dataset="medium", seed=4)
    assert out_dir_of(config) == Path("runs/offline/cn-medium-icql-qs-seed4")
    settings, updates = resolve_settings(config)
    assert updates == 10_000 and settings.cql_alpha == 5.0 and settings.lr == 0.01 and settings.n_critics == 10


def cli_args(data_dir: Path, out_dir: Path, *extra: str, updates: int = 100) -> list[str]:
    """deep/train.py's arguments of a tiny CPU run (tiny_train_config's) evaluated every 50 updates."""
    values = {"data-dir": data_dir, "out-dir": out_dir, "seed": 1, "dataset-seed": 0, "updates": updates}
    values["eval-every"] = 50
    values |= {"eval-episodes": 2, "log-every": 50, "n-critics": 4, "hidden": 16, "batch-size": 32, "device": "cpu"}
    args = [part for key, value in values.items() for part in (f"--{key}", str(value))]
    return [*args, "--no-progress", "--no-tensorboard", *extra]


def cli_error(capsys, argv: list[str]) -> str:
    """The stderr of ``main(argv)``, which must exit with code 2 after one ``error:`` line."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_an_out_dir_holding_a_run_is_refused_without_resume_or_overwrite(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    main(cli_args(data_dir, out))
    kept = {name: (out / name).read_bytes() for name in ("summary.json", "checkpoint.pt", "metrics.jsonl")}
    err = cli_error(capsys, cli_args(data_dir, out))  # the same command again
    assert f"out_dir {out} already holds a run" in err and "--resume" in err and "--overwrite" in err
    assert {name: (out / name).read_bytes() for name in kept} == kept
    assert "exclude each other" in cli_error(capsys, cli_args(data_dir, out, "--resume", "--overwrite"))
    summary = main(cli_args(data_dir, out, "--overwrite", updates=50))  # the old run's files go first
    assert summary["updates"] == 50
    assert [json.loads(line)["update"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [50]
    assert torch.load(out / "checkpoint.pt", weights_only=True)["learner"]["updates"] == 50


def test_a_second_run_into_an_out_dir_in_use_is_refused(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    with open(out / ".lock", "w") as holder:  # another run holds the out dir
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        holder.write("4242\n")
        holder.flush()
        err = cli_error(capsys, cli_args(data_dir, out))
        assert err == f"error: out_dir {out} is in use by another run (pid 4242)\n"
        assert sorted(p.name for p in out.iterdir()) == [".lock"]
    assert main(cli_args(data_dir, out, updates=50))["updates"] == 50  # released: free again
    assert (out / ".lock").read_text().strip() == str(os.getpid())


def test_resume_refuses_a_checkpoint_with_flipped_bits(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    main(cli_args(data_dir, out))
    path = out / "checkpoint.pt"
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:  # flip a bit inside the largest tensor's bytes
        record = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    header = record.header_offset  # a local header: 30 bytes, then the name and the extra field
    name_length, extra_length = (int.from_bytes(raw[header + at : header + at + 2], "little") for at in (26, 28))
    raw[header + 30 + name_length + extra_length + record.file_size // 2] ^= 0x10
    path.write_bytes(bytes(raw))
    torch.load(path, weights_only=True)  # torch itself reads it without complaint
    with pytest.raises(CheckpointError, match=r"is damaged: its SHA-256 differs"):
        train(tiny_train_config(data_dir, out, updates=200, eval_every=50, resume=True))
    err = cli_error(capsys, cli_args(data_dir, out, "--resume", updates=200))
    assert f"resume: {path} is damaged" in err


def test_stale_temporary_files_of_dead_writers_are_removed_on_start(data_dir, tmp_path):
    dead = tmp_path / f".checkpoint.pt.{2**30}.tmp"  # above any pid_max: its writer is gone
    alive = tmp_path / f".metrics.csv.{os.getppid()}.tmp"  # its writer (this test's parent) is alive
    dead.write_bytes(b"half a checkpoint")
    alive.write_text("a write in progress")
    train(tiny_train_config(data_dir, tmp_path, updates=50, eval_every=50))
    assert not dead.exists() and alive.exists()


def test_identical_runs_write_byte_identical_actor_and_checkpoint(data_dir, tmp_path, monkeypatch):
    """Two processes (so two temporary-file pids), one out dir path (it is in the config), a fixed clock."""
    out = tmp_path / "run"
    script = (
        "import types, torch, deep.train as t\n"
        "from tests.deep.tiny_offline import tiny_train_config\n"
        "torch.set_num_threads(1)\n"
        "t.time = types.SimpleNamespace(perf_counter=lambda: 0.0)\n"
        f"t.train(tiny_train_config({str(data_dir)!r}, {str(out)!r}, updates=50, eval_every=50))\n"
    )
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True, timeout=300)
    out.rename(tmp_path / "first")
    monkeypatch.setattr("deep.train.time", type("FixedClock", (), {"perf_counter": staticmethod(lambda: 0.0)}))
    train(tiny_train_config(data_dir, out, updates=50, eval_every=50))
    for name in ("actor.pt", "checkpoint.pt"):
        assert (out / name).read_bytes() == (tmp_path / "first" / name).read_bytes(), name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_compiled_cuda_run_matches_eager_closely(data_dir, tmp_path):
    eager = train(tiny_train_config(data_dir, tmp_path / "eager", device="cuda", updates=50, eval_every=50))
    compiled = train(
        tiny_train_config(data_dir, tmp_path / "compiled", device="cuda", updates=50, eval_every=50, compile=True)
    )
    for a, b in zip(parameters(eager["learner"]), parameters(compiled["learner"]), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)
