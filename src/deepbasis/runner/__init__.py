"""Experiments as data, knowing no paper: the contract (:class:`Experiment`, :class:`Cell`,
:class:`Claim`, :class:`Report`), the registry, the runner, the SQLite store, the executors (local
pool, Ray), status and reports.

- :mod:`.spec` — the contract an experiment module fulfils;
- :mod:`.registry` — finds ``deepbasis/experiments/<paper>/<name>.py`` → id ``<paper>.<name>``;
- :mod:`.runner` — :func:`~.runner.run_experiment`: plan, execute, store, report;
- :mod:`.store` — the resumable SQLite store of records;
- :mod:`.executors` — where cells run (in process, a local process pool, Ray);
- :mod:`.reporting` — status of results folders and the combined HTML report.
"""

from __future__ import annotations

from .registry import get_experiment, registry
from .spec import PROFILES, Cell, Claim, Experiment, Report

__all__ = ["PROFILES", "Cell", "Claim", "Experiment", "Report", "get_experiment", "registry"]
