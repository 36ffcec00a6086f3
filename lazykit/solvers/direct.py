"""Dense float64 solvers for a training Gram matrix A = K + ridge I.

A solver factorizes A once and then applies the *gradient-flow filter*
G_s = A^{-1} (I - exp(-s A)) to right-hand sides, for any number of scaled
times s (s = inf gives A^{-1}, or its pseudo-inverse). Two solvers:

- :class:`CholeskySolver` (LAPACK potrf, by blocks past
  :data:`lazykit.solvers.blocked.BLOCK`): the fastest exact solve for s = inf.
  It is used only when A is numerically positive definite: the factorization
  succeeds *and* LAPACK's condition estimate (pocon) says no eigenvalue is
  below ``n * eps * ||A||``. Finite times need the spectrum; it is computed on
  demand from the factor and cached. Large matrices are factorized in blocks
  (:func:`lazykit.solvers.blocked.cholesky_in_place`), in place: SciPy's
  multithreaded dpotrf was seen to crash the process at n >= 16,000.
- :class:`EigenSolver` (LAPACK syevd): one eigendecomposition serves every
  time. Eigenvalues at or below ``n * eps * max|eigenvalue|`` (numpy's
  ``matrix_rank`` tolerance) are treated as zero, so s = inf gives the
  minimum-norm (pseudo-inverse) solution and no time ever produces NaN.

Both read one triangle of A (LAPACK's convention), which is the
symmetrization of a Gram matrix whose two triangles differ by rounding.
:func:`make_solver` dispatches through :data:`SOLVERS` (a name -> factory
mapping that matrix-free solvers can extend), falling back from Cholesky to the
eigendecomposition with an :class:`IllConditionedKernelWarning` that says what
happened.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import scipy.linalg
from scipy.linalg import lapack

from lazykit.kernels.compute import check_memory
from lazykit.solvers import blocked

_EPS = np.finfo(np.float64).eps
_NORM_BLOCK = 512


class IllConditionedKernelWarning(scipy.linalg.LinAlgWarning):
    """A kernel system was singular or ill-conditioned and was solved by pseudo-inverse."""


class NotConvergedWarning(RuntimeWarning):
    """An iterative solver stopped at its iteration limit above its tolerance."""


def _shifted(gram, ridge: float, *, overwrite: bool = False) -> np.ndarray:
    """``gram`` + ridge I as a float64 C-ordered array: ``gram`` itself if ``overwrite`` allows
    and it is one (then it is changed in place), else a copy."""
    owned = (overwrite and isinstance(gram, np.ndarray) and gram.dtype == np.float64
             and gram.flags.c_contiguous and gram.flags.writeable)
    a = gram if owned else np.array(gram, dtype=np.float64, order="C", copy=True)
    if ridge:
        a.flat[:: a.shape[0] + 1] += ridge
    return a


def _restore_lower(a: np.ndarray, diagonal: np.ndarray) -> None:
    """Rebuild the lower triangle of a symmetric C-ordered ``a`` from its upper one, in place.

    A failed in-place Cholesky of ``a.T`` overwrote the lower triangle and the
    diagonal of ``a`` (the upper triangle of its Fortran view) and left the
    strict upper triangle as it was: this restores the matrix, in row blocks.
    """
    n = a.shape[0]
    for start in range(0, n, _NORM_BLOCK):
        stop = min(start + _NORM_BLOCK, n)
        a[start:stop, :start] = a[:start, start:stop].T
        block = a[start:stop, start:stop]
        upper = np.triu(block, 1)
        block[...] = upper + upper.T
    a.flat[:: n + 1] = diagonal


def _one_norm(a: np.ndarray) -> float:
    """max_j sum_i |a_ij| in row blocks (no full-size temporary)."""
    sums = np.zeros(a.shape[1])
    for start in range(0, a.shape[0], _NORM_BLOCK):
        sums += np.abs(a[start:start + _NORM_BLOCK]).sum(axis=0)
    return float(sums.max())


def check_gram(gram, name: str = "gram") -> int:
    """Return n for a square, finite 2-D Gram matrix, or raise ValueError naming ``name``."""
    shape = np.shape(gram)
    if len(shape) != 2 or shape[0] != shape[1] or shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty square matrix (n, n); got shape {shape}.")
    return shape[0]


def pseudo_inverse_cutoff(values: np.ndarray) -> float:
    """Eigenvalues at or below this are treated as zero: n * eps * max |eigenvalue|."""
    return values.shape[0] * _EPS * float(np.max(np.abs(values), initial=0.0))


def flow_filter(values: np.ndarray, scaled_times, cutoff: float) -> np.ndarray:
    """g_s(mu) = (1 - exp(-s mu)) / mu for each scaled time s (rows) and eigenvalue mu.

    s = inf gives 1 / mu. Eigenvalues at or below ``cutoff`` (numerically zero
    or negative) get weight 0: their directions are not resolved in float64.

    Examples:
        >>> import numpy as np
        >>> from lazykit.solvers.direct import flow_filter
        >>> flow_filter(np.array([0.0, 1.0, 2.0]), [0.5, np.inf], cutoff=1e-12).round(4)
        array([[0.    , 0.3935, 0.3161],
               [0.    , 1.    , 0.5   ]])
    """
    times = np.atleast_1d(np.asarray(scaled_times, dtype=np.float64))
    keep = values > cutoff
    safe = np.where(keep, values, 1.0)
    out = np.empty((times.shape[0], values.shape[0]))
    for i, s in enumerate(times):
        out[i] = 1.0 / safe if np.isinf(s) else -np.expm1(-s * safe) / safe
    out[:, ~keep] = 0.0
    return out


class EigenSolver:
    """A = V diag(values) V^T; applies g_s(A) for any scaled time s (see :func:`flow_filter`).

    Examples:
        >>> import numpy as np
        >>> from lazykit.solvers.direct import EigenSolver
        >>> solver = EigenSolver.factorize(np.array([[2.0, 1.0], [1.0, 2.0]]), ridge=0.0)
        >>> solver.apply(np.array([[3.0], [3.0]]), [np.inf])[0].ravel()
        array([1., 1.])
    """

    name = "eigh"

    def __init__(self, values: np.ndarray, vectors: np.ndarray):
        self.values = values
        self.vectors = vectors
        self.cutoff = pseudo_inverse_cutoff(values)

    @classmethod
    def factorize(cls, gram, ridge: float, *, overwrite: bool = False) -> EigenSolver:
        """Eigendecompose ``gram + ridge I`` in float64 (``overwrite`` lets it reuse ``gram``).

        In place, the eigenvectors overwrite the matrix and LAPACK's dsyevd
        needs 2 n^2 floats of workspace (checked first); a copy adds n^2.
        """
        n = check_gram(gram)
        copy = not (overwrite and isinstance(gram, np.ndarray) and gram.dtype == np.float64
                    and gram.flags.c_contiguous and gram.flags.writeable)
        check_memory((2 + copy) * n * n * 8, f"the eigendecomposition of a {n} x {n} Gram matrix",
                     "Use fewer training points or a matrix-free solver.")
        a = _shifted(gram, ridge, overwrite=overwrite)
        # a.T: the Fortran-ordered view of the symmetric matrix, so that LAPACK works in place
        # and returns the eigenvectors in its storage.
        values, vectors = scipy.linalg.eigh(a.T, overwrite_a=True, check_finite=False,
                                            driver="evd")
        return cls(values, vectors)

    @property
    def condition(self) -> float:
        """Largest over smallest kept eigenvalue (the condition of the system solved)."""
        kept = self.values[self.values > self.cutoff]
        return float(kept[-1] / kept[0]) if kept.size else float("inf")

    @property
    def n_dropped(self) -> int:
        """Number of eigenvalues treated as zero."""
        return int(np.sum(self.values <= self.cutoff))

    def apply(self, rhs: np.ndarray, scaled_times) -> np.ndarray:
        """g_s(A) rhs for each scaled time: shape (n_times, n, n_columns)."""
        weights = flow_filter(self.values, scaled_times, self.cutoff)  # (T, n)
        projected = self.vectors.T @ rhs  # (n, m)
        n_times, (n, m) = weights.shape[0], projected.shape
        scaled = (weights[:, :, None] * projected[None]).transpose(1, 0, 2).reshape(n, -1)
        return (self.vectors @ scaled).reshape(n, n_times, m).transpose(1, 0, 2)


class CholeskySolver:
    """A = U^T U for infinite time; the spectrum, for finite times, on demand.

    Examples:
        >>> import numpy as np
        >>> from lazykit.solvers.direct import CholeskySolver
        >>> solver = CholeskySolver.factorize(np.array([[2.0, 1.0], [1.0, 2.0]]), ridge=0.0)
        >>> solver.apply(np.array([[3.0], [3.0]]), [np.inf])[0].ravel()
        array([1., 1.])
    """

    name = "cholesky"

    def __init__(self, factor: np.ndarray, reciprocal_condition: float):
        self.factor = factor  # Fortran-ordered; U in its upper triangle
        self.reciprocal_condition = reciprocal_condition
        self._eigen: EigenSolver | None = None

    @classmethod
    def factorize(cls, gram, ridge: float, *, overwrite: bool = False) -> CholeskySolver | None:
        """Cholesky factor of ``gram + ridge I``, or None if A is not numerically positive definite.

        "Numerically positive definite": potrf succeeds and the reciprocal
        condition number estimated by pocon exceeds n * eps. ``overwrite``
        factorizes a C-ordered float64 ``gram`` in place (no copy; if it fails,
        ``gram``'s lower triangle is overwritten).
        """
        n = check_gram(gram)
        if not overwrite:
            check_memory(n * n * 8, f"the Cholesky factor of a {n} x {n} Gram matrix",
                         "Use fewer training points or a matrix-free solver.")
        return cls.in_place(_shifted(gram, ridge, overwrite=overwrite))

    @classmethod
    def in_place(cls, a: np.ndarray) -> CholeskySolver | None:
        """Factorize the C-ordered float64 SPD matrix ``a`` in place (see :meth:`factorize`)."""
        n = a.shape[0]
        norm = _one_norm(a)
        # a.T is the Fortran-ordered view of the same (symmetric) matrix: factorized in place
        # (by blocks past BLOCK), A = U^T U in its upper triangle.
        factor = a.T
        if blocked.cholesky_in_place(factor, blocked.BLOCK) != 0:
            return None
        rcond, info = lapack.dpocon(factor, norm, uplo="U")
        if info != 0 or not rcond > n * _EPS:
            return None
        return cls(factor, float(rcond))

    @property
    def n_dropped(self) -> int:
        return 0

    @property
    def condition(self) -> float:
        """LAPACK's estimate of the condition number (1-norm) of A."""
        return 1.0 / self.reciprocal_condition

    def eigen(self) -> EigenSolver:
        """The eigendecomposition of A = U^T U, computed once; it then replaces the factor.

        A is rebuilt in a new n x n array (U^T U by BLAS dtrmm), the factor is
        dropped, and A is eigendecomposed in place: at most 3 n^2 floats (the
        memory is checked first).
        """
        if self._eigen is None:
            n = self.factor.shape[0]
            check_memory(2 * n * n * 8, f"the eigendecomposition of a {n} x {n} Gram matrix "
                         "(for finite training times)", "Use solver='eigh' or fewer points.")
            u = np.array(self.factor, order="F")
            lower = u.T  # C-ordered view: U^T in its lower triangle; clear the rest
            for start in range(0, n, _NORM_BLOCK):
                rows = lower[start:start + _NORM_BLOCK]
                rows[...] = np.tril(rows, start)
            a = scipy.linalg.blas.dtrmm(1.0, self.factor, u, side=0, lower=0, trans_a=1,
                                        overwrite_b=1)  # U^T U, in u's storage
            self.factor = None
            self._eigen = EigenSolver.factorize(a.T, 0.0, overwrite=True)
        return self._eigen

    def apply(self, rhs: np.ndarray, scaled_times) -> np.ndarray:
        """g_s(A) rhs for each scaled time: shape (n_times, n, n_columns)."""
        times = np.atleast_1d(np.asarray(scaled_times, dtype=np.float64))
        out = np.empty((times.shape[0], *rhs.shape))
        finite = ~np.isinf(times)
        if self.factor is None:  # replaced by the eigendecomposition
            out[:] = self.eigen().apply(rhs, times)
            return out
        if (~finite).any():
            solution, info = lapack.dpotrs(self.factor, np.asarray(rhs, dtype=np.float64),
                                           lower=0)
            if info != 0:  # pragma: no cover - dpotrs fails only on invalid arguments
                raise RuntimeError(f"LAPACK dpotrs failed with info={info}.")
            out[~finite] = solution
        if finite.any():
            out[finite] = self.eigen().apply(rhs, times[finite])
        return out


def _cholesky_or_eigen(gram, ridge: float, *, overwrite: bool = False, what: str = "the kernel"):
    """Cholesky where A is numerically positive definite; otherwise eigh with a warning.

    With ``overwrite`` the Cholesky runs in place; if it fails, the matrix is
    restored from its untouched triangle and eigendecomposed in place.
    """
    n = check_gram(gram)
    if not overwrite:
        check_memory(n * n * 8, f"the Cholesky factor of a {n} x {n} Gram matrix",
                     "Use fewer training points or a matrix-free solver.")
    a = _shifted(gram, ridge, overwrite=overwrite)
    diagonal = a.diagonal().copy()
    solver = CholeskySolver.in_place(a)
    if solver is not None:
        return solver
    _restore_lower(a, diagonal)
    eigen = EigenSolver.factorize(a, 0.0, overwrite=True)
    n, values = eigen.values.shape[0], eigen.values
    negative = int(np.sum(values < -eigen.cutoff))
    problem = (f"is not positive semi-definite ({negative} negative eigenvalues, the smallest "
               f"{values[0]:.3g}; is it a kernel matrix?)" if negative else
               f"is singular or ill-conditioned (eigenvalues from {values[0]:.3g} to "
               f"{values[-1]:.3g}: duplicate training points, or a degenerate kernel such as a "
               f"deep erf network in its ordered phase)")
    warnings.warn(
        f"{what} training Gram matrix (n={n}, ridge={ridge:g}) {problem}, so Cholesky cannot "
        f"solve it accurately. Solved by eigendecomposition instead: {eigen.n_dropped} of {n} "
        f"eigenvalues at or below {eigen.cutoff:.3g} (n * eps * largest |eigenvalue|) were "
        f"treated as zero, which gives the minimum-norm (pseudo-inverse) solution. Set "
        f"ridge > 0 to regularize instead.", IllConditionedKernelWarning, stacklevel=3)
    return eigen


def _eigen(gram, ridge: float, *, overwrite: bool = False, what: str = "the kernel"):
    return EigenSolver.factorize(gram, ridge, overwrite=overwrite)


SOLVERS: dict[str, Callable] = {"cholesky": _cholesky_or_eigen, "eigh": _eigen}
"""Solver name -> factory(gram, ridge, *, overwrite, what) returning an object with
``apply(rhs, scaled_times)`` and a ``name``. New solvers register here."""


def make_solver(name: str, gram, ridge: float = 0.0, *, overwrite: bool = False,
                what: str = "the kernel"):
    """Factorize ``gram + ridge I`` with the solver ``name`` (a key of :data:`SOLVERS`).

    Args:
        name: "cholesky" (falls back to "eigh" with a warning when the matrix is
            not numerically positive definite) or "eigh".
        gram: square symmetric matrix; only one triangle is read.
        ridge: non-negative number added to the diagonal.
        overwrite: allow the solver to reuse ``gram``'s memory.
        what: how warnings name the matrix.

    Examples:
        >>> import numpy as np
        >>> from lazykit.solvers import make_solver
        >>> solver = make_solver("cholesky", np.eye(3), ridge=3.0)
        >>> solver.name, solver.apply(np.ones((3, 1)), [np.inf]).ravel().tolist()
        ('cholesky', [0.25, 0.25, 0.25])
    """
    if name not in SOLVERS:
        raise ValueError(f"solver must be one of {sorted(SOLVERS)}; got {name!r}.")
    check_gram(gram)
    return SOLVERS[name](gram, ridge, overwrite=overwrite, what=what)
