"""Tests for deepbasis.init.go: globally orthogonal initialization (Wang et al. 2021, eq. 3.2)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from conftest import SEEDS
from deepbasis import MLP, init
from deepbasis.init.go import feature_cosines, orthogonality_loss
from deepbasis.nn import Sine

F64 = torch.float64


def _inputs(n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 2, generator=gen, dtype=F64) * 2.0 - 1.0  # [−1, 1]², as Fig. 3


def _weights(module: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


def _start_and_calibrated(activation, seed, **options):
    x, held_out = _inputs(1024, seed), _inputs(512, seed + 100)
    # Baseline: the same directions at the starting point (c = 1, b = 0), i.e. zero GO steps.
    start = MLP(2, 16, 3, activation=activation, dtype=F64)
    init.go_(start, x, steps=0, generator=seed)
    model = MLP(2, 16, 3, activation=activation, dtype=F64)
    history = init.go_(model, x, steps=150, batch_size=256, generator=seed, **options)
    with torch.no_grad():
        return start.features(held_out), model.features(held_out), history


def _live(features: torch.Tensor) -> int:
    return int((features.abs().amax(0) > 0).sum())


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("activation", ["tanh", "sin"])
def test_go_lowers_the_mean_squared_feature_cosine_on_held_out_inputs(seed, activation):
    before, after, history = _start_and_calibrated(activation, seed)
    assert init.mean_squared_cosine(after) < 0.8 * init.mean_squared_cosine(before)
    assert history.loss[-1] < history.loss[0]
    assert len(history.loss) == 150 and len(history.scales) == 151


@pytest.mark.parametrize("seed", SEEDS)
def test_on_relu_eq_3_2_lowers_cosines_only_by_killing_units(seed):
    # The paper's objective (no barrier) on a ReLU net: held-out cosines fall, because units
    # die (a dead unit has cosine 0 with everything). The default barrier keeps them alive.
    before, after, _ = _start_and_calibrated("relu", seed, dead_unit_barrier=0.0)
    assert init.mean_squared_cosine(after) < 0.5 * init.mean_squared_cosine(before)
    assert _live(after) < _live(before) - 8
    before, after, _ = _start_and_calibrated("relu", seed)
    assert _live(after) >= _live(before)


@pytest.mark.parametrize("seed", SEEDS)
def test_seeded_generator_gives_identical_calibrations(seed):
    x = _inputs(512, seed)
    models = [MLP(2, 8, 2, activation="tanh", dtype=F64) for _ in range(3)]  # global draws
    state = torch.random.get_rng_state()
    runs = []
    for generator, model in zip((seed, torch.Generator().manual_seed(seed), seed + 1), models,
                                strict=True):
        runs.append((init.go_(model, x, steps=30, batch_size=128, generator=generator), model))
    assert torch.equal(torch.random.get_rng_state(), state)
    (h_a, m_a), (h_b, m_b), (h_c, m_c) = runs
    assert h_a.loss == h_b.loss and h_a.scales == h_b.scales and h_a.biases == h_b.biases
    # GO sets the hidden layers (the head keeps its own draw)
    assert torch.equal(_weights(m_a.layers), _weights(m_b.layers))
    assert h_a.loss != h_c.loss and not torch.equal(_weights(m_a.layers), _weights(m_c.layers))


def test_weights_are_scale_times_fan_in_directions_and_shared_bias():
    x = _inputs(256, 0)
    model = MLP(2, 6, 3, activation="tanh", dtype=F64)
    history = init.go_(model, x, steps=5, batch_size=64, normalize=False, generator=4)
    gen = torch.Generator().manual_seed(4)
    for j, layer in enumerate(model.layers):
        z = torch.randn(layer.weight.shape, generator=gen, dtype=F64) / math.sqrt(layer.in_features)
        torch.testing.assert_close(layer.weight, history.final_scales[j] * z)
        torch.testing.assert_close(layer.bias, torch.full((6,), history.final_biases[j], dtype=F64))


def test_standardization_is_folded_into_the_first_layer():
    # GO on raw inputs (standardized inside) = GO on inputs standardized by hand.
    x = _inputs(512, 1) * torch.tensor([3.0, 0.5], dtype=F64) + torch.tensor([5.0, -2.0],
                                                                              dtype=F64)
    mean, std = x.mean(0), x.std(0)
    raw, by_hand = (MLP(2, 8, 3, activation="tanh", dtype=F64) for _ in range(2))
    h_raw = init.go_(raw, x, steps=20, batch_size=128, generator=3)
    h_hand = init.go_(by_hand, (x - mean) / std, steps=20, batch_size=128, normalize=False,
                      generator=3)
    torch.testing.assert_close(torch.tensor(h_raw.loss), torch.tensor(h_hand.loss),
                               rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(raw.features(x), by_hand.features((x - mean) / std),
                               rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(torch.tensor(h_raw.input_mean, dtype=F64), mean)


def test_sequential_mlp_gets_the_same_calibration_as_our_mlp():
    x = _inputs(512, 2)
    ours = MLP(2, 8, 3, activation="sin", dtype=F64)
    theirs = nn.Sequential(nn.Linear(2, 8), Sine(), nn.Linear(8, 8), Sine(), nn.Linear(8, 8),
                           Sine(), nn.Linear(8, 1)).to(F64)
    h_ours = init.go_(ours, x, steps=20, batch_size=128, generator=5)
    h_theirs = init.go_(theirs, x, steps=20, batch_size=128, generator=5)
    assert h_ours.loss == pytest.approx(h_theirs.loss, rel=1e-12)
    torch.testing.assert_close(theirs[:-1](x), ours.features(x))


def test_redrawn_directions_and_residual_networks():
    x, held_out = _inputs(1024, 3), _inputs(512, 4)
    for residual in (False, True):
        start = MLP(2, 16, 3, activation="tanh", residual=residual, dtype=F64)
        init.go_(start, x, steps=0, generator=6)
        model = MLP(2, 16, 3, activation="tanh", residual=residual, dtype=F64)
        history = init.go_(model, x, steps=150, batch_size=256, directions="redrawn",
                           generator=6)
        assert history.directions == "redrawn"
        with torch.no_grad():
            assert init.mean_squared_cosine(model.features(held_out)) < \
                init.mean_squared_cosine(start.features(held_out))


def test_head_is_left_alone_and_registry_returns_the_module():
    x = _inputs(256, 0)
    model = init.glorot_(MLP(2, 8, 2, activation="tanh", dtype=F64), generator=0)
    head = _weights(model.head).clone()
    assert init.initialize_(model, "go", x=x, steps=3, batch_size=64, generator=1) is model
    assert torch.equal(_weights(model.head), head)
    with pytest.raises(ValueError, match="calibrates on data: pass the inputs"):
        init.initialize_(model, "go", generator=1)


def test_objective_matches_eq_3_2_on_a_hand_example():
    # Two features with cos θ = 0.6 (and a third orthogonal to both): the loss is
    # −(2 log(1 − 0.36)) / (3 · 2).
    g = torch.tensor([[1.0, 0.6, 0.0], [0.0, 0.8, 0.0], [0.0, 0.0, 2.0]], dtype=F64)
    torch.testing.assert_close(feature_cosines(g)[0, 1], torch.tensor(0.6, dtype=F64))
    expected = -2.0 * math.log(1.0 - 0.36) / 6.0
    assert float(orthogonality_loss(g)) == pytest.approx(expected, rel=1e-14)
    assert init.mean_squared_cosine(g) == pytest.approx(2 * 0.36 / 6, rel=1e-14)


def test_bad_input_is_rejected_with_clear_messages():
    x = _inputs(64, 0)
    model = MLP(2, 8, 2, dtype=F64)
    bad = x.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="x contains 1 non-finite"):
        init.go_(model, bad)
    with pytest.raises(ValueError, match="no hidden layer"):
        init.go_(nn.Linear(2, 1).to(F64), x)
    with pytest.raises(ValueError, match="no hidden layer"):
        init.go_(nn.Sequential(nn.Linear(2, 3)).to(F64), x)
    with pytest.raises(ValueError, match=r"lam .* must be a finite number >= 0, got -0.1"):
        init.go_(model, x, lam=-0.1)
    with pytest.raises(ValueError, match="unknown directions 'random'"):
        init.go_(model, x, directions="random")
    with pytest.raises(ValueError, match=r"must have shape \(N, 2\)"):
        init.go_(model, x[:, :1])
    with pytest.raises(ValueError, match="at least 2 to make orthogonal"):
        init.go_(MLP(2, 1, 2, dtype=F64), x)


def test_a_diverged_calibration_raises_and_leaves_the_model_unchanged():
    model = MLP(2, 8, 2, activation="tanh")  # float32: c² overflows at lr = 1e30
    before = _weights(model).clone()
    with pytest.raises(FloatingPointError, match="diverged .* Lower lr"):
        init.go_(model, _inputs(64, 0).float(), lr=1e30, steps=5, batch_size=32, generator=0)
    assert torch.equal(_weights(model), before)
