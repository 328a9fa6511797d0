"""Import the original OMAR datasets from their ``.npy`` folders (``<root>/<env>/<quality>/seed_<k>_data/``).

The conversion into this toolkit's format (:mod:`deep.storage.datasets`) is :func:`import_omar`; the
public dataset-card returns of the original datasets, :data:`OMAR_REFERENCE_RETURNS`, are the reference
returns of its files and of the vault importer's (:mod:`deep.storage.vault`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from deep.envs.tasks import task_spec
from deep.storage.datasets import QUALITIES, OfflineDataset, check_action_range, save, stack_agents

IMPORTER_VERSION = 2
"""Version of :func:`import_omar`'s conversion, recorded as ``metadata["generator"]["version"]``."""

# Average episode returns of the original OMAR datasets (random, expert), per task (notes/baselines.md).
OMAR_REFERENCE_RETURNS = {
    "cn": {"random": 159.6, "expert": 530.9},
    "pp": {"random": -4.1, "expert": 207.9},
    "world": {"random": -6.8, "expert": 85.2},
    "halfcheetah": {"random": -282.9, "expert": 3338.7},
}
OMAR_REFERENCE_HOW = (
    "average episode return of the original OMAR random / expert datasets as listed on public dataset "
    "cards; whether they are per-agent or team returns is uncertain"
)
# task -> (environment folder, team size: the first agents' files, episode length)
_OMAR_LAYOUT = {
    "cn": ("simple_spread", 3, 25),
    "pp": ("simple_tag", 3, 25),
    "world": ("simple_world", 3, 25),
    "halfcheetah": ("HalfCheetah-v2", 2, 1000),
}


def import_omar(
    root: str | os.PathLike, task: str, quality: str, seed: int, out_path: str | os.PathLike, overwrite: bool = False
) -> OfflineDataset:
    """Convert an original OMAR/CFCQL dataset into this toolkit's format and save it at ``out_path``.

    Reads ``<root>/<env>/<quality>/seed_<seed>_data/`` with per-agent ``obs_i.npy, acs_i.npy,
    rews_i.npy, next_obs_i.npy, dones_i.npy`` (and ``states_i.npy, next_states_i.npy`` for
    HalfCheetah), ``<env>`` being simple_spread (cn), simple_tag (pp), simple_world (world) or
    HalfCheetah-v2 (halfcheetah). The team is the first 3 (cn, pp, world) or 2 (halfcheetah)
    agents' files; further files (the pretrained prey of pp and world) are not read.

    Conventions (also recorded in the metadata):

    - rows are taken to be in time order, one episode after another (as a single rollout thread
      writes them); episodes end at a done and every 25 (MPE) or 1000 (HalfCheetah) steps after
      the previous end. ``metadata["next_row_continuity"]`` is the fraction of rows inside an
      episode whose ``next_obs`` equals the next row's ``obs``: well below 1 means the ordering
      assumption, and with it ``next_actions``, is wrong for that file;
    - team reward = mean over the team agents of ``rews_i`` (OMAR evaluates Cooperative Navigation
      by this mean; the predators of pp and world share one reward);
    - terminals = any team agent's done (kept even where a done marks a time limit, as the original
      learners mask by ``1 - done``); an episode end that is not a done is a truncation;
    - ``next_actions`` = the next row's actions within the episode, the original loader's
      approximation. The last row of an episode has no next action in the files and gets a copy
      of its own actions: harmless at a terminal (masked), but a learner bootstrapping through a
      truncation there uses that copy instead of the true ``a'``;
    - state: HalfCheetah uses agent 0's ``states`` / ``next_states``; MPE (no states files) uses
      the concatenation of the team's observations, CFCQL's centralized-critic input and this
      toolkit's MPE state (:mod:`deep.envs.tasks`);
    - reference returns are the public dataset-card returns of :data:`OMAR_REFERENCE_RETURNS`.

    The MPE tasks are the original scenarios (:mod:`deep.envs.particles`), so imported MPE data trains and
    evaluates on the task it was collected on; the observation sizes are checked against the task's.
    HalfCheetah ran on MuJoCo 2.0 with 6-dim observations per agent (``agent_obsk=0``), which this
    toolkit's MaMuJoCo task does not provide: its import is refused by that check.

    Parameters
    ----------
    root : str or PathLike
        Folder holding the environment folders.
    task : {"cn", "pp", "world", "halfcheetah"}
    quality : {"random", "medium-replay", "medium", "expert"}
        The quality folder, spelled as in the OMAR/CFCQL READMEs (``medium-replay``).
    seed : int
        Dataset number ``k`` of ``seed_<k>_data``.
    out_path : str or PathLike
        Destination of the converted dataset (see :func:`save`).
    overwrite : bool
        Replace an existing ``out_path``.

    Returns
    -------
    OfflineDataset
        The converted dataset, as saved.

    Raises
    ------
    ValueError
        Unknown ``task`` or ``quality``; a file that is empty, truncated, not a ``.npy`` array,
        holds pickled objects (never unpickled) or non-numbers, has inconsistent length or shape,
        NaN or infinity, or actions outside [-1, 1]; the message names the file.
    FileNotFoundError
        The dataset folder or a required file does not exist.
    FileExistsError
        ``out_path`` exists and ``overwrite`` is False (checked before converting).
    """
    if Path(out_path).exists() and not overwrite:
        raise FileExistsError(f"{out_path}: dataset file already exists; pass overwrite=True to replace it")
    if task not in _OMAR_LAYOUT:
        raise ValueError(f"task: unknown task {task!r}; expected one of {tuple(_OMAR_LAYOUT)}")
    if quality not in QUALITIES:
        raise ValueError(f"quality: unknown quality {quality!r}; expected one of {QUALITIES}")
    env_folder, n_team, episode_length = _OMAR_LAYOUT[task]
    folder = Path(root) / env_folder / quality / f"seed_{seed}_data"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: OMAR dataset folder does not exist (expected <root>/{env_folder}/...)")
    n_files = 0
    while (folder / f"obs_{n_files}.npy").is_file():
        n_files += 1
    if n_files < n_team:
        raise FileNotFoundError(f"{folder}: found obs files of {n_files} agents, task {task!r} needs {n_team}")

    def read(name: str, ndim: int) -> np.ndarray:
        file = folder / name
        array = _read_npy(file)
        if ndim == 1 and array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != ndim or array.shape[0] != n_transitions:
            raise ValueError(f"{file}: expected {ndim}-D rows of {n_transitions} transitions, got shape {array.shape}")
        finite = np.isfinite(array).reshape(n_transitions, -1).all(axis=1)
        if not finite.all():
            raise ValueError(f"{file}: contains NaN or infinity (first at row {np.argmin(finite)})")
        return array

    first = _read_npy(folder / "obs_0.npy", mmap=True)
    if first.ndim == 0 or first.shape[0] == 0:
        raise ValueError(f"{folder / 'obs_0.npy'}: holds no transitions (shape {first.shape})")
    n_transitions = first.shape[0]
    del first
    all_obs = [read(f"obs_{i}.npy", 2) for i in range(n_team)]
    all_next_obs = [read(f"next_obs_{i}.npy", 2) for i in range(n_team)]
    spec = task_spec(task)
    for i, (obs, next_obs) in enumerate(zip(all_obs, all_next_obs, strict=True)):
        for name, array in ((f"obs_{i}.npy", obs), (f"next_obs_{i}.npy", next_obs)):
            if array.shape[1] != spec.obs_dims[i]:
                raise ValueError(
                    f"{folder / name}: {array.shape[1]} features per row, but agent {i} of task {task!r} observes "
                    f"{spec.obs_dims[i]} (deep.envs.tasks.task_spec); not a dataset of this task"
                )
    actions = [read(f"acs_{i}.npy", 2) for i in range(n_team)]
    for i, acs in enumerate(actions):
        if acs.shape[1] != spec.act_dims[i]:
            raise ValueError(
                f"{folder / f'acs_{i}.npy'}: {acs.shape[1]} action entries per row, but agent {i} of task {task!r} "
                f"acts with {spec.act_dims[i]}"
            )
        check_action_range(str(folder / f"acs_{i}.npy"), acs)
    rewards = np.mean([read(f"rews_{i}.npy", 1) for i in range(n_team)], axis=0)
    terminals = np.any([read(f"dones_{i}.npy", 1) != 0 for i in range(n_team)], axis=0)
    if task == "halfcheetah":
        state, next_state = read("states_0.npy", 2), read("next_states_0.npy", 2)
        state_source = "states_0.npy / next_states_0.npy (MaMuJoCo global state)"
    else:
        state, next_state = np.concatenate(all_obs[:n_team], axis=1), np.concatenate(all_next_obs[:n_team], axis=1)
        state_source = f"concatenation of the observations of the {n_team} team agents, in file order"

    rows = np.arange(n_transitions)
    segment_start = np.maximum.accumulate(np.where(np.r_[True, terminals[:-1]], rows, 0))
    episode_ids = np.cumsum((rows - segment_start) % episode_length == 0) - 1
    episode_end = np.r_[episode_ids[1:] != episode_ids[:-1], True]
    team_obs, team_next_obs = stack_agents(all_obs[:n_team]), stack_agents(all_next_obs[:n_team])
    team_actions = stack_agents(actions)
    inside = ~episode_end[:-1]
    continuity = np.all(np.isclose(team_obs[1:], team_next_obs[:-1], rtol=0.0, atol=1e-6), axis=(1, 2))[inside]

    metadata = {
        "task": task,
        "quality": quality,
        "seed": int(seed),
        "obs_dims": [obs.shape[1] for obs in all_obs[:n_team]],
        "act_dims": [acs.shape[1] for acs in actions],
        "generator": {
            "name": "deep.storage.omar_files.import_omar",
            "version": IMPORTER_VERSION,
            "config": {"source": str(folder), "n_agent_files": n_files, "episode_length": episode_length},
        },
        "env_versions": {},
        "behavior_checkpoint_sha256": None,
        "reference_returns": {**OMAR_REFERENCE_RETURNS[task], "how": OMAR_REFERENCE_HOW},
        "reward_source": f"mean over the {n_team} team agents of rews_i.npy",
        "terminals_source": "any team agent's dones_i.npy (time-limit dones included)",
        "state_source": state_source,
        "next_actions_source": (
            "next dataset row within the same episode (the original CFCQL loader's approximation); "
            "the last row of an episode holds a copy of its own actions"
        ),
        "next_row_continuity": float(continuity.mean()) if continuity.size else None,
    }
    try:
        dataset = OfflineDataset(
            obs=team_obs,
            actions=team_actions,
            rewards=rewards.astype(np.float32),
            next_obs=team_next_obs,
            next_actions=team_actions[np.where(episode_end, rows, rows + 1)],
            terminals=terminals,
            truncations=episode_end & ~terminals,
            state=state.astype(np.float32),
            next_state=next_state.astype(np.float32),
            episode_ids=episode_ids.astype(np.int64),
            metadata=metadata,
        )
    except ValueError as error:
        raise ValueError(f"{folder}: {error}") from error
    save(dataset, out_path, overwrite=overwrite)
    return dataset


def _read_npy(file: Path, mmap: bool = False) -> np.ndarray:
    """A numeric array from the ``.npy`` file ``file``, never unpickling; errors name the file and the problem."""
    if file.is_dir():
        raise ValueError(f"{file}: is a directory, not a .npy file")
    if not file.is_file():
        raise FileNotFoundError(f"{file}: file of the OMAR dataset is missing")
    try:
        with open(file, "rb") as handle:
            if handle.read(len(np.lib.format.MAGIC_PREFIX)) != np.lib.format.MAGIC_PREFIX:
                raise ValueError(
                    f"{file}: not a .npy file (empty, or no NumPy header: pickled data or another format); "
                    "refused without unpickling it"
                )
            handle.seek(0)
            version = np.lib.format.read_magic(handle)
            header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            dtype = header(handle)[2]
        if dtype.hasobject:
            raise ValueError(
                f"{file}: holds pickled Python objects (dtype {dtype}); refused, since reading it would "
                "unpickle it: save it as a numeric array"
            )
        array = np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
    except PermissionError as error:
        raise PermissionError(f"{file}: cannot read the file ({error.strerror})") from error
    except (ValueError, EOFError, OSError) as error:
        if str(error).startswith(str(file)):
            raise
        raise ValueError(
            f"{file}: unreadable, truncated or corrupted .npy file ({type(error).__name__}: {error})"
        ) from error
    if not isinstance(array, np.ndarray):  # an .npz archive under a .npy name
        array.close()
        raise ValueError(f"{file}: an .npz archive, not a single .npy array")
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{file}: expected numbers, got dtype {array.dtype}")
    return array
