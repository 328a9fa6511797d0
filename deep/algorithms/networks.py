"""Networks shared by the deep algorithms: a batch of independent MLPs evaluated in one ``bmm``.

Per-agent actors, twin critics and Q-ensembles are all "M independent MLPs": storing their
weights as ``[M, in, out]`` tensors runs every member in one batched matmul instead of a Python
loop over modules (notes: baselines.md, "Useful performance facts").

CFCQL's networks (``utils/networks.py`` of thu-rllab/CFCQL) put a ``BatchNorm1d`` on their input:
:class:`InputNorm` is that layer for batched networks, optional in :class:`Actors` and
:class:`Critics` (``input_norm``; the online MATD3 of :mod:`deep.generation.matd3` runs without it).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch
from torch import nn
from torch.autograd.function import once_differentiable

CHUNK_FLOATS = 1 << 17
"""Elements of one hidden activation block ``[M, rows, hidden]`` of :class:`ChunkedCandidateMLP`: 512 KiB
of float32. Smaller blocks would fit the development machine's L2 cache (512 KiB per core) but were
slower: one CN penalty forward and backward (2 critics, 30 candidates, 1024 states) took 97.7, 66.6,
50.2, 43.6 and 39.4 ms with blocks of 64, 128, 256, 512 and 1024 rows (idle core): per-operation
overhead, not cache misses, sets the cost at these sizes."""
MIN_BLOCK_ROWS = 256
"""Fewest rows of a block (unless the batch is smaller): thinner blocks made HalfCheetah's hidden-256
matmuls slower than whole tensors."""


def block_rows(members: int, hidden: int) -> int:
    """Rows of one block of :class:`ChunkedCandidateMLP`."""
    return max(CHUNK_FLOATS // (members * hidden), MIN_BLOCK_ROWS)


class BatchedLinear(nn.Module):
    """``M`` independent linear layers: ``y[m] = x[m] @ W[m] + b[m]``.

    Parameters are initialized like ``nn.Linear`` member by member: uniform on
    ``[-1/sqrt(fan_in), 1/sqrt(fan_in)]`` with ``fan_in = in_features`` (the ``[in, out]`` layout
    would otherwise make ``kaiming_uniform_`` read the fan-in from the wrong axis). ``final_scale``
    draws the weight (not the bias) uniformly on ``[-final_scale, final_scale]`` instead.
    """

    def __init__(self, n_members: int, in_features: int, out_features: int, final_scale: float | None = None):
        super().__init__()
        bound = 1.0 / math.sqrt(in_features)
        weight = final_scale if final_scale is not None else bound
        self.weight = nn.Parameter(torch.empty(n_members, in_features, out_features).uniform_(-weight, weight))
        self.bias = nn.Parameter(torch.empty(n_members, 1, out_features).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x [M, B, in] -> [M, B, out]
        return torch.baddbmm(self.bias, x, self.weight)


class BatchedMLP(nn.Module):
    """``M`` independent MLPs ``in -> hidden -> hidden -> out`` with ReLU, evaluated together.

    ``final_scale`` initializes the last layer's weight uniformly on ``[-final_scale, final_scale]``
    (the CFCQL/OMAR actors use 3e-3 so that initial actions are near zero; their bias keeps
    ``nn.Linear``'s initialization).
    """

    def __init__(self, n_members: int, in_features: int, hidden: int, out_features: int, final_scale=None):
        super().__init__()
        self.layers = nn.ModuleList(
            [
                BatchedLinear(n_members, in_features, hidden),
                BatchedLinear(n_members, hidden, hidden),
                BatchedLinear(n_members, hidden, out_features, final_scale),
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x [M, B, in] -> [M, B, out]
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        return self.layers[-1](x)


def batch_moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and biased variance of each feature over the rows: ``x [G, N, F]`` -> ``[G, 1, F]`` each.

    Two passes (the variance of ``x - mean``): on the penalties' ``[1, 30720, 6]`` candidate actions
    2.5x faster than ``torch.var_mean`` on the CPU (0.54 ms against 1.36 ms), equal to 1e-7.
    """
    mean = x.mean(dim=1, keepdim=True)
    return mean, (x - mean).square().mean(dim=1, keepdim=True)


class InputNorm(nn.Module):
    """``torch.nn.BatchNorm1d`` on the input features of ``G`` batched networks (CFCQL's ``in_fn``).

    ``G = 1`` shares one normalization between all members, for inputs that every member sees
    alike (the critic ensemble, as CFCQL's twin heads share one ``BatchNorm1d``); ``G = M`` gives
    each member its own, on its own input (one per agent's actor). As ``BatchNorm1d`` with its
    defaults: in training, each call normalizes with its own batch statistics (the mean and biased
    variance of each feature over the call's rows) and folds them into the running statistics
    (momentum 0.1, the variance unbiased); in evaluation the running statistics normalize; eps
    1e-5; affine weight 1 and bias 0 at the start. ``num_batches_tracked`` is not kept (with a
    fixed momentum ``BatchNorm1d`` does not use it).
    """

    def __init__(self, n_groups: int, features: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.weight = nn.Parameter(torch.ones(n_groups, 1, features))
        self.bias = nn.Parameter(torch.zeros(n_groups, 1, features))
        self.register_buffer("running_mean", torch.zeros(n_groups, 1, features))
        self.register_buffer("running_var", torch.ones(n_groups, 1, features))

    def affine(
        self, moments: Callable[[], tuple[torch.Tensor, torch.Tensor]], count: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, scale) [G, 1, F]`` of this call: its inputs normalize to ``(x - mean) * scale + bias``.

        ``moments()`` gives the batch mean and biased variance of the call's ``count`` rows; it is
        only evaluated in training, where the running statistics absorb it.
        """
        if not self.training:
            return self.running_mean, self.weight * torch.rsqrt(self.running_var + self.eps)
        if count < 2:
            raise ValueError(f"input: batch statistics need more than 1 row per feature in training, got {count}")
        mean, var = moments()
        with torch.no_grad():
            self.running_mean.mul_(1.0 - self.momentum).add_(self.momentum * mean)
            self.running_var.mul_(1.0 - self.momentum).add_((self.momentum * count / (count - 1)) * var)
        return mean, self.weight * torch.rsqrt(var + self.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x [G, N, F] -> [G, N, F]
        mean, scale = self.affine(lambda: batch_moments(x), x.shape[1])
        return (x - mean) * scale + self.bias


class Actors(nn.Module):
    """One deterministic actor per agent: ``a_i = tanh(f_i(o_i))``, all agents in one pass.

    ``obs`` is ``[B, n, obs_dim]`` (padded), the result ``[B, n, act_dim]`` in ``[-1, 1]``. With
    ``input_norm`` each agent's observation goes through its own :class:`InputNorm` first (CFCQL:
    one ``MLPNetwork``, with its ``BatchNorm1d``, per agent).
    """

    def __init__(self, n_agents: int, obs_dim: int, act_dim: int, hidden: int, input_norm: bool = False):
        super().__init__()
        self.norm = InputNorm(n_agents, obs_dim) if input_norm else None
        self.net = BatchedMLP(n_agents, obs_dim, hidden, act_dim, final_scale=3e-3)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.transpose(0, 1)  # [n, B, obs]
        if self.norm is not None:
            x = self.norm(x)
        return torch.tanh(self.net(x)).transpose(0, 1)  # [B, n, act]


def candidate_mlp(actions, base, w1, w2, b2, w3, b3) -> torch.Tensor:
    """The critic MLP on ``K`` candidates per state with its first layer split (:meth:`Critics.candidates`).

    ``actions [K, B, A]``, ``base [M, B, h]`` (the state's share of the first layer, bias included),
    ``w1 [M, A, h]`` (the actions' share); the other layers' weights ``[M, in, out]`` and biases
    ``[M, 1, out]``. Returns ``Q [M, K, B]``.
    """
    n_candidates, batch, act = actions.shape
    members, _, hidden = base.shape
    from_actions = torch.matmul(actions.reshape(1, n_candidates * batch, act), w1)  # [M, K*B, h]
    x = torch.relu(from_actions.view(members, n_candidates, batch, hidden) + base.unsqueeze(1))
    x = torch.relu(torch.baddbmm(b2, x.view(members, n_candidates * batch, hidden), w2))
    return torch.baddbmm(b3, x, w3).view(members, n_candidates, batch)


def batch_blocks(batch: int, rows: int) -> list[slice]:
    """The fewest consecutive slices of ``range(batch)`` with at most ``rows`` (at least 1) elements, sizes within 1."""
    pieces = -(-batch // max(rows, 1))
    bounds = [batch * j // pieces for j in range(pieces + 1)]
    return [slice(start, stop) for start, stop in itertools.pairwise(bounds)]


class ChunkedCandidateMLP(torch.autograd.Function):
    """:func:`candidate_mlp` block by block, forward and backward (the penalties' CPU fast path).

    The penalties evaluate ``n x samples x B`` candidates per member; as whole tensors their hidden
    activations (80 MB each on CN with 10 critics) stream through main memory in every element-wise
    operation of the forward and the backward, which made ReLU and its backward a third of the time.
    Here one block is one candidate ``k`` for a slice of the states, ``[M, rows, hidden]`` with
    :func:`block_rows` rows, and all its layers run while it is in cache;
    the slices are the outer loop, so a slice's state share (``base``) and its gradient stay in
    cache over the ``K`` candidates. The forward keeps each block's second hidden layer for the
    backward, which recomputes the (6-input, cheap) first one. The actions are data: no gradient
    flows to them (the actor loss uses :func:`candidate_mlp`).
    """

    @staticmethod
    def forward(ctx, actions, base, w1, w2, b2, w3, b3):
        n_candidates, batch, _ = actions.shape
        members, _, hidden = base.shape
        q = base.new_empty(members, n_candidates, batch)
        second = []
        for bs in batch_blocks(batch, block_rows(members, hidden)):
            for k in range(n_candidates):
                block = actions[k, bs].expand(members, -1, -1)  # [M, rows, A]
                x = torch.baddbmm(base[:, bs], block, w1).relu_()
                x = torch.baddbmm(b2, x, w2).relu_()  # [M, rows, h]
                second.append(x)
                q[:, k, bs] = torch.bmm(x, w3).squeeze(-1)
        ctx.save_for_backward(actions, base, w1, w2, w3, *second)
        return q.add_(b3)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_q):
        actions, base, w1, w2, w3, *second = ctx.saved_tensors
        n_candidates, batch, _ = actions.shape
        members, _, hidden = base.shape
        g_base = torch.empty_like(base)
        g_w1, g_w2 = torch.zeros_like(w1), torch.zeros_like(w2)
        g_b2, g_w3 = base.new_zeros(members, 1, hidden), base.new_zeros(members, 1, hidden)
        w2_t, w3_t = w2.transpose(1, 2), w3.transpose(1, 2)
        relu_backward = torch.ops.aten.threshold_backward  # upstream gradient where the output > 0, else 0
        blocks = iter(second)
        for bs in batch_blocks(batch, block_rows(members, hidden)):
            g_slice = None
            for k in range(n_candidates):
                block = actions[k, bs].expand(members, -1, -1)
                h1 = torch.baddbmm(base[:, bs], block, w1).relu_()  # recomputed, [M, rows, h]
                h2 = next(blocks)
                g = grad_q[:, k, bs].unsqueeze(-1)  # [M, rows, 1]
                g_w3 += (h2 * g).sum(dim=1, keepdim=True)
                g2 = relu_backward(g.expand_as(h2), h2, 0.0).mul_(w3_t)  # (g w3^T) where h2 > 0
                g_w2.baddbmm_(h1.transpose(1, 2), g2)
                g_b2 += g2.sum(dim=1, keepdim=True)
                g1 = relu_backward(torch.bmm(g2, w2_t), h1, 0.0)
                g_w1.baddbmm_(block.transpose(1, 2), g1)
                g_slice = g1 if g_slice is None else g_slice.add_(g1)
            g_base[:, bs] = g_slice
        g_b3 = grad_q.sum(dim=(1, 2)).view(members, 1, 1)
        return None, g_base, g_w1, g_w2, g_b2, g_w3.transpose(1, 2), g_b3


def candidate_moments(state: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch moments ``[1, 1, S + A]`` of the ``K * B`` rows ``[state_b, actions_kb]``.

    ``state [B, S]``, ``actions [K, B, A]``; each state appears ``K`` times, so its features'
    mean and biased variance are those of the ``B`` states.
    """
    mean_state, var_state = batch_moments(state.unsqueeze(0))
    mean_actions, var_actions = batch_moments(actions.reshape(1, -1, actions.shape[-1]))
    return torch.cat([mean_state, mean_actions], dim=-1), torch.cat([var_state, var_actions], dim=-1)


class Critics(nn.Module):
    """``M`` centralized critics ``Q_m(state, a_1..a_n)`` (M = 2 for twin critics, more for ensembles).

    ``state`` is ``[B, state_dim]``, ``actions`` ``[B, n, act_dim]``; the result is ``[M, B]``. With
    ``input_norm`` the joint input ``[state, actions]`` goes through one :class:`InputNorm` shared
    by all members (CFCQL's ``DoubleMLPNetwork``: one ``BatchNorm1d``, then two heads).
    """

    def __init__(
        self, n_members: int, state_dim: int, n_agents: int, act_dim: int, hidden: int, input_norm: bool = False
    ):
        super().__init__()
        self.n_members = n_members
        self.norm = InputNorm(1, state_dim + n_agents * act_dim) if input_norm else None
        self.net = BatchedMLP(n_members, state_dim + n_agents * act_dim, hidden, 1)

    def forward(self, state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        joint = torch.cat([state, actions.flatten(1)], dim=-1).unsqueeze(0)  # [1, B, S + n*act]
        if self.norm is not None:
            joint = self.norm(joint)
        return self.net(joint.expand(self.n_members, -1, -1)).squeeze(-1)  # [M, B]

    def candidates(
        self, state: torch.Tensor, actions: torch.Tensor, members: slice | None = None, chunked: bool = False
    ) -> torch.Tensor:
        """Q of ``K`` candidate joint actions per state: ``state [B, state_dim]``, ``actions [K, B, n, act_dim]``.

        Returns ``[M, K, B]`` (``M`` = the members selected by ``members``, all by default), equal to
        ``forward`` on the state repeated ``K`` times up to rounding (one call: the input
        normalization's batch statistics are those of the ``K * B`` rows). The first layer is linear
        in ``[state, actions]``, so the state's share ``state @ W_s + b`` is computed once per state
        and broadcast over the ``K`` candidates instead of ``K`` times: the partial backups evaluate
        ``n`` candidates and the conservative penalties ``n * samples`` per state, where the state
        (54 inputs on CN) dominates the joint action (6 inputs). The normalization of the actions is
        folded into their first-layer weights. ``chunked`` runs :class:`ChunkedCandidateMLP` (eager
        CPU fast path; ``actions`` must not need a gradient).
        """
        members = members if members is not None else slice(None)
        actions = actions.flatten(2)  # [K, B, A]
        first, second, third = self.net.layers
        weight, bias = first.weight[members], first.bias[members]  # [M, S + A, h], [M, 1, h]
        state_dim = state.shape[-1]
        w_state, w_actions = weight[:, :state_dim], weight[:, state_dim:]
        if self.norm is not None:
            rows = actions.shape[0] * actions.shape[1]
            mean, scale = self.norm.affine(lambda: candidate_moments(state, actions), rows)  # [1, 1, S + A]
            beta = self.norm.bias
            state = (state - mean[0, :, :state_dim]) * scale[0, :, :state_dim] + beta[0, :, :state_dim]
            # (a - mean) * scale + beta = a * scale + shift: the scale goes into W_a, the shift into b
            shift = beta[..., state_dim:] - mean[..., state_dim:] * scale[..., state_dim:]  # [1, 1, A]
            bias = bias + torch.matmul(shift, w_actions)
            w_actions = scale[..., state_dim:].transpose(1, 2) * w_actions  # [M, A, h]
        base = torch.baddbmm(bias, state.expand(weight.shape[0], *state.shape), w_state)  # [M, B, h]
        params = (w_actions, second.weight[members], second.bias[members], third.weight[members], third.bias[members])
        if chunked:
            if actions.requires_grad:
                raise ValueError("actions: the chunked candidates take no gradient to the actions")
            return ChunkedCandidateMLP.apply(actions, base, *params)
        return candidate_mlp(actions, base, *params)  # [M, K, B]


class AgentCritics(nn.Module):
    """``H`` critics per agent, each on the agent's own input: ``Q_ih(x_i)``, e.g. ``x_i = [o_i, a_i]``.

    The decentralized critics of OMAR, MA-TD3+BC and IQL (``DoubleMLPNetwork`` per agent in OMAR's
    code: one ``BatchNorm1d`` on the input, then ``H = 2`` heads). ``x`` is ``[n, N, in]`` (agent-major,
    each agent its own rows), the result ``[n, H, N]``. With ``input_norm`` each agent's input goes
    through its own :class:`InputNorm`, shared by that agent's heads. The members of the batched MLP
    are agent-major (member ``i * H + h``), so that :func:`deep.algorithms.learner.clip_grad_norm_per_member`
    with ``n_groups = n`` clips each agent's critic by its own norm.
    """

    def __init__(self, n_agents: int, n_heads: int, in_features: int, hidden: int, input_norm: bool = False):
        super().__init__()
        self.n_agents, self.n_heads = n_agents, n_heads
        self.norm = InputNorm(n_agents, in_features) if input_norm else None
        self.net = BatchedMLP(n_agents * n_heads, in_features, hidden, 1)

    def forward(self, x: torch.Tensor, first_only: bool = False) -> torch.Tensor:
        """``[n, H, N]``; with ``first_only`` the first head alone, ``[n, 1, N]`` (OMAR's ``critic.Q1``: the
        others are not computed; the input normalization runs as in a full call)."""
        if self.norm is not None:
            x = self.norm(x)  # [n, N, in]
        n, rows, features = x.shape
        if first_only:
            *hidden, last = self.net.layers
            for layer in hidden:  # members i * H: each agent's first head
                x = torch.relu(torch.baddbmm(layer.bias[:: self.n_heads], x, layer.weight[:: self.n_heads]))
            return torch.baddbmm(last.bias[:: self.n_heads], x, last.weight[:: self.n_heads]).view(n, 1, rows)
        x = x.unsqueeze(1).expand(n, self.n_heads, rows, features).reshape(n * self.n_heads, rows, features)
        return self.net(x).view(n, self.n_heads, rows)


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda``; naming ``device`` when CUDA is missing."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: cuda requested but torch.cuda.is_available() is False")
    return torch.device(name)


def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging ``target <- (1 - tau) target + tau source`` (Algorithm 1, lines 17 and 21).

    Parameters only: an :class:`InputNorm`'s running statistics stay the target's own, updated by
    its own forward passes (CFCQL's ``soft_update`` also averages ``parameters()`` only).
    """
    with torch.no_grad():
        for t, s in zip(target.parameters(), source.parameters(), strict=True):
            t.lerp_(s, tau)
