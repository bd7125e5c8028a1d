"""Breakpoint and delta-slope distributions at initialization (Sahs et al. 2020, Thm 1, Cor 1,
Fig. 1; 2022, Thm 1).

Shallow: the β = −b/w and μ = w v of many units of a Gaussian (He, with N(0, 2) biases) and a
uniform (PyTorch's default) initialization against the laws re-derived in
``deepbasis.analysis.bdso_distributions`` (Kolmogorov–Smirnov). Deep: a 3-layer He network's
breakpoints per layer (every zero crossing of the layer's units) and the output's slope jumps at
the breakpoints each layer induces (exact, ``analysis.spline_of``).

Flatter with depth (2020 §1 and §3: "we initialize fully-connected ReLU networks of varying
depths … as depth increases, delta-slopes have lower variance and thus lead to even flatter
initial functions") is a statement about *networks* of increasing depth. It is measured on
networks of depth 1 … ``sweep_depths`` (same width), unit by unit: the output's slope change
|Δ slope| at every active breakpoint, under He and under PyTorch's default init (which the
paper's code calls He); each network's median |Δ slope| is one sample, and the claim needs a
95 % Welch interval. "The breakpoint distribution grows wider" is measured the same way, by the
IQR of each network's breakpoints. (An earlier version grouped one network's slope jumps and
breakpoints by the layer that made them, which cannot show a depth trend when every layer is
drawn independently; the per-layer histograms stay as a figure.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

from ...analysis import bdso, spline_of
from ...analysis import bdso_distributions as dist
from ...init import he_, torch_default_
from ...nn import MLP
from ...runner import Cell, Claim, Experiment, Report
from ..plotting import COLORS, markdown_table, new_figure, save_figure
from ..stats import welch_ci

BETA_BINS = np.linspace(-8, 8, 81).tolist()
Z_BINS = np.linspace(-8, 8, 81).tolist()
TRI_BINS = np.linspace(-1.2, 1.2, 49).tolist()
MU_BINS = np.linspace(-1, 1, 81).tolist()
DEEP_BETA_BINS = np.linspace(-6, 6, 61).tolist()
LOG_JUMP_BINS = np.linspace(-6, 2, 65).tolist()

PROFILES = {
    "quick": {"units": 5_000, "seeds": 2, "deep_width": 8, "deep_depth": 3, "deep_seeds": 3,
              "deep_interval": 20.0, "sweep_depths": [1, 2, 3], "sweep_seeds": 3},
    "default": {"units": 200_000, "seeds": 5, "deep_width": 64, "deep_depth": 3,
                "deep_seeds": 40, "deep_interval": 20.0, "sweep_depths": [1, 2, 3, 4],
                "sweep_seeds": 100},  # 20 left He's widening inconclusive (−0.17 to +0.32)
    "paper": {"units": 1_000_000, "seeds": 10, "deep_width": 64, "deep_depth": 3,
              "deep_seeds": 200, "deep_interval": 20.0, "sweep_depths": [1, 2, 3, 4, 5],
              "sweep_seeds": 100},
}
SWEEP_INITS = {"he": "He (normal, N(0, 2/fan_in) biases)", "torch": "PyTorch default"}
_SHORT = {"he": "He", "torch": "PyTorch default"}


def cells(params: Mapping[str, Any]) -> list[Cell]:
    shallow = tuple(range(params["seeds"]))
    return [
        Cell({"part": "gaussian", "units": params["units"]}, shallow),
        Cell({"part": "uniform", "units": params["units"]}, shallow),
        Cell({"part": "deep", "width": params["deep_width"], "depth": params["deep_depth"],
              "interval": params["deep_interval"]}, tuple(range(params["deep_seeds"]))),
        *(Cell({"part": "depth_sweep", "init": init, "width": params["deep_width"],
                "depth": depth, "interval": params["deep_interval"]},
               tuple(range(params["sweep_seeds"])))
          for init in SWEEP_INITS for depth in params["sweep_depths"]),
    ]


def _ks(sample, cdf) -> float:
    return float(stats.kstest(sample, cdf).pvalue)


def _hist(values, bins) -> list[int]:
    return np.histogram(values, bins=bins)[0].tolist()


def _gaussian(units: int, seed: int) -> dict[str, Any]:
    model = he_(MLP(1, units, 1, dtype=torch.float64), "normal", zero_bias=False,
                generator=seed)
    form = bdso(model)
    beta, mu = form.breakpoints.numpy(), form.delta_slopes.numpy()
    sw = sb = math.sqrt(2.0)  # He with biases: std √(2 / fan_in) and fan_in = 1
    sv = math.sqrt(2.0 / units)
    z = mu / dist.gaussian_delta_slope_scale(beta, sb, sw, sv)
    return {
        "ks_beta": _ks(beta, dist.gaussian_breakpoint(sb, sw).cdf),
        "ks_mu_given_beta": _ks(z, "laplace"),
        "ks_mu": _ks(mu[:20_000], lambda m: dist.gaussian_delta_slope_cdf(m, sw, sv)),
        "beta_hist": _hist(beta, BETA_BINS), "z_hist": _hist(z, Z_BINS), "n": int(beta.size),
        "mu_scaled_hist": _hist(mu / (sv * sw), MU_BINS),
    }


def _uniform(units: int, seed: int) -> dict[str, Any]:
    # PyTorch's default init is uniform: a_w = a_b = 1/√fan_in = 1, a_v = 1/√H (Thm 1b).
    model = torch_default_(MLP(1, units, 1, dtype=torch.float64), generator=seed)
    form = bdso(model)
    beta, mu = form.breakpoints.numpy(), form.delta_slopes.numpy()
    a_b = a_w = 1.0
    a_v = 1.0 / math.sqrt(units)
    z = mu / dist.uniform_delta_slope_half_width(beta, a_b, a_w, a_v)
    return {
        "ks_beta": _ks(beta, lambda b: dist.uniform_breakpoint_cdf(b, a_b, a_w)),
        "ks_mu_given_beta": _ks(z, dist.standard_triangular().cdf),
        "ks_mu": _ks(mu, lambda m: dist.uniform_delta_slope_cdf(m, a_w, a_v)),
        "beta_hist": _hist(beta, BETA_BINS), "z_hist": _hist(z, TRI_BINS), "n": int(beta.size),
        "mu_scaled_hist": _hist(mu / (a_w * a_v), MU_BINS),
    }


def _deep(width: int, depth: int, interval: float, seed: int) -> dict[str, Any]:
    model = he_(MLP(1, width, depth, dtype=torch.float64), "normal", zero_bias=False,
                generator=seed)
    spline = spline_of(model, -interval, interval)
    jumps = spline.delta_slopes.abs()[:, 0].numpy()
    layers = []
    for c in spline.crossings:
        x = c.x.numpy()
        j = jumps[(spline.knot_layer == c.layer).numpy()]
        layers.append({
            "layer": c.layer, "count": c.count, "active": c.count_active,
            "abs_beta": np.abs(x).tolist(), "abs_jump": j.tolist(),
        })
    return {"layers": layers, "pieces": spline.num_pieces}


def _depth_sweep(init: str, width: int, depth: int, interval: float,
                 seed: int) -> dict[str, Any]:
    """One network of ``depth`` hidden layers: the output's |Δ slope| at each active
    breakpoint (one per unit crossing), summarized, with a histogram of log10 |Δ slope|."""
    model = MLP(1, width, depth, dtype=torch.float64)
    if init == "he":
        he_(model, "normal", zero_bias=False, generator=seed)
    else:
        torch_default_(model, generator=seed)
    spline = spline_of(model, -interval, interval)
    jumps = spline.delta_slopes.abs()[:, 0].numpy()
    jumps = jumps[jumps > 0]
    log_jumps = np.log10(jumps) if jumps.size else np.zeros(0)
    # Every zero crossing of every unit, symmetrized (the law is symmetric): its IQR is the
    # width of the network's breakpoint distribution.
    xs = np.concatenate([np.abs(c.x.numpy()) for c in spline.crossings])
    iqr = float(np.subtract(*np.percentile(np.concatenate([xs, -xs]), [75, 25]))) if xs.size \
        else 0.0
    return {"breakpoints": int(jumps.size), "crossings_iqr": iqr,
            "median_jump": float(np.median(jumps)) if jumps.size else 0.0,
            "rms_jump": float(np.sqrt(np.mean(jumps**2))) if jumps.size else 0.0,
            "log_jump_hist": np.histogram(log_jumps, bins=LOG_JUMP_BINS)[0].tolist()}


def run(settings: Mapping[str, Any], seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    out = []
    for seed in seeds:
        if settings["part"] == "gaussian":
            rec = _gaussian(settings["units"], seed)
        elif settings["part"] == "uniform":
            rec = _uniform(settings["units"], seed)
        elif settings["part"] == "depth_sweep":
            rec = _depth_sweep(settings["init"], settings["width"], settings["depth"],
                               settings["interval"], seed)
        else:
            rec = _deep(settings["width"], settings["depth"], settings["interval"], seed)
        out.append({"seed": seed, **rec})
    return out


def _density(ax, counts, bins, label, color, total=None):
    """Histogram as a density; ``total`` = all draws (some may fall outside the bins)."""
    counts = np.asarray(counts, dtype=float)
    edges = np.asarray(bins)
    width = np.diff(edges)
    total = counts.sum() if total is None else total
    ax.stairs(counts / (total * width), edges, color=color, label=label, lw=1.2)


def report(records: list[dict], params: Mapping[str, Any], out: Path) -> Report:
    by = {p: [r for r in records if r["settings"]["part"] == p]
          for p in ("gaussian", "uniform", "deep", "depth_sweep")}
    units = params["units"]
    figure, axes = new_figure(3, 2, width=4.2, height=3.2)
    theory = "#444444"
    # Gaussian: β vs Cauchy(0, 1); μ / scale(β) vs Laplace(0, 1); μ (K₀) on the μ/(σ_v σ_w)
    # scale. Uniform: β, μ∣β, μ.
    panels = {
        "gaussian": (COLORS[0], (
            (axes[0, 0], "beta_hist", BETA_BINS, stats.cauchy(0, 1).pdf,
             "He (Gaussian): breakpoints β vs Cauchy(0, 1)"),
            (axes[0, 1], "z_hist", Z_BINS, stats.laplace().pdf,
             "He: μ / scale(β) vs Laplace(0, 1)  (μ∣β)"),
            (axes[0, 2], "mu_scaled_hist", MU_BINS,
             lambda m: dist.gaussian_delta_slope_pdf(m, 1.0, 1.0),
             "He: μ / (σ_v σ_w) vs K₀(|·|)/π"),
        )),
        "uniform": (COLORS[1], (
            (axes[1, 0], "beta_hist", BETA_BINS,
             lambda b: dist.uniform_breakpoint_pdf(b, 1.0, 1.0),
             "PyTorch default (uniform): β vs min(1/|β|, 1)²/4"),
            (axes[1, 1], "z_hist", TRI_BINS, dist.standard_triangular().pdf,
             "uniform: μ / half-width(β) vs triangular"),
            (axes[1, 2], "mu_scaled_hist", MU_BINS,
             lambda m: dist.uniform_delta_slope_pdf(m, 1.0, 1.0),
             "uniform: μ / (a_w a_v) vs log(1/|μ|)/2"),
        )),
    }
    for family, (color, rows) in panels.items():
        for ax, key, bins, pdf, title in rows:
            _density(ax, np.sum([r[key] for r in by[family]], axis=0), bins, "draws", color,
                     total=sum(r["n"] for r in by[family]))
            grid = np.linspace(bins[0], bins[-1], 401)
            ax.plot(grid, pdf(grid), color=theory, ls="--", label="theory")
            ax.set_title(title, fontsize=9)
            ax.legend(fontsize=8)
    name_shallow = save_figure(figure, out, "init_distributions_shallow.png")

    depth = params["deep_depth"]
    layers = range(1, depth + 1)
    beta_by_layer = {ell: np.concatenate([r["layers"][ell - 1]["abs_beta"] for r in by["deep"]])
                     for ell in layers}
    jump_by_layer = {ell: np.concatenate([r["layers"][ell - 1]["abs_jump"] for r in by["deep"]])
                     for ell in layers}
    figure, axes = new_figure(2, 2, width=4.8, height=3.4)
    for ell, color in zip(layers, COLORS, strict=False):
        b = beta_by_layer[ell]
        signed = np.concatenate([b, -b])  # |β| mirrored: the law is symmetric
        counts = np.histogram(signed, bins=DEEP_BETA_BINS)[0]
        _density(axes[0, 0], counts, DEEP_BETA_BINS, f"layer {ell}", color)
        lj = np.log10(np.maximum(jump_by_layer[ell], 1e-300))
        counts = np.histogram(lj, bins=LOG_JUMP_BINS)[0]
        _density(axes[0, 1], counts, LOG_JUMP_BINS, f"layer {ell}", color)
    axes[0, 0].set_title(f"He, depth {depth}, width {params['deep_width']}: breakpoints per "
                         "layer", fontsize=9)
    axes[0, 0].set_xlabel("breakpoint x (all zero crossings, symmetrized)")
    axes[0, 1].set_title("output slope jump at each layer's active breakpoints", fontsize=9)
    axes[0, 1].set_xlabel("log10 abs Δ slope")
    sweep_depths = params["sweep_depths"]
    sweep = {(init, d): [r for r in by["depth_sweep"] if r["settings"]["init"] == init
                         and r["settings"]["depth"] == d]
             for init in SWEEP_INITS for d in sweep_depths}
    for col, init in enumerate(SWEEP_INITS):
        ax = axes[1, col]
        for d, color in zip(sweep_depths, COLORS, strict=False):
            rs = sweep[(init, d)]
            if rs:
                _density(ax, np.sum([r["log_jump_hist"] for r in rs], axis=0), LOG_JUMP_BINS,
                         f"depth {d}", color)
        ax.set_title(f"{_SHORT[init]}, width {params['deep_width']}: output |Δ slope| at "
                     "every breakpoint,\nby network depth", fontsize=9)
        ax.set_xlabel("log10 abs Δ slope")
    for ax in axes.ravel():
        ax.legend(fontsize=8)
    name_deep = save_figure(figure, out, "init_distributions_deep.png")

    def pvals(part, key):
        return [r[key] for r in by[part]]

    rows = []
    for part, label in (("gaussian", "He (Gaussian)"), ("uniform", "PyTorch default (uniform)")):
        for key, what in (("ks_beta", "β"), ("ks_mu_given_beta", "μ∣β"), ("ks_mu", "μ")):
            p = pvals(part, key)
            rows.append([label, what, f"{min(p):.3f}", f"{np.median(p):.3f}", len(p)])
    table = markdown_table(["init", "law", "min KS p", "median KS p", "seeds"], rows)
    deep_rows = []
    med_jump, iqr = {}, {}
    for ell in layers:
        b, j = beta_by_layer[ell], jump_by_layer[ell]
        med_jump[ell] = float(np.median(j)) if j.size else float("nan")
        iqr[ell] = float(np.subtract(*np.percentile(np.concatenate([b, -b]), [75, 25])))
        counts = [r["layers"][ell - 1]["count"] for r in by["deep"]]
        active = [r["layers"][ell - 1]["active"] for r in by["deep"]]
        deep_rows.append([ell, f"{np.mean(counts):.1f}", f"{np.mean(active):.1f}",
                          f"{iqr[ell]:.3f}", f"{med_jump[ell]:.3g}"])
    deep_table = markdown_table(["layer", "breakpoints / net", "active / net",
                                 "IQR of breakpoints", "median abs Δ slope (active)"], deep_rows)

    def ok(part):
        return all(min(pvals(part, k)) > 1e-3 and np.median(pvals(part, k)) > 0.05
                   for k in ("ks_beta", "ks_mu_given_beta", "ks_mu"))

    def log_medians(init, d):
        return [math.log10(r["median_jump"]) for r in sweep[(init, d)] if r["median_jump"] > 0]

    sweep_median = {(init, d): float(np.median([r["median_jump"] for r in sweep[(init, d)]]))
                    for init in SWEEP_INITS for d in sweep_depths}
    flatter = {init: welch_ci(log_medians(init, sweep_depths[0]),
                              log_medians(init, sweep_depths[-1])) for init in SWEEP_INITS}

    def iqrs(init, d):
        return [r["crossings_iqr"] for r in sweep[(init, d)]]

    sweep_iqr = {(init, d): float(np.median(iqrs(init, d)))
                 for init in SWEEP_INITS for d in sweep_depths}
    wider = {init: welch_ci(iqrs(init, sweep_depths[0]), iqrs(init, sweep_depths[-1]))
             for init in SWEEP_INITS}
    claims = [
        Claim("Gaussian init: β ~ Cauchy(0, σ_b/σ_w), μ∣β ~ Laplace(0, σ_bσ_vσ_w/√(σ_b² + "
              "σ_w²β²)), μ ~ K₀ law (KS: every seed p > 1e-3, median p > 0.05)",
              passed=ok("gaussian"),
              value={k: round(float(np.median(pvals("gaussian", k))), 3)
                     for k in ("ks_beta", "ks_mu_given_beta", "ks_mu")},
              paper="Thm 1(a), Cor 1(a)", figure=name_shallow),
        Claim("Uniform init: β, μ∣β (triangular) and μ (log law) as in Cor 1(b) (same test)",
              passed=ok("uniform"),
              value={k: round(float(np.median(pvals("uniform", k))), 3)
                     for k in ("ks_beta", "ks_mu_given_beta", "ks_mu")},
              paper="Thm 1(b), Cor 1(b)", figure=name_shallow),
        *(Claim(f"{SWEEP_INITS[init]}: deeper networks are flatter — each network's median "
                f"output |Δ slope| at its breakpoints is lower at depth {sweep_depths[-1]} than at "
                f"depth {sweep_depths[0]} (95 % Welch interval of the difference in log10 "
                "medians below 0)",
                passed=bool(flatter[init][2] < 0),
                value={**{f"depth {d}": f"{sweep_median[(init, d)]:.3g}" for d in sweep_depths},
                       "log10 difference": f"{flatter[init][0]:+.3f} [{flatter[init][1]:+.3f}, "
                                           f"{flatter[init][2]:+.3f}]"},
                paper="2020 §1, §3 and Fig. 1 (right): \"as depth increases, delta-slopes have "
                      "lower variance\"", figure=name_deep)
          for init in SWEEP_INITS),
        # Wider with depth, like flatter, is about networks of increasing depth; grouping one
        # network's breakpoints by layer (an earlier check) compares independent draws.
        *(Claim(f"{SWEEP_INITS[init]}: the breakpoint distribution grows wider with depth — "
                f"the IQR of a network's breakpoints (all zero crossings) is larger at depth "
                f"{sweep_depths[-1]} than at depth {sweep_depths[0]} (95 % Welch interval of "
                "the difference above 0)",
                passed=bool(wider[init][1] > 0),
                value={**{f"depth {d}": f"{sweep_iqr[(init, d)]:.3g}" for d in sweep_depths},
                       "difference": f"{wider[init][0]:+.3f} [{wider[init][1]:+.3f}, "
                                     f"{wider[init][2]:+.3f}]"},
                paper="2020 §1: \"the breakpoint distribution grows wider, allowing deeper "
                      "network to better approximate over a broader range of inputs\"",
                figure=name_deep)
          for init in SWEEP_INITS),
    ]
    markdown = (
        f"Shallow: {units:,} units per seed. He = N(0, 2) input weights and biases, N(0, 2/H) "
        "output weights (so σ_b/σ_w = 1); PyTorch default = U[−1, 1] input weights and biases, "
        "U[−1/√H, 1/√H] output weights. The printed formulas were lost in our copy; we test "
        "the laws re-derived from the papers' definitions (specs/spline-view.md).\n\n" + table
        + f"\n\nDeep: He normal (biases N(0, 2/fan_in)), depth {depth}, width "
        f"{params['deep_width']}, {params['deep_seeds']} networks, breakpoints on "
        f"[−{params['deep_interval']:g}, {params['deep_interval']:g}] from the exact spline. "
        "Slope jumps are the output's, at the active breakpoints of each layer.\n\n" + deep_table
        + f"\n\nBy network depth (width {params['deep_width']}, {params['sweep_seeds']} networks "
        "each): median over networks of each network's median output |Δ slope| and its number "
        "of active breakpoints.\n\n" + markdown_table(
            ["init", *(f"depth {d}" for d in sweep_depths)],
            [[SWEEP_INITS[init], *(
                f"{sweep_median[(init, d)]:.3g} "
                f"({np.median([r['breakpoints'] for r in sweep[(init, d)]]):.0f} bp)"
                for d in sweep_depths)] for init in SWEEP_INITS])
    )
    return Report(claims=claims, markdown=markdown, figures=[name_shallow, name_deep])


EXPERIMENT = Experiment(
    id="sahs.init_distributions",
    title="Breakpoint and delta-slope densities at initialization (shallow; deep per layer)",
    paper="Sahs et al. (2020), Thm 1, Cor 1, Fig. 1; Sahs et al. (2022), Thm 1",
    profiles=PROFILES,
    cells=cells,
    run=run,
    report=report,
    description="KS tests of β and μ∣β at Gaussian and uniform init against the derived laws;"
                " per-layer breakpoints and slope jumps of a deep He network.",
)
