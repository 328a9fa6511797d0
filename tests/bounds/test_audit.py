"""The proof audit: every claim as a property test, the stored counterexamples, the CLI."""

import json

import numpy as np
import pytest
from hypothesis import given, target

from bounds import audit
from bounds.instances import COUNTEREXAMPLE_DIR, Instance, load_instance
from tests.strategies import audit_instances

FAILING = {claim.name for claim in audit.CLAIMS if claim.counterexample is not None}
BY_NAME = {claim.name: claim for claim in audit.CLAIMS}


@pytest.mark.parametrize(
    "claim", [c for c in audit.CLAIMS if c.name not in FAILING], ids=lambda c: c.paper_ref.replace(" ", "_")
)
@given(instance=audit_instances())
def test_claim_holds_on_random_instances(claim, instance):
    """Each claim the audit reports as holding is lhs <= rhs on every drawn instance (claim.statement)."""
    lhs, rhs = claim.evaluate(audit.Quantities(instance))
    if rhs > 0:
        target(lhs / rhs, label=f"lhs / rhs of {claim.name}")
    assert not audit.violated(lhs, rhs), (claim.statement, lhs, rhs)
    if claim.trivial_bound is not None:
        assert not audit.violated(*claim.trivial_bound(audit.Quantities(instance))), claim.trivial_reason


@pytest.mark.parametrize("name", sorted(FAILING))
def test_stored_counterexample_violates_the_claim_and_the_correction_holds_on_it(name):
    """The paper's inequality fails on its stored minimal counterexample; the corrected one holds there."""
    claim = BY_NAME[name]
    quantities = audit.Quantities(load_instance(claim.counterexample_path))
    lhs, rhs = claim.evaluate(quantities)
    assert audit.violated(lhs, rhs), (claim.statement, lhs, rhs)
    corrections = [c for c in audit.CLAIMS if c.corrects == name]
    assert corrections, f"{name} fails but has no corrected claim"
    for correction in corrections:
        assert not audit.violated(*correction.evaluate(quantities)), correction.statement


def test_eq44_counterexample_numbers():
    """One state: W1(d^pi, d^mu) = 0 while E_{d^pi,pi} Q* - E_{d^mu,mu} Q* = 2 (rewards +1 / -1)."""
    quantities = audit.Quantities(load_instance(COUNTEREXAMPLE_DIR / "eq44.json"))
    lhs, rhs = BY_NAME["eq44"].evaluate(quantities)
    assert rhs == 0.0 and abs(lhs - 2.0) <= 1e-12
    assert abs(quantities.theorem1.w1_state_action - 1.0) <= 1e-12


def test_remark_counterexample_numbers():
    """Two agents at TV 0.5 each: the per-agent sum 1.0 exceeds the joint TV 1 - 1/4 = 0.75."""
    lhs, rhs = BY_NAME["remark-theorem1"].evaluate(
        audit.Quantities(load_instance(COUNTEREXAMPLE_DIR / "remark-theorem1.json"))
    )
    assert abs(lhs - 1.0) <= 1e-12 and abs(rhs - 0.75) <= 1e-12


def test_audit_statuses():
    """Fails exactly where a counterexample is stored; Theorems 1-3 hold without their shift term."""
    reports = {report.paper_ref: report for report in audit.run_audit(n_examples=25, seed=1)}
    for claim in audit.CLAIMS:
        status = reports[claim.paper_ref].status
        if claim.name in FAILING:
            assert status == "fails"
        elif claim.trivial_bound is not None:
            assert status == "holds-trivially"
        else:
            assert status == "holds"
    assert {reports[f"Theorem {k}"].status for k in (1, 2, 3)} == {"holds-trivially"}


def test_cli_json_lists_every_claim(capsys):
    assert audit.main(["--examples", "3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == len(audit.CLAIMS)
    for row in rows:
        assert set(row) == {"claim", "paper_ref", "status", "examples", "worst_ratio", "counterexample"}
        assert row["status"] in {"holds", "holds-trivially", "fails"}
        assert (row["counterexample"] is not None) == (row["status"] == "fails")
        if row["counterexample"]:
            assert row["counterexample"].startswith("bounds/counterexamples/")


def test_cli_table(capsys):
    assert audit.main(["--examples", "2"]) == 0
    table = capsys.readouterr().out
    assert "Lemma 1" in table and "fails" in table and "holds-trivially" in table


@given(instance=audit_instances())
def test_instance_json_round_trip(instance):
    back = Instance.from_json(json.loads(json.dumps(instance.to_json())))
    assert np.array_equal(back.mdp.P, instance.mdp.P) and back.mdp.gamma == instance.mdp.gamma
    assert np.array_equal(back.mu.joint(), instance.mu.joint()) and back.subset == instance.subset
    assert np.array_equal(back.q_hat, instance.q_hat) and np.array_equal(back.weights, instance.weights)


def test_missing_counterexample_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="path: no counterexample file"):
        load_instance(tmp_path / "nope.json")
