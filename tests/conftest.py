"""Shared test helpers: tolerances by dtype, and seeds shown in every randomized test."""

from __future__ import annotations

import os

# MKL chooses its code path by processor; on some (AMD EPYC, AVX2) the batched and single-model
# products then round differently, and the ensemble tests that check bit-identical members
# would fail for a reason that is not ours. A fixed code path, set before torch loads MKL
# (README, "bit-for-bit"); subprocesses of the tests inherit it.
os.environ.setdefault("MKL_CBWR", "COMPATIBLE")

import signal  # noqa: E402

# A run started in the background by a non-interactive shell (`pytest &`) inherits SIGINT
# ignored, and so would every child it starts; the Ctrl-C tests (test_interrupts.py) need it
# delivered. A Python handler here is reset to the default in children, so they get it too.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

import pytest  # noqa: E402
import torch  # noqa: E402

# Tolerances by dtype, in one place (STYLE.md, "Ours" 4).
TOLERANCES = {
    torch.float64: {"rtol": 1e-10, "atol": 1e-12},
    torch.float32: {"rtol": 1e-4, "atol": 1e-5},
}

# A randomized test takes its seeds from here; DEEPBASIS_TEST_SEED=<n> reruns with other seeds,
# and pytest's parametrization puts the seed in every test id, so a failure shows it.
BASE_SEED = int(os.environ.get("DEEPBASIS_TEST_SEED", "0"))
SEEDS = [BASE_SEED + k for k in range(3)]


def tol(dtype: torch.dtype) -> dict[str, float]:
    return TOLERANCES[dtype]


@pytest.fixture(autouse=True)
def _single_thread_small_ops():
    # Tests use tiny tensors; one thread avoids oversubscription on 2-core CI machines.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
