"""Batched networks against a per-member loop of plain linear layers and torch.nn.BatchNorm1d."""

import copy

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from deep.algorithms import networks
from deep.algorithms.networks import Actors, BatchedMLP, Critics, InputNorm, soft_update

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
    assert actor_head.bias.abs().max() > 3e-3  # CFCQL scales the last layer's weight only


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


def test_critics_see_state_and_all_actions():
    torch.manual_seed(0)
    critics = Critics(3, state_dim=5, n_agents=2, act_dim=2, hidden=16)
    state, actions = torch.randn(4, 5), torch.randn(4, 2, 2)
    expected = loop_reference(critics.net, torch.cat([state, actions.flatten(1)], dim=1).expand(3, 4, 9)).squeeze(-1)
    torch.testing.assert_close(critics(state, actions), expected, rtol=1e-5, atol=1e-6)


def batchnorm_reference(norm: InputNorm, member: int) -> nn.BatchNorm1d:
    """A torch.nn.BatchNorm1d with member ``member``'s affine parameters and running statistics."""
    reference = nn.BatchNorm1d(norm.weight.shape[-1], dtype=norm.weight.dtype)
    with torch.no_grad():
        reference.weight.copy_(norm.weight[member, 0])
        reference.bias.copy_(norm.bias[member, 0])
        reference.running_mean.copy_(norm.running_mean[member, 0])
        reference.running_var.copy_(norm.running_var[member, 0])
    return reference


def randomize_affine(norm: InputNorm) -> None:
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)


@given(st.integers(1, 3), st.integers(3, 9), st.integers(1, 5), st.integers(0, 2**31 - 1))
def test_input_norm_is_batchnorm1d_per_member_in_training_and_evaluation(members, rows, features, seed):
    """(With 2 rows the normalized values are +-1 whatever the input, and its gradient is rounding noise.)

    In float64: the input gradient of a batch normalization is a difference of terms of size
    ``|grad| weight / std`` that cancel, so in float32 a few rows give relative rounding errors above 1e-4
    (hypothesis found 1.9e-4 with 3 rows); in float64 the formulas are compared, not their rounding.
    """
    torch.manual_seed(seed)
    norm = InputNorm(members, features).double()
    randomize_affine(norm)
    references = [batchnorm_reference(norm, m) for m in range(members)]
    for step in range(3):  # the running statistics follow BatchNorm1d's over several calls
        x = (torch.randn(members, rows, features, dtype=torch.float64) * 3 + step).requires_grad_()
        out = norm(x)
        grad = torch.randn_like(out)
        out.backward(grad)
        for m, reference in enumerate(references):
            x_m = x.detach()[m].clone().requires_grad_()
            expected = reference(x_m)
            expected.backward(grad[m])
            torch.testing.assert_close(out[m], expected, rtol=1e-10, atol=1e-10)
            torch.testing.assert_close(x.grad[m], x_m.grad, rtol=1e-10, atol=1e-10)
            torch.testing.assert_close(norm.running_mean[m, 0], reference.running_mean)
            torch.testing.assert_close(norm.running_var[m, 0], reference.running_var)
    for m, reference in enumerate(references):
        torch.testing.assert_close(norm.weight.grad[m, 0], reference.weight.grad, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(norm.bias.grad[m, 0], reference.bias.grad, rtol=1e-10, atol=1e-10)
    norm.eval()
    x = torch.randn(members, 1, features, dtype=torch.float64)  # one row: evaluation uses the running statistics
    for m, reference in enumerate(references):
        torch.testing.assert_close(norm(x)[m], reference.eval()(x[m]), rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="more than 1 row"):
        norm.train()(x)


def test_actors_normalize_each_agents_observation_with_its_own_statistics():
    torch.manual_seed(0)
    actors = Actors(3, 4, 2, 16, input_norm=True)
    randomize_affine(actors.norm)
    obs = torch.randn(6, 3, 4) * torch.tensor([1.0, 5.0, 0.1]).view(1, 3, 1)
    references = [batchnorm_reference(actors.norm, i) for i in range(3)]
    normalized = torch.stack([references[i](obs[:, i]) for i in range(3)])  # [n, B, obs]
    torch.testing.assert_close(actors(obs), torch.tanh(loop_reference(actors.net, normalized)).transpose(0, 1))
    for i in range(3):
        torch.testing.assert_close(actors.norm.running_mean[i, 0], references[i].running_mean)
    actors.eval()
    normalized = torch.stack([references[i].eval()(obs[:1, i]) for i in range(3)])
    expected = torch.tanh(loop_reference(actors.net, normalized)).transpose(0, 1)
    torch.testing.assert_close(actors(obs[:1]), expected, rtol=1e-5, atol=1e-6)


def test_critics_share_one_input_norm_over_state_and_actions():
    torch.manual_seed(0)
    critics = Critics(3, state_dim=5, n_agents=2, act_dim=2, hidden=16, input_norm=True)
    randomize_affine(critics.norm)
    assert critics.norm.weight.shape == (1, 1, 9)
    state, actions = torch.randn(7, 5) * 4 + 1, torch.rand(7, 2, 2) * 2 - 1
    reference = batchnorm_reference(critics.norm, 0)
    joint = reference(torch.cat([state, actions.flatten(1)], dim=1)).expand(3, 7, 9)
    torch.testing.assert_close(critics(state, actions), loop_reference(critics.net, joint).squeeze(-1))
    torch.testing.assert_close(critics.norm.running_var[0, 0], reference.running_var)
    assert set(critics.state_dict()) >= {"norm.running_mean", "norm.running_var", "norm.weight", "norm.bias"}


def slow_candidates(critics: Critics, state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """One forward call on the K * B rows [state_b, actions_kb], written out: ``[M, K, B]``."""
    n_candidates, batch = actions.shape[:2]
    rows = critics(state.repeat(n_candidates, 1), actions.reshape(n_candidates * batch, *actions.shape[2:]))
    return rows.view(-1, n_candidates, batch)


@pytest.mark.parametrize("input_norm", [False, True])
@pytest.mark.parametrize(("n_candidates", "batch", "rows"), [(5, 7, 3), (4, 6, 1), (3, 9, 100)])
def test_chunked_candidates_equal_the_straightforward_forward_values_gradients_statistics(
    input_norm, n_candidates, batch, rows, monkeypatch
):
    """Slices of 3 and 1 states, the whole batch: values, every gradient, running statistics."""
    monkeypatch.setattr(networks, "block_rows", lambda members, hidden: rows)
    torch.manual_seed(0)
    critics = Critics(3, 6, 2, 3, 16, input_norm=input_norm)
    if input_norm:
        randomize_affine(critics.norm)
    slow = copy.deepcopy(critics)
    state, actions = torch.randn(batch, 6) * 2 + 1, torch.rand(n_candidates, batch, 2, 3) * 2 - 1
    weights = torch.randn(3, n_candidates, batch)
    results = []
    for model, evaluate in ((critics, lambda c: c.candidates(state, actions, chunked=True)), (slow, None)):
        q = evaluate(model) if evaluate else slow_candidates(model, state, actions)
        (q * weights).sum().backward()
        results.append((q.detach(), [p.grad for p in model.parameters()], [b.clone() for b in model.buffers()]))
    (q_fast, grads_fast, buffers_fast), (q_slow, grads_slow, buffers_slow) = results
    torch.testing.assert_close(q_fast, q_slow, rtol=1e-5, atol=1e-5)
    for fast, reference in zip(grads_fast + buffers_fast, grads_slow + buffers_slow, strict=True):
        torch.testing.assert_close(fast, reference, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="actions"):
        critics.candidates(state, actions.requires_grad_(), chunked=True)


@pytest.mark.parametrize(("batch", "rows"), [(7, 3), (6, 2), (9, 100), (5, 1), (5, 0)])
def test_batch_blocks_cover_every_state_once_in_balanced_slices(batch, rows):
    blocks = networks.batch_blocks(batch, rows)
    assert torch.equal(torch.cat([torch.arange(batch)[bs] for bs in blocks]), torch.arange(batch))
    sizes = [len(range(batch)[bs]) for bs in blocks]
    assert max(sizes) <= max(rows, 1) and max(sizes) - min(sizes) <= 1
    assert len(blocks) == -(-batch // max(rows, 1))


def test_soft_update_averages_parameters_and_leaves_the_running_statistics_alone():
    torch.manual_seed(0)
    source = Critics(2, 3, 1, 1, 4, input_norm=True)
    target = copy.deepcopy(source)
    source(torch.randn(8, 3) + 5, torch.randn(8, 1, 1))  # moves the source's running statistics
    with torch.no_grad():
        source.norm.bias.add_(1.0)
    buffers = [b.clone() for b in target.buffers()]
    soft_update(target, source, 0.5)
    assert all(torch.equal(a, b) for a, b in zip(buffers, target.buffers(), strict=True))
    torch.testing.assert_close(target.norm.bias, torch.full((1, 1, 4), 0.5))
