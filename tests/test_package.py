import subprocess
import sys

import deepbasis


def test_import_prints_nothing_and_seeds_nothing():
    code = (
        "import torch, numpy, random\n"
        "t, n, r = torch.random.get_rng_state(), numpy.random.get_state()[1].copy(), "
        "random.getstate()\n"
        "import deepbasis, deepbasis.experiments\n"
        "assert torch.equal(t, torch.random.get_rng_state())\n"
        "assert (n == numpy.random.get_state()[1]).all()\n"
        "assert r == random.getstate()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr == ""


def test_public_api_is_explicit():
    for name in deepbasis.__all__:
        assert hasattr(deepbasis, name), name
    assert deepbasis.__version__
