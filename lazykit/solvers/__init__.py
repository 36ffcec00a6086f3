"""Solvers for kernel regression by gradient flow: factorizations, the flow formulas, and the
matrix-free solvers (conjugate gradients, Nystrom / Falkon) for problems past memory.

Every solver implements one protocol (:mod:`lazykit.solvers.base`): ``estimate``,
``init`` on a kernel operator and a ridge, ``flow`` to given times, ``predict``;
``make_kernel_solver(name)`` gives one by name, "auto" (:class:`AutoSolver`) included.
"""

from lazykit.solvers.auto import AutoSolver, make_kernel_solver
from lazykit.solvers.base import (
    Diagnostics,
    Estimate,
    KernelSolver,
    Problem,
    Result,
    SolverChoice,
    SolverOptions,
    State,
)
from lazykit.solvers.cg import ConjugateGradientSolver, NotConvergedWarning, conjugate_gradient
from lazykit.solvers.direct import (
    SOLVERS,
    CholeskySolver,
    EigenSolver,
    IllConditionedKernelWarning,
    flow_filter,
    make_solver,
)
from lazykit.solvers.exact import CholeskyKernelSolver, EigenKernelSolver
from lazykit.solvers.flow import flow_covariance, flow_mean, scaled_times
from lazykit.solvers.matrix_free import CGKernelSolver, NystromKernelSolver
from lazykit.solvers.nystrom import NystromSolver
from lazykit.solvers.planning import choose_solver

__all__ = [
    "SOLVERS",
    "AutoSolver",
    "CGKernelSolver",
    "CholeskyKernelSolver",
    "CholeskySolver",
    "ConjugateGradientSolver",
    "Diagnostics",
    "EigenKernelSolver",
    "EigenSolver",
    "Estimate",
    "IllConditionedKernelWarning",
    "KernelSolver",
    "NotConvergedWarning",
    "NystromKernelSolver",
    "NystromSolver",
    "Problem",
    "Result",
    "SolverChoice",
    "SolverOptions",
    "State",
    "choose_solver",
    "conjugate_gradient",
    "flow_covariance",
    "flow_filter",
    "flow_mean",
    "make_kernel_solver",
    "make_solver",
    "scaled_times",
]
