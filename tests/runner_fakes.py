"""Cheap fake experiments for the runner, store, executor, reporting and CLI tests.

Not a test module (no ``test_`` prefix): it is imported by those tests, by the worker processes
they start (spawn children inherit ``sys.path``) and by the ``python -c`` launcher of the
kill-and-resume test. Its run functions are module-level so they pickle by reference.

- ``fake.quick``: a deterministic float64 "training" per seed (a few torch ops). Each cell
  first sleeps ``$DEEPBASIS_FAKE_SLEEP`` seconds (default 0), so that a test can make a sweep
  slow enough to kill mid-way without changing its settings or records.
- ``fake.flaky``: like ``fake.quick`` but the cell with ``width == 3`` raises.
- ``fake.badseeds``: returns a record for a seed it was not asked for.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from deepbasis.experiments import Cell, Claim, Experiment, Report, registry
from deepbasis.experiments.plotting import markdown_table, new_figure, save_figure

PROFILES = {
    "quick": {"widths": [1, 2, 3, 4], "seeds": [0, 1, 2]},
    "default": {"widths": list(range(1, 13)), "seeds": [0, 1, 2]},
    "paper": {"widths": [1, 2], "seeds": [0, 1, 2, 3]},
}


def cells(params: Mapping[str, Any]) -> list[Cell]:
    return [Cell({"width": w, "dtype": "float64"},
                 tuple(params["seeds"])) for w in params["widths"]]


def run(settings: Mapping[str, Any], seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    """A stand-in for training: a seeded float64 computation whose result depends on both."""
    time.sleep(float(os.environ.get("DEEPBASIS_FAKE_SLEEP", "0")))
    with tqdm(total=len(seeds), disable=True):  # as deepbasis.fit(progress=False) does
        pass
    records = []
    for seed in seeds:
        generator = torch.Generator().manual_seed(seed)
        weights = torch.randn(settings["width"], 5, generator=generator, dtype=torch.float64)
        loss = float((weights @ weights.T).trace()) / (1 + settings["width"])
        records.append({"seed": seed, "loss": loss, "curve": [loss / (k + 1) for k in range(3)]})
    return records


def report(records: list[dict[str, Any]], params: Mapping[str, Any], out: Path) -> Report:
    figure, axes = new_figure()
    widths = [r["settings"]["width"] for r in records]
    axes[0, 0].semilogy(widths, [r["loss"] for r in records], "o")
    axes[0, 0].set_xlabel("width")
    axes[0, 0].set_ylabel("loss")
    name = save_figure(figure, out, "loss_vs_width.png")
    mean = sum(r["loss"] for r in records) / len(records)
    rows = [[w, f"{mean:.3g}", "1.0"] for w in sorted(set(widths))]
    claims = [
        Claim("the mean loss is positive", mean > 0, mean, paper="> 0", figure=name),
        Claim("the mean loss is below 0 (fails on purpose)", mean < 0, mean, paper="< 0",
              figure=name),
    ]
    table = markdown_table(["width", "ours", "paper"], rows)
    return Report(claims, f"Loss by width, ours beside the paper's:\n\n{table}", [name])


def flaky_run(settings: Mapping[str, Any], seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    if settings["width"] == 3:
        raise FloatingPointError("loss became NaN at step 7 (on purpose)")
    return run(settings, seeds)


def badseeds_run(settings: Mapping[str, Any], seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    return [dict(r, seed=r["seed"] + 100) for r in run(settings, seeds)]


# The fakes judge their claims at every profile (smoke_profiles=()), so that the tests of the
# PASS / FAIL machinery can use the cheap quick profile; tests/test_smoke_verdicts.py checks
# what a real experiment's quick run reports ("not judged").
QUICK = Experiment("fake.quick", "A fake experiment for the runner tests", "Nobody (2099)",
                   PROFILES, cells, run, report, description="Cheap and deterministic.",
                   smoke_profiles=())
FLAKY = Experiment("fake.flaky", "A fake experiment with one failing cell", "Nobody (2099)",
                   PROFILES, cells, flaky_run, report, smoke_profiles=())
BADSEEDS = Experiment("fake.badseeds", "A fake experiment that breaks the contract",
                      "Nobody (2099)", PROFILES, cells, badseeds_run, report, smoke_profiles=())
FAKES = (QUICK, FLAKY, BADSEEDS)


def register(monkeypatch: Any = None) -> None:
    """Add the fakes to the experiment registry (undone by ``monkeypatch`` when given)."""
    experiments = registry()  # the cached dict every lookup reads
    for experiment in FAKES:
        if monkeypatch is None:
            experiments[experiment.id] = experiment
        else:
            monkeypatch.setitem(experiments, experiment.id, experiment)



def threads_run(settings: Mapping[str, Any], seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    """Reports the torch thread count and process the cell ran with."""
    return [{"seed": s, "threads": torch.get_num_threads(), "pid": os.getpid()} for s in seeds]


def dying_run(settings: Mapping[str, Any], seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    """Kills the worker process running it, as the OOM killer would (spares the test process)."""
    if multiprocessing.parent_process() is not None:
        os._exit(3)
    return run(settings, seeds)
