"""``solver="auto"``: a solver that picks another by memory and expected time, and says why.

:class:`AutoSolver` estimates every solver on the problem
(:meth:`~lazykit.solvers.base.KernelSolver.estimate`), decides with
:func:`lazykit.solvers.planning.decide` (the exact solve when it fits in
memory and is expected within :data:`~lazykit.solvers.planning.TIME_LIMIT`
seconds or no later than Nystrom; else CG where it is expected within the
limit; else Nystrom), and sets up the chosen one. The state it returns is
the chosen solver's, with ``state.choice`` (a
:class:`~lazykit.solvers.base.SolverChoice`: ``name`` and ``reason``); with
``verbose`` the choice is printed on stderr.
"""

from __future__ import annotations

import sys

from lazykit.solvers import planning
from lazykit.solvers.base import KernelSolver, SolverChoice, SolverOptions, problem_of
from lazykit.solvers.exact import CholeskyKernelSolver, EigenKernelSolver
from lazykit.solvers.matrix_free import CGKernelSolver, NystromKernelSolver

SOLVER_CLASSES = {"cholesky": CholeskyKernelSolver, "eigh": EigenKernelSolver,
                  "cg": CGKernelSolver, "nystrom": NystromKernelSolver}


class AutoSolver(KernelSolver):
    """Chooses the solver for each problem (module text); ``time_limit`` in seconds.

    Examples:
        >>> import numpy as np, lazykit
        >>> from lazykit.kernels.operator import KernelOperator
        >>> from lazykit.solvers.auto import AutoSolver
        >>> x = np.random.default_rng(0).normal(size=(40, 3))
        >>> op = KernelOperator(lazykit.mlp(1), x, "ntk", np.dtype("float64"))
        >>> state = AutoSolver().init(op, 0.1)
        >>> state.choice.name, state.solver.name
        ('cholesky', 'cholesky')
    """

    name = "auto"

    def __init__(self, options: SolverOptions | None = None, *,
                 time_limit: float = planning.TIME_LIMIT):
        super().__init__(options)
        self.time_limit = time_limit

    def candidates(self, problem):
        """The estimates "auto" weighs: exact, CG, Nystrom stored and streamed."""
        exact = (EigenKernelSolver if problem.finite_time else CholeskyKernelSolver)(self.options)
        return (exact.estimate(problem), CGKernelSolver(self.options).estimate(problem),
                NystromKernelSolver(self.options, store=True).estimate(problem),
                NystromKernelSolver(self.options, store=False).estimate(problem))

    def choose(self, problem) -> tuple[KernelSolver, SolverChoice]:
        """The solver for ``problem`` and why; InsufficientMemoryError if none fits."""
        estimates = self.candidates(problem)
        if not problem.has_inputs:  # a Gram matrix: only the exact solvers can take it
            exact = estimates[0]
            return (SOLVER_CLASSES[exact.solver](self.options),
                    SolverChoice(exact.solver, "network='precomputed': the Gram matrix is given, "
                                 "so only the exact solvers apply", estimates))
        plan = planning.decide(*estimates, free=planning.available_memory(),
                               time_limit=self.time_limit, n=problem.n, k=problem.k,
                               m=min(problem.n, self.options.n_centers),
                               finite_time=problem.finite_time)
        if plan.name == "nystrom":
            solver = NystromKernelSolver(self.options, store=plan.store)
        else:
            solver = SOLVER_CLASSES[plan.name](self.options)
        return solver, SolverChoice(plan.name, plan.reason, estimates)

    def estimate(self, problem):
        solver, _ = self.choose(problem)
        return solver.estimate(problem)

    def init(self, operator, ridge, *, k=1, finite_time=False, what="the kernel"):
        problem = problem_of(operator, ridge, k=k, finite_time=finite_time)
        solver, choice = self.choose(problem)
        verbose = self.options.verbose
        if verbose or (verbose is None and getattr(sys.stderr, "isatty", lambda: False)()):
            print(f"lazykit solver='auto' chose {choice}", file=sys.stderr)
        state = solver.init(operator, ridge, k=k, finite_time=finite_time, what=what)
        state.choice = choice
        return state

    def flow(self, state, targets, scaled):
        return state.solver.flow(state, targets, scaled)

    def mean(self, state, x_new, coefficients):
        return state.solver.mean(state, x_new, coefficients)

    def predict(self, state, x_new, coefficients, *, spread=None, scaled=None):
        return state.solver.predict(state, x_new, coefficients, spread=spread, scaled=scaled)


def make_kernel_solver(name: str, options: SolverOptions | None = None) -> KernelSolver:
    """The solver called ``name`` ("auto", "cholesky", "eigh", "cg" or "nystrom") with ``options``.

    Examples:
        >>> from lazykit.solvers.auto import make_kernel_solver
        >>> make_kernel_solver("eigh").name
        'eigh'
    """
    if name == "auto":
        return AutoSolver(options)
    if name not in SOLVER_CLASSES:
        raise ValueError(f"solver must be one of {['auto', *SOLVER_CLASSES]}; got {name!r}.")
    return SOLVER_CLASSES[name](options)
