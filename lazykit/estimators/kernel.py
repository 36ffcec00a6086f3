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
from lazykit._validation import check_same_features
from lazykit.activations import get_activation
from lazykit.estimators._sources import PaddedNetworkKernel, bucket
from lazykit.kernels.recursion import KernelState, input_moments, input_state, through_dense
from lazykit.network import mlp

KINDS = ("ntk", "nngp")
_WIDTH = 512  # mlp's default; matters only for the standard parameterization's NTK


def _mlp_state(log_params, x, *, depth, activation, parameterization, with_bias):
    """Kernel state of mlp(depth, ...) at W_std, b_std = exp(log_params)."""
    w = jnp.exp(log_params[0])
    b = jnp.exp(log_params[1]) if with_bias else None

    def dense(state, out_dim):
        return through_dense(state, out_dim=out_dim, W_std=w, b_std=b,
                             parameterization=parameterization)

    state = activation.propagate(dense(input_state(*input_moments(x), x.shape[1]), _WIDTH))
    if depth > 1:  # identical blocks: one scanned body keeps compile time flat in depth

        def step(carry, _):
            s = activation.propagate(dense(KernelState(*carry, _WIDTH), _WIDTH))
            return (s.nngp, s.var1, s.var2, s.ntk), None

        carry, _ = jax.lax.scan(step, tuple(state[:4]), None, length=depth - 1)
        state = KernelState(*carry, _WIDTH)
    return dense(state, 1)


def _as_inputs(X, name: str) -> np.ndarray:
    """X as a finite float64 2-D array with scikit-learn's checks; sparse input is densified."""
    X = check_array(X, accept_sparse=True, dtype=np.float64, input_name=name)
    return X.toarray() if scipy.sparse.issparse(X) else X


@functools.lru_cache(maxsize=64)
def _value_and_jacobian_fn(depth, activation, parameterization, kind, with_bias):
    """Jitted (K, dK/dlog(W_std, b_std)) of shape ((n, n), (n, n, 2)), by forward-mode autodiff."""

    def value_and_jacobian(log_params, x):
        def kernel(p):
            return getattr(_mlp_state(p, x, depth=depth, activation=activation,
                                      parameterization=parameterization,
                                      with_bias=with_bias), kind)

        value, push = jax.linearize(kernel, log_params)
        return value, jax.vmap(push, out_axes=-1)(jnp.eye(2, dtype=log_params.dtype))

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
        W_std: weight standard deviation (a hyperparameter).
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
        return Hyperparameter("W_std", "numeric", self.W_std_bounds)

    @property
    def hyperparameter_b_std(self) -> Hyperparameter:
        return Hyperparameter("b_std", "numeric", self.b_std_bounds if self.b_std else "fixed")

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
        """
        kind = self._check_kind()
        X = _as_inputs(X, "X")
        if Y is not None:
            Y = _as_inputs(Y, "Y")
            check_same_features(X, Y, "X", "Y")
        if eval_gradient and Y is not None:
            raise ValueError("Gradient can only be evaluated when Y is None.")
        network = self._network()
        if not eval_gradient:
            return getattr(PaddedNetworkKernel(network).kernel(X, Y), kind)
        n = X.shape[0]
        padded = np.concatenate([X, np.repeat(X[:1], bucket(n) - n, axis=0)])
        fn = _value_and_jacobian_fn(self.depth, get_activation(self.activation),
                                    self.parameterization, kind, bool(self.b_std))
        log_params = np.log(np.array([self.W_std, self.b_std or 1.0], dtype=np.float64))
        with precision("float64"):
            value, jacobian = (np.asarray(part) for part in fn(log_params, padded))
        value = np.array(value[:n, :n])
        jacobian = jacobian[:n, :n]
        free = [not self.hyperparameter_W_std.fixed, not self.hyperparameter_b_std.fixed]
        return value, np.ascontiguousarray(jacobian[:, :, free])

    def diag(self, X):
        """K(x, x) for each row of X in O(n)."""
        kind = self._check_kind()
        X = _as_inputs(X, "X")
        return getattr(PaddedNetworkKernel(self._network()).kernel(X, diagonal=True), kind)

    def is_stationary(self) -> bool:
        return False

    def __repr__(self) -> str:
        b_std = "None" if self.b_std is None else f"{self.b_std:.3g}"
        return (f"NeuralKernel(depth={self.depth}, activation={self.activation!r}, "
                f"W_std={self.W_std:.3g}, b_std={b_std}, "
                f"parameterization={self.parameterization!r}, kind={self.kind!r})")
