"""One of several JAX processes (jax.distributed over localhost, gloo CPU collectives).

    python tests/multiprocess/worker.py PORT PROCESS_COUNT PROCESS_ID OUT.npz

Computes lazykit kernels and matrix-free fits on the same data in every process and
saves process 0's results; tests/test_processes.py compares them with one process.
"""

import sys

import jax

jax.config.update("jax_cpu_collectives_implementation", "gloo")
port, count, index, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
jax.distributed.initialize(f"localhost:{port}", num_processes=count, process_id=index)

from tests.multiprocess.cases import results  # noqa: E402  (after initialize)

values = results()
if jax.process_index() == 0:
    import numpy as np

    np.savez(out, **values)
