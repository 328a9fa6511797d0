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

Steps 1-2 repeat under a fixed policy until the table moves by at most ``tol`` (policy
evaluation), then step 3 runs once (policy iteration); the learner stops when the improved
policy was already evaluated before. The first policy is the data's empirical behavior.

Penalties ``G = pushed-down distribution - data distribution``:

* ``"joint"`` (MACQL-like): ``D(s) pi(a | s) - W(s, a)``;
* ``"counterfactual"`` (CFCQL-like, the paper's ``xi_c`` with ``lambda_i = 1 / n``, and the
  average over agents of ICQL-QS's eq. 2 penalty): ``(1/n) sum_i W_{-i}(s, a_-i) pi_i(a_i | s) - W(s, a)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validate import check_gamma
from .backups import k_backups
from .datasets import Dataset
from .policies import FactorizedPolicy, JointPolicy

#: Added to the ensemble standard deviation before inverting it (eq. 7), so that an ensemble
#: that agrees exactly gets a large finite weight rather than a division by zero.
UNCERTAINTY_FLOOR = 1e-8


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
        Whether the last evaluation reached ``tol`` (sup-norm change of the table) and, for the
        learners that improve their policy, the improved policy equals the evaluated one. ``False``
        also when greedy improvement cycles between policies (the conservative penalty depends on
        the policy, so a greedy fixed point need not exist).
    """

    q: np.ndarray
    policy: FactorizedPolicy
    q_ensemble: np.ndarray
    weights: np.ndarray | None
    iterations: int
    converged: bool


def uncertainty_weights(uncertainty: np.ndarray) -> np.ndarray:
    """``w_k = (1 / u_k) / sum_k (1 / u_k)`` along the last axis (eq. 7 and Algorithm 1, lines 10-13)."""
    inverse = 1.0 / (np.asarray(uncertainty) + UNCERTAINTY_FLOOR)
    return inverse / inverse.sum(axis=-1, keepdims=True)


def fitted_q_evaluation(dataset: Dataset, gamma: float, pi: FactorizedPolicy, **options) -> LearnerResult:
    """Evaluate ``pi``: targets ``r + gamma E_{a' ~ pi(s')} Q(s', a')``, no penalty, no improvement.

    On :func:`~tabular.datasets.exact_dataset` data whose behavior covers every action, the
    fixed point is ``Q^pi``.
    """
    return _fitted_iteration(dataset, gamma, backup="all", penalty=None, alpha=0.0, policy=pi, improve=False, **options)


def q_learning(dataset: Dataset, gamma: float, **options) -> LearnerResult:
    """Greedy full-joint Q-learning: targets ``r + gamma max_a' Q(s', a')``; no penalty.

    The returned policy plays, per state, the components of the joint argmax of ``Q``.
    """
    return _fitted_iteration(dataset, gamma, backup="max", penalty=None, alpha=0.0, improve=True, **options)


def cql(dataset: Dataset, gamma: float, alpha: float, penalty: str = "counterfactual", **options) -> LearnerResult:
    """CQL with the full joint backup ``r + gamma E_{a' ~ pi} Q(s', a')``.

    ``penalty="joint"`` is MACQL-like, ``"counterfactual"`` CFCQL-like (module docstring).
    """
    if penalty not in ("joint", "counterfactual"):
        raise ValueError(f"penalty: must be 'joint' or 'counterfactual', got {penalty!r}")
    return _fitted_iteration(dataset, gamma, backup="all", penalty=penalty, alpha=alpha, improve=True, **options)


def icql_qs(dataset: Dataset, gamma: float, alpha: float, **options) -> LearnerResult:
    """ICQL-QS: the averaged individual operator ``T^ai = (1/n) sum_i T_i^ind`` (eq. 1, 2, 15).

    ``T^ai`` equals ``T^(1)`` (one uniformly chosen deviating agent); the penalty is the
    counterfactual one averaged over agents.
    """
    return _fitted_iteration(dataset, gamma, backup=1, penalty="counterfactual", alpha=alpha, improve=True, **options)


def spacql(
    dataset: Dataset,
    gamma: float,
    alpha: float,
    *,
    n_members: int = 5,
    weighting="uncertainty",
    seed: int = 0,
    **options,
) -> LearnerResult:
    """SPaCQL (Algorithm 1): soft-partial targets from a Q-ensemble (eq. 4-7), counterfactual penalty.

    ``Y = r + gamma sum_k w_k min_j B^(k) Q_j`` with ``B^(k)`` the expected next value when ``k``
    uniformly chosen agents deviate (the expectation over ``pi`` is taken inside the min) and
    ``w_k`` from ``u_k = std_j B^(k) Q_j``. The members disagree because each is fitted on its own
    bootstrap resample of the dataset (multinomial, ``N = len(dataset)`` draws, from the dataset
    weights) and starts from its own uniform random table in ``[-1/(1-gamma), 1/(1-gamma)]``.

    Parameters
    ----------
    weighting : "uncertainty", "uniform" or int
        ``"uncertainty"`` is the paper's eq. 7; ``"uniform"`` sets ``w_k = 1/n`` (ablation); an
        integer ``k`` in ``1..n`` uses the fixed operator ``T^(k)`` (ablation; ``k = 1`` is ICQL-QS's
        backup, ``k = n`` the full joint one).
    """
    if isinstance(weighting, str):
        if weighting not in ("uncertainty", "uniform"):
            raise ValueError(f"weighting: must be 'uncertainty', 'uniform' or an int k, got {weighting!r}")
    elif not (isinstance(weighting, (int, np.integer)) and 1 <= weighting <= dataset.n_agents):
        raise ValueError(f"weighting: a fixed k must be an integer in 1..{dataset.n_agents}, got {weighting!r}")
    if int(n_members) < 2:
        raise ValueError(f"n_members: an ensemble needs at least 2 members for a standard deviation, got {n_members}")
    return _fitted_iteration(
        dataset,
        gamma,
        backup="soft-partial",
        penalty="counterfactual",
        alpha=alpha,
        improve=True,
        n_members=int(n_members),
        weighting=weighting,
        seed=seed,
        **options,
    )


def _fitted_iteration(
    dataset: Dataset,
    gamma: float,
    *,
    backup,
    penalty: str | None,
    alpha: float,
    improve: bool,
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
    if not isinstance(dataset, Dataset):
        raise ValueError(f"dataset: must be a tabular.datasets.Dataset, got {type(dataset).__name__}")
    gamma = check_gamma(gamma)
    if not (np.isfinite(alpha) and alpha >= 0):
        raise ValueError(f"alpha: must be a finite non-negative number, got {alpha!r}")
    if temperature is not None and not temperature > 0:
        raise ValueError(f"temperature: must be positive (or None for greedy), got {temperature!r}")
    if max_iter is None:
        # a gamma-contraction moves a table in the box |Q| <= v_max by at most 2 v_max gamma^t after t sweeps
        max_iter = 1 + int(np.ceil(np.log(tol / (2.0 / (1.0 - gamma))) / np.log(gamma))) if gamma > 0 else 2
    if int(max_iter) < 1 or int(max_policy_iter) < 1:
        raise ValueError(f"max_iter, max_policy_iter: must be at least 1, got {max_iter}, {max_policy_iter}")
    if np.abs(dataset.rewards).max() > 1.0 + 1e-12:
        raise ValueError("dataset: rewards must satisfy |r| <= 1 (the value range 1/(1-gamma) relies on it)")
    n, shape = dataset.n_agents, (dataset.n_states, *dataset.action_sizes)
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
    for _ in range(int(max_policy_iter)):
        # evaluation: the table's fitted iteration under the current policy, to its fixed point
        for _ in range(int(max_iter)):
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
            if change <= tol:
                break
        if not improve:
            converged = change <= tol
            break
        # improvement; a policy seen before means it is stable (or cycling): stop either way
        seen_policies.append(policy)
        policy = _improve(q[0], behavior, backup == "max", temperature)
        if any(_same_policy(policy, earlier) for earlier in seen_policies):
            converged = change <= tol and _same_policy(policy, seen_policies[-1])
            break

    weights = None if next_state_weights is None else _per_state(next_state_weights, dataset)
    return LearnerResult(q[0], policy, q, weights, iterations, converged)


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
