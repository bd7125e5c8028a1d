"""Exact splines of 1-D ReLU networks (deepbasis.analysis.spline), against dense evaluation of
the network (float64, relative 1e-12) and against regioncam's region counts."""

import numpy as np
import pytest
import torch
from scipy.integrate import trapezoid
from torch import nn

from conftest import SEEDS
from deepbasis import MLP, analysis
from deepbasis.analysis import Spline, bdso, count_pieces, count_regions, spline_of

LOWER, UPPER = -3.0, 3.0


def random_mlp(seed, width, depth, residual=False, domain=None, bias_std=1.0):
    """He-scaled Gaussian weights and N(0, bias_std²) biases: many pieces at every depth."""
    g = torch.Generator().manual_seed(seed)
    model = MLP(1, width, depth, residual=residual, domain=domain, dtype=torch.float64)
    with torch.no_grad():
        for layer in [*model.layers, model.head]:
            fan_in = layer.weight.shape[1]
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=g, dtype=torch.float64)
                               * (2.0 / fan_in) ** 0.5 * (0.5 if residual else 1.0))
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=g, dtype=torch.float64)
                             * bias_std)
    return model


def dense_points(spline, n=4001):
    grid = torch.linspace(LOWER, UPPER, n, dtype=torch.float64)
    eps = 1e-9
    near = torch.cat([spline.knots - eps, spline.knots + eps, spline.points])
    return torch.cat([grid, near.clamp(LOWER, UPPER)])[:, None]


def assert_matches_network(model, spline, rel=1e-12):
    x = dense_points(spline)
    with torch.no_grad():
        expected = model(x)
    scale = float(expected.abs().max())
    torch.testing.assert_close(spline(x), expected, rtol=rel, atol=rel * scale)


ARCHS = [(1, 1), (1, 64), (2, 3), (3, 16), (5, 8), (8, 64)]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("residual", [False, True], ids=["plain", "residual"])
@pytest.mark.parametrize("depth,width", ARCHS)
def test_spline_equals_dense_evaluation(seed, residual, depth, width):
    model = random_mlp(seed, width, depth, residual)
    spline = spline_of(model, LOWER, UPPER)
    assert bool((spline.knots[1:] > spline.knots[:-1]).all())
    assert spline.num_pieces == spline.knots.numel() + 1 == count_pieces(model, LOWER, UPPER)
    assert_matches_network(model, spline)


@pytest.mark.parametrize("seed", SEEDS)
def test_input_domain_is_folded_in(seed):
    model = random_mlp(seed, 16, 3, residual=True, domain=(-1.0, 2.0))
    assert_matches_network(model, spline_of(model, LOWER, UPPER))


@pytest.mark.parametrize("seed", SEEDS)
def test_sequential_with_several_outputs(seed):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(1, 12), nn.ReLU(), nn.Sequential(nn.Linear(12, 12), nn.ReLU()),
                          nn.Identity(), nn.Linear(12, 3)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    spline = spline_of(model, LOWER, UPPER)
    assert spline.out_features == 3
    assert_matches_network(model, spline)


@pytest.mark.parametrize("seed", SEEDS)
def test_float32_network_is_read_in_float64(seed):
    model = random_mlp(seed, 16, 4).float()
    spline = spline_of(model, LOWER, UPPER)
    assert_matches_network(model.double(), spline)


@pytest.mark.parametrize("seed", SEEDS)
def test_every_crossing_is_a_zero_of_its_unit(seed):
    model = random_mlp(seed, 16, 4)
    spline = spline_of(model, LOWER, UPPER)
    with torch.no_grad():
        for crossings in spline.crossings:
            assert crossings.count > 0
            x = crossings.x[:, None]
            pre = _preactivation(model, crossings.layer, x)  # (C, w)
            scale = float(pre.abs().max()) + 1.0
            on_unit = pre[torch.arange(crossings.count), crossings.unit]
            assert float(on_unit.abs().max()) <= 1e-12 * scale


def _preactivation(model, layer_index, x):
    h = model.activation(model.layers[0](model.normalize(x)))
    if layer_index == 1:
        return model.layers[0](model.normalize(x))
    for k, layer in enumerate(model.layers[1:], start=2):
        z = layer(h)
        if k == layer_index:
            return z
        h = h + model.activation(z) if model.residual else model.activation(z)
    raise AssertionError


@pytest.mark.parametrize("seed", SEEDS)
def test_knot_sources_and_active_flags_agree(seed):
    model = random_mlp(seed, 16, 4)
    spline = spline_of(model, LOWER, UPPER)
    active = torch.cat([c.x[c.active] for c in spline.crossings]).sort().values
    torch.testing.assert_close(active, spline.knots, rtol=0, atol=0)
    for knot, layer, unit in zip(spline.knots, spline.knot_layer, spline.knot_unit, strict=True):
        c = spline.crossings[int(layer) - 1]
        assert c.layer == int(layer)
        assert bool(((c.x == knot) & (c.unit == unit)).any())


def test_inactive_crossings_are_found_and_not_knots():
    # Layer 1 bends at x = ±1, but layer 2's only unit, relu(x+1) + relu(x−1) − 5, is off there:
    # the output sees only layer 2's crossing at x = 2.5 (2x = 5).
    model = nn.Sequential(nn.Linear(1, 2), nn.ReLU(), nn.Linear(2, 1), nn.ReLU(),
                          nn.Linear(1, 1)).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0], [1.0]]))
        model[0].bias.copy_(torch.tensor([1.0, -1.0]))
        model[2].weight.copy_(torch.tensor([[1.0, 1.0]]))
        model[2].bias.fill_(-5.0)
        model[4].weight.fill_(2.0)
        model[4].bias.fill_(0.5)
    spline = spline_of(model, LOWER, UPPER)
    assert count_pieces(model, LOWER, UPPER) == 2
    assert count_regions(model, LOWER, UPPER) == 4
    torch.testing.assert_close(spline.knots, torch.tensor([2.5], dtype=torch.float64))
    first, second = spline.crossings
    torch.testing.assert_close(first.x, torch.tensor([-1.0, 1.0], dtype=torch.float64))
    assert first.active.tolist() == [False, False] and second.active.tolist() == [True]
    assert (spline.knot_layer.tolist(), spline.knot_unit.tolist()) == ([2], [0])
    torch.testing.assert_close(spline.delta_slopes, torch.tensor([[4.0]], dtype=torch.float64))


# --- shallow networks: BDSO ---------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_bdso_is_the_network(seed):
    model = random_mlp(seed, 32, 1, domain=(-2.0, 5.0))
    form = bdso(model)
    x = torch.linspace(-6, 6, 2001, dtype=torch.float64)[:, None]
    with torch.no_grad():
        torch.testing.assert_close(form(x[:, 0]), model(x)[:, 0], rtol=1e-12, atol=1e-12)
    # β = −b/w, μ = w v in the user's x: w_user = w / (u − l), b_user = b − w l / (u − l).
    w = model.layers[0].weight[:, 0].detach() / 7.0
    b = model.layers[0].bias.detach() - model.layers[0].weight[:, 0].detach() * (-2.0) / 7.0
    v = model.head.weight[0].detach()
    torch.testing.assert_close(form.breakpoints, -b / w, rtol=1e-13, atol=0)
    torch.testing.assert_close(form.delta_slopes, w * v, rtol=1e-13, atol=0)
    assert form.orientations.tolist() == torch.sign(w).tolist()


@pytest.mark.parametrize("seed", SEEDS)
def test_shallow_spline_knows_its_units(seed):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(1, 20), nn.ReLU(), nn.Linear(20, 1)).double()
    form = bdso(model)
    spline = spline_of(model, LOWER, UPPER)
    inside = (form.breakpoints > LOWER) & (form.breakpoints < UPPER)
    torch.testing.assert_close(spline.knots, form.breakpoints[inside].sort().values,
                               rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(form.breakpoints[spline.knot_unit], spline.knots,
                               rtol=1e-14, atol=1e-14)
    # The slope jumps by s_i μ_i at β_i (2022, eq. 2: f'' = Σ μ_i s_i δ(x − β_i)).
    jump = (form.orientations * form.delta_slopes)[spline.knot_unit]
    torch.testing.assert_close(spline.delta_slopes[:, 0], jump, rtol=1e-12, atol=1e-14)
    assert spline.roughness() == pytest.approx(float((form.delta_slopes[inside] ** 2).sum()),
                                               rel=1e-12)
    to_spline = form.to_spline(LOWER, UPPER)
    torch.testing.assert_close(to_spline.points, spline.points, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(to_spline.slopes, spline.slopes, rtol=1e-12, atol=1e-13)


def test_bdso_unit_without_slope_is_part_of_the_offset():
    model = nn.Sequential(nn.Linear(1, 2), nn.ReLU(), nn.Linear(2, 1)).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.0], [2.0]]))
        model[0].bias.copy_(torch.tensor([3.0, -1.0]))
        model[2].weight.copy_(torch.tensor([[0.5, 1.0]]))
        model[2].bias.fill_(0.25)
    form = bdso(model)
    assert form.offset == pytest.approx(0.25 + 0.5 * 3.0)
    assert torch.isnan(form.breakpoints[0]) and form.orientations[0] == 0
    assert form.breakpoints[1] == 0.5 and form.delta_slopes[1] == 2.0


def test_bdso_rejects_deep_networks():
    with pytest.raises(ValueError, match="spline_of"):
        bdso(MLP(1, 4, 2))


# --- the Spline value type ----------------------------------------------------------------------


def test_spline_value_type():
    s = Spline.from_values(torch.tensor([0.0, 1.0, 3.0]), torch.tensor([0.0, 2.0, 0.0]))
    assert s.num_pieces == 2 and s.lower == 0.0 and s.upper == 3.0
    torch.testing.assert_close(s(torch.tensor([0.5, 2.0, 4.0])),
                               torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64))
    assert s(torch.zeros(5, 1)).shape == (5, 1)
    assert s.roughness() == pytest.approx(9.0)  # slopes 2 → −1
    r = s.restrict(0.5, 2.0)
    assert r.num_pieces == 2 and r.lower == 0.5
    torch.testing.assert_close(r.values[:, 0], torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64))
    assert s.restrict(1.5, 2.5).num_pieces == 1
    straight = Spline.from_values(torch.tensor([0.0, 1.0, 2.0]), torch.tensor([0.0, 1.0, 2.0]))
    assert straight.simplify().num_pieces == 1


@pytest.mark.parametrize("seed", SEEDS)
def test_l2_distance_against_quadrature(seed):
    a = spline_of(random_mlp(seed, 8, 2), LOWER, UPPER)
    b = spline_of(random_mlp(seed + 100, 8, 2), LOWER, UPPER)
    x = np.linspace(LOWER, UPPER, 400001)
    diff = (a(torch.from_numpy(x)) - b(torch.from_numpy(x))).numpy()
    expected = np.sqrt(trapezoid(diff**2, x))
    assert a.l2_distance(b) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
def test_roughness_by_layer_sums_to_roughness(seed):
    spline = spline_of(random_mlp(seed, 8, 4, residual=True), LOWER, UPPER)
    parts = spline.roughness_by_layer()
    assert sorted(parts) == [1, 2, 3, 4]
    assert sum(parts.values()) == pytest.approx(spline.roughness(), rel=1e-12)


def test_plot_draws_the_polyline():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    spline_of(random_mlp(0, 8, 2), LOWER, UPPER).plot(ax)
    assert len(ax.lines) == 2
    plt.close(fig)


@pytest.mark.parametrize("bad,match", [
    (MLP(1, 4, 2, activation="tanh"), "ReLU"),
    (MLP(2, 4, 2), "one input"),
    (nn.Sequential(nn.Linear(1, 4), nn.Tanh(), nn.Linear(4, 1)), "Tanh"),
    (nn.Linear(1, 1), "Sequential"),
])
def test_unsupported_networks_are_named(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        spline_of(bad, 0.0, 1.0)


def test_bad_interval():
    with pytest.raises(ValueError, match="lower < upper"):
        spline_of(MLP(1, 4, 1), 1.0, 1.0)


def test_exported():
    assert analysis.spline_of is spline_of and analysis.count_pieces is count_pieces


# --- against regioncam --------------------------------------------------------------------------


def regioncam_regions(model, lower, upper):
    """regioncam's 1-D region count on [lower, upper] (float32, as regioncam computes)."""
    regioncam = pytest.importorskip("regioncam")

    def convert(module_list):
        return [regioncam.nn.Linear(m.weight.detach().double().T.numpy().astype(np.float32),
                                    m.bias.detach().double().numpy().astype(np.float32))
                if isinstance(m, nn.Linear) else regioncam.nn.ReLU() for m in module_list]

    layers = [nn.Linear(1, 1), *_mlp_modules(model)]
    with torch.no_grad():  # regioncam's line is [−size/2, size/2]: shift it onto [lower, upper]
        layers[0].weight.fill_(1.0)
        layers[0].bias.fill_((lower + upper) / 2)
    net = []
    for block in layers:
        if isinstance(block, list):
            net.append(regioncam.nn.Residual(regioncam.nn.Sequential(*convert(block))))
        else:
            net += convert([block])
    cam = regioncam.Regioncam1D(upper - lower)
    cam.add(regioncam.nn.Sequential(*net))
    return cam.num_edges


def _mlp_modules(model):
    mods = [model.layers[0], nn.ReLU()]
    for layer in model.layers[1:]:
        mods += [[layer, nn.ReLU()]] if model.residual else [layer, nn.ReLU()]
    return mods + [model.head]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("residual", [False, True], ids=["plain", "residual"])
@pytest.mark.parametrize("depth,width", [(1, 64), (2, 16), (4, 32), (8, 64), (8, 8)])
def test_region_counts_equal_regioncam(seed, residual, depth, width):
    # regioncam works in float32: round the weights to float32 so both see the same network.
    model = random_mlp(seed, width, depth, residual).float().double()
    ours = count_regions(model, LOWER, UPPER)
    assert ours == regioncam_regions(model, LOWER, UPPER)
    assert count_pieces(model, LOWER, UPPER) <= ours


# --- rounding slivers and the compiled propagation -----------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("depth", [3, 5, 7])
def test_rounding_slivers_are_not_pieces(seed, depth):
    # Milkert et al.'s construction has exactly 2^d pieces on [0, 1]; some of its units touch
    # zero without crossing, and rounding dips them an ulp below: raw pieces ~1e-16 wide.
    from deepbasis.init import compositional_peaks_
    from deepbasis.nn import CompositionalNet

    net = compositional_peaks_(CompositionalNet(depth, dtype=torch.float64), 0.3, 0.7,
                               scale0=0.25, generator=seed).to_mlp()
    spline = spline_of(net, 0.0, 1.0)
    assert spline.num_pieces == count_pieces(net, 0.0, 1.0) == 2**depth
    assert float(spline.points.diff().min()) > 1e-6  # the true pieces are ≥ 0.3^d wide
    x = torch.linspace(0.0, 1.0, 2001, dtype=torch.float64)[:, None]
    with torch.no_grad():  # nothing of the function was lost with the slivers
        torch.testing.assert_close(spline(x), net(x), rtol=1e-12, atol=1e-12)
    raw = spline_of(net, 0.0, 1.0, sliver_rtol=0.0)
    assert raw.num_pieces >= spline.num_pieces  # (seed-dependent: slivers or none)
    narrow = raw.points.diff() <= 1e-12
    assert raw.num_pieces - int(narrow.sum()) <= spline.num_pieces


def test_sliver_rtol_is_checked():
    with pytest.raises(ValueError, match="sliver_rtol"):
        spline_of(random_mlp(0, 4, 2), LOWER, UPPER, sliver_rtol=-1.0)


def assert_compiled_equals_numpy(model, monkeypatch, lower=LOWER, upper=UPPER):
    # The compiled propagation does the NumPy one's arithmetic in the same order; the matrix
    # products may round an ulp differently (SciPy's BLAS against torch's MKL, whose result
    # also depends on the buffers' alignment), so the knots agree to rounding and everything
    # discrete agrees exactly.
    pytest.importorskip("numba")
    from deepbasis.analysis import spline as spline_module

    compiled = spline_of(model, lower, upper)
    assert spline_module._COMPILED  # Numba is installed: the compiled propagation ran
    with monkeypatch.context() as patch:
        patch.setattr(spline_module, "ACCELERATE", False)
        plain = spline_of(model, lower, upper)
    for name in ("points", "values", "slopes"):
        torch.testing.assert_close(getattr(compiled, name), getattr(plain, name), rtol=1e-13,
                                   atol=1e-13 * float(getattr(plain, name).abs().max()))
    assert torch.equal(compiled.knot_layer, plain.knot_layer)
    assert torch.equal(compiled.knot_unit, plain.knot_unit)
    assert len(compiled.crossings) == len(plain.crossings)
    for a, b in zip(compiled.crossings, plain.crossings, strict=True):
        assert a.layer == b.layer
        torch.testing.assert_close(a.x, b.x, rtol=1e-13, atol=1e-13)
        assert torch.equal(a.unit, b.unit) and torch.equal(a.active, b.active)
    return compiled


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("residual", [False, True], ids=["plain", "residual"])
@pytest.mark.parametrize("depth,width", [(1, 64), (3, 16), (8, 64)])
def test_compiled_propagation_equals_numpy(seed, residual, depth, width, monkeypatch):
    assert_compiled_equals_numpy(random_mlp(seed, width, depth, residual), monkeypatch)


def _dead_second_layer(seed):
    model = random_mlp(seed, 16, 3)
    with torch.no_grad():  # every unit of layer 2 is off on [−3, 3]: the output is constant
        model.layers[1].bias.fill_(-1e6)
    return model


def _shared_breakpoints(seed):
    model = random_mlp(seed, 8, 2)
    with torch.no_grad():  # units 0–3 and 4–7 break at the same points (ties to order)
        model.layers[0].weight[4:] = 2.0 * model.layers[0].weight[:4]
        model.layers[0].bias[4:] = 2.0 * model.layers[0].bias[:4]
    return model


def _sequential_ending_in_relu(seed):
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(1, 12, dtype=torch.float64), nn.ReLU(),
                          nn.Sequential(nn.Linear(12, 3, bias=False, dtype=torch.float64),
                                        nn.Identity()), nn.ReLU())
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    return model


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("build", [_dead_second_layer, _shared_breakpoints,
                                   _sequential_ending_in_relu],
                         ids=["dead layer", "shared breakpoints", "sequential ending in relu"])
def test_compiled_propagation_equals_numpy_on_edge_cases(seed, build, monkeypatch):
    model = build(seed)
    spline = assert_compiled_equals_numpy(model, monkeypatch)
    assert_matches_network(model, spline)
    if build is _dead_second_layer:
        assert spline.num_pieces == 1 and spline.crossings[1].count == 0
    if build is _shared_breakpoints:  # each shared point is one knot, found by both units
        first = spline.crossings[0]
        assert first.count == 2 * torch.unique(first.x).numel()


def test_compiled_propagation_runs_blas_on_torch_threads(monkeypatch):
    # The compiled products call SciPy's BLAS: on torch's thread count while spline_of runs,
    # as every product in deepbasis, and left as they were afterwards.
    pytest.importorskip("numba")
    from deepbasis.analysis import _spline_numba

    def blas_threads():
        return [lib.num_threads for lib in _spline_numba._BLAS.lib_controllers]

    seen = []
    compiled = _spline_numba.propagate

    def spy(*args):
        seen.append(blas_threads())
        return compiled(*args)

    monkeypatch.setattr(_spline_numba, "propagate", spy)
    threads = torch.get_num_threads()
    before = blas_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            spline_of(random_mlp(0, 8, 2), LOWER, UPPER)
            assert seen[-1] == [n] * len(before)
            assert blas_threads() == before
    finally:
        torch.set_num_threads(threads)


def test_a_numba_compilation_is_announced_once(monkeypatch, caplog):
    # The first spline_of of a process compiles for ~25 s unless Numba's cache has it: the
    # notice listens for Numba's compile events (a cache load sends none). A fresh function
    # stands in for the propagation, which is compiled and cached by now.
    numba = pytest.importorskip("numba")
    from numba.core import event

    from deepbasis.analysis import _spline_numba

    monkeypatch.setattr(_spline_numba._CompileNotice, "said", False)

    @numba.njit
    def fresh(a):
        return a + 1

    with caplog.at_level("WARNING"), event.install_listener("numba:compile",
                                                             _spline_numba._CompileNotice()):
        fresh(1)
        fresh(1.0)  # a second compilation says nothing more
    notices = [r for r in caplog.records if "compiling spline_of" in r.getMessage()]
    assert len(notices) == 1
