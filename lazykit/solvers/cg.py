"""Conjugate gradients, and the matrix-free kernel solver built on them.

:func:`conjugate_gradient` solves S x = b for a symmetric positive
(semi-)definite S given only as a function ``x -> S x``, one independent CG
recursion per column of b, all columns sharing each product. The kernel
solver :class:`ConjugateGradientSolver` applies it to S = K + ridge I with
K's tiles recomputed at every product (:class:`lazykit.kernels.operator.KernelOperator`):
memory O(n k + tile^2), time one pass over the n^2 / 2 kernel entries per
iteration. The estimators precondition it, when ridge > 0, with the inverse
of a rank-M Nystrom approximation plus ridge
(:func:`lazykit.solvers.nystrom.nystrom_preconditioner`; memory O(n M)),
which cuts the iterations several fold.

Convergence. In exact arithmetic CG needs at most as many iterations as S has
distinct eigenvalues, and its error falls at least like
((sqrt(c) - 1) / (sqrt(c) + 1))^i, c = (largest + ridge) / (smallest + ridge).
A solve that stops at ``max_iter`` above ``tol`` warns with
:class:`NotConvergedWarning` and returns the last iterate.

Ridge 0. K is singular or nearly so (duplicate inputs, smooth kernels), and
with repeated inputs carrying different targets K x = b has no solution at
all: CG on it then diverges (coefficients of order 1e3-1e16). The kernel
solver therefore solves ridgeless systems with
:func:`minimum_norm_least_squares`: CG on the consistent system K u = K b
projects b onto the range of K, then CG solves K x = u, which gives the
minimum-norm least-squares solution K^+ b, the pseudo-inverse answer of
``solver="eigh"``, whether or not b is in the range; set ``ridge > 0`` for a
bounded iteration count.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import ClassVar, NamedTuple

import numpy as np

from lazykit._progress import Progress
from lazykit.kernels.operator import KernelOperator
from lazykit.solvers.direct import IllConditionedKernelWarning, NotConvergedWarning
from lazykit.solvers.flow import stacked_product
from lazykit.solvers.lanczos import lanczos_flow


class CGResult(NamedTuple):
    """Solution (n, k), iterations run, relative residual ||b - S x|| / ||b|| (worst column)."""

    solution: np.ndarray
    iterations: int
    relative_residual: float


def conjugate_gradient(apply: Callable[[np.ndarray], np.ndarray], rhs: np.ndarray, *,
                       tol: float, max_iter: int, precondition: Callable | None = None,
                       label: str = "cg", verbose: bool | None = None,
                       atol: float | np.ndarray = 0.0) -> CGResult:
    """Solve S x = rhs column by column by (preconditioned) conjugate gradients.

    Args:
        apply: x (n, k) -> S x, S symmetric positive semi-definite.
        rhs: right-hand sides, shape (n, k).
        precondition: r -> P^{-1} r for a symmetric positive definite P close
            to S (None: the identity).
        tol: stop when every column has ||b - S x|| <= tol ||b||.
        max_iter: most products with S.
        label: name on the progress bar.
        verbose: progress (iteration, residual) on stderr: None shows it on a
            terminal only, False never, True always.
        atol: a column also stops when ||b - S x|| <= atol (a number, or one
            per column).

    Returns:
        :class:`CGResult`; warns :class:`NotConvergedWarning` if ``max_iter``
        was reached above ``tol``.

    Examples:
        >>> import numpy as np
        >>> from lazykit.solvers.cg import conjugate_gradient
        >>> s = np.array([[4.0, 1.0], [1.0, 3.0]])
        >>> result = conjugate_gradient(lambda x: s @ x, np.ones((2, 1)), tol=1e-12, max_iter=10)
        >>> result.solution.ravel().round(6).tolist(), result.iterations
        ([0.181818, 0.272727], 2)
    """
    rhs = np.asarray(rhs, dtype=np.float64)
    norms = _columns_norm(rhs)
    run = _cg(apply, rhs, np.maximum(tol * norms, atol), max_iter=max_iter,
              precondition=precondition, label=label, verbose=verbose)
    residual = _worst(run.residuals**2, norms)
    if not run.finished.all():
        warnings.warn(
            f"{label}: stopped after {run.iterations} iterations with relative residual "
            f"{residual:.2e} > tol={tol:g}. Raise max_iter, loosen tol, or set ridge > 0 "
            "(a ridgeless kernel system can be arbitrarily ill-conditioned).",
            NotConvergedWarning, stacklevel=3)
    return CGResult(run.solution, run.iterations, residual)


class _Run(NamedTuple):
    solution: np.ndarray
    iterations: int
    residuals: np.ndarray  # ||b - S x|| per column
    finished: np.ndarray  # per column: met its target or ``done``


def _cg(apply, rhs: np.ndarray, target: np.ndarray, *, max_iter: int, precondition=None,
        label: str, verbose: bool | None, done: Callable | None = None) -> _Run:
    """CG, one recursion per column; a column stops at ||r|| <= target or when done(x, r) says so.

    ``done`` (x, r) -> bool per column is asked before every iteration; a column
    it marks stays stopped.
    """
    precondition = precondition or (lambda r: r)
    x = np.zeros_like(rhs)
    r = rhs.copy()
    z = precondition(r)
    p = z.copy()
    rz = np.einsum("ij,ij->j", r, z)
    rs = np.einsum("ij,ij->j", r, r)
    norms = np.sqrt(rs)
    finished = np.zeros(rs.shape, bool)
    stalled = np.zeros(rs.shape, bool)  # S vanishes on the search direction: no progress
    iterations = 0
    with Progress(max_iter, label, verbose) as bar:
        while True:
            finished |= np.sqrt(rs) <= target
            if done is not None:
                finished |= done(x, r)
            active = ~finished & ~stalled
            if iterations >= max_iter or not active.any():
                break
            sp = apply(p)
            curvature = np.einsum("ij,ij->j", p, sp)
            stalled |= active & ~(curvature > 0)
            active &= ~stalled
            alpha = np.where(active, rz / np.where(active, curvature, 1.0), 0.0)
            x += alpha * p
            r -= alpha * sp
            z = precondition(r)
            rz_new = np.einsum("ij,ij->j", r, z)
            beta = np.where(active, rz_new / np.where(active, rz, 1.0), 0.0)
            p = np.where(active, z + beta * p, p)
            rz = np.where(active, rz_new, rz)
            rs = np.einsum("ij,ij->j", r, r)
            iterations += 1
            bar.update(1, f"residual {_worst(rs, norms):.2e}")
        if finished.all():
            bar.finish(f"converged, residual {_worst(rs, norms):.2e}")
    return _Run(x, iterations, np.sqrt(rs), finished)


def _worst(rs: np.ndarray, norms: np.ndarray) -> float:
    safe = np.where(norms > 0, norms, 1.0)
    return float(np.max(np.sqrt(rs) / safe, initial=0.0))


def _columns_norm(a: np.ndarray) -> np.ndarray:
    return np.sqrt(np.einsum("ij,ij->j", a, a))


def minimum_norm_least_squares(apply: Callable[[np.ndarray], np.ndarray], rhs: np.ndarray, *,
                               tol: float, max_iter: int, label: str = "cg",
                               verbose: bool | None = None) -> CGResult:
    """The minimum-norm least-squares solution S^+ rhs, column by column, by CG solves.

    S is symmetric positive semi-definite and may be singular, and ``rhs`` need
    not lie in its range: then S x = b has no solution and CG on it diverges.
    S^+ b is the solution in the range of the *consistent* system S x = P b,
    P the orthogonal projection onto the range, and P b = S^+ (S b): both are
    CG solves of consistent systems from zero, whose iterates stay in the range.

    1. The plain CG on S x = b runs alongside CG on S u = S b (u -> P b), in
       the same products. A column is in the range once the plain solve meets
       ``tol`` (or ||b - u|| <= tol ||b||): that solve is the answer. It is
       not once the gap g = b - u is numerically in the null space,
       ||S g|| <= max(tol, n eps) ||S|| ||g|| (the eigendecomposition's
       pseudo-inverse cutoff, or tol if larger): its plain solve, which
       would diverge, is dropped at once.
    2. For such a column, CG on S x = u gives S^+ b.

    The directions of S's rounding-level eigenvalues hardly enter either
    residual, so no solve resolves them (as the pseudo-inverse cutoff drops
    them); a Krylov method that minimizes ||b - S x|| directly does, and blows up.

    Args:
        apply: x (n, k) -> S x.
        rhs: right-hand sides, shape (n, k).
        tol: relative tolerance (a ``tol`` below n eps counts as n eps).
        max_iter: most iterations of each of the two stages.
        label: name on the progress bars and in warnings.
        verbose: progress on stderr (see :func:`conjugate_gradient`).

    Returns:
        :class:`CGResult` with the products used and ||b - S x|| / ||b||
        (worst column; for a column outside the range, estimated as the
        distance of b from the range and the second solve's residual in
        quadrature). Warns :class:`~lazykit.IllConditionedKernelWarning` when
        b is not in the range (the answer is a least-squares one), and
        :class:`NotConvergedWarning` if a stage reached ``max_iter`` first.

    Examples:
        >>> import warnings
        >>> import numpy as np
        >>> from lazykit.solvers.cg import minimum_norm_least_squares
        >>> s = np.diag([2.0, 1.0, 0.0])  # singular; b has a part in the null space
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     result = minimum_norm_least_squares(lambda x: s @ x, np.ones((3, 1)),
        ...                                         tol=1e-12, max_iter=20)
        >>> result.solution.ravel().round(12).tolist()  # pinv(s) @ b
        [0.5, 1.0, 0.0]
        >>> type(caught[0].message).__name__
        'IllConditionedKernelWarning'
    """
    b = np.asarray(rhs, dtype=np.float64)
    (n, k), b_norm = b.shape, _columns_norm(b)
    floor = max(tol, n * np.finfo(np.float64).eps)
    # S b, and S 1 / sqrt(n) in the same pass: a lower bound on ||S|| (close for kernels)
    images = apply(np.concatenate([b, np.full((n, 1), n**-0.5)], axis=1))
    scale = max(float(_columns_norm(images[:, k:])[0]),
                float(np.max(_columns_norm(images[:, :k]) / np.where(b_norm > 0, b_norm, 1.0))))
    outside = np.zeros(k, bool)  # latched: b - u is numerically in the null space

    def decided(x, r):  # columns [u | x]: u solves S u = S b, x solves S x = b
        gap = _columns_norm(b - x[:, :k])
        inside = (gap <= tol * b_norm) | (_columns_norm(r[:, k:]) <= floor * b_norm)
        outside[:] |= ~inside & (_columns_norm(r[:, :k]) <= floor * scale * gap)
        return np.concatenate([inside | outside, outside])

    first = _cg(apply, np.concatenate([images[:, :k], b], axis=1),
                np.concatenate([np.zeros(k), floor * b_norm]),
                max_iter=max_iter, label=label, verbose=verbose, done=decided)
    x, residual = first.solution[:, k:], first.residuals[k:]
    converged = first.finished[k:] & ~outside
    redo = ~converged  # outside the range, or undecided at max_iter: solve S x = u
    products = 1 + first.iterations
    if redo.any():
        u = first.solution[:, :k][:, redo]
        second = _cg(apply, u, floor * _columns_norm(u), max_iter=max_iter,
                     label=f"{label}, on the range", verbose=verbose)
        products += second.iterations
        x[:, redo] = second.solution
        residual[redo] = np.hypot(_columns_norm(b[:, redo] - u), second.residuals)
        converged[redo] = second.finished & outside[redo]
    relative = residual / np.where(b_norm > 0, b_norm, 1.0)
    _warn(label, tol, products, relative, outside, converged)
    return CGResult(x, products, float(np.max(relative, initial=0.0)))


def _warn(label: str, tol: float, products: int, relative: np.ndarray, outside: np.ndarray,
          converged: np.ndarray) -> None:
    """The warnings of :func:`minimum_norm_least_squares`."""
    if outside.any():
        warnings.warn(
            f"{label}: the right-hand side is not in the range of the matrix (to within "
            f"tol={tol:g}): a relative residual of {np.max(relative[outside]):.3g} remains at "
            "the least-squares solution, however many iterations run (for a ridgeless kernel "
            "system: repeated inputs with different targets, or a numerically rank-deficient "
            "kernel). Returned the minimum-norm least-squares solution, the pseudo-inverse "
            "answer of solver='eigh'; set ridge > 0 to regularize instead.",
            IllConditionedKernelWarning, stacklevel=4)
    if not converged.all():
        warnings.warn(
            f"{label}: stopped after {products} products with relative residual "
            f"{np.max(relative[~converged]):.2e} > tol={tol:g}. Raise max_iter or loosen tol "
            "(each solve here is of a consistent system and converges), or set ridge > 0 "
            "(a ridgeless kernel system can be arbitrarily ill-conditioned).",
            NotConvergedWarning, stacklevel=4)


@dataclasses.dataclass(frozen=True)
class ConjugateGradientSolver:
    """Matrix-free kernel regression: CG at infinite time, Lanczos at finite times.

    ``coef`` is g_s(K + ridge I) Y at the scaled fit time ``scaled`` (s = inf:
    (K + ridge I)^{-1} Y by preconditioned CG, or K^+ Y by two CG solves at ridge 0;
    finite s: the Lanczos approximation of lazykit.solvers.lanczos);
    :meth:`coefficients` gives other times, :meth:`predict` K(x, X) coef,
    both matrix-free.

    Examples:
        >>> import numpy as np, lazykit
        >>> from lazykit.kernels.operator import KernelOperator
        >>> from lazykit.solvers.cg import ConjugateGradientSolver
        >>> x = np.random.default_rng(0).normal(size=(60, 4))
        >>> y = np.sin(x[:, :1])
        >>> op = KernelOperator(lazykit.mlp(2), x, "ntk", np.dtype("float64"))
        >>> solver = ConjugateGradientSolver.fit(op, y, ridge=0.1, tol=1e-10, max_iter=200)
        >>> exact = np.linalg.solve(lazykit.mlp(2).kernel(x).ntk + 0.1 * np.eye(60), y)
        >>> bool(np.allclose(solver.coef, exact, rtol=1e-6, atol=1e-8))
        True
    """

    name: ClassVar[str] = "cg"
    operator: KernelOperator
    ridge: float
    tol: float
    max_iter: int
    precondition: Callable | None
    verbose: bool | None
    coef: np.ndarray
    iterations: int
    relative_residual: float

    @classmethod
    def fit(cls, operator: KernelOperator, targets: np.ndarray, ridge: float, *, tol: float,
            max_iter: int, precondition: Callable | None = None, scaled: float = np.inf,
            verbose: bool | None = None) -> ConjugateGradientSolver:
        """Coefficients at the scaled time ``scaled`` for targets (n, k).

        ``precondition`` (r -> P^{-1} r) serves the infinite-time CG solve only,
        with ``ridge > 0``; at ``ridge = 0`` the infinite-time coefficients are
        the minimum-norm least-squares solution K^+ Y
        (:func:`minimum_norm_least_squares`, unpreconditioned).
        """
        if precondition is not None and ridge == 0:
            raise ValueError("precondition serves ridge > 0 only: a ridgeless CG fit solves "
                             "for the minimum-norm least-squares coefficients, unpreconditioned; "
                             f"got ridge={ridge!r} with a preconditioner.")
        solver = cls(operator, ridge, tol, max_iter, precondition, verbose, None, 0, 0.0)
        if np.isinf(scaled):
            result = solver._solve(targets)
            return dataclasses.replace(solver, coef=result.solution,
                                       iterations=result.iterations,
                                       relative_residual=result.relative_residual)
        coef, steps = solver._flow(targets, np.array([scaled]))
        # a flow, not a solve: there is no residual to report
        return dataclasses.replace(solver, coef=coef[0], iterations=steps,
                                   relative_residual=float("nan"))

    def coefficients(self, scaled: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """g_s(K + ridge I) targets for each scaled time (recomputed): shape (T, n, k)."""
        scaled = np.asarray(scaled, dtype=np.float64)
        out = np.empty((scaled.shape[0], *targets.shape))
        finite = np.isfinite(scaled)
        if (~finite).any():
            out[~finite] = self._solve(targets).solution
        if finite.any():
            out[finite] = self._flow(targets, scaled[finite])[0]
        return out

    def predict(self, x_new: np.ndarray, coef: np.ndarray | None = None) -> np.ndarray:
        """K(x_new, X) coef (default: the fitted coef), for coef of shape (n, k) or (T, n, k)."""
        return stacked_product(lambda flat: self.operator.cross_matvec(x_new, flat),
                               self.coef if coef is None else coef, x_new.shape[0])

    def _apply(self, v: np.ndarray) -> np.ndarray:
        return self.operator.matvec(v) + self.ridge * v

    def _solve(self, targets: np.ndarray) -> CGResult:
        if self.ridge == 0:  # K may be singular and K x = y inconsistent: K^+ y, as eigh
            return minimum_norm_least_squares(self._apply, targets, tol=self.tol,
                                              max_iter=self.max_iter,
                                              label=f"cg (n={self.operator.n}, ridge=0)",
                                              verbose=self.verbose)
        return conjugate_gradient(self._apply, targets, tol=self.tol, max_iter=self.max_iter,
                                  precondition=self.precondition,
                                  label=f"cg (n={self.operator.n})", verbose=self.verbose)

    def _flow(self, targets: np.ndarray, scaled: np.ndarray) -> tuple[np.ndarray, int]:
        return lanczos_flow(self._apply, targets, scaled, tol=self.tol, max_iter=self.max_iter,
                            label=f"lanczos (n={self.operator.n})", verbose=self.verbose)
