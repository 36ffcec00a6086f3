"""How the trainer, the sweeps and the laziness criterion see a model.

Every model becomes the scaled output g(w, x) = alpha (f(w, x) - center * f(w_0, x))
of an unscaled f: a :class:`~lazykit.TwoLayer` (whose own alpha is taken out of
f, so that compiled functions are shared across alphas), a
:class:`~lazykit.Network`, or any function ``apply_fn(params, x)`` with its
parameters. Centering (Chizat & Bach's alternative to symmetric
initialization) makes g(w_0) = 0 for models that cannot be initialized
symmetrically.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lazykit._validation import as_matrix, nonnegative_float
from lazykit.models import TwoLayer, has_kinks
from lazykit.network import Dense, Network
from lazykit.tangent import apply_function, check_params


@dataclasses.dataclass(frozen=True)
class Problem:
    """A model seen as g(w, x) = alpha (f(w, x) - center f(w_0, x)), with its initial parameters.

    ``key`` is hashable and identifies f: the TwoLayer with alpha = 1, the
    Network, or the user's function. It keys the caches of compiled functions.
    """

    key: Any
    params0: Any
    alpha: float
    center: bool

    @property
    def f(self):
        return apply_function(self.key)

    @property
    def two_layer(self) -> TwoLayer | None:
        return self.key if isinstance(self.key, TwoLayer) else None


def make_problem(model, input_dim: int, *, params=None, alpha=None, center=None, seed=0,
                 dtype=np.float64) -> Problem:
    """A :class:`Problem` from a TwoLayer, a Network, a function or an (apply_fn, params) pair.

    Must run inside the ``precision(dtype)`` context of the caller.
    """
    if isinstance(model, tuple):
        if len(model) != 2 or not callable(model[0]):
            raise TypeError(f"a model given as a tuple must be (apply_fn, params); got a tuple of "
                            f"{len(model)} items.")
        if params is not None:
            raise ValueError("params were given twice: in the (apply_fn, params) pair and as "
                             "params=. Pass them once.")
        model, params = model
    if isinstance(getattr(model, "__self__", None), Network) and \
            getattr(model, "__func__", None) is Network.apply:
        model = model.__self__  # net.apply: the same as the network (shares compiled code)
    if isinstance(model, TwoLayer):
        if alpha is not None and float(alpha) != model.alpha:
            raise ValueError(f"alpha is set by the TwoLayer model (alpha={model.alpha:g}); got "
                             f"alpha={alpha!r} as well. Use model.replace(alpha=...) instead.")
        key, alpha = model.replace(alpha=1.0), model.alpha
        center = False if center is None else center
        if params is None:
            params = model.init(seed, input_dim, dtype=dtype)
    elif isinstance(model, Network):
        key = model
        center = True if center is None else center
        if params is None:
            params = model.init(seed, input_dim, dtype=dtype)
    elif callable(model):
        key = model
        center = True if center is None else center
        if params is None:
            raise ValueError("params are required with a plain apply_fn: pass params=... or the "
                             "pair (apply_fn, params) as the model.")
    else:
        raise TypeError(f"model must be a lazykit.TwoLayer, a lazykit.Network, a function "
                        f"apply_fn(params, x) or a pair (apply_fn, params); got {model!r}.")
    alpha = nonnegative_float(1.0 if alpha is None else alpha, "alpha", strict=True)
    check_params(params)
    params = jax.tree_util.tree_map(lambda p: jnp.asarray(p, dtype), params)
    _check_input_dim(key, params, input_dim)
    return Problem(key, params, alpha, bool(center))


def as_targets(y, name: str, rows: int, x_name: str, *, dtype) -> np.ndarray:
    """Targets as a finite real (n, outputs) array with one row per input row, or raise
    naming ``name`` (complex, text and NaN targets included)."""
    try:
        array = np.asarray(y)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be an array of shape (n,) or (n, outputs); got an object "
                        f"of type {type(y).__name__}.") from err
    if array.ndim not in (1, 2):
        got = f"the scalar {y!r:.40}" if array.ndim == 0 else f"an array of shape {array.shape}"
        raise ValueError(f"{name} must have shape (n,) or (n, outputs); got {got}.")
    if array.shape[0] != rows:
        raise ValueError(f"{x_name} and {name} must have the same number of rows; got {x_name} "
                         f"with {rows} rows and {name} with {array.shape[0]}.")
    return as_matrix(array[:, None] if array.ndim == 1 else array, name, dtype=dtype)


def _check_input_dim(model, params, input_dim):
    """Params of a lazykit model must have been made for inputs of ``input_dim`` features."""
    if isinstance(model, TwoLayer):
        got = params["a"].shape[1] - 1 if isinstance(params, dict) and "a" in params else None
    elif isinstance(model, Network):
        got = params[0]["W"].shape[0] if params and isinstance(params[0], dict) else None
    else:
        return
    if got != input_dim:
        raise ValueError(f"params do not fit the inputs: they were made for {got} features but "
                         f"X has {input_dim}. Use model.init(seed, input_dim={input_dim}).")


def output_of(problem: Problem, params, x, out0):
    """g(w, x) for rows whose f(w_0, x) is ``out0``."""
    out = as_2d(problem.f(params, x))
    return problem.alpha * (out - out0) if problem.center else problem.alpha * out


def as_2d(out):
    return out[:, None] if out.ndim == 1 else out.reshape(out.shape[0], -1)


def kink_preactivations(problem: Problem, params, x) -> list:
    """Pre-activations of ReLU-like (kinked) activations, whose signs are the activation pattern.

    Empty for plain functions and smooth activations.
    """
    model = problem.key
    if isinstance(model, TwoLayer):
        return [model.preactivations(params, x)] if has_kinks(model.activation) else []
    if not isinstance(model, Network):
        return []
    found, h = [], x
    for layer, layer_params in zip(model.layers, params, strict=True):
        if not isinstance(layer, Dense) and has_kinks(layer):
            found.append(h)
        h = layer.apply(layer_params, h)
    return found


def param_norm(params):
    """Euclidean norm of all parameters together."""
    return jnp.sqrt(sum(jnp.sum(p * p) for p in jax.tree_util.tree_leaves(params)))
