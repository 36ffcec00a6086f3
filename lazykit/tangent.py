"""The tangent (linearized) model and Taylor expansions of any order around params0.

T f(w, x) = f(w_0, x) + Df(w_0, x)[w - w_0]: one forward-mode product (jvp),
which costs a small multiple of a forward pass and never forms a Jacobian.
The Taylor expansion of degree k adds (1/j!) D^j f(w_0, x)[w - w_0, ..., w - w_0]
for j <= k, each term a jvp of the previous one (nested forward mode).
"""

from __future__ import annotations

import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np

from lazykit._validation import positive_int


def apply_function(model):
    """``model.apply`` for a lazykit model, the function itself for a callable."""
    from lazykit.models import TwoLayer
    from lazykit.network import Network

    if isinstance(model, (TwoLayer, Network)):
        return model.apply
    if not callable(model):
        raise TypeError(f"expected a function apply_fn(params, x) or a lazykit model "
                        f"(TwoLayer, Network); got {model!r}.")
    return model


def check_params(params, name: str = "params") -> None:
    """Raise a TypeError unless every leaf of ``params`` is a real array or number, and a
    ValueError if a concrete leaf holds NaN or inf.

    Frameworks whose modules carry functions among their pytree leaves (an Equinox
    module holds its activation functions and other static fields) must be split
    into arrays and the rest first; the error says how.

    Examples:
        >>> import numpy as np
        >>> from lazykit.tangent import check_params
        >>> check_params({"w": np.ones(3), "b": 0.5})
        >>> check_params({"w": np.ones(3), "act": np.tanh})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        TypeError: params must be a pytree of arrays; the leaf params['act'] is a ufunc ...
    """
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    for path, leaf in flat:
        where = f"{name}{jax.tree_util.keystr(path)}"
        dtype = _leaf_dtype(leaf)
        if dtype is None:
            raise TypeError(
                f"{name} must be a pytree of arrays; the leaf {where} is a "
                f"{type(leaf).__name__} ({leaf!r:.60}). A module that holds functions or other "
                "non-array fields (an Equinox module, say) must be split first: with Equinox, "
                "params, static = eqx.partition(module, eqx.is_array) (or eqx.filter(module, "
                "eqx.is_array) for the arrays alone), then pass params and "
                "apply_fn = lambda p, x: eqx.combine(p, static)(x).")
        if not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)
                or jnp.issubdtype(dtype, jnp.bool_)):
            raise TypeError(f"{name} must hold real numbers; the leaf {where} has dtype {dtype}.")
        if not isinstance(leaf, jax.core.Tracer) and not _all_finite(leaf):
            raise ValueError(f"{name} must be finite; the leaf {where} holds NaN or inf values.")


def _leaf_dtype(leaf):
    """The dtype of an array or number leaf; None for anything else (functions, strings...)."""
    if isinstance(leaf, (jax.Array, np.ndarray, np.generic)):
        return leaf.dtype
    if isinstance(leaf, numbers.Number):
        return np.asarray(leaf).dtype
    return None


def _all_finite(leaf) -> bool:
    # NumPy for host values: jnp would round float64 to float32 (1e300 -> inf) without x64.
    if isinstance(leaf, jax.Array):
        return bool(jnp.all(jnp.isfinite(leaf)))
    return bool(np.all(np.isfinite(leaf)))


def tree_sub(a, b):
    """a - b leaf by leaf."""
    return jax.tree_util.tree_map(lambda u, v: u - v, a, b)


def linearize(apply_fn, params0):
    """The tangent model of ``apply_fn`` around ``params0``.

    Args:
        apply_fn: ``apply_fn(params, x)``, or a :class:`lazykit.TwoLayer` /
            :class:`lazykit.Network`.
        params0: the expansion point (a pytree).

    Returns:
        ``f_lin(params, x) = f(params0, x) + Df(params0, x)[params - params0]``,
        computed with one ``jax.jvp``; jit-, grad- and vmap-compatible.

    Examples:
        >>> import numpy as np, lazykit
        >>> model = lazykit.TwoLayer(32, alpha=4.0, symmetric=False)
        >>> params0 = model.init(0, input_dim=2)
        >>> f_lin = lazykit.linearize(model.apply, params0)
        >>> x = np.ones((3, 2), np.float32)
        >>> bool(np.allclose(f_lin(params0, x), model.apply(params0, x)))
        True
    """
    apply_fn = apply_function(apply_fn)
    check_params(params0, "params0")

    def f_lin(params, x):
        out0, dout = jax.jvp(lambda p: apply_fn(p, x), (params0,), (tree_sub(params, params0),))
        return out0 + dout

    return f_lin


def directional_derivatives(fn, params0, direction, degree: int) -> tuple:
    """(fn(p0), D fn(p0)[v], ..., D^degree fn(p0)[v, ..., v]) by nested jvps."""

    def level(k):
        if k == 0:
            return lambda p: (fn(p),)
        previous = level(k - 1)

        def derivatives(p):
            primal, tangent = jax.jvp(previous, (p,), (direction,))
            return (*primal, tangent[-1])

        return derivatives

    return level(degree)(params0)


def taylor_expand(apply_fn, params0, degree: int):
    """Taylor expansion of ``apply_fn`` in the parameters, of order ``degree``, around ``params0``.

    Degree 1 is :func:`linearize`. Each further order nests one more jvp, so the
    cost grows about twofold per order; orders up to 4 or 5 are practical.

    Args:
        apply_fn: ``apply_fn(params, x)``, or a lazykit model.
        params0: the expansion point (a pytree).
        degree: order of the expansion (>= 0; 0 is the constant f(params0, x)).

    Returns:
        ``f_taylor(params, x) = sum_{j <= degree} D^j f(params0, x)[dp, ..., dp] / j!``
        with dp = params - params0.

    Examples:
        >>> import jax.numpy as jnp, lazykit
        >>> apply_fn = lambda p, x: jnp.exp(p * x)
        >>> f2 = lazykit.taylor_expand(apply_fn, 0.0, degree=2)
        >>> round(float(f2(0.1, jnp.ones(()))), 6)  # 1 + 0.1 + 0.1**2 / 2
        1.105
    """
    apply_fn = apply_function(apply_fn)
    check_params(params0, "params0")
    degree = positive_int(degree, "degree", minimum=0)

    def f_taylor(params, x):
        terms = directional_derivatives(lambda p: apply_fn(p, x), params0,
                                        tree_sub(params, params0), degree)
        total = terms[0]
        for j, term in enumerate(terms[1:], start=1):
            total = total + term / math.factorial(j)
        return total

    return f_taylor
