"""The proof audit: every claim as a property test (two engines), the exact counterexamples, the record, the CLI."""

import json
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, target
from hypothesis import strategies as st

from bounds import audit, search, vertices
from bounds.claims import BY_NAME, CLAIMS, CORRELATED, FALSE_SKETCH_READINGS, PROVED_SKETCH_READINGS, check_proofs
from bounds.instances import COUNTEREXAMPLE_DIR, Instance, load_instance
from bounds.quantities import Problem, Quantities
from tests.strategies import audit_instances

FAILING = {claim.name for claim in CLAIMS if audit.counterexample_path(claim) is not None}
HOLDING = [claim for claim in CLAIMS if claim.name not in FAILING]


def _ids(claim):
    return claim.name


@pytest.mark.parametrize("claim", HOLDING, ids=_ids)
@given(instance=audit_instances())
def test_claim_holds_on_random_instances(claim, instance):
    """Each claim the audit reports as holding is lhs <= rhs on every drawn instance (claim.statement).

    Instances outside a claim's assumptions (a correlated mu under Assumption 1 is read as the product of
    its marginals; a Q_hat of range above 2/(1-gamma) for a Lipschitz claim) are skipped by the check.
    """
    q = Quantities(instance)
    if claim.q_hat_lipschitz and q.q_hat_range > 2 / (1 - q.gamma):
        return
    lhs, rhs = (float(x) for x in claim.evaluate(q))
    if rhs > 0:
        target(lhs / rhs, label=f"lhs / rhs of {claim.name}")
    assert not audit.violated(lhs, rhs), (claim.statement, lhs, rhs)
    if claim.trivial_bound is not None:
        assert not audit.violated(*claim.trivial_bound(q)), claim.trivial_reason


@st.composite
def searched_points(draw, claim):
    """A point of the search's own parametrization (bounds.search.Layout), drawn coordinate by coordinate."""
    n_states, sizes = draw(st.sampled_from(search.SIZES[:10]))
    layout = search.layout_for(claim, n_states, sizes)
    theta = np.array([draw(st.floats(lo, hi, allow_nan=False)) for lo, hi in layout.bounds()])
    n = len(sizes)
    subset = tuple(sorted(draw(st.sets(st.integers(0, n - 1), max_size=n))))
    return layout.instance(theta, subset)


@pytest.mark.parametrize("claim", HOLDING, ids=_ids)
@given(data=st.data())
def test_claim_holds_where_hypothesis_targets_its_worst_ratio(claim, data):
    """The second engine: hypothesis' target() climbs the search's score over the search's parametrization."""
    instance = data.draw(searched_points(claim))
    lhs, rhs = (float(x) for x in claim.evaluate(Quantities(instance)))
    target(search.score(lhs, rhs, claim.equality), label=f"score of {claim.name}")
    assert not audit.violated(lhs, rhs), (claim.statement, lhs, rhs)


@pytest.mark.parametrize("name", sorted(FAILING))
def test_stored_counterexample_violates_the_claim_exactly(name):
    """The paper's inequality fails on its stored counterexample in exact rational arithmetic, the
    stored sides are the exact ones, the instance lies inside the claim's assumptions, and every
    correction of the claim holds on it exactly."""
    claim = BY_NAME[name]
    data = json.loads(audit.counterexample_path(claim).read_text())
    exact = Quantities(Problem.from_json(data["exact"], exact=True))
    lhs, rhs = claim.evaluate(exact)
    assert isinstance(lhs, Fraction) and isinstance(rhs, Fraction)
    assert lhs > rhs, (claim.statement, lhs, rhs)
    if data.get("claim") == name:
        assert (Fraction(data["lhs"]), Fraction(data["rhs"])) == (lhs, rhs)
    assert search.satisfies_assumptions(claim, data["exact"])
    assert audit.violated(*claim.evaluate(Quantities(load_instance(audit.counterexample_path(claim)))))
    corrections = [c for c in CLAIMS if name in c.corrects]
    assert corrections, f"{name} fails but has no corrected claim"
    for correction in corrections:
        corrected_lhs, corrected_rhs = correction.evaluate(exact)
        assert corrected_lhs <= corrected_rhs, correction.statement


def test_every_correction_carries_its_proof_and_corrects_a_failing_claim():
    for claim in CLAIMS:
        if claim.corrects:
            assert claim.proof, claim.name
            assert set(claim.corrects) <= FAILING | {c.name for c in CLAIMS}, claim.name
            assert claim.name not in FAILING, f"the correction {claim.name} fails itself"


#: Failing claims whose smallest counterexample needs 3 agents, and why 2 cannot do.
NEEDS_THREE_AGENTS = {
    # the vertex enumeration covered every vertex with 2 agents (checked below)
    "theorem3-sketch": "exhaustive",
    # with 2 agents, S = {i} leaves mu_-S a single marginal, so mu_S^(x) x mu_-S = mu^(x) and
    # TV(pi_S x mu_-S, mu) <= TV_i + kappa: Lemma 2's own argument proves the claim for n <= 2
    "lemma2-conditional": "proof",
}


def test_counterexamples_are_minimal_in_size():
    """Every stored counterexample has at most 2 states and 2 agents (the shrinking step's result), or 3 agents
    where 2 cannot violate the claim: the vertex enumeration found no violation at any smaller size, all
    covered exhaustively, or an argument (``NEEDS_THREE_AGENTS``) rules 2 agents out."""
    record = search.load_record()["vertices"]
    for name in FAILING:
        data = json.loads(audit.counterexample_path(BY_NAME[name]).read_text())["exact"]
        states, agents, _, _ = search.size_key(data)
        assert states <= 2 and agents <= 3, (name, states, agents)
        if agents > 2:
            assert name in NEEDS_THREE_AGENTS, name
        if NEEDS_THREE_AGENTS.get(name) == "exhaustive":
            smaller = [entry for size, entry in record[name].items() if vertices.vertex_sizes(size)[1] < agents]
            assert smaller and all(entry["exhaustive"] and not entry["violated"] for entry in smaller), name


def test_theorem3_sketch_counterexample_in_closed_form():
    """Two agents, mu plays 0, pi_i plays 1 w.p. 9/10 at the start s0; w_1 = 1 (k_eff = 1) everywhere.
    One deviating agent sends the chain to a trap s2, both to a safe s1 (both absorbing, pi = mu there).
    pi_w deviates one agent at a time, so it leaves s0 w.p. 9/10, always to the trap; pi stays w.p. 1/100.
    W1(d^{pi_w}, d^mu) = 1 - d^{pi_w}(s0) = (9/10) gamma / (1 - gamma/10), while
    gamma/(1-gamma) E_{d^pi}[k_eff TVbar(s)] = gamma/(1-gamma) d^pi(s0) (9/10) = (9/10) gamma / (1 - gamma/100):
    the reading under d^pi with per-state TVs fails for every gamma in (0, 1); under d^{pi_w} it is tight."""
    gamma = Fraction(99, 100)
    zero, one, q = Fraction(0), Fraction(1), Fraction(9, 10)
    P = [[[[one, zero, zero], [zero, zero, one]], [[zero, zero, one], [zero, one, zero]]]]
    P += [[[[zero, one, zero]] * 2] * 2, [[[zero, zero, one]] * 2] * 2]
    P = [[[list(map(str, cell)) for cell in row] for row in state] for state in P]
    stay = [["1", "0"]] * 3
    deviate = [[str(1 - q), str(q)], ["1", "0"], ["1", "0"]]
    data = {
        "P": P,
        "R": [[["0"] * 2] * 2] * 3,
        "d0": ["1", "0", "0"],
        "gamma": str(gamma),
        "mu": {"factors": [stay, stay]},
        "pi": [deviate, deviate],
        "subset": [0, 1],
        "q_hat": [[["0"] * 2] * 2] * 3,
        "weights": [["1", "0"]] * 3,
    }
    exact = Quantities(Problem.from_json(data, exact=True))
    lhs, rhs = BY_NAME["theorem3-sketch-dpi-state"].evaluate(exact)
    assert lhs == q * gamma / (1 - gamma / 10) and rhs == q * gamma / (1 - gamma / 100) and lhs > rhs
    assert BY_NAME["theorem3-sketch-dpiw-state"].evaluate(exact) == (lhs, lhs)  # the proved reading is attained


def test_eq44_counterexample_numbers():
    """One state: W1(d^pi, d^mu) = 0 while E_{d^pi,pi} Q* - E_{d^mu,mu} Q* = 2 (rewards +1 / -1)."""
    quantities = Quantities(load_instance(COUNTEREXAMPLE_DIR / "eq44.json"))
    lhs, rhs = BY_NAME["eq44"].evaluate(quantities)
    assert rhs == 0.0 and abs(lhs - 2.0) <= 1e-12


def test_remark_counterexample_numbers():
    """One state, both agents deviating for sure: the per-agent sum 1 + 1 = 2 exceeds the joint TV, at most 1."""
    lhs, rhs = BY_NAME["remark-theorem1"].evaluate(
        Quantities(load_instance(COUNTEREXAMPLE_DIR / "remark-theorem1.json"))
    )
    assert abs(lhs - 2.0) <= 1e-12 and abs(rhs - 1.0) <= 1e-12


def test_the_record_covers_every_claim_and_agrees_with_the_counterexamples():
    """The stored search record has every claim; every violation it saw is stored as an exact counterexample,
    and for a holding claim its worst ratio is at most 1 (up to round-off)."""
    record = search.load_record()["claims"]
    assert set(record) == {claim.name for claim in CLAIMS}
    for claim in CLAIMS:
        entry = record[claim.name]
        assert entry["starts"] > 0 and entry["evaluations"] > entry["starts"]
        assert not entry["violated"] or claim.name in FAILING, claim.name
        if claim.name not in FAILING and isinstance(entry["worst_ratio"], float):
            assert entry["worst_ratio"] <= 1 + 1e-8, claim.name
        if claim.q_hat_lipschitz:
            assert "outside_assumption" in entry, claim.name


def test_the_sketch_readings_its_argument_proves_hold_and_the_readings_under_dpi_fail():
    for reading in PROVED_SKETCH_READINGS:
        assert f"theorem3-sketch-{reading}" not in FAILING
    assert {"theorem3-sketch", "theorem3-sketch-dpi-state"} <= FAILING
    assert {"theorem3-sketch" if r == "dpi" else f"theorem3-sketch-{r}" for r in FALSE_SKETCH_READINGS} <= FAILING


def test_audit_statuses():
    """Fails exactly where a counterexample is stored; proved where the claim's proof uses proved claims only;
    Theorems 1-3 (sup-norm eps_FQI) hold without their shift term; every other claim is labelled searched,
    with the coverage of the searches."""
    reports = {report.name: report for report in audit.run_audit(n_examples=25, seed=1)}
    proved = check_proofs(CLAIMS, FAILING)
    for claim in CLAIMS:
        report = reports[claim.name]
        if claim.name in FAILING:
            assert report.status == "fails", claim.name
        elif proved[claim.name]:
            assert report.status == "proved" and report.how.startswith("proof"), claim.name
        elif claim.trivial_bound is not None:
            assert report.status == "proved-trivially" and report.how == claim.trivial_reason, claim.name
        else:
            assert report.status == "searched", claim.name
            assert "vertices: all at" in report.how and "continuous:" in report.how, report.how
    assert {reports[name].status for name in ("theorem1", "theorem2", "theorem3")} == {"proved-trivially"}
    assert reports["lemma2-conditional"].status == "fails"
    assert reports["lemma2-conditional-corrected"].status == "proved"


def test_coverage_says_how_far_the_searches_went():
    """What a searched claim's row says: the vertex sizes (all or sampled) and the continuous search."""
    record = search.load_record()
    text = audit.coverage(BY_NAME["lemma1"], record)
    assert text.startswith("vertices: all at 1x2x2") and "sampled at 2x4x2" in text and "continuous:" in text
    assert audit.coverage(BY_NAME["lemma1"], {}) == "not searched"


def test_the_readme_table_is_the_generated_one():
    """The README's audit table is ``python -m bounds.audit --markdown``'s output, line for line, and its
    coverage table is :func:`bounds.vertices.coverage_table` of the committed record."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = audit.markdown_table(audit.run_audit(n_examples=5, seed=0))
    assert table in readme
    assert vertices.coverage_table(search.load_record(), CLAIMS) in readme


def test_correlated_claims_are_searched_with_a_correlated_mu():
    assert {c.name for c in CLAIMS if c.behavior == CORRELATED} >= {"lemma2", "theorem2", "theorem2-in-distribution"}


def test_cli_json_lists_every_claim(capsys):
    assert audit.main(["--examples", "3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["name"] for row in rows] == [claim.name for claim in CLAIMS]
    for row in rows:
        assert row["status"] in set(audit.STATUSES)
        assert (row["counterexample"] is not None) == (row["status"] == "fails")
        assert row["search"] is not None and "worst_ratio" in row["search"]
        if row["counterexample"]:
            assert row["counterexample"].startswith("bounds/counterexamples/")


def test_cli_table(capsys):
    assert audit.main(["--examples", "2"]) == 0
    table = capsys.readouterr().out
    assert "Lemma 1" in table and "fails" in table and "proved-trivially" in table and "how it is known" in table
    assert "proof using eq20, eq22, eq24, eq29" in table


def test_cli_refuses_an_unknown_claim(capsys):
    with pytest.raises(SystemExit) as stop:
        audit.main(["--claims", "lemma9"])
    assert stop.value.code == 2 and "--claims: unknown claim(s) lemma9" in capsys.readouterr().err


def test_cli_search_writes_its_record(tmp_path, monkeypatch, capsys):
    """``--search`` on one claim writes the record, the worst instance and the exact counterexample it finds."""
    monkeypatch.setattr(search, "RECORD_PATH", tmp_path / "record.json")
    monkeypatch.setattr(search, "WORST_DIR", tmp_path / "worst")
    monkeypatch.setattr(search, "COUNTEREXAMPLE_DIR", tmp_path / "counterexamples")
    assert audit.main(["--search", "--claims", "eq44", "--budget-s", "2", "--workers", "1", "--examples", "2"]) == 0
    record = json.loads((tmp_path / "record.json").read_text())
    assert record["claims"]["eq44"]["violated"]
    assert (tmp_path / "counterexamples" / "eq44.json").is_file() and (tmp_path / "worst" / "eq44.json").is_file()
    assert "searched eq44" in capsys.readouterr().out


@given(instance=audit_instances())
def test_instance_json_round_trip(instance):
    back = Instance.from_json(json.loads(json.dumps(instance.to_json())))
    assert np.array_equal(back.mdp.P, instance.mdp.P) and back.mdp.gamma == instance.mdp.gamma
    assert np.array_equal(back.mu.joint(), instance.mu.joint()) and back.subset == instance.subset
    assert np.array_equal(back.q_hat, instance.q_hat) and np.array_equal(back.weights, instance.weights)


def test_missing_counterexample_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="path: no counterexample file"):
        load_instance(tmp_path / "nope.json")


@pytest.mark.parametrize("path", sorted(COUNTEREXAMPLE_DIR.glob("*-outside-assumption.json")), ids=lambda p: p.stem)
def test_a_correction_needs_its_assumption(path):
    """Outside its Lipschitz assumption on Q_hat, a correction that holds inside fails: exactly, on this instance."""
    data = json.loads(path.read_text())
    claim = BY_NAME[data["claim"]]
    assert claim.q_hat_lipschitz and claim.name not in FAILING
    exact = Quantities(Problem.from_json(data["exact"], exact=True))
    assert exact.q_hat_range > 2 / (1 - exact.gamma)  # outside the assumption
    lhs, rhs = claim.evaluate(exact)
    assert lhs > rhs and (Fraction(data["lhs"]), Fraction(data["rhs"])) == (lhs, rhs)
