"""Self-contained problem instances for the proof audit: random draws and JSON files.

An instance bundles everything a claim may need: a Dec-MDP, a behavior policy ``mu``
(factorized or correlated), learned per-agent policies ``pi``, a subset ``S`` of deviating
agents, a learned table ``q_hat`` and SPaCQL weights ``w_k(s)``. Counterexamples are stored
as JSON (plain lists of numbers) so that they are readable and load without pickle.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import tabular
from tabular import DecMDP, FactorizedPolicy, JointPolicy

COUNTEREXAMPLE_DIR = Path(__file__).resolve().parent / "counterexamples"


@dataclass(frozen=True)
class Instance:
    """One audit instance. ``weights`` has shape (S, n): ``weights[s, k-1] = w_k(s)``."""

    mdp: DecMDP
    mu: FactorizedPolicy | JointPolicy
    pi: FactorizedPolicy
    subset: tuple[int, ...]
    q_hat: np.ndarray
    weights: np.ndarray

    def to_json(self) -> dict:
        mu = (
            {"factors": [f.tolist() for f in self.mu.factors]}
            if isinstance(self.mu, FactorizedPolicy)
            else {"joint": self.mu.probs.tolist()}
        )
        return {
            "P": self.mdp.P.tolist(),
            "R": self.mdp.R.tolist(),
            "d0": self.mdp.d0.tolist(),
            "gamma": self.mdp.gamma,
            "mu": mu,
            "pi": [f.tolist() for f in self.pi.factors],
            "subset": list(self.subset),
            "q_hat": self.q_hat.tolist(),
            "weights": self.weights.tolist(),
        }

    @classmethod
    def from_json(cls, data: dict) -> Instance:
        mdp = DecMDP(data["P"], data["R"], data["d0"], data["gamma"])
        mu_data = data["mu"]
        mu = FactorizedPolicy(mu_data["factors"]) if "factors" in mu_data else JointPolicy(mu_data["joint"])
        return cls(
            mdp=mdp,
            mu=mu,
            pi=FactorizedPolicy(data["pi"]),
            subset=tuple(data["subset"]),
            q_hat=np.asarray(data["q_hat"], dtype=float),
            weights=np.asarray(data["weights"], dtype=float),
        )


class InstanceFileError(ValueError):
    """A stored instance (counterexample, worst instance) that cannot be read."""


def save_instance(instance: Instance, path, note: str = "") -> None:
    """Write ``instance`` (and a human note: which claim it breaks and by how much) as JSON, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps({"note": note, "instance": instance.to_json()}, indent=1) + "\n")
    os.replace(temporary, path)


def load_instance(path) -> Instance:
    """Read an instance written by :func:`save_instance`; a missing file gets a clear error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no counterexample file at {path}")
    try:
        return Instance.from_json(json.loads(path.read_text())["instance"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as error:
        reason = f"missing key {error}" if isinstance(error, KeyError) else str(error).splitlines()[0]
        raise InstanceFileError(f"{path}: damaged instance file ({reason}); restore it with git checkout") from None


def random_instance(rng: np.random.Generator) -> Instance:
    """Draw a small instance, near-degenerate cases included (used by the audit's search).

    1-5 states, 1-4 agents, 1-3 actions each; gamma in {0, U(0, 0.99), 0.9, 0.99}; sparse or
    deterministic transitions; factorized or correlated behavior; learned policies at chosen TVs or
    deterministic; ``q_hat`` = ``Q*`` plus noise, a random table in the value range, or ``Q^pi``.
    """
    n_states = int(rng.integers(1, 6))
    action_sizes = tuple(int(a) for a in rng.integers(1, 4, size=int(rng.integers(1, 5))))
    gamma = float(rng.choice([0.0, rng.uniform(0.0, 0.99), 0.9, 0.99]))
    seed = int(rng.integers(2**32))
    mdp = tabular.random_decmdp(
        n_states,
        action_sizes,
        gamma,
        seed,
        concentration=float(rng.choice([0.05, 0.3, 1.0])),
        n_absorbing=int(rng.integers(0, n_states + 1)),
        deterministic=bool(rng.random() < 0.3),
    )
    if rng.random() < 0.5:
        mu = tabular.random_factorized_policy(mdp, seed + 1, concentration=float(rng.choice([0.1, 1.0])))
    else:
        mu = tabular.random_correlated_policy(mdp, seed + 1, correlation=float(rng.uniform()))
    if rng.random() < 0.3:
        pi = tabular.random_factorized_policy(mdp, seed + 2, deterministic=True)
    else:
        reachable = np.array([max(0.0, float((1.0 - m.min(axis=1)).min())) for m in mu.marginals()])
        pi = tabular.perturbed_policy(mu, reachable * rng.uniform(size=len(reachable)), seed + 2)
    n = mdp.n_agents
    subset = tuple(int(i) for i in np.flatnonzero(rng.random(n) < 0.5))
    v_max = 1.0 / (1.0 - gamma)
    kind = rng.integers(3)
    if kind == 0:
        q_hat = np.clip(tabular.q_optimal(mdp).q + rng.normal(scale=0.1 * v_max, size=mdp.R.shape), -v_max, v_max)
    elif kind == 1:
        q_hat = rng.uniform(-v_max, v_max, size=mdp.R.shape)
    else:
        q_hat = tabular.q_policy(mdp, pi)
    weights = rng.dirichlet(np.full(n, float(rng.choice([0.1, 1.0]))), size=n_states)
    return Instance(mdp, mu, pi, subset, q_hat, weights)
