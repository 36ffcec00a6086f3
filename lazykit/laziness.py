"""The lazy-training criterion kappa, from matrix-free products only.

kappa = ||g(w_0) - y*|| ||D^2 g(w_0)|| / ||Dg(w_0)||^2 for the scaled model g = alpha f
(Chizat & Bach 2019). Norms are Euclidean over all points and outputs; kappa is
unchanged if the data norm is rescaled, since each factor then scales alike.

* ||Dg|| is the largest singular value of the Jacobian, by power iteration on
  v -> J J^T v (one VJP and one JVP per step).
* ||D^2 g|| = sup over unit u, u' of ||D^2 g[u, u']|| = sup over unit v of the
  spectral norm of the Hessian of `<v, g>`. It is found by alternating
  maximization: power iteration on Hessian-vector products of `<v, g>` gives a
  singular pair (u, u'), then v = D^2 g[u, u'] / ||D^2 g[u, u']|| (the
  higher-order power method; the estimate increases at every outer step and is
  a lower bound of the norm). The search starts from the residual direction and
  from a few random directions and keeps the best. No Hessian is ever formed.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lazykit._dtypes import precision, resolve_dtype
from lazykit._problem import as_2d, as_inputs, as_targets, model_spec
from lazykit._validation import check_seed, finite_float, positive_int
from lazykit.tangent import apply_function


class Laziness(NamedTuple):
    """kappa and its three factors (all floats)."""

    kappa: float
    residual_norm: float
    hessian_norm: float
    jacobian_norm: float


def laziness(model, params, X, y, *, alpha=None, center=None, max_iter: int = 200,
             tol: float = 1e-7, restarts: int = 4, seed: int = 0, dtype=None) -> Laziness:
    """kappa = ||alpha f(w_0) - y|| ||D^2 (alpha f)(w_0)|| / ||D (alpha f)(w_0)||^2.

    Small kappa (<< 1) predicts lazy training: the linearization stays accurate
    while the residual is fitted. For a TwoLayer with symmetric initialization
    kappa is exactly proportional to 1 / alpha.

    Args:
        model: a :class:`lazykit.TwoLayer`, a :class:`lazykit.Network` or a function
            ``apply_fn(params, x)``.
        params: parameters w_0 at which the criterion is evaluated.
        X: inputs (n, d), or any (n, ...) that a function model accepts.
        y: targets y*, shape (n,) or (n, o).
        alpha: output scale for a Network or a function (a TwoLayer has its own).
        center: as in :func:`lazykit.train`.
        max_iter: power iterations per eigenvalue estimate (and outer steps / 10).
        tol: relative tolerance at which the power iterations stop.
        restarts: random restarts of the Hessian-norm search (besides the one from the
            residual direction); the largest estimate is kept.
        seed: seed of the random starting vectors.
        dtype: "float32" or "float64"; None means float64 (docs/architecture.md,
            Conventions); ``params`` are converted to it.

    Returns:
        :class:`Laziness` (kappa, residual_norm, hessian_norm, jacobian_norm).

    Raises:
        ValueError: on NaN or infinite X, y or params, or mismatched shapes.
        TypeError: on complex or non-numeric X or y, or params with non-array leaves.

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
    spec = model_spec(model, params=params, alpha=alpha, center=center)
    X = as_inputs(X, "X", dtype=dtype, matrix=spec.is_lazykit)
    y = as_targets(y, "y", X.shape[0], "X", dtype=dtype)
    max_iter = positive_int(max_iter, "max_iter")
    tol = finite_float(tol, "tol", minimum=0, strict=True)
    seed = check_seed(seed)
    with precision(dtype):
        problem = spec.problem(spec.initial_params(0, X.shape[1:], dtype))
        w0, x = problem.params0, jnp.asarray(X)
        alpha = jnp.asarray(problem.alpha, dtype)
        ops = _operators(problem.key)
        out = alpha * ops.outputs(w0, x)
        if out.shape[1] != y.shape[1]:
            raise ValueError(f"y has {y.shape[1]} column(s) but the model has {out.shape[1]} "
                             "output(s).")
        residual = (jnp.zeros_like(out) if problem.center else out) - jnp.asarray(y)
        rng = np.random.default_rng(seed)
        limits = (jnp.asarray(max_iter), jnp.asarray(tol, dtype))
        jacobian_norm = np.sqrt(float(ops.jacobian_power(w0, x, alpha, _random_unit(rng, out),
                                                         *limits)))
        residual_norm = float(_norm(residual))
        starts = [_scale(residual, 1.0 / residual_norm)] if residual_norm > 0 else []
        restarts = positive_int(restarts, "restarts", minimum=0)
        starts += [_random_unit(rng, residual) for _ in range(restarts + (not starts))]
        hessian_norm = max(float(ops.hessian_search(w0, x, alpha, v, _random_unit(rng, w0),
                                                    *limits)) for v in starts)
    kappa = residual_norm * hessian_norm / jacobian_norm**2 if jacobian_norm > 0 else np.inf
    return Laziness(float(kappa), residual_norm, float(hessian_norm), float(jacobian_norm))


class _Operators(NamedTuple):
    outputs: object
    jacobian_power: object
    hessian_search: object


@functools.lru_cache(maxsize=64)
def _operators(key) -> _Operators:
    """Jitted matrix-free searches for one model (cached: shared by every alpha and seed)."""
    f = apply_function(key)

    def g(w, x, alpha):
        return alpha * as_2d(f(w, x))

    def jacobian_power(w0, x, alpha, v, max_iter, tol):
        """||Dg||^2: power iteration on v -> J J^T v (one VJP, one JVP per step)."""
        _, vjp = jax.vjp(lambda w: g(w, x, alpha), w0)
        return _power(lambda v: jax.jvp(lambda w: g(w, x, alpha), (w0,), vjp(v))[1],
                      v, max_iter, tol)[0]

    def hessian_search(w0, x, alpha, v, u, max_iter, tol):
        """Alternating maximization of <v, D^2 g[u, u']> over unit v, u, u'."""
        def hvp(v, u):
            return jax.jvp(jax.grad(lambda w: jnp.vdot(v, g(w, x, alpha))), (w0,), (u,))[1]

        def second(u, u2):
            return jax.jvp(lambda w: jax.jvp(lambda q: g(q, x, alpha), (w,), (u,))[1],
                           (w0,), (u2,))[1]

        def outer(state):
            v, u, best, _, k = state
            value, u, u2 = _power(lambda w: hvp(v, w), u, max_iter, tol)
            z = second(u, u2)
            estimate = _norm(z)
            v = _scale(z, 1.0 / jnp.where(estimate > 0, estimate, 1.0))
            converged = (estimate - best <= tol * estimate) | (value == 0)
            return v, u, jnp.maximum(best, estimate), converged, k + 1

        def keep_going(state):
            return ~state[3] & (state[4] < jnp.maximum(max_iter // 10, 1))

        zero = jnp.zeros((), tol.dtype)
        state = jax.lax.while_loop(keep_going, outer, (v, u, zero, jnp.asarray(False), 0))
        return state[2]

    return _Operators(jax.jit(lambda w, x: as_2d(f(w, x))), jax.jit(jacobian_power),
                      jax.jit(hessian_search))


def _norm(tree):
    return jnp.sqrt(sum(jnp.sum(leaf * leaf) for leaf in jax.tree_util.tree_leaves(tree)))


def _scale(tree, factor):
    return jax.tree_util.tree_map(lambda leaf: leaf * factor, tree)


def _random_unit(rng, like):
    """A random pytree shaped like ``like`` with unit norm."""
    tree = jax.tree_util.tree_map(
        lambda leaf: np.asarray(rng.standard_normal(leaf.shape), leaf.dtype), like)
    norm = np.sqrt(sum(np.sum(leaf * leaf) for leaf in jax.tree_util.tree_leaves(tree)))
    return jax.tree_util.tree_map(lambda leaf: jnp.asarray(leaf / norm), tree)


def _power(op, v, max_iter, tol):
    """Largest |eigenvalue| of the symmetric operator ``op`` by power iteration (traceable),
    with the last two iterates (u, u') such that op(u) ~ value u'."""
    def step(state):
        _, v, value, _, k = state
        w = op(v)
        norm = _norm(w)
        safe = jnp.where(norm > 0, norm, 1.0)
        converged = (jnp.abs(norm - value) <= tol * norm) | (norm == 0)
        return v, _scale(w, 1.0 / safe), norm, converged, k + 1

    def keep_going(state):
        return ~state[3] & (state[4] < max_iter)

    zero = jnp.zeros((), tol.dtype)
    previous, v, value, _, _ = jax.lax.while_loop(keep_going, step,
                                                  (v, v, zero, jnp.asarray(False), 0))
    return value, previous, v
