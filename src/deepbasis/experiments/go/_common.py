"""What the go.* experiments share: the paper's initializers and its Adam training loop."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

from ...init import glorot_, go_
from ...nn import MLP

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def standardize(x: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit variance per column (the paper's normalization, App. C)."""
    return (x - x.mean(0)) / x.std(0)


def glorot_normal_(model: torch.nn.Module, generator: int) -> torch.nn.Module:
    """The paper's Glorot baseline (JAX's ``glorot_normal``: std √(2/(in+out)), zero biases)."""
    return glorot_(model, "normal", generator=generator)


@torch.no_grad()
def orthonormal_(model: MLP, generator: int) -> MLP:
    """§4 / [16, 17]: each square hidden weight is the Q of the QR factorization of its Glorot
    draw, rescaled to that draw's Frobenius norm; non-square layers keep the Glorot draw."""
    glorot_normal_(model, generator)
    for layer in model.layers:
        w = layer.weight
        if w.shape[0] == w.shape[1]:
            q, r = torch.linalg.qr(w.double())
            q = q * torch.sign(torch.diagonal(r))
            q = q * (torch.linalg.matrix_norm(w.double()) / torch.linalg.matrix_norm(q))
            w.copy_(q.to(w.dtype))
    return model


@torch.no_grad()
def siren_(model: MLP, omega0: float, generator: int) -> MLP:
    """SIREN initialization (Sitzmann et al. 2020) of a sine MLP, with the ω₀ folded in.

    SIREN computes sin(ω₀ (W x + b)) with W₁ ~ U(−1/d, 1/d) in the first layer and
    W ~ U(−√(6/n)/ω₀, √(6/n)/ω₀) after it, biases PyTorch's default U(−1/√n, 1/√n). Our MLP
    computes sin(W x + b), so we store the products: W₁ ~ ω₀ U(−1/d, 1/d),
    W ~ U(−√(6/n), √(6/n)), b ~ ω₀ U(−1/√n, 1/√n). (Trained this way, the first layer's
    effective learning rate is not multiplied by ω₀ as in SIREN's parameterization.)
    """
    gen = torch.Generator().manual_seed(generator)

    def uniform(shape, bound):
        return (torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound

    glorot_normal_(model, generator)  # the head: Glorot
    for j, layer in enumerate(model.layers):
        n = layer.in_features
        bound = omega0 / n if j == 0 else math.sqrt(6.0 / n)
        layer.weight.copy_(uniform(layer.weight.shape, bound).to(layer.weight))
        layer.bias.copy_((omega0 * uniform(layer.bias.shape, 1 / math.sqrt(n))).to(layer.bias))
    return model


def paper_go_(model: MLP, x: torch.Tensor, *, steps: int, batch: int, lam: float,
              generator: int, directions: str = "fixed", lr: float = 5e-3) -> dict:
    """GO exactly as eq. 3.2 (no dead-unit barrier; tanh and sin networks), on Glorot's head."""
    glorot_normal_(model, generator)
    history = go_(model, x, steps=steps, batch_size=batch, lam=lam, lr=lr,
                  directions=directions, dead_unit_barrier=0.0, generator=generator)
    return {"go_seconds": history.wall_time, "go_scales": history.final_scales,
            "go_biases": history.final_biases,
            "go_msc_start": history.mean_squared_cosine[0] if history.loss else None,
            "go_msc_end": history.mean_squared_cosine[-1] if history.loss else None}


def train_adam(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, steps: int,
               lr: float, batch: int, decay_every: int, decay: float = 0.99, generator: int,
               extra_loss: Callable[[int], torch.Tensor] | None = None,
               record_every: int = 50) -> dict:
    """Adam on the mean squared error over mini-batches drawn uniformly (App. C.3, C.4), the
    learning rate × ``decay`` every ``decay_every`` steps; ``extra_loss(step)`` is added (TV)."""
    gen = torch.Generator().manual_seed(10_000 + generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=decay_every, gamma=decay)
    n = x.shape[0]
    losses, steps_seen = [], []
    start = time.perf_counter()
    for step in range(steps):
        index = torch.randint(0, n, (min(batch, n),), generator=gen) if n > batch else None
        xb, yb = (x, y) if index is None else (x[index], y[index])
        loss = ((model(xb) - yb) ** 2).sum(1).mean()
        total = loss + extra_loss(step) if extra_loss is not None else loss
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        schedule.step()
        if step % record_every == 0 or step == steps - 1:
            losses.append(float(loss.detach()))
            steps_seen.append(step)
    return {"train_seconds": time.perf_counter() - start, "loss_curve": losses,
            "loss_steps": steps_seen}


def relative_l2(prediction: torch.Tensor, target: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(prediction - target)
                 / torch.linalg.vector_norm(target))
