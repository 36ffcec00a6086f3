"""Solvers for kernel regression by gradient flow: factorizations and the flow formulas."""

from lazykit.solvers.direct import (
    SOLVERS,
    CholeskySolver,
    EigenSolver,
    IllConditionedKernelWarning,
    flow_filter,
    make_solver,
)
from lazykit.solvers.flow import flow_covariance, flow_mean, scaled_times

__all__ = [
    "SOLVERS",
    "CholeskySolver",
    "EigenSolver",
    "IllConditionedKernelWarning",
    "flow_covariance",
    "flow_filter",
    "flow_mean",
    "make_solver",
    "scaled_times",
]
