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
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import tyro

from ._files import write_atomically
from .datasets import normalized_score
from .evaluation import deterministic_policy, load_actor, team_returns, uniform_policy
from .matd3 import MATD3Config, train

BEHAVIOR_DIR = Path(__file__).resolve().parent / "behavior"


@dataclass
class BehaviorConfig:
    """Train the behavior policies of one task and write them to deep/behavior/<task>/."""

    matd3: MATD3Config
    """The MATD3 run (its out_dir holds the run's checkpoints and snapshots; resumable)."""
    reference_episodes: int = 100
    """Episodes per reference-return measurement (random, expert, each medium candidate)."""
    behavior_dir: str = str(BEHAVIOR_DIR)
    """Where <task>/expert.pt, medium.pt and behavior.json are written."""


def file_sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def build_behavior(config: BehaviorConfig, progress: bool = True) -> dict:
    """Run the recipe of the module docstring and write the behavior files; returns behavior.json's content."""
    start = time.time()
    run = config.matd3
    result = train(run, progress=progress)
    task, out_dir = run.task, Path(run.out_dir)
    eval_seed = 20_000_003 + run.seed
    random_returns = team_returns(task, uniform_policy(task, eval_seed), config.reference_episodes, eval_seed)
    expert = deterministic_policy(load_actor(out_dir / "actor.pt", task, run.hidden))
    expert_returns = team_returns(task, expert, config.reference_episodes, eval_seed)
    reference = {"random": float(random_returns.mean()), "expert": float(expert_returns.mean())}

    candidates = []
    for snapshot in sorted((out_dir / "snapshots").glob("actor_*.pt")):
        returns = team_returns(
            task, deterministic_policy(load_actor(snapshot, task, run.hidden)), config.reference_episodes, eval_seed
        )
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
        "matd3_config": asdict(run) | {"resume": False},
        "reference_returns": reference
        | {
            "how": (
                f"mean team return over {config.reference_episodes} episodes of TeamEnv('{task}', seed={eval_seed}); "
                "random: uniform actions in [-1, 1]; expert: expert.pt, deterministic"
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


def read_behavior(task: str, behavior_dir=BEHAVIOR_DIR) -> dict:
    """``behavior.json`` of ``task``, with a clear error naming how to build it when it is missing."""
    path = Path(behavior_dir) / task / "behavior.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"behavior_dir: no behavior policies for {task!r} at {path}; "
            f"train them with python -m deep.behavior --task {task}"
        )
    return json.loads(path.read_text())


def medium_replay_config(record: dict, out_dir) -> MATD3Config:
    """The seeded training of ``record`` stopped at the medium step (its buffer is the medium-replay data)."""
    return replace(MATD3Config(**record["matd3_config"]), total_steps=record["medium"]["steps"], out_dir=str(out_dir))


if __name__ == "__main__":
    build_behavior(tyro.cli(BehaviorConfig))
