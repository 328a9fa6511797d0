"""Batched networks against a per-member loop of plain linear layers."""

import torch
from hypothesis import given
from hypothesis import strategies as st

from deep.networks import Actors, BatchedMLP, Critics, soft_update

torch.set_num_threads(1)


def loop_reference(mlp: BatchedMLP, x: torch.Tensor) -> torch.Tensor:
    """Member m: relu(x W1 + b1) -> relu(. W2 + b2) -> . W3 + b3, one member at a time."""
    outputs = []
    for m in range(x.shape[0]):
        h = x[m]
        for index, layer in enumerate(mlp.layers):
            h = h @ layer.weight[m] + layer.bias[m, 0]
            if index < len(mlp.layers) - 1:
                h = torch.relu(h)
        outputs.append(h)
    return torch.stack(outputs)


@given(st.integers(1, 5), st.integers(1, 7), st.integers(1, 9), st.integers(1, 4), st.integers(0, 2**31 - 1))
def test_batched_mlp_equals_a_loop_over_members(members, batch, in_features, out_features, seed):
    torch.manual_seed(seed)
    mlp = BatchedMLP(members, in_features, 8, out_features)
    x = torch.randn(members, batch, in_features)
    torch.testing.assert_close(mlp(x), loop_reference(mlp, x), rtol=1e-5, atol=1e-6)


def test_initialization_follows_the_fan_in():
    torch.manual_seed(0)
    layer = BatchedMLP(3, 100, 64, 2).layers[0]
    assert layer.weight.abs().max() <= 1.0 / 100**0.5
    assert layer.weight.std() > 0.5 / 100**0.5 / 3**0.5  # uniform on [-b, b] has std b / sqrt(3)
    actor_head = Actors(2, 5, 3, 16).net.layers[-1]
    assert actor_head.weight.abs().max() <= 3e-3


@given(st.integers(1, 4), st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_actors_use_only_their_own_observation(n_agents, batch, seed):
    torch.manual_seed(seed)
    actors = Actors(n_agents, 4, 2, 16)
    obs = torch.randn(batch, n_agents, 4)
    actions = actors(obs)
    assert actions.shape == (batch, n_agents, 2) and actions.abs().max() <= 1.0
    changed = obs.clone()
    changed[:, 0] += 1.0
    # only agent 0's action may move when only agent 0's observation changes
    torch.testing.assert_close(actors(changed)[:, 1:], actions[:, 1:])


def test_critics_see_state_and_all_actions_and_accept_per_member_actions():
    torch.manual_seed(0)
    critics = Critics(3, state_dim=5, n_agents=2, act_dim=2, hidden=16)
    state, actions = torch.randn(4, 5), torch.randn(4, 2, 2)
    shared = critics(state, actions)
    per_member = critics(state, actions.expand(3, 4, 2, 2))
    torch.testing.assert_close(shared, per_member)
    expected = loop_reference(critics.net, torch.cat([state, actions.flatten(1)], dim=1).expand(3, 4, 9)).squeeze(-1)
    torch.testing.assert_close(shared, expected, rtol=1e-5, atol=1e-6)


def test_soft_update_is_polyak_averaging():
    torch.manual_seed(0)
    target, source = BatchedMLP(2, 3, 4, 1), BatchedMLP(2, 3, 4, 1)
    before = [p.clone() for p in target.parameters()]
    soft_update(target, source, 0.25)
    for new, old, s in zip(target.parameters(), before, source.parameters(), strict=True):
        torch.testing.assert_close(new, 0.75 * old + 0.25 * s)
