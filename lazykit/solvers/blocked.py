"""Blocked, right-looking Cholesky factorization in place, over BLAS-3 calls on blocks.

SciPy's LAPACK ``dpotrf`` (scipy-openblas 0.3.31, two threads) takes the
process down with a segmentation fault for every n >= 16,000 on the
development machine (12,000 passes; with one BLAS thread it passes, at half
the speed). :func:`cholesky_in_place` gives the same factor without ever
handing LAPACK a matrix that large: for each block row k of width
:data:`BLOCK` (far below the crashing size),

1. ``dpotrf`` factors the diagonal block, A_kk = U_kk^T U_kk;
2. ``dtrsm`` solves the block row to its right, U_k,k+ = U_kk^-T A_k,k+;
3. ``dsyrk`` (diagonal tiles, upper triangle) and ``dgemm`` (the others)
   update the trailing matrix, A_++ -= U_k,+^T U_k,+, tile by tile.

All the floating-point work is in the multithreaded BLAS / LAPACK calls;
SciPy's wrappers need contiguous operands, so the block row and each trailing
tile travel through a small Fortran-ordered buffer (2 x BLOCK x n floats at
most): about n^3 / (3 BLOCK) copied entries against n^3 / 3 multiply-adds.
benchmarks/cholesky_blocked.py measures it against one ``dpotrf``.

The factor is the upper one of the Fortran-ordered matrix, A = U^T U, in its
upper triangle, as ``dpotrf(lower=0, clean=0)`` leaves it: ``dpocon`` /
``dpotrs`` with ``uplo="U"`` take it as it is. The strictly lower triangle is
left as workspace (not the input). For a C-ordered symmetric matrix ``a``,
``a.T`` is that Fortran-ordered matrix: ``a`` then holds L = U^T in its lower
triangle.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import blas, lapack

BLOCK = 4096
"""Block width: the largest block LAPACK factors at once; chosen by
benchmarks/cholesky_blocked.py (within a few percent of one dpotrf at n = 12,000)."""


def workspace_bytes(n: int, block: int = BLOCK) -> int:
    """Bytes of the buffers :func:`cholesky_in_place` allocates besides the matrix."""
    width = min(n, block)
    return 0 if n <= block else (width * n + width * width) * 8


def cholesky_in_place(f: np.ndarray, block: int = BLOCK) -> int:
    """Factor the Fortran-ordered float64 SPD matrix ``f`` = U^T U in place; return LAPACK's info.

    Only the upper triangle of ``f`` is read, and U overwrites it. A matrix of
    order at most ``block`` goes to one ``dpotrf`` call.

    Args:
        f: square, Fortran-ordered (``f.flags.f_contiguous``), float64, writeable.
        block: block width.

    Returns:
        0 on success; i > 0 if the leading minor of order i is not positive
        definite (as ``dpotrf``; ``f`` is then partly overwritten).

    Raises:
        ValueError: ``f`` is not a square Fortran-ordered writeable float64
            matrix, or ``block`` is not a positive integer.

    Examples:
        >>> import numpy as np
        >>> from lazykit.solvers.blocked import cholesky_in_place
        >>> a = np.array([[4.0, 2.0, 2.0], [2.0, 5.0, 3.0], [2.0, 3.0, 6.0]])
        >>> f = np.asfortranarray(a)
        >>> cholesky_in_place(f, block=2)
        0
        >>> u = np.triu(f)
        >>> bool(np.allclose(u.T @ u, a))
        True
    """
    n = _check(f, block)
    if n <= block:
        return _potrf(f, 0)
    for k in range(0, n, block):
        end = min(k + block, n)
        row = np.array(f[k:end, k:], order="F")  # [A_kk | A_k,k+]
        info = _potrf(row[:, :end - k], k)
        if info:
            return info
        if end < n:
            _into(row[:, end - k:], blas.dtrsm(1.0, row[:, :end - k], row[:, end - k:], side=0,
                                               lower=0, trans_a=1, diag=0, overwrite_b=1))
        f[k:end, k:] = row
        if end < n:
            _update_trailing(f, row[:, end - k:], end, block)
    return 0


def _update_trailing(f: np.ndarray, panel: np.ndarray, start: int, block: int) -> None:
    """f[start:, start:] -= panel^T panel on the upper triangle, tile by tile.

    panel: b x (n - start). ``dsyrk`` for the diagonal tiles (their upper
    triangles only), ``dgemm`` for the others.
    """
    n = f.shape[0]
    buffer = np.empty((block, block), order="F")
    for i in range(start, n, block):
        i_end = min(i + block, n)
        left = panel[:, i - start:i_end - start]
        for j in range(i, n, block):
            j_end = min(j + block, n)
            tile = _tile(buffer, i_end - i, j_end - j)
            tile[...] = f[i:i_end, j:j_end]
            if i == j:
                result = blas.dsyrk(-1.0, left, beta=1.0, c=tile, trans=1, lower=0,
                                    overwrite_c=1)
            else:
                result = blas.dgemm(-1.0, left, panel[:, j - start:j_end - start], beta=1.0,
                                    c=tile, trans_a=1, overwrite_c=1)
            _into(tile, result)
            f[i:i_end, j:j_end] = tile


def _tile(buffer: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """A Fortran-contiguous rows x columns array, in ``buffer`` when it can be."""
    view = buffer[:rows, :columns]
    return view if view.flags.f_contiguous else np.empty((rows, columns), order="F")


def _potrf(a: np.ndarray, offset: int) -> int:
    """dpotrf (upper) in place on the Fortran-contiguous ``a``; info shifted by ``offset``."""
    factor, info = lapack.dpotrf(a, lower=0, clean=0, overwrite_a=1)
    if info < 0:  # pragma: no cover - only on invalid arguments
        raise RuntimeError(f"LAPACK dpotrf failed with info={info}.")
    _into(a, factor)
    return offset + info if info > 0 else 0


def _into(view: np.ndarray, result: np.ndarray) -> None:
    """Make sure a wrapper's result lands in ``view`` (SciPy works in place when it can)."""
    if not np.shares_memory(view, result):  # pragma: no cover - SciPy copied after all
        view[...] = result


def _check(f, block) -> int:
    if not (isinstance(f, np.ndarray) and f.ndim == 2 and f.shape[0] == f.shape[1]
            and f.dtype == np.float64 and f.flags.f_contiguous and f.flags.writeable):
        raise ValueError(
            "cholesky_in_place needs a square, Fortran-ordered, writeable float64 matrix; got "
            + (f"{f.dtype} array of shape {f.shape} (f_contiguous={f.flags.f_contiguous}, "
               f"writeable={f.flags.writeable})." if isinstance(f, np.ndarray)
               else f"{type(f).__name__}."))
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1:
        raise ValueError(f"block must be a positive integer; got {block!r}.")
    return f.shape[0]
