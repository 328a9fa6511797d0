"""An audit of the paper's statements and proof steps, each as a checkable claim ``lhs <= rhs``.

    python -m bounds.audit [--examples N] [--seed S] [--json]
    python -m bounds.audit --search [--budget-s N] [--workers W] [--resume] [--json]
    python -m bounds.audit --vertices [--sizes 2x3x2 3x2x2 ...] [--max-vertices N] [--resume] [--json]

The claims, and every reading of a statement the paper leaves open, are listed in
:mod:`bounds.claims`. The default mode is fast: each claim is evaluated on random instances
(:func:`bounds.instances.random_instance`), on its stored counterexample (if any) and on the worst
instance the last recorded search found for it; the table also shows the worst ratio that search
reached (``bounds/search_record.json``). ``--search`` runs the search (:mod:`bounds.search`) and
rewrites the record, the worst instances and the counterexamples it verifies exactly. ``--vertices``
enumerates the vertices of the instance space up to symmetry (:mod:`bounds.vertices`) and records,
per claim and size, how many it evaluated and the worst ratio it reached.

The status of a claim says how its verdict is known:

* ``"fails"`` when an instance violates it: an exactly verified minimal counterexample is stored
  under ``bounds/counterexamples/`` and a corrected inequality is a claim of its own;
* ``"proved"`` when it carries a proof whose every used claim is proved too
  (:func:`bounds.claims.check_proofs`; a proof that uses an unproved or failing claim is an error);
* ``"proved-trivially"`` when the statement holds for a reason other than its proof's, which is
  itself a proof (its ``trivial_reason``; the audit checks the trivial bound on every instance too);
* ``"searched"`` otherwise: no proof, and neither the random draws, the continuous search nor the
  vertex enumeration broke it; :func:`coverage` says how far they went.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import search, vertices
from .claims import BY_NAME, CLAIMS, Claim, check_proofs
from .instances import COUNTEREXAMPLE_DIR, InstanceFileError, load_instance, random_instance
from .quantities import Quantities
from .search import violated

__all__ = [
    "BY_NAME",
    "CLAIMS",
    "STATUSES",
    "Claim",
    "ClaimReport",
    "Quantities",
    "audit_claim",
    "coverage",
    "run_audit",
    "violated",
]

#: Every status, strongest knowledge first.
STATUSES = ("fails", "proved", "proved-trivially", "searched")

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
    how: str = ""
    vertices: dict | None = None

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
            "how": self.how,
            "search": self.search,
            "vertices": self.vertices,
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


def failing_claims(claims: list[Claim] | None = None) -> set[str]:
    """The claims a stored counterexample violates (each is verified exactly by the tests)."""
    return {claim.name for claim in (claims or CLAIMS) if counterexample_path(claim) is not None}


def coverage(claim: Claim, record: dict | None) -> str:
    """How far the searches went for ``claim``: vertex sizes (all or sampled), continuous starts, worst ratio."""
    record = record or {}
    parts = []
    sizes = (record.get("vertices") or {}).get(claim.name) or {}
    if sizes:
        whole = [size for size, entry in sizes.items() if entry.get("exhaustive")]
        sampled = [size for size, entry in sizes.items() if not entry.get("exhaustive")]
        text = "vertices: all at " + ", ".join(whole) if whole else "vertices:"
        if sampled:
            text += ("; " if whole else " ") + "sampled at " + ", ".join(
                f"{size} ({sizes[size]['evaluated']:,} of {sizes[size]['reduced']:,})" for size in sampled
            )
        worst = max(
            (entry.get("worst_ratio") for entry in sizes.values() if isinstance(entry.get("worst_ratio"), float)),
            default=None,
        )
        parts.append(text + ("" if worst is None else f", worst {worst:.4g}"))
    searched = (record.get("claims") or {}).get(claim.name)
    if searched:
        worst = searched.get("worst_excess" if claim.equality else "worst_ratio")
        parts.append(
            f"continuous: {searched['starts']} starts, {searched['evaluations']:,} instances"
            + ("" if not isinstance(worst, float) else f", worst {worst:.4g}")
        )
    return "; ".join(parts) if parts else "not searched"


def audit_claim(
    claim: Claim,
    quantities: list[Quantities],
    record: dict | None = None,
    proved: dict[str, bool] | None = None,
) -> ClaimReport:
    """Evaluate ``claim`` on ``quantities``, on its stored counterexample and on its stored worst instance.

    ``proved``: the result of :func:`bounds.claims.check_proofs` (computed here when not given).
    """
    if proved is None:
        proved = check_proofs(CLAIMS, failing_claims())
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
        how = f"counterexample {stored.name}" if stored is not None else "violated on a drawn instance"
    elif proved.get(claim.name):
        status = "proved"
        how = "proof" + (f" using {', '.join(claim.uses)}" if claim.uses else "")
    elif claim.trivial_bound is not None and not any(violated(*claim.trivial_bound(q)) for q in evaluated):
        status = "proved-trivially"
        how = claim.trivial_reason
    else:
        status = "searched"
        how = coverage(claim, record)
    relative = None if stored is None else str(stored.relative_to(COUNTEREXAMPLE_DIR.parent.parent))
    searched = (record or {}).get("claims", {}).get(claim.name)
    vertex_entries = (record or {}).get("vertices", {}).get(claim.name)
    return ClaimReport(
        claim.name,
        claim.statement,
        claim.paper_ref,
        status,
        len(evaluated),
        worst,
        excess,
        relative,
        searched,
        how,
        vertex_entries,
    )


def run_audit(n_examples: int = 200, seed: int = 0, claims: list[Claim] | None = None) -> list[ClaimReport]:
    """Audit every claim on ``n_examples`` random instances (shared by all claims) plus the stored ones."""
    rng = np.random.default_rng(seed)
    quantities = [Quantities(random_instance(rng)) for _ in range(n_examples)]
    record = search.load_record()
    proved = check_proofs(CLAIMS, failing_claims())
    return [audit_claim(claim, quantities, record, proved) for claim in (claims or CLAIMS)]


def _number(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if np.isnan(value):
        return "-"
    return "inf" if np.isinf(value) else f"{value:.4g}"


def format_table(reports: list[ClaimReport]) -> str:
    """The audit as a text table: where, status, examples, worst ratio on them, and how the verdict is known."""
    width = max(len("where"), *(len(report.paper_ref) for report in reports))
    header = f"{'where':<{width}} {'status':<16} {'examples':>8} {'worst lhs/rhs':>13}  how it is known / claim"
    lines = [header, "-" * len(header)]
    for report in reports:
        lines.append(
            f"{report.paper_ref:<{width}} {report.status:<16} {report.examples:>8} {_number(report.worst_ratio):>13}  "
            f"{report.how}"
        )
        lines.append(f"{'':<{width + 41}}  {report.claim}")
    return "\n".join(lines)


def markdown_table(reports: list[ClaimReport]) -> str:
    """The audit as the README's Markdown table (generated; a test keeps the README's copy identical)."""
    lines = ["| claim | where | status | how it is known |", "|---|---|---|---|"]
    for report in reports:
        status = f"**{report.status}**" if report.status == "fails" else report.status
        lines.append(f"| `{report.name}` | {report.paper_ref} | {status} | {report.how} |")
    return "\n".join(lines)


def _run(args, claims: list[Claim], sizes) -> None:
    notes: list[str] = []
    if args.search:

        def progress(name, entry):
            print(f"searched {name}: worst {_number(entry['worst_ratio'])}, violated {entry['violated']}", flush=True)

        search.run_search(
            claims,
            args.budget_s,
            args.seed,
            args.workers,
            resume=args.resume,
            progress=progress,
            replace=args.replace,
            notes=notes,
        )
    if args.vertices:

        def vertex_progress(name, size, entry):
            how = "all" if entry["exhaustive"] else "sampled"
            print(
                f"vertices {size} {name}: {entry['evaluated']} of {entry['reduced']} ({how}), "
                f"worst {_number(entry.get('worst_ratio'))} at gamma {entry.get('worst_gamma')}, {entry['seconds']} s",
                flush=True,
            )

        vertices.run_vertices(
            claims,
            sizes,
            args.seed,
            args.max_vertices,
            args.resume,
            sample_vertices=args.sample_vertices,
            progress=vertex_progress,
            replace=args.replace,
            notes=notes,
        )
    reports = run_audit(args.examples, args.seed, claims)
    if args.json:
        print(json.dumps([report.as_dict() for report in reports], indent=1))
    elif args.markdown:
        print(markdown_table(reports))
    else:
        print(format_table(reports))
    for note in notes:
        print(f"note: {note}", file=sys.stderr, flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bounds.audit",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--examples", type=int, default=200, help="random instances per claim")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random instances and of the search")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of the table")
    parser.add_argument("--markdown", action="store_true", help="print the README's Markdown table instead")
    parser.add_argument("--search", action="store_true", help="run the counterexample search and rewrite its record")
    parser.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S, help="--search: seconds of search in all")
    parser.add_argument("--workers", type=int, default=2, help="--search: worker processes")
    parser.add_argument(
        "--resume", action="store_true", help="--search / --vertices: continue an unfinished run, keep what it did"
    )
    parser.add_argument(
        "--replace",
        action="store_true",
        help="--search / --vertices: let weaker results replace the recorded ones (and rebuild a damaged record)",
    )
    parser.add_argument("--claims", nargs="+", metavar="NAME", help="only these claims (names of bounds.claims)")
    parser.add_argument("--vertices", action="store_true", help="enumerate the vertices and record what they reach")
    parser.add_argument(
        "--sizes",
        nargs="+",
        metavar="SxNxA",
        help="--vertices: states x agents x actions (default: 1x2x2 1x3x2 2x2x2 1x2x3 2x3x2 3x2x2, and 2x4x2 2x5x2 "
        "for the claims that do not read the rewards)",
    )
    parser.add_argument(
        "--max-vertices",
        type=int,
        default=vertices.MAX_VERTICES,
        help="--vertices: up to this many reduced vertices per claim group, size and behavior, all are evaluated",
    )
    parser.add_argument(
        "--sample-vertices",
        type=int,
        default=vertices.SAMPLE_VERTICES,
        help="--vertices: the uniform sample evaluated above --max-vertices",
    )
    args = parser.parse_args(argv)
    if args.examples < 1:
        parser.error("--examples: must be at least 1")
    if not (math.isfinite(args.budget_s) and args.budget_s > 0):
        parser.error(f"--budget-s: must be finite and positive, got {args.budget_s}")
    if args.workers < 1:
        parser.error("--workers: must be at least 1")
    if args.max_vertices < 1:
        parser.error("--max-vertices: must be at least 1")
    if args.sample_vertices < 1:
        parser.error("--sample-vertices: must be at least 1")
    try:
        sizes = None if args.sizes is None else [vertices.vertex_sizes(spec) for spec in args.sizes]
    except ValueError as error:
        parser.error(str(error))
    unknown = sorted(set(args.claims or ()) - set(BY_NAME))
    if unknown:
        parser.error(f"--claims: unknown claim(s) {', '.join(unknown)}")
    claims = [BY_NAME[name] for name in args.claims] if args.claims else CLAIMS
    try:
        _run(args, claims, sizes)
    except (search.RecordError, InstanceFileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
