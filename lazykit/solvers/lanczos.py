"""Gradient flow at finite times, matrix-free: the Lanczos approximation of g_s(A) b.

The flow filter g_s(A) = A^{-1} (I - exp(-s A)) of lazykit.solvers.flow, for
A = K + ridge I given only through products v -> A v, is approximated on the
Krylov space of b: after j steps of the Lanczos process (with full
reorthogonalization), A Q_j = Q_j T_j + beta_j q_{j+1} e_j^T with Q_j
orthonormal and T_j tridiagonal, and

    g_s(A) b  ~  ||b|| Q_j g_s(T_j) e_1,

g_s(T_j) from the eigendecomposition of the small T_j. All times share one
Krylov space, so one run serves every time. For finite s, g_s is an entire
function and the approximation converges faster than CG on A b = y
(Hochbruck & Lubich 1997: superlinearly once j exceeds about sqrt(s ||A||));
large s behaves like an unpreconditioned CG solve. The process stops when
the Krylov coefficients of every time and column change by at most ``tol``
(relative) over two successive steps, or when the Krylov space is invariant
(then the result is exact). Memory: the basis, j n k floats.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import scipy.linalg

from lazykit._progress import Progress
from lazykit.solvers.direct import NotConvergedWarning


def finite_flow_filter(values: np.ndarray, scaled: np.ndarray) -> np.ndarray:
    """g_s(mu) = (1 - exp(-s mu)) / mu for finite times s (rows); mu <= 0 gives its limit s.

    Examples:
        >>> import numpy as np
        >>> from lazykit.solvers.lanczos import finite_flow_filter
        >>> finite_flow_filter(np.array([0.0, 1.0]), np.array([0.5, 2.0])).round(4)
        array([[0.5   , 0.3935],
               [2.    , 0.8647]])
    """
    positive = values > 0
    safe = np.where(positive, values, 1.0)
    out = -np.expm1(-np.outer(scaled, safe)) / safe
    return np.where(positive, out, scaled[:, None])


def lanczos_flow(apply: Callable[[np.ndarray], np.ndarray], rhs: np.ndarray, scaled, *,
                 tol: float, max_iter: int, label: str = "lanczos",
                 verbose: bool | None = None) -> tuple[np.ndarray, int]:
    """g_s(A) rhs for each finite scaled time s, with A symmetric positive semi-definite.

    Args:
        apply: v (n, k) -> A v.
        rhs: shape (n, k); one Lanczos process per column, all sharing each product.
        scaled: finite scaled times, shape (T,).
        tol: relative change of the Krylov coefficients at which to stop.
        max_iter: most products with A (and the largest Krylov dimension).

    Returns:
        (g_s(A) rhs of shape (T, n, k), products used). Warns
        :class:`~lazykit.NotConvergedWarning` if ``max_iter`` was reached first.

    Examples:
        >>> import numpy as np
        >>> from scipy.linalg import expm
        >>> from lazykit.solvers.lanczos import lanczos_flow
        >>> a = np.diag([0.5, 1.0, 3.0]); b = np.ones((3, 1))
        >>> out, _ = lanczos_flow(lambda v: a @ v, b, [2.0], tol=1e-12, max_iter=10)
        >>> exact = np.linalg.solve(a, b - expm(-2.0 * a) @ b)
        >>> bool(np.allclose(out[0], exact))
        True
    """
    rhs = np.asarray(rhs, dtype=np.float64)
    scaled = np.asarray(scaled, dtype=np.float64).ravel()
    if not np.all(np.isfinite(scaled)):
        raise ValueError(f"lanczos_flow needs finite scaled times; got {scaled.tolist()}.")
    norms = np.linalg.norm(rhs, axis=0)
    basis = np.empty((min(max_iter, 32), *rhs.shape))  # grown by doubling, at most max_iter
    basis[0] = rhs / np.where(norms > 0, norms, 1.0)
    diagonal, off_diagonal = [], []
    previous = None
    settled = steps = 0
    converged = False
    with Progress(max_iter, label, verbose) as bar:
        while steps < max_iter:
            steps += 1
            w = apply(basis[steps - 1])
            diagonal.append(np.einsum("ij,ij->j", basis[steps - 1], w))
            stack = basis[:steps]
            for _ in range(2):  # full reorthogonalization, twice is enough
                w = w - np.einsum("snk,sk->nk", stack, np.einsum("snk,nk->sk", stack, w))
            beta = np.linalg.norm(w, axis=0)
            coefficients = _krylov_coefficients(diagonal, off_diagonal, scaled, norms)
            change = _relative_change(coefficients, previous)
            previous = coefficients
            settled = settled + 1 if change <= tol else 0
            invariant = bool(np.all(beta <= 1e-12 * np.maximum(np.abs(diagonal).max(0), 1e-300)))
            bar.update(1, f"change {change:.2e}")
            if settled >= 2 or invariant:
                converged = True
                bar.finish(f"converged, change {change:.2e}")
                break
            if steps == max_iter:
                break
            off_diagonal.append(beta)
            if steps == basis.shape[0]:
                basis = _grown(basis, max_iter)
            basis[steps] = w / np.where(beta > 0, beta, 1.0)
    if not converged:
        warnings.warn(
            f"{label}: stopped after {steps} products with the Krylov coefficients still "
            f"changing by {change:.2e} > tol={tol:g}. Raise max_iter or loosen tol (long "
            "training times need as many iterations as an unpreconditioned CG solve).",
            NotConvergedWarning, stacklevel=2)
    return np.einsum("snk,tsk->tnk", basis[:steps], coefficients), steps


def _grown(basis: np.ndarray, max_iter: int) -> np.ndarray:
    """The Lanczos basis buffer with twice the room (at most max_iter vectors)."""
    bigger = np.empty((min(2 * basis.shape[0], max_iter), *basis.shape[1:]))
    bigger[:basis.shape[0]] = basis
    return bigger


def _krylov_coefficients(diagonal, off_diagonal, scaled, norms) -> np.ndarray:
    """||b|| g_s(T) e_1 for every time and column: shape (T, j, k)."""
    j, k = len(diagonal), norms.shape[0]
    out = np.empty((scaled.shape[0], j, k))
    alphas, betas = np.stack(diagonal), np.stack(off_diagonal) if off_diagonal else None
    for col in range(k):
        off = betas[:, col] if betas is not None else np.zeros(0)
        values, vectors = scipy.linalg.eigh_tridiagonal(alphas[:, col], off)
        weights = finite_flow_filter(values, scaled) * vectors[0]  # (T, j)
        out[:, :, col] = norms[col] * weights @ vectors.T
    return out


def _relative_change(current: np.ndarray, previous: np.ndarray | None) -> float:
    if previous is None:
        return np.inf
    padded = np.zeros_like(current)
    padded[:, :previous.shape[1]] = previous
    size = np.linalg.norm(current, axis=1)
    return float(np.max(np.linalg.norm(current - padded, axis=1) / np.where(size > 0, size, 1.0)))
