"""What the sahs experiments share: the papers' 1-D targets and a plain full-batch trainer.

Conventions (specs/spline-view.md, "Loss surface"): the papers train with gradient descent on a
**summed** squared error and report summed test losses (their Table 3 numbers only make sense
as sums); we train on Σₙ (f(xₙ) − yₙ)² with the papers' learning rates and report both the
sum and the mean.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# --- targets ------------------------------------------------------------------------------------


def _five_piece(x: torch.Tensor) -> torch.Tensor:
    # "a 5-piece polynomial with maximum value 2 on [−3, 3]" (2020, App. A.4); its pieces are not
    # given: we take five quadratic bumps 2 − 8((x − c)/w)² on five equal intervals of width
    # w = 1.2 (continuous, zero at every joint, maximum 2).
    w = 1.2
    c = -3.0 + w * (torch.floor((x + 3.0) / w).clamp(0, 4) + 0.5)
    return 2.0 - 8.0 * ((x - c) / w) ** 2


def _sawtooth_3(x: torch.Tensor) -> torch.Tensor:
    # Period 3, amplitude 1 (2020, App. A.4): rises from −1 to 1 over each period.
    return 2.0 * torch.remainder(x / 3.0 + 0.5, 1.0) - 1.0


def _sawtooth_peaks(x: torch.Tensor) -> torch.Tensor:
    # On [−2, 2]: −1 at the ends and 4 peaks of 1 (2020, App. A.3): a triangle wave with
    # period 1, minima at −2, −1, …, 2 and maxima at −1.5, −0.5, 0.5, 1.5.
    return 1.0 - 4.0 * torch.abs(torch.remainder(x + 2.0, 1.0) - 0.5)


TARGETS = {
    "sin_pi": lambda x: torch.sin(math.pi * x),
    "five_piece": _five_piece,
    "sawtooth": _sawtooth_3,
    "arctan": torch.atan,
    "exp": torch.exp,
    "half_square": lambda x: x**2 / 2,
    "sin": torch.sin,
    "peaks": _sawtooth_peaks,
    "cubic": lambda x: x**3 / 4 + x**2 / 2 - 2,
    "square": lambda x: x**2,
    "exp_half": lambda x: torch.exp(0.5 * x),
}

LABELS = {
    "sin_pi": "sin(πx)", "five_piece": "5-piece poly", "sawtooth": "sawtooth",
    "arctan": "arctan", "exp": "exp", "half_square": "x²/2", "sin": "sin(x)",
    "peaks": "sawtooth", "cubic": "x³/4 + x²/2 − 2", "square": "x²", "exp_half": "exp(x/2)",
}


# --- training -----------------------------------------------------------------------------------


def summed_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float(((model(x) - y) ** 2).sum())


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, lr: float,
          optimizer: str = "gd", batch_size: int | None = None,
          generator: torch.Generator | None = None) -> list[float]:
    """Full-batch (or mini-batch) training on the summed squared error; returns the loss per
    epoch (of the last batch for mini-batches). ``optimizer``: 'gd', 'adam' or 'sgd'."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr) if optimizer == "adam" else None
    n = x.shape[0]
    losses = []
    model.train()
    for _ in range(epochs):
        if batch_size is None or batch_size >= n:
            batches = [slice(None)]
        else:
            perm = torch.randperm(n, generator=generator)
            batches = [perm[i:i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]
        for batch in batches:
            loss = ((model(x[batch]) - y[batch]) ** 2).sum()
            grads = torch.autograd.grad(loss, params)
            if opt is None:  # plain (stochastic) gradient descent: p ← p − lr ∇p
                with torch.no_grad():
                    torch._foreach_add_(params, grads, alpha=-lr)
            else:
                for p, g in zip(params, grads, strict=True):
                    p.grad = g
                opt.step()
        losses.append(float(loss.detach()))
        if not math.isfinite(losses[-1]):
            break
    model.eval()
    return losses


def mean_sd(values) -> tuple[float, float]:
    values = [float(v) for v in values]
    m = sum(values) / len(values)
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 \
        else 0.0
    return m, sd


def fmt(m: float, sd: float, digits: int = 3) -> str:
    return f"{m:.{digits}g} ± {sd:.{digits}g}"
