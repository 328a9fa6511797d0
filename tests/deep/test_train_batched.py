"""deep/train.py --seeds: R runs as one batched program write the runs' directories of R separate runs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from deep.algorithms.batched import BatchedRuns
from deep.algorithms.evaluation import deterministic_policy, runs_team_returns, stacked_policy, team_returns
from deep.algorithms.networks import Actors
from deep.envs.tasks import task_spec
from deep.generation.opponents import load_opponent
from deep.storage.files import OutDirError, locked_out_dir
from deep.train import main, train
from tests.deep.test_train import cli_args, cli_error, without_time
from tests.deep.tiny_offline import (
    make_second_of_two_batched_runs_non_finite,
    tiny_train_config,
    write_tiny_dataset,
)

torch.set_num_threads(1)
SEEDS = [3, 5]
RUN_FILES = {"summary.json", "checkpoint.pt", "actor.pt", "metrics.jsonl", "metrics.csv"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("data")
    write_tiny_dataset(directory)
    return directory


def rows(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def batched_config(data_dir, parent, algo="spacql", **changes):
    values = dict(seed=0, seeds=SEEDS, **_schedule()) | changes
    return tiny_train_config(data_dir, parent, algo=algo, **_method_sizes(algo), **values)


def _method_sizes(algo: str) -> dict:
    return {"n_critics": None} if algo == "matd3-bc" else {}


def run_dir(parent, seed, algo="spacql"):
    return parent / f"cn-random-{algo}-seed{seed}"


@pytest.mark.parametrize("algo", ["spacql", "cfcql", "matd3-bc"])
def test_seeds_as_one_program_write_what_separate_runs_write(algo, data_dir, tmp_path):
    """Each run directory of ``--seeds`` holds the files of a ``--seed s`` run with the same metrics and
    evaluation returns, to float32 rounding (batched matmuls, whole-tensor penalty; over 20 updates the
    losses agree to 1e-3 relative; Adam can amplify a rounding difference of a near-zero gradient element
    up to lr per update, so the parameters are compared at 1e-3)."""
    parent = tmp_path / "batched"
    result = train(batched_config(data_dir, parent, algo))
    assert [run["summary"]["seed"] for run in result["runs"]] == SEEDS
    for seed in SEEDS:
        separate_dir = tmp_path / f"separate{seed}"
        config = tiny_train_config(data_dir, separate_dir, algo=algo, seed=seed, **_method_sizes(algo), **_schedule())
        separate = train(config)
        mine = run_dir(parent, seed, algo)
        assert {path.name for path in mine.iterdir()} - {".lock"} == RUN_FILES
        assert {path.name for path in separate_dir.iterdir()} - {".lock"} == RUN_FILES
        summary = json.loads((mine / "summary.json").read_text())
        assert summary["seed"] == seed and summary["batched_seeds"] == SEEDS and summary["updates"] == 20
        assert summary["config"]["seeds"] is None and summary["config"]["out_dir"] == str(mine)
        ours, theirs = without_time(rows(mine)), without_time(separate["log"])
        assert [row.keys() for row in ours] == [row.keys() for row in theirs]
        for our_row, their_row in zip(ours, theirs, strict=True):
            for key, value in their_row.items():
                np.testing.assert_allclose(our_row[key], value, rtol=1e-3, atol=1e-4, err_msg=f"{seed} {key}")
        our_actor = torch.load(mine / "actor.pt", weights_only=True)
        their_actor = torch.load(separate_dir / "actor.pt", weights_only=True)
        for key, value in their_actor.items():
            torch.testing.assert_close(our_actor[key], value, rtol=1e-3, atol=1e-3, msg=key)
    first, second = (rows(run_dir(parent, seed, algo))[-1] for seed in SEEDS)
    assert first["critic_loss"] != second["critic_loss"]  # the runs are their own


def _schedule() -> dict:
    return dict(updates=20, log_every=10, eval_every=10, eval_episodes=3)


def test_batched_resume_continues_to_the_same_result_and_a_single_run_resumes_a_batched_directory(data_dir, tmp_path):
    """10 updates, then --resume to 20 = 20 uninterrupted batched updates, bit for bit (metrics, actor);
    the checkpoint of a batched run is a ``--seed s`` run's, which a single run resumes."""
    whole, halves = tmp_path / "whole", tmp_path / "halves"
    train(batched_config(data_dir, whole))
    train(batched_config(data_dir, halves, updates=10))
    train(batched_config(data_dir, halves, resume=True))
    for seed in SEEDS:
        assert without_time(rows(run_dir(halves, seed))) == without_time(rows(run_dir(whole, seed)))
        mine = torch.load(run_dir(halves, seed) / "actor.pt", weights_only=True)
        theirs = torch.load(run_dir(whole, seed) / "actor.pt", weights_only=True)
        assert all(torch.equal(mine[key], theirs[key]) for key in theirs)
    single = tiny_train_config(data_dir, run_dir(halves, SEEDS[0]), seed=SEEDS[0], resume=True, **_schedule())
    summary = train(single)["summary"]
    assert summary["updates"] == 20 and "batched_seeds" not in summary


def test_a_run_whose_checkpoint_is_behind_catches_up_alone(data_dir, tmp_path):
    """A process killed between the runs' checkpoint writes leaves one run behind: --resume brings it to the
    others' update alone (its own single-run update: its rows match a separate run's to 1e-3), then trains
    all as one program; its rows are all there once. A catch-up never goes past --updates."""
    parent = tmp_path / "runs"
    train(batched_config(data_dir, parent, updates=10))
    behind = tmp_path / "behind"
    shutil.copytree(run_dir(parent, SEEDS[1]), behind)  # seed 5 at update 10
    train(batched_config(data_dir, parent, resume=True))  # both at 20

    def restore_behind():
        shutil.rmtree(run_dir(parent, SEEDS[1]))
        shutil.copytree(behind, run_dir(parent, SEEDS[1]))

    restore_behind()
    train(batched_config(data_dir, parent, updates=10, resume=True))  # seed 3 at 20, seed 5 asked for 10
    assert json.loads((run_dir(parent, SEEDS[1]) / "summary.json").read_text())["updates"] == 10

    restore_behind()
    train(batched_config(data_dir, parent, updates=30, resume=True))
    caught_up = rows(run_dir(parent, SEEDS[1]))
    assert [row["update"] for row in caught_up] == [10, 20, 30]
    assert [row["update"] for row in rows(run_dir(parent, SEEDS[0]))] == [10, 20, 30]
    assert json.loads((run_dir(parent, SEEDS[1]) / "summary.json").read_text())["updates"] == 30
    separate = train(tiny_train_config(data_dir, tmp_path / "separate", seed=SEEDS[1], **_schedule()))
    for mine, theirs in zip(without_time(caught_up[:2]), without_time(separate["log"]), strict=True):
        for key, value in theirs.items():
            np.testing.assert_allclose(mine[key], value, rtol=1e-3, atol=1e-4, err_msg=key)


def test_resume_with_a_run_directory_without_checkpoint_is_refused_naming_it(data_dir, tmp_path):
    parent = tmp_path / "runs"
    train(batched_config(data_dir, parent, updates=10))
    (run_dir(parent, SEEDS[1]) / "checkpoint.pt").unlink()
    with pytest.raises(FileNotFoundError, match=f"resume: no checkpoint at {run_dir(parent, SEEDS[1])}"):
        train(batched_config(data_dir, parent, resume=True))


def test_overwrite_deletes_nothing_when_another_run_directory_is_in_use(data_dir, tmp_path):
    """Every lock is taken before any run directory is cleaned: a refused run deletes nothing in the others."""
    parent = tmp_path / "runs"
    train(batched_config(data_dir, parent, updates=10))
    with locked_out_dir(run_dir(parent, SEEDS[1])), pytest.raises(OutDirError, match="in use by another run"):
        train(batched_config(data_dir, parent, overwrite=True))
    assert (run_dir(parent, SEEDS[0]) / "summary.json").is_file()


def test_a_run_whose_loss_turns_non_finite_stops_alone(data_dir, tmp_path, monkeypatch):
    """Seed 5's critic loss made infinite at update 15: it stops with its nan_checkpoint.pt and no summary;
    seed 3 restarts from its checkpoint at 10 and finishes; then the error names seed 5's run."""
    make_second_of_two_batched_runs_non_finite(monkeypatch, at_update=15)
    parent = tmp_path / "runs"
    with pytest.raises(FloatingPointError, match=r"^update 15: non-finite loss .*seed5/nan_checkpoint.pt$"):
        train(batched_config(data_dir, parent))
    assert json.loads((run_dir(parent, SEEDS[0]) / "summary.json").read_text())["updates"] == 20
    assert [row["update"] for row in rows(run_dir(parent, SEEDS[0]))] == [10, 20]
    assert not (run_dir(parent, SEEDS[1]) / "summary.json").exists()
    assert torch.load(run_dir(parent, SEEDS[1]) / "nan_checkpoint.pt", weights_only=True)["learner"]["updates"] == 20


def test_batched_evaluation_plays_each_runs_own_episodes():
    """R teams evaluated as one batch of R x E copies = each team's own team_returns (the same episodes)."""
    spec = task_spec("pp")
    teams = []
    for seed in range(3):
        torch.manual_seed(seed)
        teams.append(Actors(spec.n_agents, spec.obs_dim, spec.act_dim, 16, input_norm=True).eval())
    params = {key: torch.stack([team.state_dict()[key] for team in teams]) for key in teams[0].state_dict()}
    opponent = load_opponent("pp")
    seeds = [11, 40, 7]
    together = runs_team_returns("pp", stacked_policy(teams[0], params), 4, seeds, opponent)
    assert together.shape == (3, 4)
    for team, seed, returns in zip(teams, seeds, together, strict=True):
        alone = team_returns("pp", deterministic_policy(team), 4, seed, opponent=opponent)
        np.testing.assert_allclose(returns, alone, rtol=1e-5, atol=1e-4)
    assert not np.allclose(together[0], together[1])
    with pytest.raises(ValueError, match=r"^opponent: task 'pp' needs one"):
        runs_team_returns("pp", stacked_policy(teams[0], params), 4, seeds, None)


BAD_SEEDS = [
    (["--seeds", "1", "1"], "--seeds: must be distinct seeds"),
    (["--seeds", "1", "-2"], "--seeds: must be an integer >= 0"),
    (["--seeds", "1", "2", "--seed", "4"], "--seed: must be unset with --seeds"),
    (["--seeds", "1", "2", "--algo", "iql"], "--seeds: must be unset for --algo iql"),
]


@pytest.mark.parametrize(("args", "message"), BAD_SEEDS, ids=[" ".join(args) for args, _ in BAD_SEEDS])
def test_bad_seeds_are_one_error_line_and_exit_2(args, message, data_dir, tmp_path, capsys):
    out = tmp_path / "runs"
    err = cli_error(capsys, [*cli_args(data_dir, out), *args])
    assert err.startswith(f"error: {message}"), err
    assert not out.exists()


def test_the_cli_trains_the_seeds_into_the_parent_directory(data_dir, tmp_path):
    args = ["--seed", "0", "--seeds", "2", "--updates", "10", "--log-every", "10", "--eval-every", "10"]
    summary = main([*cli_args(data_dir, tmp_path / "runs"), *args])
    assert [run["seed"] for run in summary["runs"]] == [2]
    assert (tmp_path / "runs" / "cn-random-spacql-seed2" / "summary.json").is_file()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("algo", ["spacql", "matd3-bc"])
def test_compiled_batched_cuda_runs_match_eager_and_never_synchronize(algo, data_dir, tmp_path):
    """--seeds --compile on a GPU (CUDA graphs) gives eager's runs to 1e-3; the compiled batched update runs
    with CUDA's sync debug mode set to error after a warm-up."""
    eager = train(batched_config(data_dir, tmp_path / "eager", algo, device="cuda"))
    compiled = train(batched_config(data_dir, tmp_path / "compiled", algo, device="cuda", compile=True))
    for mine, theirs in zip(compiled["runs"], eager["runs"], strict=True):
        for key, value in theirs["learner"].actors.state_dict().items():
            torch.testing.assert_close(mine["learner"].actors.state_dict()[key], value, rtol=1e-3, atol=1e-3)

    runs = BatchedRuns([run["learner"] for run in eager["runs"]])
    runs.compile("reduce-overhead")
    generators = [torch.Generator(device="cuda").manual_seed(seed) for seed in SEEDS]
    rows = runs.template.batch_rows
    batch = {key: torch.rand(rows, *shape, device="cuda") for key, shape in _row_shapes().items()}
    for _ in range(5):  # warm-up: compiling, recording the graphs and lazy initialization may synchronize
        runs.update([batch] * len(SEEDS), generators)
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(5):
            runs.update([batch] * len(SEEDS), generators)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def _row_shapes() -> dict[str, tuple[int, ...]]:
    spec = task_spec("cn")
    n = spec.n_agents
    return {
        "obs": (n, spec.obs_dim),
        "next_obs": (n, spec.obs_dim),
        "actions": (n, spec.act_dim),
        "next_actions": (n, spec.act_dim),
        "rewards": (),
        "terminals": (),
        "state": (spec.state_dim,),
        "next_state": (spec.state_dim,),
    }


def test_original_stream_and_per_seed_datasets_as_one_program_match_separate_runs(tmp_path):
    """--minibatches original with each run on its own dataset (dataset seed = run seed): every run of the
    batched program replays its own cycle over its own dataset, as a separate run does (float32 rounding)."""
    data_dir = tmp_path / "data"
    for seed in (0, *SEEDS):
        write_tiny_dataset(data_dir, seed=seed)
    stream = dict(algo="cfcql", minibatches="original", dataset_seed=None)
    parent = tmp_path / "batched"
    train(batched_config(data_dir, parent, **stream))
    for seed in SEEDS:
        separate = train(tiny_train_config(data_dir, tmp_path / f"separate{seed}", seed=seed, **stream, **_schedule()))
        summary = json.loads((run_dir(parent, seed, "cfcql") / "summary.json").read_text())
        assert summary["dataset_seed"] == seed and summary["dataset_file"].endswith(f"cn_random_seed{seed}.npz")
        assert summary["minibatches"] == separate["summary"]["minibatches"]
        ours, theirs = without_time(rows(run_dir(parent, seed, "cfcql"))), without_time(separate["log"])
        for our_row, their_row in zip(ours, theirs, strict=True):
            for key, value in their_row.items():
                np.testing.assert_allclose(our_row[key], value, rtol=1e-3, atol=1e-4, err_msg=f"{seed} {key}")
    shared = train(batched_config(data_dir, tmp_path / "shared", algo="cfcql", minibatches="original"))
    assert [run["summary"]["dataset_seed"] for run in shared["runs"]] == [0, 0]  # --dataset-seed 0 explicitly
    assert without_time(shared["runs"][0]["log"]) != without_time(rows(run_dir(parent, SEEDS[0], "cfcql")))
