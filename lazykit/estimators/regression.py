"""NTKRegressor and NNGPRegressor: infinite-width networks as scikit-learn regressors."""

from __future__ import annotations

import numpy as np
from sklearn.base import RegressorMixin

from lazykit.estimators._base import NeuralKernelModel


class _FlowRegressor(RegressorMixin, NeuralKernelModel):
    """fit / predict of the regressors (the kernel is chosen by ``_kind``)."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _more_tags(self):  # scikit-learn < 1.6
        return {**super()._more_tags(), "multioutput": True}

    def fit(self, X, y):
        """Compute the training kernel and factorize it.

        Args:
            X: training inputs (n_samples, n_features), or their Gram matrix
                (n_samples, n_samples) if ``network="precomputed"``.
            y: targets, shape (n_samples,) or (n_samples, n_targets).

        Returns:
            self
        """
        source, X, y = self._validate_train_inputs(X, y, multi_output=True, y_numeric=True)
        if not np.issubdtype(np.asarray(y).dtype, np.number):
            raise ValueError(f"y must hold numbers (regression targets); got an array of dtype "
                             f"{np.asarray(y).dtype} such as {np.asarray(y).flat[0]!r}.")
        y = np.asarray(y, dtype=np.float64)
        self._single_output = y.ndim == 1
        self._fit_targets(source, X, y.reshape(y.shape[0], -1))
        if self._single_output:
            self.dual_coef_ = self.dual_coef_[:, 0]
        return self

    def predict(self, X, return_std=False, return_cov=False, *, t=None):
        """Mean prediction of the infinite ensemble trained for time t (and its spread).

        Args:
            X: test inputs (n_test, n_features), or their kernel with the training
                inputs (n_test, n_train) if ``network="precomputed"``.
            return_std: also return the ensemble's standard deviation at each point.
            return_cov: also return the ensemble's covariance among the test points.
            t: training time(s); None means the estimator's ``t``. A number
                (``np.inf`` for infinite time) or a 1-D array of times: an array
                adds a leading time axis to every output. Every time reuses the
                factorization cached by ``fit``; an array of times also shares one
                evaluation of the test kernels, so a whole training curve costs
                about one prediction.

        Returns:
            The mean, shape (n_test,) or (n_test, n_targets) like ``y``; with
            ``return_std`` also the standard deviation (same shape: every target
            has the same one); with ``return_cov`` the covariance, shape
            (n_test, n_test) or (n_test, n_test, n_targets).
        """
        mean, spread, scalar = self._flow_outputs(X, t, return_std=return_std,
                                                  return_cov=return_cov)
        k = mean.shape[-1]
        if spread is not None:
            spread = np.sqrt(spread) if return_std else spread
            if not self._single_output:
                spread = np.repeat(spread[..., None], k, axis=-1)
        if self._single_output:
            mean = mean[..., 0]
        if scalar:
            mean = mean[0]
            spread = None if spread is None else spread[0]
        return mean if spread is None else (mean, spread)


class NTKRegressor(_FlowRegressor):
    """The infinite ensemble of infinitely wide networks trained by gradient flow (NTK).

    ``predict(X)`` is the mean, over random initializations, of infinitely
    wide networks trained by gradient flow on the mean squared error
    ``||f(X) - y||^2 / (2 n k)`` for time ``t`` with learning rate
    ``learning_rate`` (Jacot et al. 2018; Lee et al. 2019):

        f_t(x) = Theta(x, X) A^{-1} (I - exp(-s A)) y,  A = Theta + ridge I,
        s = learning_rate * t / (n k),

    Theta the NTK, n the number of training points and k of targets (the same
    time scale as neural-tangents' ``gradient_descent_mse_ensemble``). With
    ``t=None`` (infinite time) and ``ridge=0`` it is the minimum-norm NTK
    interpolant; ``ridge > 0`` is NTK kernel ridge regression.
    ``predict(X, return_std=True)`` or ``return_cov=True`` gives the spread of
    that ensemble (its initialization f_0 ~ GP(0, NNGP) is not averaged out).

    Args:
        network: None (build ``lazykit.mlp`` from the shorthand arguments below),
            a lazykit Network, any kernel source (an object with
            ``kernel(x1, x2=None, *, diagonal=False, dtype=None)`` such as
            :class:`lazykit.NeuralTangentsKernel`), a neural-tangents
            ``kernel_fn`` (CNNs, attention, ... when neural-tangents is
            installed), or "precomputed" (X is then the NTK Gram matrix).
        depth: hidden layers of the shorthand network (``network=None`` only).
        activation: its activation (a name, an Activation or a callable).
        W_std: its weight standard deviation.
        b_std: its bias standard deviation (None: no biases).
        parameterization: "ntk" or "standard" (width 512).
        ridge: added to the diagonal of the training kernel; 0 is ridgeless.
        t: gradient-flow training time >= 0; None or ``np.inf`` (the same) mean
            infinite time, the ridge(less) regression limit.
        learning_rate: gradient-flow learning rate (only ``learning_rate * t`` matters).
        solver: "auto", "cholesky", "eigh", "cg" or "nystrom". "auto" takes the
            exact solver (Cholesky for infinite time, else eigendecomposition)
            when the training kernel and its factorization fit in the memory
            available now and it is expected to finish within 20 s (or no
            later than Nystrom), otherwise "nystrom" (or "cg" where that is
            expected within the limit), and refuses a problem that fits under
            none with an :class:`lazykit.InsufficientMemoryError` naming the
            sizes; its choice and the reason are in ``solver_choice_`` (see
            the scaling guide). Every solver checks its peak memory before
            anything large is allocated. Cholesky is used only where the kernel is
            numerically positive definite; a singular or ill-conditioned kernel
            (duplicate points, a degenerate deep kernel) is solved by
            eigendecomposition and pseudo-inverse, with an
            :class:`lazykit.IllConditionedKernelWarning` saying so. "cg" is
            matrix-free conjugate gradients on the exact system (memory O(n k),
            one pass over the n^2 / 2 kernel entries per iteration, sharded
            over all JAX devices; finite times by a Lanczos process on the
            same products); "nystrom" is Falkon (Nystrom centres and
            preconditioned CG, memory O(n M) or O(M^2); ridgeless fits and
            finite times by gradient flow with the Nystrom kernel, one M x M
            eigendecomposition). Both give the mean, not ``return_std`` /
            ``return_cov``. Everything is float64 and never NaN.
        tol: relative residual at which "cg" and "nystrom" stop (for the
            Lanczos flow: the relative change of its Krylov coefficients).
        max_iter: most iterations of "cg", "nystrom" and the Lanczos flow (a
            :class:`lazykit.NotConvergedWarning` if reached above ``tol``).
        n_centers: Nystrom centres M, picked from the training inputs.
        centers: how they are picked: "uniform" (uniformly at random, as in
            Falkon; the default) or "rpcholesky" (randomly pivoted Cholesky:
            where the current centres explain the kernel least; closer to the
            exact solution when M nears the effective dimension, see the
            scaling guide). Also the centres of "cg"'s preconditioner.
        tile_size: kernel tile edge for "cg" (None: 1024 on CPU, 8192 on accelerators).
        random_state: seed (or ``numpy.random.RandomState``) of the Nystrom centres.
        verbose: progress (iteration, residual) of "cg" and "nystrom", and the
            choice of "auto", on stderr: None shows it only on a terminal,
            False never, True always.
        memory_budget: bytes that this estimator's memory checks may plan with
            (90% of them), in place of the memory available now; None: the
            budget in force (``lazykit.kernels.resources.memory_budget``), by
            default the memory available now.

    Attributes:
        X_fit_: training inputs (or Gram matrix).
        dual_coef_: A^{-1} (I - exp(-s A)) y at the estimator's ``t``: predictions
            are ``Theta(x, X) @ dual_coef_`` (with "nystrom": the coefficients
            of the M centres, ``Theta(x, centres) @ dual_coef_``).
        solver_: the solver actually used ("cholesky", "eigh", "cg" or "nystrom";
            "eigh" where Cholesky found the kernel not numerically positive definite).
        solver_choice_: why that solver: ``.name`` and ``.reason`` (for
            "auto", its memory and time estimates; otherwise "requested").
        diagnostics_: the fit's :class:`lazykit.solvers.base.Diagnostics`
            (solver, path, iterations, relative residual, condition estimate,
            planned peak bytes).
        n_iter_: iterations run by "cg" and "nystrom"; 1 for the direct solvers (one
            factorization).
        n_features_in_: number of features seen in fit.

    Examples:
        >>> import numpy as np, lazykit
        >>> rng = np.random.default_rng(0)
        >>> X, y = rng.normal(size=(40, 3)), rng.normal(size=40)
        >>> model = lazykit.NTKRegressor(depth=2).fit(X, y)
        >>> bool(np.allclose(model.predict(X), y))  # ridgeless: interpolates
        True
        >>> curve = model.predict(X[:5], t=np.logspace(-1, 3, 100))  # 100 times, one fit
        >>> curve.shape
        (100, 5)
        >>> mean, std = model.predict(X[:5], return_std=True, t=10.0)
        >>> std.shape
        (5,)
    """

    _kind = "ntk"


class NNGPRegressor(_FlowRegressor):
    """The infinite-width network as a Bayesian model (NNGP), or with only its readout trained.

    With ``t=None``, ``predict`` returns the posterior mean of the Gaussian
    process with the network's NNGP kernel K and noise variance ``ridge``
    (Neal 1996; Lee et al. 2018), and ``return_std`` / ``return_cov`` its
    posterior spread: K(x, x') - K(x, X) (K + ridge I)^{-1} K(X, x'). A finite
    ``t`` gives the infinite ensemble of infinitely wide networks whose readout
    layer alone is trained by gradient flow for time t (the NNGP is that
    layer's tangent kernel); otherwise exactly like :class:`NTKRegressor`,
    whose arguments it takes (``network="precomputed"``: X is the NNGP Gram matrix).

    Examples:
        >>> import numpy as np, lazykit
        >>> rng = np.random.default_rng(0)
        >>> X, y = rng.normal(size=(40, 3)), rng.normal(size=(40, 2))
        >>> gp = lazykit.NNGPRegressor(depth=3, ridge=1e-2).fit(X, y)
        >>> mean, std = gp.predict(X[:4], return_std=True)
        >>> mean.shape, std.shape
        ((4, 2), (4, 2))
    """

    _kind = "nngp"
