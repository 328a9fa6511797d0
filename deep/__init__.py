"""The deep half of spacql: benchmark environments, behavior policies, offline datasets, and (next) SPaCQL.

- :mod:`deep.envs`: the four tasks (cn, pp, world, halfcheetah) behind one batched team adapter;
- :mod:`deep.networks`, :mod:`deep.matd3`: batched MLPs and resumable online MATD3;
- :mod:`deep.behavior`, :mod:`deep.evaluation`: behavior policies and reference returns;
- :mod:`deep.datasets`, ``deep/collect.py``: the offline dataset format, its builder and the OMAR importer.

SPaCQL and its baselines (paper, Algorithm 1 and eq. 5-7) with the ``deep/train.py`` entry point come next.
"""
