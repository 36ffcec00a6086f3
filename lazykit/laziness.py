"""The lazy-training criterion kappa, from matrix-free products only.

kappa = ||g(w_0) - y*|| ||D^2 g(w_0)|| / ||Dg(w_0)||^2 for the scaled model g = alpha f
(Chizat & Bach 2019). Norms are Euclidean over all points and outputs; kappa is
unchanged if the data norm is rescaled, since each factor then scales alike.

* ||Dg|| is the largest singular value of the Jacobian, by power iteration on
  v -> J J^T v (one VJP and one JVP per step).
* ||D^2 g|| = sup over unit u, u' of ||D^2 g[u, u']|| = sup over unit v of the
  spectral norm of the Hessian of <v, g>. It is found by alternating
  maximization: power iteration on Hessian-vector products of <v, g> gives a
  singular pair (u, u'), then v = D^2 g[u, u'] / ||D^2 g[u, u']|| (the
  higher-order power method; the estimate increases at every outer step and is
  a lower bound of the norm). No Hessian is ever formed.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lazykit._dtypes import precision, resolve_dtype
from lazykit._problem import as_2d, make_problem
from lazykit._validation import as_matrix, positive_int
from lazykit.tangent import apply_function


class Laziness(NamedTuple):
    """kappa and its three factors (all floats)."""

    kappa: float
    residual_norm: float
    hessian_norm: float
    jacobian_norm: float


def laziness(model, params, X, y, *, alpha=None, center=None, max_iter: int = 200,
             tol: float = 1e-7, seed: int = 0, dtype=None) -> Laziness:
    """kappa = ||alpha f(w_0) - y|| ||D^2 (alpha f)(w_0)|| / ||D (alpha f)(w_0)||^2.

    Small kappa (<< 1) predicts lazy training: the linearization stays accurate
    while the residual is fitted. For a TwoLayer with symmetric initialization
    kappa is exactly proportional to 1 / alpha.

    Args:
        model: a :class:`lazykit.TwoLayer`, a :class:`lazykit.Network` or a function
            ``apply_fn(params, x)``.
        params: parameters w_0 at which the criterion is evaluated.
        X, y: inputs (n, d) and targets y* (n,) or (n, o).
        alpha, center: as in :func:`lazykit.train` (a TwoLayer has its own alpha).
        max_iter: power iterations per eigenvalue estimate (and outer steps / 10).
        tol: relative tolerance at which the power iterations stop.
        seed: seed of the random starting vectors.
        dtype: "float64" (default) or "float32".

    Returns:
        :class:`Laziness` (kappa, residual_norm, hessian_norm, jacobian_norm).

    Examples:
        >>> import numpy as np, lazykit
        >>> rng = np.random.default_rng(0)
        >>> X, y = rng.normal(size=(10, 2)), rng.normal(size=10)
        >>> model = lazykit.TwoLayer(64, alpha=1.0)
        >>> params = model.init(0, input_dim=2)
        >>> k1 = lazykit.laziness(model, params, X, y).kappa
        >>> k100 = lazykit.laziness(model.replace(alpha=100.0), params, X, y).kappa
        >>> round(k1 / k100, 6)
        100.0
    """
    dtype = resolve_dtype(dtype)
    X = as_matrix(X, "X", dtype=dtype)
    y = np.asarray(y, dtype)
    y = y[:, None] if y.ndim == 1 else y
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"X and y must have the same number of rows; got X with {X.shape[0]} "
                         f"rows and y with {y.shape[0]}.")
    max_iter = positive_int(max_iter, "max_iter")
    with precision(dtype):
        problem = make_problem(model, X.shape[1], params=params, alpha=alpha, center=center,
                               dtype=dtype)
        w0, x = problem.params0, jnp.asarray(X)
        alpha = jnp.asarray(problem.alpha, dtype)
        jjt, hvp, second = _operators(problem.key)
        out = alpha * _outputs(problem.key)(w0, x)
        if out.shape[1] != y.shape[1]:
            raise ValueError(f"y has {y.shape[1]} column(s) but the model has {out.shape[1]} "
                             "output(s).")
        residual = (jnp.zeros_like(out) if problem.center else out) - jnp.asarray(y)
        rng = np.random.default_rng(seed)
        start = _random_unit(rng, out)
        jacobian_norm = np.sqrt(_power(lambda v: jjt(w0, x, alpha, v), start, max_iter, tol)[0])
        hessian_norm = _hessian_norm(lambda v, u: hvp(w0, x, alpha, v, u),
                                     lambda u, u2: second(w0, x, alpha, u, u2),
                                     residual, rng, w0, max_iter, tol)
        residual_norm = float(_norm(residual))
    kappa = residual_norm * hessian_norm / jacobian_norm**2 if jacobian_norm > 0 else np.inf
    return Laziness(float(kappa), residual_norm, float(hessian_norm), float(jacobian_norm))


@functools.lru_cache(maxsize=64)
def _operators(key):
    """Jitted J J^T v, Hessian-vector products of <v, g> and D^2 g[u, u'] (g = alpha f)."""
    f = apply_function(key)

    def g(w, x, alpha):
        return alpha * as_2d(f(w, x))

    @jax.jit
    def jjt(w0, x, alpha, v):
        _, vjp = jax.vjp(lambda w: g(w, x, alpha), w0)
        return jax.jvp(lambda w: g(w, x, alpha), (w0,), vjp(v))[1]

    @jax.jit
    def hvp(w0, x, alpha, v, u):
        return jax.jvp(jax.grad(lambda w: jnp.vdot(v, g(w, x, alpha))), (w0,), (u,))[1]

    @jax.jit
    def second(w0, x, alpha, u, u2):
        return jax.jvp(lambda w: jax.jvp(lambda q: g(q, x, alpha), (w,), (u,))[1],
                       (w0,), (u2,))[1]

    return jjt, hvp, second


@functools.lru_cache(maxsize=64)
def _outputs(key):
    f = apply_function(key)
    return jax.jit(lambda w, x: as_2d(f(w, x)))


@jax.jit
def _norm(tree):
    return jnp.sqrt(sum(jnp.sum(leaf * leaf) for leaf in jax.tree_util.tree_leaves(tree)))


@jax.jit
def _scale(tree, factor):
    return jax.tree_util.tree_map(lambda leaf: leaf * factor, tree)


def _random_unit(rng, like):
    """A random pytree shaped like ``like`` with unit norm."""
    tree = jax.tree_util.tree_map(
        lambda leaf: jnp.asarray(rng.standard_normal(leaf.shape), leaf.dtype), like)
    return _scale(tree, 1.0 / _norm(tree))


def _power(op, v, max_iter, tol):
    """Largest |eigenvalue| of the symmetric operator ``op``, with the last two iterates
    (u, u') such that op(u) ~ value u'."""
    value, previous = 0.0, v
    for _ in range(max_iter):
        w = op(v)
        norm = float(_norm(w))
        if norm == 0.0:
            return 0.0, v, v
        previous, v = v, _scale(w, 1.0 / norm)
        converged = abs(norm - value) <= tol * norm
        value = norm
        if converged:
            break
    return value, previous, v


def _hessian_norm(hvp, second, residual, rng, params, max_iter, tol):
    norm = float(_norm(residual))
    v = _scale(residual, 1.0 / norm) if norm > 0 else _random_unit(rng, residual)
    u = _random_unit(rng, params)
    best = 0.0
    for _ in range(max(1, max_iter // 10)):
        value, u, u2 = _power(lambda w, v=v: hvp(v, w), u, max_iter, tol)
        if value == 0.0:
            break
        z = second(u, u2)
        estimate = float(_norm(z))
        if estimate == 0.0:
            break
        v = _scale(z, 1.0 / estimate)
        converged = estimate - best <= tol * estimate
        best = max(best, estimate)
        if converged:
            break
    return best
