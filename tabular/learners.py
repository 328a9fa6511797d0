"""Tabular offline learners: FQE, full-joint Q-learning, CQL (joint / counterfactual), ICQL-QS, SPaCQL.

All learners are fitted iterations on a :class:`~tabular.datasets.Dataset` with a tabular
parameterization (one number per ``(s, a)``), following Algorithm 1 of the paper:

1. **Targets** at every transition from the previous table (the target network of a tabular
   iteration), with the backup of the learner:
   ``Q(s', a')``-expectations under ``k`` deviating agents (eq. 1, 3; ``tabular.backups``),
   the uncertainty-weighted soft-partial mix of them (eq. 4, 6, 7), or ``max_a' Q(s', a')``.
2. **Regression** of the table on the targets with the conservative penalty, solved exactly: the
   loss ``E_D[(Q(s, a) - y)^2] + alpha * sum_{s,a} G(s, a) Q(s, a)`` (eq. 2, 5) is separable, so
   ``Q(s, a) = ybar(s, a) - alpha G(s, a) / (2 W(s, a))`` where ``W`` is the data weight of
   ``(s, a)`` and ``ybar`` the weighted mean target. The table is kept in the value range
   ``|Q| <= 1 / (1 - gamma)``: an unseen pair that the penalty pushes down (``W = 0 < G``) goes to
   ``-1 / (1 - gamma)``; an unseen pair with no penalty keeps its current value (its initial value
   unless an earlier policy's penalty moved it).
3. **Policy improvement per agent** (Algorithm 1, line 20): ``pi_i(. | s)`` greedy (or softmax)
   in ``E_{a_-i ~ D(s)} Q(s, a_i, a_-i)``, the other agents' actions at their logged distribution.

Steps 1-2 repeat under a fixed policy (policy evaluation) until the contraction bound certifies
``tol``, as in :func:`tabular.q_optimal`: under a fixed policy a sweep is a ``gamma``-contraction in
the sup norm, so ``gamma / (1 - gamma) * ||Q_t - Q_{t-1}||_inf <= tol`` certifies that ``Q_t`` is
within ``tol`` of the evaluation's fixed point (the change itself must also be ``<= tol``, which
only binds for ``gamma <= 1/2``, where the results are those of the earlier change-only rule). Then
step 3 runs once (policy iteration); the learner
stops when the improved policy was already evaluated before. The first policy is the data's
empirical behavior. (For SPaCQL with ``weighting="uncertainty"`` the weights move with the
ensemble, so a sweep need not be a contraction and the same stopping rule is not a certificate.)

Sweeps: by default (``max_iter=None``) an evaluation may run as many sweeps as the contraction
needs in the worst case to certify ``tol`` from a table in the value range,
``2 gamma^t / (1 - gamma)^2 <= tol``; when that exceeds :data:`MAX_SWEEPS` (``gamma`` very close
to 1, e.g. 0.999999) the learner refuses at once with a ``ValueError`` naming ``gamma`` instead of
running for hours. FQE raises a ``RuntimeError`` when its evaluation stops uncertified (an explicit
``max_iter`` too small, or a ``tol`` below round-off); the learners that improve their policy stop
that evaluation there (a truncated fitted iteration, e.g. ``max_iter=1`` for one sweep) and report
``converged=False`` with the certified ``error_bound``.

Penalties ``G = pushed-down distribution - data distribution``:

* ``"joint"`` (MACQL-like): ``D(s) pi(a | s) - W(s, a)``;
* ``"counterfactual"`` (CFCQL-like, the paper's ``xi_c`` with ``lambda_i = 1 / n``, and the
  average over agents of ICQL-QS's eq. 2 penalty): ``(1/n) sum_i W_{-i}(s, a_-i) pi_i(a_i | s) - W(s, a)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._validate import check_memory, joint_actions_text
from .backups import k_backups
from .datasets import Dataset
from .policies import FactorizedPolicy, JointPolicy
from .validation import (
    SettingsError,
    check_choice,
    check_gamma,
    check_int,
    check_real,
    check_size,
    check_type,
    invalid,
)

#: Added to the ensemble standard deviation before inverting it (eq. 7), so that an ensemble
#: that agrees exactly gets a large finite weight rather than a division by zero.
UNCERTAINTY_FLOOR = 1e-8

#: The most sweeps one policy evaluation runs when ``max_iter`` is not given (as ``tabular.q_optimal``'s
#: ``max_iter``); a ``gamma`` and ``tol`` whose worst case needs more are refused up front.
MAX_SWEEPS = 1_000_000


@dataclass(frozen=True)
class LearnerResult:
    """What a tabular learner returns.

    Attributes
    ----------
    q : ndarray, shape (S, A_1, ..., A_n)
        The learned table (ensemble member 0 for SPaCQL, the one the policy is improved on).
    policy : FactorizedPolicy
        The per-agent improvement of ``q`` (for FQE, the evaluated policy). When greedy improvement
        cycles, ``q`` and ``weights`` belong to the last evaluated policy and ``policy`` is the
        (earlier seen) improvement of that ``q``.
    q_ensemble : ndarray, shape (J, S, A_1, ..., A_n)
        All members (J = 1 except for SPaCQL).
    weights : ndarray, shape (S, n) or None
        SPaCQL's ``w_k(s)`` for ``k = 1..n``: the per-transition weights averaged over the
        transitions whose next state is ``s`` (uniform ``1/n`` where ``s`` is never a next state).
    iterations : int
        Fitted-iteration sweeps over the dataset, all policy-evaluation phases together.
    converged : bool
        Whether the last evaluation certified ``tol`` (``error_bound <= tol``) and, for the
        learners that improve their policy, the improved policy equals the evaluated one. ``False``
        also when greedy improvement cycles between policies (the conservative penalty depends on
        the policy, so a greedy fixed point need not exist), or when an explicit ``max_iter``
        truncated the evaluation.
    error_bound : float
        ``gamma / (1 - gamma) * ||Q_t - Q_{t-1}||_inf`` at the last sweep: a bound on the distance of
        ``q_ensemble`` to the fixed point of the last evaluation (module docstring).
    """

    q: np.ndarray
    policy: FactorizedPolicy
    q_ensemble: np.ndarray
    weights: np.ndarray | None
    iterations: int
    converged: bool
    error_bound: float = math.nan


def uncertainty_weights(uncertainty: np.ndarray) -> np.ndarray:
    """``w_k = (1 / u_k) / sum_k (1 / u_k)`` along the last axis (eq. 7 and Algorithm 1, lines 10-13)."""
    inverse = 1.0 / (np.asarray(uncertainty) + UNCERTAINTY_FLOOR)
    return inverse / inverse.sum(axis=-1, keepdims=True)


def fitted_q_evaluation(
    dataset: Dataset, gamma: float, pi: FactorizedPolicy, *, max_iter: int | None = None, tol: float = 1e-10
) -> LearnerResult:
    """Evaluate ``pi``: targets ``r + gamma E_{a' ~ pi(s')} Q(s', a')``, no penalty, no improvement.

    On :func:`~tabular.datasets.exact_dataset` data whose behavior covers every action, the
    fixed point is ``Q^pi``. Stops when ``gamma / (1 - gamma) * ||Q_t - Q_{t-1}||_inf <= tol``,
    which certifies ``||q - fixed point||_inf <= tol``; raises a ``ValueError`` up front when the
    worst case needs more than :data:`MAX_SWEEPS` sweeps and ``max_iter`` is not given, and a
    ``RuntimeError`` when ``max_iter`` sweeps do not certify ``tol``.

    Parameters
    ----------
    dataset : Dataset
        Transitions with ``|r| <= 1``.
    gamma : float
        Discount factor in ``[0, 1)``.
    pi : FactorizedPolicy
        The evaluated per-agent policies.
    max_iter : int or None
        Sweeps allowed, ``>= 1``; ``None``: as many as the worst case needs (module docstring).
    tol : float
        Certified accuracy, ``> 0``.
    """
    check_type("pi", pi, FactorizedPolicy, "a FactorizedPolicy (per-agent learned policies)")
    return _fitted_iteration(
        dataset,
        gamma,
        backup="all",
        penalty=None,
        alpha=0.0,
        improve=False,
        learner="fitted_q_evaluation",
        policy=pi,
        max_iter=max_iter,
        tol=tol,
    )


def q_learning(
    dataset: Dataset, gamma: float, *, max_iter: int | None = None, max_policy_iter: int = 50, tol: float = 1e-10
) -> LearnerResult:
    """Greedy full-joint Q-learning: targets ``r + gamma max_a' Q(s', a')``; no penalty.

    The returned policy plays, per state, the components of the joint argmax of ``Q``. The
    arguments are those of :func:`cql` (no ``alpha``, ``penalty`` or ``temperature``: the policy is greedy).
    """
    return _fitted_iteration(
        dataset,
        gamma,
        backup="max",
        penalty=None,
        alpha=0.0,
        improve=True,
        learner="q_learning",
        max_iter=max_iter,
        max_policy_iter=max_policy_iter,
        tol=tol,
    )


def cql(
    dataset: Dataset,
    gamma: float,
    alpha: float,
    penalty: str = "counterfactual",
    *,
    temperature: float | None = None,
    max_iter: int | None = None,
    max_policy_iter: int = 50,
    tol: float = 1e-10,
) -> LearnerResult:
    """CQL with the full joint backup ``r + gamma E_{a' ~ pi} Q(s', a')``.

    Parameters
    ----------
    dataset : Dataset
        Transitions with ``|r| <= 1``.
    gamma : float
        Discount factor in ``[0, 1)``.
    alpha : float
        Weight of the conservative penalty, ``>= 0`` (finite).
    penalty : "joint" or "counterfactual"
        ``"joint"`` is MACQL-like, ``"counterfactual"`` CFCQL-like (module docstring).
    temperature : float or None
        ``> 0``: softmax policy improvement at that temperature; ``None``: greedy.
    max_iter : int or None
        Sweeps allowed per policy evaluation, ``>= 1``; ``None``: as many as the worst case needs
        to certify ``tol`` (module docstring).
    max_policy_iter : int
        Policy-improvement steps allowed, ``>= 1``.
    tol : float
        Certified accuracy of each policy evaluation, ``> 0``.
    """
    check_choice("penalty", penalty, ("joint", "counterfactual"))
    return _fitted_iteration(
        dataset,
        gamma,
        backup="all",
        penalty=penalty,
        alpha=alpha,
        improve=True,
        learner="cql",
        temperature=temperature,
        max_iter=max_iter,
        max_policy_iter=max_policy_iter,
        tol=tol,
    )


def icql_qs(
    dataset: Dataset,
    gamma: float,
    alpha: float,
    *,
    temperature: float | None = None,
    max_iter: int | None = None,
    max_policy_iter: int = 50,
    tol: float = 1e-10,
) -> LearnerResult:
    """ICQL-QS: the averaged individual operator ``T^ai = (1/n) sum_i T_i^ind`` (eq. 1, 2, 15).

    ``T^ai`` equals ``T^(1)`` (one uniformly chosen deviating agent); the penalty is the
    counterfactual one averaged over agents. The arguments are those of :func:`cql`.
    """
    return _fitted_iteration(
        dataset,
        gamma,
        backup=1,
        penalty="counterfactual",
        alpha=alpha,
        improve=True,
        learner="icql_qs",
        temperature=temperature,
        max_iter=max_iter,
        max_policy_iter=max_policy_iter,
        tol=tol,
    )


def spacql(
    dataset: Dataset,
    gamma: float,
    alpha: float,
    *,
    n_members: int = 5,
    weighting="uncertainty",
    seed: int = 0,
    temperature: float | None = None,
    max_iter: int | None = None,
    max_policy_iter: int = 50,
    tol: float = 1e-10,
) -> LearnerResult:
    """SPaCQL (Algorithm 1): soft-partial targets from a Q-ensemble (eq. 4-7), counterfactual penalty.

    ``Y = r + gamma sum_k w_k min_j B^(k) Q_j`` with ``B^(k)`` the expected next value when ``k``
    uniformly chosen agents deviate (the expectation over ``pi`` is taken inside the min) and
    ``w_k`` from ``u_k = std_j B^(k) Q_j``. The members disagree because each is fitted on its own
    bootstrap resample of the dataset (multinomial, ``N = len(dataset)`` draws, from the dataset
    weights) and starts from its own uniform random table in ``[-1/(1-gamma), 1/(1-gamma)]``.

    Parameters
    ----------
    n_members : int
        Ensemble members, ``>= 2`` (a standard deviation needs two).
    weighting : "uncertainty", "uniform" or int
        ``"uncertainty"`` is the paper's eq. 7; ``"uniform"`` sets ``w_k = 1/n`` (ablation); an
        integer ``k`` in ``1..n`` uses the fixed operator ``T^(k)`` (ablation; ``k = 1`` is ICQL-QS's
        backup, ``k = n`` the full joint one).
    seed : int
        Seed (``>= 0``) of the bootstrap resamples and the initial tables.
    dataset, gamma, alpha, temperature, max_iter, max_policy_iter, tol
        As for :func:`cql`.
    """
    check_type("dataset", dataset, Dataset, "a tabular.datasets.Dataset")
    return _fitted_iteration(
        dataset,
        gamma,
        backup="soft-partial",
        penalty="counterfactual",
        alpha=alpha,
        improve=True,
        learner="spacql",
        n_members=check_size("n_members", n_members, minimum=2),
        weighting=_check_weighting(weighting, dataset.n_agents),
        seed=check_int("seed", seed, minimum=0),
        temperature=temperature,
        max_iter=max_iter,
        max_policy_iter=max_policy_iter,
        tol=tol,
    )


def _check_weighting(weighting, n_agents: int):
    """SPaCQL's ``weighting``: ``"uncertainty"``, ``"uniform"`` or a fixed ``k`` in ``1..n_agents`` (as an int)."""
    if isinstance(weighting, str) and weighting in ("uncertainty", "uniform"):
        return weighting
    try:
        return check_int("weighting", weighting, 1, n_agents)
    except SettingsError:
        raise invalid("weighting", f"uncertainty, uniform or an integer k in [1, {n_agents}]", weighting) from None


def _fitted_iteration(
    dataset: Dataset,
    gamma: float,
    *,
    backup,
    penalty: str | None,
    alpha: float,
    improve: bool,
    learner: str,
    policy: FactorizedPolicy | None = None,
    n_members: int = 1,
    weighting="uncertainty",
    seed: int = 0,
    temperature: float | None = None,
    max_iter: int | None = None,
    max_policy_iter: int = 50,
    tol: float = 1e-10,
) -> LearnerResult:
    """The shared loop of every learner (module docstring): targets, exact regression, improvement."""
    check_type("dataset", dataset, Dataset, "a tabular.datasets.Dataset")
    gamma = check_gamma(gamma)
    alpha = check_real("alpha", alpha, 0.0, math.inf)
    if temperature is not None:
        temperature = check_real("temperature", temperature, 0.0, math.inf, low_open=True)
    tol = check_real("tol", tol, 0.0, math.inf, low_open=True)
    if max_iter is None:
        max_iter = _sweeps_to_certify(gamma, tol)
        if max_iter > MAX_SWEEPS:
            raise ValueError(
                f"gamma: {gamma!r} is so close to 1 that certifying tol={tol:.3g} can take up to {max_iter:,} "
                f"sweeps per policy evaluation (2 gamma^t / (1 - gamma)^2 <= tol), more than the default cap of "
                f"{MAX_SWEEPS:,} (tabular.learners.MAX_SWEEPS); raise tol, lower gamma, or pass max_iter to try anyway"
            )
    else:
        max_iter = check_size("max_iter", max_iter, minimum=1)
    max_policy_iter = check_size("max_policy_iter", max_policy_iter, minimum=1)
    if np.abs(dataset.rewards).max() > 1.0 + 1e-12:
        raise ValueError("dataset: rewards must satisfy |r| <= 1 (the value range 1/(1-gamma) relies on it)")
    n, shape = dataset.n_agents, (dataset.n_states, *dataset.action_sizes)
    n_joint = math.prod(dataset.action_sizes)
    check_memory(
        "dataset",
        f"{n} agents with {joint_actions_text(dataset.action_sizes)} joint actions",
        [
            (
                f"the tables (q, its update, data weights, penalties, temporaries): 8 x {n_members} members x "
                f"{dataset.n_states} states x {joint_actions_text(dataset.action_sizes, short=True)} joint actions "
                "x 8 bytes",
                8 * n_members * dataset.n_states * n_joint * 8,
            ),
            (
                f"the next-state values and their contractions: 3 x {n_members} members x {len(dataset)} "
                f"transitions x {joint_actions_text(dataset.action_sizes, short=True)} joint actions x 8 bytes",
                3 * n_members * len(dataset) * n_joint * 8,
            ),
        ],
    )
    v_max = 1.0 / (1.0 - gamma)
    rng = np.random.default_rng(seed)
    cell = np.ravel_multi_index((dataset.states, *dataset.actions.T), shape)  # [N] flat (s, a) index
    behavior = _behavior_with_uniform_fallback(dataset)  # [S, A_1..A_n]

    if n_members == 1:
        member_weights = dataset.weights[None]
        q = np.zeros((1, *shape))
    else:
        draws = rng.multinomial(len(dataset), dataset.weights, size=n_members)
        member_weights = draws / len(dataset)
        q = rng.uniform(-v_max, v_max, size=(n_members, *shape))
    data_weight = np.stack([np.bincount(cell, w, minlength=q[0].size).reshape(shape) for w in member_weights])
    if policy is None:
        policy = FactorizedPolicy(JointPolicy(behavior).marginals())

    seen_policies, next_state_weights, iterations, converged = [], None, 0, False
    for _ in range(max_policy_iter):
        # evaluation: the table's fitted iteration under the current policy, to its fixed point
        for sweep in range(1, max_iter + 1):  # noqa: B007 (the count is read after the loop)
            iterations += 1
            if backup == "max":
                next_value = q[:, dataset.next_states].reshape(len(q), len(dataset), -1).max(axis=2)  # [J, N]
            else:
                per_k = np.stack([k_backups(member, dataset, policy) for member in q])  # [J, N, n + 1]
                if backup == "all":
                    next_value = per_k[..., n]
                elif backup != "soft-partial":
                    next_value = per_k[..., backup]
                else:
                    deviating = per_k[..., 1:]  # [J, N, n]; column k-1 is B^(k)
                    next_state_weights = _soft_partial_weights(deviating, weighting, n)  # [N, n]
                    next_value = (next_state_weights * deviating.min(axis=0)).sum(axis=1)[None]  # shared target
            targets = dataset.rewards + gamma * next_value  # [J or 1, N]
            pushdown = [_penalty(penalty, data_weight[j], policy) for j in range(len(q))]
            updated = np.stack(
                [
                    _regress(
                        np.bincount(
                            cell, member_weights[j] * targets[min(j, len(targets) - 1)], minlength=q[j].size
                        ).reshape(shape),
                        data_weight[j],
                        pushdown[j],
                        alpha,
                        q[j],
                        v_max,
                    )
                    for j in range(len(q))
                ]
            )
            change = np.abs(updated - q).max()
            q = updated
            # a gamma-contraction certifies ||q - fixed point||_inf <= gamma / (1 - gamma) * change
            bound = gamma / (1.0 - gamma) * change if gamma > 0 else 0.0
            certified = bound <= tol and change <= tol  # the second binds for gamma <= 1/2 only
            if certified:
                break
        if not certified and not improve:
            raise RuntimeError(
                f"max_iter: {learner} stopped a policy evaluation after {sweep:,} sweeps with certified error "
                f"{bound:.3g} > tol={tol:.3g} (gamma={gamma!r}); raise max_iter or tol"
            )
        if not improve:
            converged = certified
            break
        # improvement; a policy seen before means it is stable (or cycling): stop either way
        seen_policies.append(policy)
        policy = _improve(q[0], behavior, backup == "max", temperature)
        if any(_same_policy(policy, earlier) for earlier in seen_policies):
            converged = certified and _same_policy(policy, seen_policies[-1])
            break

    weights = None if next_state_weights is None else _per_state(next_state_weights, dataset)
    return LearnerResult(q[0], policy, q, weights, iterations, converged, float(bound))


def _sweeps_to_certify(gamma: float, tol: float) -> int:
    """Sweeps after which a ``gamma``-contraction started in the box ``|Q| <= 1/(1-gamma)`` certifies ``tol``.

    The first sweep moves the table by at most ``2 / (1 - gamma)`` (both tables lie in the box) and
    sweep ``t`` by at most ``gamma^(t-1)`` times that, so the bound ``gamma / (1 - gamma) * change``
    is at most ``2 gamma^t / (1 - gamma)^2``, which is ``<= tol`` from the returned ``t`` on (as is the
    change itself, which the stopping rule also asks to be ``<= tol``).
    """
    if gamma == 0.0:
        return 2  # the first sweep reaches the fixed point, the second sees it move by 0
    v_max = 1.0 / (1.0 - gamma)
    change_below_tol = 1 + math.ceil(math.log(tol / (2.0 * v_max)) / math.log(gamma))
    bound_below_tol = math.ceil(math.log(tol * (1.0 - gamma) ** 2 / 2.0) / math.log(gamma))
    return max(1, change_below_tol, bound_below_tol)


def _same_policy(a: FactorizedPolicy, b: FactorizedPolicy) -> bool:
    return all(np.allclose(x, y, rtol=0, atol=1e-12) for x, y in zip(a.factors, b.factors, strict=True))


def _soft_partial_weights(deviating: np.ndarray, weighting, n: int) -> np.ndarray:
    """Per-transition ``w_k`` for ``k = 1..n``, shape (N, n), from the ensemble's ``B^(k) Q_j`` [J, N, n]."""
    if weighting == "uncertainty":
        return uncertainty_weights(deviating.std(axis=0))
    weights = np.zeros(deviating.shape[1:])
    if weighting == "uniform":
        weights[:] = 1.0 / n
    else:
        weights[:, weighting - 1] = 1.0
    return weights


def _regress(weighted_sum, data_weight, pushdown, alpha, previous, v_max):
    """Exact minimizer of ``sum_t w_t (Q(s_t, a_t) - y_t)^2 + alpha sum G Q`` over the box ``|Q| <= v_max``."""
    seen = data_weight > 0
    table = np.where(seen, (weighted_sum - 0.5 * alpha * pushdown) / np.where(seen, data_weight, 1.0), previous)
    if alpha > 0:
        table = np.where(~seen & (pushdown > 0), -v_max, table)
    return np.clip(table, -v_max, v_max)


def _penalty(kind: str | None, data_weight: np.ndarray, policy: FactorizedPolicy) -> np.ndarray:
    """The linear coefficient ``G(s, a)`` of the conservative penalty (module docstring)."""
    if kind is None:
        return np.zeros_like(data_weight)
    if kind == "joint":
        state_weight = data_weight.reshape(len(data_weight), -1).sum(axis=1)
        return state_weight.reshape((-1,) + (1,) * (data_weight.ndim - 1)) * policy.joint() - data_weight
    n = data_weight.ndim - 1
    pushed = np.zeros_like(data_weight)
    for i, pi_i in enumerate(policy.factors):
        others = data_weight.sum(axis=1 + i, keepdims=True)  # W_{-i}(s, a_-i), agent i's axis summed out
        pushed += others * _along_agent_axis(pi_i, i, n)
    return pushed / n - data_weight


def _along_agent_axis(pi_i: np.ndarray, agent: int, n_agents: int) -> np.ndarray:
    """Reshape ``pi_i`` (S, A_i) to broadcast along agent ``agent``'s axis of an (S, A_1..A_n) table."""
    shape = [pi_i.shape[0]] + [1] * n_agents
    shape[1 + agent] = pi_i.shape[1]
    return pi_i.reshape(shape)


def _improve(q: np.ndarray, behavior: np.ndarray, joint_greedy: bool, temperature) -> FactorizedPolicy:
    """Per-agent improvement on ``E_{a_-i ~ D(s)} Q(s, a_i, a_-i)`` (Algorithm 1, line 20).

    ``joint_greedy`` (Q-learning) plays the components of the joint argmax instead.
    """
    n_states, sizes = q.shape[0], q.shape[1:]
    if joint_greedy:
        best = np.unravel_index(q.reshape(n_states, -1).argmax(axis=1), sizes)
        return FactorizedPolicy([np.eye(a)[best_i] for a, best_i in zip(sizes, best, strict=True)])
    factors = []
    for i in range(len(sizes)):
        others = behavior.sum(axis=1 + i, keepdims=True)  # mu_hat_{-i}(a_-i | s)
        value = (others * q).sum(axis=tuple(1 + j for j in range(len(sizes)) if j != i))  # [S, A_i]
        if temperature is None:
            factors.append(np.eye(sizes[i])[value.argmax(axis=1)])
        else:
            logits = (value - value.max(axis=1, keepdims=True)) / temperature
            factors.append(np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True))
    return FactorizedPolicy(factors)


def _behavior_with_uniform_fallback(dataset: Dataset) -> np.ndarray:
    """``mu_hat(a | s)`` from the data; uniform in states the data never visits."""
    behavior = dataset.empirical_behavior()
    flat = behavior.reshape(dataset.n_states, -1)
    unseen = flat.sum(axis=1) == 0
    flat[unseen] = 1.0 / flat.shape[1]
    return behavior


def _per_state(transition_weights: np.ndarray, dataset: Dataset) -> np.ndarray:
    """Average per-transition ``w_k`` over the transitions into each next state, shape (S, n)."""
    totals = np.zeros((dataset.n_states, dataset.n_agents))
    np.add.at(totals, dataset.next_states, dataset.weights[:, None] * transition_weights)
    mass = totals.sum(axis=1, keepdims=True)
    return np.where(mass > 0, totals / np.where(mass > 0, mass, 1.0), 1.0 / dataset.n_agents)
