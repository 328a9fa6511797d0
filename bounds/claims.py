"""The paper's statements and proof steps, and every reading of them, as claims ``lhs <= rhs``.

Each claim is a function of :class:`bounds.quantities.Quantities`, written once and evaluated in
floating point (random draws, the search) or exactly over the rationals (stored counterexamples).
A claim also says which instances it is stated for: a factorized behavior policy (Assumption 1) or
a correlated one, and whether it assumes ``Q_hat`` is ``2/(1-gamma)``-Lipschitz under the 0-1
metric (``max Q_hat - min Q_hat <= 2/(1-gamma)``, Theorem 1's assumption); the search draws
``Q_hat`` inside that set for such claims, and outside it as well to show whether it is needed.

Notation: ``d^phi`` state occupancy, ``E_{d^phi, phi}`` expectation over the state-action occupancy
``d^phi(s) phi(a | s)``, ``TV(pi_i, mu_i) = sup_s TV(pi_i(.|s), mu_i(.|s))``, ``W1`` under the 0-1
metric (= TV), ``pi^(S)`` the mixed policy of eq. 10. Claims under Assumption 1 read ``mu`` as
the product of its marginals.

A claim is *proved* when it carries its proof in ``proof`` and every claim the proof uses (``uses``)
is proved too (:func:`check_proofs`): the paper's own steps where its argument is sound, and every
correction. A claim without a proof is only *searched*: the audit says how far.

Every claim also evaluates a batch of float instances at once (:class:`bounds.quantities.Quantities`
with leading batch axes): each side is then an array [*B], one entry per instance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from .instances import COUNTEREXAMPLE_DIR
from .quantities import Quantities, tv, with_trailing_axes

FACTORIZED, CORRELATED = "factorized", "correlated"
#: The parts of an instance a claim may read beyond the dynamics (``P``, ``d0``, ``pi``, ``mu``, ``gamma``),
#: which every claim reads: the deviating subset, the SPaCQL weights, the rewards (through ``Q*``, ``Q^pi``
#: or the TD targets) and ``Q_hat``. The vertex enumeration varies only the parts a claim reads.
PARTS = ("subset", "weights", "rewards", "q_hat")


@dataclass(frozen=True)
class Claim:
    """One inequality ``lhs <= rhs`` of the paper, one reading of it, or a corrected version.

    Attributes
    ----------
    name : str
        Identifier, also the file name of a stored counterexample or worst instance.
    paper_ref, statement : str
    evaluate : callable
        ``Quantities -> (lhs, rhs)``.
    behavior : str
        ``"factorized"`` (Assumption 1: the search draws a product ``mu``) or ``"correlated"``.
    q_hat_lipschitz : bool
        The claim assumes ``max Q_hat - min Q_hat <= 2/(1-gamma)``.
    reads_q_hat : bool
        ``Q_hat`` enters the claim (the search varies it, inside and outside the assumption).
    equality : bool
        ``rhs`` is identically 0: the claim is an identity ``|difference| <= 0``.
    counterexample : str or None
        File under ``bounds/counterexamples/`` violating the claim (verified exactly).
    corrects : tuple of str
        Names of the failing claims this one replaces.
    proof : str
        Why the claim holds (empty: no proof in the project; the claim is only searched).
    uses : tuple of str
        The claims the proof relies on; each must be proved too.
    trivial_bound, trivial_reason
        A bound that already holds for another reason (the Theorems hold without their shift term).
    reads : frozenset of str
        The parts of :data:`PARTS` the claim reads (``q_hat`` exactly when ``reads_q_hat``); a test checks
        that changing any other part leaves both sides unchanged.
    agent_symmetric : bool
        Relabeling the agents maps the claim to itself (false where the claim follows the agents' order,
        as the telescoping of eq. 46-50 does); the vertex enumeration reduces by agent permutations only then.
    """

    name: str
    paper_ref: str
    statement: str
    evaluate: Callable[[Quantities], tuple]
    behavior: str = FACTORIZED
    q_hat_lipschitz: bool = False
    reads_q_hat: bool = False
    equality: bool = False
    counterexample: str | None = None
    corrects: tuple[str, ...] = ()
    proof: str = ""
    uses: tuple[str, ...] = ()
    trivial_bound: Callable[[Quantities], tuple] | None = None
    trivial_reason: str = ""
    reads: frozenset = frozenset()
    agent_symmetric: bool = True

    @property
    def counterexample_path(self):
        return None if self.counterexample is None else COUNTEREXAMPLE_DIR / self.counterexample


# --- Lemma 1 and its proof (eq. 11, 17-31) -------------------------------------------------------


def _lemma1(q: Quantities):
    return tv(q.named_occupancy("mixed_joint"), q.named_occupancy("mu_product")), q.scale * q.subset_tv_sum()


def _at_worst(lhs, rhs, axis: int = -1):
    """Both sides at the index of ``axis`` where ``lhs - rhs`` is largest (the first such), the axis dropped."""
    lhs, rhs = np.broadcast_arrays(lhs, rhs)
    worst = np.expand_dims(np.argmax(lhs - rhs, axis=axis), axis)
    pick = lambda side: np.take_along_axis(side, worst, axis=axis).squeeze(axis)  # noqa: E731
    return _scalar(pick(lhs)), _scalar(pick(rhs))


def _scalar(x):
    """A 0-d array as its element (a Fraction stays a Fraction), anything else as it is."""
    return x[()] if isinstance(x, np.ndarray) and x.ndim == 0 else x


def _row_l1(x):
    """``sum_j |x[..., j]|`` per row."""
    return abs(x).sum(axis=-1)


def _subset_per_state(q: Quantities):
    """``sum_{i in S} TV(pi_i(.|s), mu_i(.|s))`` [*B, S]."""
    subset = list(q.problem.subset)
    return q.agent_tv_per_state[subset].sum(axis=0) if subset else 0 * q.agent_tv_per_state[0]


def _eq20(q: Quantities):
    d_s, d_mu = q.named_occupancy("mixed_joint"), q.named_occupancy("mu_product")
    kernel_gap = q.kernel(q.mixed_joint) - q.kernel(q.mu_product)
    return _row_l1(d_s - d_mu), q.scale * _row_l1((d_s[..., :, None] * kernel_gap).sum(axis=-2))


def _eq22(q: Quantities):
    kernel_gap = q.kernel(q.mixed_joint) - q.kernel(q.mu_product)
    d_s = q.named_occupancy("mixed_joint")
    return _row_l1((d_s[..., :, None] * kernel_gap).sum(axis=-2)), _row_l1(kernel_gap).max(axis=-1)


def _eq24(q: Quantities):
    kernel_gap = q.kernel(q.mixed_joint) - q.kernel(q.mu_product)
    return _row_l1(kernel_gap).max(axis=-1), q.policy_l1_per_state(q.mixed_joint, q.mu_product).max(axis=-1)


def _eq25(q: Quantities):
    # per state: sum_a |prod p_i - prod q_i| against 2 sum_i TV(p_i, q_i), the worst state
    return _at_worst(q.policy_l1_per_state(q.mixed_joint, q.mu_product), 2 * _subset_per_state(q))


def _eq29(q: Quantities):
    return q.policy_l1_per_state(q.mixed_joint, q.mu_product).max(axis=-1), 2 * _subset_per_state(q).max(axis=-1)


def _lemma1_state_action(q: Quantities):
    return tv(q.state_action("mixed_joint"), q.state_action("mu_product"), 2), q.scale * q.subset_tv_sum()


def _lemma1_state_action_corrected(q: Quantities):
    return tv(q.state_action("mixed_joint"), q.state_action("mu_product"), 2), q.subset_tv_sum() / (1 - q.gamma)


# --- Lemma 2 -------------------------------------------------------------------------------------


def _lemma2(q: Quantities):
    lhs = tv(q.named_occupancy("mixed_joint"), q.named_occupancy("mu_joint"))
    return lhs, q.scale * (q.subset_tv_sum() + q.kappa)


def _lemma2_conditional(q: Quantities):
    lhs = tv(q.named_occupancy("mixed_conditional"), q.named_occupancy("mu_joint"))
    return lhs, q.scale * (q.subset_tv_sum() + q.kappa)


def _lemma2_conditional_corrected(q: Quantities):
    lhs = tv(q.named_occupancy("mixed_conditional"), q.named_occupancy("mu_joint"))
    return lhs, q.scale * (q.subset_tv_sum() + 2 * q.kappa)


# --- the remark after Theorem 1 ------------------------------------------------------------------


def _joint_tv(q: Quantities):
    return q.policy_l1_per_state(q.mixed_joint, q.mu_product).max(axis=-1) / 2


def _remark_theorem1(q: Quantities):
    return q.subset_tv_sum(), _joint_tv(q)


def _remark_corrected(q: Quantities):
    return _joint_tv(q), q.subset_tv_sum()


# --- Theorem 1's proof (eq. 32-53) ---------------------------------------------------------------


def _eq37(q: Quantities):
    return abs(q.expectation("pi_joint", q.q_pi - q.q_star)), q.eps_subopt


def _eq41(q: Quantities):
    return abs(q.expectation("mu_product", q.q_star - q.problem.q_hat)), q.eps_fqi


def _shift_of(q: Quantities, table):
    return abs(q.expectation("pi_joint", table) - q.expectation("mu_product", table))


def _w1_state(q: Quantities):
    return tv(q.named_occupancy("pi_joint"), q.named_occupancy("mu_product"))


def _w1_state_action(q: Quantities):
    return tv(q.state_action("pi_joint"), q.state_action("mu_product"), 2)


def _eq44(q: Quantities):
    return _shift_of(q, q.q_star), 2 / (1 - q.gamma) * _w1_state(q)


def _eq44_corrected(q: Quantities):
    return _shift_of(q, q.q_star), 2 / (1 - q.gamma) * _w1_state_action(q)


def _eq45(q: Quantities):
    return _shift_of(q, q.q_star - q.problem.q_hat), 4 / (1 - q.gamma) * _w1_state(q)


def _eq45_corrected(q: Quantities):
    return _shift_of(q, q.q_star - q.problem.q_hat), 4 / (1 - q.gamma) * _w1_state_action(q)


def _eq49(q: Quantities):
    return _w1_state(q), sum(q.telescoping, 0 * q.one)


def _eq50(q: Quantities):
    steps = np.stack(np.broadcast_arrays(*q.telescoping))  # [n, *B]
    return _at_worst(steps, q.scale * q.agent_tv, axis=0)


def _eq51(q: Quantities):
    return _w1_state(q), q.scale * q.agent_tv.sum(axis=0)


def _state_action_shift(q: Quantities):
    return _w1_state_action(q), q.agent_tv.sum(axis=0) / (1 - q.gamma)


def _eq9(q: Quantities):
    return q.q_star.max(axis=(-2, -1)) - q.q_star.min(axis=(-2, -1)), 2 / (1 - q.gamma)


# --- Theorems 1-3 and their readings -------------------------------------------------------------


def _theorem(shift: Callable[[Quantities], object], behavior: str = "mu_product", in_distribution: bool = False):
    """``|V^pi - V_hat^pi| <= eps_Subopt + eps_FQI + shift(q)``, ``eps_FQI`` as sup norm or under ``d^mu mu``."""

    def evaluate(q: Quantities):
        eps_fqi = q.eps_fqi_in_distribution(behavior) if in_distribution else q.eps_fqi
        return q.value_error, q.eps_subopt + eps_fqi + shift(q)

    return evaluate


def _without_shift_term(q: Quantities):
    return q.value_error, q.eps_subopt + q.eps_fqi


def _theorem1_shift(q: Quantities):
    return q.shift_coefficient() * q.agent_tv.sum(axis=0)


def _theorem2_shift(q: Quantities):
    return q.shift_coefficient() * (q.agent_tv.sum(axis=0) + q.kappa)


def _theorem1_shift_corrected(q: Quantities):
    return 4 / (1 - q.gamma) ** 2 * q.agent_tv.sum(axis=0)


def _theorem2_shift_corrected(q: Quantities):
    return 4 / (1 - q.gamma) ** 2 * (q.agent_tv.sum(axis=0) + q.kappa)


#: Theorem 3's ``E[k_eff] TVbar``, as each reading of the statement and its sketch takes it.
THEOREM3_READINGS: dict[str, tuple[str, Callable[[Quantities], object]]] = {
    "dpi": ("E_{s~d^pi}[k_eff(s)] TVbar", lambda q: _mean(q, "pi_joint", q.k_eff) * q.tv_bar),
    "dpiw": ("E_{s~d^{pi_w}}[k_eff(s)] TVbar", lambda q: _mean(q, "soft_partial", q.k_eff) * q.tv_bar),
    "dmu": ("E_{s~d^mu}[k_eff(s)] TVbar", lambda q: _mean(q, "mu_product", q.k_eff) * q.tv_bar),
    "dpi-state": ("E_{s~d^pi}[k_eff(s) TVbar(s)]", lambda q: _mean(q, "pi_joint", q.k_eff * q.tv_bar_per_state)),
    "dpiw-state": (
        "E_{s~d^{pi_w}}[k_eff(s) TVbar(s)]",
        lambda q: _mean(q, "soft_partial", q.k_eff * q.tv_bar_per_state),
    ),
    "dmu-state": ("E_{s~d^mu}[k_eff(s) TVbar(s)]", lambda q: _mean(q, "mu_product", q.k_eff * q.tv_bar_per_state)),
    "sup": ("sup_s k_eff(s) TVbar(s)", lambda q: (q.k_eff * q.tv_bar_per_state).max(axis=-1)),
}
#: The readings of the sketch's shift bound that the sketch's argument proves (see ``_THEOREM3_SKETCH_PROOF``).
PROVED_SKETCH_READINGS = ("dpiw", "dmu", "dpiw-state", "dmu-state", "sup")
#: The readings under d^pi the search breaks (bounds/counterexamples/theorem3-sketch-dpi-state.json, found by
#: the continuous search; theorem3-sketch.json, the sketch as stated, found by the vertex enumeration).
FALSE_SKETCH_READINGS = ("dpi", "dpi-state")
_TVBAR = "TVbar = mean_i sup_s TV(pi_i(.|s), mu_i(.|s)), TVbar(s) = mean_i TV(pi_i(.|s), mu_i(.|s))"


def _mean(q: Quantities, policy: str, per_state):
    """``E_{s ~ d^policy}[per_state(s)]`` [*B]."""
    return (q.named_occupancy(policy) * per_state).sum(axis=-1)


def _theorem3_shift(reading: str):
    _, term = THEOREM3_READINGS[reading]
    return lambda q: q.shift_coefficient() * term(q)


def _theorem3_sketch(reading: str):
    _, term = THEOREM3_READINGS[reading]
    return lambda q: (tv(q.named_occupancy("soft_partial"), q.named_occupancy("mu_product")), q.scale * term(q))


# --- Proposition 1 -------------------------------------------------------------------------------


def _relative_gap(q: Quantities, a, b, *more):
    """``max |a - b - sum(more)| / (1 + max(|a|, |b|, |more|))`` per instance [*B]: 0 exactly when the identity
    holds, and of the order of the float round-off (1e-16) otherwise, whatever the size of the terms."""
    batch = q.batch_shape

    def largest(x):
        return abs(np.broadcast_to(x, (*batch, *np.shape(x)[len(batch) :])).reshape(*batch, -1)).max(axis=-1)

    gap = a - b
    for term in more:
        gap = gap - term
    size = largest(a)
    for term in (b, *more):
        size = np.maximum(size, largest(term))
    return _scalar(largest(gap) / (1 + size))


def _identity(q: Quantities, *terms):
    return _relative_gap(q, *terms), 0 * q.one


def _proposition1(q: Quantities):
    terms = q.proposition1_terms
    return _identity(q, terms["semi_averaged"], terms["semi_centralized"])


def _proposition1_loss(q: Quantities):
    terms = q.proposition1_terms
    return _identity(q, terms["loss_averaged"], terms["loss_centralized"])


def _proposition1_loss_corrected(q: Quantities):
    terms = q.proposition1_terms
    return _identity(q, terms["loss_averaged"], terms["loss_centralized"], terms["target_variance"])


def _proposition1_full_gradient(q: Quantities):
    terms = q.proposition1_terms
    return _identity(q, terms["full_averaged"], terms["full_centralized"])


def _proposition1_full_gradient_corrected(q: Quantities):
    terms = q.proposition1_terms
    correction = with_trailing_axes(q.gamma, 2) * terms["target_covariance"]
    return _identity(q, terms["full_averaged"], terms["full_centralized"], correction)


# --- the list ------------------------------------------------------------------------------------

_THEOREM_TRIVIAL = "|V^pi - V_hat^pi| = |E_{d^pi,pi}[Q^pi - Q_hat]| <= ||Q^pi - Q_hat||_inf <= eps_Subopt + eps_FQI"
_IN_DISTRIBUTION_PROOF = (
    "(I) <= eps_Subopt (eq. 37) and |E_{d^mu,mu} f| <= E_{d^mu,mu}|f|. For measures p, q of equal mass, "
    "|E_p f - E_q f| <= (max f - min f) TV(p, q), and max f - min f <= (max Q* - min Q*) + (max Q_hat - min Q_hat) "
    "<= 4/(1-gamma) (eq. 9 and the Lipschitz assumption). d^pi pi - d^mu mu = (d^pi - d^mu) pi + d^mu (pi - mu) "
    "gives TV(d^pi pi, d^mu mu) <= W1(d^pi, d^mu) + sup_s TV(pi(.|s), mu(.|s)) <= gamma/(1-gamma) X + X = X/(1-gamma)"
    ", X = sum_i TV(pi_i, mu_i) (eq. 51, 25)"
)


_THEOREM3_SKETCH_PROOF = (
    "TV(pi_w(.|s), mu(.|s)) <= sum_k w_k(s) mean_{|K|=k} sum_{i in K} TV(pi_i(.|s), mu_i(.|s)) = k_eff(s) TVbar(s) "
    "(convexity of TV, eq. 25, and each agent lies in a fraction k/n of the k-subsets). Writing "
    "d^w - d^mu = gamma (d^w - d^mu) P^mu + gamma d^w (P^w - P^mu), or the same with P^w and d^mu exchanged, "
    "gives W1(d^w, d^mu) <= gamma/(1-gamma) E_{d^w}[TV(pi_w, mu)] and <= gamma/(1-gamma) E_{d^mu}[TV(pi_w, mu)]"
)


#: Which false reading each proved reading of the sketch replaces (same kind of TV: sup-TVs, or per state).
_SKETCH_CORRECTS = {
    "dpiw": ("theorem3-sketch",),
    "dmu": ("theorem3-sketch",),
    "dpiw-state": ("theorem3-sketch-dpi-state",),
    "dmu-state": ("theorem3-sketch-dpi-state",),
}


def _theorem3_claims() -> list[Claim]:
    claims = []
    for reading, (words, _) in THEOREM3_READINGS.items():
        suffix = "" if reading == "dpi" else f"-{reading}"
        label = "" if reading == "dpi" else f", reading {words}"
        claims += [
            Claim(
                f"theorem3{suffix}",
                f"Theorem 3{label}",
                f"|V^pi - V_hat^pi| <= eps_Subopt + eps_FQI + 4 gamma/(1-gamma)^2 {words}; {_TVBAR}",
                _theorem(_theorem3_shift(reading)),
                reads_q_hat=True,
                trivial_bound=_without_shift_term,
                trivial_reason="as Theorem 1: the shift term is not needed",
            ),
            Claim(
                f"theorem3-in-distribution{suffix}",
                f"Theorem 3, eps_FQI in distribution{label}",
                f"|V^pi - V_hat^pi| <= eps_Subopt + E_{{d^mu,mu}}|Q* - Q_hat| + 4 gamma/(1-gamma)^2 {words}",
                _theorem(_theorem3_shift(reading), in_distribution=True),
                reads_q_hat=True,
                q_hat_lipschitz=True,
                counterexample=f"theorem3-in-distribution{suffix}.json",
            ),
            Claim(
                f"theorem3-sketch{suffix}",
                f"Theorem 3 proof sketch{label}",
                f"W1(d^{{pi_w}}, d^mu) <= gamma/(1-gamma) {words}, pi_w = sum_k w_k(s) mean_{{|K|=k}} pi^(K)",
                _theorem3_sketch(reading),
                counterexample=f"theorem3-sketch{suffix}.json" if reading in FALSE_SKETCH_READINGS else None,
                corrects=_SKETCH_CORRECTS.get(reading, ()),
                proof=_THEOREM3_SKETCH_PROOF if reading in PROVED_SKETCH_READINGS else "",
                uses=("eq20", "eq22", "eq24", "eq25") if reading in PROVED_SKETCH_READINGS else (),
            ),
        ]
    return claims


CLAIMS: list[Claim] = [
    Claim("lemma1", "Lemma 1", "W1(d^(S), d^mu) <= gamma/(1-gamma) sum_{i in S} TV(pi_i, mu_i)", _lemma1),
    Claim("eq20", "eq. 20", "||d^(S) - d^mu||_1 <= gamma/(1-gamma) ||d^(S) (P^(S) - P^mu)||_1", _eq20),
    Claim("eq22", "eq. 22", "||d^(S) (P^(S) - P^mu)||_1 <= sup_s ||P^(S)(.|s) - P^mu(.|s)||_1", _eq22),
    Claim("eq24", "eq. 24", "sup_s ||P^(S)(.|s) - P^mu(.|s)||_1 <= sup_s sum_a |pi^(S)(a|s) - mu(a|s)|", _eq24),
    Claim("eq25", "eq. 25", "sum_a |prod_i p_i - prod_i q_i| <= 2 sum_i TV(p_i, q_i), every state", _eq25),
    Claim("eq29", "eq. 29", "sup_s sum_a |pi^(S) - mu| <= 2 sup_s sum_{i in S} TV(pi_i(.|s), mu_i(.|s))", _eq29),
    Claim(
        "eq31", "eq. 31", "W1(d^(S), d^mu) <= gamma/(1-gamma) sum_{i in S} TV(pi_i, mu_i) (end of the proof)", _lemma1
    ),
    Claim(
        "lemma1-state-action",
        "Lemma 1 as used in Appendix A",
        "W1(d^(S) pi^(S), d^mu mu) <= gamma/(1-gamma) sum_{i in S} TV(pi_i, mu_i) (state-action occupancies)",
        _lemma1_state_action,
        counterexample="lemma1-state-action.json",
    ),
    Claim(
        "lemma1-state-action-corrected",
        "Lemma 1 as used (corrected)",
        "W1(d^(S) pi^(S), d^mu mu) <= 1/(1-gamma) sum_{i in S} TV(pi_i, mu_i)",
        _lemma1_state_action_corrected,
        corrects=("lemma1-state-action",),
        proof=(
            "d^(S) pi^(S) - d^mu mu = (d^(S) - d^mu) pi^(S) + d^mu (pi^(S) - mu): the first part is Lemma 1, "
            "the second at most sup_s TV(pi^(S)(.|s), mu(.|s)) <= sum_{i in S} TV(pi_i, mu_i) (eq. 25); "
            "gamma/(1-gamma) + 1 = 1/(1-gamma)"
        ),
    ),
    Claim(
        "lemma2",
        "Lemma 2",
        "W1(d^(S), d^mu) <= gamma/(1-gamma) (sum_{i in S} TV(pi_i, mu_i) + kappa), others follow mu's marginals",
        _lemma2,
        behavior=CORRELATED,
    ),
    Claim(
        "lemma2-conditional",
        "Lemma 2, others keep their correlation",
        "W1(d^{pi_S x mu_-S}, d^mu) <= gamma/(1-gamma) (sum_{i in S} TV(pi_i, mu_i) + kappa), mu_-S the joint marginal",
        _lemma2_conditional,
        behavior=CORRELATED,
        counterexample="lemma2-conditional.json",
    ),
    Claim(
        "lemma2-conditional-corrected",
        "Lemma 2, others keep their correlation (corrected)",
        "W1(d^{pi_S x mu_-S}, d^mu) <= gamma/(1-gamma) (sum_{i in S} TV(pi_i, mu_i) + 2 kappa), mu_-S the joint "
        "marginal",
        _lemma2_conditional_corrected,
        behavior=CORRELATED,
        corrects=("lemma2-conditional",),
        proof=(
            "the argument of eq. 20, 22, 24 for pi_S x mu_-S against the correlated mu; per state "
            "TV(pi_S x mu_-S, mu) <= TV(pi_S x mu_-S, mu_S^(x) x mu_-S) + TV(mu_S^(x) x mu_-S, mu^(x)) "
            "+ TV(mu^(x), mu): "
            "the first is at most sum_{i in S} TV(pi_i, mu_i) (eq. 25, the common factor mu_-S), the second is "
            "TV(mu_-S, mu_-S^(x)) <= TV(mu, mu^(x)) = kappa (a marginal is no farther from the product of its "
            "marginals), the third kappa; the factor 2 is needed (ratio 1.9 as a0 = 1 becomes rare)"
        ),
    ),
    Claim(
        "remark-theorem1",
        "Remark after Theorem 1",
        "sum_{i in S} TV(pi_i, mu_i) <= sup_s TV(pi^(S)(.|s), mu(.|s)) (the per-agent sum improves on joint TV)",
        _remark_theorem1,
        counterexample="remark-theorem1.json",
    ),
    Claim(
        "remark-theorem1-corrected",
        "Remark after Theorem 1 (corrected)",
        "sup_s TV(pi^(S)(.|s), mu(.|s)) <= sum_{i in S} TV(pi_i, mu_i) (eq. 25: joint TV is the tighter one)",
        _remark_corrected,
        corrects=("remark-theorem1",),
        proof="eq. 25 in every state, then sup_s sum_i <= sum_i sup_s",
    ),
    Claim("eq37", "eq. 37", "|E_{d^pi,pi}[Q^pi - Q*]| <= ||Q^pi - Q*||_inf", _eq37),
    Claim("eq41", "eq. 41", "|E_{d^mu,mu}[Q* - Q_hat]| <= ||Q* - Q_hat||_inf", _eq41, reads_q_hat=True),
    Claim(
        "eq44",
        "eq. 44",
        "|E_{d^pi,pi} Q* - E_{d^mu,mu} Q*| <= 2/(1-gamma) W1(d^pi, d^mu) (state occupancies)",
        _eq44,
        counterexample="eq44.json",
    ),
    Claim(
        "eq44-corrected",
        "eq. 44 (corrected)",
        "|E_{d^pi,pi} Q* - E_{d^mu,mu} Q*| <= 2/(1-gamma) W1(d^pi pi, d^mu mu) (state-action occupancies)",
        _eq44_corrected,
        corrects=("eq44",),
        proof="|E_p g - E_q g| <= (max g - min g) TV(p, q) and max Q* - min Q* <= 2/(1-gamma) (eq. 9)",
    ),
    Claim(
        "eq45",
        "eq. 45",
        "|E_{d^pi,pi} f - E_{d^mu,mu} f| <= 4/(1-gamma) W1(d^pi, d^mu), f = Q* - Q_hat",
        _eq45,
        reads_q_hat=True,
        q_hat_lipschitz=True,
        counterexample="eq44.json",
    ),
    Claim(
        "eq45-corrected",
        "eq. 45 (corrected)",
        "|E_{d^pi,pi} f - E_{d^mu,mu} f| <= 4/(1-gamma) W1(d^pi pi, d^mu mu), f = Q* - Q_hat",
        _eq45_corrected,
        reads_q_hat=True,
        q_hat_lipschitz=True,
        corrects=("eq45",),
        proof="as eq. 44 (corrected), with max f - min f <= 2/(1-gamma) + 2/(1-gamma) (Lipschitz assumption)",
    ),
    Claim("eq49", "eq. 49", "W1(d^pi, d^mu) <= sum_k W1(d^(k), d^(k-1))", _eq49),
    Claim(
        "eq50",
        "eq. 50",
        "W1(d^(k), d^(k-1)) <= gamma/(1-gamma) TV(pi_k, mu_k); Lemma 1 compares with d^mu, the step needs "
        "its extension to any two factorized policies differing in agent k (same proof)",
        _eq50,
    ),
    Claim("eq51", "eq. 51", "W1(d^pi, d^mu) <= gamma/(1-gamma) sum_i TV(pi_i, mu_i)", _eq51),
    Claim(
        "state-action-shift",
        "eq. 49-51 (corrected, state-action)",
        "W1(d^pi pi, d^mu mu) <= (gamma/(1-gamma) + 1) sum_i TV(pi_i, mu_i) = 1/(1-gamma) sum_i TV(pi_i, mu_i)",
        _state_action_shift,
        corrects=("eq45",),
        proof="Lemma 1 as used (corrected) with S = all agents",
    ),
    Claim(
        "theorem1",
        "Theorem 1",
        "|V^pi - V_hat^pi| <= eps_Subopt + eps_FQI + 4 gamma/(1-gamma)^2 sum_i TV(pi_i, mu_i)",
        _theorem(_theorem1_shift),
        reads_q_hat=True,
        trivial_bound=_without_shift_term,
        trivial_reason=_THEOREM_TRIVIAL,
    ),
    Claim(
        "theorem1-in-distribution",
        "Theorem 1, eps_FQI in distribution",
        "|V^pi - V_hat^pi| <= eps_Subopt + E_{d^mu,mu}|Q* - Q_hat| + 4 gamma/(1-gamma)^2 sum_i TV(pi_i, mu_i)",
        _theorem(_theorem1_shift, in_distribution=True),
        reads_q_hat=True,
        q_hat_lipschitz=True,
        counterexample="theorem1-in-distribution.json",
    ),
    Claim(
        "theorem1-in-distribution-corrected",
        "Theorem 1, eps_FQI in distribution (corrected)",
        "|V^pi - V_hat^pi| <= eps_Subopt + E_{d^mu,mu}|Q* - Q_hat| + 4/(1-gamma)^2 sum_i TV(pi_i, mu_i)",
        _theorem(_theorem1_shift_corrected, in_distribution=True),
        reads_q_hat=True,
        q_hat_lipschitz=True,
        corrects=(
            "theorem1-in-distribution",
            *(f"theorem3-in-distribution{'' if r == 'dpi' else '-' + r}" for r in THEOREM3_READINGS),
        ),
        proof=_IN_DISTRIBUTION_PROOF + "; for Theorem 3 the weights cannot enter: pi's own shift governs V^pi",
    ),
    Claim(
        "theorem2",
        "Theorem 2",
        "|V^pi - V_hat^pi| <= eps_Subopt + eps_FQI + 4 gamma/(1-gamma)^2 (sum_i TV(pi_i, mu_i) + kappa)",
        _theorem(_theorem2_shift, behavior="mu_joint"),
        behavior=CORRELATED,
        reads_q_hat=True,
        trivial_bound=_without_shift_term,
        trivial_reason="as Theorem 1: the shift term is not needed",
    ),
    Claim(
        "theorem2-in-distribution",
        "Theorem 2, eps_FQI in distribution",
        "|V^pi - V_hat^pi| <= eps_Subopt + E_{d^mu,mu}|Q* - Q_hat| + 4 gamma/(1-gamma)^2 (sum_i TV(pi_i, mu_i) "
        "+ kappa)",
        _theorem(_theorem2_shift, behavior="mu_joint", in_distribution=True),
        behavior=CORRELATED,
        reads_q_hat=True,
        q_hat_lipschitz=True,
        counterexample="theorem2-in-distribution.json",
    ),
    Claim(
        "theorem2-in-distribution-corrected",
        "Theorem 2, eps_FQI in distribution (corrected)",
        "|V^pi - V_hat^pi| <= eps_Subopt + E_{d^mu,mu}|Q* - Q_hat| + 4/(1-gamma)^2 (sum_i TV(pi_i, mu_i) + kappa)",
        _theorem(_theorem2_shift_corrected, behavior="mu_joint", in_distribution=True),
        behavior=CORRELATED,
        reads_q_hat=True,
        q_hat_lipschitz=True,
        corrects=("theorem2-in-distribution",),
        proof=_IN_DISTRIBUTION_PROOF.replace(
            "(eq. 51, 25)", "+ kappa (Lemma 2 with S = all, and TV(pi, mu) <= TV(pi, mu^(x)) + kappa)"
        ),
    ),
    *_theorem3_claims(),
    Claim(
        "proposition1",
        "Proposition 1",
        "mean_i semi-gradient of J_i = semi-gradient of J_cen = 1/2 E_D[(Q - T^ai Q)^2] (max |gap| <= 0)",
        _proposition1,
        reads_q_hat=True,
        equality=True,
    ),
    Claim(
        "proposition1-loss",
        "Proposition 1, the losses",
        "mean_i J_i = J_cen (max |gap| <= 0)",
        _proposition1_loss,
        reads_q_hat=True,
        equality=True,
        counterexample="proposition1-loss.json",
    ),
    Claim(
        "proposition1-loss-corrected",
        "Proposition 1, the losses (corrected)",
        "mean_i J_i = J_cen + 1/2 E_D[Var_i y_i], y_i = T_i^ind Q",
        _proposition1_loss_corrected,
        reads_q_hat=True,
        equality=True,
        corrects=("proposition1-loss",),
        proof="mean_i (x - y_i)^2 = (x - ybar)^2 + mean_i (y_i - ybar)^2, transition by transition",
    ),
    Claim(
        "proposition1-full-gradient",
        "Proposition 1, full gradients (through the target)",
        "mean_i grad J_i = grad J_cen with y_i = T_i^ind Q_theta differentiated (max |gap| <= 0)",
        _proposition1_full_gradient,
        reads_q_hat=True,
        equality=True,
        counterexample="proposition1-full-gradient.json",
    ),
    Claim(
        "proposition1-full-gradient-corrected",
        "Proposition 1, full gradients (corrected)",
        "mean_i grad J_i = grad J_cen + gamma E_D[Cov_i(y_i, grad B_i Q)]",
        _proposition1_full_gradient_corrected,
        reads_q_hat=True,
        equality=True,
        corrects=("proposition1-full-gradient",),
        proof=(
            "grad J_i = E_D[(Q - y_i)(grad Q - gamma grad B_i Q)]; the grad Q parts agree (the semi-gradient "
            "identity) and mean_i (Q - y_i) b_i - (Q - ybar) mean_i b_i = -mean_i (y_i - ybar) b_i = -Cov_i(y_i, b_i)"
        ),
    ),
    Claim("eq9", "eq. 9", "|Q*(x) - Q*(y)| <= 2/(1-gamma) (Q* is 2/(1-gamma)-Lipschitz, 0-1 metric)", _eq9),
]



#: Proofs of the paper's steps that hold, and what each uses (``W1`` is ``TV = 1/2 L1`` under the 0-1 metric).
_PROOFS: dict[str, tuple[str, tuple[str, ...]]] = {
    "eq25": (
        "prod_i p_i - prod_i q_i = sum_k (prod_{i<k} q_i)(p_k - q_k)(prod_{i>k} p_i): the L1 norm of the k-th term "
        "is ||p_k - q_k||_1 = 2 TV(p_k, q_k) (the other factors are distributions), and the term vanishes where "
        "p_k = q_k; then the triangle inequality",
        (),
    ),
    "eq29": ("eq. 25 in every state, the agents outside S following mu; then sup_s on both sides", ("eq25",)),
    "eq24": (
        "P^(S)(.|s) - P^mu(.|s) = sum_a (pi^(S)(a|s) - mu(a|s)) P(.|s, a), the triangle inequality and "
        "||P(.|s, a)||_1 = 1",
        (),
    ),
    "eq22": (
        "||d (P1 - P2)||_1 <= sum_s d(s) ||P1(.|s) - P2(.|s)||_1 <= sup_s ||P1(.|s) - P2(.|s)||_1, d a distribution",
        (),
    ),
    "eq20": (
        "d^phi = (1-gamma) d0 + gamma d^phi P^phi for phi = pi^(S), mu gives (d^(S) - d^mu)(I - gamma P^mu) = "
        "gamma d^(S) (P^(S) - P^mu), and (I - gamma P^mu)^{-1} = sum_t gamma^t (P^mu)^t has "
        "||x (I - gamma P^mu)^{-1}||_1 <= ||x||_1 / (1-gamma)",
        (),
    ),
    "lemma1": (
        "eq. 20, 22, 24, 29 in a chain: W1 = 1/2 ||d^(S) - d^mu||_1 <= gamma/(1-gamma) sup_s sum_{i in S} "
        "TV(pi_i(.|s), mu_i(.|s)) <= gamma/(1-gamma) sum_{i in S} sup_s TV(pi_i(.|s), mu_i(.|s))",
        ("eq20", "eq22", "eq24", "eq29"),
    ),
    "eq31": ("the end of the chain of eq. 20-29, i.e. Lemma 1", ("lemma1",)),
    "lemma2": (
        "the arguments of eq. 20, 22, 24 hold for any two policies (here pi^(S), mu's marginals for the others, and "
        "the correlated mu); per state TV(pi^(S), mu) <= TV(pi^(S), mu^(x)) + TV(mu^(x), mu) <= sum_{i in S} "
        "TV(pi_i, mu_i) + kappa (eq. 25, Definition 1)",
        ("eq20", "eq22", "eq24", "eq25"),
    ),
    "eq37": ("|E_p f| <= E_p |f| <= max |f| for a distribution p", ()),
    "eq41": ("|E_p f| <= E_p |f| <= max |f| for a distribution p", ()),
    "eq49": ("the triangle inequality of W1 along d^mu = d^(0), d^(1), ..., d^(n) = d^pi", ()),
    "eq50": (
        "the argument of Lemma 1 (eq. 20-29) for the factorized policies pi^({0..k-1}) and pi^({0..k-2}), which "
        "differ in agent k only: eq. 25 leaves the single term 2 TV(pi_k(.|s), mu_k(.|s))",
        ("eq20", "eq22", "eq24", "eq25"),
    ),
    "eq51": ("eq. 49, then eq. 50 for every k", ("eq49", "eq50")),
    "eq9": ("|R| <= 1 gives |Q*| <= sum_t gamma^t = 1/(1-gamma), so max Q* - min Q* <= 2/(1-gamma)", ()),
    "proposition1": (
        "mean_i E_D[(Q - y_i) grad Q] = E_D[(Q - mean_i y_i) grad Q]: the expectation and the mean are linear",
        (),
    ),
}
#: What the corrections' proofs (written at each claim) use.
_CORRECTION_USES: dict[str, tuple[str, ...]] = {
    "lemma1-state-action-corrected": ("lemma1", "eq25"),
    "remark-theorem1-corrected": ("eq25",),
    "eq44-corrected": ("eq9",),
    "eq45-corrected": ("eq9",),
    "state-action-shift": ("lemma1-state-action-corrected",),
    "theorem1-in-distribution-corrected": ("eq37", "eq9", "eq51", "eq25"),
    "theorem2-in-distribution-corrected": ("eq37", "eq9", "lemma2", "eq25"),
    "lemma2-conditional-corrected": ("eq20", "eq22", "eq24", "eq25"),
    "proposition1-full-gradient-corrected": ("proposition1",),
}


def _with_proof(claim: Claim) -> Claim:
    if claim.name in _PROOFS:
        proof, uses = _PROOFS[claim.name]
        return replace(claim, proof=proof, uses=uses)
    if claim.name in _CORRECTION_USES:
        return replace(claim, uses=_CORRECTION_USES[claim.name])
    return claim


def _parts_read(claim: Claim) -> frozenset:
    """What each claim reads beyond the dynamics, from the quantities its sides are built of."""
    parts = {"q_hat"} if claim.reads_q_hat else set()
    name = claim.name
    if name.startswith(("lemma", "eq2", "eq31", "remark")):
        parts.add("subset")  # the mixed policy pi^(S) of Lemma 1-2 (eq. 10)
    if name.startswith("theorem3"):
        parts.add("weights")  # pi_w and k_eff
    if name.startswith(("eq37", "eq41", "eq44", "eq45", "eq9", "theorem", "proposition1")) and not (
        name.startswith("theorem3-sketch")
    ):
        parts.add("rewards")  # Q*, Q^pi, V^pi or the TD targets
    return frozenset(parts)


#: eq. 49-50 telescope over the agents in their order (d^(k) lets agents 0..k-1 deviate).
_ORDERED = ("eq49", "eq50")
CLAIMS = [_with_proof(replace(c, reads=_parts_read(c), agent_symmetric=c.name not in _ORDERED)) for c in CLAIMS]
BY_NAME: dict[str, Claim] = {claim.name: claim for claim in CLAIMS}


class ProofError(ValueError):
    """A proof that names a claim which is not itself proved (or does not exist)."""


def check_proofs(claims: list[Claim], failing: set[str] = frozenset()) -> dict[str, bool]:
    """Which claims are proved: a proof, and every claim it uses proved (none of them in ``failing``).

    Raises :class:`ProofError` for a proof that uses an unknown claim, an unproved one, a failing one,
    or itself (through a cycle), and for a proved claim that ``failing`` says is false.
    """
    by_name = {claim.name: claim for claim in claims}
    proved: dict[str, bool] = {}

    def visit(name: str, path: tuple[str, ...]) -> bool:
        if name in path:
            raise ProofError(f"uses: the proof of {path[0]} is circular ({' -> '.join((*path, name))})")
        if name in proved:
            return proved[name]
        claim = by_name[name]
        if not claim.proof:
            proved[name] = False
            return False
        if name in failing:
            raise ProofError(f"proof: {name} carries a proof but a counterexample violates it")
        for used in claim.uses:
            if used not in by_name:
                raise ProofError(f"uses: the proof of {name} names {used}, which is not a claim")
            if used in failing:
                raise ProofError(f"uses: the proof of {name} uses {used}, which fails")
            if not visit(used, (*path, name)):
                raise ProofError(f"uses: the proof of {name} uses {used}, which is not proved")
        proved[name] = True
        return True

    for claim in claims:
        visit(claim.name, ())
    return proved
