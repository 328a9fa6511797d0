"""Array, probability and memory checks shared by the public functions: every error names the argument.

Memory: a public function that builds arrays whose size grows with the number of agents (the
joint action space ``prod(A_i)``, the ``2^n`` subsets of agents) first estimates the bytes it
needs with :func:`check_memory` and refuses with a ``ValueError`` that states the figure when the
estimate exceeds :data:`MEMORY_LIMIT_BYTES`. On a machine with more memory, raise the limit::

    import tabular._validate
    tabular._validate.MEMORY_LIMIT_BYTES = 64 * 2**30   # 64 GiB

It is read at every call, so the new value applies at once. Arrays a caller builds and hands over
(``DecMDP(P, R, d0, gamma)`` with a given ``P``) are not checked: they already exist.

Scalar settings (sizes, ``gamma``, ...) are checked by the shared rules of :mod:`tabular.validation`.
"""

from __future__ import annotations

import math

import numpy as np

#: Absolute tolerance on "sums to one" checks; probabilities written as decimals
#: (0.1 + 0.2 + 0.7) are accepted, a row off by a real amount is not.
SUM_TOL = 1e-9

#: The most bytes one call may allocate, by its own estimate, before it refuses (4 GiB). Raise it
#: (``tabular._validate.MEMORY_LIMIT_BYTES = ...``) to allow larger instances; see the module docstring.
MEMORY_LIMIT_BYTES = 4 * 2**30


def check_seed(seed, name: str = "seed") -> int:
    """``seed`` as an ``int`` when it is a non-negative integer (numpy's generators refuse the rest less clearly)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{name}: must be a non-negative integer, got {seed!r}")
    return int(seed)


def format_bytes(n_bytes: int) -> str:
    """``n_bytes`` in B, KiB, MiB, GiB, TiB or PiB with three significant digits."""
    value = float(n_bytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024.0:
            return f"{value:.3g} {unit}"
        value /= 1024.0
    return f"{value:.3g} PiB"


def joint_actions_text(action_sizes, short: bool = False) -> str:
    """``prod(A_i)`` written so that its size is readable: ``2^30``, ``2x3x4 = 24``, ``prod(A_i) = 72``.

    ``short=True`` gives a bare factor for a formula: ``2^30`` or ``72``.
    """
    sizes = [int(a) for a in action_sizes]
    total = math.prod(sizes)
    if len(sizes) > 1 and len(set(sizes)) == 1:
        return f"{sizes[0]}^{len(sizes)}"
    if short:
        return str(total)
    if len(sizes) <= 4:
        return "x".join(map(str, sizes)) + (f" = {total}" if len(sizes) > 1 else "")
    return f"prod(A_i) = {total}"


def check_memory(name: str, lead: str, parts) -> None:
    """Refuse a call whose estimated allocation exceeds :data:`MEMORY_LIMIT_BYTES`, before it allocates.

    Parameters
    ----------
    name : str
        The argument the size comes from; the message starts with it.
    lead : str
        What makes the call large, e.g. ``"30 agents with 2^30 joint actions"``.
    parts : sequence of (str, int)
        The arrays the call builds: a formula in words and its size in bytes (exact integers).
    """
    parts = [(text, int(n_bytes)) for text, n_bytes in parts]
    total = sum(n_bytes for _, n_bytes in parts)
    if total <= MEMORY_LIMIT_BYTES:
        return
    # the parts that matter (a hundredth of the total or more), largest first
    shown = sorted((part for part in parts if 100 * part[1] >= total), key=lambda part: -part[1])
    breakdown = "; ".join(f"{text} = {format_bytes(n_bytes)}" for text, n_bytes in shown)
    raise ValueError(
        f"{name}: {lead}: needs about {format_bytes(total)} ({breakdown}), more than the "
        f"{format_bytes(MEMORY_LIMIT_BYTES)} limit; use a smaller instance, or raise "
        "tabular._validate.MEMORY_LIMIT_BYTES on a machine with the memory"
    )


def as_float_array(name: str, value, ndim: int | None = None, min_ndim: int | None = None) -> np.ndarray:
    """Return a C-contiguous float64 copy of ``value``, refusing NaN/inf and wrong ranks.

    A copy, so that freezing it never freezes (or aliases) the caller's array. Complex input is
    refused (even with zero imaginary parts), not cast: the cast would drop the imaginary part.
    """
    try:
        raw = np.asarray(value)
        if np.iscomplexobj(raw):
            raise ValueError(f"{name}: has complex entries (dtype {raw.dtype}); the engine needs real numbers")
        array = np.array(raw, dtype=np.float64, order="C", copy=True)
    except (TypeError, ValueError) as error:
        if str(error).startswith(f"{name}: "):
            raise
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
