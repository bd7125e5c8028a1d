"""Linear pieces at initialization and after each training stage (Milkert et al., §3, §4.3–4.4).

Counted exactly with spline-view's counter (:func:`deepbasis.analysis.count_pieces`) on the
plain network each stage leaves: the raw-weight MLP of the constructed network at
initialization, after pretraining (stage 1) and after fine-tuning (stage 2), and the default,
RAAI and Box networks at initialization and after training. Two cell kinds:

- ``"depth_sweep"``: constructed networks with random peaks at d = 1 … 12 hidden layers, at
  initialization only (the claim of exactly 2^d pieces);
- ``"training"``: the rows of :mod:`.table1` (same settings, :mod:`._common`), pieces per stage.

Rounding slivers: the t1 neurons of the construction carry s_k W_{k−1}, which touches zero
without crossing at every valley of W_{k−1} and at x = 1. Rounding can dip it below zero for an
ulp or two, which leaves pieces of width ~1e-16 (the output changes by ~1e-17).
:func:`deepbasis.analysis.count_pieces` merges pieces narrower than 1e-12 of the interval
(``pieces``; the narrowest true piece of a depth-5 construction is ≥ 0.3^5 wide); ``raw``
records the count with every sliver kept (``spline_of(..., sliver_rtol=0)``).

Claim thresholds, fixed before running: every constructed network has exactly 2^d pieces at
initialization; after pretraining every one still has at least 2^d (the paper says the
regions are retained; a clipped partial sum adds pieces, so clipped models are counted apart —
an earlier version demanded exactly 2^d, which a 33rd clipped piece failed); the median
trained default network has fewer pieces than its 20 hidden neurons (the paper: "falling
short of 1 bend per neuron").
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ...runner import Cell, Claim, Experiment, Report
from ..plotting import COLORS, markdown_table, new_figure, save_figure
from ._common import ROW_NAMES, ROWS, SETUP, TARGETS, compositional, train

PROFILES = {
    "quick": {**SETUP, "targets": ["x3"], "rows": ROWS, "seeds": 1, "steps": 10,
              "sweep_depths": list(range(1, 7)), "sweep_seeds": 2},
    "default": {**SETUP, "targets": list(TARGETS), "rows": ROWS, "seeds": 2, "steps": 1000,
                "sweep_depths": list(range(1, 13)), "sweep_seeds": 5},
    "paper": {**SETUP, "targets": list(TARGETS), "rows": ROWS, "seeds": 30, "steps": 1000,
              "sweep_depths": list(range(1, 13)), "sweep_seeds": 30},
}
_KEYS = ("points", "width", "depth", "lr", "optimizer", "peak_low", "peak_high", "scale0",
         "dtype", "box_lsgd_lr", "steps")


def _counter():
    from ... import analysis

    count, spline_of = (getattr(analysis, n, None) for n in ("count_pieces", "spline_of"))
    if count is None or spline_of is None:
        raise RuntimeError("milkert.regions needs deepbasis.analysis.count_pieces and spline_of "
                           "(the exact spline view, issue 11); update deepbasis")

    def raw(network) -> int:
        return spline_of(network, 0.0, 1.0, sliver_rtol=0.0).num_pieces

    return (lambda network: count(network, 0.0, 1.0)), raw


def cells(params: Mapping[str, Any]) -> list[Cell]:
    out = [Cell({"kind": "depth_sweep", "target": target, "depth": depth,
                 **{k: params[k] for k in _KEYS if k != "depth"}},
                tuple(range(params["sweep_seeds"])))
           for target in params["targets"][:1] + params["targets"][2:3]  # one σ of each sign
           for depth in params["sweep_depths"]]
    out += [Cell({"kind": "training", "target": target, "row": row,
                  **{k: params[k] for k in _KEYS}}, tuple(range(params["seeds"])))
            for target in params["targets"] for row in params["rows"]]
    return out


def run(settings: Mapping[str, Any], seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    pieces, raw = _counter()
    if settings["kind"] == "depth_sweep":
        out = []
        for seed in seeds:
            mlp = compositional(settings, seed, "enforced").to_mlp()
            out.append({"seed": seed, "pieces": pieces(mlp), "raw": raw(mlp)})
        return out

    def on_stage(stage, network):
        return {"pieces": pieces(network), "raw": raw(network)}

    records = []
    for seed in seeds:
        record = train(settings, seed, on_stage=on_stage)
        for stage in ("init", "pretrained", "trained"):  # flatten: stage -> pieces, raw
            if stage in record:
                record[f"{stage}_raw"] = record[stage]["raw"]
                record[stage] = record[stage]["pieces"]
        records.append({"seed": seed, **record})
    return records


def report(records: list[dict], params: Mapping[str, Any], out: Path) -> Report:
    sweep = [r for r in records if r["settings"]["kind"] == "depth_sweep"]
    training = [r for r in records if r["settings"]["kind"] == "training"]
    width, depth = params["width"], params["depth"]

    figure, axes = new_figure(2, 1, width=5.0, height=3.9)
    ax = axes[0, 0]
    depths = params["sweep_depths"]
    ax.plot(depths, [2.0**d for d in depths], "k--", lw=1, label="2^d")
    ax.set_yscale("log", base=2)
    for i, target in enumerate(sorted({r["settings"]["target"] for r in sweep})):
        rs = [r for r in sweep if r["settings"]["target"] == target]
        ax.scatter([r["settings"]["depth"] for r in rs], [r["pieces"] for r in rs],
                   color=COLORS[i], s=14,
                   label=f"{TARGETS[target][0]} (σ = {TARGETS[target][1]:+d})")
    ax.set_xlabel("hidden layers d")
    ax.set_ylabel("linear pieces on [0, 1]")
    ax.set_title("Constructed networks at initialization")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)

    ax = axes[0, 1]
    stages = ["init", "pretrained", "trained"]
    rows = list(params["rows"])
    for j, stage in enumerate(stages):
        labelled = False
        for i, row in enumerate(rows):
            values = [r[stage] for r in training if r["settings"]["row"] == row and stage in r]
            if values:
                xs = i + (j - 1) * 0.25 + np.linspace(-0.06, 0.06, len(values))
                ax.scatter(xs, values, color=COLORS[j], s=12, alpha=0.7,
                           label=None if labelled else stage)
                labelled = True
    ax.axhline(2**depth, color="k", ls="--", lw=1, label=f"2^{depth}")
    ax.axhline(width * depth, color="gray", ls=":", lw=1, label=f"{width * depth} neurons")
    ax.set_yscale("log", base=2)
    ax.set_xticks(range(len(rows)), ["default", "RAAI", "no pre", "not enf.", "enforced",
                                     "Box+LSGD"][: len(rows)], rotation=30, ha="right")
    ax.set_ylabel("linear pieces on [0, 1]")
    ax.set_title(f"Width {width}, depth {depth}: pieces per stage (all targets)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    name = save_figure(figure, out, "regions.png")

    table_rows = []
    for row in rows:
        rs = [r for r in training if r["settings"]["row"] == row]
        cell = []
        for stage in stages:
            values = [r[stage] for r in rs if stage in r]
            cell.append(f"{np.median(values):.0f} [{min(values)}–{max(values)}]" if values
                        else "—")
        table_rows.append([ROW_NAMES[row], *cell, len(rs)])
    table = markdown_table(["row", "pieces at init", "after pretraining", "after training",
                            "models"], table_rows)

    bad_sweep = [(r["settings"]["depth"], r["pieces"]) for r in sweep
                 if r["pieces"] != 2 ** r["settings"]["depth"]]
    constructed = [r for r in training
                   if r["settings"]["row"] in ("no_pretraining", "not_enforced", "enforced")]
    bad_init = [r["init"] for r in constructed if r["init"] != 2**depth]
    pretrained = [r["pretrained"] for r in constructed if "pretrained" in r]
    default_trained = [r["trained"] for r in training if r["settings"]["row"] == "default"]
    off = [r for r in constructed if "pretrained" in r and r["pretrained"] != 2**depth]
    claims = [
        Claim("Exactly 2^d pieces at initialization (random peaks; d = "
              f"{depths[0]}…{depths[-1]} and every depth-{depth} model)",
              passed=not bad_sweep and not bad_init,
              value={"exceptions (d, pieces)": bad_sweep, "depth-5 exceptions": bad_init},
              paper="2^d linear regions by construction (§3)", figure=name),
        # §1: pretraining "forcibly retains these regions": ≥ 2^d, not exactly 2^d. A sum
        # neuron whose partial sum went below zero in stage 1 (clipped) adds a kink of its own,
        # so clipped models are counted and reported apart from the unclipped ones.
        Claim(f"Pretraining keeps the regions: ≥ {2**depth} pieces after stage 1 in every "
              "model (clipped models reported separately)",
              passed=bool(pretrained) and all(p >= 2**depth for p in pretrained),
              value={"min": min(pretrained, default=None), "max": max(pretrained, default=None),
                     "exactly 2^d": sum(p == 2**depth for p in pretrained),
                     "more, clipped": sum(r["pretrained"] > 2**depth
                                          and r.get("violation_steps", 0) > 0 for r in off),
                     "more, not clipped": sum(r["pretrained"] > 2**depth
                                              and not r.get("violation_steps", 0) > 0
                                              for r in off),
                     "fewer": sum(p < 2**depth for p in pretrained)},
              paper="pretraining \"forcibly retains these regions\" (§1); the "
                    "reparameterization \"forces an exponential number of activation "
                    "patterns\"", figure=name),
        Claim(f"Trained default networks have fewer pieces than neurons (median < "
              f"{width * depth})",
              passed=bool(default_trained) and float(np.median(default_trained)) < width * depth,
              value={"median": float(np.median(default_trained)) if default_trained else None,
                     "all": sorted(default_trained)},
              paper="\"falling short of 1 bend per neuron\" (§4.3)", figure=name),
    ]
    flagged = sum(r.get("violation_steps", 0) > 0 for r in off)
    markdown = (
        "Exact numbers of linear pieces on [0, 1] (median [min–max] over targets and seeds) of "
        "the plain network each stage leaves. Depth sweep: constructed networks with random "
        f"peaks, {params['sweep_seeds']} per depth. After pretraining, {len(off)} of "
        f"{len(pretrained)} models differ from {2**depth} pieces "
        f"({sorted(r['pretrained'] for r in off)}); {flagged} of them were flagged by the "
        "clipping detection (a sum neuron's partial sum went below zero during stage 1, and "
        "its ReLU adds a kink where it hits zero).\n\n" + table
    )
    return Report(claims=claims, markdown=markdown, figures=[name])


EXPERIMENT = Experiment(
    id="milkert.regions",
    title="Linear pieces at initialization and after each stage (exact counts)",
    paper="Milkert et al., §3 and §4.3–4.4",
    profiles=PROFILES,
    cells=cells,
    run=run,
    report=report,
    description="Exact piece counts of constructed networks at d = 1…12, and of every row of "
                "Table 1 at initialization, after pretraining and after training.",
)
