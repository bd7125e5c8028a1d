"""Two-stage training of compositional networks (Milkert et al., spec "Two-stage training")."""

import pytest
import torch

from conftest import SEEDS
from deepbasis import MLP, CompositionalNet, fit_two_stage, init
from deepbasis.nn import ConstructionViolationWarning
from deepbasis.train import History, pretrain

F64 = torch.float64
# Pretraining on x³ drives F below zero near x = 0, where the sum neuron clips (reported by a
# ConstructionViolationWarning; test_pretrain_reports_violations_once checks the report).
CLIPS = pytest.mark.filterwarnings("ignore::deepbasis.nn.ConstructionViolationWarning")


def data(n: int = 200):
    x = torch.linspace(0, 1, n, dtype=F64)[:, None]
    return x, x**3


def net(seed: int, **kwargs) -> CompositionalNet:
    return init.compositional_peaks_(CompositionalNet(5, dtype=F64, **kwargs), generator=seed)


@CLIPS
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("scales", ["enforced", "free"])
def test_pretrain_trains_only_peaks_and_scales(seed, scales):
    x, y = data()
    model = net(seed, scales=scales)
    before = model.to_mlp()
    history = pretrain(model, x, y, steps=60, lr=1e-2)
    assert isinstance(history, History) and len(history.loss) == 61
    assert history.loss[-1] < 0.5 * history.loss[0]
    with torch.no_grad():
        mse = float(((model(x) - y) ** 2).mean())
    assert mse == pytest.approx(history.loss[-1], rel=1e-12)
    # Still the construction: the raw-weight MLP equals eq. 3 wherever it held.
    with torch.no_grad():
        if model.partial_sums(x).min() >= 0:
            torch.testing.assert_close(model.to_mlp()(x), model.construction(x), rtol=0,
                                       atol=1e-13)
        assert not torch.equal(before.layers[1].weight, model.to_mlp().layers[1].weight)
    assert model.breakpoints().numel() == 2**5 - 1


@CLIPS
@pytest.mark.parametrize("seed", SEEDS)
def test_two_stages_join_without_a_jump(seed):
    """Stage 2 starts from exactly the function stage 1 ended with, then keeps improving."""
    x, y = data()
    model = net(seed)
    result = fit_two_stage(model, x, y, pretrain_steps=40, steps=40, lr=1e-3, pretrain_lr=1e-2)
    assert isinstance(result.network, MLP) and result.network.width == 4
    assert result.history.loss[0] == pytest.approx(result.pretrain.loss[-1], rel=1e-12)
    assert result.final_loss < result.history.loss[0]
    # Stage 2 trains a copy: the compositional network keeps its pretrained state.
    with torch.no_grad():
        assert float(((model(x) - y) ** 2).mean()) == pytest.approx(result.pretrain.loss[-1],
                                                                   rel=1e-12)


@CLIPS
def test_no_pretraining_starts_from_the_construction():
    x, y = data()
    model = net(0)
    with torch.no_grad():
        mse0 = float(((model.construction(x) - y) ** 2).mean())
    result = fit_two_stage(model, x, y, pretrain_steps=0, steps=5)
    assert result.pretrain is None
    assert result.history.loss[0] == pytest.approx(mse0, rel=1e-12)


@CLIPS
def test_stage_two_can_be_lsgd_and_takes_any_target():
    x = torch.linspace(0, 1, 100, dtype=F64)[:, None]
    y = torch.sin(torch.pi * x[:, 0] / 2)  # (N,) targets, like deepbasis.fit
    result = fit_two_stage(net(1, sign=1), x, y, pretrain_steps=10, steps=10, method="lsgd",
                           lr=5e-3)
    assert result.history.method == "lsgd" and result.final_loss < result.pretrain.loss[0]


def test_pretrain_reports_violations_once():
    x, y = data()
    model = CompositionalNet(4, sign=-1, scale0=0.9, dtype=F64)
    with pytest.warns(ConstructionViolationWarning, match="clipped a partial sum") as record:
        history = pretrain(model, x, y, steps=5)
    assert len([w for w in record if w.category is ConstructionViolationWarning]) == 1
    assert history.settings["violation_steps"] > 0 and history.settings["worst_violation"] < 0
    assert model.on_violation == "warn"  # restored


def test_input_checks():
    x, y = data(20)
    model = net(0)
    with pytest.raises(ValueError, match="Invalid learning rate: -1"):
        pretrain(model, x, y, lr=-1.0)
    with pytest.raises(ValueError, match="steps must be a non-negative integer"):
        pretrain(model, x, y, steps=-3)
    with pytest.raises(ValueError, match=r"y must have shape \(N,\) or \(N, m\)"):
        pretrain(model, x, y[:10])
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'"):
        pretrain(model, x, y, optimizer="lbfgs")
    with pytest.raises(TypeError, match="to_mlp"):
        fit_two_stage(MLP(1, 4, 2, dtype=F64), x, y)
