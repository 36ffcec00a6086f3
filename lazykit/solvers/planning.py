"""Which solver a kernel regression problem can use, from the memory each one needs.

Bytes in float64 for n training points, k targets, M Nystrom centres:

- exact ("cholesky", t = inf): 4 n^2 floats, the measured peak (both kernels
  of the padded inputs, their unpadded copies, then the Gram matrix and its
  factor: 12.8 GiB at n = 20,000); finite t ("eigh"): 5 n^2;
- "cg": 6 n k (CG vectors) plus the kernel tiles in flight, and 3 n M while
  its Nystrom preconditioner is built (ridge > 0); at a finite time the
  Lanczos basis instead, up to max_iter n k;
- "nystrom", stored: n M (K_nM) + 4 M^2 + 6 n k + one block of K_nM rows;
- "nystrom", streamed: the same without the n M term;
- picking the centres by RPCholesky (before the above, for both matrix-free
  solvers): pool x (M + 200) floats, pool <= max(16 M, 2^27 / M).

"auto" takes the exact solver when it fits in the memory available now (90%
of it, as the kernels' own check), else the Nystrom solver (storing K_nM when
that takes at most half of the available memory), and refuses a problem that
fits under neither with an :class:`~lazykit.InsufficientMemoryError` naming
the sizes. It never picks "cg": one CG iteration costs a pass over all n^2 / 2
kernel entries, hours on a CPU at the sizes where the exact solver no longer fits.
"""

from __future__ import annotations

from typing import NamedTuple

import jax

from lazykit.kernels.compute import (
    _WORK_ARRAYS_PER_TILE,
    InsufficientMemoryError,
    available_memory,
    check_memory,
)
from lazykit.solvers.centres import BLOCK, pool_size
from lazykit.solvers.nystrom import block_rows

_FLOAT = 8
_FIT = 0.9  # fraction of the available memory a plan may use (as check_memory)


class Plan(NamedTuple):
    """The solver chosen for a problem, and whether the Nystrom solver stores K_nM."""

    name: str
    store: bool = True


def exact_bytes(n: int, finite_time: bool) -> int:
    """Bytes for the dense Gram matrix and its factorization."""
    return (5 if finite_time else 4) * n * n * _FLOAT


def cg_bytes(n: int, k: int, tile: int, n_centers: int, preconditioned: bool,
             lanczos_steps: int = 0, centers: str = "uniform") -> int:
    """Bytes for CG's vectors, the tiles in flight, the preconditioner and a Lanczos basis."""
    tiles = _WORK_ARRAYS_PER_TILE * tile * tile * _FLOAT * len(jax.devices())
    basis = min(n, lanczos_steps) * n * k
    preconditioner = max(3 * n * min(n, n_centers) * _FLOAT, centre_bytes(n, n_centers, centers))
    return (6 * n * k + basis) * _FLOAT + (preconditioner if preconditioned else 0) + tiles


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


def _size(nbytes: float) -> str:
    """Bytes in GiB, or in MiB below one GiB."""
    return f"{nbytes / 2**30:.2f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.2f} MiB"


def choose_solver(requested: str, *, n: int, k: int, finite_time: bool, ridge: float,
                  n_centers: int, tile: int, max_iter: int = 1000,
                  centers: str = "uniform") -> Plan:
    """The solver for ``requested`` ("auto", "cholesky", "eigh", "cg" or "nystrom").

    ``max_iter`` bounds the Lanczos basis that "cg" keeps for a finite time;
    ``centers`` ("uniform" or "rpcholesky") is how the Nystrom centres are picked.

    Raises:
        InsufficientMemoryError: a problem that does not fit under the requested
            solver, or under any solver for "auto".

    Examples:
        >>> from lazykit.solvers.planning import choose_solver
        >>> choose_solver("auto", n=1000, k=1, finite_time=False, ridge=0.0, n_centers=500,
        ...               tile=1024)
        Plan(name='cholesky', store=True)
    """
    free = available_memory()
    budget = _FIT * free
    if requested == "nystrom":
        check_memory(nystrom_bytes(n, k, n_centers, False, centers),
                     f"the streamed Nystrom solver (n={n}, k={k}, M={min(n, n_centers)})",
                     "Use fewer n_centers.")
        return Plan("nystrom", nystrom_bytes(n, k, n_centers, True, centers) <= 0.5 * free)
    if requested == "cg":
        check_memory(cg_bytes(n, k, tile, n_centers, ridge > 0 and not finite_time,
                              max_iter if finite_time else 0, centers),
                     f"the CG solver (n={n}, k={k}, tile={tile}, M={min(n, n_centers)}"
                     + (f", Lanczos basis of up to {max_iter} vectors)" if finite_time else ")"),
                     "Use a smaller tile_size, fewer n_centers"
                     + (" or a smaller max_iter." if finite_time else "."))
        return Plan("cg")
    if requested != "auto":
        return Plan(requested)
    exact = exact_bytes(n, finite_time)
    if exact <= budget:
        return Plan("eigh" if finite_time else "cholesky")
    streamed = nystrom_bytes(n, k, n_centers, False, centers)
    if streamed > budget:
        raise InsufficientMemoryError(
            f"n={n} training points and k={k} targets need {_size(exact)} for the exact "
            f"{'eigendecomposition' if finite_time else 'Cholesky'} solve, but only "
            f"{_size(free)} of memory is available, and the streamed Nystrom solver with "
            f"M={min(n, n_centers)} centres needs {_size(streamed)} (4 M^2 + 6 n k floats). Use "
            "fewer n_centers or training points.")
    return Plan("nystrom", nystrom_bytes(n, k, n_centers, True, centers) <= 0.5 * free)
