import math

import pytest
import torch
from scipy import stats
from torch import nn

from conftest import SEEDS
from deepbasis import MLP, init

ALL = ["torch_default", "he", "glorot", "orthogonal", "box", "raai"]


def affine_range(layer: nn.Linear, m: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact min and max of each unit's pre-activation W x + b over the box [0, m]^w."""
    w, b = layer.weight.detach(), layer.bias.detach()
    return b + m * w.clamp(max=0).sum(1), b + m * w.clamp(min=0).sum(1)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("in_features", "width", "depth"), [(1, 32, 4), (3, 7, 3), (5, 2, 6)])
def test_box_plain_units_reach_exactly_zero_and_one(seed, in_features, width, depth):
    """Eq. (10): over [0, 1]^w every plain unit has minimum 0 and maximum exactly 1."""
    model = init.box_(MLP(in_features, width, depth, dtype=torch.float64), generator=seed)
    for layer in model.layers:
        low, high = affine_range(layer, 1.0)
        torch.testing.assert_close(high, torch.ones_like(high), rtol=0, atol=1e-12)
        assert (low <= 0).all(), f"seed {seed}: a unit's cut plane misses the box"
        # Lemma 1: the maximum is attained at the corner max(sgn(n), 0).
        corner = (layer.weight > 0).to(torch.float64)  # (w_out, w_in): one corner per unit
        at_corner = (layer.weight * corner).sum(1) + layer.bias
        torch.testing.assert_close(at_corner, torch.ones_like(at_corner), rtol=0, atol=1e-12)
    x = torch.rand(500, in_features, generator=torch.Generator().manual_seed(seed),
                   dtype=torch.float64)
    phi = model.features(x)
    assert phi.min() >= 0 and phi.max() <= 1 + 1e-12


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("depth", [2, 5, 16])
def test_box_residual_layers_map_box_into_grown_box(seed, depth):
    """Eqs. (12)-(16): layer l maps [0, m]^w into [0, m(1 + 1/L)]^w, m = (1 + 1/L)^(l-1)."""
    model = init.box_(MLP(1, 6, depth, residual=True, dtype=torch.float64), generator=seed)
    low, high = affine_range(model.layers[0], 1.0)
    torch.testing.assert_close(high, torch.ones_like(high), rtol=0, atol=1e-12)
    for l, layer in enumerate(model.layers[1:], start=2):
        m = (1 + 1 / depth) ** (l - 1)
        low, high = affine_range(layer, m)
        torch.testing.assert_close(high, torch.full_like(high, m / depth), rtol=1e-12, atol=0)
        assert (low <= 0).all()
    x = torch.rand(400, 1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    phi = model.features(x)
    assert phi.min() >= 0 and phi.max() <= (1 + 1 / depth) ** (depth - 1) + 1e-12 < math.e


@pytest.mark.parametrize("seed", SEEDS)
def test_box_algorithm3_variant(seed):
    depth = 4
    model = init.box_(MLP(1, 5, depth, residual=True, dtype=torch.float64),
                      variant="algorithm3", generator=seed)
    for l, layer in enumerate(model.layers[1:], start=2):
        m = (1 + 1 / (depth - 1)) ** l
        _, high = affine_range(layer, m)
        torch.testing.assert_close(high, torch.full_like(high, 1 / (depth - 1)))


def test_box_walks_sequential_in_forward_order():
    net = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 1))
    net = net.double()
    assert init.box_(net, generator=0) is net
    for layer in (net[0], net[2]):
        _, high = affine_range(layer, 1.0)
        torch.testing.assert_close(high, torch.ones_like(high))
    assert net[4].bias.abs().max() == 0  # the head: Glorot weights, zero bias


def test_box_checks_that_inputs_lie_in_the_unit_box():
    x = torch.linspace(-1, 1, 11)[:, None]
    with pytest.raises(ValueError, match=r"inputs in \[0, 1\]\^d.*span \[-1, 1\].*domain="):
        init.box_(MLP(1, 4, 2), inputs=x, generator=0)
    init.box_(MLP(1, 4, 2, domain=(-1.0, 1.0)), inputs=x, generator=0)  # mapped: fine


def test_box_warns_for_non_relu_and_rejects_bad_variant():
    with pytest.warns(UserWarning, match="designed for ReLU"):
        init.box_(MLP(1, 4, 2, activation="tanh"), generator=0)
    with pytest.raises(ValueError, match="unknown variant 'alg3'; valid choices are 'eq16'"):
        init.box_(MLP(1, 4, 2, residual=True), variant="alg3")
    with pytest.raises(ValueError, match="depth >= 2"):
        init.box_(MLP(1, 4, 1, residual=True), variant="algorithm3")


def _weights(module):
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


@pytest.mark.parametrize("name", ALL)
def test_seeded_generator_gives_identical_draws_and_leaves_global_rng_alone(name):
    models = [MLP(2, 8, 3, dtype=torch.float64) for _ in range(3)]  # construction draws
    state = torch.random.get_rng_state()
    a = init.initialize_(models[0], name, generator=7)
    b = init.initialize_(models[1], name, generator=torch.Generator().manual_seed(7))
    c = init.initialize_(models[2], name, generator=8)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(_weights(a), _weights(b))
    assert not torch.equal(_weights(a), _weights(c))


@pytest.mark.parametrize("name", ALL)
def test_float32_and_float64_draws_agree(name):
    a = init.initialize_(MLP(2, 8, 3, dtype=torch.float64), name, generator=3)
    b = init.initialize_(MLP(2, 8, 3, dtype=torch.float32), name, generator=3)
    torch.testing.assert_close(_weights(b).double(), _weights(a), rtol=1e-6, atol=1e-6)


def _ks(sample: torch.Tensor, dist: str, *args) -> float:
    return stats.kstest(sample.detach().double().numpy(), dist, args=args).pvalue


@pytest.mark.parametrize("seed", SEEDS)
def test_classic_initializers_follow_their_distributions(seed):
    layer = nn.Linear(300, 200, dtype=torch.float64)
    fan_in, fan_out = 300, 200
    cases = [
        (lambda: init.he_(layer, "uniform", generator=seed), "uniform",
         -math.sqrt(6 / fan_in), 2 * math.sqrt(6 / fan_in)),
        (lambda: init.he_(layer, "normal", generator=seed), "norm", 0, math.sqrt(2 / fan_in)),
        (lambda: init.glorot_(layer, "uniform", generator=seed), "uniform",
         -math.sqrt(6 / (fan_in + fan_out)), 2 * math.sqrt(6 / (fan_in + fan_out))),
        (lambda: init.glorot_(layer, "normal", generator=seed), "norm", 0,
         math.sqrt(2 / (fan_in + fan_out))),
        (lambda: init.torch_default_(layer, generator=seed), "uniform",
         -1 / math.sqrt(fan_in), 2 / math.sqrt(fan_in)),
    ]
    for apply, dist, *args in cases:
        apply()
        p = _ks(layer.weight.reshape(-1), dist, *args)
        assert p > 1e-4, f"seed {seed}: {dist}{tuple(args)} KS p-value {p:.2e}"
    init.he_(layer, generator=seed)
    assert layer.bias.abs().max() == 0  # the paper's He baseline has zero biases
    init.he_(layer, zero_bias=False, generator=seed)
    assert layer.bias.abs().max() > 0
    init.torch_default_(layer, generator=seed)
    assert _ks(layer.bias, "uniform", -1 / math.sqrt(fan_in), 2 / math.sqrt(fan_in)) > 1e-4


@pytest.mark.parametrize(("rows", "cols"), [(6, 10), (10, 6), (8, 8)])
def test_orthogonal_rows_or_columns_are_orthonormal(rows, cols):
    layer = init.orthogonal_(nn.Linear(cols, rows, dtype=torch.float64), gain=2.0, generator=1)
    w = layer.weight / 2.0
    gram = w @ w.T if rows <= cols else w.T @ w
    torch.testing.assert_close(gram, torch.eye(min(rows, cols), dtype=torch.float64))


def test_unknown_initializer_lists_the_valid_names():
    with pytest.raises(ValueError, match="unknown initializer 'kaiming'; valid choices are "
                                         "'torch_default', 'he', 'glorot', 'orthogonal', 'box'"):
        init.initialize_(MLP(1, 4, 1), "kaiming")
    with pytest.raises(ValueError, match="unknown distribution 'gauss'"):
        init.he_(MLP(1, 4, 1), "gauss")
    with pytest.raises(TypeError, match="generator must be None, an int seed or a"):
        init.he_(MLP(1, 4, 1), generator="seed")


def test_module_without_linear_layers_is_rejected():
    with pytest.raises(TypeError, match="has no nn.Linear layers"):
        init.he_(nn.ReLU())
