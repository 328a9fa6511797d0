"""The paper's inequalities computed exactly on finite Dec-MDPs: left side, right side, slack.

Lemma 1 (eq. 11), Lemma 2 (eq. 13), the product-difference inequality (eq. 25) and the growth
of the distribution shift with the number of deviating agents.
"""

from .growth import GrowthCurve, growth_curve, plot_growth_curve, subset_membership
from .lemmas import ROUNDOFF, BoundCheck, agent_tvs, lemma1, lemma2, product_difference

__all__ = [
    "ROUNDOFF",
    "BoundCheck",
    "GrowthCurve",
    "agent_tvs",
    "growth_curve",
    "lemma1",
    "lemma2",
    "plot_growth_curve",
    "product_difference",
    "subset_membership",
]
