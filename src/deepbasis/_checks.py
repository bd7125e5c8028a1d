"""Input validation and randomness helpers shared by every public entry point.

Errors name the offending value and say how to fix it (STYLE.md: check inputs once, at the
public entry point).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

GeneratorLike = torch.Generator | int | None


def as_generator(generator: GeneratorLike) -> torch.Generator:
    """Turn ``None | int | torch.Generator`` into a CPU ``torch.Generator``.

    ``None`` gives a generator seeded from the global torch RNG (so an unseeded call is still
    random, but a seeded one never touches global state). Like scikit-learn's
    ``check_random_state``, this is the one place that decides what a seed means.
    """
    if isinstance(generator, torch.Generator):
        return generator
    if generator is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
        return torch.Generator().manual_seed(seed)
    if isinstance(generator, bool) or not isinstance(generator, int):
        raise TypeError(
            f"generator must be None, an int seed or a torch.Generator, got {generator!r} "
            f"({type(generator).__name__})"
        )
    if generator < 0:
        raise ValueError(f"seed must be non-negative, got {generator}")
    return torch.Generator().manual_seed(generator)


def check_choice(name: str, value: str, choices: Iterable[str]) -> str:
    """Raise a ``ValueError`` that lists the valid names when ``value`` is not one of them."""
    choices = list(choices)
    if value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise ValueError(f"unknown {name} {value!r}; valid choices are {valid}")
    return value


def check_finite(name: str, tensor: torch.Tensor) -> torch.Tensor:
    """Raise if ``tensor`` has NaN or inf, naming the first bad row."""
    if tensor.is_floating_point() or tensor.is_complex():
        bad = ~torch.isfinite(tensor)
        if bad.any():
            first = torch.nonzero(bad)[0].tolist()
            count = int(bad.sum())
            raise ValueError(
                f"{name} contains {count} non-finite value(s) (NaN or inf); the first is at "
                f"index {tuple(first)}. Remove or impute those rows before fitting."
            )
    return tensor


def as_2d_inputs(name: str, x: torch.Tensor, features: int) -> torch.Tensor:
    """Check that ``x`` is a finite ``(N, features)`` tensor."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 2 or x.shape[1] != features:
        hint = ""
        if x.ndim == 1 and features == 1:
            hint = " For 1-D inputs pass x[:, None] (shape (N, 1))."
        raise ValueError(
            f"{name} must have shape (N, {features}), got {tuple(x.shape)}.{hint}"
        )
    return check_finite(name, x)


def as_2d_targets(name: str, y: torch.Tensor, n: int, outputs: int | None = None) -> torch.Tensor:
    """Return ``y`` as ``(N, m)``; a 1-D ``(N,)`` target is accepted as one output."""
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(y).__name__}")
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[0] != n:
        raise ValueError(
            f"{name} must have shape (N,) or (N, m) with N = {n} rows to match the inputs, "
            f"got {tuple(y.shape)}"
        )
    if outputs is not None and y.shape[1] != outputs:
        raise ValueError(
            f"{name} has {y.shape[1]} column(s) but the model has {outputs} output(s); build the "
            f"model with out_features={y.shape[1]}"
        )
    return check_finite(name, y)
