"""The one place where a training run's settings are resolved and validated (deep/train.py, deep/sweep.py).

:func:`validate_settings` checks every :class:`deep.train.TrainConfig` field (type, range, relations
between fields) and every resolved :class:`deep.offline.LearnerSettings` value (the table's defaults
overridden by the config), and returns the resolved settings and update count. A bad setting raises
:class:`SettingsError` naming the setting as its command-line flag, the value and the allowed range,
e.g. ``--eval-every: must be a positive multiple of --log-every=100, got 250``; both CLIs print it as
one ``error:`` line and exit with code 2.

:data:`PRESETS` holds named bundles of settings (``--preset quick``), applied by :func:`apply_preset`.
"""

from __future__ import annotations

import math
from dataclasses import fields, replace
from typing import Any

from .envs import task_spec
from .offline import ALGORITHMS, CQL_ALPHA, ROUNDS, LearnerSettings, default_hyperparameters

DEVICES = ("auto", "cpu", "cuda")

PRESETS: dict[str, dict[str, Any]] = {
    # a first run for newcomers: about a minute on a CPU on the MPE datasets
    "quick": {"updates": 200, "eval_every": 100, "log_every": 50, "eval_episodes": 10, "batch_size": 256},
}
"""Preset name -> the TrainConfig fields it sets (only fields still at their defaults; explicit flags win)."""


class SettingsError(ValueError):
    """A setting outside its allowed range or type, or inconsistent with another setting."""


def flag(name: str) -> str:
    """The command-line flag of a config field: ``eval_every`` -> ``--eval-every``."""
    return "--" + name.replace("_", "-")


def _fail(name: str, rule: str, value) -> SettingsError:
    return SettingsError(f"{flag(name)}: {rule}, got {value!r}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_int(name: str, value, minimum: int | None = None) -> None:
    if not _is_int(value):
        raise _fail(name, "must be an integer", value)
    if minimum is not None and value < minimum:
        raise _fail(name, f"must be an integer >= {minimum}", value)


def _check_real(name: str, value, low: float, high: float, low_open: bool, high_open: bool) -> None:
    left, right = "(" if low_open else "[", ")" if high_open else "]"
    rule = f"must be a number in {left}{low:g}, {high:g}{right}"
    if not _is_real(value) or math.isnan(value):
        raise _fail(name, rule, value)
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        raise _fail(name, rule, value)


def _check_bool(name: str, value) -> None:
    if not isinstance(value, bool):
        raise _fail(name, "must be true or false", value)


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise _fail(name, f"must be one of {', '.join(map(str, choices))}", value)


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
    _check_choice("preset", preset, tuple(PRESETS))
    defaults = {f.name: f.default for f in fields(config)}
    changes = {name: value for name, value in PRESETS[preset].items() if getattr(config, name) == defaults[name]}
    return replace(config, **changes)


def resolve_settings(config) -> tuple[LearnerSettings, int]:
    """The learner's settings and the number of updates: the table's defaults, overridden by the config."""
    table = default_hyperparameters(config.task, config.dataset)
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
    _check_choice("algo", config.algo, tuple(ALGORITHMS))
    _check_choice("task", config.task, tuple(ROUNDS))
    _check_choice("dataset", config.dataset, tuple(CQL_ALPHA[config.task]))
    _check_choice("device", config.device, DEVICES)
    if getattr(config, "preset", None) is not None:
        _check_choice("preset", config.preset, tuple(PRESETS))
    for name in ("seed", "dataset_seed"):
        _check_int(name, getattr(config, name), 0)
    if not isinstance(config.data_dir, str) or not config.data_dir:
        raise _fail("data_dir", "must be a non-empty path", config.data_dir)
    if config.out_dir is not None and (not isinstance(config.out_dir, str) or not config.out_dir):
        raise _fail("out_dir", "must be a non-empty path", config.out_dir)
    for name in ("resume", "overwrite", "compile", "tensorboard", "progress"):
        _check_bool(name, getattr(config, name))
    if config.updates is not None:
        _check_int("updates", config.updates, 1)
    for name in ("log_every", "eval_episodes"):
        _check_int(name, getattr(config, name), 1)
    if not _is_int(config.eval_every) or config.eval_every < 1 or config.eval_every % config.log_every:
        raise _fail("eval_every", f"must be a positive multiple of --log-every={config.log_every}", config.eval_every)
    n_agents = task_spec(config.task).n_agents
    _check_int("k", config.k, 1)
    if config.k > n_agents:
        raise _fail("k", f"must be in [1, {n_agents}] (the agents of task {config.task})", config.k)

    settings, updates = resolve_settings(config)
    for name in _COUNTS:
        _check_int(name, getattr(settings, name), 1)
    for name, (low, high, low_open, high_open) in _REAL_RANGES.items():
        _check_real(name, getattr(settings, name), low, high, low_open, high_open)
    _check_bool("penalty_policy_samples", settings.penalty_policy_samples)
    if settings.weighting == "inverse-std" and settings.n_critics < 2:
        raise _fail(
            "n_critics",
            f"must be >= 2 for --algo {settings.algo} (its weights need the ensemble's std)",
            settings.n_critics,
        )
    _check_int("updates", updates, 1)
    return settings, updates
