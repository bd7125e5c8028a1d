"""Engines: what computes the iterations of :func:`deepbasis.fit` and
:func:`deepbasis.fit_ensemble`.

Each implements :class:`deepbasis.train.loop.Engine` for E members (E = 1 for ``fit``):

- :mod:`~deepbasis.train.engines.stacked`: :class:`~deepbasis.MLP` regressions, the fast path,
  each member bit for bit what a separate run gives;
- :mod:`~deepbasis.train.engines.single`: any other basis network or problem, one model;
- :mod:`~deepbasis.train.engines.vmap`: any other basis network or problem, E members through
  ``torch.func.vmap``.
"""
