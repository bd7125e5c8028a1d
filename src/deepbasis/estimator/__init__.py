"""deepbasis for everyday regression: a scikit-learn estimator, safe model files, data files.

- :class:`BasisRegressor` (``regressor.py``): Box-initialized residual ReLU network trained by
  LSGD, with input/target scaling, multi-output ``y`` and batched ensembles.
- :func:`save_model` / :func:`load_model` (``io.py`` / ``regressor.py``): one ``.safetensors``
  file with a JSON description; loading never executes code from the file.
- :func:`read_table` (``data.py``): CSV, Parquet and NPZ, with errors naming row and column.
- ``cli.py``: the ``deepbasis fit`` and ``deepbasis predict`` commands.

The names are imported on first use, so ``import deepbasis`` does not import scikit-learn
(about 0.7 s).
"""

from __future__ import annotations

import importlib

_LAZY = {
    "BasisRegressor": "regressor",
    "save_model": "io",
    "load_model": "regressor",
    "read_description": "io",
    "ModelFileError": "io",
    "PoorFitWarning": "regressor",
    "read_table": "data",
    "write_table": "data",
    "DataError": "data",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
