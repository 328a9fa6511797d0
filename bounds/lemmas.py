"""Lemma 1, Lemma 2 and the product-difference inequality (paper, eq. 11, 13 and 25), computed exactly.

Each function returns a :class:`BoundCheck` with the left side, the right side, the slack
``rhs - lhs`` and whether the inequality ``lhs <= rhs`` holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tabular import (
    DecMDP,
    FactorizedPolicy,
    JointPolicy,
    excess_correlation,
    mixed_policy,
    policy_tv,
    state_occupancy,
    tv,
)
from tabular._validate import check_subset
from tabular.policies import check_policy

#: Floating-point allowance of ``holds``: occupancies come from a linear solve whose relative
#: error is a few ulps times cond(I - gamma P) <= (1 + gamma) / (1 - gamma) <= 200 for gamma <= 0.99,
#: so 1e-10 is far above round-off and far below any violation worth reporting.
ROUNDOFF = 1e-10


@dataclass(frozen=True)
class BoundCheck:
    """One exactly computed inequality ``lhs <= rhs``.

    Attributes
    ----------
    claim : str
        The inequality, as stated in the paper.
    lhs, rhs : float
    details : dict
        The intermediate quantities (per-agent TVs, kappa, occupancies, ...).
    """

    claim: str
    lhs: float
    rhs: float
    details: dict = field(default_factory=dict, repr=False)

    @property
    def slack(self) -> float:
        """``rhs - lhs``; negative when the inequality fails."""
        return self.rhs - self.lhs

    @property
    def holds(self) -> bool:
        """Whether ``lhs <= rhs`` up to :data:`ROUNDOFF`."""
        return self.lhs <= self.rhs + ROUNDOFF * (1.0 + abs(self.rhs))


def _check_instance(mdp: DecMDP, pi, mu, subset) -> tuple[int, ...]:
    """Validate the policies against ``mdp`` and return the sorted subset."""
    check_policy("pi", pi, mdp)
    check_policy("mu", mu, mdp)
    if not isinstance(pi, FactorizedPolicy):
        raise ValueError(f"pi: must be a FactorizedPolicy (per-agent learned policies), got {type(pi).__name__}")
    return check_subset(subset, mdp.n_agents)


def agent_tvs(pi: FactorizedPolicy, mu) -> np.ndarray:
    """``TV(pi_i, mu_i) = sup_s TV(pi_i(. | s), mu_i(. | s))`` for every agent (mu's marginals), shape (n,)."""
    return np.array([policy_tv(p, m) for p, m in zip(pi.factors, mu.marginals(), strict=True)])


def lemma1(mdp: DecMDP, pi: FactorizedPolicy, mu: FactorizedPolicy, subset) -> BoundCheck:
    """Lemma 1 (eq. 11): ``W1(d^(S), d^(empty)) <= gamma / (1 - gamma) sum_{i in S} TV(pi_i, mu_i)``.

    Requires a factorized behavior policy (Assumption 1); for a correlated one use :func:`lemma2`.
    """
    if isinstance(mu, JointPolicy):
        raise ValueError(
            f"mu: Lemma 1 assumes a factorized behavior policy (Assumption 1), got a JointPolicy with "
            f"kappa = {excess_correlation(mu):.3g}; use bounds.lemma2"
        )
    members = _check_instance(mdp, pi, mu, subset)
    tvs = agent_tvs(pi, mu)
    d_mixed = state_occupancy(mdp, mixed_policy(pi, mu, members))
    d_behavior = state_occupancy(mdp, mu)
    return BoundCheck(
        claim="W1(d^(S), d^mu) <= gamma/(1-gamma) * sum_{i in S} TV(pi_i, mu_i)",
        lhs=tv(d_mixed, d_behavior),
        rhs=mdp.gamma / (1.0 - mdp.gamma) * float(tvs[list(members)].sum()),
        details={"subset": members, "agent_tv": tvs, "d_mixed": d_mixed, "d_behavior": d_behavior},
    )


def lemma2(mdp: DecMDP, pi: FactorizedPolicy, mu, subset) -> BoundCheck:
    """Lemma 2 (eq. 13): ``W1(d^(S), d^mu) <= gamma / (1 - gamma) (sum_{i in S} TV(pi_i, mu_i) + kappa)``.

    ``mu`` may be correlated; agents outside ``S`` follow its marginals ``mu_j``, ``TV`` is taken
    to those marginals, ``d^mu`` is the occupancy of the correlated ``mu`` itself and ``kappa`` is
    its excess correlation (Definition 1).
    """
    members = _check_instance(mdp, pi, mu, subset)
    tvs = agent_tvs(pi, mu)
    kappa = excess_correlation(mu)
    d_mixed = state_occupancy(mdp, mixed_policy(pi, mu, members))
    d_behavior = state_occupancy(mdp, mu)
    return BoundCheck(
        claim="W1(d^(S), d^mu) <= gamma/(1-gamma) * (sum_{i in S} TV(pi_i, mu_i) + kappa)",
        lhs=tv(d_mixed, d_behavior),
        rhs=mdp.gamma / (1.0 - mdp.gamma) * (float(tvs[list(members)].sum()) + kappa),
        details={"subset": members, "agent_tv": tvs, "kappa": kappa, "d_mixed": d_mixed, "d_behavior": d_behavior},
    )


def product_difference(p_factors, q_factors) -> BoundCheck:
    """The product-difference inequality (eq. 25): ``sum_a |p(a) - q(a)| <= 2 sum_i TV(p_i, q_i)``.

    ``p(a) = prod_i p_i(a_i)`` and ``q(a) = prod_i q_i(a_i)``; ``p_factors[i]`` and ``q_factors[i]``
    are distributions over agent ``i``'s actions, of equal length.
    """
    p_factors, q_factors = list(p_factors), list(q_factors)
    if len(p_factors) != len(q_factors):
        raise ValueError(f"q_factors: has {len(q_factors)} factors but p_factors has {len(p_factors)}")
    try:
        p = FactorizedPolicy([np.asarray(f, dtype=float)[None] for f in p_factors])
    except ValueError as error:
        raise ValueError(f"p_factors: {error}") from None
    try:
        q = FactorizedPolicy([np.asarray(f, dtype=float)[None] for f in q_factors])
    except ValueError as error:
        raise ValueError(f"q_factors: {error}") from None
    if p.action_sizes != q.action_sizes:
        raise ValueError(f"q_factors: sizes {q.action_sizes} do not match p_factors' sizes {p.action_sizes}")
    factor_tvs = np.array([tv(a, b) for a, b in zip(p.factors, q.factors, strict=True)])
    return BoundCheck(
        claim="sum_a |prod_i p_i(a_i) - prod_i q_i(a_i)| <= 2 * sum_i TV(p_i, q_i)",
        lhs=float(np.abs(p.joint() - q.joint()).sum()),
        rhs=2.0 * float(factor_tvs.sum()),
        details={"factor_tv": factor_tvs},
    )
