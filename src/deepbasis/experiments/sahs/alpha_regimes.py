"""Kernel vs adaptive regime: α-scaled shallow networks against linear interpolation and the
natural cubic spline (Sahs et al. 2022, §2.5.1, §2.6, Corollary 4, Table 2).

Random data: N points x ~ U[−1, 1], y ~ U[−1, 1]. Shallow ReLU networks of width H, scaled by α
((w, b, v) → (αw, αb, v/α)), trained by full-batch gradient descent on the summed squared error
to near-zero training loss. Two initializations, as in the paper's Table 2:

- *uniform (flat)*: breakpoints ~ U[−1, 1], random orientations, |w| = α, v = 0 — a perfectly
  flat initial function;
- *He*: He-normal weights and N(0, 2) biases (Cauchy breakpoints, non-zero delta-slopes), then
  ``init.alpha_scale_(α)``.

The fit is compared on [min x, max x] with the linear interpolant and SciPy's natural cubic
spline (``deepbasis.reference``): relative L² distances. Theory: small α → breakpoints move, the
fit approaches the interpolating linear spline; large α → the kernel regime, the natural cubic
spline (Corollary 4). Table 2's numbers were lost in our copy of the paper, so only the regimes
are compared. The step size follows the curvature: every ``refresh`` epochs it is reset to
0.5 / λ_max of the current tangent kernel J Jᵀ (the loss Hessian is ≈ 2 J Jᵀ, so GD is
stable below 1 / λ_max), so gradient descent stays close to gradient flow for every α.

**Converged networks.** Gradient descent cannot reach the paper's "near-zero loss" here: the
tangent kernel's condition number at initialization is 1e4–1e6, so GD needs 1e5–1e6 epochs, and
the default profile's 30,000 leave losses of 1e-3…1e-1. Each network is therefore also trained
by Levenberg–Marquardt on every parameter (``fit(method="lm")``, joint variant, from the same
initialization). The damping scale must be the identity (Levenberg's): with 8 rows and 601
parameters its step δ = −Jᵀ(JJᵀ + μI)⁻¹r is the minimum-norm Gauss–Newton step in the
parameters' own metric, the one gradient descent works in. Marquardt's diagonal scaling (LM's
default) makes the method invariant to a diagonal rescaling of the parameters — and the α
scaling (w, b, v) → (αw, αb, v/α) *is* one, so it would erase the effect under study
(measured: with it, α = 0.1 converges in two iterations and α = 30 stalls; with the identity
the reverse). GD stays beside LM as the paper's method; Table 2 / Cor. 4 are judged on the LM
networks, and reported for both. Where LM does not reach the tolerance either (small α: ReLU
units that must move their breakpoints from a flat start), its claim says so.

Beyond the paper, the *kernel limit* (α → ∞) exactly: there the output weights' features
α·relu(w x + b) dominate the tangent kernel, the features barely move, and gradient flow from
the initial function f₀ converges to f₀ + Φ Φ⁺ (y − f₀) (the minimum-norm change of v that
interpolates; Φ = the initial hidden features). It is computed by least squares from the same
initialization, so Corollary 4 is checked even where gradient descent has not converged
(its rate is set by the smallest eigenvalue of the 8 × 8 kernel).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.func import functional_call, jacrev

from ...init import alpha_scale_, he_
from ...nn import MLP
from ...reference import linear_interpolant, natural_cubic_spline
from ...runner import Cell, Claim, Experiment, Report
from ...train import fit
from ..plotting import COLORS, markdown_table, new_figure, save_figure

_COMMON = {"points": 8, "width": 200, "tolerance": 1e-8, "refresh": 200, "lm_steps": 500,
           "trainers": ["gd", "lm"]}
PROFILES = {
    "quick": {**_COMMON, "alphas": [0.1, 30.0], "inits": ["uniform"], "epochs": 100,
              "lm_steps": 60, "seeds": 1},
    "default": {**_COMMON, "alphas": [0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0],
                "inits": ["uniform", "he"], "epochs": 30_000, "seeds": 3},
    "paper": {**_COMMON, "alphas": [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0],
              "inits": ["uniform", "he"], "epochs": 100_000, "seeds": 5},
}


def cells(params: Mapping[str, Any]) -> list[Cell]:
    common = ("points", "width", "tolerance")
    own = {"gd": ("refresh", "epochs"), "lm": ("lm_steps",)}
    return [Cell({"init": i, "alpha": a, "trainer": t,
                  **{k: params[k] for k in (*common, *own[t])}},
                 tuple(range(params["seeds"])))
            for t in params["trainers"] for i in params["inits"] for a in params["alphas"]]


def _data(points: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.sort(torch.rand(points, generator=g, dtype=torch.float64) * 2 - 1).values
    y = torch.rand(points, generator=g, dtype=torch.float64) * 2 - 1
    return x[:, None], y[:, None]


def _model(init: str, width: int, alpha: float, seed: int) -> MLP:
    model = MLP(1, width, 1, dtype=torch.float64)
    g = torch.Generator().manual_seed(1000 + seed)
    if init == "uniform":
        beta = torch.rand(width, generator=g, dtype=torch.float64) * 2 - 1
        s = torch.where(torch.rand(width, generator=g) < 0.5, -1.0, 1.0).double()
        with torch.no_grad():
            model.layers[0].weight.copy_((s * alpha)[:, None])
            model.layers[0].bias.copy_(-s * alpha * beta)
            model.head.weight.zero_()
            model.head.bias.zero_()
    else:
        he_(model, "normal", zero_bias=False, generator=g)
        alpha_scale_(model, alpha)
    return model


def _step_size(model: MLP, x: torch.Tensor) -> float:
    params = {k: v.detach() for k, v in model.named_parameters()}
    jac = jacrev(lambda p: functional_call(model, p, (x,))[:, 0])(params)
    j = torch.cat([v.reshape(x.shape[0], -1) for v in jac.values()], dim=1)  # (N, P)
    lam = float(torch.linalg.eigvalsh(j @ j.T).max())
    return 0.5 / lam if lam > 0 else 1e-3  # loss Σ ε²: Hessian ≈ 2 JᵀJ, stable below 1/λ


@torch.no_grad()
def _kernel_limit(model: MLP, x: torch.Tensor, y: torch.Tensor, grid: torch.Tensor) -> np.ndarray:
    """What gradient flow from ``model`` converges to as α → ∞ (module docstring), on ``grid``."""
    def features(t):
        return torch.relu(model.layers[0](t))

    change = torch.linalg.lstsq(features(x), y - model(x), driver="gelsd").solution  # min-norm
    return (model(grid) + features(grid) @ change)[:, 0].numpy()


def _train_gd(model: MLP, x: torch.Tensor, y: torch.Tensor, settings) -> tuple[float, int]:
    """The paper's method: full-batch GD on the summed squared error, curvature step size."""
    params = list(model.parameters())
    loss = float("inf")
    epoch = 0
    for epoch in range(1, settings["epochs"] + 1):  # noqa: B007 - the count is reported
        if (epoch - 1) % settings["refresh"] == 0:
            lr = _step_size(model, x)
        loss_t = ((model(x) - y) ** 2).sum()
        grads = torch.autograd.grad(loss_t, params)
        loss = float(loss_t.detach())
        if loss < settings["tolerance"] or not math.isfinite(loss):
            break
        with torch.no_grad():
            torch._foreach_add_(params, grads, alpha=-lr)
    return loss, epoch


def _train_lm(model: MLP, x: torch.Tensor, y: torch.Tensor, settings) -> tuple[float, int]:
    """Levenberg–Marquardt on every parameter to the same tolerance (module docstring)."""
    n = x.shape[0]
    history = fit(model, x, y, method="lm", steps=settings["lm_steps"], progress=False,
                  target_loss=settings["tolerance"] / n,  # fit's loss is the mean, GD's the sum
                  optimizer_options={"variant": "joint", "scaling": "identity"}, threads=None)
    return history.final_loss * n, history.steps


def run(settings: Mapping[str, Any], seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    out = []
    for seed in seeds:
        x, y = _data(settings["points"], seed)
        model = _model(settings["init"], settings["width"], settings["alpha"], seed)
        xs = x[:, 0].numpy()
        grid = np.linspace(xs[0], xs[-1], 2001)
        limit = _kernel_limit(model, x, y, torch.from_numpy(grid)[:, None])
        if settings.get("trainer", "gd") == "lm":
            loss, epoch = _train_lm(model, x, y, settings)
        else:
            loss, epoch = _train_gd(model, x, y, settings)
        ys = y[:, 0].numpy()
        with torch.no_grad():
            f = model(torch.from_numpy(grid)[:, None])[:, 0].numpy()
        lin = linear_interpolant(xs, ys)(torch.from_numpy(grid)).numpy()
        cub = natural_cubic_spline(xs, ys)(grid)
        scale = np.sqrt(np.mean((cub - lin) ** 2))
        out.append({
            "seed": seed, "train_loss": loss, "epochs": epoch,
            "to_linear": float(np.sqrt(np.mean((f - lin) ** 2)) / scale),
            "to_cubic": float(np.sqrt(np.mean((f - cub) ** 2)) / scale),
            "limit_to_linear": float(np.sqrt(np.mean((limit - lin) ** 2)) / scale),
            "limit_to_cubic": float(np.sqrt(np.mean((limit - cub) ** 2)) / scale),
            "x": xs.tolist(), "y": ys.tolist(), "fit": f[::20].tolist(),
            "limit_fit": limit[::20].tolist(),
        })
    return out


def report(records: list[dict], params: Mapping[str, Any], out: Path) -> Report:
    trainers = params.get("trainers", ["gd"])
    judged_by = "lm" if "lm" in trainers else trainers[0]  # the converged networks
    by_trainer = {t: [r for r in records if r["settings"].get("trainer", "gd") == t]
                  for t in trainers}
    tables, all_claims = [], []
    for trainer in trainers:
        part = _report_trainer(by_trainer[trainer], params, out, trainer,
                               judged=trainer == judged_by)
        tables.append(part[0])
        all_claims += part[1]
        if trainer == judged_by:
            name = part[2]
    markdown = (f"N = {params['points']} random points, width {params['width']}, "
                f"{params['seeds']} seeds; trained until the summed squared error is < "
                f"{params['tolerance']:g}: by GD (the paper's method, at most "
                f"{params['epochs']} epochs) and by Levenberg–Marquardt on every parameter (at "
                f"most {params.get('lm_steps', 0)} iterations). Distances are RMS over [min x, "
                "max x] divided by the RMS distance between the two splines. The row α = ∞ is "
                "the exact kernel limit (least squares from the initial features, module "
                "docstring), not a trained network. The regime claims are judged on the "
                f"{judged_by.upper()} networks; the other trainer's are reported beside them "
                "(marked 'reported').\n\n" + "\n\n".join(tables))
    return Report(claims=all_claims, markdown=markdown, figures=[name])


def _report_trainer(records, params, out, trainer, judged):
    def group(i, a):
        return [r for r in records if r["settings"]["init"] == i and r["settings"]["alpha"] == a]

    alphas, inits = params["alphas"], params["inits"]
    label = {"gd": "GD", "lm": "LM"}[trainer]
    figure, axes = new_figure(2, 1, width=5.0, height=3.8)
    ax = axes[0, 0]
    rows, summary = [], {}
    for color, init in zip(COLORS, inits, strict=False):
        lin = [np.mean([r["to_linear"] for r in group(init, a)]) for a in alphas]
        cub = [np.mean([r["to_cubic"] for r in group(init, a)]) for a in alphas]
        ax.plot(alphas, lin, marker="o", color=color, label=f"{init}: to linear interpolant")
        ax.plot(alphas, cub, marker="s", ls="--", color=color,
                label=f"{init}: to natural cubic spline")
        for a, dl, dc in zip(alphas, lin, cub, strict=True):
            g = group(init, a)
            loss = max(r["train_loss"] for r in g)
            rows.append([init, a, f"{dl:.3f}", f"{dc:.3f}", f"{loss:.1e}",
                         int(np.mean([r["epochs"] for r in g]))])
        limit = [float(np.mean([r[f"limit_to_{k}"] for r in records
                                if r["settings"]["init"] == init])) for k in ("linear", "cubic")]
        ax.axhline(limit[1], color=color, ls=":", lw=1.2,
                   label=f"{init}: α → ∞ limit (least squares) to cubic spline")
        rows.append([init, "∞ (exact limit)", f"{limit[0]:.3f}", f"{limit[1]:.3f}", "0", "—"])
        summary[init] = {"small α": (round(lin[0], 3), round(cub[0], 3)),
                         "large α": (round(lin[-1], 3), round(cub[-1], 3)),
                         "limit": (round(limit[0], 3), round(limit[1], 3))}
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("α")
    ax.set_ylabel("relative L² distance")
    ax.set_title(f"Trained fit vs interpolating splines ({label})", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    ax = axes[0, 1]
    r0 = group(inits[0], alphas[0])[0]
    xs, ys = np.asarray(r0["x"]), np.asarray(r0["y"])
    grid = np.linspace(xs[0], xs[-1], 2001)[::20]
    ax.plot(grid, natural_cubic_spline(xs, ys)(grid), color="k", lw=2.5, alpha=0.25,
            label="natural cubic spline")
    ax.plot(xs, ys, "k.", ms=8)
    shown = dict.fromkeys((alphas[0], alphas[len(alphas) // 2], alphas[-1]))  # distinct, ordered
    for color, a in zip(COLORS, shown, strict=False):
        ax.plot(grid, group(inits[0], a)[0]["fit"], color=color, lw=1.2, label=f"α = {a:g}")
    if "limit_fit" in r0:  # records from before the limit was stored have none
        ax.plot(grid, r0["limit_fit"], color="k", ls=":", lw=1.2,
                label="α → ∞ limit (least squares)")
    ax.set_title(f"{label}, {inits[0]} init, seed 0: fits for {len(shown)} values of α",
                 fontsize=10)
    ax.legend(fontsize=7)
    name = save_figure(figure, out, "alpha_regimes.png" if judged else
                       f"alpha_regimes_{trainer}.png")
    table = f"**{label}**\n\n" + markdown_table(
        ["init", "α", "to linear interp. (rel. L²)", "to natural cubic", "max final train loss",
         "mean epochs" if trainer == "gd" else "mean LM iterations"], rows)
    worst = max(r["train_loss"] for r in records)
    prefix = "" if judged else "(reported) "
    claims = [Claim(
        f"{label}: every network is trained to near-zero loss (summed squared error < 1e-4), as "
        "the comparison assumes", passed=bool(worst < 1e-4), value={"largest final loss": worst},
        paper="'trained to near 0 training loss'", figure=name)]
    for init in inits:
        (l_small, c_small), (l_large, c_large) = (summary[init]["small α"],
                                                  summary[init]["large α"])
        # A regime claim is about trained (interpolating) networks: it holds only where every
        # network at that α reached the near-zero loss.
        loss_small = max(r["train_loss"] for r in group(init, alphas[0]))
        loss_large = max(r["train_loss"] for r in group(init, alphas[-1]))
        if not judged:
            claims.append(Claim(
                f"{prefix}{label}, {init} init: small α closer to the linear interpolant and "
                "large α closer to the natural cubic spline",
                passed=bool(l_small < c_small and c_large < l_large),
                value={"small α (to linear, to cubic)": (l_small, c_small),
                       "large α (to linear, to cubic)": (l_large, c_large)},
                paper="Table 2 (judged on the converged networks)", figure=name))
            continue
        claims.append(Claim(
            f"{label}, {init} init: small α (= {alphas[0]:g}) → the trained networks (summed "
            "squared error < 1e-4) are closer to the linear interpolant than to the natural "
            "cubic spline",
            passed=bool(loss_small < 1e-4 and l_small < c_small),
            value={"to linear": l_small, "to cubic": c_small, "largest final loss": loss_small},
            paper="Table 2: small α ≈ linear interpolation (values lost in our copy)",
            figure=name))
        claims.append(Claim(
            f"{label}, {init} init: large α (= {alphas[-1]:g}) → the trained networks (summed "
            "squared error < 1e-4) are closer to the natural cubic spline",
            passed=bool(loss_large < 1e-4 and c_large < l_large),
            value={"to linear": l_large, "to cubic": c_large, "largest final loss": loss_large},
            paper="Table 2 / Cor. 4: large α ≈ natural cubic spline", figure=name))
        l_limit, c_limit = summary[init]["limit"]
        claims.append(Claim(
            f"Beyond the paper, {init} init: the exact α → ∞ limit (minimum-norm interpolation "
            f"with the initial features) is closer to the natural cubic spline than to the "
            f"linear interpolant",
            passed=bool(c_limit < l_limit), value={"to linear": l_limit, "to cubic": c_limit},
            paper="Cor. 4: the kernel regime gives the natural cubic spline", figure=name))
    return table, claims, name


EXPERIMENT = Experiment(
    id="sahs.alpha_regimes",
    title="α-scaled init vs linear interpolation and natural cubic spline",
    paper="Sahs et al. (2022), §2.5.1, §2.6, Corollary 4, Table 2",
    profiles=PROFILES,
    cells=cells,
    run=run,
    report=report,
    description="Small α: adaptive regime (linear spline); large α: kernel regime (cubic).",
)
