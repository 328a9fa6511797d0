"""Distribution shift versus the number of deviating agents, next to the Lemma 1 bound.

    python -m bounds.demo --agents 8 --out shift_vs_k.png

Draws a random Dec-MDP with a factorized behavior policy ``mu``, moves every agent's policy to
``TV(pi_i, mu_i) = --distance`` in every state, computes the exact ``W1(d^(S), d^mu)`` for all
``2^n`` subsets ``S`` and prints, for each ``k = |S|``, the mean and range of the shift next to the
Lemma 1 bound ``gamma/(1-gamma) * k * distance``; the plot is saved to ``--out``.
"""

from __future__ import annotations

import argparse
import time

import tabular

from .growth import GrowthCurve, growth_curve, plot_growth_curve


def format_table(curve: GrowthCurve) -> str:
    lines = [
        f"{'k':>3} {'subsets':>8} {'W1 mean':>10} {'W1 min':>10} {'W1 max':>10} {'Lemma 1 bound':>14}",
    ]
    for k in curve.k:
        lines.append(
            f"{k:>3} {curve.n_subsets[k]:>8} {curve.shift_mean[k]:>10.6f} {curve.shift_min[k]:>10.6f} "
            f"{curve.shift_max[k]:>10.6f} {curve.bound_mean[k]:>14.6f}"
        )
    lines.append(
        f"full joint replacement: W1(d^pi, d^mu) = {curve.joint_shift:.6f}; "
        f"joint-TV bound gamma/(1-gamma) TV(pi, mu) = {curve.joint_tv_bound:.6f}"
    )
    return "\n".join(lines)


def main(argv=None) -> GrowthCurve:
    parser = argparse.ArgumentParser(
        prog="python -m bounds.demo",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--agents", type=int, default=8, help="number of agents n")
    parser.add_argument("--actions", type=int, default=3, help="actions per agent A_i")
    parser.add_argument("--states", type=int, default=10, help="number of states S")
    parser.add_argument("--gamma", type=float, default=0.9, help="discount factor in [0, 1)")
    parser.add_argument("--distance", type=float, default=0.05, help="TV(pi_i, mu_i) of every agent, in every state")
    parser.add_argument("--seed", type=int, default=0, help="seed of the instance")
    parser.add_argument("--out", default="shift_vs_k.png", help="where to save the plot (PNG)")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    try:
        mdp = tabular.random_decmdp(args.states, (args.actions,) * args.agents, args.gamma, seed=args.seed)
        mu = tabular.random_factorized_policy(mdp, seed=args.seed + 1)
        pi = tabular.perturbed_policy(mu, args.distance, seed=args.seed + 2)
        curve = growth_curve(mdp, pi, mu)
    except ValueError as error:  # the engine's input checks: a user error, one line and exit 2
        parser.error(str(error))
    elapsed = time.perf_counter() - start
    print(f"{mdp}, factorized mu, TV(pi_i, mu_i) = {args.distance} for every agent")
    print(format_table(curve))
    plot_growth_curve(
        curve,
        args.out,
        title=(
            f"n={args.agents}, A_i={args.actions}, S={args.states}, gamma={args.gamma}, TV(pi_i, mu_i)={args.distance}"
        ),
    )
    print(f"all {2**args.agents} subset occupancies in {elapsed:.2f} s (numba compile included); plot: {args.out}")
    return curve


if __name__ == "__main__":
    main()
