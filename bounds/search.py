"""A search for counterexamples: maximize ``lhs / rhs`` (or ``lhs - rhs``) of each claim over instances.

Instances are smooth functions of a parameter vector (:class:`Layout`): softmax logits for every
distribution (``P(.|s, a)``, ``d0``, each ``pi_i``, each ``mu_i`` or a correlated joint ``mu``, the
SPaCQL weights ``w(s)``), and boxes for ``gamma`` in ``[0, 0.99]``, ``R`` in ``[-1, 1]`` and ``Q_hat``.
For a claim that assumes ``Q_hat`` is ``2/(1-gamma)``-Lipschitz, ``Q_hat = (c + u) / (1-gamma)`` with
``u`` in ``[-1, 1]`` (range at most ``2/(1-gamma)``); outside the assumption ``u`` lies in ``[-10, 10]``.

Every other start is a *vertex climb*: a hill climb over deterministic instances (every distribution a
point mass, gamma, R and Q_hat on a grid), where many extremes sit and softmax gradients vanish. The
other starts draw from structured *families* that random draws almost never produce (deterministic
policies, absorbing states, a single deviating agent, deviations near 0, gamma near 0 or 1, the shape
that makes Lemma 1 tight, transitions that depend only on how many agents deviate, Q_hat extreme
where mu has no data) and keep the best of SCREENED draws. From there L-BFGS-B climbs (finite-difference
gradients) and Powell's derivative-free method polishes. Each start draws its size (1-4 states, 1-5
agents, 2-3 actions), small ones more often. Starts are deterministic given the seed and the start
index; a time budget only decides how many run.

A violation is shrunk (the smallest size that violates; probabilities rounded to fractions with
the smallest denominator that still violates) and verified in exact rational arithmetic.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from fractions import Fraction
from math import prod
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from .claims import CORRELATED, Claim
from .instances import COUNTEREXAMPLE_DIR, Instance
from .lemmas import ROUNDOFF
from .quantities import Problem, Quantities

PACKAGE_DIR = Path(__file__).resolve().parent
WORST_DIR = PACKAGE_DIR / "worst"
RECORD_PATH = PACKAGE_DIR / "search_record.json"

#: Below this right side a ratio measures round-off: the score is the margin ``lhs - rhs`` scaled by it, or 0
#: when the left side vanishes too.
RATIO_FLOOR = 1e-6
GAMMA_MAX = 0.99
LOGIT_BOUND = 30.0
FAMILIES = (
    "random",
    "deterministic",
    "absorbing",
    "single-deviator",
    "small-deviation",
    "gamma-near-0",
    "gamma-near-1",
    "lemma1-tight",
    "deviation-count",
    "off-support",
    "vertex-climb",
)
#: Evaluations of the discrete climb over deterministic instances that starts a "vertex-climb" start.
VERTEX_STEPS = 300
#: Instance sizes searched, smallest first: (states, action sizes).
SIZES = tuple(
    (S, (A,) * n)
    for S, n, A in sorted(
        ((S, n, A) for S in range(1, 5) for n in range(1, 6) for A in (2, 3) if A**n <= 32),
        key=lambda size: (size[0] * size[2] ** size[1] * size[0], size),
    )
)


#: Random points of a start's family screened before the local search starts from the best of them.
SCREENED = 48
#: Sizes are drawn with probability proportional to 1/sqrt(states x joint actions): small ones more often.
SIZE_WEIGHTS = np.array([1.0 / np.sqrt(S * prod(sizes)) for S, sizes in SIZES])
SIZE_WEIGHTS = SIZE_WEIGHTS / SIZE_WEIGHTS.sum()


def scores(lhs, rhs, equality: bool) -> np.ndarray:
    """What the searches maximize, elementwise: ``lhs / rhs`` (``lhs - rhs`` for an identity, or below
    RATIO_FLOOR, where a ratio would measure round-off; 0 when both sides vanish)."""
    lhs, rhs = np.broadcast_arrays(np.asarray(lhs, dtype=float), np.asarray(rhs, dtype=float))
    if equality:
        return lhs - rhs
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = lhs / np.where(rhs > RATIO_FLOOR, rhs, 1.0)
    small = np.where(lhs <= RATIO_FLOOR, 0.0, 1.0 + (lhs - rhs) / RATIO_FLOOR)
    return np.where(rhs > RATIO_FLOOR, ratio, small)


def score(lhs: float, rhs: float, equality: bool) -> float:
    """:func:`scores` of one instance."""
    return float(scores(lhs, rhs, equality))


def violated(lhs: float, rhs: float) -> bool:
    """``lhs > rhs`` beyond the floating-point allowance of :data:`bounds.ROUNDOFF`."""
    return lhs > rhs + ROUNDOFF * (1.0 + abs(rhs))


@dataclass(frozen=True)
class Layout:
    """Where each part of an instance lives in the parameter vector, for one size and one claim."""

    n_states: int
    action_sizes: tuple[int, ...]
    correlated: bool
    q_hat_space: str | None  # "lipschitz", "free" or None (the claim does not read Q_hat)
    slices: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        S, J, n = self.n_states, prod(self.action_sizes), len(self.action_sizes)
        parts = [("gamma", (1,)), ("P", (S, J, S)), ("R", (S, J)), ("d0", (S,))]
        parts += [(f"pi{i}", (S, A)) for i, A in enumerate(self.action_sizes)]
        parts += [("mu", (S, J))] if self.correlated else [(f"mu{i}", (S, A)) for i, A in enumerate(self.action_sizes)]
        parts += [("weights", (S, n))]
        if self.q_hat_space is not None:
            parts += [("q_offset", (1,)), ("q_hat", (S, J))]
        start = 0
        for name, shape in parts:
            size = int(np.prod(shape))
            self.slices[name] = (slice(start, start + size), shape)
            start += size

    @property
    def dim(self) -> int:
        return max(s.stop for s, _ in self.slices.values())

    def bounds(self) -> list[tuple[float, float]]:
        out = [(-LOGIT_BOUND, LOGIT_BOUND)] * self.dim
        for name, box in (("gamma", (0.0, GAMMA_MAX)), ("R", (-1.0, 1.0)), ("q_offset", (-2.0, 2.0))):
            if name in self.slices:
                part = self.slices[name][0]
                out[part] = [box] * (part.stop - part.start)
        if "q_hat" in self.slices:
            part = self.slices["q_hat"][0]
            width = 1.0 if self.q_hat_space == "lipschitz" else 10.0
            out[part] = [(-width, width)] * (part.stop - part.start)
        return out

    def part(self, theta: np.ndarray, name: str) -> np.ndarray:
        where, shape = self.slices[name]
        return theta[where].reshape(shape)

    def instance(self, theta: np.ndarray, subset: tuple[int, ...]) -> Instance:
        """The instance at ``theta`` (validated by the tabular engine's constructors)."""
        from tabular import DecMDP, FactorizedPolicy, JointPolicy

        S, sizes = self.n_states, self.action_sizes
        gamma = float(np.clip(self.part(theta, "gamma")[0], 0.0, GAMMA_MAX))
        P = _softmax(self.part(theta, "P")).reshape(S, *sizes, S)
        mdp = DecMDP(P, self.part(theta, "R").reshape(S, *sizes), _softmax(self.part(theta, "d0")), gamma)
        pi = FactorizedPolicy([_softmax(self.part(theta, f"pi{i}")) for i in range(len(sizes))])
        if self.correlated:
            mu = JointPolicy(_softmax(self.part(theta, "mu")).reshape(S, *sizes))
        else:
            mu = FactorizedPolicy([_softmax(self.part(theta, f"mu{i}")) for i in range(len(sizes))])
        v_max = 1.0 / (1.0 - gamma)
        if self.q_hat_space is None:
            q_hat = np.zeros((S, *sizes))
        else:
            q_hat = v_max * (self.part(theta, "q_offset")[0] + self.part(theta, "q_hat")).reshape(S, *sizes)
        return Instance(mdp, mu, pi, subset, q_hat, _softmax(self.part(theta, "weights")))


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def layout_for(claim: Claim, n_states: int, action_sizes, outside_assumption: bool = False) -> Layout:
    q_hat_space = None
    if claim.reads_q_hat:
        q_hat_space = "free" if (outside_assumption or not claim.q_hat_lipschitz) else "lipschitz"
    return Layout(n_states, tuple(action_sizes), claim.behavior == CORRELATED, q_hat_space)


def starting_point(layout: Layout, family: str, rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, ...]]:
    """A start of ``family``: the parameter vector and the subset of deviating agents."""
    theta = rng.normal(size=layout.dim)
    n, S = len(layout.action_sizes), layout.n_states
    lo, hi = np.array(layout.bounds()).T
    theta = np.clip(theta, lo, hi)

    def put(name, value):
        theta[layout.slices[name][0]] = np.ravel(value)

    put("gamma", rng.uniform(0.0, GAMMA_MAX))
    put("R", rng.uniform(-1, 1, size=layout.part(theta, "R").shape))
    if "q_hat" in layout.slices:
        put("q_offset", rng.uniform(-1, 1))
        width = 1.0 if layout.q_hat_space == "lipschitz" else 3.0
        put("q_hat", rng.uniform(-width, width, size=layout.part(theta, "q_hat").shape))
    mu_names = ["mu"] if layout.correlated else [f"mu{i}" for i in range(n)]

    def behavior_plays_action_0():
        # every agent's action 0 (joint action 0 for a correlated mu), with probability ~1
        for name in mu_names:
            first = np.full(layout.part(theta, name).shape, -12.0)
            first.reshape(S, -1)[:, 0] = 12.0
            put(name, first)

    if family == "deterministic":
        for name in [f"pi{i}" for i in range(n)] + mu_names + ["P"]:
            put(name, 12.0 * (layout.part(theta, name) == layout.part(theta, name).max(axis=-1, keepdims=True)))
    elif family == "absorbing":
        P = rng.normal(size=layout.part(theta, "P").shape)
        for s in range(S // 2, S):
            P[s] = -12.0
            P[s, :, s] = 12.0
        put("P", P)
        put("d0", np.where(np.arange(S) == 0, 12.0, -12.0))
    elif family in ("single-deviator", "small-deviation") and not layout.correlated:
        deviator = int(rng.integers(n))
        for i in range(n):
            base = layout.part(theta, f"mu{i}")
            if family == "small-deviation":
                put(f"pi{i}", base + 0.01 * rng.normal(size=base.shape))
            elif i != deviator:
                put(f"pi{i}", base)
    elif family == "gamma-near-0":
        put("gamma", rng.uniform(0.0, 0.05))
    elif family == "gamma-near-1":
        put("gamma", rng.uniform(0.95, GAMMA_MAX))
    elif family == "lemma1-tight":
        # state 0 keeps mu there; any deviation moves to an absorbing last state: W1 -> gamma/(1-gamma) sum TV
        P = np.full(layout.part(theta, "P").shape, -12.0)
        P[:, :, -1] = 0.0
        P[0, 0, 0], P[0, 0, -1] = 12.0, -12.0
        P[-1, :, -1] = 12.0
        put("P", P)
        put("d0", np.where(np.arange(S) == 0, 12.0, -12.0))
        behavior_plays_action_0()
        for i in range(n):
            put(f"pi{i}", np.where(np.arange(layout.action_sizes[i]) == 0, 3.0, -3.0)[None].repeat(S, axis=0))
        put("gamma", rng.uniform(0.5, GAMMA_MAX))
    elif family == "deviation-count":
        # mu plays action 0; where the chain goes depends only on how many agents deviate, the structure
        # that separates pi (all deviate at once) from the mixtures pi^(K) of a few deviating agents
        counts = (np.indices(layout.action_sizes).reshape(n, -1) != 0).sum(axis=0)  # [J]
        by_count = 6.0 * rng.normal(size=(S, n + 1, S))
        put("P", by_count[:, counts, :])
        put("d0", np.where(np.arange(S) == 0, 12.0, -12.0))
        behavior_plays_action_0()
        for i in range(n):
            put(f"pi{i}", rng.normal(scale=3.0, size=layout.part(theta, f"pi{i}").shape))
        put("weights", 6.0 * rng.normal(size=layout.part(theta, "weights").shape))
        put("gamma", rng.uniform(0.5, GAMMA_MAX))
    elif family == "off-support":
        # mu never plays anything but action 0, pi sometimes does, and Q_hat is extreme exactly where mu
        # has no data: the in-distribution error cannot see it
        behavior_plays_action_0()
        for i in range(n):
            put(f"pi{i}", rng.normal(scale=2.0, size=layout.part(theta, f"pi{i}").shape))
        if "q_hat" in layout.slices:
            width = layout.bounds()[layout.slices["q_hat"][0].start][1]
            extreme = width * rng.choice([-1.0, 1.0], size=layout.part(theta, "q_hat").shape)
            extreme[:, 0] = rng.uniform(-1, 1, size=S)
            put("q_hat", extreme)
            put("q_offset", 0.0)
    if family == "single-deviator":
        subset = (int(rng.integers(n)),)
    elif rng.random() < 0.5:
        subset = tuple(range(n))
    else:
        subset = tuple(int(i) for i in np.flatnonzero(rng.random(n) < 0.5))
    return np.clip(theta, lo, hi), subset


def vertex_climb(claim: Claim, layout: Layout, rng: np.random.Generator, steps: int = VERTEX_STEPS):
    """A hill climb over deterministic instances: every distribution a point mass, gamma, R and Q_hat on a grid.

    Many extremes of these inequalities sit at such vertices, where softmax gradients vanish and a
    continuous search cannot move. One move re-draws one row (one ``P(.|s, a)``, one ``pi_i(.|s)``, the
    SPaCQL weights of one state, ...) or one grid value; moves that do not lower the score are kept, so
    the climb also walks along plateaus. Returns the best vertex (logits +-12), the same point with
    logits at +-4 (where the continuous search that follows still has gradients), and the subset.
    """
    rows = []  # (part name, row index, number of choices) of every distribution row
    for name, (_, shape) in layout.slices.items():
        if name in ("gamma", "R", "q_offset", "q_hat"):
            continue
        width = shape[-1]
        rows += [(name, r, width) for r in range(int(np.prod(shape[:-1])))]
    grids = {"gamma": [0.0, 0.5, 0.9, GAMMA_MAX], "R": [-1.0, 0.0, 1.0], "q_hat": [-1.0, 0.0, 1.0]}
    grid_parts = [
        (name, k)
        for name in grids
        if name in layout.slices
        for k in range(layout.slices[name][0].stop - layout.slices[name][0].start)
    ]
    if "q_hat" in layout.slices:
        scale = layout.bounds()[layout.slices["q_hat"][0].start][1]
        grids["q_hat"] = [-scale, 0.0, scale]
    n = len(layout.action_sizes)

    def draw():
        choice = {(name, r): int(rng.integers(width)) for name, r, width in rows}
        grid = {(name, k): float(rng.choice(grids[name])) for name, k in grid_parts}
        subset = tuple(range(n)) if rng.random() < 0.5 else tuple(int(i) for i in np.flatnonzero(rng.random(n) < 0.5))
        return choice, grid, subset

    def point(logit: float) -> np.ndarray:
        theta = np.zeros(layout.dim)
        for name, r, width in rows:
            where = layout.slices[name][0]
            block = theta[where].reshape(-1, width)
            block[r] = -logit
            block[r, choice[(name, r)]] = logit
            theta[where] = block.ravel()
        for (name, k), value in grid.items():
            theta[layout.slices[name][0].start + k] = value
        return theta

    # the climb starts from the best of SCREENED random vertices
    screened = []
    for _ in range(SCREENED):
        choice, grid, subset = draw()
        screened.append((_safe_score(claim, layout, point(12.0), subset), choice, grid, subset))
    current, choice, grid, subset = max(screened, key=lambda item: item[0])
    for _ in range(steps):
        if grid_parts and rng.random() < 0.25:
            key = grid_parts[int(rng.integers(len(grid_parts)))]
            old, grid[key] = grid[key], float(rng.choice(grids[key[0]]))
            value = _safe_score(claim, layout, point(12.0), subset)
            if value < current:
                grid[key] = old
                continue
        else:
            name, r, width = rows[int(rng.integers(len(rows)))]
            old = choice[(name, r)]
            choice[(name, r)] = int(rng.integers(width))
            value = _safe_score(claim, layout, point(12.0), subset)
            if value < current:
                choice[(name, r)] = old
                continue
        current = value
    return point(12.0), point(4.0), subset


@dataclass
class Best:
    """The worst instance found so far for one claim (largest score)."""

    score: float = -np.inf
    lhs: float = float("nan")
    rhs: float = float("nan")
    theta: np.ndarray | None = None
    layout: Layout | None = None
    subset: tuple[int, ...] = ()
    family: str = ""
    start: int = -1
    violating: list = field(default_factory=list)  # (size key, start, theta, layout, subset) of each violation

    def instance(self) -> Instance:
        return self.layout.instance(self.theta, self.subset)


def _evaluate(claim: Claim, layout: Layout, theta: np.ndarray, subset) -> tuple[float, float]:
    q = Quantities(Problem.from_instance(layout.instance(theta, subset)))
    lhs, rhs = claim.evaluate(q)
    return float(lhs), float(rhs)


def _safe_score(claim: Claim, layout: Layout, theta: np.ndarray, subset) -> float:
    try:
        value = score(*_evaluate(claim, layout, theta, subset), claim.equality)
    except (ValueError, np.linalg.LinAlgError, ZeroDivisionError):
        return -np.inf
    return value if np.isfinite(value) else -np.inf


def local_climb(claim: Claim, layout: Layout, theta0: np.ndarray, subset, budget: int) -> list:
    """L-BFGS-B (finite differences) from ``theta0``, then Powell; every point seen as (score, lhs, rhs, theta)."""
    seen = []

    def objective(theta):
        try:
            lhs, rhs = _evaluate(claim, layout, theta, subset)
        except (ValueError, np.linalg.LinAlgError, ZeroDivisionError):
            return 0.0
        value = score(lhs, rhs, claim.equality)
        if not np.isfinite(value):
            return 0.0
        seen.append((value, lhs, rhs, theta.copy()))
        return -value

    bounds = layout.bounds()
    result = minimize(objective, theta0, method="L-BFGS-B", bounds=bounds, options={"maxfun": budget})
    minimize(objective, result.x, method="Powell", bounds=bounds, options={"maxfev": budget // 3, "xtol": 1e-6})
    return seen


def search_claim(
    claim: Claim,
    *,
    budget_s: float | None = None,
    starts: int | None = None,
    seed: int = 0,
    outside_assumption: bool = False,
    max_fun: int = 4000,
    size: tuple | None = None,
    first_start: int = 0,
) -> tuple[Best, int, int]:
    """Maximize ``claim``'s score from successive starts until ``budget_s`` seconds or ``starts`` starts.

    ``size`` = (states, action sizes) fixes the size instead of drawing one per start. Returns the
    best point, the number of starts run and the number of instances evaluated.
    """
    if budget_s is None and starts is None:
        raise ValueError("budget_s: give a time budget or a number of starts")
    best, evaluations, start = Best(), 0, first_start
    deadline = None if budget_s is None else time.monotonic() + budget_s
    while (starts is None or start < first_start + starts) and (deadline is None or time.monotonic() < deadline):
        rng = np.random.default_rng([seed, start, 7 if outside_assumption else 3])
        n_states, sizes = size or SIZES[int(rng.choice(len(SIZES), p=SIZE_WEIGHTS))]
        # every other start climbs over deterministic instances; the others cycle through the families
        family = "vertex-climb" if start % 2 == 0 else FAMILIES[(start // 2) % (len(FAMILIES) - 1)]
        layout = layout_for(claim, n_states, sizes, outside_assumption)
        if family == "vertex-climb":
            vertex, theta0, subset = vertex_climb(claim, layout, rng)
            evaluations += VERTEX_STEPS
        else:
            candidates = [starting_point(layout, family, rng) for _ in range(SCREENED)]
            theta0, subset = max(candidates, key=lambda c: _safe_score(claim, layout, *c))
            evaluations += SCREENED
        seen = []
        if family == "vertex-climb":
            value = _safe_score(claim, layout, vertex, subset)
            if np.isfinite(value):
                seen.append((value, *_evaluate(claim, layout, vertex, subset), vertex))
        budget = max(50, min(max_fun, (5 if family == "vertex-climb" else 15) * (layout.dim + 1)))
        seen += local_climb(claim, layout, theta0, subset, budget)
        evaluations += len(seen)
        if seen:
            value, lhs, rhs, theta = max(seen, key=lambda item: item[0])
            if value > best.score:
                best = Best(value, lhs, rhs, theta, layout, subset, family, start, best.violating)
            if violated(lhs, rhs):
                best.violating.append(((n_states, sizes), start, theta, layout, subset))
        start += 1
    return best, start - first_start, evaluations


# --- shrinking and exact verification ------------------------------------------------------------

DENOMINATORS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 25, 32, 50, 64, 100, 1000, 10_000)


def _round_distribution(row: np.ndarray, denominator: int) -> list[Fraction]:
    """``row`` rounded to multiples of ``1/denominator`` that still sum to exactly 1 (largest entry absorbs)."""
    fractions = [Fraction(round(float(p) * denominator), denominator) for p in row]
    fractions[int(np.argmax(row))] += 1 - sum(fractions)
    return fractions


def _round_value(x: float, denominator: int, low=None, high=None) -> Fraction:
    value = Fraction(round(float(x) * denominator), denominator)
    if low is not None:
        value = max(value, low)
    if high is not None:
        value = min(value, high)
    return value


def rounded_json(instance: Instance, denominator: int) -> dict | None:
    """The instance with every number a fraction of denominator ``denominator`` (``"p/q"`` strings), or None."""

    def distributions(array):
        flat = np.asarray(array, dtype=float).reshape(-1, np.shape(array)[-1])
        rows = [_round_distribution(row, denominator) for row in flat]
        if any(p < 0 for row in rows for p in row):
            return None
        return np.array(rows, dtype=object).reshape(np.shape(array))

    data = instance.to_json()
    gamma = _round_value(data["gamma"], denominator, Fraction(0), Fraction(99, 100))
    parts = {
        "P": distributions(data["P"]),
        "d0": distributions(data["d0"]),
        "pi": [distributions(f) for f in data["pi"]],
        "weights": distributions(data["weights"]),
    }
    mu = data["mu"]
    parts["mu"] = (
        {"factors": [distributions(f) for f in mu["factors"]]}
        if "factors" in mu
        else {"joint": distributions(mu["joint"])}
    )
    flat = [parts["P"], parts["d0"], *parts["pi"], parts["weights"], *parts["mu"].get("factors", [])]
    if any(p is None for p in flat) or parts["mu"].get("joint", 0) is None:
        return None
    R = np.vectorize(lambda x: _round_value(x, denominator, Fraction(-1), Fraction(1)), otypes=[object])(
        np.array(data["R"])
    )
    q_hat = np.vectorize(lambda x: _round_value(x, denominator), otypes=[object])(np.array(data["q_hat"]))

    def text(array):
        return np.vectorize(str, otypes=[object])(np.asarray(array, dtype=object)).tolist()

    return {
        "P": text(parts["P"]),
        "R": text(R),
        "d0": text(parts["d0"]),
        "gamma": str(gamma),
        "mu": {
            key: ([text(f) for f in value] if key == "factors" else text(value)) for key, value in parts["mu"].items()
        },
        "pi": [text(f) for f in parts["pi"]],
        "subset": list(instance.subset),
        "q_hat": text(q_hat),
        "weights": text(parts["weights"]),
    }


def exact_sides(claim: Claim, exact_data: dict) -> tuple[Fraction, Fraction]:
    """``(lhs, rhs)`` of ``claim`` in exact rational arithmetic."""
    return claim.evaluate(Quantities(Problem.from_json(exact_data, exact=True)))


def satisfies_assumptions(claim: Claim, exact_data: dict) -> bool:
    """Whether an exact instance lies inside the claim's assumptions (a product mu, a Lipschitz Q_hat)."""
    if claim.behavior != CORRELATED and "factors" not in exact_data["mu"]:
        return False
    if claim.q_hat_lipschitz:
        q = Quantities(Problem.from_json(exact_data, exact=True))
        return q.q_hat_range <= 2 / (1 - q.gamma)
    return True


def exact_counterexample(
    claim: Claim, instance: Instance, inside: bool = True
) -> tuple[dict, Fraction, Fraction] | None:
    """Round ``instance`` to the simplest fractions that still violate ``claim`` exactly, or None.

    ``inside``: the rounded instance must satisfy the claim's assumptions; otherwise it must not.
    """
    for denominator in DENOMINATORS:
        data = rounded_json(instance, denominator)
        if data is None or satisfies_assumptions(claim, data) != inside:
            continue
        try:
            lhs, rhs = exact_sides(claim, data)
        except (ValueError, ZeroDivisionError):
            continue
        if lhs > rhs:
            return data, lhs, rhs
    return None


def float_json(exact_data: dict) -> dict:
    """The exact JSON with every ``"p/q"`` string replaced by its float."""

    def convert(value):
        if isinstance(value, list):
            return [convert(v) for v in value]
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, str):
            return float(Fraction(value))
        return value

    return {key: (value if key == "subset" else convert(value)) for key, value in exact_data.items()}


def size_key(data: dict) -> tuple:
    """(states, agents, total actions, largest denominator): what "smaller" means for a counterexample."""
    P = np.array(data["P"], dtype=object)
    sizes = P.shape[1:-1]

    def denominators(value):
        if isinstance(value, list):
            return max((denominators(v) for v in value), default=1)
        if isinstance(value, dict):
            return max((denominators(v) for v in value.values()), default=1)
        return Fraction(value).denominator if isinstance(value, str) else 1

    return (P.shape[0], len(sizes), sum(sizes), denominators({k: v for k, v in data.items() if k != "subset"}))


def write_json(path: Path, payload: dict) -> None:
    """Write ``payload`` atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(payload, indent=1) + "\n")
    os.replace(temporary, path)


def store_counterexample(
    claim: Claim,
    exact_data: dict,
    lhs: Fraction,
    rhs: Fraction,
    origin: str,
    directory: Path = COUNTEREXAMPLE_DIR,
    inside: bool = True,
) -> Path:
    """Save an exactly verified counterexample in ``directory`` unless a smaller one is there.

    ``inside=False``: an instance outside the claim's Q_hat assumption, showing that the claim needs it
    (``<name>-outside-assumption.json``).
    """
    name = (claim.counterexample or f"{claim.name}.json") if inside else f"{claim.name}-outside-assumption.json"
    path = directory / name
    if path.is_file():
        try:
            existing = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            existing = {}  # a damaged file is replaced by the verified instance
        if "exact" in existing and size_key(existing["exact"]) <= size_key(exact_data):
            return path
    S, sizes = len(exact_data["P"]), np.array(exact_data["P"], dtype=object).shape[1:-1]
    where = "" if inside else " outside its assumption (max Q_hat - min Q_hat > 2/(1-gamma))"
    note = (
        f"Violates {claim.name}{where} ({claim.statement}): {S} state(s), "
        f"{len(sizes)} agent(s) with {list(sizes)} actions, "
        f"gamma = {exact_data['gamma']}; exact lhs = {lhs} > rhs = {rhs}. Found by the search ({origin})."
    )
    payload = {
        "note": note,
        "claim": claim.name,
        "lhs": str(lhs),
        "rhs": str(rhs),
        "exact": exact_data,
        "instance": float_json(exact_data),
    }
    write_json(path, payload)
    return path


# --- the whole search: every claim, a record in the repo -----------------------------------------


def json_number(x: float):
    """A float for JSON: ``None`` for NaN, ``"inf"`` / ``"-inf"`` for infinities."""
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return None
    return float(x) if np.isfinite(x) else ("inf" if x > 0 else "-inf")


def _ratio(lhs: float, rhs: float, equality: bool):
    if equality or rhs <= RATIO_FLOOR:
        return None if not violated(lhs, rhs) else float("inf")
    return lhs / rhs


def _summary(claim: Claim, best: Best, starts: int, evaluations: int) -> dict:
    size = None if best.layout is None else [best.layout.n_states, list(best.layout.action_sizes)]
    return {
        "starts": starts,
        "evaluations": evaluations,
        "worst_ratio": json_number(_ratio(best.lhs, best.rhs, claim.equality)) if best.layout else None,
        "worst_excess": json_number(best.lhs - best.rhs) if best.layout else None,
        "lhs": json_number(best.lhs),
        "rhs": json_number(best.rhs),
        "family": best.family,
        "start": best.start,
        "size": size,
        "violated": bool(best.violating),
    }


def repo_relative(path: Path) -> str:
    """``path`` relative to the repository root (as the record stores it), or as it is outside it."""
    try:
        return str(path.relative_to(PACKAGE_DIR.parent))
    except ValueError:
        return str(path)


def _save_worst(claim: Claim, best: Best, worst_dir: Path, suffix: str = "") -> str | None:
    if best.layout is None:
        return None
    path = worst_dir / f"{claim.name}{suffix}.json"
    note = (
        f"The search's worst instance for {claim.name}{' outside its Q_hat assumption' if suffix else ''}: "
        f"lhs = {best.lhs:.6g}, rhs = {best.rhs:.6g}, family {best.family}, start {best.start}."
    )
    write_json(path, {"note": note, "claim": claim.name, "instance": best.instance().to_json()})
    return repo_relative(path)


def _smaller_first(size) -> tuple:
    n_states, sizes = size
    return (n_states, len(sizes), sum(sizes))


def _shrink_and_store(claim: Claim, best: Best, seed: int, counterexample_dir: Path, inside: bool = True) -> str | None:
    """Store the smallest exactly verified counterexample; its path, or None.

    Every size smaller than the smallest violation found is searched again, one start per family,
    smallest first; the first exactly verified violation (after rounding) is stored.
    """
    violations = sorted(best.violating, key=lambda v: _smaller_first(v[0]))
    if not violations:
        return None
    smallest = _smaller_first(violations[0][0])
    for size in sorted((s for s in SIZES if _smaller_first(s) < smallest), key=_smaller_first):
        retry, _, _ = search_claim(claim, starts=len(FAMILIES), seed=seed + 1, size=size, outside_assumption=not inside)
        violations = sorted(retry.violating, key=lambda v: _smaller_first(v[0])) + violations
        if retry.violating:
            break
    for _, start, theta, layout, subset in violations:
        found = exact_counterexample(claim, layout.instance(theta, subset), inside)
        if found is not None:
            data, lhs, rhs = found
            path = store_counterexample(claim, data, lhs, rhs, f"start {start}", counterexample_dir, inside)
            return repo_relative(path)
    return None


def search_one(args) -> tuple[str, dict]:
    """Search one claim (inside its assumptions, and outside them when it has one); the record entry."""
    from .claims import BY_NAME

    name, budget_s, seed, worst_dir, counterexample_dir = args
    claim = BY_NAME[name]
    outside_share = 0.4 if claim.q_hat_lipschitz else 0.0
    best, starts, evaluations = search_claim(claim, budget_s=budget_s * (1 - outside_share), seed=seed)
    entry = {"budget_s": budget_s, "seed": seed, **_summary(claim, best, starts, evaluations)}
    entry["worst_instance"] = _save_worst(claim, best, worst_dir)
    entry["counterexample"] = _shrink_and_store(claim, best, seed, counterexample_dir) if best.violating else None
    if outside_share:
        outside, starts, evaluations = search_claim(
            claim, budget_s=budget_s * outside_share, seed=seed, outside_assumption=True
        )
        entry["outside_assumption"] = _summary(claim, outside, starts, evaluations)
        entry["outside_assumption"]["worst_instance"] = _save_worst(claim, outside, worst_dir, "-outside-assumption")
        # an exact instance outside the assumption matters only for a claim that holds inside it
        needs_assumption = outside.violating and not best.violating
        entry["outside_assumption"]["counterexample"] = (
            _shrink_and_store(claim, outside, seed, counterexample_dir, inside=False) if needs_assumption else None
        )
    return claim.name, entry


class RecordError(ValueError):
    """A record file that cannot be read (damaged JSON, or not a record)."""


#: Where a search keeps its own worst instances until its record is accepted (``<worst_dir>/.pending``).
PENDING = ".pending"


def pending_record_path(record_path: Path) -> Path:
    """The record a running search writes, next to the committed one (``search_record.pending.json``)."""
    return record_path.with_name(f"{record_path.stem}.pending{record_path.suffix}")


def stronger_or_equal(new: dict, old: dict | None) -> bool:
    """Whether a continuous-search entry may replace ``old``: no old entry, or a budget at least as large."""
    return old is None or float(new.get("budget_s", 0.0)) >= float(old.get("budget_s", 0.0))


def _die_with_parent(parent_pid: int) -> None:
    """Pool initializer: the worker exits once its parent is gone (a killed search leaves no worker behind)."""
    import threading

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _move_worst(entry: dict, staging: Path, worst_dir: Path) -> None:
    """Move an accepted entry's worst instances from ``staging`` into ``worst_dir``; rewrite their paths."""
    for part in (entry, entry.get("outside_assumption") or {}):
        if part.get("worst_instance"):
            source = staging / Path(part["worst_instance"]).name
            target = worst_dir / source.name
            if source.is_file():
                os.replace(source, target)
            part["worst_instance"] = repo_relative(target)


def _drop_worst(entry: dict, staging: Path) -> None:
    for part in (entry, entry.get("outside_assumption") or {}):
        if part.get("worst_instance"):
            (staging / Path(part["worst_instance"]).name).unlink(missing_ok=True)


def run_search(
    claims: list[Claim],
    budget_s: float,
    seed: int = 0,
    workers: int = 2,
    record_path: Path | None = None,
    resume: bool = False,
    progress=None,
    worst_dir: Path | None = None,
    counterexample_dir: Path | None = None,
    replace: bool = False,
    notes: list | None = None,
) -> dict:
    """Search every claim, ``budget_s`` seconds in all over ``workers`` processes; merge into the record.

    The committed record (``bounds/search_record.json``) is a result, not a scratch file: the search
    writes its own record next to it (:func:`pending_record_path`, rewritten atomically after each claim)
    and its worst instances under ``<worst_dir>/.pending``. Only when every claim is done does it merge, claim
    by claim: an entry replaces the committed one when its budget is at least as large
    (:func:`stronger_or_equal`) or with ``replace``; otherwise the committed entry and worst instance stay,
    and ``notes`` says so. A killed search leaves the committed record as it was; ``resume`` continues its
    own record, whatever budget it was run with, and says what it kept. ``replace`` also rebuilds a damaged
    committed record from scratch. Exact counterexamples are stored as found (a smaller one is kept).
    """
    from multiprocessing import get_context

    if not (np.isfinite(budget_s) and budget_s > 0):
        raise ValueError(f"budget_s: must be finite and positive, got {budget_s}")
    notes = [] if notes is None else notes
    record_path = RECORD_PATH if record_path is None else Path(record_path)
    worst_dir = WORST_DIR if worst_dir is None else Path(worst_dir)
    counterexample_dir = COUNTEREXAMPLE_DIR if counterexample_dir is None else Path(counterexample_dir)
    staging = worst_dir / PENDING
    try:
        committed = load_record(record_path)
    except RecordError as error:
        if not replace:
            raise
        notes.append(f"rebuilding the record from scratch: {error}")
        committed = {"claims": {}}
    pending_path = pending_record_path(record_path)
    pending_claims = {}
    if resume and pending_path.is_file():
        # every finished entry of the unfinished search is kept and merged, requested now or not
        pending_claims = dict(load_record(pending_path).get("claims", {}))
        budgets = sorted({float(v.get("budget_s", 0.0)) for v in pending_claims.values()})
        notes.append(
            f"resume: kept {len(pending_claims)} claim(s) of the unfinished search in {pending_path.name}"
            + (f" (per-claim budgets {', '.join(f'{b:.3g} s' for b in budgets)})" if budgets else "")
        )
    per_claim = budget_s * workers / max(1, len(claims))
    pending = {"budget_s": budget_s, "seed": seed, "workers": workers, "claims": pending_claims}
    jobs = [(c.name, per_claim, seed, staging, counterexample_dir) for c in claims if c.name not in pending_claims]
    if not resume and pending_path.is_file():
        notes.append(f"discarded the unfinished search in {pending_path.name} (--resume continues one)")
        pending_path.unlink()
        shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True, exist_ok=True)
    with get_context("spawn").Pool(workers, initializer=_die_with_parent, initargs=(os.getpid(),)) as pool:
        for name, entry in pool.imap_unordered(search_one, jobs):
            pending["claims"][name] = entry
            write_json(pending_path, pending)
            if progress is not None:
                progress(name, entry)
    merged = dict(committed)
    merged_claims = dict(committed.get("claims", {}))
    for name, entry in pending["claims"].items():
        old = merged_claims.get(name)
        if replace or stronger_or_equal(entry, old):
            _move_worst(entry, staging, worst_dir)
            merged_claims[name] = entry
        else:
            _drop_worst(entry, staging)
            notes.append(
                f"{name}: kept the committed entry (budget {old.get('budget_s')} s > {entry.get('budget_s')} s; "
                "--replace to overwrite it)"
            )
    if replace or not committed.get("claims"):
        merged.update(budget_s=budget_s, seed=seed, workers=workers)
    merged["claims"] = dict(sorted(merged_claims.items(), key=lambda kv: _order(claims, kv[0])))
    write_json(record_path, merged)
    pending_path.unlink(missing_ok=True)
    shutil.rmtree(staging, ignore_errors=True)  # whatever no accepted entry names
    return merged


def _order(claims: list[Claim], name: str) -> int:
    names = [claim.name for claim in claims]
    return names.index(name) if name in names else len(names)


def load_record(path: Path | None = None) -> dict:
    """The last recorded search (an empty record when none is stored); a damaged file is a :class:`RecordError`."""
    path = RECORD_PATH if path is None else Path(path)
    if not path.is_file():
        return {"claims": {}}
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RecordError(
            f"{path}: damaged record ({error}); restore it (git checkout -- {path.name}) or rebuild it with --replace"
        ) from None
    if not isinstance(record, dict) or not isinstance(record.get("claims", {}), dict):
        raise RecordError(f"{path}: not a search record (no 'claims' table); restore it or rebuild it with --replace")
    return record
