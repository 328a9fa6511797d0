"""Importing OG-MARL's flashbax vaults of the OMAR datasets (deep.storage.vault.import_og_marl_vault).

The vaults here are written in flashbax 0.1.3's on-disk layout (``flashbax/vault/vault.py``) with
tensorstore alone, as the reader needs only tensorstore: ``<vault>.vlt/<Uid>/metadata.json``
(``version`` 1.2, ``structure_shape``, ``structure_dtype``) and an OCDBT database at the folder
holding one zarr v2 array per experience key, named by its key path with a dot after each part
(``observations.``, ``infos.state.``), of shape ``[1, 10**13, ...]`` and gzip level 5, plus the
int32 ``vault_index`` array ``[1]`` of the number of stored timesteps. The last test writes a vault
with flashbax's own ``Vault`` (skipped where flashbax, which needs JAX, is not installed).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorstore as ts  # the vault extra, part of dev: the reader is always tested

from deep.envs.tasks import task_spec
from deep.storage import datasets
from deep.storage.vault import OG_MARL_OMAR_VAULTS, VAULT_IMPORTER_VERSION, import_og_marl_vault

TIME_AXIS_MAX_LENGTH = 10**13  # flashbax.vault.vault.TIME_AXIS_MAX_LENGTH


def write_vault(folder: Path, experience: dict, vault_index=None, version=1.2, chunk=None, own_time_extent=False):
    """Write ``experience`` (nested dict of ``[1, T, ...]`` arrays) as a flashbax vault in ``folder``.

    ``vault_index`` (default: the longest ``T``) is the number of timesteps the vault claims;
    ``chunk`` sets the zarr chunk length along time (default: tensorstore's choice, as flashbax
    leaves it); ``own_time_extent`` creates each array of shape ``[1, T, ...]`` instead of
    flashbax's ``[1, 10**13, ...]``.
    """
    folder.mkdir(parents=True)

    def leaves(tree, prefix=""):
        for key, value in tree.items():
            if isinstance(value, dict):
                yield from leaves(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}.", value

    def structure(tree, describe):
        return {key: structure(v, describe) if isinstance(v, dict) else describe(v) for key, v in tree.items()}

    metadata = {
        "version": version,
        "structure_shape": structure(experience, lambda x: str(x.shape)),
        "structure_dtype": structure(experience, lambda x: x.dtype.name),
    }
    (folder / "metadata.json").write_text(json.dumps(metadata))

    def spec(name):
        return {"driver": "zarr", "kvstore": {"driver": "ocdbt", "base": f"file://{folder}", "path": name}}

    for name, array in leaves(experience):
        leaf_spec = spec(name)
        leaf_spec["metadata"] = {"compressor": {"id": "gzip", "level": 5}}
        if chunk is not None:
            leaf_spec["metadata"]["chunks"] = [1, chunk, *array.shape[2:]]
        time_extent = array.shape[1] if own_time_extent else TIME_AXIS_MAX_LENGTH
        store = ts.open(leaf_spec, shape=(1, time_extent, *array.shape[2:]), dtype=array.dtype, create=True).result()
        store[:, : array.shape[1]].write(array).result()
    if vault_index is None:
        vault_index = max(array.shape[1] for _, array in leaves(experience))
    index = ts.open(spec("vault_index"), dtype=ts.int32, shape=(1,), create=True).result()
    index.write(np.array([vault_index], np.int32)).result()


def make_experience(task: str, episode_lengths, flags=None) -> dict:
    """Random experience of ``task``'s team and opponents in a vault's layout, episodes one after another.

    Every episode's last row is flagged terminal for all agents (as a time-limit done), unless
    ``flags`` maps a row to ``"terminal"``, ``"truncation"`` or ``None`` (unflagged).
    """
    spec = task_spec(task)
    rng = np.random.default_rng(0)
    size, n_agents = sum(episode_lengths), spec.n_agents + spec.n_opponents
    obs_dims, act_dims = (*spec.obs_dims, *spec.opponent_obs_dims), (*spec.act_dims, *spec.opponent_act_dims)
    observations = np.zeros((1, size, n_agents, max(obs_dims)), np.float32)
    actions = np.zeros((1, size, n_agents, max(act_dims)), np.float32)
    for i, (obs_dim, act_dim) in enumerate(zip(obs_dims, act_dims, strict=True)):
        observations[0, :, i, :obs_dim] = rng.normal(size=(size, obs_dim))
        actions[0, :, i, :act_dim] = rng.uniform(-1, 1, (size, act_dim))
    terminals, truncations = np.zeros((1, size, n_agents), bool), np.zeros((1, size, n_agents), bool)
    ends = {int(end): "terminal" for end in np.cumsum(episode_lengths) - 1} | (flags or {})
    for row, flag in ends.items():
        if flag is not None:
            (terminals if flag == "terminal" else truncations)[0, row] = True
    experience = {
        "observations": observations,
        "actions": actions,
        "rewards": rng.normal(size=(1, size, n_agents)).astype(np.float32),
        "terminals": terminals,
        "truncations": truncations,
        "infos": {"legals": np.ones((1, size, n_agents, 1), bool)},  # a key the importer ignores
    }
    if task == "halfcheetah":
        experience["infos"]["state"] = rng.normal(size=(1, size, spec.state_dim)).astype(np.float32)
    return experience


def vault_of(tmp_path: Path, task: str) -> Path:
    """The task's ``.vlt`` folder under ``tmp_path``, at OG-MARL's download place."""
    return tmp_path / "vaults" / OG_MARL_OMAR_VAULTS[task]


def test_cn_round_trip(tmp_path):
    experience = make_experience("cn", [25, 25, 25])
    write_vault(vault_of(tmp_path, "cn") / "Random", experience)
    out = tmp_path / "cn_random_seed0.npz"
    dataset = import_og_marl_vault(vault_of(tmp_path, "cn"), "cn", "random", 0, out)
    loaded = datasets.load(out)
    for name in datasets.ARRAY_FIELDS:
        np.testing.assert_array_equal(getattr(loaded, name), getattr(dataset, name), err_msg=name)

    obs, actions = experience["observations"][0], experience["actions"][0]
    np.testing.assert_array_equal(dataset.obs, obs)
    np.testing.assert_array_equal(dataset.actions, actions)
    np.testing.assert_allclose(dataset.rewards, experience["rewards"][0].mean(axis=1), rtol=1e-6)
    np.testing.assert_array_equal(dataset.episode_ids, np.arange(75) // 25)
    # every episode ends at its time limit, flagged terminal in the vault: a truncation, bootstrapped as the
    # original learners do (OMAR's files store dones = 0)
    assert not dataset.terminals.any()
    np.testing.assert_array_equal(np.flatnonzero(dataset.truncations), [24, 49, 74])
    following = [t if t in (24, 49, 74) else t + 1 for t in range(75)]  # no next observation: the row's own
    np.testing.assert_array_equal(dataset.next_actions, actions[[*range(1, 75), 74]])  # a': the next row's
    np.testing.assert_array_equal(dataset.next_obs, obs[following])
    np.testing.assert_array_equal(dataset.state, obs.reshape(75, -1))
    np.testing.assert_array_equal(dataset.next_state, obs[following].reshape(75, -1))

    meta = loaded.metadata
    spec = task_spec("cn")
    assert meta["task"] == "cn" and meta["quality"] == "random" and meta["seed"] == 0
    assert meta["obs_dims"] == list(spec.obs_dims) and meta["act_dims"] == list(spec.act_dims)
    assert meta["generator"]["name"] == "deep.storage.vault.import_og_marl_vault"
    assert meta["generator"]["version"] == VAULT_IMPORTER_VERSION
    assert meta["generator"]["config"]["source"] == str(vault_of(tmp_path, "cn") / "Random")
    assert meta["generator"]["config"]["vault_version"] == 1.2
    assert meta["reference_returns"]["random"] == 159.6 and meta["reference_returns"]["expert"] == 530.9
    assert "mean over the 3 team agents" in meta["reward_source"]


@pytest.mark.parametrize("task", ["pp", "world"])
def test_opponent_is_dropped_and_its_padding_stripped(tmp_path, task):
    spec = task_spec(task)
    # episode 1 ends early, flagged terminal; episode 2 flagged only truncated; the vault ends unflagged
    experience = make_experience(task, [25, 10, 7, 4], flags={34: "terminal", 41: "truncation", 45: None})
    experience["terminals"][0, 34, [0, -1]] = False  # one team agent's flag ends the episode ...
    experience["terminals"][0, 5, -1] = True  # ... the opponent's does not
    write_vault(vault_of(tmp_path, task) / "Expert", experience)
    dataset = import_og_marl_vault(vault_of(tmp_path, task), task, "expert", 3, tmp_path / "x.npz")

    obs = experience["observations"][0]
    assert dataset.obs.shape == (46, spec.n_agents, spec.obs_dim)  # the opponent (last agent) is not in the team
    np.testing.assert_array_equal(dataset.obs, obs[:, : spec.n_agents, : spec.obs_dim])
    np.testing.assert_allclose(dataset.rewards, experience["rewards"][0, :, : spec.n_agents].mean(axis=1), rtol=1e-6)
    np.testing.assert_array_equal(dataset.state, obs[:, : spec.n_agents].reshape(46, -1))
    assert dataset.state.shape[1] == spec.state_dim
    np.testing.assert_array_equal(np.flatnonzero(np.diff(dataset.episode_ids)), [24, 34, 41])
    np.testing.assert_array_equal(np.flatnonzero(dataset.truncations), [24, 34, 41, 45])
    assert not dataset.terminals.any()
    assert dataset.metadata["seed"] == 3 and dataset.metadata["generator"]["config"]["n_vault_agents"] == 4


def test_unflagged_rows_are_cut_at_the_time_limit(tmp_path):
    experience = make_experience("cn", [50], flags={49: None})
    write_vault(vault_of(tmp_path, "cn") / "Medium", experience)
    dataset = import_og_marl_vault(vault_of(tmp_path, "cn"), "cn", "medium", 0, tmp_path / "x.npz")
    np.testing.assert_array_equal(np.flatnonzero(dataset.truncations), [24, 49])
    assert dataset.n_episodes == 2 and not dataset.terminals.any()


@pytest.mark.parametrize("state_key", ["state", "states"])
def test_halfcheetah_uses_the_vault_state(tmp_path, state_key):
    experience = make_experience("halfcheetah", [1000, 20], flags={1019: None})
    experience["infos"] = {state_key: experience["infos"].pop("state")}
    write_vault(vault_of(tmp_path, "halfcheetah") / "Medium-Replay", experience)
    vault = vault_of(tmp_path, "halfcheetah")
    dataset = import_og_marl_vault(vault, "halfcheetah", "medium-replay", 1, tmp_path / "x.npz")
    state = experience["infos"][state_key][0]
    np.testing.assert_array_equal(dataset.state, state)
    np.testing.assert_array_equal(dataset.next_state[:999], state[1:1000])
    np.testing.assert_array_equal(dataset.next_state[999], state[999])  # no next state stored: its own
    np.testing.assert_array_equal(np.flatnonzero(dataset.truncations), [999, 1019])
    assert not dataset.terminals.any()
    assert dataset.metadata["reference_returns"]["expert"] == 3338.7
    assert f"infos.{state_key}" in dataset.metadata["state_source"]


def test_imported_file_passes_the_trainers_checks(tmp_path):
    from deep.train import TrainConfig, load_checked_dataset

    write_vault(vault_of(tmp_path, "pp") / "Medium", make_experience("pp", [25, 25]))
    arguments = f"import-vault {vault_of(tmp_path, 'pp')} --task pp --quality medium --data-dir {tmp_path / 'data'}"
    assert datasets.main(arguments.split()) == 0
    dataset = load_checked_dataset(TrainConfig(task="pp", dataset="medium", data_dir=str(tmp_path / "data")))
    assert dataset.n_transitions == 50


def test_nonzero_padding_is_refused(tmp_path):
    spec = task_spec("pp")
    experience = make_experience("pp", [25])
    experience["observations"][0, 7, spec.n_agents, -1] = 0.5  # the prey's padding
    write_vault(vault_of(tmp_path, "pp") / "Random", experience)
    prey = f"agent {spec.n_agents} \\({spec.opponents[0]}\\) has size {spec.opponent_obs_dims[0]} in task 'pp'"
    with pytest.raises(ValueError, match=rf"'observations': {prey} but non-zero entries .*first at row 7"):
        import_og_marl_vault(vault_of(tmp_path, "pp"), "pp", "random", 0, tmp_path / "x.npz")


def replace(experience: dict, key: str, value) -> dict:
    return {**experience, key: value}


WIDE = TIME_AXIS_MAX_LENGTH
MISMATCHES = {  # damage of a cn vault of 25 timesteps -> the error's message
    "narrow-obs": (
        lambda e: replace(e, "observations", e["observations"][..., :16]),
        rf"'observations': expected shape \(1, >=25, 3, >=18\) for task 'cn'.*got \(1, {WIDE}, 3, 16\)",
    ),
    "agents": (  # rewards of 4 agents (pp's layout) read as cn
        lambda e: replace(e, "rewards", np.zeros((1, 25, 4), np.float32)),
        rf"'rewards': expected shape \(1, >=25, 3\).*got \(1, {WIDE}, 4\)",
    ),
    "narrow-actions": (
        lambda e: replace(e, "actions", e["actions"][..., :1]),
        r"'actions': expected shape \(1, >=25, 3, >=2\)",
    ),
    "flag-shape": (
        lambda e: replace(e, "terminals", np.zeros((1, 25), bool)),
        rf"'terminals': expected shape \(1, >=25, 3\).*got \(1, {WIDE}\)",
    ),
    "missing-key": (
        lambda e: {key: value for key, value in e.items() if key != "truncations"},
        r"metadata\.json: the vault has no array truncations; it stores \['actions'",
    ),
    "nan": (
        lambda e: replace(e, "rewards", np.where(np.arange(25)[None, :, None] == 9, np.nan, e["rewards"])),
        r"'rewards': contains NaN or infinity \(first at row 9\)",
    ),
    "action-range": (lambda e: replace(e, "actions", e["actions"] * 3), r"'actions': actions must lie in \[-1, 1\]"),
    "dtype": (
        lambda e: replace(e, "observations", e["observations"].astype(np.complex64)),
        "'observations': expected numbers, got dtype complex64",
    ),
}


@pytest.mark.parametrize("case", MISMATCHES)
def test_mismatched_vault_is_refused_naming_the_array(tmp_path, case):
    damage, message = MISMATCHES[case]
    folder = vault_of(tmp_path, "cn") / "Random"
    write_vault(folder, damage(make_experience("cn", [25])))
    with pytest.raises(ValueError, match=message) as error:
        import_og_marl_vault(vault_of(tmp_path, "cn"), "cn", "random", 0, tmp_path / "x.npz")
    assert str(folder) in str(error.value)
    assert not (tmp_path / "x.npz").exists()


def test_halfcheetah_state_must_exist_and_fit(tmp_path):
    experience = make_experience("halfcheetah", [10])
    state = experience["infos"].pop("state")
    write_vault(vault_of(tmp_path, "halfcheetah") / "Random", experience)
    with pytest.raises(ValueError, match=r"no array infos\.state or infos\.states; it stores \[.*'infos\.legals'"):
        import_og_marl_vault(vault_of(tmp_path, "halfcheetah"), "halfcheetah", "random", 0, tmp_path / "x.npz")
    experience["infos"]["state"] = state[..., :-1]
    write_vault(vault_of(tmp_path, "halfcheetah") / "Expert", experience)
    with pytest.raises(ValueError, match=rf"'infos\.state': expected shape \(1, >=10, {state.shape[-1]}\)"):
        import_og_marl_vault(vault_of(tmp_path, "halfcheetah"), "halfcheetah", "expert", 0, tmp_path / "x.npz")


def test_truncated_vaults_are_refused(tmp_path):
    experience = make_experience("cn", [25, 25])
    # the vault claims 60 timesteps but its arrays (chunks of 8 timesteps) hold 50
    write_vault(vault_of(tmp_path, "cn") / "Random", experience, vault_index=60, chunk=8)
    with pytest.raises(
        ValueError, match=r"'observations': cannot read the vault's 60 timesteps \(truncated or damaged"
    ):
        import_og_marl_vault(vault_of(tmp_path, "cn"), "cn", "random", 0, tmp_path / "x.npz")
    # an array created with fewer timesteps than vault_index
    short = replace(experience, "truncations", experience["truncations"][:, :40])
    write_vault(vault_of(tmp_path, "cn") / "Medium-Replay", short, own_time_extent=True)
    with pytest.raises(ValueError, match=r"'truncations': expected shape \(1, >=50, 3\).*got \(1, 40, 3\)"):
        import_og_marl_vault(vault_of(tmp_path, "cn"), "cn", "medium-replay", 0, tmp_path / "x.npz")
    # a data file of the OCDBT database is missing (an interrupted unzip)
    folder = vault_of(tmp_path, "cn") / "Expert"
    write_vault(folder, experience)
    for file in (folder / "d").iterdir():
        file.unlink()
    with pytest.raises(ValueError, match=rf"{folder}: array '\w+' does not open"):
        import_og_marl_vault(vault_of(tmp_path, "cn"), "cn", "expert", 0, tmp_path / "x.npz")
    # no timesteps at all
    write_vault(vault_of(tmp_path, "cn") / "Medium", experience, vault_index=0)
    with pytest.raises(ValueError, match="'vault_index' must hold the positive number of timesteps"):
        import_og_marl_vault(vault_of(tmp_path, "cn"), "cn", "medium", 0, tmp_path / "x.npz")


def test_argument_and_folder_errors(tmp_path, monkeypatch):
    vault = vault_of(tmp_path, "cn")
    with pytest.raises(ValueError, match="task: unknown task 'spread'"):
        import_og_marl_vault(vault, "spread", "random", 0, tmp_path / "x.npz")
    with pytest.raises(ValueError, match=r"quality: unknown quality 'Random'.*'random'"):
        import_og_marl_vault(vault, "cn", "Random", 0, tmp_path / "x.npz")
    with pytest.raises(ValueError, match=r"vault_dir: task 'pp' is OG-MARL's omar/mpe/simple_tag\.vlt"):
        import_og_marl_vault(vault, "pp", "random", 0, tmp_path / "x.npz")
    with pytest.raises(FileNotFoundError, match=r"simple_spread\.vlt: vault folder does not exist"):
        import_og_marl_vault(vault, "cn", "random", 0, tmp_path / "x.npz")
    (vault / "Expert").mkdir(parents=True)
    with pytest.raises(
        FileNotFoundError, match=r"Random: vault of quality 'random' does not exist \(found \['Expert'\]\)"
    ):
        import_og_marl_vault(vault, "cn", "random", 0, tmp_path / "x.npz")
    with pytest.raises(ValueError, match=r"Expert/metadata\.json: missing; .* is not a flashbax vault"):
        import_og_marl_vault(vault, "cn", "expert", 0, tmp_path / "x.npz")
    (vault / "Expert" / "metadata.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"metadata\.json: not valid JSON"):
        import_og_marl_vault(vault, "cn", "expert", 0, tmp_path / "x.npz")
    write_vault(vault / "Medium", make_experience("cn", [25]), version=2.0)
    with pytest.raises(ValueError, match=r"metadata\.json: vault format version 2\.0, this reader reads version 1\.x"):
        import_og_marl_vault(vault, "cn", "medium", 0, tmp_path / "x.npz")
    (tmp_path / "x.npz").touch()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        import_og_marl_vault(vault, "cn", "medium", 0, tmp_path / "x.npz")
    monkeypatch.setitem(sys.modules, "tensorstore", None)
    with pytest.raises(ImportError, match=r"needs tensorstore: pip install .*\[vault\]"):
        import_og_marl_vault(vault, "cn", "medium", 0, tmp_path / "y.npz")


def test_import_vault_command(tmp_path, capsys):
    write_vault(vault_of(tmp_path, "cn") / "Expert", make_experience("cn", [25, 25]))
    argv = ["import-vault", str(vault_of(tmp_path, "cn")), "--task", "cn", "--quality", "expert"]
    data = tmp_path / "new" / "data"
    assert datasets.main([*argv, "--seed", "2", "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"wrote {data / 'cn_expert_seed2.npz'}: 50 transitions, 2 episodes, return mean")
    assert out.endswith(f"python deep/train.py --task cn --dataset expert --dataset-seed 2 --data-dir {data}")
    assert datasets.load(data / "cn_expert_seed2.npz").metadata["seed"] == 2
    assert datasets.main([*argv, "--seed", "2", "--data-dir", str(data), "--overwrite"]) == 0


@pytest.fixture(scope="module")
def cli_vaults(tmp_path_factory) -> dict:
    """A cn vault of quality Expert, and one whose rewards are of 4 agents (both read only)."""
    root = tmp_path_factory.mktemp("cli")
    vault, bad = vault_of(root, "cn"), root / "bad" / "simple_spread.vlt"
    write_vault(vault / "Expert", make_experience("cn", [25]))
    write_vault(bad / "Expert", replace(make_experience("cn", [25]), "rewards", np.zeros((1, 25, 4), np.float32)))
    return {"vault": vault, "bad": bad}


CLI_ERRORS = {  # arguments after "import-vault" -> the start of the one-line error
    "missing-quality": (
        "{vault} --task cn --quality random",
        "error: {vault}/Random: vault of quality 'random' does not",
    ),
    "wrong-vault": ("{vault} --task pp --quality expert", "error: vault_dir: task 'pp' is OG-MARL's"),
    "unknown-task": ("{vault} --task spread --quality expert", "error: argument --task: invalid choice: 'spread'"),
    "no-task": ("{vault} --quality expert", "error: the following arguments are required: --task"),
    "existing-file": (
        "{vault} --task cn --quality expert --data-dir {tmp}",
        "error: {tmp}/cn_expert_seed0.npz: dataset file already exists",
    ),
    "mismatch": (
        "{bad} --task cn --quality expert",
        "error: {bad}/Expert: array 'rewards': expected shape (1, >=25, 3)",
    ),
}


@pytest.mark.parametrize("case", CLI_ERRORS)
def test_import_vault_user_error_is_one_line_with_exit_status_2(tmp_path, cli_vaults, capsys, case):
    arguments, message = CLI_ERRORS[case]
    if "--data-dir" not in arguments:  # never the working directory's data/
        arguments += " --data-dir {tmp}/out"
    (tmp_path / "cn_expert_seed0.npz").touch()
    fields = {**cli_vaults, "tmp": tmp_path}
    assert datasets.main(["import-vault", *arguments.format(**fields).split()]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.splitlines()) == 1 and captured.err.startswith(message.format(**fields))


def test_vault_written_by_flashbax(tmp_path):
    """A vault written by flashbax's own Vault, as OG-MARL's FlashbaxReplayBuffer writes it."""
    pytest.importorskip("flashbax", reason="flashbax (and JAX) only write the vault here; the reader needs neither")
    import jax.numpy as jnp
    from flashbax.buffers.trajectory_buffer import TrajectoryBufferState
    from flashbax.vault import Vault

    spec = task_spec("world")
    experience = make_experience("world", [25, 25])
    structure = {key: jnp.asarray(value) for key, value in experience.items() if key != "infos"}
    structure["infos"] = {"state": jnp.zeros((1, 50, spec.state_dim), jnp.float32)}
    state = TrajectoryBufferState(experience=structure, current_index=jnp.array(50), is_full=jnp.array(False))
    vault = Vault(
        "omar/mpe/simple_world.vlt", experience_structure=structure, rel_dir=str(tmp_path), vault_uid="Expert"
    )
    assert vault.write(state) == 50
    dataset = import_og_marl_vault(tmp_path / "omar/mpe/simple_world.vlt", "world", "expert", 0, tmp_path / "w")
    np.testing.assert_array_equal(dataset.obs, experience["observations"][0, :, : spec.n_agents, : spec.obs_dim])
    np.testing.assert_array_equal(dataset.actions, experience["actions"][0, :, : spec.n_agents, : spec.act_dim])
    np.testing.assert_allclose(dataset.rewards, experience["rewards"][0, :, : spec.n_agents].mean(axis=1), rtol=1e-6)
    np.testing.assert_array_equal(np.flatnonzero(dataset.truncations), [24, 49])
    assert not dataset.terminals.any()
    np.testing.assert_array_equal(dataset.next_actions[:24], dataset.actions[1:25])
