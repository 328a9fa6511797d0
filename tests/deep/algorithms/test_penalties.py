"""Conservative penalties against slow per-member, per-transition, per-agent loops."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from deep.algorithms import networks
from deep.algorithms.learner import action_mask
from deep.algorithms.networks import Critics
from deep.algorithms.penalties import counterfactual_penalty, joint_penalty, policy_samples, uniform_samples

torch.set_num_threads(1)


def setup(seed: int, n_agents: int, members: int = 3, batch: int = 5, samples: int = 4, act: int = 2):
    torch.manual_seed(seed)
    critics = Critics(members, 6, n_agents, act, 8)
    state = torch.randn(batch, 6)
    actions = torch.rand(batch, n_agents, act) * 2 - 1
    sampled = torch.rand(samples, batch, n_agents, act) * 2 - 1
    log_density = torch.randn(samples, batch, n_agents)
    return critics, state, actions, sampled, log_density


def slow_counterfactual(critics, state, actions, sampled, log_density, temperature):
    """sum_i (1/n) E_B[logsumexp_j (Q_e(s, a_i^j, a_-i) - log p_i^j)] - E_B[Q_e(s, a)], member by member."""
    members, (n_samples, batch, n_agents) = critics.n_members, log_density.shape
    out = torch.zeros(members)
    for e in range(members):
        total = 0.0
        for b in range(batch):
            q_data = critics(state[b : b + 1], actions[b : b + 1])[e, 0]
            per_agent = []
            for i in range(n_agents):
                logits = []
                for j in range(n_samples):
                    joint = actions[b].clone()
                    joint[i] = sampled[j, b, i]
                    q = critics(state[b : b + 1], joint[None])[e, 0]
                    logits.append((q - log_density[j, b, i]) / temperature)
                per_agent.append(temperature * torch.logsumexp(torch.stack(logits), dim=0))
            total = total + sum(per_agent) / n_agents - q_data
        out[e] = total / batch
    return out


def slow_joint(critics, state, actions, sampled, log_density, temperature):
    members, (n_samples, batch, _) = critics.n_members, log_density.shape
    out = torch.zeros(members)
    for e in range(members):
        total = 0.0
        for b in range(batch):
            q_data = critics(state[b : b + 1], actions[b : b + 1])[e, 0]
            logits = [
                (critics(state[b : b + 1], sampled[j, b][None])[e, 0] - log_density[j, b].sum()) / temperature
                for j in range(n_samples)
            ]
            total = total + temperature * torch.logsumexp(torch.stack(logits), dim=0) - q_data
        out[e] = total / batch
    return out


@pytest.mark.parametrize("n_agents", [2, 3, 4])
@pytest.mark.parametrize("temperature", [1.0, 0.5])
@pytest.mark.parametrize("seed", [0, 1])
def test_counterfactual_penalty_equals_the_loop(n_agents, temperature, seed):
    critics, state, actions, sampled, log_density = setup(seed, n_agents)
    q_data = critics(state, actions)
    fast = counterfactual_penalty(critics, state, actions, q_data, [(sampled, log_density)], temperature)
    with torch.no_grad():
        slow = slow_counterfactual(critics, state, actions, sampled, log_density, temperature)
    torch.testing.assert_close(fast.detach(), slow, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n_agents", [2, 3])
@pytest.mark.parametrize("seed", [0, 1])
def test_joint_penalty_equals_the_loop(n_agents, seed):
    critics, state, actions, sampled, log_density = setup(seed, n_agents)
    q_data = critics(state, actions)
    fast = joint_penalty(critics, state, q_data, [(sampled, log_density)], 1.0)
    with torch.no_grad():
        slow = slow_joint(critics, state, actions, sampled, log_density, 1.0)
    torch.testing.assert_close(fast.detach(), slow, rtol=1e-5, atol=1e-5)


def test_penalty_gradients_reach_every_member_separately():
    critics, state, actions, sampled, log_density = setup(0, 3)
    penalty = counterfactual_penalty(critics, state, actions, critics(state, actions), [(sampled, log_density)])
    penalty[1].backward()
    grad = critics.net.layers[0].weight.grad
    assert grad[1].abs().sum() > 0 and grad[0].abs().sum() == 0 and grad[2].abs().sum() == 0


def rows_of_one_call(critics, state, joint):
    """``joint [K, B, n, act]`` evaluated by one forward on the K * B rows (one BatchNorm call): ``[E, K, B]``."""
    n_candidates, batch = joint.shape[:2]
    return critics(state.repeat(n_candidates, 1), joint.flatten(0, 1)).view(-1, n_candidates, batch)


def straightforward_counterfactual(critics, state, actions, sources, temperature):
    """Each source's n x S x B candidates written out and evaluated in one forward call of their own."""
    n_agents = actions.shape[1]
    q_data = critics(state, actions)
    logits = []
    for sampled, log_density in sources:
        joint = actions.expand(n_agents, *sampled.shape).clone()  # [n, S, B, n, act]
        for i in range(n_agents):
            joint[i, :, :, i] = sampled[:, :, i]
        q = rows_of_one_call(critics, state, joint.flatten(0, 1)).unflatten(1, (n_agents, sampled.shape[0]))
        logits.append(q - log_density.permute(2, 0, 1))
    lse = temperature * torch.logsumexp(torch.cat(logits, dim=2) / temperature, dim=2)
    return (lse.mean(dim=1) - q_data).mean(dim=-1)


def straightforward_joint(critics, state, actions, sources, temperature):
    q_data = critics(state, actions)
    logits = [rows_of_one_call(critics, state, sampled) - ld.sum(dim=-1) for sampled, ld in sources]
    return (temperature * torch.logsumexp(torch.cat(logits, dim=1) / temperature, dim=1) - q_data).mean(dim=-1)


@pytest.mark.parametrize("penalty", ["counterfactual", "joint"])
@pytest.mark.parametrize("chunked", [False, True])
def test_penalties_with_input_norm_normalize_each_source_in_its_own_call(penalty, chunked, monkeypatch):
    """Against the candidates written out, one forward per source; values, gradients, running statistics."""
    monkeypatch.setattr(networks, "block_rows", lambda members, hidden: 2)  # several blocks, parts of the batch
    torch.manual_seed(0)
    fast = Critics(3, 6, 3, 2, 8, input_norm=True)
    with torch.no_grad():
        fast.norm.weight.uniform_(0.5, 1.5)
        fast.norm.bias.uniform_(-0.5, 0.5)
    slow = copy.deepcopy(fast)
    state, actions = torch.randn(5, 6) * 2, torch.rand(5, 3, 2) * 2 - 1
    sources = [
        (torch.rand(4, 5, 3, 2) * 2 - 1, torch.randn(4, 5, 3)),
        (torch.rand(2, 5, 3, 2) * 0.2, torch.randn(2, 5, 3)),
    ]
    if penalty == "counterfactual":
        value = counterfactual_penalty(fast, state, actions, fast(state, actions), sources, 0.5, chunked)
        expected = straightforward_counterfactual(slow, state, actions, sources, 0.5)
    else:
        value = joint_penalty(fast, state, fast(state, actions), sources, 0.5, chunked)
        expected = straightforward_joint(slow, state, actions, sources, 0.5)
    torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-5)
    value.sum().backward()
    expected.sum().backward()
    for a, b in zip(fast.parameters(), slow.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-5)
    for a, b in zip(fast.buffers(), slow.buffers(), strict=True):
        torch.testing.assert_close(a, b)


def test_uniform_samples_cover_the_true_entries_with_their_density():
    mask = action_mask([3, 1], 3)
    actions, log_density = uniform_samples(torch.rand(1000, 2, 2, 3), mask)
    assert actions.shape == (1000, 2, 2, 3) and log_density.shape == (1000, 2, 2)
    assert (actions[..., 1, 1:] == 0).all() and actions.abs().max() <= 1
    assert actions[..., 0, :].min() < -0.99 and actions[..., 0, :].max() > 0.99
    torch.testing.assert_close(log_density[0, 0], torch.tensor([-3 * math.log(2), -math.log(2)]))


def test_policy_samples_density_is_the_gaussian_noise_density():
    mask = action_mask([2, 1], 2)
    policy = torch.zeros(4, 2, 2)
    normal = torch.randn(3, 4, 2, 2)
    actions, log_density = policy_samples(policy, normal, 0.2, mask)
    expected = torch.distributions.Normal(0.0, 0.2).log_prob(0.2 * normal)
    torch.testing.assert_close(log_density[..., 0], expected[..., 0, :].sum(dim=-1))
    torch.testing.assert_close(log_density[..., 1], expected[..., 1, 0])
    assert (actions[..., 1, 1] == 0).all() and actions.abs().max() <= 1
