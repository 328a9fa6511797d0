"""Offline multi-agent datasets: one compressed ``.npz`` file per (task, quality, seed).

A dataset holds ``N`` transitions of a team of ``n`` agents in time order, one episode after
another (``episode_ids`` never decrease)::

    obs, next_obs            [N, n, obs_dim]  float32, agent i's true size obs_dims[i], zero-padded
    actions, next_actions    [N, n, act_dim]  float32 in [-1, 1], agent i's true size act_dims[i]
    rewards                  [N]              float32, team reward
    terminals, truncations   [N]              bool, exclusive; exactly the last row of each episode has one
    state, next_state        [N, state_dim]   float32, global state (the centralized critics' input)
    episode_ids              [N]              int64, non-decreasing

``next_actions`` is the logged next joint action ``a'`` used by the partial backups (paper, eq. 1
and 3); at a terminal row it is never used (the learners mask the bootstrap by
``1 - terminal``). The metadata (a JSON object stored as a string array, so that loading never
needs pickle) records the task, quality, seed, sizes, schema version, the generator (name,
version, config), environment package versions, the behavior checkpoint's sha256 and the
reference returns ``{random, expert}`` of :func:`normalized_score`.

    python -m deep.storage.datasets summary DIR      # one line per dataset file under DIR

The original OMAR datasets, as OG-MARL distributes them (flashbax vaults; needs the ``vault``
extra, ``pip install -c constraints.txt -e '.[vault]'``), become dataset files with
:func:`import_og_marl_vault`; for instance, after unzipping OG-MARL's ``simple_spread.zip`` into
``vaults/omar/mpe``::

    python -m deep.storage.datasets import-vault vaults/omar/mpe/simple_spread.vlt --task cn --quality random \
        --data-dir data
    python deep/train.py --task cn --dataset random --data-dir data
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deep.envs.tasks import task_spec

SCHEMA_VERSION = 1
"""Version of the file layout; :func:`load` refuses files written with another one."""

ACTION_TOLERANCE = 1e-4
"""How far outside [-1, 1] an action may lie (rounding) before :class:`OfflineDataset` refuses it."""

IMPORTER_VERSION = 2
"""Version of :func:`import_omar`'s conversion, recorded as ``metadata["generator"]["version"]``."""

VAULT_IMPORTER_VERSION = 3
"""Version of :func:`import_og_marl_vault`'s conversion, recorded as ``metadata["generator"]["version"]``."""

VAULT_FORMAT_VERSION = 1
"""Major version of flashbax's vault format that :func:`import_og_marl_vault` reads (flashbax 0.1 writes 1.2)."""

QUALITIES = ("random", "medium-replay", "medium", "expert")
"""Dataset qualities, spelled as the OMAR/CFCQL dataset folders and READMEs spell them."""

ARRAY_FIELDS = (
    "obs",
    "actions",
    "rewards",
    "next_obs",
    "next_actions",
    "terminals",
    "truncations",
    "state",
    "next_state",
    "episode_ids",
)
_DTYPES = {
    **dict.fromkeys(("obs", "actions", "rewards", "next_obs", "next_actions", "state", "next_state"), np.float32),
    "terminals": np.bool_,
    "truncations": np.bool_,
    "episode_ids": np.int64,
}
_REQUIRED_METADATA = (
    "task",
    "quality",
    "seed",
    "obs_dims",
    "act_dims",
    "generator",
    "env_versions",
    "behavior_checkpoint_sha256",
    "reference_returns",
)
_COLLECT_COMMAND = "python deep/collect.py --task {task} --quality {quality} --seed {seed} --data-dir {data_dir}"
_FILE_NAME = re.compile(r"^(?P<task>[^_]+)_(?P<quality>[^_]+)_seed(?P<seed>\d+)\.npz$")

# Average episode returns of the original OMAR datasets (random, expert), per task (notes/baselines.md).
OMAR_REFERENCE_RETURNS = {
    "cn": {"random": 159.6, "expert": 530.9},
    "pp": {"random": -4.1, "expert": 207.9},
    "world": {"random": -6.8, "expert": 85.2},
    "halfcheetah": {"random": -282.9, "expert": 3338.7},
}
_OMAR_REFERENCE_HOW = (
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

OG_MARL_OMAR_VAULTS = {
    "cn": "omar/mpe/simple_spread.vlt",
    "pp": "omar/mpe/simple_tag.vlt",
    "world": "omar/mpe/simple_world.vlt",
    "halfcheetah": "omar/mamujoco/2halfcheetah.vlt",
}
"""OG-MARL's vault folder of each task's OMAR datasets, relative to OG-MARL's download folder ``vaults``."""

OG_MARL_VAULT_UIDS = {"random": "Random", "medium-replay": "Medium-Replay", "medium": "Medium", "expert": "Expert"}
"""The sub-folder (vault uid) of each quality in an OG-MARL vault of the OMAR datasets."""


@dataclass(frozen=True, eq=False)
class OfflineDataset:
    """Validated transitions of one (task, quality, seed); see the module docstring for the layout.

    Attributes
    ----------
    obs, next_obs : ndarray of float32, shape (N, n, obs_dim)
    actions, next_actions : ndarray of float32, shape (N, n, act_dim)
    rewards : ndarray of float32, shape (N,)
    terminals, truncations : ndarray of bool, shape (N,)
    state, next_state : ndarray of float32, shape (N, state_dim)
    episode_ids : ndarray of int64, shape (N,)
    metadata : dict
        Must hold ``task, quality, seed, obs_dims, act_dims, generator, env_versions,
        behavior_checkpoint_sha256, reference_returns``; ``size, n_agents, state_dim,
        schema_version`` are filled in from the arrays (a given value must agree). Stored in its
        JSON form (tuples become lists), so that a saved and reloaded dataset compares equal.

    Raises
    ------
    ValueError
        Naming the field: wrong type, dtype or shape, NaN or infinity, an action (or next
        action) outside [-1, 1] by more than :data:`ACTION_TOLERANCE`, decreasing episode ids, an
        episode end without exactly one of terminal / truncation (or a flag before the end), or
        metadata that is missing a key, disagrees with the arrays or is not JSON-serializable.
    """

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_obs: np.ndarray
    next_actions: np.ndarray
    terminals: np.ndarray
    truncations: np.ndarray
    state: np.ndarray
    next_state: np.ndarray
    episode_ids: np.ndarray
    metadata: dict

    def __post_init__(self):
        for name in ARRAY_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, np.ndarray):
                raise ValueError(f"{name}: expected a numpy array, got {type(value).__name__}")
            if value.dtype != _DTYPES[name]:
                raise ValueError(f"{name}: expected dtype {np.dtype(_DTYPES[name])}, got {value.dtype}")
        if self.obs.ndim != 3 or self.obs.shape[0] == 0:
            raise ValueError(f"obs: expected a non-empty array of shape (N, n, obs_dim), got {self.obs.shape}")
        n_transitions, n_agents, obs_dim = self.obs.shape
        if self.actions.ndim != 3:
            raise ValueError(f"actions: expected shape (N, n, act_dim), got {self.actions.shape}")
        if self.state.ndim != 2:
            raise ValueError(f"state: expected shape (N, state_dim), got {self.state.shape}")
        act_dim, state_dim = self.actions.shape[2], self.state.shape[1]
        expected = {
            "actions": (n_transitions, n_agents, act_dim),
            "rewards": (n_transitions,),
            "next_obs": (n_transitions, n_agents, obs_dim),
            "next_actions": (n_transitions, n_agents, act_dim),
            "terminals": (n_transitions,),
            "truncations": (n_transitions,),
            "state": (n_transitions, state_dim),
            "next_state": (n_transitions, state_dim),
            "episode_ids": (n_transitions,),
        }
        for name, shape in expected.items():
            if getattr(self, name).shape != shape:
                raise ValueError(
                    f"{name}: expected shape {shape} (N={n_transitions}, n={n_agents}, obs_dim={obs_dim}, "
                    f"act_dim={act_dim}, state_dim={state_dim}), got {getattr(self, name).shape}"
                )
        for name, dtype in _DTYPES.items():
            if dtype is np.float32:
                finite = np.isfinite(getattr(self, name)).reshape(n_transitions, -1).all(axis=1)
                if not finite.all():
                    raise ValueError(f"{name}: contains NaN or infinity (first at row {np.argmin(finite)})")
        for name in ("actions", "next_actions"):
            _check_action_range(name, getattr(self, name))
        self._check_episodes()
        object.__setattr__(self, "metadata", self._checked_metadata(n_transitions, n_agents, obs_dim, act_dim))

    def _check_episodes(self):
        ids = self.episode_ids
        if ids[0] < 0 or np.any(np.diff(ids) < 0):
            raise ValueError("episode_ids: must be non-negative and non-decreasing (episodes stored one after another)")
        if np.any(self.terminals & self.truncations):
            row = np.argmax(self.terminals & self.truncations)
            raise ValueError(f"terminals, truncations: row {row} is both terminal and truncated")
        episode_end = np.r_[ids[1:] != ids[:-1], True]
        flagged = self.terminals | self.truncations
        if np.any(flagged != episode_end):
            row = np.argmax(flagged != episode_end)
            where = "ends its episode" if episode_end[row] else "lies inside its episode"
            raise ValueError(
                f"terminals, truncations: row {row} {where} (episode {ids[row]}) but is "
                f"{'flagged' if flagged[row] else 'neither terminal nor truncated'}; exactly the last row "
                "of each episode must be terminal or truncated"
            )

    def _checked_metadata(self, n_transitions: int, n_agents: int, obs_dim: int, act_dim: int) -> dict:
        if not isinstance(self.metadata, dict):
            raise ValueError(f"metadata: expected a dict, got {type(self.metadata).__name__}")
        missing = [key for key in _REQUIRED_METADATA if key not in self.metadata]
        if missing:
            raise ValueError(f"metadata: missing keys {missing}")
        version = self.metadata.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"metadata: dataset schema version {version}, this toolkit reads schema version "
                f"{SCHEMA_VERSION}; rebuild the dataset with this version"
            )
        derived = {"size": n_transitions, "n_agents": n_agents, "state_dim": self.state.shape[1]}
        for key, value in derived.items():
            if key in self.metadata and self.metadata[key] != value:
                raise ValueError(f"metadata: {key} = {self.metadata[key]!r} but the arrays give {value}")
        for key, padded in (("obs_dims", obs_dim), ("act_dims", act_dim)):
            dims = self.metadata[key]
            if (
                not isinstance(dims, list | tuple)
                or len(dims) != n_agents
                or not all(isinstance(d, int) and 1 <= d <= padded for d in dims)
                or max(dims) != padded
            ):
                raise ValueError(
                    f"metadata: {key} must list {n_agents} true sizes in [1, {padded}] with maximum {padded} "
                    f"(the padded size), got {dims!r}"
                )
        reference = self.metadata["reference_returns"]
        if reference is not None:
            try:
                normalized_score(0.0, reference)
            except (TypeError, ValueError) as error:
                raise ValueError(f"metadata: reference_returns must be None or valid ({error})") from error
        try:
            text = json.dumps({**self.metadata, **derived, "schema_version": SCHEMA_VERSION}, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise ValueError(f"metadata: must be JSON-serializable ({error})") from error
        return json.loads(text)

    @property
    def n_transitions(self) -> int:
        """Number of transitions ``N``."""
        return self.rewards.shape[0]

    @property
    def n_episodes(self) -> int:
        """Number of distinct episode ids."""
        return int(np.count_nonzero(np.diff(self.episode_ids))) + 1

    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of every episode, in storage order.

        Returns
        -------
        ndarray of float64, shape (n_episodes,)
            Sum of ``rewards`` over the rows of each episode id.
        """
        starts = np.flatnonzero(np.r_[True, np.diff(self.episode_ids) != 0])
        return np.add.reduceat(self.rewards.astype(np.float64), starts)


def _check_action_range(name: str, values: np.ndarray) -> None:
    """``ValueError`` naming the worst value (and where it is) if ``values`` leave [-1, 1] beyond the tolerance."""
    if values.size == 0:
        return
    flat = int(np.argmax(np.abs(values)))
    worst = float(values.reshape(-1)[flat])
    if abs(worst) > 1.0 + ACTION_TOLERANCE:
        where = np.unravel_index(flat, values.shape)
        position = f"row {where[0]}" + (f", agent {where[1]}, dimension {where[2]}" if values.ndim == 3 else "")
        raise ValueError(
            f"{name}: actions must lie in [-1, 1] (the action space; tolerance {ACTION_TOLERANCE:g}), worst value "
            f"{worst:.6g} at {position}; rescale them to [-1, 1]"
        )


def dataset_path(data_dir: str | os.PathLike, task: str, quality: str, seed: int) -> Path:
    """File of the dataset (task, quality, seed) in ``data_dir``: ``<task>_<quality>_seed<seed>.npz``."""
    return Path(data_dir) / f"{task}_{quality}_seed{seed}.npz"


def save(dataset: OfflineDataset, path: str | os.PathLike, overwrite: bool = False) -> None:
    """Write ``dataset`` as a compressed ``.npz`` file, atomically.

    The file is written to a temporary file in the same directory and moved into place with
    ``os.replace``, so ``path`` is either left as it was or holds the complete new file; the
    temporary file is removed if writing fails.

    Parameters
    ----------
    dataset : OfflineDataset
    path : str or PathLike
        Destination; its directory must exist.
    overwrite : bool
        Replace an existing file (otherwise refuse).

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    FileNotFoundError
        The directory of ``path`` does not exist.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: dataset file already exists; pass overwrite=True to replace it")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path.parent}: directory for the dataset file {path.name} does not exist")
    arrays = {name: getattr(dataset, name) for name in ARRAY_FIELDS}
    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as tmp:
            np.savez_compressed(tmp, metadata=np.array(json.dumps(dataset.metadata)), **arrays)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp_name, 0o644)  # mkstemp creates 0600
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def load(path: str | os.PathLike) -> OfflineDataset:
    """Read and validate a dataset written by :func:`save` (never unpickles anything).

    Parameters
    ----------
    path : str or PathLike

    Returns
    -------
    OfflineDataset

    Raises
    ------
    FileNotFoundError
        No file at ``path`` (or a dangling symbolic link); the message gives the command that builds it.
    IsADirectoryError
        ``path`` is a directory.
    PermissionError
        The file cannot be read.
    ValueError
        The file is truncated or corrupted, was written with another schema version, lacks an
        array, or holds arrays that fail :class:`OfflineDataset`'s validation (wrong shape or
        dtype, NaN, actions outside [-1, 1], ...); the message names the file.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory, not a dataset file (a dataset is one .npz file)")
    if not path.is_file():
        match = _FILE_NAME.match(path.name)
        fields = match.groupdict() if match else {"task": "T", "quality": "Q", "seed": "S"}
        command = _COLLECT_COMMAND.format(data_dir=path.parent, **fields)
        if path.is_symlink():
            raise FileNotFoundError(
                f"{path}: dangling symbolic link (to {os.readlink(path)}), the dataset file does not exist; "
                f"build it with `{command}`"
            )
        raise FileNotFoundError(f"{path}: dataset file does not exist; build it with `{command}`")
    try:
        npz = np.load(path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise ValueError("a single .npy array, not an .npz archive")
        with npz:
            contents = {name: npz[name] for name in npz.files}
    except PermissionError as error:
        raise PermissionError(f"{path}: cannot read the dataset file ({error.strerror})") from error
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as error:
        raise ValueError(f"{path}: corrupted or truncated dataset file ({type(error).__name__}: {error})") from error
    if "metadata" not in contents:
        raise ValueError(f"{path}: not a dataset file (no metadata array)")
    try:
        metadata = json.loads(str(contents.pop("metadata")))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: corrupted metadata ({error})") from error
    if not isinstance(metadata, dict):
        raise ValueError(f"{path}: corrupted metadata (expected a JSON object)")
    if metadata.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(
            f"{path}: written with dataset schema version {metadata.get('schema_version')}, this toolkit reads "
            f"schema version {SCHEMA_VERSION}; rebuild it with the current deep/collect.py"
        )
    missing = [name for name in ARRAY_FIELDS if name not in contents]
    if missing:
        raise ValueError(f"{path}: missing arrays {missing}")
    try:
        return OfflineDataset(**{name: contents[name] for name in ARRAY_FIELDS}, metadata=metadata)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error


def normalized_score(returns, reference: dict | None):
    """D4RL-style normalized score ``100 (R - R_random) / (R_expert - R_random)``.

    Parameters
    ----------
    returns : float or array_like
        Undiscounted episode return(s) ``R``.
    reference : dict
        Holds ``"random"`` and ``"expert"`` returns (e.g. ``dataset.metadata["reference_returns"]``).

    Returns
    -------
    float or ndarray of float64
        Same shape as ``returns``: 0 at the random return, 100 at the expert return.

    Raises
    ------
    ValueError
        ``reference`` is missing, lacks a key, or has ``expert == random``.
    """
    if not isinstance(reference, dict) or not {"random", "expert"} <= reference.keys():
        raise ValueError(f"reference: need a dict with 'random' and 'expert' returns, got {reference!r}")
    random_return, expert_return = float(reference["random"]), float(reference["expert"])
    if expert_return == random_return:
        raise ValueError(f"reference: expert and random returns are equal ({expert_return}); the score is undefined")
    scores = 100.0 * (np.asarray(returns, dtype=np.float64) - random_return) / (expert_return - random_return)
    return float(scores) if scores.ndim == 0 else scores


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
        _check_action_range(str(folder / f"acs_{i}.npy"), acs)
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
    team_obs, team_next_obs = _pad(all_obs[:n_team]), _pad(all_next_obs[:n_team])
    team_actions = _pad(actions)
    inside = ~episode_end[:-1]
    continuity = np.all(np.isclose(team_obs[1:], team_next_obs[:-1], rtol=0.0, atol=1e-6), axis=(1, 2))[inside]

    metadata = {
        "task": task,
        "quality": quality,
        "seed": int(seed),
        "obs_dims": [obs.shape[1] for obs in all_obs[:n_team]],
        "act_dims": [acs.shape[1] for acs in actions],
        "generator": {
            "name": "deep.storage.datasets.import_omar",
            "version": IMPORTER_VERSION,
            "config": {"source": str(folder), "n_agent_files": n_files, "episode_length": episode_length},
        },
        "env_versions": {},
        "behavior_checkpoint_sha256": None,
        "reference_returns": {**OMAR_REFERENCE_RETURNS[task], "how": _OMAR_REFERENCE_HOW},
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


def _pad(per_agent: list[np.ndarray]) -> np.ndarray:
    """Stack per-agent arrays ``[N, d_i]`` into float32 ``[N, n, max d_i]``, zero-padded."""
    stacked = np.zeros((per_agent[0].shape[0], len(per_agent), max(a.shape[1] for a in per_agent)), np.float32)
    for i, array in enumerate(per_agent):
        stacked[:, i, : array.shape[1]] = array
    return stacked


def import_og_marl_vault(
    vault_dir: str | os.PathLike,
    task: str,
    quality: str,
    seed: int,
    out_path: str | os.PathLike,
    overwrite: bool = False,
) -> OfflineDataset:
    """Convert OG-MARL's vault of an original OMAR dataset into this toolkit's format and save it.

    OG-MARL distributes the OMAR datasets as flashbax vaults, one folder per environment
    (:data:`OG_MARL_OMAR_VAULTS`: ``<download dir>/omar/mpe/simple_spread.vlt`` for cn, ...) with one
    sub-folder per quality (:data:`OG_MARL_VAULT_UIDS`: ``Random``, ``Medium-Replay``, ``Medium``,
    ``Expert``). A vault (flashbax 0.1.3, ``flashbax/vault/vault.py``) is a TensorStore database:
    ``metadata.json`` (``version`` 1.x and ``structure_shape`` / ``structure_dtype``, the nested keys
    of the stored experience) beside ``manifest.ocdbt`` and ``d/``, an OCDBT key-value store holding
    one zarr v2 array per key, named by the key path with a dot after each part
    (``observations.``, ``infos.state.``), of shape ``[1, T_max, ...]``, and the int32 array
    ``vault_index`` whose single entry is the number ``T`` of stored timesteps. The arrays are read
    with ``tensorstore`` (the ``vault`` extra: ``pip install -e '.[vault]'``), without JAX.

    Stored keys, one row per timestep of all ``N`` agents of the environment (team first):
    ``observations [1, T, N, O]`` (each agent's observation zero-padded to the widest, ``O``),
    ``actions [1, T, N, A]``, ``rewards [1, T, N]``, ``terminals [1, T, N]``,
    ``truncations [1, T, N]`` and, for HalfCheetah, the global state ``infos.state`` (or
    ``infos.states``) ``[1, T, S]``; other keys are ignored. The vault keeps no next observation.

    Conversion (also recorded in the metadata), with the team and sizes of
    :func:`deep.envs.tasks.task_spec`:

    - the team is the first ``n`` agents; ``N`` must be ``n`` plus the task's opponents (the prey of
      pp, the good agent of world). Each agent's observation is cut to its true size, and its
      padding must be zero; team actions likewise;
    - team reward = mean over the team agents of their rewards (as :func:`import_omar`);
    - episodes end at a row where a team agent is terminal or truncated, and every
      ``episode_length`` (25 MPE, 1000 HalfCheetah) rows after the previous end. An episode that
      reaches ``episode_length`` rows ends there. Every episode end is a truncation, none a terminal:
      the four tasks end episodes only at their time limit, and the original learners bootstrap
      through it (OMAR's MPE files store ``dones = 0`` everywhere, and their ``1 - done`` masks
      nothing); the vault's flags only mark where episodes end;
    - ``next_obs``, ``next_state`` and ``next_actions`` = the next row's within the episode. At an
      episode's last row, where the learners bootstrap, the vault keeps no next observation:
      ``next_obs`` and ``next_state`` are copies of the row's own (one step early: the difference from
      the original files, which store the true next observation), and ``next_actions`` is the next
      vault row's, the next episode's first joint action, as the original learners take ``a'`` from the
      next buffer row (the vault's last row: a copy of its own);
    - state: MPE, the concatenation of the team's true-size observations (``state_dim`` of the
      task); HalfCheetah, the vault's ``infos.state``;
    - reference returns are the public dataset-card returns of :data:`OMAR_REFERENCE_RETURNS`
      (OG-MARL's cards give the same means per quality).

    A vault holds one dataset per quality; ``seed`` only names the output file and is recorded.

    Parameters
    ----------
    vault_dir : str or PathLike
        The task's ``.vlt`` folder, e.g. ``vaults/omar/mpe/simple_spread.vlt``.
    task : {"cn", "pp", "world", "halfcheetah"}
    quality : {"random", "medium-replay", "medium", "expert"}
    seed : int
        Dataset number recorded in the metadata (and in the file name of :func:`dataset_path`).
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
        Unknown ``task`` or ``quality``; ``vault_dir`` not the task's ``.vlt`` folder; a
        ``metadata.json`` that is not a vault's or lacks a key; an array that does not open or read
        (damaged, or fewer stored timesteps than ``vault_index`` claims), is not numeric, or whose
        shape disagrees with the task (agents, sizes, padding that is not zero); NaN or infinity;
        actions outside [-1, 1]. The message names the vault folder and the array.
    FileNotFoundError
        ``vault_dir`` or its quality sub-folder does not exist.
    FileExistsError
        ``out_path`` exists and ``overwrite`` is False (checked before converting).
    ImportError
        ``tensorstore`` is not installed.
    """
    if Path(out_path).exists() and not overwrite:
        raise FileExistsError(f"{out_path}: dataset file already exists; pass overwrite=True to replace it")
    if task not in OG_MARL_OMAR_VAULTS:
        raise ValueError(f"task: unknown task {task!r}; expected one of {tuple(OG_MARL_OMAR_VAULTS)}")
    if quality not in OG_MARL_VAULT_UIDS:
        raise ValueError(f"quality: unknown quality {quality!r}; expected one of {tuple(OG_MARL_VAULT_UIDS)}")
    vault_dir, expected_vault = Path(vault_dir), OG_MARL_OMAR_VAULTS[task]
    if vault_dir.name != Path(expected_vault).name:
        raise ValueError(
            f"vault_dir: task {task!r} is OG-MARL's {expected_vault} (a folder named {Path(expected_vault).name}), "
            f"got {vault_dir}"
        )
    if not vault_dir.is_dir():
        raise FileNotFoundError(
            f"{vault_dir}: vault folder does not exist (OG-MARL downloads it to vaults/{expected_vault})"
        )
    folder = vault_dir / OG_MARL_VAULT_UIDS[quality]
    if not folder.is_dir():
        found = sorted(path.name for path in vault_dir.iterdir() if path.is_dir())
        raise FileNotFoundError(f"{folder}: vault of quality {quality!r} does not exist (found {found})")

    spec = task_spec(task)
    vault = _Vault(folder, task)
    n_team, n_agents = spec.n_agents, spec.n_agents + spec.n_opponents
    true_obs_dims = (*spec.obs_dims, *spec.opponent_obs_dims)
    observations = vault.read("observations", (n_agents, max(true_obs_dims)))
    actions = vault.read("actions", (n_agents, spec.act_dim))
    rewards = vault.read("rewards", (n_agents,))
    vault_terminals = vault.read("terminals", (n_agents,))[:, :n_team].any(axis=1)
    vault_truncations = vault.read("truncations", (n_agents,))[:, :n_team].any(axis=1)
    all_obs = [vault.unpadded("observations", observations, i, d) for i, d in enumerate(true_obs_dims)]
    team_obs = _pad(all_obs[:n_team])
    team_actions = _pad([vault.unpadded("actions", actions, i, d) for i, d in enumerate(spec.act_dims)])
    _check_action_range(f"{folder}: array 'actions'", team_actions)
    if task == "halfcheetah":
        state_key = vault.key("infos.state", "infos.states")
        state = vault.read(state_key, (spec.state_dim,))
        state_source = f"the vault's {state_key} (MaMuJoCo global state)"
    else:
        state = np.concatenate(all_obs[:n_team], axis=1)
        state_source = f"concatenation of the {n_team} team agents' observations, true sizes"
        if state.shape[1] != spec.state_dim:
            raise ValueError(
                f"{folder}: the team's observations make a state of width {state.shape[1]}, task {task!r} has "
                f"state_dim {spec.state_dim}"
            )

    n_transitions = vault.size
    rows = np.arange(n_transitions)
    flagged = vault_terminals | vault_truncations
    segment_start = np.maximum.accumulate(np.where(np.r_[True, flagged[:-1]], rows, 0))
    step = (rows - segment_start) % spec.episode_length
    episode_ids = np.cumsum(step == 0) - 1
    episode_end = np.r_[episode_ids[1:] != episode_ids[:-1], True]
    # at an episode's last row the vault holds no next observation: the row's own stands in for it
    following = np.where(episode_end, rows, rows + 1)
    next_row = np.minimum(rows + 1, n_transitions - 1)  # a' of the original buffers: the next row's action

    metadata = {
        "task": task,
        "quality": quality,
        "seed": int(seed),
        "obs_dims": list(spec.obs_dims),
        "act_dims": list(spec.act_dims),
        "generator": {
            "name": "deep.storage.datasets.import_og_marl_vault",
            "version": VAULT_IMPORTER_VERSION,
            "config": {
                "source": str(folder),
                "vault_uid": folder.name,
                "vault_version": vault.metadata["version"],
                "vault_metadata": {
                    key: value
                    for key, value in vault.metadata.items()
                    if key not in ("version", "structure_shape", "structure_dtype")
                },
                "n_vault_agents": n_agents,
                "episode_length": spec.episode_length,
            },
        },
        "env_versions": {},
        "behavior_checkpoint_sha256": None,
        "reference_returns": {**OMAR_REFERENCE_RETURNS[task], "how": _OMAR_REFERENCE_HOW},
        "reward_source": f"mean over the {n_team} team agents (the first of the vault's {n_agents}) of rewards",
        "terminals_source": (
            "none: every episode end is a truncation (time limit), bootstrapped as by the original learners "
            "(OMAR's MPE files store dones = 0)"
        ),
        "state_source": state_source,
        "next_actions_source": (
            "next vault row (at an episode's last row the next episode's first action, the original buffers' a'); "
            "the vault's last row holds a copy of its own actions"
        ),
        "next_obs_source": (
            "next vault row within the same episode (the vault stores no next observation); the last row of "
            "an episode holds a copy of its own observations and state, one step early"
        ),
    }
    try:
        dataset = OfflineDataset(
            obs=team_obs,
            actions=team_actions,
            rewards=rewards[:, :n_team].mean(axis=1, dtype=np.float64).astype(np.float32),
            next_obs=team_obs[following],
            next_actions=team_actions[next_row],
            terminals=np.zeros(n_transitions, dtype=bool),
            truncations=episode_end,
            state=state.astype(np.float32),
            next_state=state[following].astype(np.float32),
            episode_ids=episode_ids.astype(np.int64),
            metadata=metadata,
        )
    except ValueError as error:
        raise ValueError(f"{folder}: {error}") from error
    save(dataset, out_path, overwrite=overwrite)
    return dataset


class _Vault:
    """Reader of one flashbax vault folder (``metadata.json``, ``manifest.ocdbt``, ``d/``) with tensorstore.

    ``task`` (its agents, team first) only serves the errors, which are ``ValueError`` naming the
    folder and the array (or ``metadata.json``).
    """

    def __init__(self, folder: Path, task: str):
        try:
            import tensorstore
        except ImportError as error:
            raise ImportError(
                "reading an OG-MARL vault needs tensorstore: pip install -c constraints.txt -e '.[vault]'"
            ) from error
        self._ts, self.folder, self.task = tensorstore, folder, task
        spec = task_spec(task)
        self.agents = (*spec.team, *spec.opponents)
        metadata_file = folder / "metadata.json"
        if not metadata_file.is_file():
            raise ValueError(f"{metadata_file}: missing; {folder} is not a flashbax vault")
        try:
            self.metadata = json.loads(metadata_file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{metadata_file}: not valid JSON ({error})") from error
        if not isinstance(self.metadata, dict) or not isinstance(self.metadata.get("structure_shape"), dict):
            raise ValueError(f"{metadata_file}: not a flashbax vault's metadata (no structure_shape object)")
        version = self.metadata.get("version")
        if not isinstance(version, int | float) or version // 1 != VAULT_FORMAT_VERSION:
            raise ValueError(
                f"{metadata_file}: vault format version {version!r}, this reader reads version "
                f"{VAULT_FORMAT_VERSION}.x (flashbax 0.1)"
            )
        self.keys = _vault_keys(self.metadata["structure_shape"])
        index_store = self._open("vault_index")
        try:
            index = index_store.read().result()
        except ValueError as error:
            raise ValueError(f"{folder}: array 'vault_index' does not read ({error})") from error
        if index.shape != (1,) or index.dtype.kind not in "iu" or index[0] <= 0:
            raise ValueError(f"{folder}: array 'vault_index' must hold the positive number of timesteps, got {index!r}")
        self.size = int(index[0])

    def key(self, *names: str) -> str:
        """The first of ``names`` that the vault stores; ``ValueError`` listing the stored keys otherwise."""
        for name in names:
            if name in self.keys:
                return name
        raise ValueError(
            f"{self.folder / 'metadata.json'}: the vault has no array {' or '.join(names)}; "
            f"it stores {sorted(self.keys)}"
        )

    def read(self, name: str, feature_shape: tuple[int, ...]) -> np.ndarray:
        """Rows ``[T, *feature_shape]`` of the array ``name``; a last feature axis may be wider (padding).

        Parameters
        ----------
        name : str
            Key of the array, its parts joined by dots (``infos.state``).
        feature_shape : tuple of int
            Expected shape of one timestep; its last entry is a minimum for 2-D features
            (observations and actions are padded to the widest agent).

        Returns
        -------
        ndarray, shape (T, *feature_shape) (the last axis possibly wider)
            ``bool`` stays ``bool``; numbers keep their dtype.
        """
        self.key(name)
        store = self._open(f"{name}.")
        where = f"{self.folder}: array {name!r}"
        shape = tuple(int(n) for n in store.shape)
        fits = (
            len(shape) == 2 + len(feature_shape)
            and shape[0] == 1
            and shape[1] >= self.size
            and shape[2:-1] == feature_shape[:-1]
            and (shape[-1] >= feature_shape[-1] if len(feature_shape) == 2 else shape[2:] == feature_shape)
        )
        if not fits:
            expected = ("1", f">={self.size}", *map(str, feature_shape[:-1]))
            last = f">={feature_shape[-1]}" if len(feature_shape) == 2 else str(feature_shape[-1])
            raise ValueError(
                f"{where}: expected shape ({', '.join((*expected, last))}) for task {self.task!r} (1 batch row, at "
                f"least the vault's {self.size} timesteps, then one timestep's entries), got {shape}"
            )
        if store.dtype.numpy_dtype.kind not in "biuf":
            raise ValueError(f"{where}: expected numbers, got dtype {store.dtype.numpy_dtype}")
        if store.fill_value is None:  # every written chunk is stored: a missing one is a truncated vault
            store = self._open(f"{name}.", fill_missing_data_reads=False)
        try:
            rows = store[0, : self.size].read().result()
        except ValueError as error:
            raise ValueError(
                f"{where}: cannot read the vault's {self.size} timesteps (truncated or damaged: {error})"
            ) from error
        if rows.dtype.kind == "f":
            finite = np.isfinite(rows).reshape(self.size, -1).all(axis=1)
            if not finite.all():
                raise ValueError(f"{where}: contains NaN or infinity (first at row {np.argmin(finite)})")
        return rows

    def unpadded(self, name: str, rows: np.ndarray, agent: int, size: int) -> np.ndarray:
        """Agent ``agent``'s first ``size`` entries of ``rows [T, N, W]`` as float32; the rest must be zero."""
        padding = rows[:, agent, size:]
        nonzero = np.any(padding != 0, axis=1)
        if nonzero.any():
            raise ValueError(
                f"{self.folder}: array {name!r}: agent {agent} ({self.agents[agent]}) has size {size} in task "
                f"{self.task!r} but non-zero entries beyond it (first at row {np.argmax(nonzero)}): not zero "
                "padding, so not this task's layout"
            )
        return rows[:, agent, :size].astype(np.float32)

    def _open(self, path: str, **options):
        spec = {
            "driver": "zarr",
            "kvstore": {"driver": "ocdbt", "base": f"file://{self.folder.resolve()}", "path": path},
            **options,
        }
        try:
            return self._ts.open(spec).result()
        except ValueError as error:
            raise ValueError(f"{self.folder}: array {path.rstrip('.')!r} does not open ({error})") from error


def _vault_keys(structure: dict, prefix: str = "") -> set[str]:
    """Dotted key paths (``infos.state``) of the leaves of a vault's ``structure_shape``."""
    keys = set()
    for key, value in structure.items():
        name = f"{prefix}{key}"
        keys |= _vault_keys(value, f"{name}.") if isinstance(value, dict) else {name}
    return keys


def summary(data_dir: str | os.PathLike) -> list[dict]:
    """Describe every dataset file (``*.npz``, recursively) under ``data_dir``.

    Returns
    -------
    list of dict
        One per file, sorted by path: ``file`` (relative to ``data_dir``), and either ``skipped``
        (a directory named ``*.npz``: why it is not read), ``error`` (the file does not load, a
        dangling symbolic link included) or ``task, quality, seed, size, episodes, return_mean,
        return_std, normalized`` (``None`` without reference returns in the metadata).

    Raises
    ------
    FileNotFoundError
        ``data_dir`` is not a directory.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{data_dir}: data directory does not exist")
    rows = []
    for path in sorted(data_dir.rglob("*.npz")):
        row = {"file": str(path.relative_to(data_dir))}
        if path.is_dir():
            rows.append({**row, "skipped": "a directory, not a dataset file"})
            continue
        try:
            dataset = load(path)
        except (ValueError, OSError) as error:
            rows.append({**row, "error": str(error)})
            continue
        returns, meta = dataset.episode_returns(), dataset.metadata
        reference = meta["reference_returns"]
        rows.append(
            {
                **row,
                "task": meta["task"],
                "quality": meta["quality"],
                "seed": meta["seed"],
                "size": dataset.n_transitions,
                "episodes": dataset.n_episodes,
                "return_mean": float(returns.mean()),
                "return_std": float(returns.std()),
                "normalized": normalized_score(returns.mean(), reference) if reference is not None else None,
            }
        )
    return rows


class _UsageError(Exception):
    """A user error of the command line: reported as one ``error: ...`` line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise _UsageError(message)


def main(argv: list[str] | None = None) -> int:
    """``python -m deep.storage.datasets summary DIR`` or ``... import-vault VAULT_DIR ...``.

    ``summary`` prints one line per dataset file under DIR; ``import-vault`` converts OG-MARL's vault
    of an OMAR dataset (:func:`import_og_marl_vault`) into ``--data-dir`` and prints the file, its
    size and the command that trains on it.

    Returns
    -------
    int
        Exit status: 0, 1 if a file under DIR does not load (its line shows the error), or 2 on a
        user error (bad arguments, DIR not a directory, a vault that does not convert, tensorstore
        missing), reported as one ``error: ...`` line on stderr.
    """
    try:
        return _command(argv)
    except (_UsageError, OSError, ImportError) as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2


def _command(argv: list[str] | None) -> int:
    parser = _Parser(prog="python -m deep.storage.datasets", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    summary_parser = commands.add_parser("summary", help="describe every dataset file under DIR")
    summary_parser.add_argument("data_dir", metavar="DIR")
    vault_parser = commands.add_parser(
        "import-vault", help="convert OG-MARL's vault of an OMAR dataset (e.g. vaults/omar/mpe/simple_spread.vlt)"
    )
    vault_parser.add_argument("vault_dir", metavar="VAULT_DIR", help="the task's .vlt folder")
    vault_parser.add_argument(
        "--task",
        required=True,
        choices=tuple(OG_MARL_OMAR_VAULTS),
        help=", ".join(f"{task}: {Path(vault).name}" for task, vault in OG_MARL_OMAR_VAULTS.items()),
    )
    vault_parser.add_argument(
        "--quality",
        required=True,
        choices=QUALITIES,
        help=", ".join(f"{quality}: the vault's {uid}" for quality, uid in OG_MARL_VAULT_UIDS.items()),
    )
    vault_parser.add_argument("--seed", type=int, default=0, help="dataset number of the output file (default 0)")
    vault_parser.add_argument("--data-dir", default="data", help="folder of the dataset files (default data)")
    vault_parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset file")
    args = parser.parse_args(argv)
    if args.command == "import-vault":
        return _import_vault_command(args)
    return _summary_command(args)


def _import_vault_command(args: argparse.Namespace) -> int:
    out = dataset_path(args.data_dir, args.task, args.quality, args.seed)
    Path(args.data_dir).mkdir(parents=True, exist_ok=True)
    try:
        dataset = import_og_marl_vault(args.vault_dir, args.task, args.quality, args.seed, out, args.overwrite)
    except ValueError as error:
        raise _UsageError(str(error)) from error
    returns = dataset.episode_returns()
    score = normalized_score(returns.mean(), dataset.metadata["reference_returns"])
    print(
        f"wrote {out}: {dataset.n_transitions} transitions, {dataset.n_episodes} episodes, return mean "
        f"{returns.mean():.2f} (normalized {score:.1f}); train on it with: python deep/train.py --task {args.task} "
        f"--dataset {args.quality} --dataset-seed {args.seed} --data-dir {args.data_dir}"
    )
    return 0


def _summary_command(args: argparse.Namespace) -> int:
    if not Path(args.data_dir).is_dir():
        what = "does not exist" if not Path(args.data_dir).exists() else "is not a directory"
        raise _UsageError(f"DIR: {args.data_dir} {what}")

    rows = summary(args.data_dir)
    if not rows:
        print(f"no dataset files (*.npz) under {args.data_dir}")
        return 0
    width = max(len("file"), *(len(row["file"]) for row in rows))
    print(
        f"{'file':<{width}}  {'task':<11} {'quality':<13} {'seed':>4} {'size':>9} {'episodes':>8} "
        f"{'return mean':>12} {'std':>10} {'normalized':>10}"
    )
    for row in rows:
        if "skipped" in row:
            print(f"{row['file']:<{width}}  skipped: {row['skipped']}")
            continue
        if "error" in row:
            print(f"{row['file']:<{width}}  ERROR: {' '.join(row['error'].split())}")
            continue
        normalized = "-" if row["normalized"] is None else f"{row['normalized']:.1f}"
        print(
            f"{row['file']:<{width}}  {row['task']:<11} {row['quality']:<13} {row['seed']:>4} {row['size']:>9} "
            f"{row['episodes']:>8} {row['return_mean']:>12.2f} {row['return_std']:>10.2f} {normalized:>10}"
        )
    return 1 if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
