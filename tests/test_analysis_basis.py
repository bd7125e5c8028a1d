import numpy as np
import pytest
import torch

from conftest import SEEDS
from deepbasis import MLP, analysis, init
from deepbasis.problems import grid, sin2pi


@pytest.mark.parametrize("seed", SEEDS)
def test_initial_basis_loss_is_the_least_squares_mse(seed):
    model = init.box_(MLP(1, 12, 3, dtype=torch.float64), generator=seed)
    x = grid(64)
    y = sin2pi(x)
    phi = np.hstack([analysis.basis_functions(model, x).numpy(), np.ones((64, 1))])
    coef, *_ = np.linalg.lstsq(phi, y.numpy(), rcond=None)
    expected = float(((phi @ coef - y.numpy()) ** 2).mean())
    before = [p.detach().clone() for p in model.parameters()]
    assert analysis.initial_basis_loss(model, x, y) == pytest.approx(expected, rel=1e-8)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


@pytest.mark.parametrize("seed", SEEDS)
def test_he_with_zero_biases_is_the_straight_line_fit(seed):
    """Positive homogeneity: zero-bias ReLU layers are linear on [0, 1] (paper-notes.md)."""
    model = init.he_(MLP(1, 32, 4, dtype=torch.float64), generator=seed)
    x = grid(256)
    y = sin2pi(x)
    line = np.polyfit(x[:, 0].numpy(), y[:, 0].numpy(), 1)
    expected = float(((np.polyval(line, x[:, 0].numpy()) - y[:, 0].numpy()) ** 2).mean())
    assert analysis.initial_basis_loss(model, x, y) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
def test_box_basis_is_richer_than_he(seed):
    x = grid(256)
    y = sin2pi(x)
    box = analysis.initial_basis_loss(init.box_(MLP(1, 32, 2, dtype=torch.float64),
                                                generator=seed), x, y)
    he = analysis.initial_basis_loss(init.he_(MLP(1, 32, 2, dtype=torch.float64),
                                              generator=seed), x, y)
    assert box < he / 100, f"seed {seed}: Box {box:.3g} vs He {he:.3g}"
