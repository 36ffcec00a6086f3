"""NeuralKernel: an infinite-width network's NTK or NNGP as a scikit-learn Kernel."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse
from sklearn.gaussian_process.kernels import Hyperparameter, Kernel
from sklearn.utils import check_array

from lazykit._dtypes import precision
from lazykit._validation import check_same_features, finite_float, positive_int
from lazykit.activations import get_activation
from lazykit.estimators._sources import PaddedNetworkKernel
from lazykit.kernels.compute import check_memory
from lazykit.kernels.tiling import bucket, pad_rows
from lazykit.network import PARAMETERIZATIONS, check_variance_limits, mlp

KINDS = ("ntk", "nngp")
_WIDTH = 512  # mlp's default; matters only for the standard parameterization's NTK
# Up to this many entries K(X, Y) is one jitted call with W_std, b_std as arguments
# (no recompilation when a Gaussian process changes them); beyond, lazykit's tiles.
_DIRECT_ENTRIES = 2048 * 2048
_GRADIENT_WORK_ARRAYS = 12  # live (n, n) arrays per kernel and tangent in the jitted gradient


def _network(log_params, *, depth, activation, parameterization, with_bias):
    """mlp(depth, ...) at W_std, b_std = exp(log_params) (traced by the jitted kernels)."""
    return mlp(depth, _WIDTH, activation, W_std=jnp.exp(log_params[0]),
               b_std=jnp.exp(log_params[1]) if with_bias else None,
               parameterization=parameterization)


def _as_inputs(X, name: str) -> np.ndarray:
    """X as a finite float64 2-D array with scikit-learn's checks; sparse input is densified."""
    X = check_array(X, accept_sparse=True, dtype=np.float64, input_name=name)
    return X.toarray() if scipy.sparse.issparse(X) else X


@functools.lru_cache(maxsize=64)
def _kernel_fn(depth, activation, parameterization, kind, with_bias, mode):
    """Jitted kernel with W_std, b_std as *arguments* (log scale), so new values never recompile.

    mode "full" (x1, None), "cross" (x1, x2), "diag" (x1, diagonal) or "gradient":
    (K, dK/dlog(W_std, b_std)) of shapes ((n, n), (n, n, 2)) by forward-mode autodiff.
    """
    config = dict(depth=depth, activation=activation, parameterization=parameterization,
                  with_bias=with_bias)

    def value(log_params, x1, x2=None):
        kernel = _network(log_params, **config).kernel_fn(x1, x2, diagonal=mode == "diag")
        return getattr(kernel, kind)

    if mode != "gradient":
        return jax.jit(value)

    def value_and_jacobian(log_params, x1):
        return value(log_params, x1), jax.jacfwd(value)(log_params, x1)

    return jax.jit(value_and_jacobian)


class NeuralKernel(Kernel):
    """The NTK or NNGP of an infinitely wide fully-connected network, as a scikit-learn Kernel.

    The kernel of ``lazykit.mlp(depth, activation=..., W_std=..., b_std=...,
    parameterization=...)``. ``W_std`` and ``b_std`` are hyperparameters
    (log-scale, within their bounds): ``GaussianProcessRegressor`` can
    maximize the marginal likelihood over them, with exact gradients from JAX
    forward-mode autodiff in float64. ``diag`` costs O(n). It also works as
    ``SVC(kernel=NeuralKernel())`` or ``KernelRidge(kernel=NeuralKernel())``,
    and composes with scikit-learn's kernels (``ConstantKernel() * NeuralKernel()
    + WhiteKernel()``).

    Args:
        depth: number of hidden layers.
        activation: a name (see :func:`lazykit.get_activation`) or an Activation.
        W_std: weight standard deviation, > 0 (a hyperparameter; theta holds its log).
        b_std: bias standard deviation (a hyperparameter; 0 or None: no bias, fixed).
        parameterization: "ntk" or "standard" (for the NTK, at width 512).
        kind: "ntk" (neural tangent kernel) or "nngp" (the Gaussian-process kernel).
        W_std_bounds: bounds of W_std, or "fixed".
        b_std_bounds: bounds of b_std, or "fixed".

    Examples:
        >>> import numpy as np, lazykit
        >>> from sklearn.gaussian_process import GaussianProcessRegressor
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(30, 2)); y = np.sin(X[:, 0])
        >>> kernel = lazykit.NeuralKernel(depth=2, kind="nngp")
        >>> K, dK = kernel(X, eval_gradient=True)
        >>> K.shape, dK.shape, kernel.diag(X).shape
        ((30, 30), (30, 30, 2), (30,))
        >>> gp = GaussianProcessRegressor(kernel, alpha=1e-3).fit(X, y)
        >>> sorted(gp.kernel_.get_params())[:2]
        ['W_std', 'W_std_bounds']
    """

    def __init__(self, depth=1, activation="relu", W_std=2.0**0.5, b_std=0.1,
                 parameterization="ntk", kind="ntk", W_std_bounds=(1e-2, 1e2),
                 b_std_bounds=(1e-5, 1e2)):
        self.depth = depth
        self.activation = activation
        self.W_std = W_std
        self.b_std = b_std
        self.parameterization = parameterization
        self.kind = kind
        self.W_std_bounds = W_std_bounds
        self.b_std_bounds = b_std_bounds

    @property
    def hyperparameter_W_std(self) -> Hyperparameter:
        self._check_params()  # theta (log W_std) is read before any kernel is computed
        return Hyperparameter("W_std", "numeric", self.W_std_bounds)

    @property
    def hyperparameter_b_std(self) -> Hyperparameter:
        self._check_params()
        return Hyperparameter("b_std", "numeric", self.b_std_bounds if self.b_std else "fixed")

    def _check_params(self) -> None:
        """Validate the parameters where they are used, as scikit-learn kernels do.

        scikit-learn sets a kernel's parameters without calling ``__init__``
        (``set_params``, ``clone_with_theta``), so they are checked on every use:
        evaluation, ``diag`` and ``theta`` (which holds their logarithms).
        """
        positive_int(self.depth, "depth")
        get_activation(self.activation)
        finite_float(self.W_std, "W_std", minimum=0, strict=True)
        if self.b_std is not None:
            finite_float(self.b_std, "b_std (None or 0: no bias)", minimum=0)
        if self.parameterization not in PARAMETERIZATIONS:
            raise ValueError(f"parameterization must be one of {PARAMETERIZATIONS}; "
                             f"got {self.parameterization!r}.")
        self._check_kind()

    def _check_kind(self) -> str:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}; got {self.kind!r}.")
        return self.kind

    def _network(self):
        return mlp(self.depth, _WIDTH, self.activation, W_std=self.W_std,
                   b_std=self.b_std or None, parameterization=self.parameterization)

    def __call__(self, X, Y=None, eval_gradient=False):
        """K(X, Y) (Y=None: K(X, X)); with ``eval_gradient``, also dK/dtheta, shape (n, n, n_theta).

        theta holds log(W_std) and log(b_std) (the non-fixed ones, in that order).
        Inputs are checked like scikit-learn's (finite, 2-D); sparse ones are densified.

        Raises:
            ValueError, TypeError: naming the parameter (depth, activation, W_std,
                b_std, parameterization, kind) or input that is invalid.
        """
        self._check_params()
        X = _as_inputs(X, "X")
        if Y is not None:
            Y = _as_inputs(Y, "Y")
            check_same_features(X, Y, "X", "Y")
        check_variance_limits(self._network().layers, X, Y, names=("X", "Y"))
        if eval_gradient and Y is not None:
            raise ValueError("Gradient can only be evaluated when Y is None.")
        if not eval_gradient:
            n2 = X.shape[0] if Y is None else Y.shape[0]
            if X.shape[0] * n2 > _DIRECT_ENTRIES:  # large: lazykit's tiled, memory-checked path
                return getattr(PaddedNetworkKernel(self._network()).kernel(X, Y),
                               self._check_kind())
            mode = "full" if Y is None else "cross"
            return self._evaluate(mode, X, Y)[: X.shape[0], :n2]
        n = X.shape[0]
        check_memory(_GRADIENT_WORK_ARRAYS * 3 * bucket(n) ** 2 * 8,
                     f"NeuralKernel's gradient on {n} points", "Use fewer points.")
        value, jacobian = self._evaluate("gradient", X)
        free = [not self.hyperparameter_W_std.fixed, not self.hyperparameter_b_std.fixed]
        return np.array(value[:n, :n]), np.ascontiguousarray(jacobian[:n, :n][:, :, free])

    def _evaluate(self, mode, X, Y=None):
        """The jitted kernel on inputs padded to bucketed sizes (few compilations)."""
        fn = _kernel_fn(self.depth, get_activation(self.activation), self.parameterization,
                        self._check_kind(), bool(self.b_std), mode)
        args = [pad_rows(x, bucket(len(x))) for x in ((X,) if Y is None else (X, Y))]
        log_params = np.log(np.array([self.W_std, self.b_std or 1.0], dtype=np.float64))
        with precision("float64"):
            result = fn(log_params, *args)
            return tuple(np.array(part) for part in result) if mode == "gradient" else (
                np.array(result))

    def diag(self, X):
        """K(x, x) for each row of X in O(n)."""
        self._check_params()
        X = _as_inputs(X, "X")
        check_variance_limits(self._network().layers, X, names=("X", "Y"))
        return self._evaluate("diag", X)[: X.shape[0]]

    def is_stationary(self) -> bool:
        return False

    def __repr__(self) -> str:
        return (f"NeuralKernel(depth={self.depth}, activation={self.activation!r}, "
                f"W_std={_short(self.W_std)}, b_std={_short(self.b_std)}, "
                f"parameterization={self.parameterization!r}, kind={self.kind!r})")


def _short(value) -> str:
    """A number to 3 significant digits; anything else (an invalid parameter) as its repr."""
    return f"{value:.3g}" if isinstance(value, (int, float)) else repr(value)
