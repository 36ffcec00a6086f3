"""One of several JAX processes (jax.distributed over localhost, gloo CPU collectives).

    python tests/multiprocess/worker.py PORT PROCESS_COUNT PROCESS_ID OUT.npz

Computes lazykit kernels and matrix-free fits on the same data in every process and
saves process 0's results; tests/test_processes.py compares them with one process.
"""

import sys


def main(port: str, count: int, index: int, out: str) -> None:
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"localhost:{port}", num_processes=count, process_id=index)

    from tests.multiprocess.cases import results  # after initialize: no JAX work before it

    values = results()
    if jax.process_index() == 0:
        import numpy as np

        np.savez(out, **values)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
