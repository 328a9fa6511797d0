"""Every quantity the audit's claims read off an instance, in floating point or in exact rationals.

One code path serves both: a :class:`Problem` holds numpy arrays of ``float64`` (the search and the
random draws) or of Python :class:`fractions.Fraction` objects (``dtype=object``, the exact
verification of a counterexample), and :class:`Quantities` computes with array operations that
work for both. Only the linear solve differs (LAPACK, or Gaussian elimination over the rationals);
``Q*`` comes from Howard's policy iteration in both, which terminates at the exact optimum over
the rationals.

Layout: joint actions are flattened in C order, ``a = (a_1, ..., a_n) -> J = prod_i A_i`` columns,
so ``P`` is [S, J, S], ``R``, ``Q`` tables and joint policies are [S, J] and a factor ``pi_i`` is
[S, A_i]. ``mu`` is factorized (``mu_factors``) or a correlated joint policy (``mu_joint``).

A float problem may also hold a *batch* of instances of one size: every array then carries the same
leading batch axes ``B`` (``P`` [*B, S, J, S], ``gamma`` a scalar or [*B], ...), the subset is shared,
and every quantity carries ``B`` in front (a scalar becomes [*B]). The vertex enumeration
(:mod:`bounds.vertices`) evaluates the claims this way, thousands of instances per array operation;
exact problems are single instances.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from itertools import combinations
from math import comb

import numpy as np

#: Howard's policy iteration stops after this many improvements (it needs a handful on audit sizes).
MAX_POLICY_ITERATIONS = 1000


@dataclass(frozen=True)
class Problem:
    """The raw arrays of one audit instance; ``exact`` when they hold Fractions.

    Attributes
    ----------
    P : ndarray [S, J, S]
    R : ndarray [S, J]
    d0 : ndarray [S]
    gamma : float or Fraction
    action_sizes : tuple of int, ``(A_1, ..., A_n)`` with ``prod = J``
    pi : tuple of ndarray [S, A_i]
    mu_factors : tuple of ndarray [S, A_i], or None when ``mu`` is correlated
    mu_joint : ndarray [S, J], or None when ``mu`` is factorized
    subset : tuple of int, the deviating agents ``S`` of Lemma 1-2
    q_hat : ndarray [S, J]
    weights : ndarray [S, n], ``weights[s, k-1] = w_k(s)``
    """

    P: np.ndarray
    R: np.ndarray
    d0: np.ndarray
    gamma: float | Fraction
    action_sizes: tuple[int, ...]
    pi: tuple[np.ndarray, ...]
    mu_factors: tuple[np.ndarray, ...] | None
    mu_joint: np.ndarray | None
    subset: tuple[int, ...]
    q_hat: np.ndarray
    weights: np.ndarray

    @property
    def exact(self) -> bool:
        return self.P.dtype == object

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """The leading batch axes ``B`` (``()`` for one instance)."""
        return self.P.shape[:-3]

    @classmethod
    def from_instance(cls, instance) -> Problem:
        """The float arrays of a :class:`bounds.instances.Instance`."""
        from tabular import FactorizedPolicy

        mdp = instance.mdp
        S = mdp.n_states
        factorized = isinstance(instance.mu, FactorizedPolicy)
        return cls(
            P=mdp.P.reshape(S, -1, S),
            R=mdp.R.reshape(S, -1),
            d0=mdp.d0,
            gamma=mdp.gamma,
            action_sizes=mdp.action_sizes,
            pi=tuple(instance.pi.factors),
            mu_factors=tuple(instance.mu.factors) if factorized else None,
            mu_joint=None if factorized else instance.mu.probs.reshape(S, -1),
            subset=tuple(instance.subset),
            q_hat=np.asarray(instance.q_hat, dtype=float).reshape(S, -1),
            weights=np.asarray(instance.weights, dtype=float),
        )

    @classmethod
    def from_json(cls, data: dict, exact: bool) -> Problem:
        """Read the JSON layout of :meth:`bounds.instances.Instance.to_json` (numbers or ``"p/q"`` strings)."""
        number = _to_fraction if exact else float
        P = _array(data["P"], number)
        S = P.shape[0]
        mu = data["mu"]
        return cls(
            P=P.reshape(S, -1, S),
            R=_array(data["R"], number).reshape(S, -1),
            d0=_array(data["d0"], number),
            gamma=number(data["gamma"]),
            action_sizes=tuple(P.shape[1:-1]),
            pi=tuple(_array(f, number) for f in data["pi"]),
            mu_factors=tuple(_array(f, number) for f in mu["factors"]) if "factors" in mu else None,
            mu_joint=_array(mu["joint"], number).reshape(S, -1) if "joint" in mu else None,
            subset=tuple(int(i) for i in data["subset"]),
            q_hat=_array(data["q_hat"], number).reshape(S, -1),
            weights=_array(data["weights"], number),
        )


def _to_fraction(value) -> Fraction:
    # a float is read as its exact binary value, a "p/q" string as written
    return Fraction(value) if isinstance(value, (int, str, Fraction)) else Fraction(float(value))


def _array(values, number) -> np.ndarray:
    array = np.array(values, dtype=float if number is float else object)
    return array if number is float else np.vectorize(_to_fraction, otypes=[object])(array)


def solve(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``x`` with ``A x = b``: LAPACK for floats (``A`` [*B, n, n], ``b`` [*B, n] or [*B, n, k]),
    Gaussian elimination over the rationals for Fractions (one system)."""
    if A.dtype != object:
        if b.ndim == A.ndim - 1:
            return np.linalg.solve(A, b[..., None])[..., 0]
        return np.linalg.solve(A, b)
    n = A.shape[0]
    M = np.concatenate([A, b.reshape(n, -1)], axis=1).astype(object)
    for col in range(n):
        pivot = next((r for r in range(col, n) if M[r, col] != 0), None)
        if pivot is None:
            raise ZeroDivisionError("solve: singular matrix")
        M[[col, pivot]] = M[[pivot, col]]
        M[col] = M[col] / M[col, col]
        for r in range(n):
            if r != col and M[r, col] != 0:
                M[r] = M[r] - M[r, col] * M[col]
    return M[:, n:].reshape(b.shape)


def tv(p: np.ndarray, q: np.ndarray, event_dims: int = 1):
    """``TV(p, q) = 1/2 ||p - q||_1`` (= W1 under the 0-1 metric) over the last ``event_dims`` axes
    (1: distributions over states [*B, S]; 2: over state-action pairs [*B, S, J]); [*B]."""
    return abs(p - q).sum(axis=tuple(range(-event_dims, 0))) / 2


def joint_product(factors) -> np.ndarray:
    """``prod_i phi_i(a_i | s)`` [*B, S, J] of factors [*B, S, A_i] (C order over the agents)."""
    out = factors[0]
    for factor in factors[1:]:
        out = (out[..., :, :, None] * factor[..., :, None, :]).reshape(*out.shape[:-1], -1)
    return out


def with_trailing_axes(x, k: int):
    """``x`` with ``k`` unit axes appended (a batch scalar [*B] made to broadcast over [*B, ...])."""
    return x if np.ndim(x) == 0 else np.reshape(x, np.shape(x) + (1,) * k)


class Quantities:
    """The quantities of one :class:`Problem`, each computed once, on demand (float or exact)."""

    def __init__(self, problem):
        """``problem``: a :class:`Problem`, or a :class:`bounds.instances.Instance` (read as floats)."""
        if not isinstance(problem, Problem):
            problem = Problem.from_instance(problem)
        self.problem = problem
        self.gamma = problem.gamma if problem.exact else np.asarray(problem.gamma, dtype=float)
        self.batch_shape = problem.batch_shape
        if problem.exact and self.batch_shape:
            raise ValueError("problem: an exact problem is one instance (no batch axes)")
        self.n_states = problem.P.shape[-3]
        self.action_sizes = problem.action_sizes
        self.n_agents = len(problem.action_sizes)
        self.one = Fraction(1) if problem.exact else 1.0
        self.scale = self.gamma / (1 - self.gamma)
        self._occupancies: dict[str, np.ndarray] = {}

    # --- policies ------------------------------------------------------------------------------

    def joint(self, factors) -> np.ndarray:
        """``prod_i phi_i(a_i | s)`` as [*B, S, J] (C order over the agents)."""
        return joint_product(factors)

    def _agent_axis(self, i: int) -> int:
        """The axis of agent ``i``'s action in a joint table reshaped to [*B, S, A_1, ..., A_n]."""
        return len(self.batch_shape) + 1 + i

    def _full(self, table: np.ndarray) -> np.ndarray:
        """A joint table [*B, S, J] as [*B, S, A_1, ..., A_n]."""
        return table.reshape(*self.batch_shape, self.n_states, *self.action_sizes)

    def _factor_shape(self, i: int) -> list[int]:
        """The shape that makes agent ``i``'s factor [*B, S, A_i] broadcast over [*B, S, A_1, ..., A_n]."""
        shape = [*self.batch_shape, self.n_states] + [1] * self.n_agents
        shape[self._agent_axis(i)] = self.action_sizes[i]
        return shape

    def marginals_of(self, joint: np.ndarray) -> tuple[np.ndarray, ...]:
        """Each agent's marginal [*B, S, A_i] of a joint policy [*B, S, J]."""
        full = self._full(joint)
        axes = [self._agent_axis(i) for i in range(self.n_agents)]
        return tuple(full.sum(axis=tuple(a for a in axes if a != axis)) for axis in axes)

    @cached_property
    def mu_marginals(self) -> tuple[np.ndarray, ...]:
        if self.problem.mu_factors is not None:
            return self.problem.mu_factors
        return self.marginals_of(self.problem.mu_joint)

    @cached_property
    def mu_product(self) -> np.ndarray:
        """``mu^(x)``, the product of ``mu``'s marginals [S, J] (``mu`` itself when it is factorized)."""
        return self.joint(self.mu_marginals)

    @cached_property
    def mu_joint(self) -> np.ndarray:
        """The behavior policy as it is [S, J]: the correlated joint, or the product."""
        return self.mu_product if self.problem.mu_joint is None else self.problem.mu_joint

    @cached_property
    def pi_joint(self) -> np.ndarray:
        return self.joint(self.problem.pi)

    def mixed(self, subset) -> np.ndarray:
        """``pi^(S)`` (eq. 10) [S, J]: agents in ``subset`` follow ``pi_i``, the others ``mu``'s marginals."""
        members = set(subset)
        return self.joint([self.problem.pi[i] if i in members else self.mu_marginals[i] for i in range(self.n_agents)])

    @cached_property
    def mixed_joint(self) -> np.ndarray:
        return self.mixed(self.problem.subset)

    @cached_property
    def mixed_conditional(self) -> np.ndarray:
        """``pi_S x mu_{-S}`` [S, J]: agents in ``S`` follow ``pi_i``, the others ``mu``'s joint marginal on them.

        The other reading of Lemma 2's mixed policy for a correlated ``mu``: the non-deviating
        agents keep their correlation (``mu`` itself when ``S`` is empty).
        """
        subset = self.problem.subset
        full = self._full(self.mu_joint)
        others = full.sum(axis=tuple(self._agent_axis(i) for i in subset), keepdims=True) if subset else full
        out = others
        for i in subset:
            out = out * self.problem.pi[i].reshape(self._factor_shape(i))
        return out.reshape(*self.batch_shape, self.n_states, -1)

    @cached_property
    def soft_partial(self) -> np.ndarray:
        """``pi_w(a | s) = sum_k w_k(s) mean_{|K| = k} pi^(K)(a | s)`` [S, J], SPaCQL's mixture (Theorem 3)."""
        n = self.n_agents
        out = 0 * self.pi_joint
        for k in range(1, n + 1):
            share = self.problem.weights[..., k - 1 : k] / comb(n, k)
            for members in combinations(range(n), k):
                out = out + share * self.mixed(members)
        return out

    # --- kernels, occupancies, values ----------------------------------------------------------

    def kernel(self, joint: np.ndarray) -> np.ndarray:
        """``P^phi(s' | s) = sum_a phi(a | s) P(s' | s, a)`` [*B, S, S]."""
        return (joint[..., :, :, None] * self.problem.P).sum(axis=-2)

    def _resolvent_matrix(self, joint: np.ndarray) -> np.ndarray:
        """``I - gamma P^phi`` [*B, S, S]."""
        identity = np.eye(self.n_states, dtype=object if self.problem.exact else float)
        if self.problem.exact:
            identity = identity * self.one
        return identity - with_trailing_axes(self.gamma, 2) * self.kernel(joint)

    def occupancy(self, joint: np.ndarray) -> np.ndarray:
        """``d^phi = (1 - gamma) d0^T (I - gamma P^phi)^{-1}`` [*B, S]."""
        matrix = np.swapaxes(self._resolvent_matrix(joint), -1, -2)
        return solve(matrix, with_trailing_axes(1 - self.gamma, 1) * self.problem.d0)

    def named_occupancy(self, name: str) -> np.ndarray:
        """The occupancy of the policy attribute ``name`` (``pi_joint``, ``mu_joint``, ...), cached."""
        if name not in self._occupancies:
            self._occupancies[name] = self.occupancy(getattr(self, name))
        return self._occupancies[name]

    def state_action(self, name: str) -> np.ndarray:
        """``d^phi(s) phi(a | s)`` [*B, S, J] for the policy attribute ``name``."""
        return self.named_occupancy(name)[..., :, None] * getattr(self, name)

    def expectation(self, name: str, table: np.ndarray):
        """``E_{d^phi, phi}[table]`` [*B] for the policy attribute ``name``."""
        return (self.state_action(name) * table).sum(axis=(-2, -1))

    def q_of(self, joint: np.ndarray) -> np.ndarray:
        """``Q^phi = R + gamma P V^phi`` [*B, S, J], ``V^phi = (I - gamma P^phi)^{-1} r^phi``."""
        r_phi = (joint * self.problem.R).sum(axis=-1)
        value = solve(self._resolvent_matrix(joint), r_phi)
        future = (self.problem.P * value[..., None, None, :]).sum(axis=-1)
        return self.problem.R + with_trailing_axes(self.gamma, 2) * future

    @cached_property
    def q_pi(self) -> np.ndarray:
        return self.q_of(self.pi_joint)

    @cached_property
    def q_star(self) -> np.ndarray:
        """``Q*`` [S, J] by Howard's policy iteration over deterministic joint policies.

        Exact over the rationals (it stops when no action improves at all); in floats it stops when
        no action improves by more than 1e-13 relative, which leaves ``Q*`` off by at most
        ``1e-13 (1 + |Q|) / (1 - gamma)``, far below the audit's ROUNDOFF.
        """
        J = self.problem.R.shape[-1]
        greedy = np.argmax(self.problem.R.astype(float), axis=-1)  # [*B, S]
        actions = np.arange(J)
        for _ in range(MAX_POLICY_ITERATIONS):
            policy = (greedy[..., None] == actions).astype(object if self.problem.exact else float) * self.one
            q = self.q_of(policy)
            current = np.take_along_axis(q, greedy[..., None], axis=-1)[..., 0]
            best = q.max(axis=-1)
            margin = 0 if self.problem.exact else 1e-13 * (1.0 + np.abs(best.astype(float)))
            improve = best > current + margin
            if not improve.any():
                return q
            # the first action attaining the maximum, as argmax picks it
            greedy = np.where(improve, np.argmax(q == best[..., None], axis=-1), greedy)
        raise RuntimeError(f"q_star: policy iteration did not stop after {MAX_POLICY_ITERATIONS} improvements")

    # --- distances -----------------------------------------------------------------------------

    @cached_property
    def agent_tv_per_state(self) -> np.ndarray:
        """``TV(pi_i(. | s), mu_i(. | s))`` [n, *B, S], to ``mu``'s marginals."""
        return np.stack([tv(p, m) for p, m in zip(self.problem.pi, self.mu_marginals, strict=True)])

    @cached_property
    def agent_tv(self) -> np.ndarray:
        """``TV(pi_i, mu_i) = sup_s TV(pi_i(. | s), mu_i(. | s))`` [n, *B]."""
        return self.agent_tv_per_state.max(axis=-1)

    def subset_tv_sum(self, subset=None):
        members = self.problem.subset if subset is None else subset
        return sum((self.agent_tv[i] for i in members), 0 * self.one)

    @cached_property
    def kappa(self):
        """The excess correlation ``kappa = sup_s TV(mu(. | s), mu^(x)(. | s))`` (Definition 1)."""
        return tv(self.mu_joint, self.mu_product).max(axis=-1)

    def policy_l1_per_state(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``sum_a |a(a | s) - b(a | s)|`` per state [*B, S]."""
        return abs(a - b).sum(axis=-1)

    # --- the value-error theorems (eq. 32-53) --------------------------------------------------

    @cached_property
    def value_error(self):
        """``|V^pi - V_hat^pi| = |E_{d^pi, pi}[Q^pi - Q_hat]|`` (eq. 32-33)."""
        return abs(self.expectation("pi_joint", self.q_pi - self.problem.q_hat))

    @cached_property
    def eps_subopt(self):
        return abs(self.q_pi - self.q_star).max(axis=(-2, -1))

    @cached_property
    def eps_fqi(self):
        """``||Q* - Q_hat||_inf``, the paper's definition."""
        return abs(self.q_star - self.problem.q_hat).max(axis=(-2, -1))

    def eps_fqi_in_distribution(self, behavior: str):
        """``E_{d^mu, mu}|Q* - Q_hat|``, the in-distribution error, under ``mu_product`` or ``mu_joint``."""
        return self.expectation(behavior, abs(self.q_star - self.problem.q_hat))

    @cached_property
    def q_hat_range(self):
        """``max Q_hat - min Q_hat``, the smallest Lipschitz constant of ``Q_hat`` under the 0-1 metric."""
        return self.problem.q_hat.max(axis=(-2, -1)) - self.problem.q_hat.min(axis=(-2, -1))

    def shift_coefficient(self):
        """``4 gamma / (1 - gamma)^2``, the factor of the shift term in Theorems 1-3."""
        return 4 * self.gamma / (1 - self.gamma) ** 2

    # --- Theorem 3 -----------------------------------------------------------------------------

    @cached_property
    def k_eff(self) -> np.ndarray:
        """``k_eff(s) = sum_k k w_k(s)`` [*B, S]."""
        return (self.problem.weights * np.arange(1, self.n_agents + 1)).sum(axis=-1)

    @cached_property
    def tv_bar(self):
        """``TVbar = (1/n) sum_i TV(pi_i, mu_i)`` [*B], the mean of the per-agent sup-TVs."""
        return self.agent_tv.sum(axis=0) / self.n_agents

    @cached_property
    def tv_bar_per_state(self) -> np.ndarray:
        """``TVbar(s) = (1/n) sum_i TV(pi_i(. | s), mu_i(. | s))`` [*B, S]."""
        return self.agent_tv_per_state.sum(axis=0) / self.n_agents

    @cached_property
    def telescoping(self) -> list:
        """``W1(d^(k), d^(k-1))`` [*B] for k = 1..n, ``d^(k)`` the occupancy of pi^({0..k-1}) (eq. 46-48)."""
        prefixes = [self.occupancy(self.mixed(range(k))) for k in range(self.n_agents + 1)]
        return [tv(prefixes[k], prefixes[k - 1]) for k in range(1, self.n_agents + 1)]

    # --- Proposition 1 on the exact dataset ----------------------------------------------------

    @cached_property
    def transition_weights(self) -> np.ndarray:
        """``w(s, a, s', a') = d^mu(s) mu(a | s) P(s' | s, a) mu(a' | s')`` [*B, S, J, S, J]: the exact dataset."""
        sa = self.state_action("mu_joint")
        return sa[..., :, :, None, None] * self.problem.P[..., :, :, :, None] * self.mu_joint[..., None, None, :, :]

    def individual_backup(self, q: np.ndarray, i: int) -> np.ndarray:
        """``B_{i} Q(s', a') = sum_b pi_i(b | s') Q(s', a' with a'_i = b)`` [*B, S, J] (eq. 1)."""
        full = self._full(q)
        weighted = full * self.problem.pi[i].reshape(self._factor_shape(i))
        averaged = weighted.sum(axis=self._agent_axis(i), keepdims=True)
        return np.broadcast_to(averaged, full.shape).reshape(q.shape)

    def individual_backup_adjoint(self, residual: np.ndarray, i: int) -> np.ndarray:
        """The transpose of ``Q -> B_i Q``: ``sum_{a'} residual(s', a') dB_iQ(s', a')/dQ`` [*B, S, J]."""
        summed = self._full(residual).sum(axis=self._agent_axis(i), keepdims=True)
        return (summed * self.problem.pi[i].reshape(self._factor_shape(i))).reshape(residual.shape)

    @cached_property
    def individual_targets(self) -> np.ndarray:
        """``y_i(s, a, s', a') = R(s, a) + gamma B_i Q_hat(s', a')`` [n, *B, S, J, S, J], with ``Q_hat`` as theta."""
        R = self.problem.R[..., :, :, None, None]
        gamma = with_trailing_axes(self.gamma, 4)
        return np.stack(
            [
                R + gamma * self.individual_backup(self.problem.q_hat, i)[..., None, None, :, :]
                for i in range(self.n_agents)
            ]
        )

    def _td_pieces(self, targets: np.ndarray):
        """Residuals ``Q(s, a) - y`` [*B, S, J, S, J] and their weighted sums."""
        residual = self.problem.q_hat[..., :, :, None, None] - targets
        weighted = self.transition_weights * residual
        return residual, weighted

    @cached_property
    def proposition1_terms(self) -> dict:
        """Semi-gradients, full gradients and losses of the per-agent and centralized TD objectives.

        ``J_i = 1/2 E_D[(Q - y_i)^2]``, ``J_cen = 1/2 E_D[(Q - ybar)^2]``, ``ybar = mean_i y_i``. The
        semi-gradient holds ``y`` fixed; the full gradient differentiates ``y_i`` through ``B_i Q``.
        Each per-agent gradient is computed on its own and averaged afterwards.
        """
        targets = self.individual_targets
        mean_target = targets.sum(axis=0) / self.n_agents
        gamma = with_trailing_axes(self.gamma, 2)
        transition_axes = (-4, -3, -2, -1)
        semi, full, losses = [], [], []
        for i in range(self.n_agents):
            residual, weighted = self._td_pieces(targets[i])
            g = weighted.sum(axis=(-2, -1))
            semi.append(g)
            full.append(g - gamma * self.individual_backup_adjoint(weighted.sum(axis=(-4, -3)), i))
            losses.append((self.transition_weights * residual * residual).sum(axis=transition_axes) / 2)
        residual, weighted = self._td_pieces(mean_target)
        g_cen = weighted.sum(axis=(-2, -1))
        into_next = weighted.sum(axis=(-4, -3))
        full_cen = (
            g_cen
            - gamma
            * sum((self.individual_backup_adjoint(into_next, i) for i in range(self.n_agents)), 0 * g_cen)
            / self.n_agents
        )
        deviation = targets - mean_target[None]
        covariance = (
            sum(
                (
                    self.individual_backup_adjoint((self.transition_weights * deviation[i]).sum(axis=(-4, -3)), i)
                    for i in range(self.n_agents)
                ),
                0 * g_cen,
            )
            / self.n_agents
        )
        return {
            "semi_averaged": sum(semi, 0 * g_cen) / self.n_agents,
            "semi_centralized": g_cen,
            "full_averaged": sum(full, 0 * g_cen) / self.n_agents,
            "full_centralized": full_cen,
            "target_covariance": covariance,
            "loss_averaged": sum(losses, 0 * self.one) / self.n_agents,
            "loss_centralized": (self.transition_weights * residual * residual).sum(axis=transition_axes) / 2,
            "target_variance": (self.transition_weights * (deviation * deviation).sum(axis=0)).sum(axis=transition_axes)
            / (2 * self.n_agents),
        }
