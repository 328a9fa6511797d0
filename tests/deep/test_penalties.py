"""Conservative penalties against slow per-member, per-transition, per-agent loops."""

from __future__ import annotations

import math

import pytest
import torch

from deep.networks import Critics
from deep.offline import action_mask
from deep.penalties import counterfactual_penalty, joint_penalty, policy_samples, uniform_samples

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
    fast = counterfactual_penalty(critics, state, actions, q_data, sampled, log_density, temperature)
    with torch.no_grad():
        slow = slow_counterfactual(critics, state, actions, sampled, log_density, temperature)
    torch.testing.assert_close(fast.detach(), slow, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n_agents", [2, 3])
@pytest.mark.parametrize("seed", [0, 1])
def test_joint_penalty_equals_the_loop(n_agents, seed):
    critics, state, actions, sampled, log_density = setup(seed, n_agents)
    q_data = critics(state, actions)
    fast = joint_penalty(critics, state, q_data, sampled, log_density, 1.0)
    with torch.no_grad():
        slow = slow_joint(critics, state, actions, sampled, log_density, 1.0)
    torch.testing.assert_close(fast.detach(), slow, rtol=1e-5, atol=1e-5)


def test_penalty_gradients_reach_every_member_separately():
    critics, state, actions, sampled, log_density = setup(0, 3)
    penalty = counterfactual_penalty(critics, state, actions, critics(state, actions), sampled, log_density)
    penalty[1].backward()
    grad = critics.net.layers[0].weight.grad
    assert grad[1].abs().sum() > 0 and grad[0].abs().sum() == 0 and grad[2].abs().sum() == 0


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
