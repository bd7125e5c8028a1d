"""Bounded waits (issue 17, 6): Ray connections time out with a clear message, and a very wide
CSV header is read in linear time."""

from __future__ import annotations

import signal
import socket
import sys
import threading
import types

import pytest

import runner_fakes
from deepbasis.estimator.data import DataError, read_columns
from deepbasis.runner.executors import CellTask, ExecutorError, RayExecutor, _host_port


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


def _fake_ray(monkeypatch, init):
    ray = types.SimpleNamespace(is_initialized=lambda: False, init=init,
                                shutdown=lambda: None)
    monkeypatch.setitem(sys.modules, "ray", ray)
    return ray


def _tasks():
    return [CellTask(0, "fake.quick", runner_fakes.run, {"width": 1}, (0,))]


def test_ray_address_where_nothing_listens_fails_at_once(monkeypatch):
    _fake_ray(monkeypatch, init=lambda **kw: pytest.fail("ray.init must not be reached"))
    address = f"127.0.0.1:{_closed_port()}"
    executor = RayExecutor(address, connect_timeout=5)
    with pytest.raises(ExecutorError, match=rf"cannot reach the Ray cluster at '{address}'"
                                            r".*head node is running"):
        list(executor.map(_tasks()))


def test_a_ray_init_that_hangs_times_out(monkeypatch):
    release = threading.Event()
    _fake_ray(monkeypatch, init=lambda **kw: release.wait(60))
    executor = RayExecutor("auto", connect_timeout=0.2)
    try:
        with pytest.raises(ExecutorError, match=r"did not connect to 'auto' within 0.2 s"):
            list(executor.map(_tasks()))
    finally:
        release.set()


def test_a_ray_init_error_is_an_executor_error(monkeypatch):
    def refuse(**kwargs):
        raise ConnectionError("could not find any running Ray instance")

    _fake_ray(monkeypatch, init=refuse)
    with pytest.raises(ExecutorError, match="cannot connect to Ray at 'auto': could not find"):
        list(RayExecutor("auto", connect_timeout=5).map(_tasks()))


@pytest.mark.parametrize(("address", "endpoint"), [
    ("10.0.0.1:6379", ("10.0.0.1", 6379)), ("ray://head:10001", ("head", 10001)),
    ("[::1]:6379", ("::1", 6379)), ("auto", None), (None, None), ("head", None),
])
def test_host_port(address, endpoint):
    assert _host_port(address) == endpoint


def _alarm(seconds):
    def expired(signum, frame):
        raise TimeoutError(f"reading the header took more than {seconds} s (quadratic?)")
    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    return previous


def test_a_100k_column_header_is_read_in_linear_time(tmp_path):
    # A guard, not a timing assertion: the quadratic duplicate check took minutes here.
    n = 100_000
    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"c{i}" for i in range(n)) + "\n" + ",".join(["1"] * n) + "\n")
    previous = _alarm(120)
    try:
        columns = read_columns(path)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert len(columns.names) == n
    path.write_text("a,b,a,c,b\n1,2,3,4,5\n")
    with pytest.raises(DataError, match=r"duplicate column names \['a', 'b'\]"):
        read_columns(path)
