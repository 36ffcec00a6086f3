"""Blocked Cholesky (lazykit.solvers.blocked) against one LAPACK dpotrf, in the same run.

    python benchmarks/cholesky_blocked.py [--n 12000] [--blocks 1024 2048 3072 4096] [--repeats 2]

Factors the same SPD matrix (a symmetric random matrix plus n I, float64) by
one ``dpotrf`` (upper, in place) and by ``cholesky_in_place`` with each block
width, alternating, and prints the best time of each, the ratio to dpotrf and
the largest difference between the two factors. n should stay below the size at
which dpotrf was seen to crash (16,000). Run it on an idle machine: it uses
every BLAS thread, and takes about 3 n^2 x 8 bytes.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from scipy.linalg import lapack

from lazykit.solvers.blocked import cholesky_in_place


def spd_matrix(n: int, seed: int = 0) -> np.ndarray:
    """A symmetric random matrix plus n I, Fortran-ordered (positive definite by Gershgorin)."""
    a = np.random.default_rng(seed).random((n, n))
    a += a.T
    a.flat[:: n + 1] += n
    return np.asfortranarray(a)


def timed(factor, source: np.ndarray, work: np.ndarray) -> float:
    work[...] = source
    start = time.perf_counter()
    factor(work)
    return time.perf_counter() - start


def dpotrf(f: np.ndarray) -> None:
    _, info = lapack.dpotrf(f, lower=0, clean=0, overwrite_a=1)
    assert info == 0, info


def blocked(block: int):
    def factor(f: np.ndarray) -> None:
        info = cholesky_in_place(f, block=block)
        assert info == 0, info
    return factor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=12000)
    parser.add_argument("--blocks", type=int, nargs="+", default=[1024, 2048, 3072, 4096])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    source = spd_matrix(args.n)
    reference, work = np.empty_like(source), np.empty_like(source)
    print(f"n={args.n}, float64, cpus={os.cpu_count()}, load average "
          f"{os.getloadavg()[0]:.2f}, OPENBLAS_NUM_THREADS="
          f"{os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")
    best = {"dpotrf": np.inf, **{b: np.inf for b in args.blocks}}
    for _ in range(args.repeats):
        best["dpotrf"] = min(best["dpotrf"], timed(dpotrf, source, reference))
        for b in args.blocks:
            best[b] = min(best[b], timed(blocked(b), source, work))
    upper = np.triu(reference)
    print(f"dpotrf                 {best['dpotrf']:7.2f} s")
    for b in args.blocks:
        timed(blocked(b), source, work)
        diff = np.max(np.abs(np.triu(work) - upper)) / np.max(np.abs(upper))
        print(f"blocked, block {b:5d}   {best[b]:7.2f} s   ratio {best[b] / best['dpotrf']:.3f}"
              f"   max |difference| / max |U| {diff:.1e}")


if __name__ == "__main__":
    main()
