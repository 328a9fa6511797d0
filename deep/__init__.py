"""SPaCQL and its baselines in PyTorch (paper, Algorithm 1 and eq. 5-7).

Environments, datasets, the algorithms and the ``deep/train.py`` entry point land here with the
deep-RL issues; the tabular engine (:mod:`tabular`) and the bounds (:mod:`bounds`) do not depend
on this package.
"""
