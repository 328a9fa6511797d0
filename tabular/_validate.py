"""Input checks shared by the public functions: every error names the argument."""

from __future__ import annotations

import numpy as np

#: Absolute tolerance on "sums to one" checks; probabilities written as decimals
#: (0.1 + 0.2 + 0.7) are accepted, a row off by a real amount is not.
SUM_TOL = 1e-9


def as_float_array(name: str, value, ndim: int | None = None, min_ndim: int | None = None) -> np.ndarray:
    """Return a C-contiguous float64 copy of ``value``, refusing NaN/inf and wrong ranks.

    A copy, so that freezing it never freezes (or aliases) the caller's array.
    """
    try:
        array = np.array(value, dtype=np.float64, order="C", copy=True)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name}: cannot be read as a float array ({error})") from None
    if ndim is not None and array.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got shape {array.shape}")
    if min_ndim is not None and array.ndim < min_ndim:
        raise ValueError(f"{name}: expected at least {min_ndim} dimensions, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name}: is empty (shape {array.shape})")
    if not np.all(np.isfinite(array)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        raise ValueError(f"{name}: contains NaN or infinity (first at index {bad})")
    return array


def check_distributions(name: str, array: np.ndarray, n_leading: int) -> None:
    """Check that ``array`` holds probability vectors over its trailing axes.

    The first ``n_leading`` axes index the distributions (e.g. the state of a policy);
    the remaining axes together form the support.
    """
    if np.any(array < 0):
        bad = tuple(int(i) for i in np.argwhere(array < 0)[0])
        raise ValueError(f"{name}: has a negative entry {array[bad]:.3g} at index {bad}")
    sums = array.reshape((*array.shape[:n_leading], -1)).sum(axis=-1)
    off = np.abs(sums - 1.0) > SUM_TOL
    if np.any(off):
        bad = tuple(int(i) for i in np.argwhere(off)[0]) if n_leading else ()
        where = f" at {name}[{', '.join(map(str, bad))}, ...]" if bad else ""
        raise ValueError(f"{name}: is not stochastic: probabilities sum to {np.asarray(sums)[bad]:.12g}{where}, not 1")


def check_gamma(gamma) -> float:
    """Return ``gamma`` as a float, refusing values outside [0, 1)."""
    try:
        value = float(gamma)
    except (TypeError, ValueError):
        raise ValueError(f"gamma: must be a number in [0, 1), got {gamma!r}") from None
    if not (0.0 <= value < 1.0):
        raise ValueError(f"gamma: must lie in [0, 1), got {value!r}")
    return value


def check_subset(subset, n_agents: int) -> tuple[int, ...]:
    """Return the sorted agent indices of ``subset``, refusing unknown or repeated agents."""
    try:
        requested = list(subset)
    except TypeError:
        raise ValueError(f"subset: must be an iterable of agent indices, got {subset!r}") from None
    members = []
    for original in requested:
        if isinstance(original, bool) or not isinstance(original, (int, np.integer)):
            raise ValueError(f"subset: agent indices must be integers, got {original!r}")
        index = int(original)
        if not 0 <= index < n_agents:
            raise ValueError(f"subset: names agent {index}, but agents are numbered 0..{n_agents - 1}")
        members.append(index)
    if len(set(members)) != len(members):
        raise ValueError(f"subset: names an agent twice: {sorted(members)}")
    return tuple(sorted(members))
