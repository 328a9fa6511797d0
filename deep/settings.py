"""The one place where the settings of deep/'s commands are resolved and validated (train, sweep, collect).

:func:`validate_settings` checks every :class:`deep.train.TrainConfig` field (type, range, relations
between fields) and every resolved :class:`deep.offline.LearnerSettings` value (the table's defaults
overridden by the config), and returns the resolved settings and update count;
:func:`validate_collect_config` checks every :class:`deep.collect.CollectConfig` field. Both apply
the shared rules of :mod:`tabular.validation`: a bad setting raises :class:`SettingsError` naming the
setting as its command-line flag, the value and the allowed range, e.g.
``--eval-every: must be a positive multiple of --log-every=100, got 250``; the CLIs print it as one
``error:`` line and exit with code 2. Numpy scalars are refused (the configs are written to JSON).

:data:`PRESETS` holds named bundles of settings (``--preset quick``), applied by :func:`apply_preset`.
"""

from __future__ import annotations

import math
from dataclasses import fields, replace
from typing import Any

from tabular.validation import SettingsError as SettingsError  # the error of every check; train and sweep catch it
from tabular.validation import (
    check_bool,
    check_choice,
    check_int,
    check_multiple,
    check_path,
    check_real,
    invalid,
)

from .datasets import QUALITIES
from .envs import TASKS, task_spec
from .offline import ALGORITHMS, CQL_ALPHA, ROUNDS, LearnerSettings, default_hyperparameters

DEVICES = ("auto", "cpu", "cuda")

PRESETS: dict[str, dict[str, Any]] = {
    # a first run for newcomers: about a minute on a CPU on the MPE datasets
    "quick": {"updates": 200, "eval_every": 100, "log_every": 50, "eval_episodes": 10, "batch_size": 256},
}
"""Preset name -> the TrainConfig fields it sets (only fields still at their defaults; explicit flags win)."""

PROFILE_SIZES = {"small": 100_000, "full": 1_000_000}
"""deep/collect.py's ``--profile`` -> the transitions of each dataset (the original benchmark's size: full)."""


def flag(name: str) -> str:
    """The command-line flag of a config field: ``eval_every`` -> ``--eval-every``."""
    return "--" + name.replace("_", "-")


# resolved LearnerSettings value -> (low, high, low_open, high_open); inf: no upper bound (inf refused)
_REAL_RANGES = {
    "lr": (0.0, math.inf, True, True),
    "gamma": (0.0, 1.0, False, True),
    "tau": (0.0, 1.0, True, False),
    "cql_alpha": (0.0, math.inf, False, True),
    "target_noise": (0.0, math.inf, False, True),
    "policy_sample_noise": (0.0, math.inf, False, True),
    "lse_temperature": (0.0, math.inf, True, True),
    "grad_clip": (0.0, math.inf, True, True),
    "action_l2": (0.0, math.inf, False, True),
}
_COUNTS = ("n_critics", "hidden", "batch_size", "policy_delay", "n_sampled_actions")
_TABLE_NAMES = {f.name for f in fields(LearnerSettings)} - {"algo", "k"}


def apply_preset(config):
    """``config`` with its preset's values in the fields still at their defaults (none: unchanged)."""
    preset = getattr(config, "preset", None)
    if preset is None:
        return config
    check_choice(flag("preset"), preset, tuple(PRESETS))
    defaults = {f.name: f.default for f in fields(config)}
    changes = {name: value for name, value in PRESETS[preset].items() if getattr(config, name) == defaults[name]}
    return replace(config, **changes)


def resolve_settings(config) -> tuple[LearnerSettings, int]:
    """The learner's settings and the number of updates: the table's defaults, overridden by the config."""
    table = default_hyperparameters(config.task, config.dataset, config.algo)
    values = {name: getattr(config, name, None) for name in _TABLE_NAMES}
    resolved = {name: table[name] if value is None else value for name, value in values.items()}
    settings = LearnerSettings(algo=config.algo, k=config.k, **resolved)
    return settings, config.updates if config.updates is not None else table["updates"]


def validate_settings(config) -> tuple[LearnerSettings, int]:
    """Check every setting of a :class:`deep.train.TrainConfig`; returns the resolved settings and updates.

    Raises
    ------
    SettingsError
        The first bad setting, named by its flag, with its value and the allowed range.
    """
    check_choice(flag("algo"), config.algo, tuple(ALGORITHMS))
    check_choice(flag("task"), config.task, tuple(ROUNDS))
    check_choice(flag("dataset"), config.dataset, tuple(CQL_ALPHA[config.task]))
    check_choice(flag("device"), config.device, DEVICES)
    if getattr(config, "preset", None) is not None:
        check_choice(flag("preset"), config.preset, tuple(PRESETS))
    for name in ("seed", "dataset_seed"):
        check_int(flag(name), getattr(config, name), 0, numpy=False)
    check_path(flag("data_dir"), config.data_dir)
    if config.out_dir is not None:
        check_path(flag("out_dir"), config.out_dir)
    for name in ("resume", "overwrite", "compile", "tensorboard", "progress"):
        check_bool(flag(name), getattr(config, name), numpy=False)
    if config.updates is not None:
        check_int(flag("updates"), config.updates, 1, numpy=False)
    for name in ("log_every", "eval_episodes"):
        check_int(flag(name), getattr(config, name), 1, numpy=False)
    check_multiple(flag("eval_every"), config.eval_every, flag("log_every"), config.log_every, numpy=False)
    n_agents = task_spec(config.task).n_agents
    check_int(flag("k"), config.k, 1, numpy=False)
    if config.k > n_agents:
        raise invalid(flag("k"), f"an integer in [1, {n_agents}] (the agents of task {config.task})", config.k)

    settings, updates = resolve_settings(config)
    for name in _COUNTS:
        check_int(flag(name), getattr(settings, name), 1, numpy=False)
    for name, (low, high, low_open, high_open) in _REAL_RANGES.items():
        value = getattr(settings, name)
        check_real(flag(name), value, low, high, low_open=low_open, high_open=high_open, numpy=False)
    check_bool(flag("penalty_policy_samples"), settings.penalty_policy_samples, numpy=False)
    if settings.weighting == "inverse-std" and settings.n_critics < 2:
        rule = f">= 2 for --algo {settings.algo} (its weights need the ensemble's std)"
        raise invalid(flag("n_critics"), rule, settings.n_critics)
    check_int(flag("updates"), updates, 1, numpy=False)
    return settings, updates


def validate_collect_config(config) -> None:
    """Check every setting of a :class:`deep.collect.CollectConfig` (type, range, relations).

    Raises
    ------
    SettingsError
        The first bad setting, named by its flag, with its value and the allowed range.
    """
    check_choice(flag("task"), config.task, (*TASKS, "all"))
    check_choice(flag("quality"), config.quality, (*QUALITIES, "all"))
    check_choice(flag("profile"), config.profile, tuple(PROFILE_SIZES))
    if config.size is not None:
        check_int(flag("size"), config.size, 1, numpy=False)
        if config.quality == "medium-replay":
            rule = "unset for --quality medium-replay (its size is what the behavior run stored)"
            raise invalid(flag("size"), rule, config.size)
    check_int(flag("seed"), config.seed, 0, numpy=False)
    check_path(flag("data_dir"), config.data_dir)
    check_path(flag("behavior_dir"), config.behavior_dir)
    check_real(flag("exploration_noise"), config.exploration_noise, 0.0, math.inf, numpy=False)
    check_int(flag("n_envs"), config.n_envs, 1, numpy=False)
    for name in ("overwrite", "progress"):
        check_bool(flag(name), getattr(config, name), numpy=False)
