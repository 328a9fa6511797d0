"""Exhaustive search over the vertices of the instance space, up to symmetry.

At a *vertex* every distribution is a point mass (each ``P(.|s, a)``, ``d0``, ``pi_i(.|s)``, ``mu_i(.|s)``
and the SPaCQL weights ``w(s)`` on one ``k``), the rewards are ``+-1`` and ``Q_hat`` is ``+-1/(1-gamma)``
(the edge of Theorem 1's Lipschitz set); what is left is ``gamma``. Random draws and smooth local
searches almost never land on these thin sets, and many extremes of the claims sit there.

The enumeration is reduced soundly, by symmetries of a finite Dec-MDP that map every claim to itself:

* each agent's actions relabeled *per state*: a deterministic ``mu_i`` plays action 0 everywhere, and a
  deterministic ``pi_i(.|s)`` plays 0 (no deviation) or 1 (a deviation);
* the states relabeled: ``d0`` is the point mass on state 0, and the other states may be permuted;
* the agents permuted (only for claims that do not follow the agents' order, and not the mixing agent
  of a mixed behavior);
* only the rows of ``P`` that some policy of the instance plays are enumerated (the joint actions whose
  every ``a_i`` is in the support of ``mu_i(.|s)`` or is ``pi_i(s)``: every mixture ``pi^(K)``, ``pi``, ``pi_w``,
  ``mu``); the others stay self-loops. Claims that read the rewards see ``Q*``, which maximizes over every
  joint action, so for them every row of ``P``, ``R`` and ``Q_hat`` is enumerated.

A *skeleton* (which agents deviate where, the subset, the weights) is enumerated only in its canonical
form (the smallest encoding in its orbit); every ``P``, ``R``, ``Q_hat`` is then enumerated for it. As each
orbit holds a canonical skeleton and the claims are invariant, the worst ratio over the reduced set is
the worst over all vertices.

Mixed vertices where a claim's assumptions need them: a factorized ``mu`` with one agent mixing
uniformly over two actions, and a correlated ``mu`` under which the agents copy one another (half on
all-0, half on all-1, ``kappa = 1 - 2^(1-n)``... for two agents ``1/2``).

What it does not cover: mixed learned policies ``pi`` (only point masses; the climb from the best vertex
moves into the interior), deviations outside a mixing ``mu``'s support with three actions or more, and
the position of the mixing agent for the ordered claims eq. 49-50 (it is always agent 0). A review found
``lemma2-conditional`` false on exactly such an instance (a mixed ``pi_0 = mu_0`` beside a correlated
``mu`` with small ``kappa``); no enumeration here could have.

Each vertex is evaluated on a grid of ``gamma`` in float, thousands at once (a batch of
:class:`bounds.quantities.Quantities`). The best vertices of each claim are then refined over
``gamma`` (a fine grid, then Brent's bounded method between its neighbors) and evaluated in exact
rational arithmetic at a rational ``gamma`` near the maximum: the recorded worst ratio of a vertex is exact
at that ``gamma``. Where the reduced count is above ``max_vertices`` a seeded sample of ``sample_vertices``
of the reduced set is evaluated instead, stratified by skeleton (each skeleton gets an even share of uniform
draws with replacement, so a few may repeat; skeletons smaller than their share are taken whole), and the
record says so. For an identity (Proposition 1) the recorded ``worst_ratio`` is the largest relative gap.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy.optimize import minimize_scalar

from . import search
from .claims import CORRELATED, Claim
from .quantities import Problem, Quantities, joint_product
from .search import GAMMA_MAX, scores

#: The grid of gamma every vertex is evaluated on (small gammas included: first-order effects live there).
GAMMAS = (0.001, 0.01, 0.03, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
#: Behaviors of a vertex: point masses on action 0; agent 0 mixing over actions 0 and 1 (factorized
#: claims); the agents copying one another (correlated claims).
MU_KINDS = {"factorized": ("deterministic", "one-agent-mixing"), "correlated": ("deterministic", "copying")}
#: Vertices kept per claim and size for the refinement over gamma and the continuous search.
KEEP = 6
#: Sizes enumerated by ``python -m bounds.audit --vertices`` when none are given: (states, agents, actions) ...
DEFAULT_SIZES = ((1, 2, 2), (1, 3, 2), (2, 2, 2), (1, 2, 3), (2, 3, 2), (3, 2, 2))
#: ... and, for the claims that do not read the rewards (no Q*, so only the played rows of P), more agents.
MORE_AGENTS = ((2, 4, 2), (2, 5, 2))

#: Up to this many reduced vertices (per group of claims, size and behavior) all are evaluated ...
MAX_VERTICES = 10_000_000
#: ... above it a uniform sample of this many.
SAMPLE_VERTICES = 200_000
#: Float entries of one evaluated batch (vertices x gammas x the largest table a claim builds).
BATCH_ENTRIES = 4_000_000


def default_sizes(claim: Claim) -> tuple[tuple[int, int, int], ...]:
    """The sizes ``--vertices`` enumerates for ``claim`` by default."""
    return DEFAULT_SIZES if "rewards" in claim.reads else DEFAULT_SIZES + MORE_AGENTS


@dataclass(frozen=True)
class Skeleton:
    """The discrete choices of a vertex that symmetries act on.

    Attributes
    ----------
    deviates : tuple of tuple of int, [n][S]
        ``deviates[i][s] = 1`` when ``pi_i(.|s)`` plays action 1 (a deviation from ``mu``'s action 0).
    subset : tuple of int
    weights : tuple of int, [S]
        ``k(s) - 1``: the weights are the point mass ``w_{k(s)}(s) = 1``.
    """

    deviates: tuple
    subset: tuple
    weights: tuple

    def key(self) -> tuple:
        return (self.deviates, self.subset, self.weights)


@dataclass(frozen=True)
class Space:
    """The reduced vertex set of one claim at one size and one behavior."""

    claim: Claim
    n_states: int
    n_agents: int
    n_actions: int
    mu_kind: str

    @property
    def action_sizes(self) -> tuple[int, ...]:
        return (self.n_actions,) * self.n_agents

    @property
    def n_joint(self) -> int:
        return self.n_actions**self.n_agents

    @property
    def reads(self) -> frozenset:
        return self.claim.reads

    def mu_support(self) -> list[tuple[int, ...]]:
        """The actions ``mu_i`` plays, per agent (the same in every state)."""
        two = (0, 1) if self.n_actions > 1 else (0,)
        if self.mu_kind == "deterministic":
            return [(0,)] * self.n_agents
        if self.mu_kind == "one-agent-mixing":
            return [two] + [(0,)] * (self.n_agents - 1)
        return [two] * self.n_agents  # copying: each marginal is uniform over {0, 1}

    def permutable_agents(self) -> tuple[int, ...]:
        if not self.claim.agent_symmetric:
            return ()
        return tuple(range(1, self.n_agents)) if self.mu_kind == "one-agent-mixing" else tuple(range(self.n_agents))

    # --- skeletons -------------------------------------------------------------------------------

    def skeletons(self, reduce: bool = True) -> list[Skeleton]:
        """Every skeleton, or (``reduce``) one per orbit of the symmetry group: the canonical ones."""
        S, n = self.n_states, self.n_agents
        deviation_choices = (0, 1) if self.n_actions > 1 else (0,)
        subsets = (
            [tuple(c) for k in range(n + 1) for c in itertools.combinations(range(n), k)]
            if "subset" in self.reads
            else [tuple(range(n))]
        )
        weight_choices = list(itertools.product(range(n), repeat=S)) if "weights" in self.reads else [(n - 1,) * S]
        out = []
        for bits in itertools.product(deviation_choices, repeat=n * S):
            deviates = tuple(tuple(bits[i * S : (i + 1) * S]) for i in range(n))
            if self.mu_kind == "one-agent-mixing" and any(deviates[0]):
                continue  # with two actions, both lie in mu_0's support and are symmetric: pi_0 plays 0
            for subset in subsets:
                if "subset" in self.reads and any(any(deviates[i]) for i in range(n) if i not in subset):
                    continue  # a claim on pi^(S) reads pi_i only for i in S: the others may follow mu
                for weights in weight_choices:
                    skeleton = Skeleton(deviates, subset, weights)
                    if not reduce or self._canonical(skeleton):
                        out.append(skeleton)
        return out

    def _images(self, skeleton: Skeleton):
        movable = self.permutable_agents()
        for agent_order in itertools.permutations(movable):
            agent_map = list(range(self.n_agents))
            for source, target in zip(movable, agent_order, strict=True):
                agent_map[source] = target
            for state_order in itertools.permutations(range(1, self.n_states)):
                state_map = [0, *state_order]
                deviates = [[0] * self.n_states for _ in range(self.n_agents)]
                for i in range(self.n_agents):
                    for s in range(self.n_states):
                        deviates[agent_map[i]][state_map[s]] = skeleton.deviates[i][s]
                weights = [0] * self.n_states
                for s in range(self.n_states):
                    weights[state_map[s]] = skeleton.weights[s]
                subset = tuple(sorted(agent_map[i] for i in skeleton.subset))
                yield Skeleton(tuple(map(tuple, deviates)), subset, tuple(weights)), agent_map, state_map

    def _canonical(self, skeleton: Skeleton) -> bool:
        return all(skeleton.key() <= image.key() for image, _, _ in self._images(skeleton))

    # --- the free rows of a skeleton -------------------------------------------------------------

    def free_rows(self, skeleton: Skeleton) -> list[tuple[int, int]]:
        """The (state, joint action) rows of ``P`` enumerated for ``skeleton``."""
        if "rewards" in self.reads:
            return [(s, a) for s in range(self.n_states) for a in range(self.n_joint)]
        support = self.mu_support()
        rows = []
        for s in range(self.n_states):
            choices = [sorted(set(support[i]) | {skeleton.deviates[i][s]}) for i in range(self.n_agents)]
            for actions in itertools.product(*choices):
                rows.append((s, int(np.ravel_multi_index(actions, self.action_sizes))))
        return rows

    def count(self, skeleton: Skeleton) -> int:
        """Vertices of ``skeleton``: next states of the free rows, and the signs of R and Q_hat."""
        rows = len(self.free_rows(skeleton))
        cells = self.n_states * self.n_joint
        signs = (2**cells if "rewards" in self.reads else 1) * (2**cells if "q_hat" in self.reads else 1)
        return self.n_states**rows * signs

    def unreduced_count(self) -> int:
        """Vertices before any reduction: every next state of every row, d0, action of pi_i (and of a deterministic
        mu_i), subset, weight and sign. A mixed behavior counts once (its relabelings are not counted)."""
        S, n, A, J = self.n_states, self.n_agents, self.n_actions, self.n_joint
        count = S ** (S * J) * S * A ** (n * S) * (A ** (n * S) if self.mu_kind == "deterministic" else 1)
        count *= 2**n if "subset" in self.reads else 1
        count *= n**S if "weights" in self.reads else 1
        count *= 2 ** (S * J) if "rewards" in self.reads else 1
        count *= 2 ** (S * J) if "q_hat" in self.reads else 1
        return count

    # --- building a batch ------------------------------------------------------------------------

    def decode(self, skeleton: Skeleton, index: np.ndarray) -> dict:
        """The free choices of vertices ``index`` [C] of ``skeleton``: next states [C, rows], signs [C, S*J]."""
        rows = self.free_rows(skeleton)
        cells = self.n_states * self.n_joint
        rest = np.asarray(index) if np.asarray(index).dtype == object else np.asarray(index, dtype=np.int64)
        out = {}
        if "q_hat" in self.reads:
            out["q_hat"], rest = _digits(rest, 2, cells), rest >> cells
        if "rewards" in self.reads:
            out["rewards"], rest = _digits(rest, 2, cells), rest >> cells
        out["next"] = _digits(rest, self.n_states, len(rows))
        return out

    def problems(self, skeleton: Skeleton, index: np.ndarray, gammas) -> Problem:
        """A batch [C * G] of float problems: vertices ``index`` of ``skeleton``, each at every gamma."""
        S, n, A, J = self.n_states, self.n_agents, self.n_actions, self.n_joint
        choices = self.decode(skeleton, index)
        C, G = len(index), len(gammas)
        P = np.zeros((C, S, J, S))
        P[:, np.arange(S)[:, None], np.arange(J)[None, :], np.arange(S)[:, None]] = 1.0  # self-loops
        for r, (s, a) in enumerate(self.free_rows(skeleton)):
            P[:, s, a, :] = 0.0
            P[np.arange(C), s, a, choices["next"][:, r]] = 1.0
        R = (2.0 * choices["rewards"] - 1.0).reshape(C, S, J) if "rewards" in self.reads else np.zeros((C, S, J))
        gamma = np.tile(np.asarray(gammas, dtype=float), C)  # [C * G], vertex-major
        if "q_hat" in self.reads:
            signs = (2.0 * choices["q_hat"] - 1.0).reshape(C, S, J)
            q_hat = np.repeat(signs, G, axis=0) / (1.0 - gamma)[:, None, None]
        else:
            q_hat = np.zeros((C * G, S, J))
        pi = tuple(np.repeat(_point_masses(skeleton.deviates[i], A)[None], C * G, axis=0) for i in range(n))
        mu_factors, mu_joint = self._behavior()
        batch = C * G
        weights = np.repeat(_point_masses(skeleton.weights, n)[None], batch, axis=0)
        d0 = np.zeros((batch, S))
        d0[:, 0] = 1.0
        return Problem(
            P=np.repeat(P, G, axis=0),
            R=np.repeat(R, G, axis=0),
            d0=d0,
            gamma=gamma,
            action_sizes=self.action_sizes,
            pi=pi,
            mu_factors=None if mu_factors is None else tuple(np.repeat(f[None], batch, axis=0) for f in mu_factors),
            mu_joint=None if mu_joint is None else np.repeat(mu_joint[None], batch, axis=0),
            subset=skeleton.subset,
            q_hat=q_hat,
            weights=weights,
        )

    def _behavior(self):
        S, n, A = self.n_states, self.n_agents, self.n_actions
        if self.mu_kind == "copying":
            joint = np.zeros((S, A**n))
            joint[:, 0] = 0.5
            joint[:, int(np.ravel_multi_index((1,) * n, self.action_sizes))] = 0.5
            return None, joint
        factors = [np.zeros((S, A)) for _ in range(n)]
        for i, support in enumerate(self.mu_support()):
            factors[i][:, list(support)] = 1.0 / len(support)
        if self.claim.behavior == CORRELATED:
            return None, joint_product(factors)
        return tuple(factors), None

    def exact_json(self, skeleton: Skeleton, index: int, gamma: Fraction) -> dict:
        """The vertex as the exact JSON of :meth:`bounds.instances.Instance.to_json` (``"p/q"`` strings)."""
        problem = self.problems(skeleton, np.array([index]), [0.5])
        S, sizes = self.n_states, self.action_sizes
        choices = self.decode(skeleton, np.array([index]))
        if "q_hat" in self.reads:
            signs = (2 * choices["q_hat"][0] - 1).reshape(S, -1)
            q_hat = np.vectorize(lambda x: str(Fraction(int(x)) / (1 - gamma)), otypes=[object])(signs)
        else:
            q_hat = np.full((S, self.n_joint), "0", dtype=object)

        def text(array, shape):
            return np.vectorize(lambda x: str(Fraction(x).limit_denominator(2)), otypes=[object])(
                np.asarray(array[0]).reshape(shape)
            ).tolist()

        mu = (
            {"joint": text(problem.mu_joint, (S, *sizes))}
            if problem.mu_joint is not None
            else {"factors": [text(f, (S, self.n_actions)) for f in problem.mu_factors]}
        )
        return {
            "P": text(problem.P, (S, *sizes, S)),
            "R": text(problem.R, (S, *sizes)),
            "d0": text(problem.d0, (S,)),
            "gamma": str(gamma),
            "mu": mu,
            "pi": [text(f, (S, self.n_actions)) for f in problem.pi],
            "subset": list(skeleton.subset),
            "q_hat": np.asarray(q_hat, dtype=object).reshape(S, *sizes).tolist(),
            "weights": text(problem.weights, (S, self.n_agents)),
        }


def _digits(values: np.ndarray, base: int, count: int) -> np.ndarray:
    """The ``count`` lowest base-``base`` digits of ``values`` [C] as [C, count] (least significant first)."""
    out = np.empty((len(values), count), dtype=np.int64)
    rest = values.copy()
    for k in range(count):
        out[:, k] = (rest % base).astype(np.int64)
        rest = rest // base
    return out


def _point_masses(choices, size: int) -> np.ndarray:
    """Rows ``e_{choices[s]}`` [len(choices), size]."""
    out = np.zeros((len(choices), size))
    out[np.arange(len(choices)), list(choices)] = 1.0
    return out


# --- one claim at one size -----------------------------------------------------------------------


@dataclass
class Found:
    """A vertex and its score at one gamma."""

    score: float
    mu_kind: str
    skeleton: Skeleton
    index: int
    gamma: float


def _batch_vertices(space: Space) -> int:
    S, J = space.n_states, space.n_joint
    table = S * J * (S * J if "rewards" in space.reads else S)
    return max(1, BATCH_ENTRIES // (len(GAMMAS) * table * (space.n_agents + 2)))


def evaluate_space(
    space: Space,
    rng: np.random.Generator,
    max_vertices: int = MAX_VERTICES,
    reduce: bool = True,
    claims: list[Claim] | None = None,
    sample_vertices: int = SAMPLE_VERTICES,
):
    """Evaluate every vertex of ``space`` (above ``max_vertices``, a stratified sample) on the gamma grid.

    ``claims``: claims that read the same parts as ``space.claim`` (default: that one), evaluated on the
    same batches. Returns ``(best, evaluated, reduced_count, exhaustive)``: per claim name the :data:`KEEP`
    best vertices (one gamma each) sorted worst-first, the vertices evaluated, the size of the reduced set,
    and whether it was all of it.
    """
    claims = [space.claim] if claims is None else claims
    skeletons = space.skeletons(reduce)
    counts = np.array([space.count(k) for k in skeletons], dtype=object)
    total = int(sum(counts))
    exhaustive = total <= max_vertices
    if exhaustive:
        plan = [(k, np.arange(c, dtype=np.int64)) for k, c in zip(skeletons, counts, strict=True)]
    else:
        plan = []
        for k, c, m in zip(skeletons, counts, stratified_shares(counts, sample_vertices), strict=True):
            whole = m >= c
            plan.append((k, np.arange(c, dtype=np.int64) if whole else _sample_indices(rng, int(c), int(m))))
    best: dict[str, list[Found]] = {claim.name: [] for claim in claims}
    per_batch = _batch_vertices(space)
    evaluated = 0
    for skeleton, indices in plan:
        for start in range(0, len(indices), per_batch):
            chunk = indices[start : start + per_batch]
            quantities = Quantities(space.problems(skeleton, chunk, GAMMAS))
            evaluated += len(chunk)
            for claim in claims:
                with np.errstate(all="ignore"):
                    lhs, rhs = claim.evaluate(quantities)
                score = scores(lhs, rhs, claim.equality).reshape(len(chunk), len(GAMMAS))
                score = np.where(np.isfinite(score), score, -np.inf)
                per_vertex = score.max(axis=1)
                kept = best[claim.name]
                for t in np.argsort(-per_vertex, kind="stable")[:KEEP]:
                    g = int(np.argmax(score[t]))
                    kept.append(Found(float(per_vertex[t]), space.mu_kind, skeleton, int(chunk[t]), GAMMAS[g]))
                best[claim.name] = sorted(kept, key=lambda f: -f.score)[:KEEP]
    return best, evaluated, total, exhaustive


def stratified_shares(counts, budget: int) -> list[int]:
    """Vertices to draw per skeleton: the budget spread evenly, a skeleton with fewer vertices than its share
    taken whole and the rest spread over the others (so small skeletons, e.g. a single deviating agent,
    are enumerated exhaustively while the large ones are sampled)."""
    shares = [0] * len(counts)
    open_ = sorted(range(len(counts)), key=lambda k: counts[k])
    left = budget
    while open_:
        each = left // len(open_)
        k = open_[0]
        if counts[k] <= each:
            shares[k] = int(counts[k])
            left -= shares[k]
            open_.pop(0)
            continue
        for k in open_:
            shares[k] = each
        break
    return shares


def _sample_indices(rng: np.random.Generator, count: int, draws: int) -> np.ndarray:
    """``draws`` uniform indices in ``[0, count)`` (Python integers beyond int64: the value claims' counts)."""
    if count < 2**62:
        return rng.integers(0, count, size=draws, dtype=np.int64)
    width = (count.bit_length() + 7) // 8 + 8  # 64 spare bits make the modulo bias negligible
    return np.array([int.from_bytes(rng.bytes(width), "little") % count for _ in range(draws)], dtype=object)


# --- the worst gamma of a vertex, exactly evaluated ----------------------------------------------


def refine_gamma(space: Space, found: Found) -> tuple[float, Fraction, Fraction, Fraction]:
    """Maximize the vertex's score over ``gamma`` in ``[0, GAMMA_MAX]``; evaluate it exactly there.

    A grid of 199 even and 13 geometric gammas (down to 10^-6: many suprema are limits at gamma -> 0),
    then Brent's bounded method between the best grid point's neighbors, then a rational ``gamma``
    (denominator at most 10^6) near the maximum, at which both sides are computed in exact arithmetic.
    Returns ``(score, gamma, lhs, rhs)`` with ``score`` the exact score there.
    """
    grid = np.unique(np.concatenate([np.linspace(0.0, GAMMA_MAX, 199), np.geomspace(1e-6, 1e-2, 13), GAMMAS]))

    def batch_scores(gammas):
        problem = space.problems(found.skeleton, np.array([found.index]), gammas)
        with np.errstate(all="ignore"):
            lhs, rhs = space.claim.evaluate(Quantities(problem))
        values = scores(lhs, rhs, space.claim.equality)
        return np.where(np.isfinite(values), values, -np.inf)

    values = batch_scores(grid)
    k = int(np.argmax(values))
    low, high = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
    candidates = [float(grid[k])]
    if high > low:
        result = minimize_scalar(
            lambda g: -batch_scores([g])[0], bounds=(low, high), method="bounded", options={"xatol": 1e-10}
        )
        candidates.append(float(result.x))
    best = None
    for g in candidates:
        gamma = min(Fraction(g).limit_denominator(1_000_000), Fraction(GAMMA_MAX).limit_denominator(100))
        lhs, rhs = exact_sides(space, found, gamma)
        value = exact_score(lhs, rhs, space.claim.equality)
        if best is None or value > best[0]:
            best = (value, gamma, lhs, rhs)
    return best


def exact_score(lhs: Fraction, rhs: Fraction, equality: bool) -> float:
    """The score of exact sides: ``lhs - rhs`` for an identity, else ``lhs / rhs`` (``inf`` for ``lhs > rhs = 0``)."""
    if equality:
        return float(lhs - rhs)
    if rhs > 0:
        return float(lhs / rhs)
    return float("inf") if lhs > rhs else 0.0


def exact_sides(space: Space, found: Found, gamma: Fraction) -> tuple[Fraction, Fraction]:
    """Both sides of the claim at the vertex, in exact rational arithmetic."""
    data = space.exact_json(found.skeleton, found.index, gamma)
    return space.claim.evaluate(Quantities(Problem.from_json(data, exact=True)))


#: Evaluations of the continuous search started from a claim's best vertex (a violation may sit just inside).
CLIMB_BUDGET = 600


def climb_from_vertex(space: Space, found: Found, gamma: Fraction, budget: int = CLIMB_BUDGET):
    """The continuous search (:func:`bounds.search.local_climb`) started just inside the vertex.

    The vertex is put in the search's parametrization with every probability ``p`` as the logit
    ``log max(p, 1e-4)`` (a point mass keeps ``1 - O(1e-4)``). Returns the best point seen,
    ``(score, lhs, rhs, instance)``, or None when the climb saw nothing finite.
    """
    claim = space.claim
    layout = search.layout_for(claim, space.n_states, space.action_sizes)
    problem = space.problems(found.skeleton, np.array([found.index]), [float(gamma)])
    theta = np.zeros(layout.dim)

    def put(name, value):
        theta[layout.slices[name][0]] = np.ravel(value)

    def logits(p):
        return np.log(np.maximum(p[0], 1e-4))

    put("gamma", float(gamma))
    put("P", logits(problem.P))
    put("R", problem.R[0])
    put("d0", logits(problem.d0))
    for i in range(space.n_agents):
        put(f"pi{i}", logits(problem.pi[i]))
    if layout.correlated:
        put("mu", logits(problem.mu_joint))
    else:
        for i in range(space.n_agents):
            put(f"mu{i}", logits(problem.mu_factors[i]))
    put("weights", logits(problem.weights))
    if "q_hat" in layout.slices:
        put("q_offset", 0.0)
        put("q_hat", problem.q_hat[0] * (1 - float(gamma)))
    lo, hi = np.array(layout.bounds()).T
    theta = np.clip(theta, lo, hi)
    seen = search.local_climb(claim, layout, theta, found.skeleton.subset, budget)
    if not seen:
        return None
    value, lhs, rhs, best = max(seen, key=lambda item: item[0])
    return value, lhs, rhs, layout.instance(best, found.skeleton.subset)


def vertex_sizes(spec: str) -> tuple[int, int, int]:
    """``"SxNxA"`` -> (states, agents, actions), each at least 1 (2 actions at least)."""
    try:
        states, agents, actions = (int(x) for x in spec.lower().split("x"))
    except ValueError:
        raise ValueError(f"--sizes: {spec!r} is not STATESxAGENTSxACTIONS, e.g. 2x3x2") from None
    if states < 1 or agents < 1 or actions < 2:
        raise ValueError(f"--sizes: {spec!r} needs at least 1 state, 1 agent and 2 actions")
    return states, agents, actions


def search_size(
    claims: list[Claim],
    size: tuple[int, int, int],
    seed: int = 0,
    max_vertices: int = MAX_VERTICES,
    sample_vertices: int = SAMPLE_VERTICES,
) -> dict[str, tuple[dict, list]]:
    """Every behavior kind of ``claims`` (one group: same parts, behavior, symmetry) at ``size``.

    Returns per claim name its record entry and its refined best vertices
    ``(score, gamma, lhs, rhs, space, found)``, worst first.
    """
    states, agents, actions = size
    rng = np.random.default_rng([seed, states, agents, actions])
    started = time.monotonic()
    common = {"unreduced": 0, "reduced": 0, "evaluated": 0, "exhaustive": True, "gammas": len(GAMMAS)}
    found: dict[str, list[tuple[Space, Found]]] = {claim.name: [] for claim in claims}
    for mu_kind in MU_KINDS[claims[0].behavior]:
        space = Space(claims[0], states, agents, actions, mu_kind)
        best, evaluated, reduced, exhaustive = evaluate_space(
            space, rng, max_vertices, claims=claims, sample_vertices=sample_vertices
        )
        common["unreduced"] += space.unreduced_count()
        common["reduced"] += reduced
        common["evaluated"] += evaluated
        common["exhaustive"] &= exhaustive
        for claim in claims:
            found[claim.name] += [(Space(claim, states, agents, actions, mu_kind), f) for f in best[claim.name]]
    common["unreduced"] = _big(common["unreduced"])
    common["seconds"] = round(time.monotonic() - started, 2)
    out = {}
    for claim in claims:
        candidates = sorted(found[claim.name], key=lambda item: -item[1].score)[:KEEP]
        refined = sorted(
            ((*refine_gamma(space, f), space, f) for space, f in candidates), key=lambda item: -item[0]
        )
        entry = dict(common)
        if refined:
            value, gamma, lhs, rhs, space, _ = refined[0]
            entry.update(
                worst_ratio=search.json_number(value),
                worst_gamma=str(gamma),
                worst_lhs=str(lhs),
                worst_rhs=str(rhs),
                worst_behavior=space.mu_kind,
                violated=bool(lhs > rhs),
            )
        out[claim.name] = (entry, refined)
    return out


def groups(claims: list[Claim]) -> list[list[Claim]]:
    """``claims`` grouped by what the enumeration depends on: parts read, behavior, agent symmetry."""
    by_key: dict[tuple, list[Claim]] = {}
    for claim in claims:
        by_key.setdefault((claim.reads, claim.behavior, claim.agent_symmetric), []).append(claim)
    return list(by_key.values())


def _big(n: int):
    """A count as a JSON number when it fits a double exactly, else as its decimal string."""
    return n if n < 2**53 else f"{n:.3e}"


# --- every claim at every size: the record ---------------------------------------------------------


def covers_as_much(new: dict, old: dict | None) -> bool:
    """Whether a vertex entry may replace ``old``: none, a violation (exact), exhaustive, or a sample at least as
    large."""
    if old is None or new["exhaustive"] or new.get("violated"):
        return True
    return not old["exhaustive"] and new["evaluated"] >= old["evaluated"]


def size_name(size: tuple[int, int, int]) -> str:
    return "x".join(map(str, size))


def run_vertices(
    claims: list[Claim],
    sizes=None,
    seed: int = 0,
    max_vertices: int = MAX_VERTICES,
    resume: bool = False,
    record_path=None,
    sample_vertices: int = SAMPLE_VERTICES,
    counterexample_dir=None,
    progress=None,
    replace: bool = False,
    notes: list | None = None,
) -> dict:
    """Enumerate the vertices of every claim at every size; record each (claim, size) as it finishes.

    ``sizes``: (states, agents, actions) for every claim; by default each claim's :func:`default_sizes`.

    The entries go to ``record["vertices"][claim][size]`` of the search record, written atomically after
    each group and size; with ``resume`` a (claim, size) already recorded with the same ``max_vertices``
    and seed is skipped. A violation is exact (the vertex and its ``gamma`` are rational): it is stored as
    a counterexample when the vertex lies inside the claim's assumptions and is smaller than the stored one.
    A new entry replaces a recorded one only when it covers at least as much (:func:`covers_as_much`) or with
    ``replace``; otherwise the recorded entry stays and ``notes`` says so.
    """
    from .instances import COUNTEREXAMPLE_DIR

    record_path = search.RECORD_PATH if record_path is None else record_path
    counterexample_dir = COUNTEREXAMPLE_DIR if counterexample_dir is None else counterexample_dir
    notes = [] if notes is None else notes
    record = search.load_record(record_path)
    vertices = record.setdefault("vertices", {})
    settings = {"max_vertices": max_vertices, "sample_vertices": sample_vertices, "seed": seed}
    every_size = set(sizes) if sizes is not None else {s for c in claims for s in default_sizes(c)}
    for size in sorted(every_size, key=lambda s: (s[0] * s[2] ** s[1], s)):
        for group in groups(claims):
            name = size_name(size)
            todo = [
                c
                for c in group
                if (sizes is not None or size in default_sizes(c))
                and not (resume and {k: vertices.get(c.name, {}).get(name, {}).get(k) for k in settings} == settings)
            ]
            if not todo:
                continue
            found = search_size(todo, size, seed, max_vertices, sample_vertices)
            for claim_name, (entry, refined) in found.items():
                claim = next(c for c in todo if c.name == claim_name)
                entry.update(settings)
                entry["counterexample"] = None
                if not refined:
                    vertices.setdefault(claim_name, {})[name] = entry
                    continue
                _, gamma, lhs, rhs, space, found = refined[0]
                if entry.get("violated"):
                    data = space.exact_json(found.skeleton, found.index, gamma)
                    if search.satisfies_assumptions(claim, data):
                        origin = f"vertex enumeration, size {name}, behavior {space.mu_kind}"
                        path = search.store_counterexample(claim, data, lhs, rhs, origin, counterexample_dir)
                        entry["counterexample"] = search.repo_relative(path)
                else:
                    # a violation may sit just inside the best vertex: climb from there, verify exactly
                    climbed = climb_from_vertex(space, found, gamma)
                    entry["climb_worst"] = None if climbed is None else search.json_number(float(climbed[0]))
                    if climbed is not None and search.violated(climbed[1], climbed[2]):
                        exact = search.exact_counterexample(claim, climbed[3])
                        if exact is not None:
                            data, exact_lhs, exact_rhs = exact
                            origin = f"climb from a vertex, size {name}"
                            path = search.store_counterexample(
                                claim, data, exact_lhs, exact_rhs, origin, counterexample_dir
                            )
                            entry.update(violated=True, counterexample=search.repo_relative(path))
                old = vertices.get(claim_name, {}).get(name)
                if replace or covers_as_much(entry, old):
                    vertices.setdefault(claim_name, {})[name] = entry
                else:
                    notes.append(
                        f"{claim_name} {name}: kept the recorded entry ({old['evaluated']:,} vertices"
                        f"{', all' if old['exhaustive'] else ''}; --replace to overwrite it)"
                    )
                if progress is not None:
                    progress(claim_name, name, entry)
            search.write_json(record_path, record)
    return record


def coverage_table(record: dict, claims: list[Claim]) -> str:
    """The vertex enumeration's coverage as a Markdown table: one row per size, one column per claim group.

    A cell reads ``all N`` (every reduced vertex) or ``N of M`` (a stratified sample of the reduced set),
    the unreduced count and the seconds the group took at that size.
    """
    entries = record.get("vertices", {})
    by_group = groups(claims)
    sizes = sorted(
        {size for claim in claims for size in entries.get(claim.name, {})},
        key=lambda name: (vertex_sizes(name)[0] * vertex_sizes(name)[2] ** vertex_sizes(name)[1], name),
    )
    header = ["size (SxNxA)", *(f"`{group[0].name}` +{len(group) - 1}" for group in by_group)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for size in sizes:
        cells = [size]
        for group in by_group:
            entry = entries.get(group[0].name, {}).get(size)
            if entry is None:
                cells.append("-")
                continue
            if entry["exhaustive"]:
                counted = f"all {entry['reduced']:,}"
            else:
                counted = f"{entry['evaluated']:,} of {entry['reduced']:,}"
            unreduced = f"{float(entry['unreduced']):.2g}"  # a string beyond 2^53 (see _big)
            cells.append(f"{counted} (of {unreduced}; {entry['seconds']:.0f} s)")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
