"""The rules every setting is checked by: a tabular function's argument or a command-line flag of deep/.

Each check takes the setting's name as its caller shows it (``gamma`` for an argument, ``--n-envs``
for a flag), the value and the allowed range; it returns the value in its plain Python type or
raises :class:`SettingsError` with one message format, ``NAME: must be RULE, got VALUE``::

    gamma: must be a number in [0, 1), got 1.0
    --n-envs: must be an integer >= 1, got 0

A rule between settings uses the same format through :func:`invalid`, e.g.
``--eval-every: must be a positive multiple of --log-every=100, got 250``.

Types: an integer is a Python or numpy integer (a size, :func:`check_size`, may also be an integral
float such as ``3.0``); a number is a real Python or numpy number, never NaN or infinite; a boolean
is ``True`` or ``False``. Booleans are neither integers nor numbers here, so ``True`` is refused as
a count and ``1`` as a switch. ``numpy=False`` refuses numpy scalars, for a config that is written
to JSON (which cannot hold them). The module depends on nothing else in the project, so that
tabular/ (which imports nothing from deep/) and deep/ share it.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Hashable

import numpy as np


class SettingsError(ValueError):
    """A setting outside its allowed type or range, or inconsistent with another setting."""


def invalid(name: str, rule: str, value) -> SettingsError:
    """The error ``NAME: must be RULE, got VALUE``, the value as its ``repr``."""
    return SettingsError(f"{name}: must be {rule}, got {value!r}")


def _is_bool(value) -> bool:
    return isinstance(value, bool | np.bool_)


def check_bool(name: str, value, *, numpy: bool = True) -> bool:
    """Return ``value`` as a ``bool``: ``True`` or ``False``, or with ``numpy`` also ``np.True_`` or ``np.False_``."""
    if not (isinstance(value, bool) or (numpy and isinstance(value, np.bool_))):
        raise invalid(name, "true or false", value)
    return bool(value)


def check_int(
    name: str,
    value,
    minimum: int | None = None,
    maximum: int | None = None,
    *,
    integral_float: bool = False,
    numpy: bool = True,
) -> int:
    """Return ``value`` as an ``int`` in ``[minimum, maximum]`` (a missing bound: unbounded on that side).

    Parameters
    ----------
    name : str
        The setting as the caller shows it.
    value
        A Python or numpy integer; with ``integral_float=True`` also a float with no fractional part.
    minimum, maximum : int or None
        The inclusive bounds.
    integral_float : bool
        Accept ``3.0`` as ``3`` (``2.5`` is refused either way, never truncated).
    numpy : bool
        Accept numpy scalars (``False``: Python ``int`` and, with ``integral_float``, ``float`` only).
    """
    if minimum is not None and maximum is not None:
        rule = f"an integer in [{minimum}, {maximum}]"
    elif minimum is not None:
        rule = f"an integer >= {minimum}"
    elif maximum is not None:
        rule = f"an integer <= {maximum}"
    else:
        rule = "an integer"
    if _is_bool(value) or (not numpy and isinstance(value, np.generic)):
        raise invalid(name, rule, value)
    try:
        number = operator.index(value)
    except TypeError:
        is_integral = isinstance(value, float | np.floating) and math.isfinite(value) and float(value).is_integer()
        if not (integral_float and is_integral):
            raise invalid(name, rule, value) from None
        number = int(value)
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise invalid(name, rule, value)
    return number


def check_multiple(name: str, value, base_name: str, base: int, *, numpy: bool = True) -> int:
    """Return ``value`` as an ``int`` if it is a positive multiple of the setting ``base_name`` (of value ``base``)."""
    rule = f"a positive multiple of {base_name}={base}"
    try:
        number = check_int(name, value, 1, numpy=numpy)
    except SettingsError:
        raise invalid(name, rule, value) from None
    if number % base:
        raise invalid(name, rule, value)
    return number


def check_size(name: str, value, minimum: int = 0) -> int:
    """Return the size ``value`` (a count of states, actions, transitions, ...) as an ``int >= minimum``.

    :func:`check_int` with integral floats accepted: ``3.0`` is ``3``; ``2.5`` and ``True`` are refused.
    """
    return check_int(name, value, minimum, integral_float=True)


def check_real(
    name: str,
    value,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
    numpy: bool = True,
) -> float:
    """Return ``value`` as a ``float`` in the interval from ``low`` to ``high``.

    ``low_open`` / ``high_open`` exclude that end (``(0, 1]``: ``low_open=True``). An infinite
    bound is always open: NaN and infinite values are never accepted. Strings are refused, not
    parsed; ``numpy=False`` refuses numpy scalars.
    """
    low_open, high_open = low_open or math.isinf(low), high_open or math.isinf(high)
    rule = f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    is_number = isinstance(value, numbers.Real) and not _is_bool(value)
    if not is_number or (not numpy and isinstance(value, np.generic)) or math.isnan(value):
        raise invalid(name, rule, value)
    number = float(value)
    too_low = number <= low if low_open else number < low
    too_high = number >= high if high_open else number > high
    if too_low or too_high:
        raise invalid(name, rule, value)
    return number


def check_choice(name: str, value, choices):
    """Return ``value`` if it is one of ``choices`` (compared by equality)."""
    if not isinstance(value, Hashable) or value not in choices:
        raise invalid(name, f"one of {', '.join(map(str, choices))}", value)
    return value


def check_path(name: str, value) -> str:
    """Return ``value`` if it is a non-empty string (a file or directory path)."""
    if not isinstance(value, str) or not value:
        raise invalid(name, "a non-empty path", value)
    return value


def check_type(name: str, value, expected: type | tuple[type, ...], description: str):
    """Return ``value`` if it is an instance of ``expected``; the error shows its type, not its value.

    ``description`` names what is expected, e.g. ``"a tabular.datasets.Dataset"``.
    """
    if not isinstance(value, expected):
        raise SettingsError(f"{name}: must be {description}, got {type(value).__name__}")
    return value


def check_gamma(gamma) -> float:
    """Return the discount factor ``gamma`` as a float in ``[0, 1)``."""
    return check_real("gamma", gamma, 0.0, 1.0, high_open=True)
