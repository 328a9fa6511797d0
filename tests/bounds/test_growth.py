"""The growth curve against per-subset computations."""

from math import comb

import numpy as np
from hypothesis import given

import bounds
import tabular
from tests.strategies import instances


@given(instances(max_agents=4))
def test_growth_curve_matches_lemma2_subset_by_subset(instance):
    """Every subset's shift and bound equal Lemma 2's sides, grouped correctly by k = |S|."""
    mdp, mu, pi = instance
    curve = bounds.growth_curve(mdp, pi, mu)
    n = mdp.n_agents
    assert list(curve.n_subsets) == [comb(n, k) for k in range(n + 1)]
    by_k = {k: [] for k in range(n + 1)}
    for mask in range(2**n):
        subset = [i for i in range(n) if mask >> i & 1]
        check = bounds.lemma2(mdp, pi, mu, subset)
        assert abs(curve.shifts[mask] - check.lhs) <= 1e-10
        assert np.isclose(curve.subset_bounds[mask], check.rhs, rtol=1e-12, atol=1e-15)
        by_k[len(subset)].append((check.lhs, check.rhs))
    for k, pairs in by_k.items():
        lhs, rhs = np.array(pairs).T
        assert abs(curve.shift_mean[k] - lhs.mean()) <= 1e-10
        assert abs(curve.shift_max[k] - lhs.max()) <= 1e-10
        assert abs(curve.shift_min[k] - lhs.min()) <= 1e-10
        assert np.isclose(curve.bound_mean[k], rhs.mean(), rtol=1e-12, atol=1e-15)
        assert np.isclose(curve.bound_max[k], rhs.max(), rtol=1e-12, atol=1e-15)
    d_pi, d_mu = tabular.state_occupancy(mdp, pi), tabular.state_occupancy(mdp, mu)
    assert abs(curve.joint_shift - tabular.w1(d_pi, d_mu)) <= 1e-10
    assert np.isclose(curve.all_agents_bound, curve.bound_max[n], rtol=1e-12, atol=1e-15)


@given(instances(max_agents=4))
def test_joint_shift_obeys_the_joint_tv_bound(instance):
    """W1(d^pi, d^mu) <= gamma / (1 - gamma) * TV(pi, mu) with the TV of the joint policies (the usual bound)."""
    mdp, mu, pi = instance
    curve = bounds.growth_curve(mdp, pi, mu)
    assert curve.joint_shift <= curve.joint_tv_bound + bounds.ROUNDOFF


def test_plot_is_written(tmp_path):
    mdp = tabular.random_decmdp(4, (2, 2, 2), 0.9, seed=0)
    mu = tabular.random_factorized_policy(mdp, seed=1)
    curve = bounds.growth_curve(mdp, tabular.perturbed_policy(mu, 0.1, seed=2), mu)
    path = tmp_path / "growth.png"
    bounds.plot_growth_curve(curve, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["growth.png"]


def test_plot_has_default_permissions_and_leaves_no_temporary_file(tmp_path):
    import os
    import stat

    mdp = tabular.random_decmdp(3, (2, 2), 0.5, seed=0)
    mu = tabular.random_factorized_policy(mdp, seed=1)
    path = tmp_path / "curve.png"
    bounds.plot_growth_curve(bounds.growth_curve(mdp, mu, mu), path)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curve.png"]


def test_plot_leaves_the_matplotlib_backend_alone(tmp_path):
    import matplotlib

    before = matplotlib.get_backend()
    mdp = tabular.random_decmdp(3, (2, 2), 0.5, seed=0)
    mu = tabular.random_factorized_policy(mdp, seed=1)
    figure = bounds.plot_growth_curve(bounds.growth_curve(mdp, mu, mu))
    assert matplotlib.get_backend() == before
    assert len(figure.axes) == 2 and figure.axes[0].get_xlabel().startswith("number of deviating agents")


def test_growth_curve_refuses_24_agents_with_the_figure_before_allocating():
    """2^24 subsets need about 10 GiB (the subset table alone is 2^24 x 24 integers): refused before allocating."""
    import tracemalloc

    import pytest

    n_states, n_agents = 2, 24
    shape = (n_states,) + (1,) * n_agents  # one action each: tiny arrays, 2^24 subsets
    mdp = tabular.DecMDP(np.full((*shape, n_states), 0.5), np.zeros(shape), np.full(n_states, 0.5), 0.9)
    mu = tabular.FactorizedPolicy([np.ones((n_states, 1))] * n_agents)
    tracemalloc.start()
    try:
        with pytest.raises(
            ValueError,
            match=r"^pi: 24 agents give 2\^24 subsets: needs about 10\.1 GiB \(subset table and per-subset results: "
            r"2\^24 x 473 bytes = 7\.39 GiB; .*\), more than the 4 GiB limit",
        ):
            bounds.growth_curve(mdp, mu, mu)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20, f"allocated {peak} bytes before refusing"
