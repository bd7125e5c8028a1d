"""Compositional networks (Milkert et al.; specs/compositional-networks.md)."""

import math
import warnings

import pytest
import torch

from conftest import SEEDS
from deepbasis import MLP, CompositionalNet, init
from deepbasis.nn import ConstructionViolationError, ConstructionViolationWarning, eq5_scales

F64 = torch.float64
SLIVER = 1e-12  # see test_exactly_two_to_the_d_pieces_at_initialization


def grid(n: int = 20001) -> torch.Tensor:
    return torch.linspace(0, 1, n, dtype=F64)[:, None]


def random_net(depth, seed, *, sign=-1, scales="enforced", **kwargs) -> CompositionalNet:
    net = CompositionalNet(depth, sign=sign, scales=scales, dtype=F64, **kwargs)
    return init.compositional_peaks_(net, generator=seed)


def spec_weights(a, s, sigma):
    """The raw weights written out entry by entry from the spec's table (independent code)."""
    d = len(s)
    layers = [([[1.0], [s[0]], [s[0]], [0.0]], [0.0, 0.0, -s[0] * a[0], s[0]])]
    for k in range(d - 1):
        S = s[k + 1] / s[k]
        q = a[k] - a[k] ** 2
        layers.append(([[1.0, sigma / a[k], -sigma / q, 0.0],
                        [0.0, S / a[k], -S / q, 0.0],
                        [0.0, S / a[k], -S / q, -S * a[k + 1]],
                        [0.0, 0.0, 0.0, S]], [0.0] * 4))
    q = a[d - 1] - a[d - 1] ** 2
    layers.append(([[1.0, sigma / a[d - 1], -sigma / q, 0.0]], [0.0]))
    return layers


def exact_jumps(net: CompositionalNet) -> torch.Tensor:
    """|slope right − slope left| at every bend, from eq. 3 at the closed-form bends."""
    knots = net.breakpoints()
    xs = torch.cat([torch.zeros(1, dtype=F64), knots, torch.ones(1, dtype=F64)])
    f = net.construction(xs[:, None])[:, 0].detach()
    slopes = (f[1:] - f[:-1]) / (xs[1:] - xs[:-1])
    return (slopes[1:] - slopes[:-1]).abs()


def test_yarotsky_square_error_falls_fourfold_per_layer():
    """All peaks ½, s_0 = ¼, σ = −1: F → x² with max error 4^{-(d+1)}; 2e-13 at depth 20."""
    x = grid(2**13 + 1)  # every bend and piece midpoint up to depth 12 (errors peak there)
    errors = []
    for depth in range(1, 21):
        net = CompositionalNet(depth, sign=-1, scale0=0.25, dtype=F64)
        with torch.no_grad():
            errors.append(float((net(x) - x**2).abs().max()))
    for depth, (e0, e1) in enumerate(zip(errors[:11], errors[1:12], strict=False), start=1):
        assert 3.99 < e0 / e1 < 4.01, f"depth {depth}: error ratio {e0 / e1}"
    assert errors[-1] < 3e-13
    x_fine = torch.rand(100_000, 1, generator=torch.Generator().manual_seed(0), dtype=F64)
    with torch.no_grad():
        err20 = (CompositionalNet(20, dtype=F64)(x_fine) - x_fine**2).abs().max()
    assert err20 < 2.5e-13


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("depth", [1, 3, 5, 12])
@pytest.mark.parametrize("sign", [-1, 1])
def test_equivalent_mlp_equals_construction(seed, depth, sign):
    """The raw-weight MLP equals eq. 3 to 1e-13 on a dense grid (random peaks)."""
    net = random_net(depth, seed, sign=sign)
    x = grid()
    with torch.no_grad():
        reference = net.construction(x)
        assert net.partial_sums(x).min() >= 0  # the construction holds at initialization
        mlp = net.to_mlp()
        assert isinstance(mlp, MLP) and mlp.width == 4 and mlp.depth == depth
        torch.testing.assert_close(mlp(x), reference, rtol=0, atol=1e-13)
        torch.testing.assert_close(net(x), reference, rtol=0, atol=1e-13)
    assert net.last_violation_ == 0.0


@pytest.mark.parametrize("seed", SEEDS)
def test_free_scales_equivalence_and_gradients(seed):
    gen = torch.Generator().manual_seed(seed)
    net = random_net(6, seed, sign=1, scales="free")
    with torch.no_grad():  # scales no longer on eq. 5
        net.log_scales.add_(0.5 * torch.randn(6, generator=gen, dtype=F64))
    x = grid()
    with torch.no_grad():
        torch.testing.assert_close(net.to_mlp()(x), net.construction(x), rtol=0, atol=1e-13)
    # Gradients reach every peak a_0 … a_{d−1} and every scale through the raw weights.
    net(x).square().mean().backward()
    assert (net.peak_logits.grad[:-1] != 0).all() and (net.log_scales.grad != 0).all()
    assert net.peak_logits.grad[-1] == 0  # the spare peak is inert under free scales


@pytest.mark.parametrize("sign", [-1, 1])
def test_raw_weights_are_the_spec_table(sign):
    a = [0.3, 0.62, 0.45, 0.55, 0.4]
    net = CompositionalNet(4, sign=sign, peaks=a, scale0=0.2, dtype=F64)
    s = [0.2]
    for i in range(3):  # eq. 5 by hand: s_{i+1} = s_i (1 − a_{i+1}) a_{i+2}
        s.append(s[-1] * (1 - a[i + 1]) * a[i + 2])
    torch.testing.assert_close(net.scales().detach(), torch.tensor(s, dtype=F64))
    mlp = net.to_mlp()
    for layer, (w, b) in zip([*mlp.layers, mlp.head], spec_weights(a, s, sign), strict=True):
        torch.testing.assert_close(layer.weight, torch.tensor(w, dtype=F64), rtol=1e-14, atol=0)
        torch.testing.assert_close(layer.bias, torch.tensor(b, dtype=F64), rtol=1e-14, atol=0)


def test_eq5_scales_halves_give_quarters():
    s = eq5_scales(torch.full((8,), 0.5, dtype=F64), 0.25, 7)
    torch.testing.assert_close(s, 0.25 * 0.25 ** torch.arange(7, dtype=F64))


@pytest.mark.parametrize("seed", SEEDS)
def test_closed_form_breakpoints_are_the_bends(seed):
    """2^d − 1 interior bends; eq. 3 is linear between consecutive ones and bends at each."""
    net = random_net(7, seed)
    knots = net.breakpoints()
    assert knots.numel() == 2**7 - 1 and (knots.diff() > 0).all()
    xs = torch.cat([torch.zeros(1, dtype=F64), knots, torch.ones(1, dtype=F64)])
    t = torch.rand(xs.numel() - 1, generator=torch.Generator().manual_seed(seed), dtype=F64)
    inside = xs[:-1] + t * xs.diff()
    with torch.no_grad():
        f = net.construction(xs[:, None])[:, 0]
        linear = f[:-1] + t * f.diff()
        torch.testing.assert_close(net.construction(inside[:, None])[:, 0], linear,
                                   rtol=0, atol=1e-14)
    assert (exact_jumps(net) > 1e-9).all()  # every bend is a real bend


@pytest.mark.parametrize("seed", SEEDS)
def test_exactly_two_to_the_d_pieces_at_initialization(seed):
    """spline-view's exact counter on the raw-weight MLP: 2^d pieces for d = 1 … 12.

    Rounding artifacts: every t1 neuron carries s_k W_{k−1}, which touches zero (without
    crossing) at each valley of W_{k−1} and at x = 1. Rounding can dip it below zero for an ulp
    or two there, and an exact counter then reports extra pieces of width ~1e-16 (off and on
    again; the output changes by ~1e-17). ``count_pieces`` merges pieces narrower than 1e-12 —
    the narrowest true piece is at least 0.3^12 ≈ 5e-7 wide; with ``sliver_rtol=0`` the count
    differs from that only by such slivers.
    """
    from deepbasis.analysis import count_pieces, spline_of

    for depth in range(1, 13):
        for sign in (-1, 1):
            mlp = random_net(depth, seed + 100 * depth, sign=sign).to_mlp()
            assert count_pieces(mlp, 0.0, 1.0) == 2**depth, f"depth {depth}, sign {sign}"
            widths = spline_of(mlp, 0.0, 1.0, sliver_rtol=0.0).points.diff()
            assert int((widths > SLIVER).sum()) == 2**depth, f"depth {depth}, sign {sign}"


@pytest.mark.parametrize("seed", SEEDS)
def test_eq5_derivative_jumps_shrink_with_depth(seed):
    """Eq. 5: the largest derivative jump of the exact spline falls with every two added layers
    (Lemma A.5: s_{i+2}/s_i ≤ 1/4; one layer can add a larger jump than the last, measured in
    1 of 60 seeds) and by 50× from depth 1 to 12; with scales that merely halve per layer
    (not eq. 5) it grows."""
    gen = torch.Generator().manual_seed(seed)
    peaks = 0.3 + 0.4 * torch.rand(13, generator=gen, dtype=F64)
    enforced, halving = [], []
    for depth in range(1, 13):
        net = CompositionalNet(depth, sign=1, peaks=peaks[: depth + 1], dtype=F64)
        enforced.append(float(exact_jumps(net).max()))
        free = CompositionalNet(depth, sign=1, scales="free", peaks=peaks[: depth + 1],
                                dtype=F64)
        with torch.no_grad():
            free.log_scales.copy_(math.log(0.25) - math.log(2) * torch.arange(depth, dtype=F64))
        halving.append(float(exact_jumps(free).max()))
    assert all(b < a for a, b in zip(enforced, enforced[2:], strict=False)), enforced
    assert enforced[-1] < 0.02 * enforced[0]
    assert halving[-1] > 5 * halving[0]


def test_violation_is_reported_not_silently_clipped():
    x = grid(501)
    net = CompositionalNet(4, sign=-1, scale0=0.9, dtype=F64)  # waves outweigh the line
    assert net.partial_sums(x).min() < 0
    with pytest.warns(ConstructionViolationWarning, match="sum' or 't1' neuron"):
        net(x)
    assert net.last_violation_ < 0
    net.on_violation = "raise"
    with pytest.raises(ConstructionViolationError, match="lower the amplitude"):
        net(x)
    net.on_violation = "ignore"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net(x)
    # The raw network then differs from eq. 3 — which is what the report is about.
    assert (net(x) - net.construction(x)).abs().max() > 1e-3


def test_inputs_outside_the_domain_are_reported():
    net = CompositionalNet(3, sign=1, domain=(-2.0, 2.0), on_violation="raise", dtype=F64)
    inside = torch.linspace(-2, 2, 101, dtype=F64)[:, None]
    net(inside)
    torch.testing.assert_close(net(inside), net.construction(inside), rtol=0, atol=1e-14)
    with pytest.raises(ConstructionViolationError):
        net(torch.tensor([[-2.5]], dtype=F64))


@pytest.mark.parametrize("seed", SEEDS)
def test_random_peaks_keep_the_construction_nonnegative(seed):
    for depth in (3, 8):
        net = random_net(depth, seed, sign=-1, scale0=1.0)  # capped below 1
        assert float(net.scales().detach()[0]) < 1.0
        knots = net.breakpoints()[:, None]
        with torch.no_grad():
            assert net.construction(knots).min() >= -1e-15
            assert net.partial_sums(grid(4001)).min() >= -1e-15
        peaks = net.peaks()
        assert ((peaks > 0.3) & (peaks < 0.7)).all()


def test_set_peaks_roundtrip_and_input_checks():
    net = CompositionalNet(3, dtype=F64)
    peaks = torch.tensor([0.2, 0.7, 0.5, 0.9], dtype=F64)
    net.set_peaks_(peaks, 0.1)
    torch.testing.assert_close(net.peaks().detach(), peaks)
    assert float(net.scales().detach()[0]) == pytest.approx(0.1, rel=1e-14)
    with pytest.raises(ValueError, match="needs 4 peaks"):
        net.set_peaks_([0.5, 0.5])
    with pytest.raises(ValueError, match="peaks must lie in"):
        net.set_peaks_([0.5, 0.5, 0.99, 0.5])
    with pytest.raises(ValueError, match="depth must be a positive integer"):
        CompositionalNet(0)
    with pytest.raises(ValueError, match="sign must be -1"):
        CompositionalNet(3, sign=0)
    with pytest.raises(ValueError, match="unknown scales 'fixed'; valid choices"):
        CompositionalNet(3, scales="fixed")
    with pytest.raises(ValueError, match=r"shape \(N, 1\)"):
        net(torch.zeros(5, dtype=F64))


def test_hidden_preactivations_carry_the_partial_sums():
    net = random_net(4, 0, sign=-1)
    x = grid(301)
    with torch.no_grad():
        pre = net.hidden_preactivations(x)
        sums = torch.stack([z[:, 0] for z in pre], dim=1)  # the 'sum' neuron of each layer
        torch.testing.assert_close(sums, net.partial_sums(x), rtol=0, atol=1e-14)
        bias = torch.stack([z[0, 3] for z in pre])  # the constant neuron carries s_k
        torch.testing.assert_close(bias, net.scales(), rtol=1e-14, atol=0)
