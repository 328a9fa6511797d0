"""MA-TD3+BC (deep/algorithms/matd3_bc.py): smoothing and actor loss against loops, the delayed actor and targets."""

from __future__ import annotations

import math

import pytest
import torch

from deep.algorithms import matd3_bc
from deep.algorithms.learner import action_mask
from deep.algorithms.matd3_bc import TD3BCLearner, TD3BCSettings, smoothed_actions, td3_bc_actor_loss
from tests.deep.algorithms.tiny_methods import random_batch, tiny_settings

torch.set_num_threads(1)


def settings(task: str = "cn", dataset: str = "random", **changes) -> TD3BCSettings:
    return tiny_settings("matd3-bc", task, dataset, **changes)


@pytest.mark.parametrize(("noise", "clip"), [(0.2, 0.5), (0.5, 0.1)])
def test_smoothed_actions_equal_the_loop(noise, clip):
    """a' = clip(a + clip(sigma eps, -c, c), -1, 1) on the true entries, 0 on the padding."""
    generator = torch.Generator().manual_seed(0)
    n, batch, act_dims = 3, 12, (2, 3, 1)
    act = max(act_dims)
    mask = action_mask(act_dims, act)
    actions = (torch.rand(n, batch, act, generator=generator) * 2 - 1) * mask.unsqueeze(1)
    actions[:, :4] = actions[:, :4].sign() * 0.95 * mask.unsqueeze(1)  # near the bounds: the action clip acts
    normal = torch.randn(n, batch, act, generator=generator) * 3  # the noise clip acts
    fast = smoothed_actions(actions, normal, noise, clip, mask)
    clipped_noise = clipped_action = 0
    for i in range(n):
        for b in range(batch):
            for e in range(act):
                raw = noise * float(normal[i, b, e])
                eps = min(max(raw, -clip), clip)
                total = float(actions[i, b, e]) + eps
                value = min(max(total, -1.0), 1.0) * float(mask[i, e])
                clipped_noise += e < act_dims[i] and eps != raw
                clipped_action += e < act_dims[i] and value != total
                assert math.isclose(float(fast[i, b, e]), value, rel_tol=1e-6, abs_tol=1e-6)
    assert clipped_noise > 0 and clipped_action > 0


def loop_actor_loss(actions, data_actions, q_policy, alpha, l2, act_dims):
    """sum_i [-(alpha / mean_b |Q_i|) mean_b Q_i + mean_{b, e<d_i} (pi - a)^2 + l2 mean_{b, e<d_i} pi^2]."""
    n, batch, _ = actions.shape
    total = 0.0
    for i in range(n):
        entries = [(b, e) for b in range(batch) for e in range(act_dims[i])]
        lam = alpha / (sum(abs(float(q_policy[i, b])) for b in range(batch)) / batch)
        q_mean = sum(float(q_policy[i, b]) for b in range(batch)) / batch
        imitation = sum((float(actions[i, b, e]) - float(data_actions[i, b, e])) ** 2 for b, e in entries)
        square = sum(float(actions[i, b, e]) ** 2 for b, e in entries)
        total += -lam * q_mean + imitation / len(entries) + l2 * square / len(entries)
    return total


@pytest.mark.parametrize(("alpha", "l2"), [(2.5, 0.0), (1.0, 1e-3)])
def test_td3_bc_actor_loss_equals_the_loop_and_lambda_is_not_differentiated(alpha, l2):
    """The loss equals the loop; d loss / d Q_i[b] = -lambda_i / B (lambda = alpha / mean|Q| detached)."""
    generator = torch.Generator().manual_seed(0)
    n, batch, act_dims = 3, 8, (2, 3, 1)
    act = max(act_dims)
    mask = action_mask(act_dims, act).double()
    actions = torch.rand(n, batch, act, generator=generator, dtype=torch.float64) * 2 - 1  # padding not zero
    data_actions = torch.rand(n, batch, act, generator=generator, dtype=torch.float64) * 2 - 1
    q_policy = (torch.randn(n, batch, generator=generator, dtype=torch.float64) * 3 - 1).requires_grad_(True)
    loss = td3_bc_actor_loss(actions, data_actions, q_policy, alpha, l2, mask)
    q_values = q_policy.detach()
    expected = loop_actor_loss(actions, data_actions, q_values, alpha, l2, act_dims)
    assert math.isclose(float(loss.detach()), expected, rel_tol=1e-12)
    loss.backward()
    for i in range(n):
        lam = alpha / (sum(abs(float(q_values[i, b])) for b in range(batch)) / batch)
        for b in range(batch):
            assert math.isclose(float(q_policy.grad[i, b]), -lam / batch, rel_tol=1e-12)


def test_td3_bc_actor_loss_gradient_to_the_actions_is_the_imitation_and_l2():
    """d loss / d pi[i, b, e] = (2 (pi - a) + 2 l2 pi) / (B d_i) on true entries, 0 on the padding."""
    generator = torch.Generator().manual_seed(1)
    n, batch, act_dims, l2 = 2, 5, (3, 2), 1e-2
    mask = action_mask(act_dims, 3).double()
    actions = (torch.rand(n, batch, 3, generator=generator, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    data_actions = torch.rand(n, batch, 3, generator=generator, dtype=torch.float64) * 2 - 1
    q_policy = torch.randn(n, batch, generator=generator, dtype=torch.float64)
    td3_bc_actor_loss(actions, data_actions, q_policy, 2.5, l2, mask).backward()
    for i in range(n):
        for b in range(batch):
            for e in range(3):
                pi, a = float(actions.detach()[i, b, e]), float(data_actions[i, b, e])
                expected = (2 * (pi - a) + 2 * l2 * pi) / (batch * act_dims[i]) if e < act_dims[i] else 0.0
                assert math.isclose(float(actions.grad[i, b, e]), expected, rel_tol=1e-12, abs_tol=1e-15)


def test_defaults_are_td3_bc_constants_on_omars_learner():
    """alpha 2.5, sigma 0.2, c 0.5, policy delay 2, no action L2; OMAR's networks, gamma and rounds."""
    from deep.algorithms import omar

    for task in ("cn", "pp", "world", "halfcheetah"):
        for dataset in ("random", "medium-replay", "medium", "expert"):
            values, base = matd3_bc.defaults(task, dataset), omar.defaults(task, dataset)
            assert (values["bc_alpha"], values["target_noise"], values["target_noise_clip"]) == (2.5, 0.2, 0.5)
            assert values["policy_delay"] == 2 and values["action_l2"] == 0.0 and values["gamma"] == 0.95
            for name in ("hidden", "batch_size", "lr", "tau", "updates", "n_heads", "independent_batches"):
                assert values[name] == base[name]


def snapshot(learner, name):
    return [p.detach().clone() for p in getattr(learner, name).parameters()]


def test_actors_and_targets_move_every_second_update():
    """policy_delay 2 (TD3's total_it % policy_freq): actors, targets unchanged after odd updates, moved after even."""
    torch.manual_seed(0)
    s = settings()
    assert s.policy_delay == 2
    learner = TD3BCLearner(s, 3, 7, [2, 3, 2], 5, "cpu")
    generator = torch.Generator().manual_seed(0)
    delayed = ("actors", "target_actors", "target_critics")
    for update in range(1, 5):
        before = {name: snapshot(learner, name) for name in (*delayed, "critics")}
        metrics = learner.update(random_batch(learner.batch_rows, 3, 7, (2, 3, 2), seed=update), generator)
        assert learner.updates == update
        assert all(not torch.equal(a, b) for a, b in zip(before["critics"], snapshot(learner, "critics"), strict=True))
        moved = update % 2 == 0
        assert ("actor_loss" in metrics) == moved
        for name in delayed:
            unchanged = [torch.equal(a, b) for a, b in zip(before[name], snapshot(learner, name), strict=True)]
            assert (not any(unchanged)) if moved else all(unchanged), (update, name)
        if moved:  # the targets by tau towards the networks just updated
            for target, source in (("target_actors", "actors"), ("target_critics", "critics")):
                for old, new, net in zip(
                    before[target], snapshot(learner, target), snapshot(learner, source), strict=True
                ):
                    torch.testing.assert_close(new, old + s.tau * (net - old), rtol=1e-6, atol=1e-7)


def test_critic_loss_uses_the_smoothed_target_policy_and_the_min_over_target_heads():
    """critic_loss = sum_i sum_h mean_b (Q_ih(o, a) - r - gamma (1 - d) min_g Q'_ig(o', a'))^2, a' smoothed."""
    torch.manual_seed(0)
    s = settings(batch_size=8)
    n, obs_dim, act_dims, size = 3, 7, (2, 3, 2), 8
    learner = TD3BCLearner(s, n, obs_dim, list(act_dims), 5, "cpu")
    with torch.no_grad():  # targets away from the networks, so that using the wrong ones shows
        for p in [*learner.target_critics.parameters(), *learner.target_actors.parameters()]:
            p.add_(torch.randn(p.shape) * 0.3)
    batch = random_batch(learner.batch_rows, n, obs_dim, act_dims, seed=3)
    data = learner.agent_batch(batch)
    noise = learner.draw_noise(size, torch.Generator().manual_seed(0))
    loss, _ = learner._critic_losses(data, noise)
    with torch.no_grad():
        own = {
            key: [[batch[key][i * size + b, i] for b in range(size)] for i in range(n)]
            for key in ("obs", "next_obs", "actions")
        }
        next_team = torch.stack([torch.stack([own["next_obs"][i][b] for i in range(n)]) for b in range(size)])
        next_policy = learner.target_actors(next_team)  # [B, n, act]
        next_rows, data_rows = [], []
        for i in range(n):
            next_rows.append([])
            data_rows.append([torch.cat([own["obs"][i][b], own["actions"][i][b]]) for b in range(size)])
            for b in range(size):
                smoothed = torch.zeros(3)
                for e in range(act_dims[i]):
                    eps = min(max(0.2 * float(noise["target"][i, b, e]), -0.5), 0.5)
                    smoothed[e] = min(max(float(next_policy[b, i, e]) + eps, -1.0), 1.0)
                next_rows[i].append(torch.cat([own["next_obs"][i][b], smoothed]))
        q_next = learner.target_critics(torch.stack([torch.stack(r) for r in next_rows]))
        q_data = learner.critics(torch.stack([torch.stack(r) for r in data_rows]))
        expected = 0.0
        for i in range(n):
            for b in range(size):
                y = float(batch["rewards"][i * size + b]) + 0.95 * (1 - float(batch["terminals"][i * size + b])) * min(
                    float(q_next[i, 0, b]), float(q_next[i, 1, b])
                )
                expected += sum((float(q_data[i, h, b]) - y) ** 2 for h in range(2)) / size
    assert math.isclose(float(loss.detach()), expected, rel_tol=1e-5, abs_tol=1e-5)
