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
:func:`deep.storage.vault.import_og_marl_vault` (the OMAR ``.npy`` folders with
:func:`deep.storage.omar_files.import_omar`); for instance, after unzipping OG-MARL's ``simple_spread.zip`` into
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

SCHEMA_VERSION = 1
"""Version of the file layout; :func:`load` refuses files written with another one."""

ACTION_TOLERANCE = 1e-4
"""How far outside [-1, 1] an action may lie (rounding) before :class:`OfflineDataset` refuses it."""

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
            check_action_range(name, getattr(self, name))
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


def check_action_range(name: str, values: np.ndarray) -> None:
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


def stack_agents(per_agent: list[np.ndarray]) -> np.ndarray:
    """Stack per-agent arrays ``[N, d_i]`` into float32 ``[N, n, max d_i]``, zero-padded."""
    stacked = np.zeros((per_agent[0].shape[0], len(per_agent), max(a.shape[1] for a in per_agent)), np.float32)
    for i, array in enumerate(per_agent):
        stacked[:, i, : array.shape[1]] = array
    return stacked


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
    of an OMAR dataset (:func:`deep.storage.vault.import_og_marl_vault`) into ``--data-dir`` and prints the file, its
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
    # here, not at the top: deep.storage.vault builds on this module's format
    from deep.storage.vault import OG_MARL_OMAR_VAULTS, OG_MARL_VAULT_UIDS

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
    from deep.storage.vault import import_og_marl_vault  # see _command

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
