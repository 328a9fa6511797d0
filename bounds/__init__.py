"""The paper's inequalities computed exactly on finite Dec-MDPs: left side, right side, slack.

Lemma 1 (eq. 11), Lemma 2 (eq. 13), the product-difference inequality (eq. 25), the growth
of the distribution shift with the number of deviating agents, Theorems 1-3 (eq. 12, 14 and the
SPaCQL bound) and Proposition 1 (eq. 15-16).
"""

from .growth import GrowthCurve, growth_curve, plot_growth_curve, subset_membership
from .lemmas import ROUNDOFF, BoundCheck, agent_tvs, lemma1, lemma2, product_difference
from .theorems import (
    GradientCheck,
    TheoremCheck,
    proposition1,
    soft_partial_policy,
    theorem1,
    theorem2,
    theorem3,
)

__all__ = [
    "ROUNDOFF",
    "BoundCheck",
    "GradientCheck",
    "GrowthCurve",
    "TheoremCheck",
    "agent_tvs",
    "growth_curve",
    "lemma1",
    "lemma2",
    "plot_growth_curve",
    "product_difference",
    "proposition1",
    "soft_partial_policy",
    "subset_membership",
    "theorem1",
    "theorem2",
    "theorem3",
]
