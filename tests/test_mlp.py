import pytest
import torch
from torch import nn

from conftest import SEEDS, tol
from deepbasis import MLP


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("residual", [False, True])
def test_features_match_equations_4_and_5(seed, residual):
    g = torch.Generator().manual_seed(seed)
    model = MLP(3, width=5, depth=4, out_features=2, residual=residual, dtype=torch.float64)
    x = torch.rand(7, 3, generator=g, dtype=torch.float64)
    h = torch.relu(model.layers[0](x))
    for layer in model.layers[1:]:
        h = h + torch.relu(layer(h)) if residual else torch.relu(layer(h))
    torch.testing.assert_close(model.features(x), h, **tol(torch.float64))
    torch.testing.assert_close(model(x), model.head(h), **tol(torch.float64))
    assert model.hidden_states(x)[-1].shape == (7, 5)
    torch.testing.assert_close(model.hidden_states(x)[-1], h, **tol(torch.float64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_and_shapes(dtype):
    model = MLP(2, 8, 3, out_features=4, activation="tanh", dtype=dtype)
    out = model(torch.rand(10, 2, dtype=dtype))
    assert out.shape == (10, 4) and out.dtype == dtype
    assert model.features(torch.rand(10, 2, dtype=dtype)).shape == (10, 8)


def test_domain_maps_inputs_onto_unit_box():
    model = MLP(2, 4, 1, domain=([-1.0, 10.0], [3.0, 20.0]), dtype=torch.float64)
    x = torch.tensor([[-1.0, 10.0], [3.0, 20.0], [1.0, 15.0]], dtype=torch.float64)
    expected = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.5, 0.5]], dtype=torch.float64)
    torch.testing.assert_close(model.normalize(x), expected)
    scalar = MLP(1, 4, 1, domain=(-2.0, 2.0))
    assert scalar.normalize(torch.tensor([[0.0]])).item() == pytest.approx(0.5)


def test_domain_is_saved_in_state_dict():
    model = MLP(1, 4, 2, domain=(0.0, 5.0))
    clone = MLP(1, 4, 2, domain=(0.0, 5.0))
    clone.load_state_dict(model.state_dict())
    x = torch.rand(5, 1) * 5
    torch.testing.assert_close(clone(x), model(x))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"in_features": 0, "width": 4, "depth": 1}, "in_features must be a positive integer"),
        ({"in_features": 1, "width": 4, "depth": 0}, "depth must be a positive integer"),
        ({"in_features": 1, "width": 2.5, "depth": 1}, "width must be a positive integer"),
        ({"in_features": 1, "width": 4, "depth": 1, "activation": "relux"},
         "unknown activation 'relux'; valid choices are 'relu', 'tanh'"),
        ({"in_features": 1, "width": 4, "depth": 1, "domain": (1.0, 1.0)}, "lower < upper"),
        ({"in_features": 1, "width": 4, "depth": 1, "domain": (0.0, float("inf"))},
         "must be finite"),
        ({"in_features": 1, "width": 4, "depth": 1, "domain": 3.0}, "pair"),
    ],
)
def test_bad_settings_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MLP(**kwargs)


def test_wrong_input_shape_names_the_fix():
    model = MLP(1, 4, 1)
    with pytest.raises(ValueError, match=r"shape \(N, 1\), got \(5,\)\. For 1-D inputs pass"):
        model(torch.rand(5))
    with pytest.raises(ValueError, match=r"shape \(N, 1\), got \(5, 2\)"):
        model(torch.rand(5, 2))


def test_is_a_basis_network():
    model = MLP(1, 6, 2)
    assert isinstance(model.head, nn.Linear) and model.head.in_features == 6
    assert "plain" in repr(model) and "width=6" in repr(model)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_forward_matches_cpu():
    model = MLP(1, 8, 3, residual=True, dtype=torch.float64)
    x = torch.rand(20, 1, dtype=torch.float64)
    expected = model(x)
    torch.testing.assert_close(model.cuda()(x.cuda()).cpu(), expected)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_mean_network_is_exactly_the_mean_of_its_networks(seed, residual, activation):
    from deepbasis.nn.mlp import mean_network

    g = torch.Generator().manual_seed(seed)
    domain = ([0.0, -1.0], [2.0, 3.0])
    networks = [MLP(2, width, 3, out_features=2, residual=residual, activation=activation,
                    domain=domain, dtype=torch.float64) for width in (3, 5, 4)]
    for network in networks:  # random weights everywhere, the head included
        for parameter in network.parameters():
            parameter.data = torch.randn(parameter.shape, generator=g, dtype=torch.float64)
    mean = mean_network(networks)
    x = torch.rand(9, 2, generator=g, dtype=torch.float64) * 4 - 1
    assert mean.width == 12 and mean.domain == networks[0].domain
    expected = sum(network(x) for network in networks) / 3
    torch.testing.assert_close(mean(x), expected, **tol(torch.float64))
    torch.testing.assert_close(mean.features(x),
                               torch.cat([network.features(x) for network in networks], dim=1),
                               **tol(torch.float64))


@pytest.mark.parametrize(("other", "name"), [
    ({"depth": 2}, "depth"), ({"activation": "tanh"}, "activation_name"),
    ({"residual": True}, "residual"), ({"domain": (0.0, 2.0)}, "domain"),
])
def test_mean_network_refuses_networks_that_differ(other, name):
    from deepbasis.nn.mlp import mean_network

    settings = {"depth": 3, "activation": "relu", "residual": False, "domain": None}
    with pytest.raises(ValueError, match=f"network 1 has {name}=.* the networks must share it"):
        mean_network([MLP(1, 4, **settings), MLP(1, 4, **{**settings, **other})])
    with pytest.raises(ValueError, match="at least one network"):
        mean_network([])
