"""Shared test settings: one thread, hypothesis profiles, warm numba kernels."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
from hypothesis import HealthCheck, settings

# jitted kernels make the first example slow; deadlines would only measure compilation
settings.register_profile("default", deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", deadline=None, max_examples=1000, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session", autouse=True)
def warm_kernels():
    """Compile (or load from cache) every numba kernel once before the property tests run."""
    import tabular

    mdp = tabular.random_decmdp(2, (2, 2), 0.5, seed=0)
    mu = tabular.random_factorized_policy(mdp, seed=1)
    tabular.all_subset_occupancies(mdp, mu, mu)
    tabular.q_optimal(mdp)
