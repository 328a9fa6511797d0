"""IQL (deep/algorithms/iql.py): losses against numpy and torch.distributions, the schedule, one update in order."""

from __future__ import annotations

import copy
import itertools
import math

import numpy as np
import pytest
import torch

from deep.algorithms import iql, omar
from deep.algorithms.iql import (
    LOG_STD_RANGE,
    IQLLearner,
    IQLSettings,
    PolicyLogStd,
    advantage_weights,
    cosine_lr,
    expectile_loss,
    gaussian_log_prob,
)
from deep.algorithms.learner import action_mask
from tests.deep.algorithms.tiny_methods import random_batch, tiny_settings

torch.set_num_threads(1)


def settings(task: str = "cn", dataset: str = "random", **changes) -> IQLSettings:
    return tiny_settings("iql", task, dataset, **changes)


@pytest.mark.parametrize("expectile", [0.7, 0.5, 0.9])
def test_expectile_loss_equals_numpy(expectile):
    """|tau - 1(u < 0)| u^2 element-wise."""
    rng = np.random.default_rng(0)
    u = rng.normal(size=(3, 20)) * 2
    expected = np.abs(expectile - (u < 0).astype(float)) * u**2
    fast = expectile_loss(torch.from_numpy(u), expectile).numpy()
    np.testing.assert_allclose(fast, expected, rtol=1e-6)  # the weights are float32 scalars in torch.where


@pytest.mark.parametrize(("temperature", "clip"), [(3.0, 100.0), (1.0, 2.0)])
def test_advantage_weights_equal_numpy(temperature, clip):
    """min(exp(beta A), clip) element-wise (some entries capped)."""
    rng = np.random.default_rng(1)
    advantage = rng.uniform(-3, 3, size=(3, 30))
    expected = np.minimum(np.exp(temperature * advantage), clip)
    assert (expected == clip).any() and (expected < clip).any()
    fast = advantage_weights(torch.from_numpy(advantage), temperature, clip).numpy()
    np.testing.assert_allclose(fast, expected, rtol=1e-12)


def test_gaussian_log_prob_equals_normal_summed_over_the_true_entries():
    """log_prob[i, b] = sum_{e < d_i} log N(a_ibe; mean_ibe, exp(log_std_ie)^2); padded entries ignored."""
    generator = torch.Generator().manual_seed(0)
    n, batch, act_dims = 3, 7, (2, 3, 1)
    act = max(act_dims)
    actions = torch.rand(n, batch, act, generator=generator, dtype=torch.float64) * 2 - 1  # padding not zero
    mean = torch.rand(n, batch, act, generator=generator, dtype=torch.float64) * 2 - 1
    log_std = torch.rand(n, act, generator=generator, dtype=torch.float64) * 3 - 2
    fast = gaussian_log_prob(actions, mean, log_std, action_mask(act_dims, act).double())
    assert fast.shape == (n, batch)
    for i, d in enumerate(act_dims):
        normal = torch.distributions.Normal(mean[i, :, :d], log_std[i, :d].exp())
        torch.testing.assert_close(fast[i], normal.log_prob(actions[i, :, :d]).sum(dim=-1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("horizon", [100, 7])
def test_cosine_lr_decays_from_lr_to_zero_and_stays_there(horizon):
    """lr (1 + cos(pi min(t, T) / T)) / 2: lr at 0, lr/2 at T/2, 3 lr/4 at T/3, 0 at T and beyond."""
    lr = 0.3
    assert math.isclose(cosine_lr(lr, 0, horizon), lr)
    assert math.isclose(cosine_lr(lr, horizon / 2, horizon), lr / 2)
    assert math.isclose(cosine_lr(lr, horizon / 3, horizon), 0.75 * lr)
    for t in (horizon, horizon + 1, 3 * horizon):
        assert math.isclose(cosine_lr(lr, t, horizon), 0.0, abs_tol=1e-15)
    values = [cosine_lr(lr, t, horizon) for t in range(horizon + 1)]
    assert all(a > b for a, b in itertools.pairwise(values))


def test_policy_log_std_is_clamped_to_minus_5_and_2():
    """PolicyLogStd() = clamp(log_std, -5, 2); no gradient flows to entries outside the range."""
    assert LOG_STD_RANGE == (-5.0, 2.0)
    module = PolicyLogStd(2, 3)
    assert torch.equal(module(), torch.zeros(2, 3))
    raw = torch.tensor([[-9.0, -5.0, -1.0], [0.5, 2.0, 6.0]])
    with torch.no_grad():
        module.log_std.copy_(raw)
    out = module()
    assert out.tolist() == [[max(min(x, 2.0), -5.0) for x in row] for row in raw.tolist()]
    out.sum().backward()
    assert module.log_std.grad[0, 0] == 0 and module.log_std.grad[1, 2] == 0 and module.log_std.grad[0, 2] == 1


def test_defaults_are_iqls_constants():
    """expectile 0.7, beta 3, clip 100, tau 0.005, no gradient clipping, lr 1e-3 (MPE) / 3e-4 (HalfCheetah)."""
    for task in ("cn", "pp", "world", "halfcheetah"):
        for dataset in ("random", "medium-replay", "medium", "expert"):
            values = iql.defaults(task, dataset)
            assert (values["expectile"], values["temperature"], values["advantage_clip"]) == (0.7, 3.0, 100.0)
            assert values["tau"] == 0.005 and values["grad_clip"] is None and values["gamma"] == 0.95
            assert values["lr"] == (3e-4 if task == "halfcheetah" else 1e-3)
            assert values["cosine_updates"] == values["updates"] == omar.defaults(task, dataset)["updates"]


def tensors(learner) -> dict[str, torch.Tensor]:
    return {
        f"{name}.{key}": t.detach().clone()
        for name in learner.NETWORKS
        if isinstance(getattr(learner, name), torch.nn.Module)
        for key, t in getattr(learner, name).state_dict().items()
    }


def test_update_runs_value_actor_critic_in_iqls_order():
    """V on min_h Q'(o, a); the actor on exp(beta (Q' - V_new)) at the cosine lr; Q on r + gamma (1 - d) V_new(o');
    Q' <- Q' + tau (Q - Q'): the learner equals a step-by-step recomputation on a copy."""
    n, obs_dim, act_dims, size = 3, 7, (2, 3, 2), 16
    s = settings(lr=0.05, cosine_updates=100)
    torch.manual_seed(0)
    learner = IQLLearner(s, n, obs_dim, list(act_dims), 5, "cpu")
    with torch.no_grad():  # targets away from the critics (min over heads matters); log_std partly out of range
        for p in learner.target_critics.parameters():
            p.add_(torch.randn(p.shape) * 0.3)
        learner.policy_log_std.log_std.copy_(torch.tensor([[4.0, -0.5, 0.0], [-7.0, 0.3, -0.2], [0.1, 3.0, 0.0]]))
    learner.updates = 30  # the actor's lr is the cosine schedule's at update 30
    reference = copy.deepcopy(learner)
    batch = random_batch(learner.batch_rows, n, obs_dim, act_dims, seed=1)
    target_before = [p.detach().clone() for p in learner.target_critics.parameters()]
    metrics = learner.update(batch, torch.Generator().manual_seed(0))

    own = {
        key: [[batch[key][i * size + b, i] for b in range(size)] for i in range(n)]
        for key in ("obs", "next_obs", "actions")
    }
    rewards = torch.stack([batch["rewards"][i * size : (i + 1) * size] for i in range(n)])
    terminals = torch.stack([batch["terminals"][i * size : (i + 1) * size] for i in range(n)])
    obs = torch.stack([torch.stack(own["obs"][i]) for i in range(n)])  # [n, B, obs]
    next_obs = torch.stack([torch.stack(own["next_obs"][i]) for i in range(n)])
    x = torch.stack(
        [torch.stack([torch.cat([own["obs"][i][b], own["actions"][i][b]]) for b in range(size)]) for i in range(n)]
    )
    team_obs = torch.stack([torch.stack([own["obs"][i][b] for i in range(n)]) for b in range(size)])  # [B, n, obs]
    ref = reference

    with torch.no_grad():
        q_heads = ref.target_critics(x)  # [n, 2, B]
        q_target = torch.minimum(q_heads[:, 0], q_heads[:, 1])
    u = q_target - ref.values(obs)[:, 0]
    value_loss = sum((torch.where(u[i] < 0, 0.3, 0.7) * u[i] ** 2).mean() for i in range(n))
    ref.value_optimizer.zero_grad()
    value_loss.backward()
    ref.value_optimizer.step()

    with torch.no_grad():
        advantage = q_target - ref.values(obs)[:, 0]  # the value network after its step
        weights = torch.exp(3.0 * advantage).clamp(max=100.0)
    mean = ref.actors(team_obs)  # [B, n, act]
    log_std = ref.policy_log_std.log_std.clamp(-5.0, 2.0)
    actor_loss = 0.0
    for i, d in enumerate(act_dims):
        normal = torch.distributions.Normal(mean[:, i, :d], log_std[i, :d].exp())
        log_prob = normal.log_prob(torch.stack(own["actions"][i])[:, :d]).sum(dim=-1)
        actor_loss = actor_loss - (weights[i] * log_prob).mean()
    for group in ref.actor_optimizer.param_groups:
        group["lr"] = 0.5 * s.lr * (1 + math.cos(math.pi * 30 / 100))
    ref.actor_optimizer.zero_grad()
    actor_loss.backward()
    ref.actor_optimizer.step()

    with torch.no_grad():
        y = rewards + 0.95 * (1 - terminals) * ref.values(next_obs)[:, 0]  # again the value network after its step
    q = ref.critics(x)
    critic_loss = sum(((q[i, h] - y[i]) ** 2).mean() for i in range(n) for h in range(2))
    ref.critic_optimizer.zero_grad()
    critic_loss.backward()
    ref.critic_optimizer.step()
    with torch.no_grad():
        for t, c in zip(ref.target_critics.parameters(), ref.critics.parameters(), strict=True):
            t.copy_(t + s.tau * (c - t))
    ref.updates += 1

    assert learner.updates == 31
    expected = {"value_loss": value_loss, "actor_loss": actor_loss, "critic_loss": critic_loss, "target": y.mean()}
    for key, value in expected.items():
        torch.testing.assert_close(metrics[key], value.detach(), rtol=1e-5, atol=1e-6, msg=key)
    torch.testing.assert_close(metrics["advantage"], advantage.mean(), rtol=1e-5, atol=1e-6)
    actual, wanted = tensors(learner), tensors(ref)
    assert actual.keys() == wanted.keys() and any(key.startswith("values.") for key in actual)
    for key in actual:
        torch.testing.assert_close(actual[key], wanted[key], rtol=1e-5, atol=1e-6, msg=key)
    assert learner.actor_optimizer.param_groups[0]["lr"] == pytest.approx(0.5 * s.lr * (1 + math.cos(math.pi * 0.3)))
    for old, new, critic in zip(
        target_before, learner.target_critics.parameters(), learner.critics.parameters(), strict=True
    ):
        torch.testing.assert_close(new, old + s.tau * (critic - old), rtol=1e-6, atol=1e-7)
        assert not torch.equal(new, old)


def test_updates_move_every_network_and_report_the_metric_names():
    """20 updates: finite metrics keyed by metric_names(), and every network (targets too) moved."""
    s = settings()
    torch.manual_seed(1)
    learner = IQLLearner(s, 3, 7, [2, 3, 2], 5, "cpu")
    before = tensors(learner)
    generator = torch.Generator().manual_seed(0)
    for update in range(20):
        metrics = learner.update(random_batch(learner.batch_rows, 3, 7, (2, 3, 2), seed=update), generator)
        assert set(metrics) == set(learner.metric_names())
        assert all(math.isfinite(float(v)) for v in metrics.values())
    after = tensors(learner)
    for name in ("actors", "policy_log_std", "critics", "values", "target_critics"):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(name + ".")), name
