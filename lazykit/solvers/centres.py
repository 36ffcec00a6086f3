"""Nystrom centres: uniform sampling, or randomly pivoted Cholesky.

Uniform sampling picks M training inputs at random. Randomly pivoted Cholesky
(RPCholesky; Chen, Epperly, Tropp, Webber 2022) picks each next centre with
probability proportional to the diagonal of the residual kernel
K - K_{:,S} K_SS^{-1} K_{S,:}, i.e. where the current centres explain the
kernel least: its Nystrom approximation error in trace norm is within a small
factor of the best rank-M one. lazykit runs the blocked form with rejection
of Epperly, Tropp and Webber (2024): b candidates are drawn from the residual
diagonal at once, their kernel columns computed in one call, and candidate i
is accepted with probability (its residual given the accepted ones) / (its
residual at the start of the block), which keeps RPCholesky's distribution.

Cost: the kernel columns of the M centres over a candidate pool (all n
inputs, or a uniform subsample of at most ``POOL_ENTRIES / M`` of them when n
is larger; at least 16 M), plus pool x M^2 flops; memory pool x M floats.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

CENTRE_METHODS = ("rpcholesky", "uniform")
BLOCK = 100  # candidates drawn per RPCholesky block
POOL_ENTRIES = 1 << 27  # the pool x M factor: at most 1 GiB of float64


def pool_size(n: int, m: int) -> int:
    """Inputs RPCholesky draws its centres from: all n, or a uniform subsample."""
    return min(n, max(16 * m, POOL_ENTRIES // max(m, 1)))


def uniform_centres(n: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """``m`` distinct indices out of ``n``, sorted.

    Examples:
        >>> import numpy as np
        >>> from lazykit.solvers.centres import uniform_centres
        >>> uniform_centres(10, 3, np.random.default_rng(0)).tolist()
        [5, 6, 9]
    """
    return np.sort(rng.choice(n, size=min(m, n), replace=False))


def rpcholesky_centres(columns, diagonal: np.ndarray, m: int, rng: np.random.Generator,
                       block: int = BLOCK) -> np.ndarray:
    """Indices of ``m`` centres by blocked randomly pivoted Cholesky, sorted.

    Args:
        columns: indices (b,) -> kernel columns K[:, indices], shape (p, b).
        diagonal: the kernel's diagonal, shape (p,).
        m: centres wanted; fewer are returned when the residual vanishes
            (the kernel has numerical rank below m, e.g. duplicate inputs).

    Examples:
        >>> import numpy as np
        >>> from lazykit.solvers.centres import rpcholesky_centres
        >>> x = np.r_[np.zeros(50), 5.0 + np.arange(3)]  # a crowd and three outliers
        >>> gram = np.exp(-np.subtract.outer(x, x) ** 2)
        >>> picked = rpcholesky_centres(lambda s: gram[:, s], np.diag(gram).copy(), 4,
        ...                             np.random.default_rng(0))
        >>> sorted(set(picked.tolist()) & {50, 51, 52})  # the outliers are all picked
        [50, 51, 52]
    """
    p = diagonal.shape[0]
    residual = np.maximum(np.asarray(diagonal, dtype=np.float64).copy(), 0.0)
    factor = np.zeros((p, min(m, p)))
    chosen: list[int] = []
    floor = p * np.finfo(np.float64).eps * float(residual.max(initial=0.0))
    while len(chosen) < factor.shape[1]:
        total = residual.sum()
        if not total > floor:
            break
        wanted = min(block, factor.shape[1] - len(chosen))
        candidates = np.unique(rng.choice(p, size=wanted, p=residual / total))
        k = len(chosen)
        cols = np.asarray(columns(candidates), dtype=np.float64) \
            - factor[:, :k] @ factor[candidates, :k].T
        accepted = _accept(cols[candidates], residual[candidates], floor, rng)
        if not accepted.size:
            continue
        lower = np.linalg.cholesky(cols[candidates[accepted]][:, accepted])
        new = scipy.linalg.solve_triangular(lower, cols[:, accepted].T, lower=True).T
        factor[:, k:k + accepted.size] = new
        residual = np.maximum(residual - np.sum(new**2, axis=1), 0.0)
        residual[candidates[accepted]] = 0.0
        chosen.extend(candidates[accepted].tolist())
    return np.sort(np.asarray(chosen, dtype=int))


def _accept(block: np.ndarray, start: np.ndarray, floor: float,
            rng: np.random.Generator) -> np.ndarray:
    """Positions accepted in order: candidate i with probability r_i / start_i (r_i its residual
    given the candidates accepted before it), by a Cholesky factorization of the block."""
    size = block.shape[0]
    rows = np.zeros((size, size))
    accepted: list[int] = []
    for i in range(size):
        r = block[i, i] - rows[i, :len(accepted)] @ rows[i, :len(accepted)]
        if r > floor and rng.uniform() * start[i] < r:
            rows[:, len(accepted)] = (block[:, i] - rows[:, :len(accepted)]
                                      @ rows[i, :len(accepted)]) / np.sqrt(r)
            accepted.append(i)
    return np.asarray(accepted, dtype=int)
