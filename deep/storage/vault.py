"""Import OG-MARL's flashbax vaults of the original OMAR datasets (:func:`import_og_marl_vault`).

Read with ``tensorstore`` alone (the ``vault`` extra), without JAX or flashbax; the result is a dataset file of
:mod:`deep.storage.datasets`, whose CLI runs it (``python -m deep.storage.datasets import-vault``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from deep.envs.tasks import task_spec
from deep.storage.datasets import OfflineDataset, check_action_range, save, stack_agents
from deep.storage.omar_files import OMAR_REFERENCE_HOW, OMAR_REFERENCE_RETURNS

VAULT_IMPORTER_VERSION = 3
"""Version of :func:`import_og_marl_vault`'s conversion, recorded as ``metadata["generator"]["version"]``."""

VAULT_FORMAT_VERSION = 1
"""Major version of flashbax's vault format that :func:`import_og_marl_vault` reads (flashbax 0.1 writes 1.2)."""

OG_MARL_OMAR_VAULTS = {
    "cn": "omar/mpe/simple_spread.vlt",
    "pp": "omar/mpe/simple_tag.vlt",
    "world": "omar/mpe/simple_world.vlt",
    "halfcheetah": "omar/mamujoco/2halfcheetah.vlt",
}
"""OG-MARL's vault folder of each task's OMAR datasets, relative to OG-MARL's download folder ``vaults``."""

OG_MARL_VAULT_UIDS = {"random": "Random", "medium-replay": "Medium-Replay", "medium": "Medium", "expert": "Expert"}
"""The sub-folder (vault uid) of each quality in an OG-MARL vault of the OMAR datasets."""


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
    team_obs = stack_agents(all_obs[:n_team])
    team_actions = stack_agents([vault.unpadded("actions", actions, i, d) for i, d in enumerate(spec.act_dims)])
    check_action_range(f"{folder}: array 'actions'", team_actions)
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
            "name": "deep.storage.vault.import_og_marl_vault",
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
        "reference_returns": {**OMAR_REFERENCE_RETURNS[task], "how": OMAR_REFERENCE_HOW},
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
