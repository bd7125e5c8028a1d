"""Reproductions: one package per paper, one module per figure or table, named after it.

``experiments/cyr2020/fig5.py`` is the experiment ``cyr2020.fig5``; code that several experiments
of one paper share lives in that paper's private modules (``cyr2020/_pinn.py``). No experiment
module imports another. :mod:`.plotting` holds the figure helpers every paper uses. The
machinery that finds, runs, stores and reports experiments is :mod:`deepbasis.runner`; its
contract and registry are re-exported here.
"""

from __future__ import annotations

from ..runner import PROFILES, Cell, Claim, Experiment, Report, get_experiment, registry

__all__ = ["PROFILES", "Cell", "Claim", "Experiment", "Report", "get_experiment", "registry"]
