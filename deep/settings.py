"""The one place where the settings of deep/'s commands are resolved and validated (train, sweep, collect).

:func:`validate_settings` checks every :class:`deep.train.TrainConfig` field (type, range, relations
between fields) and every resolved value of the method's settings (:mod:`deep.algorithms.methods`) (the table's defaults
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

import torch

from deep.algorithms.methods import METHODS
from deep.algorithms.minibatches import MINIBATCH_STREAMS
from deep.envs.tasks import TASKS, task_spec
from deep.storage.datasets import QUALITIES
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

DEVICES = ("auto", "cpu", "cuda")

PRESETS: dict[str, dict[str, Any]] = {
    # a first run for newcomers: about a minute on a CPU on the MPE datasets
    "quick": {"updates": 200, "eval_every": 100, "log_every": 50, "eval_episodes": 10, "batch_size": 256},
}
"""Preset name -> the TrainConfig fields it sets (only fields still at their defaults; explicit flags win)."""

PROFILE_SIZES = {"small": 100_000, "full": 1_000_000}
"""deep/collect.py's ``--profile`` -> the transitions of each dataset (the original benchmark's size: full)."""


_ALL_SETTINGS = {f.name for method in METHODS.values() for f in fields(method.settings)} - {"algo"}
"""Every method's setting names: a config field among them applies only to the methods that have it."""


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
    "omar_coe": (0.0, 1.0, False, False),
    "omar_mu": (-1.0, 1.0, False, False),
    "omar_sigma": (0.0, math.inf, True, True),
    "bc_alpha": (0.0, math.inf, True, True),
    "target_noise_clip": (0.0, math.inf, False, True),
    "expectile": (0.0, 1.0, True, True),
    "temperature": (0.0, math.inf, False, True),
    "advantage_clip": (0.0, math.inf, True, True),
}
_COUNTS = (
    "n_critics",
    "hidden",
    "batch_size",
    "policy_delay",
    "n_sampled_actions",
    "n_heads",
    "omar_iters",
    "omar_samples",
    "omar_elites",
    "cosine_updates",
)
_FLAGS = ("input_norm", "penalty_policy_samples", "independent_batches")
_CHOICES = {"omar_search": ("softmax", "cem")}


def apply_preset(config):
    """``config`` with its preset's values in the fields still at their defaults (none: unchanged)."""
    preset = getattr(config, "preset", None)
    if preset is None:
        return config
    check_choice(flag("preset"), preset, tuple(PRESETS))
    defaults = {f.name: f.default for f in fields(config)}
    changes = {name: value for name, value in PRESETS[preset].items() if getattr(config, name) == defaults[name]}
    return replace(config, **changes)


def _setting_names(method) -> list[str]:
    return [f.name for f in fields(method.settings) if f.name != "algo"]


def resolve_settings(config):
    """The learner's settings and the number of updates: the method's table, overridden by the config.

    A settings field takes the config's field of the same name where that is set (not None), else
    the table's value.
    """
    method = METHODS[config.algo]
    table = method.defaults(config.task, config.dataset)
    resolved = {}
    for name in _setting_names(method):
        value = getattr(config, name, None)
        resolved[name] = table[name] if value is None else value
    settings = method.settings(algo=config.algo, **resolved)
    return settings, config.updates if config.updates is not None else table["updates"]


def _check_seeds(config, seeds) -> None:
    """``--seeds``: distinct non-negative seeds of a batchable method, with ``--seed`` left unset."""
    if not isinstance(seeds, list | tuple) or not seeds:
        raise invalid(flag("seeds"), "one or more seeds", seeds)
    for seed in seeds:
        check_int(flag("seeds"), seed, 0, numpy=False)
    if len(set(seeds)) != len(seeds):
        raise invalid(flag("seeds"), "distinct seeds (each names its own run directory)", seeds)
    if not METHODS[config.algo].batchable:
        rule = f"unset for --algo {config.algo} (its update is not batched: run its seeds with python -m deep.sweep)"
        raise invalid(flag("seeds"), rule, seeds)
    if config.seed != 0:
        raise invalid(flag("seed"), "unset with --seeds (each run's seed comes from --seeds)", config.seed)


def validate_settings(config) -> tuple:
    """Check every setting of a :class:`deep.train.TrainConfig`; returns the resolved settings and updates.

    Raises
    ------
    SettingsError
        The first bad setting, named by its flag, with its value and the allowed range.
    """
    check_choice(flag("algo"), config.algo, tuple(METHODS))
    check_choice(flag("task"), config.task, TASKS)
    check_choice(flag("dataset"), config.dataset, QUALITIES)
    check_choice(flag("device"), config.device, DEVICES)
    if config.device == "cuda" and not torch.cuda.is_available():
        raise invalid(flag("device"), "cpu or auto on this machine (torch.cuda.is_available() is False)", config.device)
    if getattr(config, "preset", None) is not None:
        check_choice(flag("preset"), config.preset, tuple(PRESETS))
    check_int(flag("seed"), config.seed, 0, numpy=False)
    if config.dataset_seed is not None:  # None: the run's seed
        check_int(flag("dataset_seed"), config.dataset_seed, 0, numpy=False)
    check_choice(flag("minibatches"), config.minibatches, MINIBATCH_STREAMS)
    seeds = getattr(config, "seeds", None)
    if seeds is not None:
        _check_seeds(config, seeds)
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

    method = METHODS[config.algo]
    names = _setting_names(method)
    for field in fields(config):  # a method's setting given to another method would be silently ignored
        if field.name in _ALL_SETTINGS and field.name not in names and getattr(config, field.name) != field.default:
            rule = f"unset for --algo {config.algo} (not one of its settings)"
            raise invalid(flag(field.name), rule, getattr(config, field.name))
    if config.compile and not method.compilable:
        raise invalid(flag("compile"), f"off for --algo {config.algo} (its update runs eager only)", config.compile)

    settings, updates = resolve_settings(config)
    for name in names:
        value = getattr(settings, name)
        if name in _COUNTS:
            check_int(flag(name), value, 1, numpy=False)
        elif name in _REAL_RANGES and value is not None:  # None: off (IQL's grad_clip)
            low, high, low_open, high_open = _REAL_RANGES[name]
            check_real(flag(name), value, low, high, low_open=low_open, high_open=high_open, numpy=False)
        elif name in _FLAGS:
            check_bool(flag(name), value, numpy=False)
        elif name in _CHOICES:
            check_choice(flag(name), value, _CHOICES[name])
    if getattr(settings, "omar_search", None) == "cem" and not 2 <= settings.omar_elites <= settings.omar_samples:
        rule = f"in [2, --omar-samples={settings.omar_samples}] for the cem search (the elites' std needs 2)"
        raise invalid(flag("omar_elites"), rule, settings.omar_elites)
    if getattr(settings, "scheme", None) not in (None, "fixed-k") and settings.k != 1:
        raise invalid(
            flag("k"), "1 (unset) except for --algo spacql-fixed-k (the only method that reads it)", settings.k
        )
    if getattr(settings, "weighting", None) == "inverse-std" and settings.n_critics < 2:
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
