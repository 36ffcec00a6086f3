"""What each solver costs, in memory and in time, and which one "auto" takes.

Peak bytes in float64 for n training points, k targets, M Nystrom centres, as
measured on the solvers' own code paths (``tests/test_memory_peaks.py``):

- "cholesky" at t = inf: the training kernel, computed alone into one n x n
  buffer that is factorized in place: n^2 floats, plus the kernel's tile work
  while it is computed (``_WORK_ARRAYS_PER_TILE`` tile^2 floats per device);
- "eigh", and "cholesky" at a finite time: 3 n^2 (the matrix, whose storage
  LAPACK's dsyevd overwrites with the eigenvectors, and its 2 n^2 workspace);
- "cg": 9 n k floats of CG vectors (16 n k at ridge 0: the minimum-norm
  least-squares solve runs two CG recursions side by side), the tiles in
  flight, 3 n M while its Nystrom preconditioner is built (ridge > 0, t =
  inf); at a finite time the Lanczos basis, up to max_iter n k;
- "nystrom", stored: n M (K_nM) + 4 M^2 + 6 n k + one block of K_nM rows
  and the kernel's tiles in flight while it is computed; streamed: the same
  without the n M term;
- picking the centres by RPCholesky (before the above, for both matrix-free
  solvers): pool x (M + 200) floats, pool <= max(16 M, 2^27 / M).

Expected time is counted in flop-equivalents and converted at this
machine's BLAS rate (:func:`blas_rate`, a 1024 x 1024 float64 matrix product
timed once per process): a kernel entry costs 2 d + 2000 + 300 (layers)
flop-equivalents (measured on two cores: a ReLU NTK entry of depth 1-3 takes
about as long as 3000 flops of a matrix product), a Cholesky factorization
n^3 / 3 flops, an eigendecomposition 8 n^3 (measured), a CG iteration one pass over the
n^2 / 2 kernel entries, Falkon n M kernel entries and n M^2 flops.

"auto" takes the exact solver (Cholesky at t = inf, else the
eigendecomposition) when it fits in 90% of the memory available now (as the
kernels' own check) and is expected to finish within :data:`TIME_LIMIT`
seconds or no later than Nystrom; otherwise CG if it fits and is expected
within the limit (an exact answer without the n x n matrix, on fast
accelerators); otherwise Nystrom (storing K_nM when that takes at most half
of the available memory). A problem that fits under none is refused with an
:class:`~lazykit.InsufficientMemoryError` naming the sizes.
"""

from __future__ import annotations

import functools
import math
import time
from typing import NamedTuple

import numpy as np

from lazykit.kernels.compute import (
    _WORK_ARRAYS_PER_TILE,
    InsufficientMemoryError,
    available_memory,
    check_memory,
)
from lazykit.kernels.resources import kernel_devices
from lazykit.solvers.base import Estimate, Problem
from lazykit.solvers.centres import BLOCK, pool_size
from lazykit.solvers.nystrom import block_rows

_FLOAT = 8
_FIT = 0.9  # fraction of the available memory a plan may use (as check_memory)
TIME_LIMIT = 20.0
"""Seconds within which "auto" prefers the exact solve to the Nystrom approximation."""
_ENTRY_FLOPS = 2000.0  # flop-equivalents of one kernel entry, besides 2 d and the layers
_LAYER_FLOPS = 300.0
_EIGH_FLOPS = 8.0  # x n^3: dsyevd at n = 10,000 took as long as 8.3 n^3 flops of a matmul
_CG_STEPS = {"preconditioned": 30, "plain": 300}  # expected CG iterations (max_iter caps them)
_FALKON_STEPS = 20


class Plan(NamedTuple):
    """The solver chosen for a problem, whether the Nystrom solver stores K_nM, and why."""

    name: str
    store: bool = True
    reason: str = ""

    def __eq__(self, other):  # the reason is an explanation, not part of the plan
        return tuple(self[:2]) == tuple(other[:2])

    def __hash__(self):
        return hash(tuple(self[:2]))


@functools.cache
def blas_rate() -> float:
    """Float64 matrix-product flops per second on this machine (measured once, best of three)."""
    a = np.random.default_rng(0).normal(size=(1024, 1024))
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - start)
    return 2 * 1024**3 / max(best, 1e-6)


def tile_bytes(tile: int) -> int:
    """Bytes of the kernel tiles in flight on all devices."""
    return _WORK_ARRAYS_PER_TILE * tile * tile * _FLOAT * len(kernel_devices())


def entry_flops(problem: Problem) -> float:
    """Flop-equivalents of one kernel entry (0 for a precomputed Gram matrix)."""
    if not problem.has_inputs:
        return 0.0
    return 2.0 * problem.d + _ENTRY_FLOPS + _LAYER_FLOPS * problem.layers


def exact_bytes(n: int, finite_time: bool, tile: int = 1024, has_inputs: bool = True) -> int:
    """Peak bytes of the exact solve: the kernel in one n x n buffer, then its factorization."""
    kernel = n * n * _FLOAT
    work = tile_bytes(min(tile, n)) if has_inputs else 0
    factorization = 2 * kernel if finite_time else 0  # dsyevd's workspace
    return kernel + max(work, factorization)


def exact_estimate(problem: Problem, eigen: bool) -> Estimate:
    """Cholesky (``eigen`` False) or eigendecomposition on the dense kernel."""
    n = problem.n
    finite = eigen or problem.finite_time
    flops = n * n / 2 * entry_flops(problem) + (
        _EIGH_FLOPS * n**3 if finite else n**3 / 3)
    name = "eigh" if eigen else "cholesky"
    path = ("eigendecomposition of the kernel, in place" if eigen else
            "Cholesky of the kernel, in place" + (" (then its spectrum)" if finite else ""))
    memory = exact_bytes(n, finite, problem.tile, problem.has_inputs) + 4 * n * problem.k * _FLOAT
    return Estimate(name, memory, flops, True, path)


def cg_bytes(n: int, k: int, tile: int, n_centers: int, preconditioned: bool,
             lanczos_steps: int = 0, centers: str = "uniform", ridge: float = 1.0) -> int:
    """Bytes for CG's vectors, the tiles in flight, the preconditioner and a Lanczos basis."""
    vectors = (16 if ridge == 0 and not lanczos_steps else 9) * n * k
    basis = min(n, lanczos_steps) * n * k
    preconditioner = max(3 * n * min(n, n_centers) * _FLOAT, centre_bytes(n, n_centers, centers))
    return ((vectors + basis) * _FLOAT + (preconditioner if preconditioned else 0)
            + tile_bytes(tile))


def cg_estimate(problem: Problem, *, n_centers: int, max_iter: int, centers: str,
                ) -> Estimate:
    """Matrix-free CG (Lanczos at a finite time), preconditioned at ridge > 0 and t = inf."""
    n, k = problem.n, problem.k
    preconditioned = problem.ridge > 0 and not problem.finite_time
    steps = min(max_iter, _CG_STEPS["preconditioned" if preconditioned else "plain"])
    memory = cg_bytes(n, k, problem.tile, n_centers, preconditioned,
                      max_iter if problem.finite_time else 0, centers, problem.ridge)
    flops = steps * n * n / 2 * entry_flops(problem)
    if preconditioned:
        flops += nystrom_flops(problem, min(n, n_centers), 0)
    path = ("Lanczos gradient flow" if problem.finite_time else
            "CG preconditioned by Nystrom" if preconditioned else "minimum-norm CG (ridge 0)")
    if not problem.has_inputs:
        return Estimate("cg", memory, flops, True, path, False,
                        "it computes kernel tiles from the inputs (network='precomputed')")
    return Estimate("cg", memory, flops, True, path)


def centre_bytes(n: int, n_centers: int, centers: str) -> int:
    """Bytes for picking the centres: by RPCholesky, its pool x M factor and a block of columns."""
    m = min(n, n_centers)
    return pool_size(n, m) * (m + 2 * BLOCK) * _FLOAT if centers == "rpcholesky" else 0


def nystrom_bytes(n: int, k: int, n_centers: int, store: bool, centers: str = "uniform") -> int:
    """Bytes for the Nystrom solver (K_nM only if ``store``), its centres picked by ``centers``."""
    m = min(n, n_centers)
    block = 4 * min(n, block_rows(m)) * m * _FLOAT
    solve = (n * m * _FLOAT if store else 0) + 4 * m * m * _FLOAT + block
    return max(solve, centre_bytes(n, n_centers, centers)) + 6 * n * k * _FLOAT


def nystrom_flops(problem: Problem, m: int, steps: int) -> float:
    """K_nM's entries, F^T F (n M^2), M^3 factorizations, ``steps`` products with K_nM."""
    n = problem.n
    return n * m * entry_flops(problem) + n * m * m + 4 * m**3 + steps * 4 * n * m


def nystrom_estimate(problem: Problem, *, n_centers: int, centers: str, store: bool,
                     ) -> Estimate:
    """Falkon (ridge > 0, t = inf) or the Nystrom spectrum, K_nM stored or streamed."""
    n, m = problem.n, min(problem.n, n_centers)
    falkon = problem.ridge > 0 and not problem.finite_time
    store = store and falkon  # the spectrum always streams
    # and the tiles in flight while blocks of K_nM are computed
    memory = (nystrom_bytes(n, problem.k, n_centers, store, centers)
              + (tile_bytes(min(problem.tile, n, block_rows(m))) if problem.has_inputs else 0))
    flops = nystrom_flops(problem, m, _FALKON_STEPS if falkon else 0)
    if centers == "rpcholesky":
        flops += pool_size(n, m) * m * (entry_flops(problem) + m)
    path = (f"Falkon CG on M={m} centres, K_nM {'stored' if store else 'streamed'}" if falkon
            else f"gradient flow with the Nystrom kernel of M={m} centres")
    if not problem.has_inputs:
        return Estimate("nystrom", memory, flops, False, path, False,
                        "it computes kernels at its centres (network='precomputed')")
    return Estimate("nystrom", memory, flops, m >= n, path)


def size(nbytes: float) -> str:
    """Bytes in GiB, or in MiB below one GiB."""
    return f"{nbytes / 2**30:.2f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.2f} MiB"


def decide(exact: Estimate, cg: Estimate, stored: Estimate, streamed: Estimate, *,
           free: float, rate: float | None = None, time_limit: float = TIME_LIMIT,
           n: int, k: int, m: int, finite_time: bool) -> Plan:
    """"auto"'s choice among the estimates (module text), with its reason in words."""
    budget = _FIT * free
    nystrom = stored if stored.bytes <= 0.5 * free else streamed
    rate = blas_rate() if rate is None else rate
    when = {e.solver: e.seconds(rate) for e in (exact, cg, nystrom)}
    fits = f"{size(exact.bytes)} of {size(free)} available"
    if exact.bytes <= budget:
        if not nystrom.possible or when[exact.solver] <= max(time_limit, when["nystrom"]):
            return Plan(exact.solver, True,
                        f"the exact solve fits in memory ({fits}) and is expected to take "
                        f"{when[exact.solver]:.3g} s (limit {time_limit:g} s; Nystrom "
                        f"{when['nystrom']:.3g} s)")
        why = (f"the exact {exact.solver} solve fits in memory ({fits}) but is expected to "
               f"take {when[exact.solver]:.3g} s, more than the {time_limit:g} s limit")
    else:
        why = f"the exact {exact.solver} solve needs {size(exact.bytes)}, {size(free)} available"
    if cg.possible and cg.bytes <= budget and when["cg"] <= time_limit:
        return Plan("cg", True, f"{why}; CG ({cg.path}) gives the exact answer in "
                                f"{size(cg.bytes)}, expected {when['cg']:.3g} s")
    if nystrom.possible and streamed.bytes <= budget:
        return Plan("nystrom", nystrom is stored,
                    f"{why}; Nystrom ({nystrom.path}) needs {size(nystrom.bytes)} and is "
                    f"expected to take {when['nystrom']:.3g} s")
    raise InsufficientMemoryError(
        f"n={n} training points and k={k} targets need {size(exact.bytes)} for the exact "
        f"{'eigendecomposition' if finite_time else 'Cholesky'} solve, but only "
        f"{size(free)} of memory is available, and the streamed Nystrom solver with "
        f"M={m} centres needs {size(streamed.bytes)} "
        "(4 M^2 + 6 n k floats). Use fewer n_centers or training points.")


def choose_solver(requested: str, *, n: int, k: int, finite_time: bool, ridge: float,
                  n_centers: int, tile: int, max_iter: int = 1000, centers: str = "uniform",
                  d: int = 0, has_inputs: bool = True, rate: float | None = None,
                  time_limit: float = TIME_LIMIT, layers: int = 3) -> Plan:
    """The solver for ``requested`` ("auto", "cholesky", "eigh", "cg" or "nystrom").

    ``max_iter`` bounds the Lanczos basis that "cg" keeps for a finite time;
    ``centers`` ("uniform" or "rpcholesky") is how the Nystrom centres are
    picked; ``d`` (input features) and ``layers`` enter the kernel's cost;
    ``rate`` is the BLAS rate in flops per second (None: :func:`blas_rate`).

    Raises:
        InsufficientMemoryError: a problem that does not fit under the requested
            solver, or under any solver for "auto".

    Examples:
        >>> from lazykit.solvers.planning import choose_solver
        >>> plan = choose_solver("auto", n=1000, k=1, finite_time=False, ridge=0.0,
        ...                      n_centers=500, tile=1024, rate=1e11)
        >>> plan.name, plan.reason.split(" (")[0]
        ('cholesky', 'the exact solve fits in memory')
    """
    problem = Problem(n, k, float(ridge), bool(finite_time), d, tile, has_inputs, layers)
    stored = nystrom_estimate(problem, n_centers=n_centers, centers=centers, store=True)
    streamed = nystrom_estimate(problem, n_centers=n_centers, centers=centers, store=False)
    free = available_memory()
    if requested == "nystrom":
        check_memory(streamed.bytes,
                     f"the streamed Nystrom solver (n={n}, k={k}, M={min(n, n_centers)})",
                     "Use fewer n_centers.")
        return Plan("nystrom", stored.bytes <= 0.5 * free, "requested")
    cg = cg_estimate(problem, n_centers=n_centers, max_iter=max_iter, centers=centers)
    if requested == "cg":
        check_memory(cg.bytes,
                     f"the CG solver (n={n}, k={k}, tile={tile}, M={min(n, n_centers)}"
                     + (f", Lanczos basis of up to {max_iter} vectors)" if finite_time else ")"),
                     "Use a smaller tile_size, fewer n_centers"
                     + (" or a smaller max_iter." if finite_time else "."))
        return Plan("cg", True, "requested")
    if requested != "auto":
        return Plan(requested, True, "requested")
    exact = exact_estimate(problem, finite_time)
    return decide(exact, cg, stored, streamed, free=free, rate=rate, time_limit=time_limit,
                  n=n, k=k, m=min(n, n_centers), finite_time=finite_time)
