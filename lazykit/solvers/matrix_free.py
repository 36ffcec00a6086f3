"""The matrix-free solvers on the protocol of :mod:`lazykit.solvers.base`: CG and Nystrom.

Both see the kernel through the same :class:`~lazykit.kernels.operator.KernelOperator`
as the exact solvers: CG through its products with vectors (tiles
recomputed every time), Nystrom through its blocks K(x, centres). Neither
forms the n x n matrix; neither gives the ensemble's spread.
"""

from __future__ import annotations

import numpy as np

from lazykit.kernels.compute import check_memory
from lazykit.solvers import planning
from lazykit.solvers.base import Diagnostics, KernelSolver, Result, State, problem_of
from lazykit.solvers.cg import ConjugateGradientSolver
from lazykit.solvers.direct import pseudo_inverse_cutoff
from lazykit.solvers.nystrom import NystromSolver, preconditioner_of


def _needs_inputs(solver: KernelSolver, operator) -> None:
    if operator.inputs is None:
        raise ValueError(
            f"solver={solver.name!r} computes kernel values from the inputs, so it cannot work "
            "with network='precomputed'. Pass the network, or use solver='cholesky'.")


class CGKernelSolver(KernelSolver):
    """Conjugate gradients on K + ridge I (Lanczos for finite times), matrix-free.

    ``init`` builds the Nystrom preconditioner when ridge > 0 and the fit is
    at infinite time; at ridge 0 the infinite-time coefficients are the
    minimum-norm least-squares solution (:func:`lazykit.solvers.cg.minimum_norm_least_squares`).

    Examples:
        >>> import numpy as np, lazykit
        >>> from lazykit.kernels.operator import KernelOperator
        >>> from lazykit.solvers.base import SolverOptions
        >>> from lazykit.solvers.matrix_free import CGKernelSolver
        >>> x = np.random.default_rng(0).normal(size=(60, 4)); y = np.sin(x[:, :1])
        >>> op = KernelOperator(lazykit.mlp(2), x, "ntk", np.dtype("float64"))
        >>> solver = CGKernelSolver(SolverOptions(tol=1e-10, n_centers=30))
        >>> result = solver.flow(solver.init(op, 0.1), y, [np.inf])
        >>> exact = np.linalg.solve(lazykit.mlp(2).kernel(x).ntk + 0.1 * np.eye(60), y)
        >>> bool(np.allclose(result.coefficients[0], exact, rtol=1e-6, atol=1e-8))
        True
    """

    name = "cg"

    def estimate(self, problem):
        o = self.options
        return planning.cg_estimate(problem, n_centers=o.n_centers, max_iter=o.max_iter,
                                    centers=o.centers)

    def init(self, operator, ridge, *, k=1, finite_time=False, what="the kernel"):
        _needs_inputs(self, operator)
        problem = problem_of(operator, ridge, k=k, finite_time=finite_time)
        estimate = self.estimate(problem)
        o = self.options
        check_memory(estimate.bytes,
                     f"the CG solver (n={problem.n}, k={k}, tile={problem.tile}, "
                     f"M={min(problem.n, o.n_centers)}"
                     + (f", Lanczos basis of up to {o.max_iter} vectors)" if finite_time else ")"),
                     "Use a smaller tile_size, fewer n_centers"
                     + (" or a smaller max_iter." if finite_time else "."))
        precondition = None
        if ridge > 0 and not finite_time:
            precondition = preconditioner_of(operator, float(ridge), n_centers=o.n_centers,
                                             seed=o.seed, sampling=o.centers, verbose=o.verbose)
        core = ConjugateGradientSolver(operator, float(ridge), o.tol, o.max_iter, precondition,
                                       o.verbose, None, 0, 0.0)
        setup = Diagnostics("cg", estimate.path, 0, memory=estimate.bytes)
        return State(self, operator, float(ridge), estimate, core, setup)

    def flow(self, state, targets, scaled):
        core: ConjugateGradientSolver = state.core
        targets = np.asarray(targets, dtype=np.float64)
        scaled = np.atleast_1d(np.asarray(scaled, dtype=np.float64))
        out = np.empty((scaled.shape[0], *targets.shape))
        iterations, residual, paths = 0, float("nan"), []
        infinite = np.isinf(scaled)
        if infinite.any():
            solved = core._solve(targets)
            out[infinite] = solved.solution
            iterations, residual = solved.iterations, solved.relative_residual
            paths.append("minimum-norm CG (ridge 0)" if core.ridge == 0 else
                         "CG" + (" preconditioned by Nystrom" if core.precondition else ""))
        if (~infinite).any():
            out[~infinite], steps = core._flow(targets, scaled[~infinite])
            iterations += steps
            paths.append("Lanczos gradient flow")
        return Result(out, Diagnostics("cg", ", ".join(paths), max(iterations, 1), residual,
                                       float("nan"), state.setup.memory))

    def mean(self, state, x_new, coefficients):
        return state.core.predict(x_new, coefficients)


class NystromKernelSolver(KernelSolver):
    """Falkon (ridge > 0, t = inf) or gradient flow with the Nystrom kernel (otherwise).

    ``init`` picks the centres and factorizes K_MM; ``flow`` streams K_nM
    (stored when ``store``) for the targets. The coefficients are those of
    the centres: predictions are K(x, centres) coefficients.
    """

    name = "nystrom"

    def __init__(self, options=None, *, store: bool | None = None):
        super().__init__(options)
        self.store = store  # None: store K_nM when it takes at most half the memory available

    def estimate(self, problem, store: bool | None = None):
        o, store = self.options, self.store if store is None else store
        return planning.nystrom_estimate(problem, n_centers=o.n_centers, centers=o.centers,
                                         store=True if store is None else store)

    def init(self, operator, ridge, *, k=1, finite_time=False, what="the kernel"):
        _needs_inputs(self, operator)
        problem = problem_of(operator, ridge, k=k, finite_time=finite_time)
        store = self.store
        if store is None:
            store = self.estimate(problem, True).bytes <= 0.5 * planning.available_memory()
        estimate = self.estimate(problem, store)
        o = self.options
        check_memory(estimate.bytes, f"the {'stored' if store else 'streamed'} Nystrom "
                     f"solver (n={problem.n}, k={k}, M={min(problem.n, o.n_centers)})",
                     "Use fewer n_centers.")
        setup = Diagnostics("nystrom", estimate.path, 0, memory=estimate.bytes)
        return State(self, operator, float(ridge), estimate, None, setup, cache={"store": store})

    def flow(self, state, targets, scaled):
        o, targets = self.options, np.asarray(targets, dtype=np.float64)
        scaled = np.atleast_1d(np.asarray(scaled, dtype=np.float64))
        core: NystromSolver | None = state.core
        if core is None:  # the first flow fits: Falkon for (inf, ridge > 0), else the spectrum
            core = NystromSolver.fit_operator(
                state.operator, targets, state.ridge, n_centers=o.n_centers, seed=o.seed,
                tol=o.tol, max_iter=o.max_iter, store=state.cache["store"], scaled=float(scaled[0]),
                sampling=o.centers, verbose=o.verbose)
            state.core = core
            first = scaled == scaled[0]
            out = np.empty((scaled.shape[0], *core.coef.shape))
            out[first] = core.coef
            if (~first).any():
                out[~first] = core.coefficients(scaled[~first], targets)
        else:
            out = core.coefficients(scaled, targets)
        path = ("Falkon CG" if core.spectrum is None else "gradient flow with the Nystrom kernel")
        condition = float("nan")
        if core.spectrum is not None:
            values = core.spectrum.values + core.ridge
            kept = values[values > pseudo_inverse_cutoff(values)]
            condition = float(kept[-1] / kept[0]) if kept.size else float("inf")
        return Result(out, Diagnostics(
            "nystrom", f"{path}, M={core.centers.shape[0]} centres, K_nM "
            f"{'stored' if core.stored else 'streamed'}", max(core.iterations, 1),
            core.relative_residual if core.spectrum is None else float("nan"), condition,
            state.setup.memory))

    def mean(self, state, x_new, coefficients):
        return state.core.predict(x_new, coefficients)
