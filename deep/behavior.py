"""Behavior policies of the offline datasets: train, measure reference returns, pick expert and medium.

    python -m deep.behavior --task cn --total-steps 300000

The recipe of the original benchmark (D4RL style, OMAR/CFCQL datasets):

1. Train MATD3 (:mod:`deep.matd3`), evaluating the deterministic team every ``eval_every``
   transitions and keeping each evaluated actor.
2. Reference returns, each the mean team return over ``reference_episodes`` episodes:
   ``R_random`` of uniform random actions in [-1, 1], ``R_expert`` of the final actor (deterministic).
   The normalized score is ``100 (R - R_random) / (R_expert - R_random)``.
3. Expert = the final actor. Medium = the evaluated actor whose re-measured normalized score is
   closest to 50 ("about half of the expert's return").
4. Written to ``deep/behavior/<task>/``: ``expert.pt`` and ``medium.pt`` (actor weights, loaded with
   ``weights_only=True``) and ``behavior.json`` (training config, reference returns and how they were
   measured, the medium step, the wall time). Training is seeded and deterministic on the CPU, so the
   medium-replay dataset regenerates by re-running the same training up to the medium step.

For pp and world the training and every measurement play the shipped fixed opponent
(``deep/behavior/<task>/opponent.pt``, :mod:`deep.opponents`); train it first.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import tyro

from ._files import file_sha256, write_atomically
from .datasets import normalized_score
from .envs import task_spec
from .evaluation import deterministic_policy, load_actor, team_returns, uniform_policy
from .matd3 import MATD3Config, train
from .opponents import BEHAVIOR_DIR, OPPONENT_FILE, load_opponent, opponent_record


@dataclass
class BehaviorConfig:
    """Train the behavior policies of one task and write them to deep/behavior/<task>/."""

    matd3: MATD3Config
    """The MATD3 run (its out_dir holds the run's checkpoints and snapshots; resumable)."""
    reference_episodes: int = 100
    """Episodes per reference-return measurement (random, expert, each medium candidate)."""
    behavior_dir: str = str(BEHAVIOR_DIR)
    """Where <task>/expert.pt, medium.pt and behavior.json are written."""


def build_behavior(config: BehaviorConfig, progress: bool = True) -> dict:
    """Run the recipe of the module docstring and write the behavior files; returns behavior.json's content."""
    start = time.time()
    run = with_shipped_opponent(config.matd3, config.behavior_dir)
    result = train(run, progress=progress)
    task, out_dir = run.task, Path(run.out_dir)
    opponent = load_opponent(task, config.behavior_dir)
    eval_seed = 20_000_003 + run.seed

    def returns_of(policy):
        return team_returns(task, policy, config.reference_episodes, eval_seed, opponent=opponent)

    random_returns = returns_of(uniform_policy(task, eval_seed))
    expert_returns = returns_of(deterministic_policy(load_actor(out_dir / "actor.pt", task, run.hidden)))
    reference = {"random": float(random_returns.mean()), "expert": float(expert_returns.mean())}

    candidates = []
    for snapshot in sorted((out_dir / "snapshots").glob("actor_*.pt")):
        returns = returns_of(deterministic_policy(load_actor(snapshot, task, run.hidden)))
        score = float(normalized_score(returns.mean(), reference))
        candidates.append((abs(score - 50.0), snapshot, score))
    _, medium_snapshot, medium_score = min(candidates)
    medium_steps = int(medium_snapshot.stem.split("_")[1])

    target = Path(config.behavior_dir) / task
    target.mkdir(parents=True, exist_ok=True)
    for source, name in ((out_dir / "actor.pt", "expert.pt"), (medium_snapshot, "medium.pt")):
        write_atomically(target / name, lambda temporary, source=source: temporary.write_bytes(source.read_bytes()))
    record = {
        "task": task,
        # the opponent's path is stored relative to <behavior_dir>/<task>/ so the record travels with the files
        "matd3_config": asdict(run) | {"resume": False, "opponent_actor": run.opponent_actor and OPPONENT_FILE},
        "opponent": None if opponent is None else {"file": OPPONENT_FILE, "sha256": file_sha256(run.opponent_actor)},
        "reference_returns": reference
        | {
            "how": (
                f"mean team return over {config.reference_episodes} episodes of TeamEnv('{task}', seed={eval_seed}); "
                "random: uniform actions in [-1, 1]; expert: expert.pt, deterministic"
                + ("" if opponent is None else f"; opponents: the shipped {OPPONENT_FILE}, deterministic")
            )
        },
        "expert": {"steps": result["steps"], "sha256": file_sha256(target / "expert.pt")},
        "medium": {
            "steps": medium_steps,
            "normalized_score": medium_score,
            "sha256": file_sha256(target / "medium.pt"),
        },
        "wall_time_s": time.time() - start,
    }
    text = json.dumps(record, indent=1) + "\n"
    write_atomically(target / "behavior.json", lambda temporary: temporary.write_text(text))
    return record


def with_shipped_opponent(run: MATD3Config, behavior_dir=BEHAVIOR_DIR) -> MATD3Config:
    """``run`` playing the shipped opponent of its task (pp, world); unchanged for cn and halfcheetah."""
    if not task_spec(run.task).opponents:
        return run
    if run.opponent_actor is not None:
        raise ValueError(
            f"matd3.opponent_actor: the behavior policies of {run.task} play the shipped opponent "
            f"({OPPONENT_FILE} in the behavior dir); leave it unset"
        )
    record = opponent_record(run.task, behavior_dir)
    return replace(
        run, opponent_actor=str(Path(behavior_dir) / run.task / OPPONENT_FILE), opponent_hidden=record["hidden"]
    )


def read_behavior(task: str, behavior_dir=BEHAVIOR_DIR) -> dict:
    """``behavior.json`` of ``task``, with a clear error naming how to build it when it is missing."""
    path = Path(behavior_dir) / task / "behavior.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"behavior_dir: no behavior policies for {task!r} at {path}; "
            f"train them with python -m deep.behavior --task {task}"
        )
    return json.loads(path.read_text())


def medium_replay_config(record: dict, out_dir, behavior_dir=BEHAVIOR_DIR) -> MATD3Config:
    """The seeded training of ``record`` stopped at the medium step (its buffer is the medium-replay data).

    For pp and world the run plays the shipped opponent, which must be the one the record was trained with.
    """
    run = replace(
        MATD3Config(**record["matd3_config"]),
        total_steps=record["medium"]["steps"],
        out_dir=str(out_dir),
        opponent_actor=None,
    )
    run = with_shipped_opponent(run, behavior_dir)
    if record.get("opponent") and file_sha256(run.opponent_actor) != record["opponent"]["sha256"]:
        raise ValueError(
            f"behavior_dir: {run.opponent_actor} is not the opponent the behavior policies of {run.task} were "
            "trained against (sha256 differs from behavior.json)"
        )
    return run


if __name__ == "__main__":
    build_behavior(tyro.cli(BehaviorConfig))
