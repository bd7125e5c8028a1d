"""Roughness in a data gap against width and initial weight scale (Sahs et al. 2020, Fig. 5 /
§3 "Smoothness in data gaps…"; 2022, Fig. 10 bottom and §3.4).

Shallow ReLU networks f(x) = b₀ + Σ v_i (w_i x + b_i)_+ with Gaussian init w ~ N(0, σ_w²),
b ~ N(0, σ_w²) (so breakpoints β = −b/w are Cauchy(0, 1) whatever σ_w: only the delta-slopes
μ = w v scale with σ_w), v ~ N(0, 2/H), b₀ = 0, are trained by full-batch GD on ½ Σ ε² for the
'smooth' (tanh 2x) and 'sharp' (sign x) targets on [−3, 3] with no data in (−0.5, 0.5), with
step 1/λ_max of the Gauss–Newton matrix JᵀJ at init, until the relative loss change per step
is below a tolerance or a step budget runs out. Then the roughness in the gap,
Σ μ_i² over the breakpoints β_i ∈ [−0.5, 0.5] (BDSO form, :func:`deepbasis.analysis.bdso`), is
averaged over 4 trials: once against σ_w (H = 100), and twice against the width H, because
the papers do not say how their width sweep scales the init (2022 §3.4: "increasing H (with α
unchanged)"), and the two common readings predict opposite trends by their own Thm 2:

- **He-type** (σ_w = σ_b = √2, σ_v² = 2/H): E[ρ₀] = 4 whatever H, so the initial gap roughness
  does not fall with H;
- **Glorot-type** (σ_w = σ_b = σ_v = √(2/(H + 1)), Thm 2's Glorot): E[ρ₀] = 4H/(H + 1)², so it
  falls as 1/H.

Biases get the input weights' scale in both (so β ~ Cauchy(0, 1) in both); only the
delta-slopes μ = w v differ. Both sweeps are reported side by side, each with its verdict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...analysis.shallow import ShallowParams
from ...analysis.spline import bdso
from ...runner import Cell, Claim, Experiment, Report
from ..plotting import COLORS, markdown_table, new_figure, save_figure
from ._deep_gd import gap_data, gap_targets
from ._shallow_gd import gaussian_shallow, gd, sum_loss

PROFILES = {
    "quick": {"targets": ["smooth"], "widths": [10, 40], "sigmas": [1.0, 4.0],
              "base_width": 20, "spacing": 0.2, "steps": 100, "rel_tol": 1e-9, "seeds": 2},
    "default": {"targets": ["smooth", "sharp"], "widths": [10, 20, 50, 100, 200, 400],
                "sigmas": [0.5, 1.0, 2.0, 4.0, 8.0], "base_width": 100, "spacing": 0.05,
                "steps": 4000, "rel_tol": 1e-9, "seeds": 4},
    "paper": {"targets": ["smooth", "sharp"], "widths": [10, 20, 50, 100, 200, 400, 1000],
              "sigmas": [0.25, 0.5, 1.0, 2.0, 4.0, 8.0], "base_width": 100, "spacing": 0.01,
              "steps": 200000, "rel_tol": 1e-10, "seeds": 4},
}
_GAP = (-0.5, 0.5)
SCALINGS = ("he", "glorot")  # the two readings of the width sweep's init (module docstring)
_SCALING_NAMES = {"he": "He-type, σ_v² = 2/H", "glorot": "Glorot-type, σ² = 2/(H + 1)"}


def cells(params: Mapping[str, Any]) -> list[Cell]:
    seeds = tuple(range(params["seeds"]))
    common = {k: params[k] for k in ("spacing", "steps", "rel_tol")}
    out = []
    for t in params["targets"]:
        for scaling in SCALINGS:
            for h in params["widths"]:
                out.append(Cell({"sweep": "width", "scaling": scaling, "target": t, "width": h,
                                 "sigma_w": _sigmas(scaling, h)[0], **common}, seeds))
        for s in params["sigmas"]:
            out.append(Cell({"sweep": "sigma_w", "scaling": "he", "target": t,
                             "width": params["base_width"], "sigma_w": s, **common}, seeds))
    return out


def _sigmas(scaling: str, width: int) -> tuple[float, float]:
    """(σ_w = σ_b, σ_v) of a width-``width`` sweep under ``scaling`` (2020 §2.2, Thm 2)."""
    if scaling == "he":
        return math.sqrt(2.0), math.sqrt(2.0 / width)
    if scaling == "glorot":
        s = math.sqrt(2.0 / (width + 1))
        return s, s
    raise ValueError(f"unknown scaling {scaling!r}; valid choices are {SCALINGS}")


def _jacobian(p: ShallowParams, x: torch.Tensor) -> torch.Tensor:
    """∂f(x_n)/∂θ, (N, 3H + 1), in the order (w, b, v, b₀)."""
    pre = x[:, None] * p.w + p.b  # (N, H)
    on = (pre > 0).to(x.dtype)
    return torch.cat([p.v * x[:, None] * on, p.v * on, torch.relu(pre),
                      torch.ones(x.numel(), 1, dtype=x.dtype)], dim=1)


def gap_roughness(p: ShallowParams, lower: float = _GAP[0], upper: float = _GAP[1]) -> float:
    """Σ μ_i² over the breakpoints in [lower, upper] (the roughness of f there)."""
    form = bdso(p.to_model())
    inside = (form.breakpoints >= lower) & (form.breakpoints <= upper)  # NaN (w = 0): out
    return float((form.delta_slopes[inside] ** 2).sum())


def _train(p, x, y, steps, rel_tol, lr):
    """GD in chunks, stopping when the relative loss change per step is below ``rel_tol``."""
    done, last = 0, sum_loss(p, x, y)
    while done < steps:
        chunk = min(100, steps - done)
        p, _ = gd(p, x, y, lr=lr, steps=chunk)
        done += chunk
        now = sum_loss(p, x, y)
        if not math.isfinite(now) or abs(last - now) <= rel_tol * chunk * max(now, 1e-300):
            break
        last = now
    return p, done


def run(settings: Mapping[str, Any], seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    x = gap_data(settings["spacing"])[:, 0]
    y = gap_targets(settings["target"], x)
    records = []
    for seed in seeds:
        g = torch.Generator().manual_seed(seed)
        s = settings["sigma_w"]
        sigma_v = (math.sqrt(2.0 / settings["width"]) if settings["scaling"] == "he"
                   else _sigmas(settings["scaling"], settings["width"])[1])
        p0 = gaussian_shallow(settings["width"], g, sigma_w=s, sigma_b=s, sigma_v=sigma_v)
        lam = float(torch.linalg.matrix_norm(_jacobian(p0, x), ord=2)) ** 2
        p, steps = _train(p0, x, y, settings["steps"], settings["rel_tol"], 1.0 / lam)
        records.append({"seed": seed, "gap_roughness": gap_roughness(p),
                        "gap_roughness_initial": gap_roughness(p0),
                        "roughness": float((p.w * p.v).pow(2).sum()),
                        "loss": sum_loss(p, x, y), "loss_initial": sum_loss(p0, x, y),
                        "steps_run": steps, "lr": 1.0 / lam})
    return records


def _spearman(a, b) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def _panels(params) -> list[tuple[str, str, str]]:
    """(sweep, scaling, settings key) of each panel: the width under each scaling, then σ_w."""
    return [("width", scaling, "width") for scaling in SCALINGS] + [("sigma_w", "he", "sigma_w")]


def report(records: list[dict], params: Mapping[str, Any], out: Path) -> Report:
    targets = params["targets"]
    panels = _panels(params)
    figure, axes = new_figure(len(panels), 1, width=4.4, height=3.8, sharey=True)
    trend, ends = {}, {}
    rows = []
    for (sweep, scaling, key), ax in zip(panels, axes[0], strict=True):
        for color, t in zip(COLORS, targets, strict=False):
            rs = [r for r in records if r["settings"]["sweep"] == sweep
                  and r["settings"].get("scaling", "he") == scaling
                  and r["settings"]["target"] == t]
            values = sorted({r["settings"][key] for r in rs})
            by_value = {v: [r for r in rs if r["settings"][key] == v] for v in values}
            mean = [float(np.mean([r["gap_roughness"] for r in by_value[v]])) for v in values]
            sd = [float(np.std([r["gap_roughness"] for r in by_value[v]])) for v in values]
            init = [float(np.mean([r["gap_roughness_initial"] for r in by_value[v]]))
                    for v in values]
            ax.errorbar(values, mean, yerr=sd, color=color, marker="o", capsize=3,
                        label=f"{t}, trained")
            ax.plot(values, init, color=color, ls=":", marker=".", label=f"{t}, at init")
            trend[(sweep, scaling, t)] = _spearman(values, mean)
            ends[(sweep, scaling, t)] = (mean[0], mean[-1])
            label = f"width, {scaling}" if sweep == "width" else "σ_w (H = {}), he".format(
                params["base_width"])
            for v, m, s_, i in zip(values, mean, sd, init, strict=True):
                rows.append([label, t, f"{v:g}", f"{m:.3g} ± {s_:.2g}", f"{i:.3g}",
                             f"{np.mean([r['loss'] for r in by_value[v]]):.3g}",
                             f"{np.mean([r['steps_run'] for r in by_value[v]]):.0f}"])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ticks = sorted({r["settings"][key] for r in records if r["settings"]["sweep"] == sweep})
        ax.set_xticks(ticks, [f"{v:g}" for v in ticks])
        ax.tick_params(axis="x", which="minor", bottom=False, labelbottom=False)
        ax.set_xlabel("width H" if sweep == "width" else "σ_w (init scale of w and b)")
        ax.set_title(f"vs width, {_SCALING_NAMES[scaling]}" if sweep == "width"
                     else f"vs σ_w (H = {params['base_width']}, σ_v² = 2/H)", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    axes[0, 0].set_ylabel("roughness in the gap [−0.5, 0.5]")
    name = save_figure(figure, out, "gap_roughness.png")
    table = markdown_table(["sweep", "target", "value", "gap roughness (mean ± sd)",
                            "at init", "final ½Σε²", "GD steps"], rows)

    def width_value(scaling):
        return {t: f"Spearman {trend[('width', scaling, t)]:+.3f}; mean "
                   f"{ends[('width', scaling, t)][0]:.3g} (H = {params['widths'][0]}) → "
                   f"{ends[('width', scaling, t)][1]:.3g} (H = {params['widths'][-1]})"
                for t in targets}

    claims = [
        Claim("Roughness in the data gap falls with width, He-type reading (σ_w = √2, "
              "σ_v² = 2/H; Spearman correlation of the trial mean with H < 0 for every target)",
              passed=all(trend[("width", "he", t)] < 0 for t in targets),
              value=width_value("he"),
              paper="decreases with width (2020 Fig. 5 left; 2022 Fig. 10); init not stated",
              figure=name),
        Claim("Roughness in the data gap falls with width, Glorot-type reading (σ_w = σ_b = "
              "σ_v = √(2/(H + 1)), 2020 Thm 2's Glorot; same test)",
              passed=all(trend[("width", "glorot", t)] < 0 for t in targets),
              value=width_value("glorot"),
              paper="decreases with width (2020 Fig. 5 left; 2022 Fig. 10); init not stated",
              figure=name),
        Claim("Roughness in the data gap rises with the initial weight scale σ_w (Spearman "
              "correlation > 0 for every target; largely by construction — the initial gap "
              "roughness Σ μ² scales as σ_w² and GD changes the gap little, so this says only "
              "that training does not reverse the initial ordering)",
              passed=all(trend[("sigma_w", "he", t)] > 0 for t in targets),
              value={t: round(trend[("sigma_w", "he", t)], 3) for t in targets},
              paper="increases with initial weight variance (2020 Fig. 5 right)", figure=name),
    ]
    markdown = (
        f"Shallow ReLU networks, biases with the input weights' scale; data every "
        f"{params['spacing']} on [−3, 3] outside (−0.5, 0.5); smooth = tanh(2x), sharp = sign(x) "
        "(our choice: the papers only plot their targets); GD on ½ Σ ε² with step 1/λ_max(JᵀJ) "
        f"at init, until the relative loss change per step < {params['rel_tol']} or "
        f"{params['steps']} steps; {params['seeds']} trials per point (the paper: 4). The paper "
        "plots Fig. 5 without numbers, so the claims are its stated trends. The width sweep is "
        "run under both readings of its unstated init: He-type (σ_v² = 2/H, where Thm 2 gives "
        "E[ρ₀] = 4 for every H) and Glorot-type (σ² = 2/(H + 1), E[ρ₀] = 4H/(H + 1)²). Compare "
        "the trained gap roughness with its value at init (dotted): GD changes the delta-slopes "
        "in the gap little, so the trained value follows the init.\n\n" + table
    )
    return Report(claims=claims, markdown=markdown, figures=[name])


EXPERIMENT = Experiment(
    id="sahs.gap_roughness",
    title="Roughness in a data gap vs width and initial weight scale (shallow)",
    paper="Sahs et al. (2020), Fig. 5; (2022), Fig. 10 bottom",
    profiles=PROFILES,
    cells=cells,
    run=run,
    report=report,
    description="Does a wider network, or a smaller init, leave a smoother fit in a data gap?",
)
