"""Tests of the executors (experiments/executors.py): serial, local process pool and Ray."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import runner_fakes
from deepbasis.runner.executors import (
    CellTask,
    ExecutorError,
    MissingDependencyError,
    ProcessPoolExecutor,
    RayExecutor,
    SerialExecutor,
    import_ray,
    make_executor,
    run_cell,
)
from deepbasis.runner.runner import run_experiment

TESTS = str(Path(__file__).parent)


def tasks(run=runner_fakes.run, widths=(1, 2, 3), seeds=(0, 1)):
    return [CellTask(i, "fake.quick", run, {"width": w, "dtype": "float64"}, tuple(seeds))
            for i, w in enumerate(widths)]


def decoded(outcomes):
    return {o.index: [json.loads(r) for r in o.records] for o in outcomes}


def test_run_cell_encodes_records_in_seed_order_and_stamps_them():
    task = CellTask(4, "fake.quick", runner_fakes.run, {"width": 3, "dtype": "float64"}, (2, 0))
    outcome = run_cell(task)
    assert outcome.error is None and outcome.index == 4
    assert [json.loads(r) for r in outcome.records] == runner_fakes.run(task.settings, (2, 0))
    stamp = outcome.stamp
    assert (stamp.torch_version, stamp.dtype, stamp.device) == (torch.__version__, "float64",
                                                                "cpu")
    assert stamp.wall_time >= 0 and stamp.finished_at.endswith("Z")


def test_run_cell_turns_arrays_and_tensors_into_json():
    def run(settings, seeds):
        return [{"seed": np.int64(s), "a": np.arange(2.0), "t": torch.ones(2),
                 "x": np.float32(0.5)} for s in seeds]

    outcome = run_cell(CellTask(0, "x", run, {}, (3,)))
    assert json.loads(outcome.records[0]) == {"seed": 3, "a": [0.0, 1.0], "t": [1.0, 1.0],
                                              "x": 0.5}


@pytest.mark.parametrize(("run", "message"), [
    (lambda settings, seeds: {"seed": 0}, "must return a list of dicts"),
    (lambda settings, seeds: [{"loss": 1.0} for _ in seeds], "without a 'seed' key"),
    (lambda settings, seeds: [{"seed": 0}, {"seed": 0}], "seed 0 twice"),
    (lambda settings, seeds: [{"seed": s + 1} for s in seeds], r"records for seeds \[1, 2\]"),
    (lambda settings, seeds: [{"seed": "0"}, {"seed": 1}], "not an int"),
], ids=["not-a-list", "no-seed", "twice", "wrong-seeds", "str-seed"])
def test_run_cell_checks_the_contract(run, message):
    outcome = run_cell(CellTask(0, "fake.bad", run, {"w": 1}, (0, 1)))
    assert outcome.records == [] and outcome.error is not None
    assert "fake.bad" in outcome.error
    assert re.search(message, outcome.error), outcome.error


def test_run_cell_reports_exceptions_with_their_traceback():
    outcome = run_cell(tasks(runner_fakes.flaky_run, widths=(3,))[0])
    assert "FloatingPointError: loss became NaN at step 7" in outcome.error
    assert "flaky_run" in outcome.error


def test_run_cell_uses_the_task_thread_count_and_restores_it():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        for threads, expected in ((1, 1), (3, 3), (None, 2)):
            task = CellTask(0, "x", runner_fakes.threads_run, {}, (0,), threads)
            assert json.loads(run_cell(task).records[0])["threads"] == expected
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_run_function_cannot_alter_the_plan():
    def greedy(settings, seeds):
        settings["width"] = 99
        return [{"seed": s} for s in seeds]

    task = CellTask(0, "x", greedy, {"width": 1}, (0,))
    run_cell(task)
    assert task.settings == {"width": 1}


@pytest.mark.parametrize("in_process", [True, False], ids=["driver+worker", "workers-only"])
def test_process_pool_gives_the_serial_records_with_one_thread_per_cell(in_process):
    work = tasks(widths=(1, 2, 3, 4))
    probe = [CellTask(10 + i, "fake.quick", runner_fakes.threads_run, {"width": 5 + i}, (0, 1), 1)
             for i in range(2)]
    pool = ProcessPoolExecutor(2, in_process=in_process)
    pooled = decoded(pool.map(probe + work))
    serial = decoded(SerialExecutor().map(work))
    assert {i: pooled[i] for i in serial} == serial
    assert {r["threads"] for i in (10, 11) for r in pooled[i]} == {1}
    if not in_process:  # with in_process, where a cell runs depends on when workers are up
        assert os.getpid() not in {r["pid"] for i in (10, 11) for r in pooled[i]}


def test_process_pool_reports_a_dead_worker():
    # in_process=False: both cells go to the one worker process, which dies on the first.
    pool = ProcessPoolExecutor(1, in_process=False)
    with pytest.raises(ExecutorError, match="worker process died.*rerun the same command"):
        list(pool.map(tasks(runner_fakes.dying_run, widths=(1, 2))))


def test_process_pool_refuses_unpicklable_run_functions():
    def local_run(settings, seeds):
        return [{"seed": s} for s in seeds]

    with pytest.raises(ExecutorError, match="module-level function.*--workers 1"):
        list(ProcessPoolExecutor(2).map(tasks(local_run)))
    # With one cell, the in-process slot runs it and nothing needs to be sent anywhere.
    assert len(list(ProcessPoolExecutor(2).map(tasks(local_run, widths=(1,))))) == 1


def test_make_executor_choices_and_errors():
    assert isinstance(make_executor("local", workers=1), SerialExecutor)
    pool = make_executor("local", workers=3)
    assert isinstance(pool, ProcessPoolExecutor) and pool.workers == 3
    assert make_executor("local", workers=None).workers == (os.cpu_count() or 1)
    with pytest.raises(ValueError, match="unknown executor 'dask'; valid choices are 'local', "
                                         "'ray'"):
        make_executor("dask")
    with pytest.raises(ValueError, match="only used by the Ray executor"):
        make_executor("local", address="auto")
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="workers must be a positive int"):
            make_executor("local", workers=bad)
    with pytest.raises(ValueError, match="unknown start method 'fork'"):
        ProcessPoolExecutor(2, context="fork")


def test_missing_ray_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail
    with pytest.raises(MissingDependencyError, match=r"pip install 'deepbasis\[ray\]'"):
        import_ray()
    with pytest.raises(MissingDependencyError, match="needs Ray"):
        make_executor("ray")


def test_ray_executor_runs_cells_and_only_the_driver_writes(tmp_path, monkeypatch):
    ray = pytest.importorskip(
        "ray", reason="Ray is optional (pip install 'deepbasis[ray]'); its executor is untested "
                      "without it")
    runner_fakes.register(monkeypatch)
    serial = run_experiment("fake.quick", "quick", tmp_path / "serial", progress=False)
    # Ray's worker processes must find the fake experiment's module, as a cluster's nodes
    # must find deepbasis: through their import path.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([TESTS, os.environ.get("PYTHONPATH", "")]))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        outcomes = list(RayExecutor().map(tasks(runner_fakes.threads_run, widths=(1, 2))))
        result = run_experiment("fake.quick", "quick", tmp_path / "ray", progress=False,
                                executor="ray")
        assert ray.is_initialized()  # an instance the caller started is left running
    finally:
        ray.shutdown()
    worker_pids = {json.loads(r)["pid"] for o in outcomes for r in o.records}
    assert os.getpid() not in worker_pids
    assert {json.loads(r)["threads"] for o in outcomes for r in o.records} == {1}
    assert result.computed == len(serial.records)
    strip = [{k: v for k, v in r.items() if k != "wall_time"} for r in result.records]
    assert strip == [{k: v for k, v in r.items() if k != "wall_time"} for r in serial.records]
    assert (tmp_path / "ray" / "report.md").is_file()
