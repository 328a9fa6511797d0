"""An audit of the paper's statements and proof steps, each as a checkable claim ``lhs <= rhs``.

    python -m bounds.audit [--examples N] [--seed S] [--json]
    python -m bounds.audit --search [--budget-s N] [--workers W] [--resume] [--json]

The claims, and every reading of a statement the paper leaves open, are listed in
:mod:`bounds.claims`. The default mode is fast: each claim is evaluated on random instances
(:func:`bounds.instances.random_instance`), on its stored counterexample (if any) and on the worst
instance the last recorded search found for it; the table also shows the worst ratio that search
reached (``bounds/search_record.json``). ``--search`` runs the search (:mod:`bounds.search`) and
rewrites the record, the worst instances and the counterexamples it verifies exactly.

The status of a claim is

* ``"fails"`` when an instance violates it: an exactly verified minimal counterexample is stored
  under ``bounds/counterexamples/`` and a corrected inequality is a claim of its own;
* ``"holds-trivially"`` when it holds, but for a reason other than the proof's (its
  ``trivial_reason`` names it, and the audit checks the trivial bound on every instance too);
* ``"holds"`` otherwise: neither the random draws nor the search broke it.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import search
from .claims import BY_NAME, CLAIMS, Claim
from .instances import COUNTEREXAMPLE_DIR, load_instance, random_instance
from .quantities import Quantities
from .search import violated

__all__ = ["BY_NAME", "CLAIMS", "Claim", "ClaimReport", "Quantities", "audit_claim", "run_audit", "violated"]

#: ``--search``'s default budget: with two workers the whole search, shrinking included, ends in under 10 minutes.
DEFAULT_BUDGET_S = 420.0


def ratio(lhs: float, rhs: float) -> float:
    """``lhs / rhs``; ``inf`` for a violation with a zero right side; ``nan`` when both sides are
    round-off (within :data:`bounds.ROUNDOFF` of zero), where a ratio would only measure noise."""
    from .lemmas import ROUNDOFF

    if max(abs(lhs), abs(rhs)) <= ROUNDOFF:
        return float("nan")
    if rhs > 0:
        return lhs / rhs
    return float("inf") if violated(lhs, rhs) else float("nan")


@dataclass(frozen=True)
class ClaimReport:
    """The audit's verdict on one claim (the keys of ``--json``)."""

    name: str
    claim: str
    paper_ref: str
    status: str
    examples: int
    worst_ratio: float
    worst_excess: float
    counterexample: str | None
    search: dict | None

    def as_dict(self) -> dict:
        def number(x):
            if x is None or np.isnan(x):
                return None
            return float(x) if np.isfinite(x) else "inf"

        return {
            "name": self.name,
            "claim": self.claim,
            "paper_ref": self.paper_ref,
            "status": self.status,
            "examples": self.examples,
            "worst_ratio": number(self.worst_ratio),
            "worst_excess": number(self.worst_excess),
            "counterexample": self.counterexample,
            "search": self.search,
        }


def counterexample_path(claim: Claim) -> Path | None:
    """The claim's stored counterexample: the one it names, else ``counterexamples/<name>.json`` if present."""
    if claim.counterexample_path is not None:
        return claim.counterexample_path
    default = COUNTEREXAMPLE_DIR / f"{claim.name}.json"
    return default if default.is_file() else None


def worst_instance_path(claim: Claim) -> Path | None:
    path = search.WORST_DIR / f"{claim.name}.json"
    return path if path.is_file() else None


def audit_claim(claim: Claim, quantities: list[Quantities], record: dict | None = None) -> ClaimReport:
    """Evaluate ``claim`` on ``quantities``, on its stored counterexample and on its stored worst instance."""
    evaluated = list(quantities)
    stored = counterexample_path(claim)
    for path in (stored, worst_instance_path(claim)):
        if path is not None:
            evaluated.append(Quantities(load_instance(path)))
    sides = [tuple(float(x) for x in claim.evaluate(q)) for q in evaluated]
    ratios = np.array([ratio(lhs, rhs) for lhs, rhs in sides])
    worst = float(np.nanmax(ratios)) if np.any(~np.isnan(ratios)) else float("nan")
    excess = max(lhs - rhs for lhs, rhs in sides)
    if any(violated(lhs, rhs) for lhs, rhs in sides):
        status = "fails"
    elif claim.trivial_bound is not None and not any(violated(*claim.trivial_bound(q)) for q in evaluated):
        status = "holds-trivially"
    else:
        status = "holds"
    relative = None if stored is None else str(stored.relative_to(COUNTEREXAMPLE_DIR.parent.parent))
    searched = (record or {}).get("claims", {}).get(claim.name)
    return ClaimReport(
        claim.name, claim.statement, claim.paper_ref, status, len(evaluated), worst, excess, relative, searched
    )


def run_audit(n_examples: int = 200, seed: int = 0, claims: list[Claim] | None = None) -> list[ClaimReport]:
    """Audit every claim on ``n_examples`` random instances (shared by all claims) plus the stored ones."""
    rng = np.random.default_rng(seed)
    quantities = [Quantities(random_instance(rng)) for _ in range(n_examples)]
    record = search.load_record()
    return [audit_claim(claim, quantities, record) for claim in (claims or CLAIMS)]


def _number(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if np.isnan(value):
        return "-"
    return "inf" if np.isinf(value) else f"{value:.4g}"


def format_table(reports: list[ClaimReport]) -> str:
    width = max(len("where"), *(len(report.paper_ref) for report in reports))
    header = (
        f"{'where':<{width}} {'status':<16} {'examples':>8} {'worst lhs/rhs':>13} {'search worst':>12} "
        f"{'search family':<16} claim / counterexample"
    )
    lines = [header, "-" * len(header)]
    for report in reports:
        searched = report.search or {}
        key = "worst_excess" if BY_NAME[report.name].equality else "worst_ratio"
        search_worst = searched.get(key)
        lines.append(
            f"{report.paper_ref:<{width}} {report.status:<16} {report.examples:>8} {_number(report.worst_ratio):>13} "
            f"{_number(search_worst):>12} {searched.get('family', '-'):<16} {report.claim}"
        )
        if report.counterexample:
            lines.append(f"{'':<{width + 69}} counterexample: {report.counterexample}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bounds.audit",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--examples", type=int, default=200, help="random instances per claim")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random instances and of the search")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of the table")
    parser.add_argument("--search", action="store_true", help="run the counterexample search and rewrite its record")
    parser.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S, help="--search: seconds of search in all")
    parser.add_argument("--workers", type=int, default=2, help="--search: worker processes")
    parser.add_argument("--resume", action="store_true", help="--search: keep the claims the record already has")
    parser.add_argument("--claims", nargs="+", metavar="NAME", help="only these claims (names of bounds.claims)")
    args = parser.parse_args(argv)
    if args.examples < 1:
        parser.error("--examples: must be at least 1")
    if args.budget_s <= 0:
        parser.error("--budget-s: must be positive")
    if args.workers < 1:
        parser.error("--workers: must be at least 1")
    unknown = sorted(set(args.claims or ()) - set(BY_NAME))
    if unknown:
        parser.error(f"--claims: unknown claim(s) {', '.join(unknown)}")
    claims = [BY_NAME[name] for name in args.claims] if args.claims else CLAIMS
    if args.search:

        def progress(name, entry):
            print(f"searched {name}: worst {_number(entry['worst_ratio'])}, violated {entry['violated']}", flush=True)

        search.run_search(claims, args.budget_s, args.seed, args.workers, resume=args.resume, progress=progress)
    reports = run_audit(args.examples, args.seed, claims)
    if args.json:
        print(json.dumps([report.as_dict() for report in reports], indent=1))
    else:
        print(format_table(reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
