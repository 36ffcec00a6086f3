"""Several JAX processes (jax.distributed, CPU collectives over gloo) give one process's results.

The test starts two worker processes on localhost (tests/multiprocess/worker.py); each
computes the kernels of the same data (its share of the tiles, gathered) and fits the
estimators, and process 0's results are compared with the same computations here.
"""

import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

from tests.multiprocess.cases import results

ROOT = pathlib.Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_give_the_results_of_one(tmp_path):
    port, out = free_port(), tmp_path / "two.npz"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu"}
    workers = [subprocess.Popen([sys.executable, str(ROOT / "tests/multiprocess/worker.py"),
                                 str(port), "2", str(i), str(out)],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
               for i in range(2)]
    logs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], logs
    two, one = np.load(out), results()
    assert sorted(two.files) == sorted(one)
    for name, expected in one.items():
        np.testing.assert_allclose(two[name], expected, rtol=1e-9, atol=1e-12, err_msg=name)
