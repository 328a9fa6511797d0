"""Behavior policies of the offline datasets: train, measure reference returns, pick expert and medium.

    python -m deep.generation.behavior --matd3.task cn --matd3.total-steps 1000000

The recipe of the original benchmark (OMAR, Pan et al. 2022, section 5: "random" rolls out a
randomly initialized policy, "medium" / "expert" a partially / fully trained MATD3 policy, each with
exploration noise, D4RL style; "medium-replay" is the replay buffer up to the medium policy):

1. Train MATD3 (:mod:`deep.generation.matd3`), evaluating the deterministic team every ``eval_every``
   transitions and keeping each evaluated actor.
2. Random = the MATD3 actor as initialized (seeded by the run's seed, before any update).
   Expert = the final actor. Medium = the evaluated actor whose normalized score is closest to 50
   ("about half of the expert's return").
3. Reference returns, each the mean team return over ``reference_episodes`` episodes of a dataset's
   behavior, i.e. the actor with the datasets' Gaussian exploration noise (std ``exploration_noise``,
   clipped to [-1, 1]): ``R_random`` of random.pt, ``R_expert`` of expert.pt. The normalized score is
   ``100 (R - R_random) / (R_expert - R_random)``: the original papers normalize by their random and
   expert datasets' average returns (OMAR's and CFCQL's dataset scores), which these are in expectation.
4. Written to ``deep/behavior/<task>/``: ``random.pt``, ``expert.pt`` and ``medium.pt`` (actor
   weights, loaded with ``weights_only=True``) and ``behavior.json`` (training config, reference
   returns and how they were measured, the medium step, the wall time). Training is seeded and
   deterministic on the CPU, so the medium-replay dataset regenerates by re-running the same training
   up to the medium step.

For pp and world the training and every measurement play the shipped fixed opponent
(``deep/behavior/<task>/opponent.pt``, :mod:`deep.generation.opponents`); train it first.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import tyro

from deep.algorithms.evaluation import deterministic_policy, load_actor, noisy_policy, team_returns
from deep.envs.tasks import task_spec
from deep.generation.matd3 import MATD3, MATD3Config, train
from deep.generation.opponents import BEHAVIOR_DIR, OPPONENT_FILE, load_opponent, opponent_record
from deep.storage.datasets import normalized_score
from deep.storage.files import file_sha256, save_atomically, write_atomically

_EVAL_SEED = 20_000_003
"""Plus the training seed: the environment seed of every reference measurement."""


@dataclass
class BehaviorConfig:
    """Train the behavior policies of one task and write them to deep/behavior/<task>/."""

    matd3: MATD3Config
    """The MATD3 run (its out_dir holds the run's checkpoints and snapshots; resumable)."""
    reference_episodes: int = 100
    """Episodes per reference-return measurement (random, expert, each medium candidate)."""
    exploration_noise: float = 0.1
    """Std of the Gaussian action noise of the datasets' behavior, with which every return here is measured."""
    behavior_dir: str = str(BEHAVIOR_DIR)
    """Where <task>/random.pt, expert.pt, medium.pt and behavior.json are written."""
    remeasure: bool = False
    """Do not train: re-measure the shipped actors of the task by this recipe (see remeasure_shipped)."""


def build_behavior(config: BehaviorConfig, progress: bool = True) -> dict:
    """Run the recipe of the module docstring and write the behavior files; returns behavior.json's content."""
    start = time.time()
    run = with_shipped_opponent(config.matd3, config.behavior_dir)
    result = train(run, progress=progress)
    task, out_dir = run.task, Path(run.out_dir)
    opponent = load_opponent(task, config.behavior_dir)
    returns_of = _measurement(config, task, run.seed, opponent)
    save_atomically(initial_actor(run).state_dict(), out_dir / "random.pt")
    random_returns = returns_of(load_actor(out_dir / "random.pt", task, run.hidden))
    expert_returns = returns_of(load_actor(out_dir / "actor.pt", task, run.hidden))
    reference = {"random": float(random_returns.mean()), "expert": float(expert_returns.mean())}

    candidates = []
    for snapshot in sorted((out_dir / "snapshots").glob("actor_*.pt")):
        score = float(normalized_score(returns_of(load_actor(snapshot, task, run.hidden)).mean(), reference))
        candidates.append((abs(score - 50.0), snapshot, score))
    _, medium_snapshot, medium_score = min(candidates)
    medium_steps = int(medium_snapshot.stem.split("_")[1])

    target = Path(config.behavior_dir) / task
    target.mkdir(parents=True, exist_ok=True)
    shipped = {"random.pt": out_dir / "random.pt", "expert.pt": out_dir / "actor.pt", "medium.pt": medium_snapshot}
    for name, source in shipped.items():
        write_atomically(target / name, lambda temporary, source=source: temporary.write_bytes(source.read_bytes()))
    record = {
        "task": task,
        # the opponent's path is stored relative to <behavior_dir>/<task>/ so the record travels with the files
        "matd3_config": asdict(run) | {"resume": False, "opponent_actor": run.opponent_actor and OPPONENT_FILE},
        "opponent": None if opponent is None else {"file": OPPONENT_FILE, "sha256": file_sha256(run.opponent_actor)},
        "reference_returns": reference | {"how": _how(config, task, run.seed, opponent)},
        "exploration_noise": config.exploration_noise,
        "random": {"steps": 0, "sha256": file_sha256(target / "random.pt")},
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


def remeasure_shipped(config: BehaviorConfig) -> dict:
    """Re-measure the shipped actors of ``config.matd3.task`` by the recipe without training again.

    For behavior policies trained before ``random.pt`` and the noisy measurements were part of the
    recipe: writes ``random.pt`` (the recorded training run's initial actor) and replaces the
    reference returns and the medium's normalized score in ``behavior.json``; ``expert.pt`` and
    ``medium.pt`` are kept, and so is the medium step (the snapshots it was chosen from are not kept).
    """
    task = config.matd3.task
    target = Path(config.behavior_dir) / task
    record = read_behavior(task, config.behavior_dir)
    run = MATD3Config(**record["matd3_config"])
    opponent = load_opponent(task, config.behavior_dir)
    returns_of = _measurement(config, task, run.seed, opponent)
    save_atomically(initial_actor(run).state_dict(), target / "random.pt")
    reference = {
        quality: float(returns_of(load_actor(target / f"{quality}.pt", task, run.hidden)).mean())
        for quality in ("random", "expert")
    }
    medium_score = float(
        normalized_score(returns_of(load_actor(target / "medium.pt", task, run.hidden)).mean(), reference)
    )
    record |= {
        "reference_returns": reference | {"how": _how(config, task, run.seed, opponent)},
        "exploration_noise": config.exploration_noise,
        "random": {"steps": 0, "sha256": file_sha256(target / "random.pt")},
        "medium": record["medium"] | {"normalized_score": medium_score},
    }
    text = json.dumps(record, indent=1) + "\n"
    write_atomically(target / "behavior.json", lambda temporary: temporary.write_text(text))
    return record


def _measurement(config: BehaviorConfig, task: str, seed: int, opponent):
    """``returns_of(actors)``: team returns of the actors with the datasets' noise, over the reference episodes."""
    spec = task_spec(task)

    def returns_of(actors):
        act_shape = (spec.n_agents, spec.act_dim)
        behavior = noisy_policy(deterministic_policy(actors), config.exploration_noise, act_shape, 0)
        return team_returns(task, behavior, config.reference_episodes, _EVAL_SEED + seed, opponent=opponent)

    return returns_of


def _how(config: BehaviorConfig, task: str, seed: int, opponent) -> str:
    return (
        f"mean team return over {config.reference_episodes} episodes of TeamEnv('{task}', seed={_EVAL_SEED + seed}) "
        f"of random.pt / expert.pt with Gaussian action noise std {config.exploration_noise} (seed 0), "
        "clipped to [-1, 1]" + ("" if opponent is None else f"; opponents: the shipped {OPPONENT_FILE}, deterministic")
    )


def initial_actor(run: MATD3Config):
    """The actors of ``run`` as MATD3 initializes them (seeded by ``run.seed``): the Random quality's policy."""
    spec = task_spec(run.task)
    return MATD3(replace(run, device="cpu"), spec.n_agents, spec.obs_dim, spec.act_dim, spec.state_dim, "cpu").actors


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
            f"train them with python -m deep.generation.behavior --matd3.task {task}"
        )
    return json.loads(path.read_text())


def medium_replay_config(record: dict, out_dir, behavior_dir=BEHAVIOR_DIR, seed: int | None = None) -> MATD3Config:
    """The seeded training of ``record`` stopped at the medium step (its buffer is the medium-replay data).

    ``seed``: the training's seed; default the record's (the run that produced ``medium.pt``), another seed a
    run of the same recipe (deep/collect.py's medium-replay datasets of other dataset seeds).
    For pp and world the run plays the shipped opponent, which must be the one the record was trained with.
    """
    run = MATD3Config(**record["matd3_config"])
    run = replace(
        run,
        seed=run.seed if seed is None else seed,
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
    behavior_config = tyro.cli(BehaviorConfig)
    (remeasure_shipped if behavior_config.remeasure else build_behavior)(behavior_config)
