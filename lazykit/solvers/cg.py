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
With ``ridge = 0`` the system is singular or nearly so (duplicate inputs,
smooth kernels): CG still converges towards the minimum-norm interpolant when
b lies in the range of K, but slowly; set ``ridge > 0`` for a bounded
iteration count. A solve that stops at ``max_iter`` above ``tol`` warns with
:class:`NotConvergedWarning` and returns the last iterate.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import ClassVar, NamedTuple

import numpy as np

from lazykit._progress import Progress
from lazykit.kernels.operator import KernelOperator
from lazykit.solvers.direct import NotConvergedWarning
from lazykit.solvers.flow import stacked_product
from lazykit.solvers.lanczos import lanczos_flow


class CGResult(NamedTuple):
    """Solution (n, k), iterations run, relative residual ||b - S x|| / ||b|| (worst column)."""

    solution: np.ndarray
    iterations: int
    relative_residual: float


def conjugate_gradient(apply: Callable[[np.ndarray], np.ndarray], rhs: np.ndarray, *,
                       tol: float, max_iter: int, precondition: Callable | None = None,
                       label: str = "cg", verbose: bool | None = None) -> CGResult:
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
    precondition = precondition or (lambda r: r)
    x = np.zeros_like(rhs)
    r = rhs.copy()
    z = precondition(r)
    p = z.copy()
    rz = np.einsum("ij,ij->j", r, z)
    rs = np.einsum("ij,ij->j", r, r)
    norms = np.sqrt(rs)
    target = tol * norms
    stalled = np.zeros(rs.shape, bool)  # S vanishes on the search direction: no progress
    iterations = 0
    with Progress(max_iter, label, verbose) as bar:
        while iterations < max_iter:
            active = (np.sqrt(rs) > target) & ~stalled
            if not active.any():
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
        residual = _worst(rs, norms)
        if residual <= tol:
            bar.finish(f"converged, residual {residual:.2e}")
    if residual > tol:
        warnings.warn(
            f"{label}: stopped after {iterations} iterations with relative residual "
            f"{residual:.2e} > tol={tol:g}. Raise max_iter, loosen tol, or set ridge > 0 "
            "(a ridgeless kernel system can be arbitrarily ill-conditioned).",
            NotConvergedWarning, stacklevel=3)
    return CGResult(x, iterations, residual)


def _worst(rs: np.ndarray, norms: np.ndarray) -> float:
    safe = np.where(norms > 0, norms, 1.0)
    return float(np.max(np.sqrt(rs) / safe, initial=0.0))


@dataclasses.dataclass(frozen=True)
class ConjugateGradientSolver:
    """Matrix-free kernel regression: CG at infinite time, Lanczos at finite times.

    ``coef`` is g_s(K + ridge I) Y at the scaled fit time ``scaled`` (s = inf:
    (K + ridge I)^{-1} Y by preconditioned CG; finite s: the Lanczos
    approximation of lazykit.solvers.lanczos); :meth:`coefficients` gives
    other times, :meth:`predict` K(x, X) coef, both matrix-free.

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

        ``precondition`` (r -> P^{-1} r) serves the infinite-time CG solve only.
        """
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
        return conjugate_gradient(self._apply, targets, tol=self.tol, max_iter=self.max_iter,
                                  precondition=self.precondition,
                                  label=f"cg (n={self.operator.n})", verbose=self.verbose)

    def _flow(self, targets: np.ndarray, scaled: np.ndarray) -> tuple[np.ndarray, int]:
        return lanczos_flow(self._apply, targets, scaled, tol=self.tol, max_iter=self.max_iter,
                            label=f"lanczos (n={self.operator.n})", verbose=self.verbose)
