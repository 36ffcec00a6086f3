"""Blocked, right-looking Cholesky factorization in place, over BLAS-3 calls on blocks.

SciPy's multithreaded LAPACK ``dpotrf`` was seen to take the process down
with a segmentation fault for every n >= 16,000 (scipy-openblas, two
threads; 12,000 passed, one BLAS thread passed at half the speed).
:func:`cholesky_in_place` gives the same factor without ever handing LAPACK a
matrix larger than :data:`BLOCK`: for each block row k,

1. ``dpotrf`` factors the diagonal block, A_kk = U_kk^T U_kk;
2. ``dtrsm`` solves the block row to its right, U_k,+ = U_kk^-T A_k,+;
3. ``dsyrk`` (diagonal blocks, upper triangle) and ``dgemm`` (the rest of each
   block row) update the trailing matrix, A_++ -= U_k,+^T U_k,+.

The calls go to the same BLAS / LAPACK as ``scipy.linalg.blas`` /
``scipy.linalg.lapack``, through the C entry points of
``scipy.linalg.cython_blas`` / ``cython_lapack``, which take a leading
dimension: every call works on a block of the matrix where it lies, so
nothing is copied and no workspace is allocated (SciPy's Python wrappers need
contiguous blocks: copying them through a buffer measured 1.37 x one dpotrf).
benchmarks/cholesky_blocked.py measures it against one ``dpotrf``.

The factor is the upper one of the Fortran-ordered matrix, A = U^T U, in its
upper triangle, as ``dpotrf(lower=0, clean=0)`` leaves it: ``dpocon`` /
``dpotrs`` with ``uplo="U"`` take it as it is, and the strictly lower triangle
is not touched. For a C-ordered symmetric matrix ``a``, ``a.T`` is that
Fortran-ordered matrix: ``a`` then holds L = U^T in its lower triangle.
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np
import scipy.linalg.lapack
from scipy.linalg import cython_blas, cython_lapack

BLOCK = 2048
"""Block order: the largest matrix LAPACK factors at once, far below the size where
dpotrf crashed. benchmarks/cholesky_blocked.py at n = 12,000 (two cores, best of
two): 8.51 s against one dpotrf's 8.47 s (blocks of 1024-4096: 0.96-1.01 x)."""

_INT_MAX = 2**31 - 1  # SciPy's BLAS / LAPACK take 32-bit integers


def cholesky_in_place(f: np.ndarray, block: int = BLOCK) -> int:
    """Factor the Fortran-ordered float64 SPD matrix ``f`` = U^T U in place; return LAPACK's info.

    Only the upper triangle of ``f`` is read, and U overwrites it. A matrix of
    order at most ``block`` is one ``dpotrf`` call.

    Args:
        f: square, Fortran-ordered (``f.flags.f_contiguous``), float64,
            writeable matrix.
        block: block order, a positive integer.

    Returns:
        0 on success; i > 0 if the leading minor of order i is not positive
        definite, as ``dpotrf`` (``f`` is then partly overwritten).

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
        >>> bad = np.asfortranarray(np.diag([1.0, -1.0, 2.0]))
        >>> cholesky_in_place(bad, block=2)  # the leading minor of order 2
        2
    """
    n = _check(f, block)
    if n == 0:
        return 0
    routines = _routines()
    if routines is None:  # pragma: no cover - a SciPy without its Cython BLAS capsules
        return _potrf_whole(f)
    blocks = _Blocks(f)
    for k in range(0, n, block):
        end = min(k + block, n)
        info = ctypes.c_int(0)
        routines.potrf(b"U", _int(end - k), blocks.at(k, k), blocks.ld, ctypes.byref(info))
        if info.value:
            return k + info.value if info.value > 0 else _invalid("dpotrf", info.value)
        if end == n:
            break
        routines.trsm(b"L", b"U", b"T", b"N", _int(end - k), _int(n - end), _ONE, blocks.at(k, k),
                    blocks.ld, blocks.at(k, end), blocks.ld)
        for row in range(end, n, block):  # A_++ -= U_k,+^T U_k,+, block row by block row
            row_end = min(row + block, n)
            routines.syrk(b"U", b"T", _int(row_end - row), _int(end - k), _MINUS_ONE,
                        blocks.at(k, row), blocks.ld, _ONE, blocks.at(row, row), blocks.ld)
            if row_end < n:
                routines.gemm(b"T", b"N", _int(row_end - row), _int(n - row_end), _int(end - k),
                            _MINUS_ONE, blocks.at(k, row), blocks.ld, blocks.at(k, row_end),
                            blocks.ld, _ONE, blocks.at(row, row_end), blocks.ld)
    return 0


class _Blocks:
    """Addresses of the blocks of a Fortran-ordered float64 matrix, and its leading dimension."""

    def __init__(self, f: np.ndarray):
        self.base, self.n = f.ctypes.data, f.shape[0]
        self.ld = _int(self.n)

    def at(self, row: int, column: int) -> int:
        return self.base + 8 * (row + column * self.n)


def _int(value: int):
    return ctypes.byref(ctypes.c_int(value))


_ONE = ctypes.byref(ctypes.c_double(1.0))
_MINUS_ONE = ctypes.byref(ctypes.c_double(-1.0))


@functools.cache
def _routines():
    """dpotrf, dtrsm, dsyrk, dgemm: SciPy's C entry points (capsules of its Cython modules).

    None if this SciPy does not export them (then one dpotrf does the work).
    """
    if not all(hasattr(module, "__pyx_capi__") for module in (cython_blas, cython_lapack)):
        return None  # pragma: no cover
    name = ctypes.pythonapi.PyCapsule_GetName
    name.restype, name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    pointer = ctypes.pythonapi.PyCapsule_GetPointer
    pointer.restype, pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    char, integer, double = ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_void_p

    def routine(module, routine_name, *argtypes):
        capsule = module.__pyx_capi__[routine_name]
        return ctypes.CFUNCTYPE(None, *argtypes)(pointer(capsule, name(capsule)))

    class Routines:
        potrf = routine(cython_lapack, "dpotrf", char, integer, double, integer, integer)
        trsm = routine(cython_blas, "dtrsm", char, char, char, char, integer, integer, double,
                       double, integer, double, integer)
        syrk = routine(cython_blas, "dsyrk", char, char, integer, integer, double, double,
                       integer, double, double, integer)
        gemm = routine(cython_blas, "dgemm", char, char, integer, integer, integer, double,
                       double, integer, double, integer, double, double, integer)

    return Routines


def _potrf_whole(f: np.ndarray) -> int:  # pragma: no cover - see _routines
    _, info = scipy.linalg.lapack.dpotrf(f, lower=0, clean=0, overwrite_a=1)
    return info if info >= 0 else _invalid("dpotrf", info)


def _invalid(routine: str, info: int) -> int:  # pragma: no cover - only on invalid arguments
    raise RuntimeError(f"LAPACK {routine} rejected argument {-info} (info={info}).")


def _check(f, block) -> int:
    """n for a valid ``f`` (the raw block addresses rely on every one of these checks)."""
    if not (isinstance(f, np.ndarray) and f.ndim == 2 and f.shape[0] == f.shape[1]
            and f.dtype == np.float64 and f.flags.f_contiguous and f.flags.writeable):
        got = (f"a {f.dtype} array of shape {f.shape} (f_contiguous={f.flags.f_contiguous}, "
               f"writeable={f.flags.writeable})" if isinstance(f, np.ndarray)
               else f"a {type(f).__name__}")
        raise ValueError("cholesky_in_place needs a square, Fortran-ordered, writeable float64 "
                         f"matrix (for a C-ordered symmetric one, pass its .T); got {got}.")
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1:
        raise ValueError(f"block must be a positive integer; got {block!r}.")
    if f.shape[0] > _INT_MAX:  # pragma: no cover - 2^31 rows do not fit in memory
        raise ValueError(f"cholesky_in_place handles n <= {_INT_MAX}; got n = {f.shape[0]}.")
    return f.shape[0]
