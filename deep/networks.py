"""Networks shared by the deep algorithms: a batch of independent MLPs evaluated in one ``bmm``.

Per-agent actors, twin critics and Q-ensembles are all "M independent MLPs": storing their
weights as ``[M, in, out]`` tensors runs every member in one batched matmul instead of a Python
loop over modules (notes: baselines.md, "Useful performance facts").
"""

from __future__ import annotations

import math

import torch
from torch import nn


class BatchedLinear(nn.Module):
    """``M`` independent linear layers: ``y[m] = x[m] @ W[m] + b[m]``.

    Parameters are initialized like ``nn.Linear`` member by member: uniform on
    ``[-1/sqrt(fan_in), 1/sqrt(fan_in)]`` with ``fan_in = in_features`` (the ``[in, out]`` layout
    would otherwise make ``kaiming_uniform_`` read the fan-in from the wrong axis).
    """

    def __init__(self, n_members: int, in_features: int, out_features: int, final_scale: float | None = None):
        super().__init__()
        bound = final_scale if final_scale is not None else 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(n_members, in_features, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_members, 1, out_features).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x [M, B, in] -> [M, B, out]
        return torch.baddbmm(self.bias, x, self.weight)


class BatchedMLP(nn.Module):
    """``M`` independent MLPs ``in -> hidden -> hidden -> out`` with ReLU, evaluated together.

    ``final_scale`` initializes the last layer uniformly on ``[-final_scale, final_scale]`` (the
    CFCQL/OMAR actors use 3e-3 so that initial actions are near zero).
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


class Actors(nn.Module):
    """One deterministic actor per agent: ``a_i = tanh(f_i(o_i))``, all agents in one pass.

    ``obs`` is ``[B, n, obs_dim]`` (padded), the result ``[B, n, act_dim]`` in ``[-1, 1]``.
    """

    def __init__(self, n_agents: int, obs_dim: int, act_dim: int, hidden: int):
        super().__init__()
        self.net = BatchedMLP(n_agents, obs_dim, hidden, act_dim, final_scale=3e-3)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(obs.transpose(0, 1))).transpose(0, 1)  # [B, n, act]


class Critics(nn.Module):
    """``M`` centralized critics ``Q_m(state, a_1..a_n)`` (M = 2 for twin critics, more for ensembles).

    ``state`` is ``[B, state_dim]``, ``actions`` ``[B, n, act_dim]`` (or ``[M, B, n, act_dim]`` to give
    each member its own actions); the result is ``[M, B]``.
    """

    def __init__(self, n_members: int, state_dim: int, n_agents: int, act_dim: int, hidden: int):
        super().__init__()
        self.n_members = n_members
        self.net = BatchedMLP(n_members, state_dim + n_agents * act_dim, hidden, 1)

    def forward(self, state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        if actions.dim() == 3:
            actions = actions.expand(self.n_members, *actions.shape)
        joint = torch.cat([state.expand(self.n_members, *state.shape), actions.flatten(2)], dim=-1)
        return self.net(joint).squeeze(-1)  # [M, B]

    def candidates(self, state: torch.Tensor, actions: torch.Tensor, members: slice | None = None) -> torch.Tensor:
        """Q of ``K`` candidate joint actions per state: ``state [B, state_dim]``, ``actions [K, B, n, act_dim]``.

        Returns ``[M, K, B]`` (``M`` = the members selected by ``members``, all by default), equal to
        ``forward`` on the state repeated ``K`` times up to rounding. The first layer is linear in
        ``[state, actions]``, so the state's share ``state @ W_s + b`` is computed once per state and
        broadcast over the ``K`` candidates instead of ``K`` times: the partial backups evaluate ``n``
        candidates and the conservative penalties ``n * samples`` per state, where the state (54
        inputs on CN) dominates the joint action (6 inputs).
        """
        members = members if members is not None else slice(None)
        first, *rest = self.net.layers
        weight, bias = first.weight[members], first.bias[members]  # [M, S + n*act, h], [M, 1, h]
        n_candidates, batch = actions.shape[:2]
        state_dim, m = state.shape[-1], weight.shape[0]
        from_state = torch.baddbmm(bias, state.expand(m, *state.shape), weight[:, :state_dim])  # [M, B, h]
        from_actions = torch.matmul(actions.reshape(1, n_candidates * batch, -1), weight[:, state_dim:])  # [M, K*B, h]
        x = torch.relu(from_actions.view(m, n_candidates, batch, -1) + from_state.unsqueeze(1))  # [M, K, B, h]
        x = x.view(m, n_candidates * batch, -1)
        for index, layer in enumerate(rest):
            x = torch.baddbmm(layer.bias[members], x, layer.weight[members])
            if index < len(rest) - 1:
                x = torch.relu(x)
        return x.view(m, n_candidates, batch)  # [M, K, B]


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda``; naming ``device`` when CUDA is missing."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: cuda requested but torch.cuda.is_available() is False")
    return torch.device(name)


def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging ``target <- (1 - tau) target + tau source`` (Algorithm 1, lines 17 and 21)."""
    with torch.no_grad():
        for t, s in zip(target.parameters(), source.parameters(), strict=True):
            t.lerp_(s, tau)
