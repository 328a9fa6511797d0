"""The deep half of spacql: benchmark environments, behavior policies, offline datasets, SPaCQL and its baselines.

- :mod:`deep.envs`: the four tasks (cn, pp, world, halfcheetah) behind one batched team adapter;
- :mod:`deep.networks`, :mod:`deep.matd3`: batched MLPs and resumable online MATD3;
- :mod:`deep.behavior`, :mod:`deep.evaluation`: behavior policies and reference returns;
- :mod:`deep.datasets`, ``deep/collect.py``: the offline dataset format, its builder and the OMAR importer;
- :mod:`deep.offline`, :mod:`deep.targets`, :mod:`deep.penalties`: SPaCQL (paper, Algorithm 1, eq. 3-7),
  ICQL-QS (eq. 1-2), CFCQL and MACQL as one offline actor-critic; ``deep/train.py`` trains one of
  them on one dataset, :mod:`deep.sweep` a grid of runs with its results table.
"""
