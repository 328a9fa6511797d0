"""Hypothesis strategies over small Dec-MDPs and behavior/learned policies.

Structure (states, agents, actions, gamma, degeneracy) is drawn by hypothesis so that it shrinks;
array contents come from a drawn seed. Near-degenerate cases are drawn on purpose: deterministic
transitions and policies, absorbing states, Dirichlet concentrations near zero, gamma in {0, 0.99}.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis import target

import tabular

seeds = st.integers(0, 2**32 - 1)
gammas = st.one_of(st.floats(0.0, 0.99), st.sampled_from([0.0, 0.5, 0.9, 0.95, 0.99]))
concentrations = st.sampled_from([0.05, 0.3, 1.0, 5.0])


@st.composite
def decmdps(draw, max_states: int = 6, max_agents: int = 5, max_actions: int = 4, min_agents: int = 1):
    n_states = draw(st.integers(1, max_states))
    n_agents = draw(st.integers(min_agents, max_agents))
    action_sizes = tuple(draw(st.lists(st.integers(1, max_actions), min_size=n_agents, max_size=n_agents)))
    return tabular.random_decmdp(
        n_states,
        action_sizes,
        draw(gammas),
        draw(seeds),
        concentration=draw(concentrations),
        n_absorbing=draw(st.integers(0, n_states)),
        deterministic=draw(st.booleans()),
    )


@st.composite
def factorized_policies(draw, mdp):
    return tabular.random_factorized_policy(
        mdp, draw(seeds), concentration=draw(concentrations), deterministic=draw(st.booleans())
    )


@st.composite
def correlated_policies(draw, mdp):
    return tabular.random_correlated_policy(
        mdp, draw(seeds), correlation=draw(st.floats(0.0, 1.0)), concentration=draw(concentrations)
    )


def behavior_policies(mdp):
    return st.one_of(factorized_policies(mdp), correlated_policies(mdp))


@st.composite
def learned_policies(draw, mdp, mu):
    """Learned per-agent policies: unrelated draws, deterministic ones, or mu's marginals moved by chosen TVs."""
    kind = draw(st.sampled_from(["random", "deterministic", "perturbed"]))
    if kind != "perturbed":
        return tabular.random_factorized_policy(
            mdp, draw(seeds), concentration=draw(concentrations), deterministic=kind == "deterministic"
        )
    reachable = [max(0.0, float((1.0 - m.min(axis=1)).min())) for m in mu.marginals()]
    fractions = draw(st.lists(st.floats(0.0, 1.0), min_size=mdp.n_agents, max_size=mdp.n_agents))
    return tabular.perturbed_policy(mu, np.array(reachable) * np.array(fractions), draw(seeds))


def subsets(n_agents: int):
    return st.sets(st.integers(0, n_agents - 1), max_size=n_agents).map(sorted)


@st.composite
def instances(draw, behavior=behavior_policies, **mdp_kwargs):
    """(mdp, mu, pi): a Dec-MDP, a behavior policy drawn by ``behavior`` and learned policies."""
    mdp = draw(decmdps(**mdp_kwargs))
    mu = draw(behavior(mdp))
    return mdp, mu, draw(learned_policies(mdp, mu))


@st.composite
def instances_with_subset(draw, behavior=behavior_policies, **mdp_kwargs):
    """(mdp, mu, pi, subset) with a subset of deviating agents."""
    mdp, mu, pi = draw(instances(behavior, **mdp_kwargs))
    return mdp, mu, pi, draw(subsets(mdp.n_agents))


def assert_holds_and_seek_tight_cases(check) -> None:
    """Assert ``check.holds`` and steer hypothesis toward instances where ``lhs / rhs`` is largest."""
    if check.rhs > 0:
        target(check.lhs / check.rhs, label="lhs / rhs")
    assert check.holds, (check.lhs, check.rhs)


@st.composite
def q_hats(draw, mdp, pi):
    """Learned Q tables (S, A_1, ..., A_n): uniform on [-1/(1-gamma), 1/(1-gamma)], Q* plus noise, or Q^pi.

    The noise reaches ``1/(1-gamma)`` in sup norm, so some tables break the ``2/(1-gamma)``-Lipschitz
    assumption of Theorems 1-3 on purpose.
    """
    kind = draw(st.sampled_from(["uniform", "noisy optimal", "policy value"]))
    if kind == "policy value":
        return tabular.q_policy(mdp, pi)
    rng = np.random.default_rng(draw(seeds))
    bound = 1.0 / (1.0 - mdp.gamma)
    if kind == "uniform":
        return rng.uniform(-bound, bound, size=mdp.R.shape)
    noise = draw(st.sampled_from([0.0, 1e-6, 1e-2, 1.0])) * bound
    return tabular.q_optimal(mdp).q + rng.uniform(-noise, noise, size=mdp.R.shape)


@st.composite
def soft_partial_weights(draw, n_states: int, n_agents: int):
    """SPaCQL weights (S, n), ``weights[s, k-1] = w_k(s)``: Dirichlet rows, none, some or all of them one-hot."""
    rng = np.random.default_rng(draw(seeds))
    weights = rng.dirichlet(np.full(n_agents, draw(concentrations)), size=n_states)
    one_hot = rng.random(n_states) < draw(st.sampled_from([0.0, 0.5, 1.0]))
    weights[one_hot] = np.eye(n_agents)[rng.integers(n_agents, size=int(one_hot.sum()))]
    return weights


@st.composite
def audit_instances(draw, max_states: int = 4, max_agents: int = 3, max_actions: int = 3):
    """Complete audit instances (bounds.instances.Instance): every claim can read what it needs."""
    from bounds.instances import Instance

    mdp, mu, pi, subset = draw(
        instances_with_subset(max_states=max_states, max_agents=max_agents, max_actions=max_actions)
    )
    return Instance(
        mdp, mu, pi, tuple(subset), draw(q_hats(mdp, pi)), draw(soft_partial_weights(mdp.n_states, mdp.n_agents))
    )
