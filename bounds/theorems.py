"""Theorems 1-3 (eq. 12, 14 and Theorem 3) and Proposition 1 (eq. 15-16), computed exactly.

The value-error theorems bound ``|V^pi - V^hat^pi|`` with ``V^pi = E_{s ~ d^pi, a ~ pi} Q^pi(s, a)`` and
``V^hat^pi = E_{d^pi, pi} Q^hat`` (eq. 32) by ``eps_Subopt + eps_FQI + shift term``. Each returns a
:class:`TheoremCheck` with every term of the statement and the intermediate quantities of the proof
(Appendix A, eq. 32-53) as named attributes.

They hold trivially: ``|V^pi - V^hat^pi| = |E_{d^pi, pi}[Q^pi - Q^hat]| <= ||Q^pi - Q^hat||_inf
<= ||Q^pi - Q*||_inf + ||Q* - Q^hat||_inf = eps_Subopt + eps_FQI``, so the shift term (the only part
that depends on ``mu``, the TVs, ``kappa`` or ``k_eff``) is never needed.
:attr:`TheoremCheck.holds_without_shift_term` reports this on every instance.

Proposition 1 is checked on the tabular parameterization ``theta = Q`` (the table itself) by
:func:`proposition1`, which returns a :class:`GradientCheck`.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from math import comb

import numpy as np

from tabular import (
    DecMDP,
    FactorizedPolicy,
    JointPolicy,
    excess_correlation,
    mixed_policy,
    q_optimal,
    q_policy,
    state_action_occupancy,
    state_occupancy,
    tv,
)
from tabular._validate import as_float_array, check_distributions
from tabular.backups import individual_backups
from tabular.datasets import Dataset
from tabular.validation import check_gamma

from .lemmas import BoundCheck, _check_instance, agent_tvs

#: Certified accuracy asked of ``Q*``. ``eps_Subopt`` and ``eps_FQI`` are each off by at most this
#: much, ten times below ROUNDOFF; 1e-11 is still reachable by value iteration at gamma = 0.99,
#: where |Q*| <= 100 and one ulp is 1.4e-14.
Q_STAR_TOL = 1e-11


@dataclass(frozen=True, kw_only=True)
class TheoremCheck(BoundCheck):
    """One exactly computed value-error bound ``|V^pi - V^hat^pi| <= eps_Subopt + eps_FQI + shift_term``.

    ``lhs``, ``rhs``, ``slack`` and ``holds`` are those of :class:`BoundCheck`. ``Q*`` is computed by
    certified value iteration; the Q tables have shape (S, A_1, ..., A_n).

    Attributes
    ----------
    v_pi : float
        ``V^pi = E_{s ~ d^pi, a ~ pi} Q^pi(s, a)`` (eq. 32; the paper's definition, not ``d0 . V^pi``).
    v_hat_pi : float
        ``V^hat^pi = E_{d^pi, pi} Q^hat``.
    eps_subopt : float
        ``||Q^pi - Q*||_inf``.
    eps_fqi : float
        ``||Q* - Q^hat||_inf``.
    shift_term : float
        The last term of the right side: ``4 gamma / (1 - gamma)^2`` times ``sum_i TV(pi_i, mu_i)``
        (Theorem 1), ``sum_i TV(pi_i, mu_i) + kappa`` (Theorem 2) or
        ``E_{d^pi}[k_eff] * TVbar`` (Theorem 3).
    agent_tv : ndarray, shape (n,)
        ``TV(pi_i, mu_i) = sup_s TV(pi_i(. | s), mu_i(. | s))``, to ``mu``'s marginals.
    kappa : float
        Excess correlation of ``mu`` (Definition 1); 0 for a factorized ``mu``.
    q_star_error_bound : float
        Certified ``||Q*_computed - Q*||_inf``; ``eps_subopt`` and ``eps_fqi`` are each exact to within it.
    q_hat_range : float
        ``max Q^hat - min Q^hat``: the smallest Lipschitz constant of ``Q^hat`` under the 0-1 metric.
    lipschitz_assumption : bool
        Whether ``q_hat_range <= 2 / (1 - gamma)`` (up to ROUNDOFF): the theorems' assumption that
        ``Q^hat`` is ``2 / (1 - gamma)``-Lipschitz. Reported, never enforced.
    d_pi, d_mu : ndarray, shape (S,)
        State occupancies of ``pi`` and of ``mu`` (the correlated ``mu`` itself when it is joint).
    w1_state : float
        ``W1(d^pi, d^mu)`` of the state occupancies, the distance used in the proof (eq. 44-51).
    w1_state_action : float
        ``TV(d^pi pi, d^mu mu)`` of the state-action occupancies, over which the expectations of
        eq. 42-43 are actually taken.
    term_I : float
        ``|E_{d^pi, pi}[Q^pi - Q*]|`` (eq. 36), bounded by ``eps_subopt`` in eq. 37.
    term_II : float
        ``|E_{d^pi, pi}[Q* - Q^hat]|`` (eq. 36).
    term_II_under_mu : float
        ``|E_{d^mu, mu}[Q* - Q^hat]|`` (eq. 41), bounded by ``eps_fqi``.
    term_II_shift : float
        ``|E_{d^pi, pi}[Q* - Q^hat] - E_{d^mu, mu}[Q* - Q^hat]|`` (eq. 42), which eq. 44 bounds by
        ``4 / (1 - gamma) * w1_state``. That step does not hold in general (with one state
        ``w1_state = 0`` while the two expectations differ); the expectations are over state-action
        pairs, so ``w1_state_action`` is the distance that bounds it.
    k_eff : ndarray, shape (S,) or None
        Theorem 3 only: ``k_eff(s) = sum_k k w_k(s)``.
    expected_k_eff : float or None
        Theorem 3 only: ``E_{s ~ d^pi}[k_eff(s)]``.
    tv_bar : float or None
        Theorem 3 only: ``TVbar = (1 / n) sum_i TV(pi_i, mu_i)``.
    soft_partial_policy : JointPolicy or None
        Theorem 3 only: ``pi_w``, see :func:`soft_partial_policy`.
    d_soft_partial : ndarray, shape (S,) or None
        Theorem 3 only: the state occupancy of ``pi_w``.
    soft_partial_shift : float or None
        Theorem 3 only: ``W1(d^{pi_w}, d^mu)`` of the state occupancies, the shift of the
        soft-partial policy that the proof sketch puts in place of ``W1(d^pi, d^mu)``.
    details : dict
        ``q_pi``, ``q_star`` (S, A_1, ..., A_n) and the state-action occupancies
        ``state_action_pi``, ``state_action_mu`` (S, A_1, ..., A_n).
    """

    v_pi: float
    v_hat_pi: float
    eps_subopt: float
    eps_fqi: float
    shift_term: float
    agent_tv: np.ndarray
    kappa: float
    q_star_error_bound: float
    q_hat_range: float
    lipschitz_assumption: bool
    d_pi: np.ndarray
    d_mu: np.ndarray
    w1_state: float
    w1_state_action: float
    term_I: float
    term_II: float
    term_II_under_mu: float
    term_II_shift: float
    k_eff: np.ndarray | None = None
    expected_k_eff: float | None = None
    tv_bar: float | None = None
    soft_partial_policy: JointPolicy | None = None
    d_soft_partial: np.ndarray | None = None
    soft_partial_shift: float | None = None

    @property
    def holds_without_shift_term(self) -> bool:
        """Whether ``lhs <= eps_subopt + eps_fqi`` up to ROUNDOFF, i.e. the bound holds with no shift term.

        Always true in exact arithmetic: ``|E_{d^pi, pi}[Q^pi - Q^hat]| <= ||Q^pi - Q^hat||_inf``.
        """
        return BoundCheck(self.claim, self.lhs, self.eps_subopt + self.eps_fqi).holds


def _shift_coefficient(gamma: float) -> float:
    """``4 gamma / (1 - gamma)^2``, the factor of the shift term in Theorems 1-3."""
    return 4.0 * gamma / (1.0 - gamma) ** 2


def _refuse_correlated(mu, theorem: str) -> None:
    if isinstance(mu, JointPolicy):
        raise ValueError(
            f"mu: {theorem} assumes a factorized behavior policy (Assumption 1), got a JointPolicy with "
            f"kappa = {excess_correlation(mu):.3g}; use bounds.theorem2"
        )


def _value_error_terms(mdp: DecMDP, pi: FactorizedPolicy, mu, q_hat) -> dict:
    """Validate the inputs and compute the fields shared by Theorems 1-3 (all but the shift term)."""
    _check_instance(mdp, pi, mu, ())
    q_hat = as_float_array("q_hat", q_hat)
    if q_hat.shape != mdp.R.shape:
        raise ValueError(
            f"q_hat: expected shape {mdp.R.shape} (S, A_1, ..., A_n) to match the Dec-MDP, got {q_hat.shape}"
        )
    optimal = q_optimal(mdp, tol=Q_STAR_TOL)
    q_pi, q_star = q_policy(mdp, pi), optimal.q
    d_pi, d_mu = state_occupancy(mdp, pi), state_occupancy(mdp, mu)
    state_action_pi, state_action_mu = state_action_occupancy(mdp, pi), state_action_occupancy(mdp, mu)
    fqi_error = q_star - q_hat
    fqi_error_under_pi = float(np.sum(state_action_pi * fqi_error))
    fqi_error_under_mu = float(np.sum(state_action_mu * fqi_error))
    v_pi, v_hat_pi = float(np.sum(state_action_pi * q_pi)), float(np.sum(state_action_pi * q_hat))
    q_hat_range = float(q_hat.max() - q_hat.min())
    lipschitz_constant = 2.0 / (1.0 - mdp.gamma)
    return {
        "lhs": abs(v_pi - v_hat_pi),
        "v_pi": v_pi,
        "v_hat_pi": v_hat_pi,
        "eps_subopt": float(np.abs(q_pi - q_star).max()),
        "eps_fqi": float(np.abs(fqi_error).max()),
        "agent_tv": agent_tvs(pi, mu),
        "kappa": excess_correlation(mu),
        "q_star_error_bound": optimal.error_bound,
        "q_hat_range": q_hat_range,
        "lipschitz_assumption": BoundCheck("Lipschitz", q_hat_range, lipschitz_constant).holds,
        "d_pi": d_pi,
        "d_mu": d_mu,
        "w1_state": tv(d_pi, d_mu),
        "w1_state_action": tv(state_action_pi, state_action_mu),
        "term_I": abs(float(np.sum(state_action_pi * (q_pi - q_star)))),
        "term_II": abs(fqi_error_under_pi),
        "term_II_under_mu": abs(fqi_error_under_mu),
        "term_II_shift": abs(fqi_error_under_pi - fqi_error_under_mu),
        "details": {
            "q_pi": q_pi,
            "q_star": q_star,
            "state_action_pi": state_action_pi,
            "state_action_mu": state_action_mu,
        },
    }


def _theorem_check(claim: str, terms: dict, shift_term: float, **theorem_fields) -> TheoremCheck:
    return TheoremCheck(
        claim=claim,
        rhs=terms["eps_subopt"] + terms["eps_fqi"] + shift_term,
        shift_term=shift_term,
        **terms,
        **theorem_fields,
    )


def theorem1(mdp: DecMDP, pi: FactorizedPolicy, mu: FactorizedPolicy, q_hat) -> TheoremCheck:
    """Theorem 1 (eq. 12): ``|V^pi - V^hat^pi| <= eps_Subopt + eps_FQI + 4 gamma / (1 - gamma)^2 sum_i TV(pi_i, mu_i)``.

    ``V^pi = E_{s ~ d^pi, a ~ pi} Q^pi(s, a)``, ``V^hat^pi = E_{d^pi, pi} Q^hat`` (eq. 32),
    ``eps_Subopt = ||Q^pi - Q*||_inf`` and ``eps_FQI = ||Q* - Q^hat||_inf``.

    The inequality holds trivially, without its shift term: ``|V^pi - V^hat^pi| =
    |E_{d^pi, pi}[Q^pi - Q^hat]| <= ||Q^pi - Q^hat||_inf <= eps_Subopt + eps_FQI`` (see
    :attr:`TheoremCheck.holds_without_shift_term`). The Lipschitz assumption on ``Q^hat`` is
    reported in :attr:`TheoremCheck.lipschitz_assumption`, not enforced.

    Parameters
    ----------
    mdp : DecMDP
    pi : FactorizedPolicy
        Learned per-agent policies.
    mu : FactorizedPolicy
        Behavior policy (Assumption 1); for a correlated one use :func:`theorem2`.
    q_hat : array_like, shape (S, A_1, ..., A_n)
        The learned Q-function.

    Returns
    -------
    TheoremCheck
    """
    _refuse_correlated(mu, "Theorem 1")
    terms = _value_error_terms(mdp, pi, mu, q_hat)
    return _theorem_check(
        "|V^pi - Vhat^pi| <= eps_Subopt + eps_FQI + 4 gamma/(1-gamma)^2 * sum_i TV(pi_i, mu_i)",
        terms,
        _shift_coefficient(mdp.gamma) * float(terms["agent_tv"].sum()),
    )


def theorem2(mdp: DecMDP, pi: FactorizedPolicy, mu, q_hat) -> TheoremCheck:
    """Theorem 2 (eq. 14): Theorem 1 for a possibly correlated ``mu``, with ``+ kappa`` in the shift term.

    ``|V^pi - V^hat^pi| <= eps_Subopt + eps_FQI + 4 gamma / (1 - gamma)^2 (sum_i TV(pi_i, mu_i) + kappa)``.

    As :func:`theorem1`, with ``mu`` possibly correlated: ``TV`` is taken to ``mu``'s marginals,
    ``d^mu`` is the occupancy of the correlated ``mu`` itself and ``kappa`` is its excess
    correlation (Definition 1). It holds trivially, without its shift term, for the same reason.

    Parameters
    ----------
    mdp : DecMDP
    pi : FactorizedPolicy
    mu : FactorizedPolicy or JointPolicy
    q_hat : array_like, shape (S, A_1, ..., A_n)

    Returns
    -------
    TheoremCheck
    """
    terms = _value_error_terms(mdp, pi, mu, q_hat)
    return _theorem_check(
        "|V^pi - Vhat^pi| <= eps_Subopt + eps_FQI + 4 gamma/(1-gamma)^2 * (sum_i TV(pi_i, mu_i) + kappa)",
        terms,
        _shift_coefficient(mdp.gamma) * (float(terms["agent_tv"].sum()) + terms["kappa"]),
    )


def _check_weights(weights, n_states: int, n_agents: int) -> np.ndarray:
    weights = as_float_array("weights", weights, ndim=2)
    if weights.shape != (n_states, n_agents):
        raise ValueError(
            f"weights: expected shape ({n_states}, {n_agents}) (S, n), weights[s, k-1] = w_k(s), got {weights.shape}"
        )
    check_distributions("weights", weights, n_leading=1)
    return weights


def soft_partial_policy(pi: FactorizedPolicy, mu, weights) -> JointPolicy:
    """The soft-partial policy of SPaCQL, ``pi_w(a | s) = sum_k w_k(s) mean_{|K| = k} pi^(K)(a | s)``.

    ``pi^(K)`` is the mixed policy of eq. 10 (agents in ``K`` follow ``pi_i``, the others ``mu``'s
    marginals) and ``K`` runs over the ``binom(n, k)`` subsets of size ``k``. A mixture of products
    is not a product, so the result is a joint policy.

    Parameters
    ----------
    pi : FactorizedPolicy
    mu : FactorizedPolicy or JointPolicy
    weights : array_like, shape (S, n)
        ``weights[s, k-1] = w_k(s)`` for ``k = 1..n``; each row non-negative and summing to 1.

    Returns
    -------
    JointPolicy
        ``pi_w``, probabilities of shape (S, A_1, ..., A_n).
    """
    if not isinstance(pi, FactorizedPolicy):
        raise ValueError(f"pi: must be a FactorizedPolicy (per-agent learned policies), got {type(pi).__name__}")
    weights = _check_weights(weights, pi.n_states, pi.n_agents)
    n = pi.n_agents
    probs = np.zeros((pi.n_states, *pi.action_sizes))
    for k in range(1, n + 1):
        share = (weights[:, k - 1] / comb(n, k)).reshape((-1,) + (1,) * n)  # per state, broadcast over actions
        for subset in combinations(range(n), k):
            probs += share * mixed_policy(pi, mu, subset).joint()
    return JointPolicy(probs)


def theorem3(mdp: DecMDP, pi: FactorizedPolicy, mu: FactorizedPolicy, q_hat, weights) -> TheoremCheck:
    """Theorem 3: ``|V^pi - V^hat^pi| <= eps_Subopt + eps_FQI + 4 gamma / (1 - gamma)^2 E_{s ~ d^pi}[k_eff(s)] TVbar``.

    ``k_eff(s) = sum_k k w_k(s)`` and ``TVbar = (1 / n) sum_i TV(pi_i, mu_i)``; the other terms are
    those of :func:`theorem1`, whose factorized-behavior assumption Theorem 3 keeps (it has no
    ``kappa``). The result also carries the soft-partial policy ``pi_w`` (see
    :func:`soft_partial_policy`), its occupancy and its shift ``W1(d^{pi_w}, d^mu)``.

    Like Theorems 1 and 2 it holds trivially, without its shift term (see
    :attr:`TheoremCheck.holds_without_shift_term`).

    Parameters
    ----------
    mdp : DecMDP
    pi : FactorizedPolicy
    mu : FactorizedPolicy
    q_hat : array_like, shape (S, A_1, ..., A_n)
    weights : array_like, shape (S, n)
        ``weights[s, k-1] = w_k(s)`` for ``k = 1..n``; each row non-negative and summing to 1.

    Returns
    -------
    TheoremCheck
        With ``k_eff``, ``expected_k_eff``, ``tv_bar``, ``soft_partial_policy``, ``d_soft_partial``
        and ``soft_partial_shift`` set.
    """
    _refuse_correlated(mu, "Theorem 3")
    weights = _check_weights(weights, mdp.n_states, mdp.n_agents)
    terms = _value_error_terms(mdp, pi, mu, q_hat)
    k_eff = weights @ np.arange(1, mdp.n_agents + 1)
    expected_k_eff = float(terms["d_pi"] @ k_eff)
    tv_bar = float(terms["agent_tv"].mean())
    policy_w = soft_partial_policy(pi, mu, weights)
    d_soft_partial = state_occupancy(mdp, policy_w)
    return _theorem_check(
        "|V^pi - Vhat^pi| <= eps_Subopt + eps_FQI + 4 gamma/(1-gamma)^2 * E_{s~d^pi}[k_eff(s)] * TVbar",
        terms,
        _shift_coefficient(mdp.gamma) * expected_k_eff * tv_bar,
        k_eff=k_eff,
        expected_k_eff=expected_k_eff,
        tv_bar=tv_bar,
        soft_partial_policy=policy_w,
        d_soft_partial=d_soft_partial,
        soft_partial_shift=tv(d_soft_partial, terms["d_mu"]),
    )


@dataclass(frozen=True, kw_only=True)
class GradientCheck(BoundCheck):
    """Proposition 1 on the tabular parameterization: ``lhs = max |g_avg - g_cen|`` against ``rhs = 0``.

    Attributes
    ----------
    grad_averaged : ndarray, shape (S, A_1, ..., A_n)
        ``g_avg = (1/n) sum_i grad J_i``, the ICQL-QS update averaged over agents.
    grad_centralized : ndarray, shape (S, A_1, ..., A_n)
        ``g_cen = grad J^centralized``, the semi-gradient of the centralized TD loss (eq. 16).
    loss_averaged : float
        ``J^ai = (1/n) sum_i J_i`` with ``J_i = 1/2 sum_t w_t (Q(s_t, a_t) - y_{t,i})^2``.
    loss_centralized : float
        ``J^centralized = 1/2 sum_t w_t (Q(s_t, a_t) - ybar_t)^2``.
    loss_gap : float
        ``loss_averaged - loss_centralized``.
    target_variance_term : float
        ``1/2 sum_t w_t Var_i(y_{t,i})`` (population variance over agents), which equals ``loss_gap``.
    details : dict
        ``targets`` (N, n): ``y_{t,i}``; ``centralized_targets`` (N,): ``ybar_t``.
    """

    grad_averaged: np.ndarray
    grad_centralized: np.ndarray
    loss_averaged: float
    loss_centralized: float
    loss_gap: float
    target_variance_term: float


def proposition1(dataset: Dataset, q, pi: FactorizedPolicy, gamma: float) -> GradientCheck:
    """Proposition 1 (eq. 15-16, proof eq. 54-70): averaged individual TD semi-gradients equal the centralized one.

    With ``theta = Q``, the table of shape (S, A_1, ..., A_n), and targets held constant
    (semi-gradient), agent ``i``'s target is ``y_{t,i} = r_t + gamma B_{{i}} Q(s'_t, a'_t)``, the
    individual backup of eq. 1 (:func:`tabular.backups.individual_backups`), and

        grad J_i[s, a] = sum_{t : (s_t, a_t) = (s, a)} w_t (Q(s, a) - y_{t,i}),

    with ``w_t`` the dataset weights. ``g_avg = (1/n) sum_i grad J_i`` and ``g_cen`` (the same
    with ``ybar_t = (1/n) sum_i y_{t,i}``, the ``T^ai`` target of eq. 15) are computed separately
    by scatter-add; they agree up to round-off.

    The losses do not agree: ``(1/n) sum_i (x - y_i)^2 = (x - ybar)^2 + Var_i(y_i)``, so
    ``J^ai - J^centralized = 1/2 sum_t w_t Var_i(y_{t,i})``, constant in ``theta`` under the
    semi-gradient convention, which is why the gradients coincide anyway.

    Parameters
    ----------
    dataset : Dataset
    q : array_like, shape (S, A_1, ..., A_n)
    pi : FactorizedPolicy
        The learned per-agent policies used in the backups.
    gamma : float
        Discount factor in [0, 1).

    Returns
    -------
    GradientCheck
    """
    if not isinstance(dataset, Dataset):
        raise ValueError(f"dataset: must be a tabular.datasets.Dataset, got {type(dataset).__name__}")
    gamma = check_gamma(gamma)
    next_values = individual_backups(q, dataset, pi)  # validates q and pi against the dataset
    q = np.asarray(q, dtype=float)
    targets = dataset.rewards[:, None] + gamma * next_values  # [N, n]
    centralized_targets = targets.mean(axis=1)
    cell = (dataset.states, dataset.joint_index(dataset.actions))
    q_logged = q.reshape(dataset.n_states, -1)[cell]  # [N]
    residuals = q_logged[:, None] - targets  # [N, n]

    def semi_gradient(residual: np.ndarray) -> np.ndarray:
        """``grad_theta 1/2 sum_t w_t (Q(s_t, a_t) - y_t)^2`` with ``y`` constant: a scatter-add into the table."""
        gradient = np.zeros((dataset.n_states, int(np.prod(dataset.action_sizes))))
        np.add.at(gradient, cell, dataset.weights * residual)
        return gradient.reshape(q.shape)

    # average the n per-agent gradients after computing each one, so that linearity is checked, not assumed
    grad_averaged = np.mean([semi_gradient(residuals[:, i]) for i in range(dataset.n_agents)], axis=0)
    grad_centralized = semi_gradient(q_logged - centralized_targets)
    loss_averaged = float(np.mean(0.5 * dataset.weights @ residuals**2))
    loss_centralized = 0.5 * float(dataset.weights @ (q_logged - centralized_targets) ** 2)
    return GradientCheck(
        claim="(1/n) sum_i grad J_i(theta) = grad J^centralized(theta) (semi-gradient, theta = Q table)",
        lhs=float(np.abs(grad_averaged - grad_centralized).max()),
        rhs=0.0,
        details={"targets": targets, "centralized_targets": centralized_targets},
        grad_averaged=grad_averaged,
        grad_centralized=grad_centralized,
        loss_averaged=loss_averaged,
        loss_centralized=loss_centralized,
        loss_gap=loss_averaged - loss_centralized,
        target_variance_term=0.5 * float(dataset.weights @ targets.var(axis=1)),
    )
