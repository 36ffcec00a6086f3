"""One protocol for every kernel-regression solver, in the style of lineax's linear solvers.

A solver is configuration only (tolerances, centres, ...). Its work goes
through four methods, the same for every solver ("cholesky", "eigh", "cg",
"nystrom" and "auto", which chooses among them):

- ``estimate(problem)``: the :class:`Estimate` of its peak memory and
  expected time on a :class:`Problem`, before anything is computed;
- ``init(operator, ridge, ...)``: checks that estimate against the memory
  available (:func:`lazykit.kernels.compute.check_memory`) *before* anything
  large is allocated, then sets up on the kernel operator (a
  :class:`lazykit.kernels.operator.KernelOperator` or
  :class:`~lazykit.kernels.operator.PrecomputedOperator`) and the ridge: a
  factorization, Nystrom centres, a preconditioner. Returns a :class:`State`;
- ``flow(state, targets, scaled)``: the coefficients of gradient flow to the
  scaled times ``scaled`` (s = inf: the ridge(less) solution), shape
  (T, m, k), m the training points or the Nystrom centres, with
  :class:`Diagnostics`, as a :class:`Result`;
- ``predict(state, x_new, coefficients, spread=..., scaled=...)``: the
  predictions K(x_new, basis) coefficients and, for the solvers that keep the
  whole kernel's factorization, the ensemble's variances or covariances.

Every solver's ``flow`` and ``predict`` take the state its own ``init``
returned; ``state.solver`` is that solver (for "auto": the one it chose, with
its reason in ``state.choice``), so callers never need to know which solver
they hold.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import ClassVar, NamedTuple

import numpy as np


@dataclasses.dataclass(frozen=True)
class Problem:
    """What a solver's cost depends on: sizes, ridge, fit time and how kernels are computed.

    Attributes:
        n: training points.
        k: target columns.
        ridge: added to the kernel's diagonal.
        finite_time: whether the fit is at a finite training time.
        d: input features (0 when only a Gram matrix is given).
        tile: kernel tile edge of the matrix-free products.
        has_inputs: False for a precomputed Gram matrix (kernel values at other
            inputs are unknown).
        layers: layers of the network (the cost of a kernel entry grows with them).
    """

    n: int
    k: int
    ridge: float
    finite_time: bool = False
    d: int = 0
    tile: int = 1024
    has_inputs: bool = True
    layers: int = 3


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A solver's cost on a problem: peak bytes, expected work, and how it would run.

    ``flops`` counts flop-equivalents (kernel entries at their cost, see
    :mod:`lazykit.solvers.planning`); :meth:`seconds` converts them at a BLAS rate.
    """

    solver: str
    bytes: int
    flops: float
    exact: bool  # the exact kernel regression, or an approximation (Nystrom)
    path: str  # what would run, e.g. "Cholesky in place" or "Falkon CG, K_nM stored"
    possible: bool = True  # False: the solver cannot take this problem at all
    why_not: str = ""

    def seconds(self, rate: float) -> float:
        """Expected seconds at ``rate`` flops per second."""
        return self.flops / rate


@dataclasses.dataclass(frozen=True)
class Diagnostics:
    """What a solve did.

    Attributes:
        solver: the solver that ran ("cholesky", "eigh", "cg" or "nystrom";
            "eigh" where Cholesky found the kernel not numerically positive definite).
        path: what was done, in words.
        iterations: iterations (products with the kernel, CG steps); 1 for a factorization.
        residual: relative residual ||b - A x|| / ||b|| (worst column); NaN where
            none is computed (direct solves, gradient flows).
        condition: estimate of the condition number of K + ridge I (or of the
            system solved); NaN where unknown.
        memory: planned peak bytes (checked before the set-up).
    """

    solver: str
    path: str
    iterations: int = 1
    residual: float = float("nan")
    condition: float = float("nan")
    memory: int = 0


class Result(NamedTuple):
    """Gradient-flow coefficients (T, m, k) for each scaled time, and the solve's diagnostics."""

    coefficients: np.ndarray
    diagnostics: Diagnostics


@dataclasses.dataclass(frozen=True)
class SolverChoice:
    """Which solver ran and why (``solver_choice_`` of the estimators)."""

    name: str
    reason: str
    estimates: tuple[Estimate, ...] = ()

    def __str__(self) -> str:
        return f"{self.name}: {self.reason}"


@dataclasses.dataclass
class State:
    """What ``init`` set up: the solver, the operator, the ridge, the solver's own objects.

    ``core`` is the solver's factorization or fitted object; ``cache`` holds
    what is computed once on demand (the training NNGP of the NTK ensemble's
    spread, a Nystrom spectrum). ``setup`` describes the set-up.
    """

    solver: KernelSolver
    operator: object
    ridge: float
    estimate: Estimate
    core: object
    setup: Diagnostics
    choice: SolverChoice | None = None
    cache: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class SolverOptions:
    """Settings of the iterative and Nystrom solvers (the estimators' arguments).

    Attributes:
        tol: relative residual at which CG / Falkon stop (Lanczos: relative change).
        max_iter: most iterations.
        n_centers: Nystrom centres M (also those of CG's preconditioner).
        centers: "uniform" or "rpcholesky".
        seed: seed of the centres.
        verbose: progress and the choice of "auto" on stderr (None: on a terminal only).
    """

    tol: float = 1e-6
    max_iter: int = 1000
    n_centers: int = 2000
    centers: str = "uniform"
    seed: int = 0
    verbose: bool | None = None


class KernelSolver(abc.ABC):
    """The protocol (module text). Subclasses set ``name`` and implement the four methods."""

    name: ClassVar[str]

    def __init__(self, options: SolverOptions | None = None):
        self.options = SolverOptions() if options is None else options

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.options})"

    @abc.abstractmethod
    def estimate(self, problem: Problem) -> Estimate:
        """Peak memory and expected time on ``problem``; nothing is computed."""

    @abc.abstractmethod
    def init(self, operator, ridge: float, *, k: int = 1, finite_time: bool = False,
             what: str = "the kernel") -> State:
        """Check memory, then set up on ``operator`` and ``ridge`` for k targets.

        ``finite_time`` says whether the fit is at a finite time (the exact
        solvers then need the spectrum); ``what`` names the matrix in warnings.
        """

    @abc.abstractmethod
    def flow(self, state: State, targets: np.ndarray, scaled) -> Result:
        """Coefficients of gradient flow to each scaled time: (T, m, k), with diagnostics."""

    def predict(self, state: State, x_new: np.ndarray, coefficients: np.ndarray, *,
                spread: str | None = None, scaled=None):
        """(K(x_new, basis) coefficients, None): the mean for coefficients (T, m, k).

        ``spread`` ("diag" or "full") needs the whole kernel's factorization:
        only the exact solvers give it.
        """
        if spread is not None:
            raise ValueError(f"solver={self.name!r} gives the mean only: return_std and "
                             "return_cov need the dense solvers (solver='cholesky' or 'eigh').")
        return self.mean(state, x_new, coefficients), None

    @abc.abstractmethod
    def mean(self, state: State, x_new: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
        """K(x_new, basis) coefficients for coefficients (T, m, k): shape (T, n_new, k)."""


def problem_of(operator, ridge: float, *, k: int, finite_time: bool) -> Problem:
    """The :class:`Problem` of a kernel operator (its sizes, tile and layers) with k targets."""
    inputs = operator.inputs
    return Problem(n=operator.n, k=k, ridge=float(ridge), finite_time=bool(finite_time),
                   d=0 if inputs is None else inputs.shape[1],
                   tile=getattr(operator, "tile", 1024), has_inputs=inputs is not None,
                   layers=getattr(operator, "layers", 3))
