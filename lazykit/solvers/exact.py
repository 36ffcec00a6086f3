"""The exact solvers on the protocol of :mod:`lazykit.solvers.base`: Cholesky and eigh.

``init`` checks the whole peak (the kernel and its factorization) against the
memory available, then has the operator compute its one kernel into a single
n x n buffer (:meth:`lazykit.kernels.operator.KernelOperator.gram`) and
factorizes that buffer in place (:mod:`lazykit.solvers.direct`): the exact
path lives in the kernel's own memory. Predictions use the stored
coefficients and only the kernel between the new and the training inputs,
in blocks of about 2^20 entries (8 MiB);
the ensemble's spread also needs the NNGP, and the NTK ensemble's the
training NNGP, computed once on the first request and kept.
"""

from __future__ import annotations

import numpy as np

from lazykit.kernels.compute import check_memory
from lazykit.solvers import planning
from lazykit.solvers.base import Diagnostics, KernelSolver, Result, State, problem_of
from lazykit.solvers.direct import SOLVERS
from lazykit.solvers.flow import flow_covariance

# Entries of the test-train kernel per block: small next to the factor (8 MiB), and whole
# powers of two of rows, so that padding to compilation buckets adds nothing.
_PREDICT_ENTRIES = 1 << 20


class _Dense(KernelSolver):
    """Shared by Cholesky and eigh: a factorization of the dense kernel + ridge I."""

    eigen = False

    def estimate(self, problem):
        return planning.exact_estimate(problem, self.eigen)

    def init(self, operator, ridge, *, k=1, finite_time=False, what="the kernel"):
        problem = problem_of(operator, ridge, k=k, finite_time=finite_time)
        estimate = self.estimate(problem)
        check_memory(estimate.bytes,
                     f"solver={self.name!r} on n={problem.n} points ({estimate.path})",
                     "Use fewer training points or a matrix-free solver (solver='nystrom' "
                     "or 'cg').")
        core = SOLVERS[self.name](operator.gram(), float(ridge), overwrite=True, what=what)
        setup = Diagnostics(core.name, _path(core, estimate.path), 1, float("nan"),
                            core.condition, estimate.bytes)
        return State(self, operator, float(ridge), estimate, core, setup)

    def flow(self, state, targets, scaled):
        coefficients = state.core.apply(np.asarray(targets, dtype=np.float64), scaled)
        # the factorization's own name: "eigh" where Cholesky fell back to it
        setup = state.setup
        return Result(coefficients, Diagnostics(state.core.name, setup.path, 1, float("nan"),
                                                state.core.condition, setup.memory))

    def mean(self, state, x_new, coefficients):
        """K(x_new, X) coefficients, the kernel computed and used in blocks of rows of x_new."""
        op = state.operator
        rows = 1 << max(4, (_PREDICT_ENTRIES // max(op.n, 1)).bit_length() - 1)  # a power of 2
        out = np.empty((coefficients.shape[0], x_new.shape[0], coefficients.shape[-1]))
        for start in range(0, x_new.shape[0], rows):
            out[:, start:start + rows] = np.matmul(op.cross(x_new[start:start + rows]),
                                                   coefficients)
        return out

    def predict(self, state, x_new, coefficients, *, spread=None, scaled=None):
        if spread is None:
            return self.mean(state, x_new, coefficients), None
        op = state.operator
        cross = op.kernels(x_new, op.inputs)
        trained = getattr(cross, op.kind)
        mean = np.matmul(trained, coefficients)
        readout_only = op.kind == "nngp"
        nngp_test = op.kernels(x_new, diagonal=spread == "diag").nngp
        variance = flow_covariance(
            state.core, scaled, readout_only=readout_only, k_test_train=trained,
            nngp_test_train=cross.nngp, nngp_test=nngp_test,
            nngp_train=None if readout_only else training_nngp(state), full=spread == "full")
        return mean, variance


def training_nngp(state: State) -> np.ndarray:
    """The NNGP among the training inputs, computed once (memory checked) and kept."""
    if "nngp_train" not in state.cache:
        n = state.operator.n
        check_memory(n * n * 8 + planning.tile_bytes(min(n, getattr(state.operator, "tile", n))),
                     f"the training NNGP ({n} x {n}) for the NTK ensemble's spread",
                     "Predict the mean only, or use fewer training points.")
        state.cache["nngp_train"] = state.operator.with_kind("nngp").gram()
    return state.cache["nngp_train"]


def _path(core, planned: str) -> str:
    """The path that ran: the planned one, or the eigendecomposition Cholesky fell back to."""
    if core.name == "eigh" and "Cholesky" in planned:
        return (f"eigendecomposition, in place (Cholesky found the kernel not numerically "
                f"positive definite; {core.n_dropped} eigenvalues treated as zero)")
    return planned


class CholeskyKernelSolver(_Dense):
    """Cholesky of K + ridge I in the kernel's own buffer; eigh where it is not positive definite.

    Examples:
        >>> import numpy as np, lazykit
        >>> from lazykit.kernels.operator import KernelOperator
        >>> from lazykit.solvers.exact import CholeskyKernelSolver
        >>> x = np.random.default_rng(0).normal(size=(50, 3)); y = np.sin(x[:, :1])
        >>> op = KernelOperator(lazykit.mlp(2), x, "ntk", np.dtype("float64"))
        >>> solver = CholeskyKernelSolver()
        >>> state = solver.init(op, 0.1)
        >>> result = solver.flow(state, y, [np.inf])
        >>> exact = np.linalg.solve(lazykit.mlp(2).kernel(x).ntk + 0.1 * np.eye(50), y)
        >>> bool(np.allclose(result.coefficients[0], exact)), result.diagnostics.solver
        (True, 'cholesky')
    """

    name = "cholesky"


class EigenKernelSolver(_Dense):
    """Eigendecomposition of K + ridge I in the kernel's own buffer: every time from one solve.

    Examples:
        >>> import numpy as np
        >>> from lazykit.kernels.operator import PrecomputedOperator
        >>> from lazykit.solvers.exact import EigenKernelSolver
        >>> solver = EigenKernelSolver()
        >>> state = solver.init(PrecomputedOperator(np.array([[2.0, 1.0], [1.0, 2.0]])), 0.0)
        >>> solver.flow(state, np.array([[3.0], [3.0]]), [np.inf]).coefficients.ravel()
        array([1., 1.])
    """

    name = "eigh"
    eigen = True

