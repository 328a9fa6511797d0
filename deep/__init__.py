"""The deep half of spacql: the benchmark, its datasets, SPaCQL and its baselines, and the experiments.

The folders are layers; every import points down:

1. :mod:`deep.storage` (the offline dataset format and its importers; atomic files) and
   :mod:`deep.envs` (the original MPE scenarios and HalfCheetah behind one batched team adapter);
2. :mod:`deep.algorithms`: batched networks, Bellman targets, penalties, the learners (one file per
   method, registered in :mod:`deep.algorithms.methods`) and the evaluation of a team;
3. :mod:`deep.generation`: MATD3 behavior training, the fixed opponents, the shipped behavior policies;
4. the commands at the top: ``deep/train.py`` (one run), ``deep/collect.py`` (the datasets),
   :mod:`deep.sweep` (a grid, locally or on Ray), :mod:`deep.report` (tables and figures) and
   :mod:`deep.settings` (the validation of their settings).
"""
