"""Build the offline datasets (D4RL-style recipe of the original benchmark).

    python deep/collect.py --task cn --quality expert --size 100000 --seed 0 --data-dir data
    python deep/collect.py                      # every task and quality of the small profile

Qualities (OMAR's recipe, see :mod:`deep.generation.behavior`), dataset seed ``--seed k`` (the original
benchmark ships five datasets per task and quality, ``seed_0_data`` ... ``seed_4_data``; its collection code
is not public):
* random: MATD3's actor as initialized by the behavior run's config with seed ``k``, with Gaussian
  exploration noise ``N(0, exploration_noise^2)``, clipped to [-1, 1]: a different random initialization per
  dataset seed (the natural reading of "a randomly initialized policy"); for the behavior run's own seed that
  is the shipped ``random.pt``, which is loaded (its hash recorded);
* medium / expert: the shipped ``medium.pt``, ``expert.pt`` (deep/behavior/<task>/) with that noise, for
  every dataset seed; the seed changes the rollouts (environment resets, noise) only;
* medium-replay: every transition the behavior training stored until the medium step, by re-running that
  training (deterministic on the CPU) with seed ``k`` and the recorded config and medium step: for the
  behavior run's own seed, the very buffer of the run that produced ``medium.pt``; for the others, another
  run of the same recipe stopped at the same step (its actor there is not checked to be medium). Its size is
  what the buffer holds, the same for every seed.

Sizes: ``--profile full`` is the original benchmark's 1M transitions per dataset (OMAR's random,
medium and expert; its medium-replay is a buffer of its own size), ``small`` (100k) is for quick
work and tests; ``--size`` overrides both.

Rollouts keep whole episodes (the size is rounded up to a multiple of the episode length) and
store the exact next joint action ``a'``: the action taken at the next step, and for the last step
of an episode an action the behavior draws at the final state. Files are cached under
``data_dir`` as ``<task>_<quality>_seed<seed>.npz``, written atomically and never regenerated
silently (``--overwrite`` rebuilds); a cached file built by another generator version, from another
behavior checkpoint or against another opponent is an error, not kept. The opponents of pp and
world (prey, good agents) are the shipped pretrained ones (``deep/behavior/<task>/opponent.pt``,
played deterministically), for every quality; the metadata records their hash.

A user error (unknown task or quality, a missing or unreadable behavior policy, a cached dataset
that is stale or unreadable, a data directory that is a file, ...) ends the command with one
``error: ...`` line on stderr and exit status 2.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import io
import json
import math
import pickle
import sys
import tempfile
import zipfile
import zlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import tyro
from tqdm import tqdm

from deep.algorithms.evaluation import deterministic_policy, load_actor, noisy_policy
from deep.envs.tasks import TASKS, TeamEnv, task_spec
from deep.generation.behavior import initial_actor, medium_replay_config, read_behavior
from deep.generation.matd3 import MATD3Config, train
from deep.generation.opponents import BEHAVIOR_DIR, OPPONENT_FILE, load_opponent
from deep.settings import PROFILE_SIZES, validate_collect_config
from deep.storage.datasets import QUALITIES, OfflineDataset, dataset_path, save
from deep.storage.files import file_sha256

#: Bumped whenever the generated data would change for the same config.
GENERATOR_VERSION = 2
ENV_PACKAGES = ("spacql", "pettingzoo", "gymnasium", "gymnasium-robotics", "mujoco", "numpy", "torch")


@dataclass
class CollectConfig:
    """Build one offline dataset, or all of them."""

    task: str = "all"
    """cn, pp, world, halfcheetah, or all."""
    quality: str = "all"
    """random, medium-replay, medium, expert, or all."""
    size: int | None = None
    """Transitions (rounded up to whole episodes); default: the profile's size. medium-replay has its buffer's."""
    profile: str = "small"
    """small (100k transitions) or full (1M, the original benchmark's size)."""
    seed: int = 0
    """Dataset seed: of the rollouts (environment resets and exploration noise), of random's actor initialization
    and of medium-replay's behavior training (see the qualities above)."""
    data_dir: str = "data"
    """Where the datasets are cached."""
    behavior_dir: str = str(BEHAVIOR_DIR)
    """Where the behavior policies are (deep/behavior/<task>/)."""
    exploration_noise: float = 0.1
    """Std of the Gaussian noise on the medium and expert actions."""
    n_envs: int = 100
    """Episodes collected in parallel (the MPE copies step as one array program: more is faster)."""
    overwrite: bool = False
    """Rebuild a dataset that already exists."""
    progress: bool = True
    """Show progress bars."""


def rollout(
    task: str, policy, n_transitions: int, seed: int, n_envs: int, progress: bool = False, opponent=None
) -> dict:
    """Collect whole episodes with ``policy`` (numpy in, numpy out) until ``n_transitions`` are reached.

    ``opponent`` drives the other side of pp and world (see :class:`deep.envs.tasks.TeamEnv`).

    Returns the per-step arrays of :class:`deep.storage.datasets.OfflineDataset`, episode-major.
    """
    spec = task_spec(task)
    n_episodes = math.ceil(n_transitions / spec.episode_length)
    env = TeamEnv(task, n_envs=n_envs, seed=seed, opponent=opponent)
    episodes: list[dict] = []
    # counts the transitions kept: the copies of the last round beyond n_episodes are dropped below
    bar = tqdm(total=n_episodes * spec.episode_length, disable=not progress, desc=f"{task} rollouts")
    for round_index in range(math.ceil(n_episodes / n_envs)):
        kept_copies = min(n_envs, n_episodes - round_index * n_envs)
        obs, state = env.reset(seed=seed * 1_000_003 + round_index * n_envs)
        steps = {
            key: []
            for key in ("obs", "actions", "rewards", "next_obs", "terminals", "truncations", "state", "next_state")
        }
        actions = policy(obs)
        done = np.zeros(n_envs, dtype=bool)
        while not done.all():
            next_obs, next_state, reward, terminated, truncated = env.step(actions)
            for key, value in zip(
                steps, (obs, actions, reward, next_obs, terminated, truncated, state, next_state), strict=True
            ):
                steps[key].append(value)
            done = terminated | truncated
            if not (done.all() or not done.any()):
                raise NotImplementedError(
                    f"task {task}: copies ended at different steps; rollouts assume fixed-length episodes"
                )
            obs, state, actions = next_obs, next_state, policy(next_obs)
            bar.update(kept_copies)
        stacked = {key: np.stack(values, axis=1) for key, values in steps.items()}  # [E, T, ...]
        # a' of step t is the action of step t+1; after the last step, the action drawn at the final state
        stacked["next_actions"] = np.concatenate([stacked["actions"][:, 1:], actions[:, None]], axis=1)
        episodes.extend({key: value[e] for key, value in stacked.items()} for e in range(n_envs))
    if not bar.disable and bar.n != bar.total:  # episodes ended early: the bar ends at what was collected
        bar.total = bar.n
        bar.refresh()
    bar.close()
    kept = episodes[:n_episodes]
    arrays = {key: np.concatenate([episode[key] for episode in kept]) for key in kept[0]}
    arrays["episode_ids"] = np.repeat(np.arange(len(kept)), [len(episode["rewards"]) for episode in kept])
    return arrays


def replay_buffer_arrays(buffer, task: str, n_envs: int) -> dict:
    """The medium-replay buffer (rows in insertion order: step-major, copy-minor) as episode-major arrays.

    ``next_actions`` is the next step's action in the same episode; the last step of an episode
    repeats its own action (the training run's actor at that moment is not stored).
    """
    spec = task_spec(task)
    length = spec.episode_length
    if buffer.size < buffer.capacity and buffer.cursor != buffer.size:
        raise ValueError("buffer: not in insertion order")
    if buffer.size >= buffer.capacity:
        raise ValueError(f"buffer: capacity {buffer.capacity} reached, early transitions were overwritten")
    rows = np.arange(buffer.size)
    global_step, copy_index = rows // n_envs, rows % n_envs
    episode, step = (global_step // length) * n_envs + copy_index, global_step % length
    order = np.lexsort((step, episode))
    arrays = {name: buffer.data[name][: buffer.size][order] for name in buffer.FIELDS}
    episode, step = episode[order], step[order]
    arrays["terminals"] = arrays["terminals"].astype(bool)
    arrays["truncations"] = (step == length - 1) & ~arrays["terminals"]
    last = np.r_[episode[1:] != episode[:-1], True]
    arrays["next_actions"] = np.where(last[:, None, None], arrays["actions"], np.roll(arrays["actions"], -1, axis=0))
    arrays["episode_ids"] = np.unique(episode, return_inverse=True)[1].astype(np.int64)
    return arrays


def provenance(metadata: dict) -> dict:
    """What a dataset was built from: generator version, behavior checkpoint, opponent (hashes)."""
    return {
        "generator version": metadata["generator"]["version"],
        "behavior checkpoint": metadata["behavior_checkpoint_sha256"],
        "opponent": metadata["opponent"],
    }


def check_cached(path: Path, expected: dict) -> None:
    """``ValueError`` unless the dataset at ``path`` was built from ``expected`` (see :func:`provenance`)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            found = provenance(json.loads(str(npz["metadata"])))
    except (OSError, EOFError, ValueError, KeyError, TypeError, zipfile.BadZipFile, zlib.error) as error:
        raise ValueError(f"{path}: unreadable cached dataset ({error}); pass --overwrite to rebuild it") from error
    stale = [key for key in expected if found[key] != expected[key]]
    if stale:
        raise ValueError(
            f"{path}: cached dataset built with another {', '.join(stale)} than the current one "
            f"({found} vs {expected}); pass --overwrite to rebuild it"
        )


def _behavior_record(task: str, behavior_dir) -> dict:
    """:func:`deep.generation.behavior.read_behavior`; a corrupted ``behavior.json`` is a ``ValueError`` naming it."""
    path = Path(behavior_dir) / task / "behavior.json"
    try:
        record = read_behavior(task, behavior_dir)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: corrupted behavior record ({error})") from error
    if not isinstance(record, dict) or not {"matd3_config", "reference_returns"} <= record.keys():
        raise ValueError(f"{path}: not a behavior record (expected matd3_config and reference_returns)")
    return record


def actors_sha256(actors) -> str:
    """SHA-256 of the actors' parameters and buffers (names, shapes and bytes, in state_dict order)."""
    digest = hashlib.sha256()
    for name, tensor in actors.state_dict().items():
        values = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{name}:{values.dtype}:{values.shape};".encode())
        digest.update(values.tobytes())
    return digest.hexdigest()


def behavior_description(quality: str, seed: int, behavior_run: MATD3Config, record: dict) -> dict:
    """What produced a dataset of ``quality`` and dataset seed ``seed`` (its metadata's ``behavior``)."""
    if quality == "medium-replay":
        policy = (
            f"MATD3 behavior training (the config of behavior.json, seed {seed}) up to step {record['medium']['steps']}"
        )
    elif quality == "random" and seed != behavior_run.seed:
        policy = f"MATD3's actor as initialized with seed {seed} (the config of behavior.json)"
    else:
        policy = f"{quality}.pt"
    return {"dataset_seed": seed, "behavior_run_seed": behavior_run.seed, "policy": policy}


def _unreadable_checkpoint(path, error: Exception) -> ValueError:
    first_line = (str(error).splitlines() or [""])[0]
    return ValueError(
        f"{path}: unreadable or mismatched checkpoint ({type(error).__name__}: {first_line}); rebuild the behavior "
        "policies (python -m deep.generation.behavior) or restore the file"
    )


def build_dataset(config: CollectConfig, task: str, quality: str) -> Path:
    """Build (or keep) one dataset file and return its path.

    A cached file is kept only if it was built by this generator version from the same behavior
    checkpoint and opponent; otherwise ``ValueError`` asks for ``--overwrite``.
    """
    if Path(config.data_dir).exists() and not Path(config.data_dir).is_dir():
        raise NotADirectoryError(f"data_dir: {config.data_dir} exists and is not a directory")
    Path(config.data_dir).mkdir(parents=True, exist_ok=True)
    path = dataset_path(config.data_dir, task, quality, config.seed)
    spec = task_spec(task)
    size = config.size if config.size is not None else PROFILE_SIZES[config.profile]
    # the opponent comes first: pp and world's behavior policies are trained against it
    try:
        opponent = load_opponent(task, config.behavior_dir)
    except (RuntimeError, EOFError, KeyError, pickle.UnpicklingError) as error:
        raise _unreadable_checkpoint(Path(config.behavior_dir) / task / OPPONENT_FILE, error) from error
    behavior = _behavior_record(task, config.behavior_dir)
    behavior_run = MATD3Config(**behavior["matd3_config"])
    # random's actor of another seed is initialized here, not read from a file (see the module docstring)
    initialized = quality == "random" and config.seed != behavior_run.seed
    shipped = quality != "medium-replay" and not initialized
    checkpoint = Path(config.behavior_dir) / task / f"{quality}.pt" if shipped else None
    if initialized:
        initial_actors = initial_actor(replace(behavior_run, seed=config.seed))
    built_from = {
        "generator version": GENERATOR_VERSION,
        "behavior checkpoint": actors_sha256(initial_actors)
        if initialized
        else (file_sha256(checkpoint) if checkpoint and checkpoint.is_file() else None),
        "opponent": None
        if opponent is None
        else {"checkpoint": OPPONENT_FILE, "sha256": file_sha256(Path(config.behavior_dir) / task / OPPONENT_FILE)},
    }
    if path.exists() and not config.overwrite:
        check_cached(path, built_from)
        print(f"{path}: exists, kept (pass --overwrite to rebuild)")
        return path
    if quality != "medium-replay":
        if initialized:
            actors = initial_actors
        else:
            try:
                actors = load_actor(checkpoint, task, behavior_run.hidden)
            except (RuntimeError, EOFError, KeyError, pickle.UnpicklingError) as error:
                raise _unreadable_checkpoint(checkpoint, error) from error
        policy = noisy_policy(
            deterministic_policy(actors), config.exploration_noise, (spec.n_agents, spec.act_dim), config.seed
        )
        arrays = rollout(task, policy, size, config.seed, config.n_envs, config.progress, opponent)
    else:
        with tempfile.TemporaryDirectory() as work:
            run = medium_replay_config(behavior, work, config.behavior_dir, seed=config.seed)
            result = train(run, progress=config.progress)
        arrays = replay_buffer_arrays(result["buffer"], task, behavior_run.n_envs)
    dtypes = {"episode_ids": np.int64, "terminals": bool, "truncations": bool}
    arrays = {key: value.astype(dtypes.get(key, np.float32)) for key, value in arrays.items()}
    metadata = {
        "task": task,
        "quality": quality,
        "seed": config.seed,
        "obs_dims": list(spec.obs_dims),
        "act_dims": list(spec.act_dims),
        "generator": {
            "name": "deep.collect",
            "version": GENERATOR_VERSION,
            "config": asdict(config) | {"task": task, "quality": quality},
        },
        "env_versions": {name: importlib.metadata.version(name) for name in ENV_PACKAGES},
        "behavior_checkpoint_sha256": built_from["behavior checkpoint"],
        "behavior": behavior_description(quality, config.seed, behavior_run, behavior),
        "reference_returns": {k: behavior["reference_returns"][k] for k in ("random", "expert")},
        "opponent": built_from["opponent"],
    }
    save(OfflineDataset(**arrays, metadata=metadata), path, overwrite=config.overwrite)
    print(f"{path}: {len(arrays['rewards'])} transitions")
    return path


def main(config: CollectConfig) -> tuple[list[Path], list[str]]:
    """Build the requested datasets; returns the built paths and, for ``all``, what had to be skipped.

    A single explicit request without its behavior policies raises; with ``--task all`` or
    ``--quality all`` every dataset that can be built is built and the rest is listed.
    """
    validate_collect_config(config)
    tasks = TASKS if config.task == "all" else (config.task,)
    qualities = QUALITIES if config.quality == "all" else (config.quality,)
    built, skipped = [], []
    for task in tasks:
        for quality in qualities:
            try:
                built.append(build_dataset(config, task, quality))
            except FileNotFoundError as error:
                if len(tasks) == len(qualities) == 1:
                    raise
                skipped.append(f"{task} {quality}: {error}")
    for message in skipped:
        print(f"skipped {message}")
    return built, skipped


def cli(argv: list[str] | None = None) -> int:
    """``python deep/collect.py``: exit status 0, 1 if ``all`` had to skip datasets, 2 on a user error.

    A user error (``OSError`` or ``ValueError`` from the request, its files or its paths) is one
    ``error: ...`` line on stderr, without a traceback.
    """
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            config = tyro.cli(CollectConfig, args=argv)
    except SystemExit as exit_:
        if exit_.code in (0, None):
            sys.stderr.write(captured.getvalue())
            raise
        print(f"error: {_parse_error_line(captured.getvalue())}", file=sys.stderr)
        return 2
    sys.stderr.write(captured.getvalue())
    try:
        skipped = main(config)[1]
    except (OSError, ValueError) as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    return 1 if skipped else 0


def _parse_error_line(text: str) -> str:
    """The message of tyro's boxed parse error on one line: the box's first section, borders removed."""
    words = []
    for line in text.splitlines()[1:]:  # the first line is the box's top border and title
        content = line.strip().strip("│|").strip()  # rich draws the box in unicode or, on plain outputs, ASCII
        if not content or set(content) <= set("─-╰╯+ "):
            if words:
                break
            continue
        words.extend(content.split())
    return " ".join(words) + " (see --help)" if words else "invalid arguments (see --help)"


if __name__ == "__main__":
    sys.exit(cli())
