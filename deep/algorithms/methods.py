"""The registry of offline methods: name -> its settings, its learner and its table of defaults.

:data:`METHODS` is what ``deep/train.py --algo``, the settings checks, the sweep's presets and the
tests enumerate; a new method joins by adding one entry (its own file gives the three pieces).

=================  =====================================  ==========================================
name               learner                                file
=================  =====================================  ==========================================
``spacql``, ...    the value-regularized family (SPaCQL,  :mod:`deep.algorithms.offline` (targets, penalties)
                   ICQL-QS, CFCQL, MACQL, ablations)
``omar``           decentralized, actor rectification     :mod:`deep.algorithms.omar`
``matd3-bc``       decentralized TD3+BC                   :mod:`deep.algorithms.matd3_bc`
``iql``            decentralized implicit Q-learning      :mod:`deep.algorithms.iql`
=================  =====================================  ==========================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Literal

from deep.algorithms import iql, matd3_bc, omar
from deep.algorithms.offline import ALGORITHMS, LearnerSettings, OfflineLearner, default_hyperparameters

MethodName = Literal[
    "spacql", "icql-qs", "cfcql", "macql", "spacql-fixed-k", "spacql-uniform", "omar", "matd3-bc", "iql"
]
"""The ``--algo`` choices: the keys of :data:`METHODS` (a test keeps the two equal)."""


@dataclass(frozen=True)
class Method:
    """One offline method: how to resolve its settings and build its learner."""

    settings: type
    """Frozen dataclass of every hyperparameter (its ``algo`` field names the method)."""
    learner: type
    """Built as ``learner(settings, n_agents, obs_dim, act_dims, state_dim, device)`` (deep/algorithms/learner.py)."""
    defaults: Callable[[str, str], dict]
    """``(task, dataset)`` -> every settings field but ``algo`` (and ``k``), plus ``updates``."""
    compilable: bool = True
    """Whether ``--compile`` applies."""
    batchable: bool = True
    """Whether ``--seeds`` trains its runs as one program (deep/algorithms/batched.py)."""


METHODS: dict[str, Method] = {
    **{
        name: Method(LearnerSettings, OfflineLearner, partial(default_hyperparameters, algo=name))
        for name in ALGORITHMS
    },
    "omar": Method(omar.OmarSettings, omar.OmarLearner, omar.defaults),
    "matd3-bc": Method(matd3_bc.TD3BCSettings, matd3_bc.TD3BCLearner, matd3_bc.defaults),
    "iql": Method(iql.IQLSettings, iql.IQLLearner, iql.defaults, compilable=False, batchable=False),
}
