"""The vertex enumeration: batched claims against single instances, the reductions against brute force,
the exact gamma refinement against a fine grid, and the false statement it finds unaided."""

import itertools
import json
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bounds import audit, search, vertices
from bounds.claims import BY_NAME, CLAIMS, PARTS, Claim, ProofError, check_proofs
from bounds.instances import random_instance
from bounds.quantities import Problem, Quantities


def _stack(problems: list[Problem]) -> Problem:
    """The problems as one batch (they share a size, a behavior kind and a subset)."""
    first = problems[0]

    def stacked(get):
        return np.stack([get(p) for p in problems])

    n = len(first.action_sizes)
    return Problem(
        P=stacked(lambda p: p.P),
        R=stacked(lambda p: p.R),
        d0=stacked(lambda p: p.d0),
        gamma=np.array([p.gamma for p in problems]),
        action_sizes=first.action_sizes,
        pi=tuple(stacked(lambda p, i=i: p.pi[i]) for i in range(n)),
        mu_factors=None
        if first.mu_factors is None
        else tuple(stacked(lambda p, i=i: p.mu_factors[i]) for i in range(n)),
        mu_joint=None if first.mu_joint is None else stacked(lambda p: p.mu_joint),
        subset=first.subset,
        q_hat=stacked(lambda p: p.q_hat),
        weights=stacked(lambda p: p.weights),
    )


def _rows(rng, shape, concentration):
    """Random distributions over the last axis (near point masses for a small concentration)."""
    out = rng.dirichlet(np.full(shape[-1], concentration), size=int(np.prod(shape[:-1])))
    return out.reshape(shape)


def _same_size(rng, count: int) -> list[Problem]:
    """A random instance and ``count - 1`` others of its size, behavior kind and subset."""
    first = Problem.from_instance(random_instance(rng))
    out = [first]
    for _ in range(count - 1):
        c = float(rng.choice([0.05, 1.0]))
        out.append(
            Problem(
                P=_rows(rng, first.P.shape, c),
                R=rng.uniform(-1, 1, size=first.R.shape),
                d0=_rows(rng, first.d0.shape, c),
                gamma=float(rng.choice([0.0, rng.uniform(0, 0.99), 0.99])),
                action_sizes=first.action_sizes,
                pi=tuple(_rows(rng, f.shape, c) for f in first.pi),
                mu_factors=None
                if first.mu_factors is None
                else tuple(_rows(rng, f.shape, c) for f in first.mu_factors),
                mu_joint=None if first.mu_joint is None else _rows(rng, first.mu_joint.shape, c),
                subset=first.subset,
                q_hat=rng.uniform(-5, 5, size=first.q_hat.shape),
                weights=_rows(rng, first.weights.shape, c),
            )
        )
    return out


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), count=st.integers(2, 4))
def test_a_batch_of_instances_evaluates_as_each_alone(seed, count):
    """Every claim on a batch [B] equals the claim on each instance alone (the batched fast path)."""
    problems = _same_size(np.random.default_rng(seed), count)
    batch = Quantities(_stack(problems))
    for claim in CLAIMS:
        lhs, rhs = (np.broadcast_to(side, (count,)) for side in claim.evaluate(batch))
        for k, problem in enumerate(problems):
            alone = claim.evaluate(Quantities(problem))
            assert np.allclose([lhs[k], rhs[k]], [float(x) for x in alone], rtol=1e-9, atol=1e-12), claim.name


def _perturbed(problem: Problem, part: str, rng) -> Problem:
    fields = dict(problem.__dict__)
    S, J = problem.R.shape
    n = len(problem.action_sizes)
    if part == "subset":
        fields["subset"] = tuple(i for i in range(n) if i not in problem.subset)
    elif part == "weights":
        fields["weights"] = rng.dirichlet(np.ones(n), size=S)
    elif part == "rewards":
        fields["R"] = rng.uniform(-1, 1, size=(S, J))
    elif part == "q_hat":
        fields["q_hat"] = rng.uniform(-1, 1, size=(S, J))
    return Problem(**fields)


@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: c.name)
def test_a_claim_reads_no_part_beyond_its_reads(claim):
    """Changing a part a claim does not declare in ``reads`` leaves both sides unchanged (the enumeration
    fixes those parts, so an undeclared dependency would hide vertices); a claim on pi^(S) ignores the
    policies of the agents outside S."""
    rng = np.random.default_rng(7)
    for _ in range(12):
        problem = Problem.from_instance(random_instance(rng))
        base = [float(x) for x in claim.evaluate(Quantities(problem))]
        for part in PARTS:
            if part in claim.reads:
                continue
            moved = [float(x) for x in claim.evaluate(Quantities(_perturbed(problem, part, rng)))]
            assert np.allclose(moved, base, rtol=1e-9, atol=1e-12), (claim.name, part)
        if "subset" in claim.reads:
            pi = list(problem.pi)
            for i in range(len(pi)):
                if i not in problem.subset:
                    pi[i] = rng.dirichlet(np.ones(pi[i].shape[1]), size=pi[i].shape[0])
            moved = [float(x) for x in claim.evaluate(Quantities(Problem(**{**problem.__dict__, "pi": tuple(pi)})))]
            assert np.allclose(moved, base, rtol=1e-9, atol=1e-12), (claim.name, "pi outside S")


def _brute_force_best(group: list[Claim], n_states: int, n_agents: int, n_actions: int) -> dict[str, float]:
    """Per claim of ``group``, the worst score over *every* deterministic-behavior vertex, no reduction at all:
    every next state of every row, every d0, every action of every pi_i and mu_i in every state, every subset,
    weight and sign."""
    claim = group[0]
    S, n, A = n_states, n_agents, n_actions
    J = A**n
    sizes = (A,) * n
    P_rows = list(itertools.product(range(S), repeat=S * J))
    point = np.eye(max(S, A, n))
    signs = list(itertools.product((-1.0, 1.0), repeat=S * J))
    choices = [
        P_rows,
        range(S),
        list(itertools.product(range(A), repeat=n * S)),
        list(itertools.product(range(A), repeat=n * S)),
        [c for k in range(n + 1) for c in itertools.combinations(range(n), k)] if "subset" in claim.reads else [()],
        list(itertools.product(range(n), repeat=S)) if "weights" in claim.reads else [(n - 1,) * S],
        signs if "rewards" in claim.reads else [None],
        signs if "q_hat" in claim.reads else [None],
    ]
    problems = []
    for next_states, start, pi_actions, mu_actions, subset, weights, rewards, q_signs in itertools.product(*choices):
        P = point[np.array(next_states)][:, :S].reshape(S, J, S)
        pi = tuple(point[np.array(pi_actions[i * S : (i + 1) * S])][:, :A] for i in range(n))
        mu = tuple(point[np.array(mu_actions[i * S : (i + 1) * S])][:, :A] for i in range(n))
        joint = mu[0]
        for factor in mu[1:]:
            joint = (joint[:, :, None] * factor[:, None, :]).reshape(S, -1)
        problems.append(
            dict(
                P=P,
                R=np.zeros((S, J)) if rewards is None else np.array(rewards).reshape(S, J),
                d0=point[start][:S],
                pi=pi,
                mu=mu,
                mu_joint=joint,
                subset=subset,
                weights=point[np.array(weights)][:, :n],
                q_signs=np.zeros((S, J)) if q_signs is None else np.array(q_signs).reshape(S, J),
            )
        )
    best = {member.name: -np.inf for member in group}
    by_subset: dict[tuple, list] = {}
    for p in problems:
        by_subset.setdefault(p["subset"], []).append(p)
    for subset, members in by_subset.items():
        for gamma in vertices.GAMMAS:
            v_max = 1.0 / (1.0 - gamma)
            batch = Problem(
                P=np.stack([p["P"] for p in members]),
                R=np.stack([p["R"] for p in members]),
                d0=np.stack([p["d0"] for p in members]),
                gamma=np.full(len(members), gamma),
                action_sizes=sizes,
                pi=tuple(np.stack([p["pi"][i] for p in members]) for i in range(n)),
                mu_factors=None if claim.behavior == "correlated" else tuple(
                    np.stack([p["mu"][i] for p in members]) for i in range(n)
                ),
                mu_joint=np.stack([p["mu_joint"] for p in members]) if claim.behavior == "correlated" else None,
                subset=subset,
                q_hat=np.stack([p["q_signs"] * v_max for p in members]),
                weights=np.stack([p["weights"] for p in members]),
            )
            quantities = Quantities(batch)
            for member in group:
                with np.errstate(all="ignore"):
                    lhs, rhs = member.evaluate(quantities)
                score = search.scores(lhs, rhs, member.equality)
                worst = float(np.max(np.where(np.isfinite(score), score, -np.inf)))
                best[member.name] = max(best[member.name], worst)
    return best


@pytest.mark.parametrize("group", vertices.groups(CLAIMS), ids=lambda group: group[0].name)
def test_the_reduced_enumeration_reaches_the_brute_force_worst(group):
    """For every claim: per-state action relabeling, d0 on state 0, agent and state permutations and the
    played rows lose nothing; the reduced deterministic-behavior enumeration reaches the worst score of
    every vertex (the claims of a group share their enumeration)."""
    sizes = [(1, 2, 2), (2, 1, 2)]
    if "q_hat" in group[0].reads:
        sizes = [(1, 1, 2), (1, 2, 2)]  # two states would be 2^4 next states x 2^4 x 2^4 signs per policy
    for size in sizes:
        space = vertices.Space(group[0], *size, "deterministic")
        best, _, _, exhaustive = vertices.evaluate_space(space, np.random.default_rng(0), claims=group)
        assert exhaustive
        brute = _brute_force_best(group, *size)
        for claim in group:
            assert best[claim.name][0].score == pytest.approx(brute[claim.name], rel=1e-12, abs=1e-12), (
                claim.name,
                size,
            )


@pytest.mark.parametrize("claim", [BY_NAME[name] for name in ("lemma1", "theorem3-sketch-dmu", "eq50", "lemma2")])
def test_the_symmetry_reduction_keeps_the_worst_ratio(claim):
    """Canonical skeletons only (agent and state permutations) against every skeleton: same worst score."""
    for mu_kind, size in itertools.product(vertices.MU_KINDS[claim.behavior], [(2, 2, 2), (3, 1, 2)]):
        space = vertices.Space(claim, *size, mu_kind)
        reduced, n_reduced, _, _ = vertices.evaluate_space(space, np.random.default_rng(0))
        full, n_full, _, _ = vertices.evaluate_space(space, np.random.default_rng(0), reduce=False)
        # states 1 and 2 permute with 3 states, the agents with 2 (not for the ordered eq. 50); a mixing agent 0
        # has a single skeleton per state already
        symmetric = (size[0] == 3 or len(space.permutable_agents()) > 1) and mu_kind != "one-agent-mixing"
        assert n_reduced < n_full if symmetric else n_reduced == n_full
        assert reduced[claim.name][0].score == pytest.approx(full[claim.name][0].score, rel=1e-12)


def test_the_exact_gamma_refinement_reaches_a_fine_grid():
    """The refined worst gamma of a vertex is at least the best of 2000 gammas, and its sides are exact."""
    claim = BY_NAME["lemma1"]
    space = vertices.Space(claim, 2, 2, 2, "deterministic")
    best, _, _, _ = vertices.evaluate_space(space, np.random.default_rng(0))
    for found in best[claim.name][:3]:
        value, gamma, lhs, rhs = vertices.refine_gamma(space, found)
        assert isinstance(lhs, Fraction) and isinstance(rhs, Fraction) and 0 <= gamma <= Fraction(99, 100)
        grid = np.linspace(0.0, search.GAMMA_MAX, 2000)
        with np.errstate(all="ignore"):
            sides = claim.evaluate(Quantities(space.problems(found.skeleton, np.array([found.index]), grid)))
        assert value >= float(np.max(search.scores(*sides, claim.equality))) - 1e-9
        assert value == pytest.approx(float(lhs / rhs) if rhs else 0.0, rel=1e-15)


def test_the_enumeration_finds_the_false_sketch_unaided(monkeypatch):
    """Theorem 3's sketch as stated (E_{d^pi}[k_eff] TVbar) holds on every vertex with 2 agents, and the
    plain enumeration of every deterministic vertex with 2 states, 3 agents and 2 actions breaks it (at the
    grid's gamma 0.1 alone, to stay fast); the refined vertex violates it exactly."""
    monkeypatch.setattr(vertices, "GAMMAS", (0.1,))
    claim = BY_NAME["theorem3-sketch"]
    two_agents = vertices.Space(claim, 2, 2, 2, "deterministic")
    best, _, _, _ = vertices.evaluate_space(two_agents, np.random.default_rng(0))
    assert best[claim.name][0].score <= 1.0
    space = vertices.Space(claim, 2, 3, 2, "deterministic")
    best, evaluated, reduced, exhaustive = vertices.evaluate_space(space, np.random.default_rng(0))
    assert exhaustive and evaluated == reduced
    found = best[claim.name][0]
    assert found.score > 1.0
    value, gamma, lhs, rhs = vertices.refine_gamma(space, found)
    assert lhs > rhs and value > 1.01
    data = space.exact_json(found.skeleton, found.index, gamma)
    assert search.satisfies_assumptions(claim, data)
    exact = Quantities(Problem.from_json(json.loads(json.dumps(data)), exact=True))
    assert claim.evaluate(exact) == (lhs, rhs)


def test_the_record_holds_the_vertex_enumeration_of_every_claim():
    """The committed record covers every claim at the default sizes, exhaustively where it says so, and a
    violation it records is a stored, exactly verified counterexample of a failing claim."""
    record = search.load_record()["vertices"]
    failing = audit.failing_claims()
    for claim in CLAIMS:
        entries = record[claim.name]
        assert {vertices.size_name(size) for size in vertices.default_sizes(claim)} <= set(entries), claim.name
        for size, entry in entries.items():
            assert entry["evaluated"] == entry["reduced"] or not entry["exhaustive"], (claim.name, size)
            if entry["violated"]:
                assert claim.name in failing, (claim.name, size)
    assert record["theorem3-sketch"]["2x3x2"]["violated"]
    assert record["theorem3-sketch"]["2x3x2"]["counterexample"] == "bounds/counterexamples/theorem3-sketch.json"


def test_stratified_shares_take_small_skeletons_whole():
    assert vertices.stratified_shares([3, 10, 1000, 5000], 100) == [3, 10, 43, 43]
    assert vertices.stratified_shares([3, 10], 100) == [3, 10]


def test_a_proof_that_uses_an_unproved_claim_is_an_error():
    proved = Claim("a", "a", "a", BY_NAME["eq9"].evaluate, proof="by b", uses=("b",))
    unproved = Claim("b", "b", "b", BY_NAME["eq9"].evaluate)
    with pytest.raises(ProofError, match="the proof of a uses b, which is not proved"):
        check_proofs([proved, unproved])
    with pytest.raises(ProofError, match="names c, which is not a claim"):
        check_proofs([Claim("a", "a", "a", BY_NAME["eq9"].evaluate, proof="by c", uses=("c",))])
    circular = [
        Claim("a", "a", "a", BY_NAME["eq9"].evaluate, proof="by b", uses=("b",)),
        Claim("b", "b", "b", BY_NAME["eq9"].evaluate, proof="by a", uses=("a",)),
    ]
    with pytest.raises(ProofError, match="circular"):
        check_proofs(circular)
    with pytest.raises(ProofError, match="uses b, which fails"):
        check_proofs([proved, Claim("b", "b", "b", BY_NAME["eq9"].evaluate, proof="wrong")], failing={"b"})


def test_every_proof_of_the_project_uses_proved_claims_only():
    proved = check_proofs(CLAIMS, audit.failing_claims())
    assert proved["lemma1"] and proved["eq51"] and proved["theorem3-sketch-dpiw"]
    assert not proved["lemma2-conditional"] and not proved["theorem3-sketch"]


def test_cli_vertices_writes_its_record(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(search, "RECORD_PATH", tmp_path / "record.json")
    monkeypatch.setattr(search, "COUNTEREXAMPLE_DIR", tmp_path / "counterexamples")
    monkeypatch.setattr("bounds.instances.COUNTEREXAMPLE_DIR", tmp_path / "counterexamples")
    argv = ["--vertices", "--sizes", "1x2x2", "--claims", "lemma1", "eq44", "--examples", "2"]
    assert audit.main(argv) == 0
    record = json.loads((tmp_path / "record.json").read_text())["vertices"]
    assert record["lemma1"]["1x2x2"]["exhaustive"] and not record["lemma1"]["1x2x2"]["violated"]
    assert record["eq44"]["1x2x2"]["violated"] and (tmp_path / "counterexamples" / "eq44.json").is_file()
    assert "vertices 1x2x2 lemma1" in capsys.readouterr().out


@pytest.mark.parametrize("sizes", [["2x3"], ["0x2x2"], ["2x2x1"], ["axbxc"]])
def test_cli_refuses_a_bad_size(sizes, capsys):
    with pytest.raises(SystemExit) as stop:
        audit.main(["--vertices", "--sizes", *sizes])
    assert stop.value.code == 2 and "--sizes:" in capsys.readouterr().err


def _one_deviator_family(n: int, gamma: Fraction) -> dict:
    """The shape of the vertex that breaks Theorem 3's sketch, for n agents: two states, mu plays 0, the last
    agent deviates in both states, w puts k = 1 at the start s0 and k = n at s1; mu's joint action moves s0 to
    s1 and keeps s1, the last agent's deviation alone keeps s0 and moves s1 back to s0."""
    sizes = (2,) * n
    P = np.empty((2, *sizes), dtype=object)
    for state in range(2):
        for joint in itertools.product((0, 1), repeat=n):
            deviation = joint == (0,) * (n - 1) + (1,)
            P[(state, *joint)] = ["1", "0"] if deviation else ["0", "1"]
    point = [["1", "0"], ["1", "0"]]
    return {
        "P": P.tolist(),
        "R": np.full((2, *sizes), "0", dtype=object).tolist(),
        "d0": ["1", "0"],
        "gamma": str(gamma),
        "mu": {"factors": [point] * n},
        "pi": [point] * (n - 1) + [[["0", "1"], ["0", "1"]]],
        "subset": list(range(n)),
        "q_hat": np.full((2, *sizes), "0", dtype=object).tolist(),
        "weights": [["1"] + ["0"] * (n - 1), ["0"] * (n - 1) + ["1"]],
    }


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_the_sketch_fails_more_as_agents_are_added_in_closed_form(n):
    """On the family above d^pi stays at s0 (k_eff = 1) and TVbar = 1/n, so the sketch's right side is
    gamma/((1-gamma) n); pi_w leaves s0 w.p. (n-1)/n and returns from s1 at once, so
    d^{pi_w}(s0) = 1 / (1 + gamma (n-1)/n) and W1(d^{pi_w}, d^mu) = d^{pi_w}(s0) - (1 - gamma). To first order in
    gamma the ratio is 1 + gamma ((n-1)^2/n - 1): at small gamma the sketch holds for 2 agents and fails from 3
    on, more with every agent (the vertex enumeration's worst: 1.013 with 3 agents, 1.25 with 5, this family)."""
    gamma = Fraction(1, 12)
    exact = Quantities(Problem.from_json(_one_deviator_family(n, gamma), exact=True))
    lhs, rhs = BY_NAME["theorem3-sketch"].evaluate(exact)
    assert lhs == 1 / (1 + gamma * Fraction(n - 1, n)) - (1 - gamma)
    assert rhs == gamma / ((1 - gamma) * n)
    assert (lhs > rhs) == (n >= 3)
    smaller = Quantities(Problem.from_json(_one_deviator_family(n - 1, gamma), exact=True)) if n > 2 else None
    if smaller is not None:
        smaller_lhs, smaller_rhs = BY_NAME["theorem3-sketch"].evaluate(smaller)
        assert lhs / rhs > smaller_lhs / smaller_rhs  # the violation grows with the number of agents
