"""Bellman targets against a slow per-transition loop (joint, individual, soft-partial, fixed-k, uniform weights)."""

from __future__ import annotations

import itertools

import pytest
import torch

from deep.algorithms import networks
from deep.algorithms.networks import Critics
from deep.algorithms.targets import (
    STD_FLOOR,
    inverse_std_weights,
    n_candidates,
    partial_target,
    random_subsets,
    replacement_masks,
)

torch.set_num_threads(1)


def setup(seed: int, n_agents: int, members: int = 4, batch: int = 6, act: int = 2, state_dim: int = 5):
    torch.manual_seed(seed)
    critics = Critics(members, state_dim, n_agents, act, 8)
    target_critics = Critics(members, state_dim, n_agents, act, 8)
    inputs = dict(
        rewards=torch.randn(batch),
        terminals=(torch.rand(batch) < 0.3).float(),
        next_state=torch.randn(batch, state_dim),
        next_actions=torch.rand(batch, n_agents, act) * 2 - 1,
        policy_next_actions=torch.rand(batch, n_agents, act) * 2 - 1,
    )
    return critics, target_critics, inputs


def slow_target(inputs, masks, target_critics, critics, gamma, weighting):
    """Algorithm 1, lines 5-13, one transition and one candidate at a time."""
    ys = []
    for b in range(inputs["rewards"].shape[0]):
        values, inverse_stds = [], []
        for k in range(masks.shape[0]):
            action = inputs["next_actions"][b].clone()
            for i in range(action.shape[0]):
                if masks[k, b, i]:
                    action[i] = inputs["policy_next_actions"][b, i]
            state = inputs["next_state"][b : b + 1]
            values.append(target_critics(state, action[None])[:, 0].min())
            if weighting == "inverse-std":
                current = critics(state, action[None])[:, 0]
                inverse_stds.append(1.0 / (current.std(correction=0) + STD_FLOOR))
        if weighting == "inverse-std":
            mixed = sum(v * u for v, u in zip(values, inverse_stds, strict=True)) / sum(inverse_stds)
        else:
            mixed = sum(values) / len(values)
        ys.append(inputs["rewards"][b] + gamma * (1 - inputs["terminals"][b]) * mixed)
    return torch.stack(ys)


@pytest.mark.parametrize(
    ("scheme", "weighting", "n_agents"),
    [
        ("joint", "uniform", 3),
        ("individual", "uniform", 3),
        ("individual", "uniform", 4),
        ("soft-partial", "inverse-std", 2),
        ("soft-partial", "inverse-std", 3),
        ("soft-partial", "inverse-std", 4),
        ("soft-partial", "uniform", 3),
        ("fixed-k", "uniform", 3),
    ],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_target_equals_the_per_transition_loop(scheme, weighting, n_agents, seed):
    critics, target_critics, inputs = setup(seed, n_agents)
    scores = torch.rand(n_candidates(scheme, n_agents), inputs["rewards"].shape[0], n_agents)
    masks = replacement_masks(scheme, scores, k=2)
    fast = partial_target(
        **inputs, masks=masks, target_critics=target_critics, gamma=0.9, weighting=weighting, critics=critics
    )
    slow = slow_target(inputs, masks, target_critics, critics, 0.9, weighting)
    torch.testing.assert_close(fast.y, slow, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast.weights.sum(dim=0), torch.ones(inputs["rewards"].shape[0]))
    assert not fast.y.requires_grad and not fast.weights.requires_grad


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize(("scheme", "weighting"), [("joint", "uniform"), ("soft-partial", "inverse-std")])
def test_target_with_input_norm_normalizes_over_all_candidates_in_one_call(scheme, weighting, chunked, monkeypatch):
    """CFCQL's critics normalize with the batch statistics of the call: here the K x B candidate rows."""
    monkeypatch.setattr(networks, "block_rows", lambda members, hidden: 4)
    torch.manual_seed(0)
    n_agents, batch = 3, 6
    critics, target_critics = (Critics(4, 5, n_agents, 2, 8, input_norm=True) for _ in range(2))
    _, _, inputs = setup(0, n_agents)
    inputs["next_state"] = inputs["next_state"] * 3 + 2
    masks = replacement_masks(scheme, torch.rand(n_candidates(scheme, n_agents), batch, n_agents))
    fast = partial_target(
        **inputs,
        masks=masks,
        target_critics=target_critics,
        gamma=0.9,
        weighting=weighting,
        critics=critics,
        chunked=chunked,
    )
    candidates = torch.where(masks.unsqueeze(-1), inputs["policy_next_actions"], inputs["next_actions"])
    n_masks = masks.shape[0]

    def one_call(model):  # [E, K, B]
        rows = model(inputs["next_state"].repeat(n_masks, 1), candidates.flatten(0, 1))
        return rows.view(-1, n_masks, batch)

    q = one_call(target_critics)
    weights = torch.full((n_masks, batch), 1.0 / n_masks)
    if weighting == "inverse-std":
        weights = inverse_std_weights(one_call(critics).std(dim=0, correction=0))
    expected = inputs["rewards"] + 0.9 * (1 - inputs["terminals"]) * (weights * q.min(dim=0).values).sum(dim=0)
    torch.testing.assert_close(fast.y, expected, rtol=1e-5, atol=1e-5)


def test_joint_replaces_every_agent_and_individual_exactly_one():
    scores = torch.rand(1, 5, 3)
    assert replacement_masks("joint", scores).all()
    individual = replacement_masks("individual", torch.rand(3, 5, 3))
    assert torch.equal(individual[:, 0], torch.eye(3, dtype=torch.bool))
    assert individual.shape == (3, 5, 3)


def test_joint_target_is_the_td3_target_with_the_ensemble_minimum():
    _critics, target_critics, inputs = setup(0, 3)
    masks = replacement_masks("joint", torch.rand(1, 6, 3))
    y = partial_target(**inputs, masks=masks, target_critics=target_critics, gamma=0.95).y
    q = target_critics(inputs["next_state"], inputs["policy_next_actions"]).min(dim=0).values
    torch.testing.assert_close(y, inputs["rewards"] + 0.95 * (1 - inputs["terminals"]) * q)


def test_random_subsets_have_the_given_sizes_and_are_uniform():
    torch.manual_seed(0)
    n, draws = 4, 24_000
    masks = random_subsets(torch.arange(1, n + 1), torch.rand(n, draws, n))
    assert torch.equal(masks.sum(dim=-1), torch.arange(1, n + 1).view(-1, 1).expand(n, draws))
    for k in range(1, n):
        subsets = list(itertools.combinations(range(n), k))
        counts = torch.stack([masks[k - 1][:, list(s)].all(dim=-1) for s in subsets]).sum(dim=1).float()
        expected = draws / len(subsets)
        assert (counts - expected).abs().max() < 5 * expected**0.5, (k, counts)


def test_inverse_std_weights_favor_the_candidate_the_ensemble_agrees_on():
    """Eq. 7: w_k proportional to 1/u_k; equal stds give equal weights."""
    weights = inverse_std_weights(torch.tensor([[1.0, 2.0], [3.0, 2.0]]))
    torch.testing.assert_close(weights, torch.tensor([[0.75, 0.5], [0.25, 0.5]]), rtol=1e-5, atol=1e-5)
    assert torch.isfinite(inverse_std_weights(torch.zeros(3, 1))).all()


def test_truncations_bootstrap_and_terminals_do_not():
    _critics, target_critics, inputs = setup(3, 3)
    inputs["terminals"] = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    masks = replacement_masks("individual", torch.rand(3, 6, 3))
    y = partial_target(**inputs, masks=masks, target_critics=target_critics, gamma=0.9).y
    assert y[0] == inputs["rewards"][0] and (y[1:] != inputs["rewards"][1:]).all()


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="scheme"):
        n_candidates("half", 3)
    with pytest.raises(ValueError, match="k: "):
        replacement_masks("fixed-k", torch.rand(1, 2, 3), k=4)
    with pytest.raises(ValueError, match="scores"):
        replacement_masks("soft-partial", torch.rand(1, 2, 3))
    _critics, target_critics, inputs = setup(0, 2)
    with pytest.raises(ValueError, match="critics"):
        partial_target(
            **inputs,
            masks=torch.ones(1, 6, 2, dtype=torch.bool),
            target_critics=target_critics,
            gamma=0.9,
            weighting="inverse-std",
        )
