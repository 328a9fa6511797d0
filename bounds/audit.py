"""An audit of the paper's statements and proof steps, each as a checkable claim ``lhs <= rhs``.

    python -m bounds.audit [--examples N] [--seed S] [--json]

Every claim is evaluated exactly on random instances (:func:`bounds.instances.random_instance`)
and on the stored counterexamples. The status of a claim is

* ``"fails"`` when an instance violates it: the minimal counterexample is stored under
  ``bounds/counterexamples/`` and the corrected inequality is a claim of its own;
* ``"holds-trivially"`` when it holds, but for a reason other than the proof's (its
  ``trivial_reason`` names it, and the audit checks the trivial bound on every instance too);
* ``"holds"`` otherwise.

Notation: ``d^phi`` state occupancy, ``E_{d^phi, phi}`` expectation over the state-action
occupancy ``d^phi(s) phi(a | s)``, ``TV(pi_i, mu_i) = sup_s TV(pi_i(.|s), mu_i(.|s))``, ``W1`` under the
0-1 metric (= TV). The steps of the proofs of Lemma 1 and Theorem 1 are checked with ``mu``
replaced by the product of its marginals (they assume Assumption 1).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

import tabular
from tabular import FactorizedPolicy
from tabular.datasets import sample_dataset

from .instances import COUNTEREXAMPLE_DIR, Instance, load_instance, random_instance
from .lemmas import ROUNDOFF, product_difference
from .theorems import proposition1, theorem1, theorem2, theorem3


class Quantities:
    """Everything the claims read off one instance, computed once and on demand."""

    def __init__(self, instance: Instance):
        self.instance = instance
        self.mdp = instance.mdp
        self.pi = instance.pi
        self.mu = instance.mu
        self.factorized_mu = FactorizedPolicy(instance.mu.marginals())
        self.scale = self.mdp.gamma / (1.0 - self.mdp.gamma)

    @cached_property
    def agent_tv(self) -> np.ndarray:
        return np.array(
            [tabular.policy_tv(p, m) for p, m in zip(self.pi.factors, self.factorized_mu.factors, strict=True)]
        )

    @cached_property
    def mixed(self) -> FactorizedPolicy:
        return tabular.mixed_policy(self.pi, self.factorized_mu, self.instance.subset)

    @cached_property
    def kernels(self) -> dict:
        """``P^phi`` and ``d^phi`` of pi^(S), of the factorized mu and of pi."""
        out = {}
        for name, policy in (("mixed", self.mixed), ("mu", self.factorized_mu), ("pi", self.pi)):
            P_phi, _ = tabular.induced_kernel(self.mdp, policy)
            out[name] = (P_phi, tabular.occupancy_from_kernel(self.mdp.d0, P_phi, self.mdp.gamma))
        return out

    @cached_property
    def q_star(self) -> np.ndarray:
        return tabular.q_optimal(self.mdp, tol=1e-11).q

    def expectation(self, policy, table: np.ndarray) -> float:
        """``E_{d^phi, phi}[table]``."""
        return float((tabular.state_action_occupancy(self.mdp, policy) * table).sum())

    @cached_property
    def theorem1(self):
        return theorem1(self.mdp, self.pi, self.factorized_mu, self.instance.q_hat)

    @cached_property
    def theorem2(self):
        return theorem2(self.mdp, self.pi, self.mu, self.instance.q_hat)

    @cached_property
    def theorem3(self):
        return theorem3(self.mdp, self.pi, self.factorized_mu, self.instance.q_hat, self.instance.weights)

    @cached_property
    def telescoping(self) -> np.ndarray:
        """``W1(d^(k), d^(k-1))`` for k = 1..n, ``d^(k)`` the occupancy of pi^({0..k-1}) (eq. 46-48)."""
        prefixes = [
            tabular.state_occupancy(self.mdp, tabular.mixed_policy(self.pi, self.factorized_mu, range(k)))
            for k in range(self.mdp.n_agents + 1)
        ]
        return np.array([tabular.w1(prefixes[k], prefixes[k - 1]) for k in range(1, len(prefixes))])


# --- the claims ----------------------------------------------------------------------------------


def _eq20(q: Quantities):
    (P_s, d_s), (P_mu, d_mu) = q.kernels["mixed"], q.kernels["mu"]
    return np.abs(d_s - d_mu).sum(), q.scale * np.abs(d_s @ (P_s - P_mu)).sum()


def _eq22(q: Quantities):
    (P_s, d_s), (P_mu, _) = q.kernels["mixed"], q.kernels["mu"]
    return np.abs(d_s @ (P_s - P_mu)).sum(), np.abs(P_s - P_mu).sum(axis=1).max()


def _eq24(q: Quantities):
    (P_s, _), (P_mu, _) = q.kernels["mixed"], q.kernels["mu"]
    return np.abs(P_s - P_mu).sum(axis=1).max(), _joint_l1(q.mixed, q.factorized_mu).max()


def _joint_l1(a: FactorizedPolicy, b: FactorizedPolicy) -> np.ndarray:
    """``sum_a |a(a|s) - b(a|s)|`` per state (builds the joint policies; audit instances are small)."""
    return np.abs(a.joint() - b.joint()).reshape(a.n_states, -1).sum(axis=1)


def _eq25(q: Quantities):
    worst = max(
        (
            product_difference([f[s] for f in q.mixed.factors], [f[s] for f in q.factorized_mu.factors])
            for s in range(q.mdp.n_states)
        ),
        key=lambda check: check.lhs - check.rhs,
    )
    return worst.lhs, worst.rhs


def _eq29(q: Quantities):
    per_state_tv = np.array(
        [tabular.policy_tv_per_state(q.pi.factors[i], q.factorized_mu.factors[i]) for i in q.instance.subset]
    ).reshape(len(q.instance.subset), q.mdp.n_states)
    return _joint_l1(q.mixed, q.factorized_mu).max(), 2.0 * per_state_tv.sum(axis=0).max()


def _lemma1(q: Quantities):
    d_s, d_mu = q.kernels["mixed"][1], q.kernels["mu"][1]
    return tabular.w1(d_s, d_mu), q.scale * q.agent_tv[list(q.instance.subset)].sum()


def _lemma2(q: Quantities):
    from .lemmas import lemma2

    check = lemma2(q.mdp, q.pi, q.mu, q.instance.subset)
    return check.lhs, check.rhs


def _remark_theorem1(q: Quantities):
    # the remark reads the per-agent sum as improving on the joint-TV bound: sum_S TV_i <= joint TV
    joint_tv = 0.5 * _joint_l1(q.mixed, q.factorized_mu).max()
    return q.agent_tv[list(q.instance.subset)].sum(), joint_tv


def _remark_corrected(q: Quantities):
    joint_tv = 0.5 * _joint_l1(q.mixed, q.factorized_mu).max()
    return joint_tv, q.agent_tv[list(q.instance.subset)].sum()


def _eq37(q: Quantities):
    return q.theorem1.term_I, q.theorem1.eps_subopt


def _eq41(q: Quantities):
    f = q.q_star - q.instance.q_hat
    return abs(q.expectation(q.factorized_mu, f)), q.theorem1.eps_fqi


def _eq44_q_star(q: Quantities):
    shift = abs(q.expectation(q.pi, q.q_star) - q.expectation(q.factorized_mu, q.q_star))
    return shift, 2.0 / (1.0 - q.mdp.gamma) * q.theorem1.w1_state


def _eq44_q_star_corrected(q: Quantities):
    shift = abs(q.expectation(q.pi, q.q_star) - q.expectation(q.factorized_mu, q.q_star))
    return shift, 2.0 / (1.0 - q.mdp.gamma) * q.theorem1.w1_state_action


def _eq45(q: Quantities):
    f = q.q_star - q.instance.q_hat
    shift = abs(q.expectation(q.pi, f) - q.expectation(q.factorized_mu, f))
    return shift, 4.0 / (1.0 - q.mdp.gamma) * q.theorem1.w1_state


def _eq45_corrected(q: Quantities):
    f = q.q_star - q.instance.q_hat
    shift = abs(q.expectation(q.pi, f) - q.expectation(q.factorized_mu, f))
    return shift, 4.0 / (1.0 - q.mdp.gamma) * q.theorem1.w1_state_action


def _state_action_shift_bound(q: Quantities):
    # W1 of state-action occupancies <= W1 of states + sup_s TV(pi(.|s), mu(.|s)) <= (gamma/(1-gamma) + 1) sum TV
    return q.theorem1.w1_state_action, (q.scale + 1.0) * q.agent_tv.sum()


def _eq49(q: Quantities):
    return q.theorem1.w1_state, q.telescoping.sum()


def _eq50(q: Quantities):
    worst = int(np.argmax(q.telescoping - q.scale * q.agent_tv))
    return q.telescoping[worst], q.scale * q.agent_tv[worst]


def _eq51(q: Quantities):
    return q.theorem1.w1_state, q.scale * q.agent_tv.sum()


def _theorem(name: str):
    def evaluate(q: Quantities):
        result = getattr(q, name)
        return result.lhs, result.rhs

    return evaluate


def _theorem3_sketch(q: Quantities):
    result = q.theorem3
    return result.soft_partial_shift, q.scale * result.expected_k_eff * result.tv_bar


def _theorem3_sketch_argument(q: Quantities):
    result = q.theorem3
    per_state_tv = np.mean(
        [tabular.policy_tv_per_state(p, m) for p, m in zip(q.pi.factors, q.factorized_mu.factors, strict=True)], axis=0
    )
    return result.soft_partial_shift, q.scale * (result.k_eff * per_state_tv).max()


def _without_shift_term(name: str):
    def bound(q: Quantities):
        result = getattr(q, name)
        return result.lhs, result.eps_subopt + result.eps_fqi

    return bound


def _proposition1(q: Quantities):
    dataset = sample_dataset(q.mdp, q.mu, 25, seed=0)
    result = proposition1(dataset, q.instance.q_hat, q.pi, q.mdp.gamma)
    return result.lhs, result.rhs


def _lipschitz_q_star(q: Quantities):
    return float(q.q_star.max() - q.q_star.min()), 2.0 / (1.0 - q.mdp.gamma)


@dataclass(frozen=True)
class Claim:
    """One inequality ``lhs <= rhs`` of the paper (or a corrected version of one)."""

    name: str
    paper_ref: str
    statement: str
    evaluate: Callable[[Quantities], tuple[float, float]]
    counterexample: str | None = None
    corrects: str | None = None
    trivial_bound: Callable[[Quantities], tuple[float, float]] | None = None
    trivial_reason: str = ""

    @property
    def counterexample_path(self):
        return None if self.counterexample is None else COUNTEREXAMPLE_DIR / self.counterexample


CLAIMS = [
    Claim("lemma1", "Lemma 1", "W1(d^(S), d^mu) <= gamma/(1-gamma) sum_{i in S} TV(pi_i, mu_i)", _lemma1),
    Claim("eq20", "eq. 20", "||d^(S) - d^mu||_1 <= gamma/(1-gamma) ||d^(S) (P^(S) - P^mu)||_1", _eq20),
    Claim("eq22", "eq. 22", "||d^(S) (P^(S) - P^mu)||_1 <= sup_s ||P^(S)(.|s) - P^mu(.|s)||_1", _eq22),
    Claim("eq24", "eq. 24", "sup_s ||P^(S)(.|s) - P^mu(.|s)||_1 <= sup_s sum_a |pi^(S)(a|s) - mu(a|s)|", _eq24),
    Claim("eq25", "eq. 25", "sum_a |prod_i p_i - prod_i q_i| <= 2 sum_i TV(p_i, q_i), every state", _eq25),
    Claim("eq29", "eq. 29", "sup_s sum_a |pi^(S) - mu| <= 2 sup_s sum_{i in S} TV(pi_i(.|s), mu_i(.|s))", _eq29),
    Claim(
        "eq31", "eq. 31", "W1(d^(S), d^mu) <= gamma/(1-gamma) sum_{i in S} TV(pi_i, mu_i) (end of the proof)", _lemma1
    ),
    Claim("lemma2", "Lemma 2", "W1(d^(S), d^mu) <= gamma/(1-gamma) (sum_{i in S} TV(pi_i, mu_i) + kappa)", _lemma2),
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
        corrects="remark-theorem1",
    ),
    Claim("eq37", "eq. 37", "|E_{d^pi,pi}[Q^pi - Q*]| <= ||Q^pi - Q*||_inf", _eq37),
    Claim("eq41", "eq. 41", "|E_{d^mu,mu}[Q* - Q_hat]| <= ||Q* - Q_hat||_inf", _eq41),
    Claim(
        "eq44",
        "eq. 44",
        "|E_{d^pi,pi} Q* - E_{d^mu,mu} Q*| <= 2/(1-gamma) W1(d^pi, d^mu) (state occupancies)",
        _eq44_q_star,
        counterexample="eq44.json",
    ),
    Claim(
        "eq44-corrected",
        "eq. 44 (corrected)",
        "|E_{d^pi,pi} Q* - E_{d^mu,mu} Q*| <= 2/(1-gamma) W1(d^pi pi, d^mu mu) (state-action occupancies)",
        _eq44_q_star_corrected,
        corrects="eq44",
    ),
    Claim(
        "eq45",
        "eq. 45",
        "|E_{d^pi,pi} f - E_{d^mu,mu} f| <= 4/(1-gamma) W1(d^pi, d^mu), f = Q* - Q_hat",
        _eq45,
        counterexample="eq44.json",
    ),
    Claim(
        "eq45-corrected",
        "eq. 45 (corrected)",
        "|E_{d^pi,pi} f - E_{d^mu,mu} f| <= 4/(1-gamma) W1(d^pi pi, d^mu mu), f = Q* - Q_hat",
        _eq45_corrected,
        corrects="eq45",
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
        _state_action_shift_bound,
        corrects="eq45",
    ),
    Claim(
        "theorem1",
        "Theorem 1",
        "|V^pi - V_hat^pi| <= eps_Subopt + eps_FQI + 4 gamma/(1-gamma)^2 sum_i TV(pi_i, mu_i)",
        _theorem("theorem1"),
        trivial_bound=_without_shift_term("theorem1"),
        trivial_reason=(
            "|V^pi - V_hat^pi| = |E_{d^pi,pi}[Q^pi - Q_hat]| <= ||Q^pi - Q_hat||_inf <= eps_Subopt + eps_FQI"
        ),
    ),
    Claim(
        "theorem2",
        "Theorem 2",
        "|V^pi - V_hat^pi| <= eps_Subopt + eps_FQI + 4 gamma/(1-gamma)^2 (sum_i TV(pi_i, mu_i) + kappa)",
        _theorem("theorem2"),
        trivial_bound=_without_shift_term("theorem2"),
        trivial_reason="as Theorem 1: the shift term is not needed",
    ),
    Claim(
        "theorem3",
        "Theorem 3",
        "|V^pi - V_hat^pi| <= eps_Subopt + eps_FQI + 4 gamma/(1-gamma)^2 E_{d^pi}[k_eff] TVbar",
        _theorem("theorem3"),
        trivial_bound=_without_shift_term("theorem3"),
        trivial_reason="as Theorem 1: the shift term is not needed",
    ),
    Claim(
        "theorem3-sketch",
        "Theorem 3 proof sketch",
        "W1(d^{pi_w}, d^mu) <= gamma/(1-gamma) E_{s~d^pi}[k_eff(s)] TVbar(pi, mu)",
        _theorem3_sketch,
    ),
    Claim(
        "theorem3-sketch-argument",
        "Theorem 3 proof sketch (its argument)",
        "W1(d^{pi_w}, d^mu) <= gamma/(1-gamma) sup_s k_eff(s) TVbar(s), TVbar(s) = mean_i TV(pi_i(.|s), mu_i(.|s))",
        _theorem3_sketch_argument,
    ),
    Claim(
        "proposition1",
        "Proposition 1",
        "mean_i semi-gradient of J_i = semi-gradient of 1/2 E_D[(Q - T^ai Q)^2] (gap <= 0)",
        _proposition1,
    ),
    Claim(
        "eq9", "eq. 9", "|Q*(x) - Q*(y)| <= 2/(1-gamma) (Q* is 2/(1-gamma)-Lipschitz, 0-1 metric)", _lipschitz_q_star
    ),
]


def violated(lhs: float, rhs: float) -> bool:
    """``lhs > rhs`` beyond the floating-point allowance of :data:`bounds.ROUNDOFF`."""
    return lhs > rhs + ROUNDOFF * (1.0 + abs(rhs))


def ratio(lhs: float, rhs: float) -> float:
    """``lhs / rhs``; ``inf`` for a violation with a zero right side; ``nan`` when both sides are
    round-off (within :data:`bounds.ROUNDOFF` of zero), where a ratio would only measure noise."""
    if max(abs(lhs), abs(rhs)) <= ROUNDOFF:
        return float("nan")
    if rhs > 0:
        return lhs / rhs
    return float("inf") if violated(lhs, rhs) else float("nan")


@dataclass(frozen=True)
class ClaimReport:
    """The audit's verdict on one claim (the keys of ``--json``)."""

    claim: str
    paper_ref: str
    status: str
    examples: int
    worst_ratio: float
    counterexample: str | None

    def as_dict(self) -> dict:
        worst = None if np.isnan(self.worst_ratio) else (self.worst_ratio if np.isfinite(self.worst_ratio) else "inf")
        return {
            "claim": self.claim,
            "paper_ref": self.paper_ref,
            "status": self.status,
            "examples": self.examples,
            "worst_ratio": worst,
            "counterexample": self.counterexample,
        }


def audit_claim(claim: Claim, quantities: list[Quantities]) -> ClaimReport:
    """Evaluate ``claim`` on ``quantities`` and on its stored counterexample, if any."""
    evaluated = list(quantities)
    if claim.counterexample_path is not None:
        evaluated.append(Quantities(load_instance(claim.counterexample_path)))
    sides = [claim.evaluate(q) for q in evaluated]
    ratios = np.array([ratio(lhs, rhs) for lhs, rhs in sides])
    worst = float(np.nanmax(ratios)) if np.any(~np.isnan(ratios)) else float("nan")
    if any(violated(lhs, rhs) for lhs, rhs in sides):
        status = "fails"
    elif claim.trivial_bound is not None and not any(violated(*claim.trivial_bound(q)) for q in evaluated):
        status = "holds-trivially"
    else:
        status = "holds"
    relative = None
    if claim.counterexample_path is not None:
        relative = str(claim.counterexample_path.relative_to(COUNTEREXAMPLE_DIR.parent.parent))
    return ClaimReport(claim.statement, claim.paper_ref, status, len(evaluated), worst, relative)


def run_audit(n_examples: int = 200, seed: int = 0) -> list[ClaimReport]:
    """Audit every claim on ``n_examples`` random instances (shared by all claims) plus stored ones."""
    rng = np.random.default_rng(seed)
    quantities = [Quantities(random_instance(rng)) for _ in range(n_examples)]
    return [audit_claim(claim, quantities) for claim in CLAIMS]


def minimal_counterexample(claim: Claim, tries: int, seed: int = 0) -> Instance | None:
    """The smallest random instance (states, agents, actions) that violates ``claim``, or None."""
    rng = np.random.default_rng(seed)
    best, best_size = None, None
    for _ in range(tries):
        instance = random_instance(rng)
        size = (instance.mdp.n_states, instance.mdp.n_agents, sum(instance.mdp.action_sizes))
        if best_size is not None and size >= best_size:
            continue
        if violated(*claim.evaluate(Quantities(instance))):
            best, best_size = instance, size
    return best


def format_table(reports: list[ClaimReport]) -> str:
    width = max(len("where"), *(len(report.paper_ref) for report in reports))
    header = f"{'where':<{width}} {'status':<16} {'examples':>8} {'worst lhs/rhs':>14}  claim / counterexample"
    lines = [header, "-" * len(header)]
    for report in reports:
        worst = "-" if np.isnan(report.worst_ratio) else f"{report.worst_ratio:.4g}"
        lines.append(
            f"{report.paper_ref:<{width}} {report.status:<16} {report.examples:>8} {worst:>14}  {report.claim}"
        )
        if report.counterexample:
            lines.append(f"{'':<{width}} {'':<16} {'':>8} {'':>14}  counterexample: {report.counterexample}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bounds.audit", description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=200, help="random instances per claim")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random instances")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of the table")
    args = parser.parse_args(argv)
    if args.examples < 1:
        parser.error("--examples: must be at least 1")
    reports = run_audit(args.examples, args.seed)
    if args.json:
        print(json.dumps([report.as_dict() for report in reports], indent=1))
    else:
        print(format_table(reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
