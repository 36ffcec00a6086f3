"""The machinery shared by lazykit's scikit-learn estimators (a thin shell over lazykit.solvers).

Fit: validate, compute the training kernels of the network, factorize the
trained kernel (NTK, or NNGP for the readout-only / Bayesian variants) once.
Predict: the mean (and covariance) of the infinite ensemble trained by gradient
flow for time t, for the estimator's ``t`` or any other times, from the cached
factorization (lazykit.solvers.flow). The matrix-free solvers ("cg",
"nystrom") never form the n x n kernel; they give the mean (not the spread) at any time.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval, StrOptions, validate_parameter_constraints
from sklearn.utils.validation import check_is_fitted, check_random_state

from lazykit.estimators._sources import PRECOMPUTED, PaddedNetworkKernel, resolve_source
from lazykit.kernels.compute import default_tile_size
from lazykit.kernels.operator import KernelOperator
from lazykit.solvers import SOLVERS, flow_covariance, flow_mean, make_solver, scaled_times
from lazykit.solvers.centres import CENTRE_METHODS
from lazykit.solvers.cg import ConjugateGradientSolver
from lazykit.solvers.nystrom import NystromSolver, nystrom_preconditioner
from lazykit.solvers.planning import Plan, choose_solver

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _sklearn_validate_data
except ImportError:  # pragma: no cover - older scikit-learn
    _sklearn_validate_data = None

SHORTHAND_DEFAULTS = {"depth": 1, "activation": "relu", "W_std": 2.0**0.5, "b_std": 0.1,
                      "parameterization": "ntk"}
KIND_NAMES = {"ntk": "NTK", "nngp": "NNGP"}
MATRIX_FREE = ("cg", "nystrom")


def validate_data(estimator, X, y="no_validation", *, reset: bool, **kwargs):
    """scikit-learn's validate_data (>= 1.6) or BaseEstimator._validate_data (older).

    Its messages ("Expected 2D array", "Found array with 0 sample(s)", ...) do not always
    say which argument is at fault; they are prefixed with the argument's name here.
    """
    try:
        if _sklearn_validate_data is not None:
            return _sklearn_validate_data(estimator, X, y, reset=reset, **kwargs)
        return estimator._validate_data(X, y, reset=reset, **kwargs)  # pragma: no cover
    except (TypeError, ValueError) as err:
        name = "y" if _is_about_y(X, y, kwargs.get("dtype")) else "X"
        if "inconsistent numbers of samples" in str(err):
            name = "X and y"
        if str(err).startswith(f"{name} "):
            raise
        raise type(err)(f"{name} (argument of {type(estimator).__name__}): {err}") from err


def _is_about_y(X, y, dtype) -> bool:
    """Whether a validation error of (X, y) lies in y: X alone passes scikit-learn's checks."""
    if isinstance(y, str) and y == "no_validation":
        return False
    from sklearn.utils import check_array

    try:
        check_array(X, dtype=dtype or "numeric")
    except (TypeError, ValueError):
        return False
    return True


def check_times(t, name: str = "t") -> tuple[np.ndarray, bool]:
    """Validate training times: (1-D float array, whether ``t`` was a scalar). None means inf."""
    if t is None:
        return np.array([np.inf]), True
    try:
        times = np.asarray(t, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be None (infinite time), a number >= 0 or a 1-D array of "
                        f"them; got {t!r}.") from err
    if times.ndim > 1 or times.size == 0 or np.isnan(times).any() or (times < 0).any():
        raise ValueError(f"{name} must be None (infinite time), a number >= 0 (np.inf allowed) "
                         f"or a non-empty 1-D array of them; got {t!r}.")
    return np.atleast_1d(times), times.ndim == 0


class NeuralKernelModel(BaseEstimator):
    """Base of the NTK / NNGP estimators: parameters, fit and gradient-flow prediction.

    Subclasses set ``_kind`` ("ntk" or "nngp": the kernel that is trained) and
    implement ``fit`` through :meth:`_fit_targets`.
    """

    _kind = "ntk"

    _parameter_constraints: ClassVar[dict] = {
        "network": "no_validation",
        "depth": [Interval(Integral, 1, None, closed="left")],
        "activation": [str, callable],
        "W_std": [Interval(Real, 0, None, closed="left")],
        "b_std": [None, Interval(Real, 0, None, closed="left")],
        "parameterization": [StrOptions({"ntk", "standard"})],
        "ridge": [Interval(Real, 0, None, closed="left")],
        "t": [None, Interval(Real, 0, np.inf, closed="both")],  # np.inf: as None
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "solver": [StrOptions({"auto", *SOLVERS, *MATRIX_FREE})],
        "tol": [Interval(Real, 0, 1, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "n_centers": [Interval(Integral, 1, None, closed="left")],
        "centers": [StrOptions(set(CENTRE_METHODS))],
        "tile_size": [None, Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": [None, "boolean"],
    }

    def __init__(self, network=None, *, depth=1, activation="relu", W_std=2.0**0.5, b_std=0.1,
                 parameterization="ntk", ridge=0.0, t=None, learning_rate=1.0, solver="auto",
                 tol=1e-6, max_iter=1000, n_centers=2000, centers="uniform", tile_size=None,
                 random_state=0, verbose=None):
        self.network = network
        self.depth = depth
        self.activation = activation
        self.W_std = W_std
        self.b_std = b_std
        self.parameterization = parameterization
        self.ridge = ridge
        self.t = t
        self.learning_rate = learning_rate
        self.solver = solver
        self.tol = tol
        self.max_iter = max_iter
        self.n_centers = n_centers
        self.centers = centers
        self.tile_size = tile_size
        self.random_state = random_state
        self.verbose = verbose

    # -- scikit-learn plumbing ------------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.pairwise = self._precomputed
        return tags

    def _more_tags(self):  # scikit-learn < 1.6
        return {"pairwise": self._precomputed}

    @property
    def _precomputed(self) -> bool:
        return isinstance(self.network, str) and self.network == PRECOMPUTED

    def _validate_hyperparameters(self):
        """scikit-learn's parameter validation (InvalidParameterError); return the kernel source."""
        validate_parameter_constraints(self._parameter_constraints, self.get_params(deep=False),
                                       caller_name=type(self).__name__)
        if self.network is not None:
            changed = [name for name, default in SHORTHAND_DEFAULTS.items()
                       if getattr(self, name) != default]
            if changed:
                raise ValueError(
                    f"{type(self).__name__}: {', '.join(changed)} describe the network only when "
                    f"network=None; got network={self.network!r} together with "
                    + ", ".join(f"{name}={getattr(self, name)!r}" for name in changed)
                    + ". Leave them at their defaults, or set network=None.")
        return resolve_source(self.network, **{name: getattr(self, name)
                                                for name in SHORTHAND_DEFAULTS})

    def _plan(self, source, n: int, k: int) -> Plan:
        """The solver for this fit: "auto" decides by the memory the exact solve needs."""
        finite_time = self.t is not None and not math.isinf(self.t)
        if not isinstance(source, str):
            return choose_solver(self.solver, n=n, k=k, finite_time=finite_time,
                                 ridge=float(self.ridge), n_centers=self.n_centers,
                                 tile=self.tile_size or default_tile_size(),
                                 max_iter=self.max_iter, centers=self.centers)
        if self.solver in MATRIX_FREE:
            raise ValueError(
                f"solver={self.solver!r} computes kernel tiles from the inputs, so it cannot "
                "work with network='precomputed'. Pass the network, or use solver='cholesky'.")
        if self.solver == "auto":
            return Plan("eigh" if finite_time else "cholesky")
        return Plan(self.solver)

    # -- fit ------------------------------------------------------------------
    def _validate_train_inputs(self, X, y, **y_options):
        source = self._validate_hyperparameters()
        X, y = validate_data(self, X, y, reset=True, dtype=np.float64, **y_options)
        if isinstance(source, str) and X.shape[0] != X.shape[1]:
            raise ValueError(f"With network='precomputed', X must be the square Gram matrix of "
                             f"the training inputs; got shape {X.shape}.")
        return source, X, y

    def _fit_targets(self, source, X: np.ndarray, targets: np.ndarray) -> None:
        """Factorize the training kernel; ``targets`` is a float64 (n, k) array."""
        kind = self._kind
        plan = self._plan(source, X.shape[0], targets.shape[1])
        self._source = source
        self._targets = targets
        self.X_fit_ = X
        self.solver_ = plan.name
        if plan.name in MATRIX_FREE:
            self._solver = self._fit_matrix_free(plan, source, X, targets)
            self.dual_coef_ = self._solver.coef
            self.n_iter_ = self._solver.iterations
            return
        self.n_iter_ = 1  # one factorization (scikit-learn's convention: at least 1)
        if isinstance(source, str):
            train = X
        else:
            train = np.asarray(getattr(source.kernel(X), kind), dtype=np.float64)
        solver = make_solver(plan.name, train, float(self.ridge),
                             overwrite=not isinstance(source, str),
                             what=f"{type(self).__name__}: the {KIND_NAMES[kind]}")
        self._solver = solver
        self.solver_ = solver.name
        fit_times, _ = check_times(self.t)
        self.dual_coef_ = solver.apply(targets, self._scaled(fit_times))[0]

    def _fit_matrix_free(self, plan: Plan, source, X: np.ndarray, targets: np.ndarray):
        ridge, kind = float(self.ridge), self._kind
        seed = check_random_state(self.random_state).randint(2**31 - 1)
        scaled = self._fit_scaled()
        if plan.name == "cg":
            network = source.network if isinstance(source, PaddedNetworkKernel) else source
            operator = KernelOperator(network, X, kind, np.dtype(np.float64), self.tile_size)
            # The preconditioner serves the infinite-time CG solve, not the Lanczos flow.
            precondition = None if ridge == 0 or np.isfinite(scaled) else nystrom_preconditioner(
                source, X, ridge, kind=kind, n_centers=self.n_centers, seed=seed,
                sampling=self.centers, verbose=self.verbose)
            return ConjugateGradientSolver.fit(operator, targets, ridge, tol=self.tol,
                                               max_iter=self.max_iter, precondition=precondition,
                                               scaled=scaled, verbose=self.verbose)
        return NystromSolver.fit(source, X, targets, ridge, kind=kind, n_centers=self.n_centers,
                                 seed=seed, tol=self.tol, max_iter=self.max_iter,
                                 sampling=self.centers, store=plan.store, scaled=scaled,
                                 verbose=self.verbose)

    def _scaled(self, times: np.ndarray) -> np.ndarray:
        return scaled_times(times, float(self.learning_rate), self._targets.size)

    def _fit_scaled(self) -> float:
        """The scaled time of the estimator's own ``t`` (inf for None)."""
        return float(self._scaled(check_times(self.t)[0])[0])

    # -- predict --------------------------------------------------------------
    def _test_kernels(self, X: np.ndarray, spread: str | None):
        """(kernel with the training inputs, NNGP among the test inputs: "diag", "full" or None)."""
        if isinstance(self._source, str):
            if spread is not None:
                raise ValueError(
                    f"{type(self).__name__} with network='precomputed' knows only the kernel "
                    "between test and training points, not among test points, so it cannot "
                    "return a standard deviation or covariance. Pass a network instead.")
            return X, None
        cross = self._source.kernel(X, self.X_fit_)
        if spread is None:
            return cross, None
        return cross, self._source.kernel(X, diagonal=spread == "diag").nngp

    def _flow_outputs(self, X, t, *, return_std: bool = False, return_cov: bool = False):
        """Mean (n_times, n_test, k) and, if asked, variances or covariances of the ensemble."""
        check_is_fitted(self)
        if return_std and return_cov:
            raise ValueError("At most one of return_std or return_cov can be requested.")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        times, scalar = check_times(self.t if t is None else t)
        spread = "full" if return_cov else "diag" if return_std else None
        if self.solver_ in MATRIX_FREE:
            return self._matrix_free_mean(X, times, spread), None, scalar
        scaled = self._scaled(times)
        cross, nngp_test = self._test_kernels(X, spread)
        trained = cross if isinstance(self._source, str) else getattr(cross, self._kind)
        mean = flow_mean(self._solver, self._targets, trained, scaled)
        if spread is None:
            return mean, None, scalar
        readout_only = self._kind == "nngp"
        # The NTK ensemble's spread needs the training NNGP: recomputed, not stored with the fit.
        nngp_train = None if readout_only else self._source.kernel(self.X_fit_).nngp
        variance = flow_covariance(
            self._solver, scaled, readout_only=readout_only, k_test_train=trained,
            nngp_test_train=cross.nngp, nngp_test=nngp_test, nngp_train=nngp_train,
            full=return_cov)
        return mean, variance, scalar

    def _matrix_free_mean(self, X: np.ndarray, times: np.ndarray, spread) -> np.ndarray:
        """The mean from a matrix-free solver; times other than the fit's are solved anew."""
        if spread is not None:
            raise ValueError(f"{type(self).__name__} fitted with solver={self.solver_!r} gives "
                             "the mean only: return_std and return_cov need the dense solvers "
                             "(solver='cholesky' or 'eigh').")
        scaled = self._scaled(times)
        at_fit = scaled == self._fit_scaled()
        coef = np.empty((scaled.shape[0], *self._solver.coef.shape))
        coef[at_fit] = self._solver.coef
        if not at_fit.all():
            coef[~at_fit] = self._solver.coefficients(scaled[~at_fit], self._targets)
        return self._solver.predict(X, coef)
