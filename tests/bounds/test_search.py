"""The counterexample search: its parametrization, its determinism, that it finds what it should."""

import json
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bounds import search
from bounds.claims import BY_NAME, CLAIMS
from bounds.instances import COUNTEREXAMPLE_DIR, load_instance
from bounds.quantities import Problem, Quantities


@given(
    size=st.sampled_from(search.SIZES[:12]),
    family=st.sampled_from(search.FAMILIES),
    name=st.sampled_from(["eq45-corrected", "theorem2", "lemma2", "theorem3-sketch"]),
    outside=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_every_start_is_a_valid_instance_inside_the_claims_assumptions(size, family, name, outside, seed):
    """Starts map to validated instances; a Lipschitz claim's Q_hat has range <= 2/(1-gamma) unless outside."""
    claim = BY_NAME[name]
    layout = search.layout_for(claim, *size, outside_assumption=outside)
    theta, subset = search.starting_point(layout, family, np.random.default_rng(seed))
    assert theta.shape == (layout.dim,)
    lo, hi = np.array(layout.bounds()).T
    assert np.all(theta >= lo) and np.all(theta <= hi)
    instance = layout.instance(theta, subset)
    assert instance.mdp.n_states == size[0] and instance.mdp.action_sizes == size[1]
    assert (type(instance.mu).__name__ == "JointPolicy") == (claim.behavior == "correlated")
    if claim.q_hat_lipschitz and not outside:
        gamma = instance.mdp.gamma
        assert instance.q_hat.max() - instance.q_hat.min() <= 2.0 / (1.0 - gamma) + 1e-9


def test_score_orders_ratios_margins_and_identities():
    assert search.score(0.5, 1.0, equality=False) == 0.5
    assert search.score(1e-9, 1e-9, equality=False) == 0.0  # both sides vanish: no information
    assert search.score(1e-3, 0.0, equality=False) > 1.0  # a violation with a zero right side
    assert search.score(2e-12, 0.0, equality=True) == 2e-12


def test_search_is_deterministic_for_a_seed():
    """The same seed and number of starts give the same worst instance, bit for bit."""
    claim = BY_NAME["eq22"]
    first, _, evaluations_1 = search.search_claim(claim, starts=2, seed=5, size=(2, (2,)))
    second, _, evaluations_2 = search.search_claim(claim, starts=2, seed=5, size=(2, (2,)))
    assert evaluations_1 == evaluations_2 and first.score == second.score
    assert np.array_equal(first.theta, second.theta)


def test_search_reaches_the_sharp_constant_of_lemma1():
    """From its tight family the search drives Lemma 1's ratio to 1 (the constant gamma/(1-gamma) is sharp)."""
    best, _, _ = search.search_claim(BY_NAME["lemma1"], starts=len(search.FAMILIES), seed=0, size=(2, (2,)))
    assert 0.99 < best.score <= 1.0 + 1e-9


def test_search_finds_the_state_distance_gap_of_eq44():
    """One state, one agent: any deviation breaks eq. 44, and the search finds one at once."""
    best, _, _ = search.search_claim(BY_NAME["eq44"], starts=3, seed=0, size=(1, (2,)))
    assert best.violating


def test_a_found_violation_is_rounded_to_an_exact_counterexample():
    """A violation found in floats becomes simple fractions that violate the claim exactly."""
    claim = BY_NAME["eq44"]
    best, _, _ = search.search_claim(claim, starts=3, seed=0, size=(1, (2,)))
    _, _, theta, layout, subset = best.violating[0]
    data, lhs, rhs = search.exact_counterexample(claim, layout.instance(theta, subset))
    assert lhs > rhs and isinstance(lhs, Fraction)
    assert search.size_key(data)[-1] <= 1000  # the denominators are small
    assert (lhs, rhs) == search.exact_sides(claim, data)


def test_store_keeps_a_smaller_counterexample_and_writes_atomically(tmp_path):
    claim = BY_NAME["eq44"]
    small = json.loads((COUNTEREXAMPLE_DIR / "eq44.json").read_text())["exact"]
    path = search.store_counterexample(claim, small, Fraction(2), Fraction(0), "test", tmp_path)
    assert json.loads(path.read_text())["lhs"] == "2"
    bigger = json.loads(json.dumps(small))
    bigger["gamma"] = "1/3"  # denominator 3 > 2: not smaller
    search.store_counterexample(claim, bigger, Fraction(2), Fraction(0), "test", tmp_path)
    assert json.loads(path.read_text())["exact"]["gamma"] == small["gamma"]
    assert [p.name for p in tmp_path.iterdir()] == ["eq44.json"]  # no temporary file left


def test_run_search_writes_a_resumable_record(tmp_path):
    """A tiny search over two claims: record entries, worst instances and the exact counterexample."""
    claims = [BY_NAME["eq22"], BY_NAME["eq44"]]
    kwargs = {"record_path": tmp_path / "record.json", "worst_dir": tmp_path / "worst"}
    kwargs["counterexample_dir"] = tmp_path / "counterexamples"
    record = search.run_search(claims, budget_s=2.0, seed=0, workers=1, **kwargs)
    assert set(record["claims"]) == {"eq22", "eq44"}
    assert not record["claims"]["eq22"]["violated"] and record["claims"]["eq44"]["violated"]
    stored = tmp_path / "counterexamples" / "eq44.json"
    data = json.loads(stored.read_text())
    assert Fraction(data["lhs"]) > Fraction(data["rhs"])
    assert (tmp_path / "worst" / "eq22.json").is_file()
    assert search.violated(*BY_NAME["eq44"].evaluate(Quantities(load_instance(stored))))
    assert not search.pending_record_path(tmp_path / "record.json").exists()  # merged, then removed
    assert not (tmp_path / "worst" / search.PENDING).exists()


@pytest.mark.parametrize("claim", [c for c in CLAIMS if c.name in {"eq25", "theorem1", "proposition1-loss"}])
def test_the_parametrization_reaches_every_claim(claim):
    """Every part a claim reads is a smooth function of theta: moving theta moves the sides."""
    layout = search.layout_for(claim, 2, (2, 2))
    theta, _ = search.starting_point(layout, "random", np.random.default_rng(0))
    subset = (0, 1)
    lo, hi = np.array(layout.bounds()).T
    moved = np.clip(theta + 0.3 * np.random.default_rng(1).normal(size=theta.shape), lo, hi)  # softmax ignores shifts
    sides = [claim.evaluate(Quantities(Problem.from_instance(layout.instance(t, subset)))) for t in (theta, moved)]
    assert not np.allclose(np.array(sides[0], dtype=float), np.array(sides[1], dtype=float))
