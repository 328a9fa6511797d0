"""The fixed pretrained opponents of Predator-Prey (the prey) and World (the two good agents).

    python -m deep.generation.opponents --task pp --team-steps 300000 --opponent-steps 300000

The original benchmark's teams played against pretrained prey / good agents. The recipe here, with
the MATD3 trainer of :mod:`deep.generation.matd3`:

1. Train the benchmark team (predators, adversaries) against uniform random opponents.
2. Train the opponents (task ``pp-prey`` / ``world-good``) against that team, played deterministically.
3. Ship the opponents' final actor as ``deep/behavior/<task>/opponent.pt`` (weights only) with
   ``opponent.json``: both training configs, the returns measured before and after stage 2, the hash.

The behavior policies of the task (:mod:`deep.generation.behavior`) are then trained, and every dataset and
evaluation of the task is played, against this fixed opponent (deterministic, so episodes depend
only on the seed and the team's actions). Each stage resumes from its checkpoint with ``--resume``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import tyro

from deep.algorithms.evaluation import deterministic_policy, load_actor, team_returns
from deep.envs.tasks import opponent_task, task_spec, uniform_opponent
from deep.generation.matd3 import MATD3Config, train
from deep.storage.files import file_sha256, write_atomically

BEHAVIOR_DIR = Path(__file__).resolve().parents[1] / "behavior"
OPPONENT_FILE = "opponent.pt"


@dataclass
class OpponentConfig:
    """Train the fixed opponent of pp or world and write it to deep/behavior/<task>/opponent.pt."""

    task: str = "pp"
    """The benchmark task whose opponents are trained: pp (the prey) or world (the good agents)."""
    team_steps: int = 300_000
    """Stage 1: transitions of the team's training against uniform random opponents."""
    opponent_steps: int = 300_000
    """Stage 2: transitions of the opponents' training against the stage-1 team."""
    seed: int = 0
    """Seed of both stages."""
    hidden: int = 64
    """Hidden width of both sides' networks."""
    n_envs: int = 8
    """Parallel environment copies of both stages."""
    eval_episodes: int = 100
    """Episodes of the before/after measurements written to opponent.json."""
    out_dir: str = "runs/opponent"
    """Where the two stages' runs go (<out_dir>/<task>-team, <out_dir>/<task>-opponent)."""
    behavior_dir: str = str(BEHAVIOR_DIR)
    """Where <task>/opponent.pt and opponent.json are written."""
    resume: bool = False
    """Continue each stage from its checkpoint (a stage without one starts fresh)."""
    device: str = "auto"
    """cpu, cuda, or auto."""


def stage_configs(config: OpponentConfig) -> tuple[MATD3Config, MATD3Config]:
    """The MATD3 runs of stage 1 (team vs uniform opponents) and stage 2 (opponents vs that team)."""
    out = Path(config.out_dir)
    common = {"seed": config.seed, "hidden": config.hidden, "n_envs": config.n_envs, "device": config.device}
    team = MATD3Config(
        task=config.task, total_steps=config.team_steps, out_dir=str(out / f"{config.task}-team"), **common
    )
    opponents = MATD3Config(
        task=opponent_task(config.task),
        total_steps=config.opponent_steps,
        out_dir=str(out / f"{config.task}-opponent"),
        opponent_actor=str(out / f"{config.task}-team" / "actor.pt"),
        opponent_hidden=config.hidden,
        **common,
    )
    return team, opponents


def _resumed(run: MATD3Config, resume: bool) -> MATD3Config:
    return replace(run, resume=resume and (Path(run.out_dir) / "checkpoint.pt").is_file())


def train_opponent(config: OpponentConfig, progress: bool = True) -> dict:
    """Run both stages, measure, and write ``opponent.pt`` and ``opponent.json``; returns the json's content."""
    start = time.time()
    if not task_spec(config.task).opponents:
        raise ValueError(f"task: {config.task!r} has no opponents (pp and world have)")
    team_run, opponent_run = stage_configs(config)
    train(_resumed(team_run, config.resume), progress=progress)
    train(_resumed(opponent_run, config.resume), progress=progress)

    seed = 30_000_001 + config.seed
    team = deterministic_policy(load_actor(opponent_run.opponent_actor, config.task, config.hidden))
    opponent_actor = Path(opponent_run.out_dir) / "actor.pt"
    trained = deterministic_policy(load_actor(opponent_actor, opponent_run.task, config.hidden))
    uniform = uniform_opponent(task_spec(config.task), seed)
    team_vs_uniform = team_returns(config.task, team, config.eval_episodes, seed, opponent=uniform)
    team_vs_trained = team_returns(config.task, team, config.eval_episodes, seed, opponent=trained)

    target = Path(config.behavior_dir) / config.task
    target.mkdir(parents=True, exist_ok=True)
    weights = opponent_actor.read_bytes()
    write_atomically(target / OPPONENT_FILE, lambda temporary: temporary.write_bytes(weights))
    record = {
        "task": config.task,
        "opponent_task": opponent_run.task,
        "hidden": config.hidden,
        "sha256": file_sha256(target / OPPONENT_FILE),
        "config": asdict(config) | {"resume": False},
        "stages": {"team": asdict(team_run) | {"resume": False}, "opponent": asdict(opponent_run) | {"resume": False}},
        "stage1_team_return": {
            "vs_uniform_opponent": float(team_vs_uniform.mean()),
            "vs_trained_opponent": float(team_vs_trained.mean()),
            "how": f"mean team return of the deterministic stage-1 team over {config.eval_episodes} episodes "
            f"of TeamEnv('{config.task}', seed={seed})",
        },
        "wall_time_s": time.time() - start,
    }
    text = json.dumps(record, indent=1) + "\n"
    write_atomically(target / "opponent.json", lambda temporary: temporary.write_text(text))
    return record


def opponent_record(task: str, behavior_dir=BEHAVIOR_DIR) -> dict:
    """``opponent.json`` of pp or world, after checking ``opponent.pt`` against its recorded hash.

    Raises ``FileNotFoundError`` naming the command that trains it when the opponent is missing,
    and ``ValueError`` when its weights do not match the hash recorded in ``opponent.json``.
    """
    folder = Path(behavior_dir) / task
    path, record_path = folder / OPPONENT_FILE, folder / "opponent.json"
    if not (path.is_file() and record_path.is_file()):
        raise FileNotFoundError(
            f"behavior_dir: no pretrained opponent for {task!r} at {path}; "
            f"train it with python -m deep.generation.opponents --task {task}"
        )
    record = json.loads(record_path.read_text())
    if file_sha256(path) != record["sha256"]:
        raise ValueError(f"behavior_dir: {path} does not match the sha256 recorded in {record_path}")
    return record


def load_opponent(task: str, behavior_dir=BEHAVIOR_DIR):
    """The shipped fixed opponent of ``task`` as a deterministic numpy policy, or None for cn/halfcheetah."""
    if not task_spec(task).opponents:
        return None
    record = opponent_record(task, behavior_dir)
    path = Path(behavior_dir) / task / OPPONENT_FILE
    return deterministic_policy(load_actor(path, record["opponent_task"], record["hidden"]))


if __name__ == "__main__":
    train_opponent(tyro.cli(OpponentConfig))
