"""Distribution shift versus the number of deviating agents k = 0..n (the growth curve of Lemma 1-2)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tabular import (
    DecMDP,
    FactorizedPolicy,
    all_subset_occupancies,
    excess_correlation,
    policy_tv,
    state_occupancy,
)
from tabular._validate import check_memory, joint_actions_text
from tabular.occupancy import subset_memory_parts

from .lemmas import agent_tvs


@dataclass(frozen=True)
class GrowthCurve:
    """Exact shift ``W1(d^(S), d^mu)`` over all subsets, grouped by size ``k = |S|``.

    Every per-k array has shape (n + 1,), index ``k``.

    Attributes
    ----------
    k : ndarray of int
    n_subsets : ndarray of int
        ``binom(n, k)``.
    shift_mean, shift_min, shift_max : ndarray
        Mean, min and max of ``W1(d^(S), d^mu)`` over the subsets of size ``k``.
    bound_mean, bound_max : ndarray
        Mean and max of the Lemma 1/2 bound ``gamma/(1-gamma) (sum_{i in S} TV(pi_i, mu_i) + kappa)``
        over the same subsets (``kappa = 0`` for a factorized ``mu``).
    all_agents_bound : float
        ``gamma/(1-gamma) (sum_{i=1}^n TV(pi_i, mu_i) + kappa)``, the term of Theorems 1-2.
    joint_shift : float
        ``W1(d^pi, d^mu)``: the shift when the full joint policy is replaced (k = n).
    joint_tv_bound : float
        ``gamma/(1-gamma) TV(pi, mu)`` with the TV of the joint policies: the usual joint-action
        bound on ``joint_shift``. By eq. 25 it is never larger than ``all_agents_bound``: the sum of
        per-agent TVs is additive, not tighter (equal when a single agent deviates). Computing it
        builds the joint policies (S * prod A_i numbers, like ``R``).
    kappa : float
    agent_tv : ndarray, shape (n,)
        ``TV(pi_i, mu_i)`` (sup over states) for every agent.
    shifts, subset_bounds : ndarray, shape (2^n,)
        ``W1(d^(S), d^mu)`` and the Lemma 1/2 bound for every subset, indexed by bit mask as in
        ``all_subset_occupancies``.
    """

    k: np.ndarray
    n_subsets: np.ndarray
    shift_mean: np.ndarray
    shift_min: np.ndarray
    shift_max: np.ndarray
    bound_mean: np.ndarray
    bound_max: np.ndarray
    all_agents_bound: float
    joint_shift: float
    joint_tv_bound: float
    kappa: float
    agent_tv: np.ndarray
    shifts: np.ndarray
    subset_bounds: np.ndarray


def subset_membership(n_agents: int) -> np.ndarray:
    """``member[b, i] = 1`` when agent ``i`` is in the subset with bit mask ``b``, shape (2^n, n)."""
    return (np.arange(2**n_agents)[:, None] >> np.arange(n_agents)) & 1


def growth_memory_parts(mdp: DecMDP) -> list[tuple[str, int]]:
    """The arrays (formula, bytes) that :func:`growth_curve` builds on ``mdp``, for its memory check."""
    n, n_states = mdp.n_agents, mdp.n_states
    n_joint = math.prod(mdp.action_sizes)
    # membership (and its shifted temporary), shifts' temporaries, bounds, sizes, the n + 1 group masks
    per_subset = 2 * n * 8 + 2 * n_states * 8 + 4 * 8 + (n + 1)
    return [
        *subset_memory_parts(mdp, solve=True),
        (f"subset table and per-subset results: 2^{n} x {per_subset} bytes", 2**n * per_subset),
        (
            f"joint policies for TV(pi, mu) (pi, mu, their validated copies, |pi - mu|): 6 x {n_states} states x "
            f"{joint_actions_text(mdp.action_sizes, short=True)} joint actions x 8 bytes",
            6 * n_states * n_joint * 8,
        ),
    ]


def growth_curve(mdp: DecMDP, pi: FactorizedPolicy, mu) -> GrowthCurve:
    """Compute the growth curve of the distribution shift with the number of deviating agents.

    Uses :func:`tabular.all_subset_occupancies` (all 2^n mixed policies with shared prefix
    contractions) and compares each ``d^(S)`` with the behavior occupancy ``d^mu``, which is the
    correlated ``mu``'s own occupancy when ``mu`` is a JointPolicy.

    Everything is per subset (``2^n`` rows) or per joint action (``joint_tv_bound``), so the bytes it
    needs are estimated first and checked against ``tabular._validate.MEMORY_LIMIT_BYTES`` (4 GiB
    unless raised): too many agents give a ``ValueError`` with the figure, not an allocation.
    """
    n = mdp.n_agents
    check_memory("pi", f"{n} agents give 2^{n} subsets", growth_memory_parts(mdp))
    occupancies = all_subset_occupancies(mdp, pi, mu)  # [2^n, S]
    d_behavior = state_occupancy(mdp, mu)
    shifts = 0.5 * np.abs(occupancies - d_behavior).sum(axis=1)  # W1 under the 0-1 metric = TV
    tvs = agent_tvs(pi, mu)
    kappa = excess_correlation(mu)
    scale = mdp.gamma / (1.0 - mdp.gamma)
    membership = subset_membership(n)  # [2^n, n]
    bounds = scale * (membership @ tvs + kappa)
    sizes = membership.sum(axis=1)
    groups = [sizes == k for k in range(n + 1)]
    return GrowthCurve(
        k=np.arange(n + 1),
        n_subsets=np.array([g.sum() for g in groups]),
        shift_mean=np.array([shifts[g].mean() for g in groups]),
        shift_min=np.array([shifts[g].min() for g in groups]),
        shift_max=np.array([shifts[g].max() for g in groups]),
        bound_mean=np.array([bounds[g].mean() for g in groups]),
        bound_max=np.array([bounds[g].max() for g in groups]),
        all_agents_bound=scale * (float(tvs.sum()) + kappa),
        joint_shift=float(shifts[-1]),
        joint_tv_bound=scale * policy_tv(pi.joint(), mu.joint()),
        kappa=kappa,
        agent_tv=tvs,
        shifts=shifts,
        subset_bounds=bounds,
    )


def plot_growth_curve(curve: GrowthCurve, path=None, title: str | None = None):
    """Plot shift and bounds against k; save to ``path`` (PNG, written atomically) when given.

    Draws on a bare :class:`matplotlib.figure.Figure`, so it never changes pyplot's backend or
    state; the figure is returned (a notebook displays it).
    """
    import os

    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), layout="tight")
    linear, logarithmic = fig.subplots(1, 2)
    deviating = curve.k >= 1  # k = 0 has zero shift and zero bound: nothing to show on a log axis
    for ax, shown in ((linear, slice(None)), (logarithmic, deviating)):
        ax.fill_between(
            curve.k[shown],
            curve.shift_min[shown],
            curve.shift_max[shown],
            alpha=0.25,
            label="exact shift: range over |S| = k",
        )
        ax.plot(
            curve.k[shown], curve.shift_mean[shown], "o-", label=r"exact shift $W_1(d^{(S)}, d^\mu)$: mean over |S| = k"
        )
        ax.set_xlabel("number of deviating agents k = |S|")
        ax.set_xticks(curve.k[shown])
    linear.set_ylabel("W1 under the 0-1 metric (= TV, unitless)")
    linear.set_ylim(bottom=0.0)
    linear.set_title("exact shift")
    logarithmic.plot(curve.k[deviating], curve.bound_mean[deviating], "s--", label="Lemma bound: mean over |S| = k")
    logarithmic.plot(curve.k[deviating], curve.bound_max[deviating], "^:", label="Lemma bound: max over |S| = k")
    logarithmic.axhline(
        curve.joint_tv_bound, color="grey", ls="-.", label=r"joint-TV bound $\frac{\gamma}{1-\gamma}TV(\pi,\mu)$"
    )
    logarithmic.axhline(1.0, color="black", lw=0.8, label="W1 ceiling (1 under the 0-1 metric)")
    logarithmic.set_yscale("log")
    logarithmic.set_title("exact shift against the bounds (log scale)")
    logarithmic.legend(fontsize=7, loc="center right", framealpha=0.9)
    linear.legend(fontsize=7, loc="upper left")
    fig.suptitle(title or "Distribution shift vs number of deviating agents", fontsize=10)
    if path is None:
        return fig
    path = os.fspath(path)
    stem, suffix = os.path.splitext(path)
    # a sibling temporary file keeps the format (from the suffix) and the default permissions;
    # os.replace then publishes it whole, so a crash never leaves a half-written plot at `path`
    temporary = f"{stem}.{os.getpid()}.tmp{suffix or '.png'}"
    try:
        fig.savefig(temporary, dpi=150)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return fig
