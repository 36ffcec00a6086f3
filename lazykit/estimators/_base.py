"""The machinery shared by lazykit's scikit-learn estimators (a thin shell over lazykit.solvers).

Fit: validate, wrap the trained kernel (NTK, or NNGP for the readout-only /
Bayesian variants) of the training inputs in a kernel operator, and set up
the solver on it (lazykit.solvers.base: every solver, "auto" included, the
same way); the coefficients at the estimator's ``t`` are stored. Predict: the
mean (and covariance) of the infinite ensemble trained by gradient flow for
time t, from the stored coefficients, or for other times from the solver's
state. The estimators never look at which solver they hold: the matrix-free
ones refuse the spread themselves.
"""

from __future__ import annotations

import contextlib
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval, StrOptions, validate_parameter_constraints
from sklearn.utils.validation import check_is_fitted, check_random_state

from lazykit.estimators._sources import PRECOMPUTED, resolve_source
from lazykit.kernels.operator import KernelOperator, PrecomputedOperator
from lazykit.kernels.resources import memory_budget
from lazykit.solvers import scaled_times
from lazykit.solvers.auto import SOLVER_CLASSES, make_kernel_solver
from lazykit.solvers.base import SolverChoice, SolverOptions
from lazykit.solvers.centres import CENTRE_METHODS

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _sklearn_validate_data
except ImportError:  # pragma: no cover - older scikit-learn
    _sklearn_validate_data = None

SHORTHAND_DEFAULTS = {"depth": 1, "activation": "relu", "W_std": 2.0**0.5, "b_std": 0.1,
                      "parameterization": "ntk"}
KIND_NAMES = {"ntk": "NTK", "nngp": "NNGP"}


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
        "solver": [StrOptions({"auto", *SOLVER_CLASSES})],
        "tol": [Interval(Real, 0, 1, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "n_centers": [Interval(Integral, 1, None, closed="left")],
        "centers": [StrOptions(set(CENTRE_METHODS))],
        "tile_size": [None, Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": [None, "boolean"],
        "memory_budget": [None, Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, network=None, *, depth=1, activation="relu", W_std=2.0**0.5, b_std=0.1,
                 parameterization="ntk", ridge=0.0, t=None, learning_rate=1.0, solver="auto",
                 tol=1e-6, max_iter=1000, n_centers=2000, centers="uniform", tile_size=None,
                 random_state=0, verbose=None, memory_budget=None):
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
        self.memory_budget = memory_budget

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

    def _operator(self, source, X: np.ndarray):
        """The training kernel as an operator: of the network's inputs, or the given Gram matrix."""
        if isinstance(source, str):
            return PrecomputedOperator(X, self._kind)
        return KernelOperator(source, X, self._kind, np.dtype(np.float64), self.tile_size)

    def _budget(self):
        """The estimator's memory budget for its checks (None: the budget in force)."""
        if self.memory_budget is None:
            return contextlib.nullcontext()
        return memory_budget(self.memory_budget)

    def _kernel_solver(self):
        seed = check_random_state(self.random_state).randint(2**31 - 1)
        return make_kernel_solver(self.solver, SolverOptions(
            tol=float(self.tol), max_iter=int(self.max_iter), n_centers=int(self.n_centers),
            centers=self.centers, seed=seed, verbose=self.verbose))

    # -- fit ------------------------------------------------------------------
    def _validate_train_inputs(self, X, y, **y_options):
        source = self._validate_hyperparameters()
        X, y = validate_data(self, X, y, reset=True, dtype=np.float64, **y_options)
        if isinstance(source, str) and X.shape[0] != X.shape[1]:
            raise ValueError(f"With network='precomputed', X must be the square Gram matrix of "
                             f"the training inputs; got shape {X.shape}.")
        return source, X, y

    def _fit_targets(self, source, X: np.ndarray, targets: np.ndarray) -> None:
        """Set up the solver on the training kernel; ``targets`` is a float64 (n, k) array."""
        self._targets = targets
        self.X_fit_ = X
        solver = self._kernel_solver()
        fit_scaled = self._fit_scaled()
        with self._budget():
            self._fit_state(solver, source, X, targets, fit_scaled)

    def _fit_state(self, solver, source, X, targets, fit_scaled) -> None:
        state = solver.init(self._operator(source, X), float(self.ridge), k=targets.shape[1],
                            finite_time=bool(np.isfinite(fit_scaled)),
                            what=f"{type(self).__name__}: the {KIND_NAMES[self._kind]}")
        result = state.solver.flow(state, targets, [fit_scaled])
        self._state = state
        self.dual_coef_ = result.coefficients[0]
        self.diagnostics_ = result.diagnostics
        self.solver_ = result.diagnostics.solver
        self.solver_choice_ = state.choice or SolverChoice(state.solver.name, "requested")
        self.n_iter_ = result.diagnostics.iterations

    def _scaled(self, times: np.ndarray) -> np.ndarray:
        return scaled_times(times, float(self.learning_rate), self._targets.size)

    def _fit_scaled(self) -> float:
        """The scaled time of the estimator's own ``t`` (inf for None)."""
        return float(self._scaled(check_times(self.t)[0])[0])

    @property
    def _solver(self):
        """The fitted solver's own object (factorization, CG or Nystrom solver)."""
        return self._state.core

    # -- predict --------------------------------------------------------------
    def _flow_outputs(self, X, t, *, return_std: bool = False, return_cov: bool = False):
        """Mean (n_times, n_test, k) and, if asked, variances or covariances of the ensemble."""
        check_is_fitted(self)
        if return_std and return_cov:
            raise ValueError("At most one of return_std or return_cov can be requested.")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        times, scalar = check_times(self.t if t is None else t)
        spread = "full" if return_cov else "diag" if return_std else None
        scaled = self._scaled(times)
        state = self._state
        at_fit = scaled == self._fit_scaled()
        coef = np.empty((scaled.shape[0], *self.dual_coef_.reshape(
            self.dual_coef_.shape[0], -1).shape))
        coef[at_fit] = self.dual_coef_.reshape(coef.shape[1:])
        with self._budget():
            if not at_fit.all():  # other times: from the set-up (a factorization) or anew
                coef[~at_fit] = state.solver.flow(state, self._targets,
                                                  scaled[~at_fit]).coefficients
            mean, variance = state.solver.predict(state, X, coef, spread=spread, scaled=scaled)
        return mean, variance, scalar
