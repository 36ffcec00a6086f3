"""Nystrom kernel ridge regression solved by preconditioned CG, as in Falkon.

Falkon (Rudi, Carratino, Rosasco 2017; Meanti et al. 2020) restricts the
regression function to M centres C picked from the n training inputs
(uniformly, or by randomly pivoted Cholesky: lazykit.solvers.centres),
f(x) = K(x, C) alpha, and minimizes ||K_nM alpha - Y||^2 + ridge alpha^T K_MM
alpha, whose normal equations are

    H alpha = K_nM^T Y,    H = K_nM^T K_nM + ridge K_MM

(Falkon's lambda n is our ``ridge``, so that the Nystrom solution tends to
the exact (K + ridge I)^{-1} Y predictions as M -> n). Uniform centres make
K_nM^T K_nM close to (n / M) K_MM^2 (RPCholesky's less so; the iteration
counts stayed the same on the benchmarks' data), so with lambda = ridge / n,
T = chol(K_MM) (upper, K_MM = T^T T) and A = chol(T T^T / M + lambda I),

    B = T^{-1} A^{-1} / sqrt(n)   satisfies   B B^T = (n/M K_MM^2 + ridge K_MM)^{-1},

and CG runs on the well-conditioned B^T H B beta = B^T K_nM^T Y, alpha = B beta:
a few tens of iterations whatever n and the ridge. K_MM gets a jitter of
M * eps * its mean diagonal before its Cholesky factorization (raised
a thousandfold, twice, if that fails on duplicate centres).

Products with K_nM^T K_nM use the stored n x M matrix when it fits in memory
("stored", memory O(n M)); otherwise one streamed pass over row blocks of
K_nM accumulates the M x M matrix K_nM^T K_nM and K_nM^T Y ("streamed",
memory O(M^2 + block), one kernel pass in all rather than one per iteration).
Falkon's CG needs ``ridge > 0`` (with ridge = 0, H is K_nM^T K_nM, as
ill-conditioned as K_MM squared, and the preconditioner does not help).
Ridgeless fits and finite training times use :class:`NystromSpectrum`
instead: gradient flow with the Nystrom kernel, exact for every time from one
M x M eigendecomposition.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import scipy.linalg

from lazykit._progress import Progress
from lazykit.kernels.operator import KernelOperator
from lazykit.solvers.centres import (
    BLOCK,
    CENTRE_METHODS,
    pool_size,
    rpcholesky_centres,
    uniform_centres,
)
from lazykit.solvers.cg import conjugate_gradient
from lazykit.solvers.direct import flow_filter, pseudo_inverse_cutoff
from lazykit.solvers.flow import stacked_product

# Rows of K_nM computed at once: about 2^22 entries (32 MiB per kernel in float64).
BLOCK_ENTRIES = 1 << 22


def as_operator(source, x, kind: str, dtype=np.float64) -> KernelOperator:
    """The kernel operator of ``source``'s kernel ``kind`` on the inputs ``x``."""
    return KernelOperator(source, x, kind, np.dtype(dtype))


def block_rows(n_centers: int) -> int:
    """Rows of K_nM per block."""
    return max(64, BLOCK_ENTRIES // n_centers)


def _upper_cholesky(matrix: np.ndarray, jitter: float) -> np.ndarray:
    for factor in (1.0, 1e3, 1e6):
        try:
            return scipy.linalg.cholesky(matrix + factor * jitter * np.eye(matrix.shape[0]),
                                         lower=False, check_finite=False)
        except np.linalg.LinAlgError:
            continue
    raise ValueError(
        f"the kernel among the {matrix.shape[0]} Nystrom centres is not positive definite even "
        f"with a jitter of {1e6 * jitter:.2g} on its diagonal (many duplicate inputs, or a "
        "degenerate kernel). Remove duplicate training points or use fewer n_centers.")


@dataclasses.dataclass(frozen=True)
class NystromSpectrum:
    """The Nystrom kernel Q = K_nM K_MM^{-1} K_Mn = F F^T, F = K_nM T^{-1}, through F^T F.

    With F^T F = V diag(values) V^T and projected = V^T F^T Y, gradient flow
    with Q + ridge I has the centre coefficients (f(x) = K(x, C) a)

        a_s = T^{-1} V g_s(values + ridge) V^T F^T Y,

    g_s the flow filter of lazykit.solvers.flow (s = inf: Falkon's solution;
    with ridge = 0 the minimum-norm least-squares fit on the M features).
    One streamed pass over K_nM (n M kernel entries, n M^2 flops for the
    triangular solves and F^T F), then an M x M eigendecomposition.
    """

    basis: np.ndarray  # T^{-1} V, (M, M)
    values: np.ndarray  # eigenvalues of F^T F
    projected: np.ndarray  # V^T F^T Y, (M, k)
    ridge: float

    @classmethod
    def build(cls, operator, centers, t, targets, ridge: float, *,
              verbose: bool | None = None) -> NystromSpectrum:
        """Accumulate F^T F and F^T Y over row blocks of K_nM, then diagonalize."""
        m = centers.shape[0]
        gram = np.zeros((m, m), order="F")  # upper triangle, by SYRK
        rhs = np.zeros((m, targets.shape[1]))
        label = f"nystrom spectrum F ({operator.n} x {m}, streamed)"
        for start, features in _feature_blocks(operator, centers, t, label, verbose):
            rhs += features.T @ targets[start:start + features.shape[0]]
            gram = scipy.linalg.blas.dsyrk(1.0, features.T, beta=1.0, c=gram, lower=0,
                                           overwrite_c=1)
        values, vectors = np.linalg.eigh(np.triu(gram) + np.triu(gram, 1).T)
        basis = scipy.linalg.solve_triangular(t, vectors, check_finite=False)
        return cls(basis, np.maximum(values, 0.0), vectors.T @ rhs, float(ridge))

    def coefficients(self, scaled) -> np.ndarray:
        """Centre coefficients a_s for each scaled time: shape (T, M, k)."""
        cutoff = pseudo_inverse_cutoff(self.values)
        shifted = np.where(self.values > cutoff, self.values, 0.0) + self.ridge
        weights = flow_filter(shifted, scaled, cutoff if self.ridge == 0 else 0.0)
        return np.einsum("mr,tr,rk->tmk", self.basis, weights, self.projected)


@dataclasses.dataclass(frozen=True)
class NystromSolver:
    """Falkon: Nystrom kernel ridge regression by preconditioned CG (see the module text).

    ``coef`` holds the centre coefficients at the scaled fit time ``scaled``:
    Falkon's preconditioned CG for s = inf and ridge > 0, otherwise the
    :class:`NystromSpectrum` (kept in ``spectrum``), which gives any time.

    Examples:
        >>> import numpy as np, lazykit
        >>> from lazykit.solvers.nystrom import NystromSolver
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=(300, 3))
        >>> y = np.sin(x[:, :1])
        >>> solver = NystromSolver.fit(lazykit.mlp(2), x, y, ridge=1.0, kind="ntk",
        ...                            n_centers=300, seed=0, tol=1e-10, max_iter=100)
        >>> exact = lazykit.NTKRegressor(depth=2, ridge=1.0).fit(x, y).predict(x[:5])
        >>> bool(np.allclose(solver.predict(x[:5]), exact, atol=1e-6))
        True
    """

    name: ClassVar[str] = "nystrom"
    operator: KernelOperator  # the kernel on the training inputs
    ridge: float
    centers: np.ndarray
    factor: np.ndarray  # T = chol(K_MM + jitter), upper
    coef: np.ndarray
    iterations: int
    relative_residual: float
    stored: bool
    spectrum: NystromSpectrum | None = None
    verbose: bool | None = None

    @classmethod
    def fit(cls, source, x: np.ndarray, targets: np.ndarray, ridge: float, *, kind: str,
            n_centers: int, seed, tol: float, max_iter: int, store: bool = True,
            scaled: float = np.inf, sampling: str = "uniform", dtype=np.float64,
            verbose: bool | None = None) -> NystromSolver:
        """Pick ``n_centers`` centres (``sampling``: "uniform" or "rpcholesky", ``seed``), then
        the centre coefficients at the scaled time ``scaled``.

        ``store`` keeps K_nM in memory (n x M floats) for Falkon's CG; otherwise
        K_nM^T K_nM is accumulated in one streamed pass.
        """
        return cls.fit_operator(as_operator(source, x, kind, dtype), targets, ridge,
                                n_centers=n_centers, seed=seed, tol=tol, max_iter=max_iter,
                                store=store, scaled=scaled, sampling=sampling, verbose=verbose)

    @classmethod
    def fit_operator(cls, operator: KernelOperator, targets: np.ndarray, ridge: float, *,
                     n_centers: int, seed, tol: float, max_iter: int, store: bool = True,
                     scaled: float = np.inf, sampling: str = "uniform",
                     verbose: bool | None = None) -> NystromSolver:
        """:meth:`fit` on the kernel of a :class:`~lazykit.kernels.operator.KernelOperator`."""
        if ridge < 0:
            raise ValueError(f"ridge must be >= 0; got ridge={ridge}.")
        centers, k_mm, t = _centres(operator, n_centers, seed, sampling)
        solver = cls(operator, float(ridge), centers, t, None, 0, 0.0, store, None, verbose)
        if np.isinf(scaled) and ridge > 0:
            return solver._falkon(targets, k_mm, tol, max_iter)
        spectrum = NystromSpectrum.build(operator, centers, t, targets, ridge, verbose=verbose)
        return dataclasses.replace(solver, coef=spectrum.coefficients([scaled])[0],
                                   iterations=1, spectrum=spectrum, stored=False)

    def coefficients(self, scaled, targets: np.ndarray) -> np.ndarray:
        """Centre coefficients for each scaled time, from the spectrum (rebuilt if not kept)."""
        spectrum = self.spectrum or NystromSpectrum.build(
            self.operator, self.centers, self.factor, targets, self.ridge, verbose=self.verbose)
        return spectrum.coefficients(scaled)

    def predict(self, x_new: np.ndarray, coef: np.ndarray | None = None) -> np.ndarray:
        """K(x_new, centres) coef in row blocks; coef (M, k) (default: the fit's) or (T, M, k)."""
        rows = block_rows(self.centers.shape[0])

        def product(flat):
            out = np.empty((x_new.shape[0], flat.shape[1]))
            for start in range(0, x_new.shape[0], rows):
                block = self.operator.block(x_new[start:start + rows], self.centers)
                out[start:start + rows] = block @ flat
            return out

        return stacked_product(product, self.coef if coef is None else coef, x_new.shape[0])

    def _falkon(self, targets, k_mm, tol, max_iter) -> NystromSolver:
        """Falkon's preconditioned CG on the normal equations (module text)."""
        n, m, t, ridge = self.operator.n, self.centers.shape[0], self.factor, self.ridge
        a = _upper_cholesky(t @ t.T / m + (ridge / n) * np.eye(m), 0.0)
        products, rhs = _normal_products(self.operator, self.centers, targets, self.stored,
                                         self.verbose)
        solve = scipy.linalg.solve_triangular
        scale = 1.0 / np.sqrt(n)

        def b(v):  # B v
            return solve(t, solve(a, v, check_finite=False), check_finite=False) * scale

        def b_t(u):  # B^T u
            return solve(a, solve(t, u, trans="T", check_finite=False), trans="T",
                         check_finite=False) * scale

        def apply(beta):  # B^T H B beta
            v = b(beta)
            return b_t(products(v) + ridge * (k_mm @ v))

        result = conjugate_gradient(apply, b_t(rhs), tol=tol, max_iter=max_iter,
                                    label=f"nystrom (n={n}, M={m})", verbose=self.verbose)
        return dataclasses.replace(self, coef=b(result.solution), iterations=result.iterations,
                                   relative_residual=result.relative_residual)


def _centres(operator, n_centers, seed, method):
    """(centres, K_MM, T = chol(K_MM + jitter) upper); ``method`` as in lazykit.solvers.centres."""
    x, n = operator.x, operator.n
    m = min(n_centers, n)
    rng = np.random.default_rng(seed)
    if method not in CENTRE_METHODS:
        raise ValueError(f"centre sampling must be one of {CENTRE_METHODS}; got {method!r}.")
    if method == "uniform" or m == n:  # every input is a centre when m == n
        picked = uniform_centres(n, m, rng)
    else:
        pool = uniform_centres(n, pool_size(n, m), rng)
        candidates = np.asarray(x[pool])
        diagonal = operator.diagonal(candidates)

        def columns(indices):  # always BLOCK columns, so that one compiled kernel serves all
            padded = np.resize(indices, BLOCK)
            return operator.block(candidates, candidates[padded])[:, :indices.shape[0]]

        picked = pool[rpcholesky_centres(columns, diagonal, m, rng)]
    centers = np.asarray(x[picked])
    k_mm = operator.block(centers, centers)
    k_mm = 0.5 * (k_mm + k_mm.T)
    t = _upper_cholesky(k_mm, m * np.finfo(np.float64).eps * float(np.mean(np.diag(k_mm))))
    return centers, k_mm, t


def _row_blocks(operator, centers, label, verbose):
    """Yield (start, K(x[start:start + rows], centres)) over row blocks, with progress."""
    rows, x = block_rows(centers.shape[0]), operator.x
    with Progress(-(-x.shape[0] // rows), label, verbose) as bar:
        for start in range(0, x.shape[0], rows):
            yield start, operator.block(x[start:start + rows], centers)
            bar.update(1)


def _feature_blocks(operator, centers, t, label, verbose):
    """Yield (start, rows of F = K_nM T^{-1}) over row blocks, with progress."""
    for start, block in _row_blocks(operator, centers, label, verbose):
        yield start, scipy.linalg.solve_triangular(t, block.T, trans="T", check_finite=False).T


def nystrom_preconditioner(source, x: np.ndarray, ridge: float, *, kind: str, n_centers: int,
                           seed, sampling: str = "uniform", dtype=np.float64,
                           verbose: bool | None = None):
    """r -> (K_nys + ridge I)^{-1} r, with K_nys = K_nM K_MM^{-1} K_Mn the Nystrom approximation.

    The preconditioner of Nystrom PCG (Frangella, Tropp, Udell 2023) for the
    exact system (K + ridge I) x = b: with F = K_nM T^{-1} = U S V^T (thin
    SVD, from the eigendecomposition of F^T F), K_nys = U S^2 U^T and
    (K_nys + ridge I)^{-1} = U ((S^2 + ridge)^{-1} - 1/ridge) U^T + I / ridge.
    Memory: about three n x M float64 arrays while it is built, one after.

    Examples:
        >>> import numpy as np, lazykit
        >>> from lazykit.solvers.nystrom import nystrom_preconditioner
        >>> x = np.random.default_rng(0).normal(size=(40, 3))
        >>> net = lazykit.mlp(2)
        >>> apply = nystrom_preconditioner(net, x, 0.5, kind="ntk", n_centers=40, seed=0)
        >>> r = np.ones((40, 1))  # with every point as a centre, P = K + ridge I
        >>> bool(np.allclose((net.kernel(x).ntk + 0.5 * np.eye(40)) @ apply(r), r))
        True
    """
    return preconditioner_of(as_operator(source, x, kind, dtype), ridge, n_centers=n_centers,
                             seed=seed, sampling=sampling, verbose=verbose)


def preconditioner_of(operator: KernelOperator, ridge: float, *, n_centers: int, seed,
                      sampling: str = "uniform", verbose: bool | None = None):
    """:func:`nystrom_preconditioner` for the kernel of a kernel operator."""
    if not ridge > 0:
        raise ValueError(f"the Nystrom preconditioner needs ridge > 0; got ridge={ridge}.")
    centers, _, t = _centres(operator, n_centers, seed, sampling)
    factor = np.empty((operator.n, centers.shape[0]))
    label = f"cg preconditioner K_nM ({operator.n} x {centers.shape[0]})"
    for start, features in _feature_blocks(operator, centers, t, label, verbose):
        factor[start:start + features.shape[0]] = features
    values, vectors = np.linalg.eigh(factor.T @ factor)
    keep = values > values.shape[0] * np.finfo(np.float64).eps * max(values[-1], 0.0)
    basis = factor @ (vectors[:, keep] / np.sqrt(values[keep]))
    return NystromPreconditioner(basis, 1.0 / (values[keep] + ridge) - 1.0 / ridge, ridge)


@dataclasses.dataclass(frozen=True)
class NystromPreconditioner:
    """r -> U diag(shrink) U^T r + r / ridge = (K_nys + ridge I)^{-1} r (a picklable callable)."""

    basis: np.ndarray  # U, (n, r)
    shrink: np.ndarray  # (S^2 + ridge)^{-1} - 1 / ridge
    ridge: float

    def __call__(self, r: np.ndarray) -> np.ndarray:
        return self.basis @ (self.shrink[:, None] * (self.basis.T @ r)) + r / self.ridge


def _normal_products(operator, centers, targets, store, verbose):
    """(v -> K_nM^T K_nM v, K_nM^T Y), from a stored K_nM or one accumulated pass."""
    n, m = operator.n, centers.shape[0]
    k_nm = np.empty((n, m)) if store else None
    gram = None if store else np.zeros((m, m), order="F")  # upper triangle, by SYRK
    rhs = np.zeros((m, targets.shape[1]))
    label = f"nystrom K_nM ({n} x {m}, {'stored' if store else 'streamed'})"
    for start, block in _row_blocks(operator, centers, label, verbose):
        rhs += block.T @ targets[start:start + block.shape[0]]
        if store:
            k_nm[start:start + block.shape[0]] = block
        else:
            gram = scipy.linalg.blas.dsyrk(1.0, block.T, beta=1.0, c=gram, lower=0,
                                           overwrite_c=1)
    if store:
        return (lambda v: k_nm.T @ (k_nm @ v)), rhs
    gram = np.triu(gram) + np.triu(gram, 1).T
    return (lambda v: gram @ v), rhs
