"""Solvers for kernel regression by gradient flow: factorizations, the flow formulas, and the
matrix-free solvers (conjugate gradients, Nystrom / Falkon) for problems past memory."""

from lazykit.solvers.cg import ConjugateGradientSolver, NotConvergedWarning, conjugate_gradient
from lazykit.solvers.direct import (
    SOLVERS,
    CholeskySolver,
    EigenSolver,
    IllConditionedKernelWarning,
    flow_filter,
    make_solver,
)
from lazykit.solvers.flow import flow_covariance, flow_mean, scaled_times
from lazykit.solvers.nystrom import NystromSolver
from lazykit.solvers.planning import choose_solver

__all__ = [
    "SOLVERS",
    "CholeskySolver",
    "ConjugateGradientSolver",
    "EigenSolver",
    "IllConditionedKernelWarning",
    "NotConvergedWarning",
    "NystromSolver",
    "choose_solver",
    "conjugate_gradient",
    "flow_covariance",
    "flow_filter",
    "flow_mean",
    "make_solver",
    "scaled_times",
]
