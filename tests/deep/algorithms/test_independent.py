"""The decentralized learners' shared pieces (deep/algorithms/independent.py) against loops, and their training runs."""

from __future__ import annotations

import json
import math

import pytest
import torch

from deep.algorithms.independent import IndependentLearner, own_rows
from deep.algorithms.learner import action_mask, clip_grad_norm_per_member
from deep.algorithms.methods import METHODS
from deep.algorithms.networks import Actors, AgentCritics
from deep.settings import SettingsError, validate_settings
from deep.train import TrainConfig, train
from tests.deep.algorithms.tiny_methods import make_learner, tiny_settings
from tests.deep.tiny_offline import tiny_train_config, write_tiny_dataset

torch.set_num_threads(1)

NEW_ALGOS = ("omar", "matd3-bc", "iql")
EVAL_COLUMNS = {"return_mean", "return_std", "normalized_score", "normalized_std"}


def random_batch(rows: int, n_agents: int, obs_dim: int, act_dims, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random dataset rows; action entries beyond an agent's ``act_dims[i]`` are zero padding."""
    generator = torch.Generator().manual_seed(seed)
    act_dim = max(act_dims)

    def uniform(*shape):
        return torch.rand(shape, generator=generator) * 2 - 1

    actions = uniform(rows, n_agents, act_dim)
    for i, d in enumerate(act_dims):
        actions[:, i, d:] = 0.0
    return {
        "obs": uniform(rows, n_agents, obs_dim),
        "actions": actions,
        "rewards": uniform(rows),
        "next_obs": uniform(rows, n_agents, obs_dim),
        "terminals": (torch.rand(rows, generator=generator) < 0.3).float(),
    }


def test_own_rows_takes_agent_i_entry_of_block_i():
    """own_rows(x)[i, b] = x[i * B + b, i] for x [n * B, n, F]."""
    generator = torch.Generator().manual_seed(0)
    n, rows = 3, 4
    x = torch.randn(n * rows, n, 5, generator=generator)
    fast = own_rows(x, n)
    assert fast.shape == (n, rows, 5)
    for i in range(n):
        for b in range(rows):
            assert torch.equal(fast[i, b], x[i * rows + b, i])


@pytest.mark.parametrize("independent", [True, False])
def test_agent_batch_gives_each_agent_its_own_rows(independent):
    """Independent: agent i reads block i (its own column, its block's rewards); shared: every agent the same B rows."""
    n, obs_dim, act_dims, size = 3, 7, (2, 3, 2), 16
    learner = make_learner("omar", independent_batches=independent, batch_size=size)
    assert learner.batch_rows == (n * size if independent else size)
    batch = random_batch(learner.batch_rows, n, obs_dim, act_dims)
    data = learner.agent_batch(batch)
    assert data["obs"].shape == data["next_obs"].shape == (n, size, obs_dim)
    assert data["actions"].shape == (n, size, 3)
    assert data["rewards"].shape == data["terminals"].shape == (n, size)
    for i in range(n):
        for b in range(size):
            row = i * size + b if independent else b
            for key in ("obs", "next_obs", "actions"):
                assert torch.equal(data[key][i, b], batch[key][row, i])
            for key in ("rewards", "terminals"):
                assert data[key][i, b] == batch[key][row]


def slow_agent_critics(critics: AgentCritics, x: torch.Tensor) -> torch.Tensor:
    """Agent by agent, head by head: the agent's InputNorm (batch mean, biased var, eps 1e-5), then x @ W + b, ReLU."""
    n, rows, _ = x.shape
    heads = critics.n_heads
    out = torch.empty(n, heads, rows)
    for i in range(n):
        xi = x[i]
        if critics.norm is not None:
            mean = xi.mean(dim=0)
            var = ((xi - mean) ** 2).mean(dim=0)
            xi = (xi - mean) / torch.sqrt(var + 1e-5) * critics.norm.weight[i, 0] + critics.norm.bias[i, 0]
        for h in range(heads):
            member = i * heads + h
            hidden = xi
            for k, layer in enumerate(critics.net.layers):
                hidden = hidden @ layer.weight[member] + layer.bias[member, 0]
                if k < len(critics.net.layers) - 1:
                    hidden = torch.relu(hidden)
            out[i, h] = hidden[:, 0]
    return out


def agent_critics(n_agents, heads, features, input_norm, seed=0) -> AgentCritics:
    torch.manual_seed(seed)
    critics = AgentCritics(n_agents, heads, features, 8, input_norm)
    if input_norm:  # away from the initial 1 / 0 so that the affine part is exercised
        with torch.no_grad():
            critics.norm.weight.uniform_(0.5, 1.5)
            critics.norm.bias.uniform_(-0.5, 0.5)
    return critics


@pytest.mark.parametrize("input_norm", [False, True])
@pytest.mark.parametrize("heads", [1, 2])
def test_agent_critics_equal_each_agents_heads_run_separately(input_norm, heads):
    """AgentCritics(x)[i, h] = MLP_{i*H+h}(InputNorm_i(x_i)) computed agent by agent."""
    critics = agent_critics(3, heads, 6, input_norm)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(3, 10, 6, generator=generator) * torch.tensor([0.5, 1.0, 3.0]).view(3, 1, 1)
    fast = critics(x)
    with torch.no_grad():
        slow = slow_agent_critics(critics, x)
    assert fast.shape == (3, heads, 10)
    torch.testing.assert_close(fast.detach(), slow, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("input_norm", [False, True])
def test_the_first_head_alone_equals_the_first_head_of_the_full_call(input_norm):
    """AgentCritics(x, first_only=True)[i, 0] = MLP_{i*H}(InputNorm_i(x_i)) (OMAR's Q1), computed agent by agent."""
    critics = agent_critics(3, 2, 6, input_norm, seed=4)
    x = torch.randn(3, 10, 6, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        slow = slow_agent_critics(critics, x)[:, :1]
    first = critics(x, first_only=True)
    assert first.shape == (3, 1, 10)
    torch.testing.assert_close(first.detach(), slow, rtol=1e-5, atol=1e-5)


def test_q_values_equal_the_critic_on_the_explicitly_repeated_rows():
    """q_values(obs, actions)[i, h, k, b] = critic on the K*N rows [o_i[b], a_i[k, b]] of one call per agent."""
    learner = make_learner("omar")
    critics = agent_critics(3, 2, 7 + 3, True, seed=2)
    generator = torch.Generator().manual_seed(3)
    n, k, rows = 3, 4, 5
    obs = torch.randn(n, rows, 7, generator=generator)
    actions = torch.rand(n, k, rows, 3, generator=generator) * 2 - 1
    fast = learner.q_values(critics, obs, actions)
    assert fast.shape == (n, 2, k, rows)
    x = torch.stack(
        [
            torch.stack([torch.cat([obs[i, b], actions[i, j, b]]) for j in range(k) for b in range(rows)])
            for i in range(n)
        ]
    )
    with torch.no_grad():
        q = slow_agent_critics(critics, x)
    for i in range(n):
        for h in range(2):
            for j in range(k):
                for b in range(rows):
                    torch.testing.assert_close(fast[i, h, j, b].detach(), q[i, h, j * rows + b], rtol=1e-5, atol=1e-5)


def test_policy_is_each_agents_actor_output_with_the_padding_zero():
    """policy(actors, obs [n, N, obs])[i, b] = Actors(obs as [N, n, obs])[b, i] on agent i's true entries, 0 beyond."""
    learner = make_learner("matd3-bc")
    torch.manual_seed(4)
    actors = Actors(3, 7, 3, 8, True)
    with torch.no_grad():  # large final weights: actions far from 0 in every entry
        actors.net.layers[-1].weight.uniform_(-1, 1)
    generator = torch.Generator().manual_seed(5)
    obs = torch.randn(3, 6, 7, generator=generator)
    fast = learner.policy(actors, obs)
    team = actors(torch.stack([obs[:, b] for b in range(6)]))  # [N, n, act]
    for i, d in enumerate((2, 3, 2)):
        for b in range(6):
            torch.testing.assert_close(fast[i, b, :d], team[b, i, :d])
            assert torch.all(fast[i, b, d:] == 0)
    assert torch.all(team[:, 0, 2].abs() > 0)  # the zeros come from the mask, not the actor


def test_clip_grad_norm_per_agent_group_equals_the_loop():
    """Group i's norm over the agent-major blocks i of every parameter; grads scaled by min(1, c / (norm + 1e-6))."""
    n, heads, max_norm = 3, 2, 0.5
    critics = agent_critics(n, heads, 6, True)
    params = list(critics.parameters())
    generator = torch.Generator().manual_seed(0)
    agent_scale = [0.001, 1.0, 10.0]  # agent 0 below the threshold, the others above
    for p in params:
        grad = torch.randn(p.shape, generator=generator)
        per_agent = p.shape[0] // n
        for i in range(n):
            grad[i * per_agent : (i + 1) * per_agent] *= agent_scale[i]
        p.grad = grad
    before = [p.grad.clone() for p in params]
    expected_norms, expected_grads = [], [g.clone() for g in before]
    for i in range(n):
        total = 0.0
        for g in before:
            per_agent = g.shape[0] // n
            total += float((g[i * per_agent : (i + 1) * per_agent].double() ** 2).sum())
        norm = math.sqrt(total)
        expected_norms.append(norm)
        scale = min(1.0, max_norm / (norm + 1e-6))
        for g, expected in zip(before, expected_grads, strict=True):
            per_agent = g.shape[0] // n
            expected[i * per_agent : (i + 1) * per_agent] = g[i * per_agent : (i + 1) * per_agent] * scale
    assert expected_norms[0] < max_norm < expected_norms[1]
    norms = clip_grad_norm_per_member(params, max_norm, n)
    torch.testing.assert_close(norms, torch.tensor(expected_norms, dtype=torch.float32), rtol=1e-5, atol=1e-7)
    for p, expected in zip(params, expected_grads, strict=True):
        torch.testing.assert_close(p.grad, expected, rtol=1e-5, atol=1e-7)


def agent_gradients(module: torch.nn.Module, n_agents: int) -> list[list[torch.Tensor]]:
    """Each agent's block of every parameter's gradient (the leading axis is agent-major)."""
    return [[p.grad.unflatten(0, (n_agents, -1))[i].clone() for p in module.parameters()] for i in range(n_agents)]


@pytest.mark.parametrize(
    ("algo", "changes"),
    [
        ("omar", {}),
        ("omar", {"penalty_policy_samples": True}),
        ("matd3-bc", {}),
        ("omar", {"independent_batches": False}),
    ],
)
def test_each_agents_gradients_depend_only_on_its_own_rows(algo, changes):
    """Agent i's critic and actor gradients stay the same when every entry but agent i's own is redrawn."""
    n, obs_dim, act_dims = 3, 7, (2, 3, 2)
    learner = make_learner(algo, **changes)
    rows, size = learner.batch_rows, learner.settings.batch_size
    batch = random_batch(rows, n, obs_dim, act_dims, seed=0)
    noise = learner.draw_noise(size, torch.Generator().manual_seed(0))

    def gradients(batch):
        data = learner.agent_batch(batch)
        for module in (learner.critics, learner.actors):
            module.zero_grad(set_to_none=True)
        loss, _ = learner._critic_losses(data, noise)
        loss.backward(inputs=list(learner.critics.parameters()))
        critic = agent_gradients(learner.critics, n)
        loss, _ = learner._actor_loss(data, noise)
        loss.backward(inputs=list(learner.actors.parameters()))
        return critic, agent_gradients(learner.actors, n)

    reference = gradients(batch)
    for i in range(n):
        other = random_batch(rows, n, obs_dim, act_dims, seed=10 + i)
        own = slice(i * size, (i + 1) * size) if learner.settings.independent_batches else slice(None)
        for key in ("obs", "next_obs", "actions"):
            other[key][own, i] = batch[key][own, i]
        for key in ("rewards", "terminals"):
            other[key][own] = batch[key][own]
        perturbed = gradients(other)
        for family, (before, after) in enumerate(zip(reference, perturbed, strict=True)):
            for a, b in zip(before[i], after[i], strict=True):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
            for j in set(range(n)) - {i}:
                change = max(float((a - b).abs().max()) for a, b in zip(before[j], after[j], strict=True))
                assert change > 1e-5, (family, i, j)


# ---- training runs through deep.train --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("data")
    write_tiny_dataset(directory)
    return directory


@pytest.fixture(scope="module")
def whole_run(data_dir, tmp_path_factory):
    """One uninterrupted 200-update run per algorithm, shared by the tests of this module."""
    runs = {}

    def run(algo):
        if algo not in runs:
            out = tmp_path_factory.mktemp(f"whole-{algo}")
            runs[algo] = (out, train(tiny_train_config(data_dir, out, algo=algo, n_critics=None)))
        return runs[algo]

    return run


def without_time(rows: list[dict]) -> list[dict]:
    return [{key: value for key, value in row.items() if key != "wall_time_s"} for row in rows]


def module_tensors(learner) -> list[tuple[str, torch.Tensor]]:
    """Every tensor (parameters and buffers) of every network of ``learner.NETWORKS`` that is a module."""
    modules = [name for name in learner.NETWORKS if isinstance(getattr(learner, name), torch.nn.Module)]
    assert {"actors", "critics", "target_critics"} <= set(modules)
    return [(f"{name}.{key}", t) for name in modules for key, t in getattr(learner, name).state_dict().items()]


@pytest.mark.parametrize("algo", NEW_ALGOS)
def test_200_update_run_writes_the_summary_and_the_learners_metrics(algo, whole_run):
    """summary.json with a final score; rows at 50/100/150/200 with exactly the learner's metric columns, no NaN."""
    out, result = whole_run(algo)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["updates"] == 200 and summary["algo"] == algo and summary["settings"]["algo"] == algo
    assert isinstance(summary["final_normalized_score"], float) and math.isfinite(summary["final_normalized_score"])
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["update"] for row in rows] == [50, 100, 150, 200]
    metrics = {"update", "wall_time_s", *result["learner"].metric_names()}
    for row in rows:
        evaluated = row["update"] % 100 == 0
        assert set(row) == metrics | (EVAL_COLUMNS if evaluated else set())
        assert all(isinstance(value, int | float) and math.isfinite(value) for value in row.values())
    assert rows[-1]["normalized_score"] == summary["final_normalized_score"]


@pytest.mark.parametrize("algo", NEW_ALGOS)
def test_resumed_run_equals_the_uninterrupted_run_bit_for_bit(algo, data_dir, tmp_path, whole_run):
    """Stopped at 100 updates and resumed to 200 = one 200-update run: every network's tensors and the logs."""
    _, whole = whole_run(algo)
    train(tiny_train_config(data_dir, tmp_path, algo=algo, n_critics=None, updates=100))
    resumed = train(tiny_train_config(data_dir, tmp_path, algo=algo, n_critics=None, resume=True))
    assert resumed["learner"].updates == 200
    for (name, a), (other, b) in zip(module_tensors(whole["learner"]), module_tensors(resumed["learner"]), strict=True):
        assert name == other and torch.equal(a, b), name
    assert without_time(whole["log"]) == without_time(resumed["log"])
    assert whole["summary"]["final_normalized_score"] == resumed["summary"]["final_normalized_score"]


@pytest.mark.parametrize("algo", NEW_ALGOS)
def test_same_seed_same_log_other_seed_another(algo, data_dir, tmp_path, whole_run):
    """A fresh 100-update run of the same seed logs the whole run's first rows; seed 2 logs different losses."""
    _, whole = whole_run(algo)
    same = train(tiny_train_config(data_dir, tmp_path / "same", algo=algo, n_critics=None, updates=100))
    other = train(tiny_train_config(data_dir, tmp_path / "other", algo=algo, n_critics=None, updates=100, seed=2))
    assert without_time(same["log"]) == without_time(whole["log"][:2])
    assert all(a["critic_loss"] != b["critic_loss"] for a, b in zip(same["log"], other["log"], strict=True))


# ---- settings ---------------------------------------------------------------------------------------------------


def config(**changes) -> TrainConfig:
    return TrainConfig(**({"task": "cn", "dataset": "random", "device": "cpu"} | changes))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"algo": "omar", "n_critics": 4}, r"^--n-critics: must be unset for --algo omar"),
        ({"algo": "cfcql", "omar_coe": 0.5}, r"^--omar-coe: must be unset for --algo cfcql"),
        ({"algo": "matd3-bc", "expectile": 0.8}, r"^--expectile: must be unset for --algo matd3-bc"),
        ({"algo": "iql", "compile": True}, r"^--compile: must be off for --algo iql"),
        ({"algo": "iql", "policy_delay": 2}, r"^--policy-delay: must be unset for --algo iql"),
        ({"algo": "spacql", "temperature": 2.0}, r"^--temperature: must be unset for --algo spacql"),
        ({"algo": "omar", "omar_coe": 1.5}, r"^--omar-coe: must be a number in \[0, 1\], got 1.5"),
        ({"algo": "iql", "expectile": 1.0}, r"^--expectile: must be a number in \(0, 1\), got 1.0"),
    ],
)
def test_settings_refuse_another_methods_setting_and_out_of_range_values(changes, message):
    """validate_settings names the flag of a setting the method lacks, --compile for iql, and out-of-range values."""
    with pytest.raises(SettingsError, match=message):
        validate_settings(config(**changes))


def test_settings_accept_and_carry_an_omar_cql_alpha():
    """cql_alpha=2.0 with omar resolves to 2.0 (the table's CN random value is 0.5)."""
    settings, updates = validate_settings(config(algo="omar", cql_alpha=2.0))
    assert settings.cql_alpha == 2.0 and updates == 6_000
    assert validate_settings(config(algo="omar"))[0].cql_alpha == 0.5


@pytest.mark.parametrize("algo", NEW_ALGOS)
def test_every_table_gives_exactly_the_methods_settings(algo):
    """defaults(task, dataset) holds every settings field (but algo) and updates, nothing else, for all 16 pairs."""
    from dataclasses import fields

    method = METHODS[algo]
    names = {f.name for f in fields(method.settings)} - {"algo"}
    for task in ("cn", "pp", "world", "halfcheetah"):
        for dataset in ("random", "medium-replay", "medium", "expert"):
            assert set(method.defaults(task, dataset)) == names | {"updates"}
    assert issubclass(method.learner, IndependentLearner)


def test_action_mask_of_unequal_agents():
    """action_mask [n, A] is 1 on agent i's first act_dims[i] entries."""
    mask = action_mask([2, 3, 1], 3)
    for i, d in enumerate((2, 3, 1)):
        assert mask[i].tolist() == [1.0 if a < d else 0.0 for a in range(3)]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("algo", ["omar", "matd3-bc"])
def test_compiled_cuda_updates_match_eager_closely(algo):
    """torch.compile (CUDA graphs) of the TD3-style losses: 6 updates give the eager parameters to 1e-4."""
    finals = []
    for compiled in (False, True):
        torch.manual_seed(0)
        learner = METHODS[algo].learner(tiny_settings(algo), 3, 7, [2, 2, 2], 5, "cuda")
        if compiled:
            learner.compile("reduce-overhead")
        generator = torch.Generator(device="cuda").manual_seed(0)
        for step in range(6):
            rows = random_batch(learner.batch_rows, 3, 7, (2, 2, 2), step)
            batch = {key: value.cuda() for key, value in rows.items()}
            learner.update(batch, generator)
        finals.append([p.detach().clone() for p in learner.critics.parameters()])
    for eager, compiled in zip(*finals, strict=True):
        torch.testing.assert_close(eager, compiled, rtol=1e-4, atol=1e-4)
