"""OMAR (deep/algorithms/omar.py): losses and search against per-transition loops, tables, a HalfCheetah update."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from deep.algorithms import omar
from deep.algorithms.learner import action_mask
from deep.algorithms.omar import (
    OmarLearner,
    OmarSettings,
    cql_penalty,
    rectified_actions,
    rectified_actor_loss,
    softmax_refit,
    td_targets,
)
from tests.deep.algorithms.tiny_methods import tiny_settings

torch.set_num_threads(1)

TASKS = ("cn", "pp", "world", "halfcheetah")
DATASETS = ("random", "medium-replay", "medium", "expert")


def settings(task: str = "cn", dataset: str = "random", **changes) -> OmarSettings:
    return tiny_settings("omar", task, dataset, **changes)


@pytest.mark.parametrize("seed", [0, 1])
def test_td_targets_equal_the_loop(seed):
    """y[i, b] = r[i, b] + gamma (1 - d[i, b]) min_h q_next[i, h, b]."""
    generator = torch.Generator().manual_seed(seed)
    n, heads, batch, gamma = 3, 2, 6, 0.95
    rewards = torch.randn(n, batch, generator=generator)
    terminals = (torch.rand(n, batch, generator=generator) < 0.4).float()
    q_next = torch.randn(n, heads, batch, generator=generator)
    fast = td_targets(rewards, terminals, q_next, gamma)
    assert 0 < terminals.sum() < n * batch
    for i in range(n):
        for b in range(batch):
            expected = float(rewards[i, b]) + gamma * (1 - float(terminals[i, b])) * min(
                float(q_next[i, h, b]) for h in range(heads)
            )
            assert math.isclose(float(fast[i, b]), expected, rel_tol=1e-6, abs_tol=1e-6)


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_cql_penalty_equals_the_loop(temperature, seed):
    """penalty_i = sum_h mean_b [T log sum_j exp((Q_h(u_j) - log p_j) / T) - Q_h(a)]."""
    generator = torch.Generator().manual_seed(seed)
    n, heads, samples, batch = 3, 2, 5, 4
    q_samples = torch.randn(n, heads, samples, batch, generator=generator, dtype=torch.float64) * 3
    log_density = torch.randn(n, samples, batch, generator=generator, dtype=torch.float64)
    q_data = torch.randn(n, heads, batch, generator=generator, dtype=torch.float64)
    fast = cql_penalty(q_samples, log_density, q_data, temperature)
    assert fast.shape == (n,)
    for i in range(n):
        total = 0.0
        for h in range(heads):
            per_row = []
            for b in range(batch):
                exps = sum(
                    math.exp((float(q_samples[i, h, j, b]) - float(log_density[i, j, b])) / temperature)
                    for j in range(samples)
                )
                per_row.append(temperature * math.log(exps) - float(q_data[i, h, b]))
            total += sum(per_row) / batch
        assert math.isclose(float(fast[i]), total, rel_tol=1e-10, abs_tol=1e-10)


def slow_softmax_refit(samples, q, i, b):
    """mu = sum_k softmax(q)_k a_k, sigma = sqrt(mean_k (a_k - mu)^2) of transition (i, b), in Python floats."""
    k_count, act = samples.shape[1], samples.shape[-1]
    top = max(float(q[i, k, b]) for k in range(k_count))
    weights = [math.exp(float(q[i, k, b]) - top) for k in range(k_count)]
    total = sum(weights)
    mu = [sum(weights[k] * float(samples[i, k, b, e]) for k in range(k_count)) / total for e in range(act)]
    sigma = [
        math.sqrt(sum((float(samples[i, k, b, e]) - mu[e]) ** 2 for k in range(k_count)) / k_count) for e in range(act)
    ]
    return mu, sigma


def test_softmax_refit_equals_the_loop():
    """softmax_refit: the softmax(Q)-weighted mean and the root mean square distance from it, per transition."""
    generator = torch.Generator().manual_seed(0)
    n, k, batch, act = 2, 6, 5, 3
    samples = torch.rand(n, k, batch, act, generator=generator, dtype=torch.float64) * 2 - 1
    q = torch.randn(n, k, batch, generator=generator, dtype=torch.float64) * 2
    mu, sigma = softmax_refit(samples, q)
    for i in range(n):
        for b in range(batch):
            slow_mu, slow_sigma = slow_softmax_refit(samples, q, i, b)
            for e in range(act):
                assert math.isclose(float(mu[i, b, e]), slow_mu[e], rel_tol=1e-10, abs_tol=1e-12)
                assert math.isclose(float(sigma[i, b, e]), slow_sigma[e], rel_tol=1e-10, abs_tol=1e-12)


class Quadratic:
    """A fixed random concave quadratic per agent and transition: Q_i(a) = -(a - c_ib)^T P_i (a - c_ib)."""

    def __init__(self, n, batch, act_dims, seed):
        generator = torch.Generator().manual_seed(seed)
        act = max(act_dims)
        low = torch.randn(n, act, act, generator=generator, dtype=torch.float64)
        self.matrix = low @ low.transpose(1, 2) + 0.1 * torch.eye(act, dtype=torch.float64)
        self.centre = (torch.rand(n, batch, act, generator=generator, dtype=torch.float64) * 1.6 - 0.8) * action_mask(
            act_dims, act
        ).double().unsqueeze(1)

    def batched(self, actions):
        """``actions [n, K, B, A]`` -> ``[n, K, B]``."""
        d = actions - self.centre.unsqueeze(1)
        return -torch.einsum("nkba,nac,nkbc->nkb", d, self.matrix, d)

    def scalar(self, i, b, action):
        """Q_i(action) of transition b, a list of floats, by explicit sums."""
        d = [action[e] - float(self.centre[i, b, e]) for e in range(len(action))]
        return -sum(d[e] * float(self.matrix[i, e, f]) * d[f] for e in range(len(d)) for f in range(len(d)))


def slow_rectified(q, policy_actions, q_policy, normals, s, mask):
    """The search of deep/algorithms/omar.py's docstring, agent by agent, transition by transition, sample by sample."""
    iters, n, k_count, batch, act = normals.shape
    out = torch.empty(n, batch, act, dtype=torch.float64)
    for i in range(n):
        for b in range(batch):
            mu, sigma = [s.omar_mu] * act, [s.omar_sigma] * act
            elites = []
            for it in range(iters):
                candidates = []
                for k in range(k_count):
                    action = [
                        min(max(mu[e] + sigma[e] * float(normals[it, i, k, b, e]), -1.0), 1.0) * float(mask[i, e])
                        for e in range(act)
                    ]
                    candidates.append((q.scalar(i, b, action), action))
                if s.omar_search == "softmax":
                    top = max(value for value, _ in candidates)
                    weights = [math.exp(value - top) for value, _ in candidates]
                    mu = [
                        sum(w * a[e] for w, (_, a) in zip(weights, candidates, strict=True)) / sum(weights)
                        for e in range(act)
                    ]
                    sigma = [math.sqrt(sum((a[e] - mu[e]) ** 2 for _, a in candidates) / k_count) for e in range(act)]
                else:
                    candidates = candidates + elites  # the previous iteration's elites compete again
                    elites = sorted(candidates, key=lambda pair: pair[0], reverse=True)[: s.omar_elites]
                    count = len(elites)
                    mu = [sum(a[e] for _, a in elites) / count for e in range(act)]
                    sigma = [math.sqrt(sum((a[e] - mu[e]) ** 2 for _, a in elites) / (count - 1)) for e in range(act)]
            best_q, best_action = max(candidates, key=lambda pair: pair[0])
            if float(q_policy[i, b]) >= best_q:
                out[i, b] = policy_actions[i, b]
            else:
                out[i, b] = torch.tensor(best_action, dtype=torch.float64)
    return out


@pytest.mark.parametrize(
    ("task", "changes"),
    [
        ("cn", {}),  # softmax, 3 iterations of 10 samples
        ("cn", {"omar_mu": 0.3, "omar_sigma": 0.5, "omar_iters": 2}),
        ("halfcheetah", {}),  # cem, 2 iterations of 20 samples, 5 elites
        ("halfcheetah", {"omar_iters": 3, "omar_samples": 8, "omar_elites": 4, "omar_mu": -0.2, "omar_sigma": 1.0}),
    ],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_rectified_actions_equal_the_loop(task, changes, seed):
    """a_hat: the search's best last-iteration candidate by Q, or the policy's action where its Q is at least that."""
    s = settings(task, **changes)
    assert s.omar_search == ("cem" if task == "halfcheetah" else "softmax")
    n, batch, act_dims = 2, 8, (3, 2)
    act = max(act_dims)
    mask = action_mask(act_dims, act).double()
    q = Quadratic(n, batch, act_dims, seed)
    generator = torch.Generator().manual_seed(100 + seed)
    normals = torch.randn(s.omar_iters, n, s.omar_samples, batch, act, generator=generator, dtype=torch.float64)
    policy_actions = (torch.rand(n, batch, act, generator=generator, dtype=torch.float64) * 2 - 1) * mask.unsqueeze(1)
    policy_actions[:, ::2] = q.centre[:, ::2]  # the optimum: the policy wins on the even transitions
    q_policy = q.batched(policy_actions.unsqueeze(1))[:, 0]
    fast = rectified_actions(q.batched, policy_actions, q_policy, normals, s, mask)
    slow = slow_rectified(q, policy_actions, q_policy, normals, s, mask)
    torch.testing.assert_close(fast, slow, rtol=1e-12, atol=1e-12)
    kept = (fast == policy_actions).all(dim=-1)
    assert kept[:, ::2].all() and not kept[:, 1::2].all()  # both branches taken
    assert torch.all(fast * (1 - mask.unsqueeze(1)) == 0)


@pytest.mark.parametrize("coe", [1.0, 0.7, 0.0])
def test_rectified_actor_loss_equals_the_loop(coe):
    """sum_i [coe mean_{b, e<d_i} (pi - a_hat)^2 - (1 - coe) mean_b Q_i + l2 mean_{b, e<d_i} pi^2]."""
    generator = torch.Generator().manual_seed(0)
    n, batch, act_dims, l2 = 3, 5, (3, 1, 2), 1e-3
    act = max(act_dims)
    mask = action_mask(act_dims, act).double()
    actions = torch.rand(n, batch, act, generator=generator, dtype=torch.float64) * 2 - 1  # padding not zero
    mimic = torch.rand(n, batch, act, generator=generator, dtype=torch.float64) * 2 - 1
    q_policy = torch.randn(n, batch, generator=generator, dtype=torch.float64)
    fast = rectified_actor_loss(actions, mimic, q_policy, coe, l2, mask)
    expected = 0.0
    for i, d in enumerate(act_dims):
        entries = [(b, e) for b in range(batch) for e in range(d)]
        imitation = sum((float(actions[i, b, e]) - float(mimic[i, b, e])) ** 2 for b, e in entries) / len(entries)
        square = sum(float(actions[i, b, e]) ** 2 for b, e in entries) / len(entries)
        q_mean = sum(float(q_policy[i, b]) for b in range(batch)) / batch
        expected += coe * imitation - (1 - coe) * q_mean + l2 * square
    assert math.isclose(float(fast), expected, rel_tol=1e-12, abs_tol=1e-12)


# (omar_coe, cql_alpha) of OMAR's maddpg.py env_config_map; rounds = num_steps / steps_per_update of its main.py
COE_ALPHA = {
    "cn": [(1.0, 0.5), (1.0, 1.0), (1.0, 5.0), (1.0, 5.0)],
    "pp": [(0.9, 0.5), (0.9, 0.5), (0.7, 5.0), (0.9, 5.0)],
    "world": [(1.0, 0.5), (0.7, 1.0), (0.1, 0.5), (0.9, 5.0)],
    "halfcheetah": [(1.0, 1.0), (0.9, 5.0), (0.7, 1.0), (0.5, 5.0)],
}
ROUNDS = {"cn": 2000, "pp": 2000, "world": 1000, "halfcheetah": 100_000}
ROUND_EXCEPTIONS = {("cn", "random"): 6000, ("pp", "medium-replay"): 1000}


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("index", range(4))
def test_defaults_are_omars_code_values(task, index):
    """defaults: OMAR's (omar_coe, cql_alpha), rounds, search, mu 0, sigma 2, lr 0.01 (MPE), gamma 0.95."""
    dataset = DATASETS[index]
    values = omar.defaults(task, dataset)
    assert (values["omar_coe"], values["cql_alpha"]) == COE_ALPHA[task][index]
    assert values["updates"] == ROUND_EXCEPTIONS.get((task, dataset), ROUNDS[task])
    search = ("cem", 2, 20) if task == "halfcheetah" else ("softmax", 3, 10)
    assert (values["omar_search"], values["omar_iters"], values["omar_samples"]) == search
    if task == "halfcheetah":
        assert values["omar_elites"] == 5 and values["penalty_policy_samples"] is True
    else:
        assert values["lr"] == 0.01 and values["penalty_policy_samples"] is False
    assert values["omar_mu"] == 0.0 and values["omar_sigma"] == 2.0 and values["gamma"] == 0.95
    assert values["n_heads"] == 2 and values["policy_delay"] == 1 and values["independent_batches"] is True
    assert values["n_sampled_actions"] == 10 and values["policy_sample_noise"] == 0.2


def gaussian_density(offsets, sigma):
    """prod_e N(offset_e; 0, sigma^2) over a list of floats."""
    return math.prod(math.exp(-0.5 * (x / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi)) for x in offsets)


@pytest.mark.parametrize("act_dims", [(3, 3), (3, 2)])
def test_halfcheetah_update_penalty_subtracts_the_policy_samples_density(act_dims):
    """One HalfCheetah-shaped update: penalty and TD loss as a direct computation that subtracts the uniform's log
    density and, for the current- and next-policy samples (critic on o_i), the Gaussian density itself."""
    n, obs_dim, size, samples = 2, 6, 16, 10
    act = max(act_dims)
    s = settings("halfcheetah", "random", batch_size=size, n_sampled_actions=samples)
    assert s.penalty_policy_samples and s.cql_alpha == 1.0
    torch.manual_seed(0)
    learner = OmarLearner(s, n, obs_dim, list(act_dims), 5, "cpu")
    reference = copy.deepcopy(learner)
    generator = torch.Generator().manual_seed(0)
    rows = learner.batch_rows
    data_generator = torch.Generator().manual_seed(1)
    batch = {
        "obs": torch.randn(rows, n, obs_dim, generator=data_generator),
        "next_obs": torch.randn(rows, n, obs_dim, generator=data_generator),
        "actions": (torch.rand(rows, n, act, generator=data_generator) * 2 - 1) * action_mask(act_dims, act),
        "rewards": torch.randn(rows, generator=data_generator),
        "terminals": (torch.rand(rows, generator=data_generator) < 0.3).float(),
    }
    copy_generator = torch.Generator()
    copy_generator.set_state(generator.get_state())
    noise = reference.draw_noise(size, copy_generator)
    metrics = learner.update(batch, generator)

    own = {
        key: [[batch[key][i * size + b, i] for b in range(size)] for i in range(n)]
        for key in ("obs", "next_obs", "actions")
    }
    with torch.no_grad():

        def team(key):  # [B, n, obs] with agent i's own rows in column i
            return torch.stack([torch.stack([own[key][i][b] for i in range(n)]) for b in range(size)])

        def critic(critics, actions_per_agent):  # one call per source: each agent's rows [o_i[b], action]
            return critics(rows_of("obs", actions_per_agent))  # [n, H, rows]

        def rows_of(key, actions_per_agent):
            return torch.stack(
                [
                    torch.stack([torch.cat([own[key][i][b], a]) for b, a in rows_i])
                    for i, rows_i in enumerate(actions_per_agent)
                ]
            )

        mask = action_mask(act_dims, act)
        next_policy = reference.target_actors(team("next_obs"))
        next_rows = [[(b, next_policy[b, i] * mask[i]) for b in range(size)] for i in range(n)]
        q_next = reference.target_critics(rows_of("next_obs", next_rows))
        q_data = critic(reference.critics, [[(b, own["actions"][i][b]) for b in range(size)] for i in range(n)])
        uniform = [
            [(b, (2 * noise["uniform"][i, j, b] - 1) * mask[i]) for j in range(samples) for b in range(size)]
            for i in range(n)
        ]
        log_uniform = [[-act_dims[i] * math.log(2)] * samples * size for i in range(n)]
        sources = [(critic(reference.critics, uniform), log_uniform)]
        for source, key in enumerate(("obs", "next_obs")):
            centre = reference.actors(team(key))  # [B, n, act]
            actions, density = [], []
            for i in range(n):
                actions.append([])
                density.append([])
                for j in range(samples):
                    for b in range(size):
                        offset = [0.2 * float(noise["policy"][source, i, j, b, e]) for e in range(act_dims[i])]
                        action = torch.zeros(act)
                        for e in range(act_dims[i]):
                            action[e] = min(max(float(centre[b, i, e]) + offset[e], -1.0), 1.0)
                        actions[i].append((b, action))
                        density[i].append(gaussian_density(offset, 0.2))
            sources.append((critic(reference.critics, actions), density))
        penalty, log_penalty, td = [], [], []
        for i in range(n):
            penalty_i = log_penalty_i = td_i = 0.0
            for h in range(2):
                for b in range(size):
                    reward = float(batch["rewards"][i * size + b])
                    done = float(batch["terminals"][i * size + b])
                    y = reward + 0.95 * (1 - done) * min(float(q_next[i, g, b]) for g in range(2))
                    td_i += (float(q_data[i, h, b]) - y) ** 2 / size
                    logits = [
                        float(q[i, h, j * size + b]) - sub[i][j * size + b]
                        for q, sub in sources
                        for j in range(samples)
                    ]
                    penalty_i += (math.log(sum(math.exp(x) for x in logits)) - float(q_data[i, h, b])) / size
                    wrong = [  # the log density instead of the density for the policy samples
                        float(q[i, h, j * size + b])
                        - (sub[i][j * size + b] if k == 0 else math.log(sub[i][j * size + b]))
                        for k, (q, sub) in enumerate(sources)
                        for j in range(samples)
                    ]
                    log_penalty_i += (math.log(sum(math.exp(x) for x in wrong)) - float(q_data[i, h, b])) / size
            penalty.append(penalty_i)
            log_penalty.append(log_penalty_i)
            td.append(td_i)
    assert math.isclose(float(metrics["penalty"]), sum(penalty) / n, rel_tol=1e-5, abs_tol=1e-5)
    assert abs(sum(log_penalty) - sum(penalty)) / n > 1e-2  # the density, not the log density, is what matches
    assert math.isclose(float(metrics["td_loss"]), sum(td) / n, rel_tol=1e-5, abs_tol=1e-5)
    expected_loss = sum(td) + s.cql_alpha * sum(penalty)
    assert math.isclose(float(metrics["critic_loss"]), expected_loss, rel_tol=1e-5, abs_tol=1e-5)
    assert "actor_loss" in metrics and all(math.isfinite(float(v)) for v in metrics.values())
    for name in ("critics", "actors", "target_critics", "target_actors"):
        before, after = getattr(reference, name).parameters(), getattr(learner, name).parameters()
        assert all(not torch.equal(a, b) for a, b in zip(before, after, strict=True)), name
