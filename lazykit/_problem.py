"""How the trainer, the sweeps and the laziness criterion see a model.

Every model becomes the scaled output g(w, x) = alpha (f(w, x) - center * f(w_0, x))
of an unscaled f: a :class:`~lazykit.TwoLayer` (whose own alpha is taken out of
f, so that compiled functions are shared across alphas), a
:class:`~lazykit.Network`, or any function ``apply_fn(params, x)`` with its
parameters, given as a pair ``(apply_fn, params)`` or a triple
``(apply_fn, params, init_fn)`` whose ``init_fn(seed)`` draws the parameters of a
seed. Centering (Chizat & Bach's alternative to symmetric initialization) makes
g(w_0) = 0 for models that cannot be initialized symmetrically.

Dtypes: parameters that lazykit draws (a TwoLayer, a Network) are float64 unless
``dtype=`` asks otherwise; parameters the user gives (or that an ``init_fn`` draws)
keep their floating dtype unless ``dtype=`` asks otherwise.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lazykit._dtypes import precision, resolve_dtype
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

    @property
    def is_lazykit(self) -> bool:
        """A TwoLayer or a Network: inputs must be (n, d) matrices."""
        return isinstance(self.key, (TwoLayer, Network))


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A model as the user gave it: the unscaled f (``key``), alpha, centering, and how its
    initial parameters are found (``params`` if given, else ``init_fn(seed)`` or the lazykit
    model's own ``init``)."""

    key: Any
    alpha: float
    center: bool
    params: Any = None
    init_fn: Any = None

    @property
    def is_lazykit(self) -> bool:
        """A TwoLayer or a Network: inputs must be (n, d) matrices."""
        return isinstance(self.key, (TwoLayer, Network))

    @property
    def varies_with_seed(self) -> bool:
        """Whether different seeds start from different parameters."""
        return self.params is None

    def given_params(self, seed: int):
        """The parameters given by the user or drawn by ``init_fn(seed)`` (None for a lazykit
        model that draws its own), checked."""
        if self.params is not None:
            check_params(self.params)
            return self.params
        if self.init_fn is None:
            return None
        params = self.init_fn(seed)
        check_params(params, f"init_fn({seed})")
        return params

    def initial_params(self, seed: int, input_shape, dtype, given=...):
        """w_0 for ``seed`` as arrays of ``dtype`` (``input_shape``: the shape of one input);
        ``given``: the result of :meth:`given_params` if already known."""
        params = self.given_params(seed) if given is ... else given
        with precision(dtype):
            if params is None:
                params = self.key.init(seed, _input_dim(input_shape), dtype=dtype)
            params = jax.tree_util.tree_map(lambda p: jnp.asarray(p, dtype), params)
        _check_input_dim(self.key, params, input_shape)
        return params

    def problem(self, params0, alpha=None) -> Problem:
        return Problem(self.key, params0, self.alpha if alpha is None else alpha, self.center)


def model_spec(model, *, params=None, alpha=None, center=None,
               require_params: bool = True) -> ModelSpec:
    """A :class:`ModelSpec` from a TwoLayer, a Network, a function, a pair (apply_fn, params)
    or a triple (apply_fn, params, init_fn); raises naming what is wrong (a plain function
    without parameters too, unless ``require_params`` is False)."""
    init_fn = None
    if isinstance(model, tuple):
        if len(model) not in (2, 3) or not callable(model[0]):
            raise TypeError(f"a model given as a tuple must be (apply_fn, params) or (apply_fn, "
                            f"params, init_fn); got a tuple of {len(model)} items.")
        if len(model) == 3:
            init_fn = model[2]
            if init_fn is not None and not callable(init_fn):
                raise TypeError(f"init_fn, the third item of (apply_fn, params, init_fn), must be "
                                f"a function init_fn(seed) -> params; got {init_fn!r:.60}.")
        if params is not None and model[1] is not None:
            raise ValueError("params were given twice: in the (apply_fn, params) pair and as "
                             "params=. Pass them once.")
        model, params = model[0], model[1] if params is None else params
    if isinstance(getattr(model, "__self__", None), Network) and \
            getattr(model, "__func__", None) is Network.apply:
        model = model.__self__  # net.apply: the same as the network (shares compiled code)
    if isinstance(model, TwoLayer):
        if alpha is not None and float(alpha) != model.alpha:
            raise ValueError(f"alpha is set by the TwoLayer model (alpha={model.alpha:g}); got "
                             f"alpha={alpha!r} as well. Use model.replace(alpha=...) instead.")
        key, alpha = model.replace(alpha=1.0), model.alpha
        center = False if center is None else center
    elif isinstance(model, Network):
        key = model
        center = True if center is None else center
    elif callable(model):
        key = model
        center = True if center is None else center
        if require_params and params is None and init_fn is None:
            raise ValueError("params are required with a plain apply_fn: pass params=... or the "
                             "pair (apply_fn, params) as the model (or the triple (apply_fn, "
                             "None, init_fn) with init_fn(seed) -> params).")
    else:
        raise TypeError(f"model must be a lazykit.TwoLayer, a lazykit.Network, a function "
                        f"apply_fn(params, x), a pair (apply_fn, params) or a triple "
                        f"(apply_fn, params, init_fn); got {model!r}.")
    alpha = nonnegative_float(1.0 if alpha is None else alpha, "alpha", strict=True)
    return ModelSpec(key, alpha, bool(center), params, init_fn)


def run_dtype(dtype, params) -> np.dtype:
    """The dtype of a run: ``dtype`` if given; else float64 for parameters lazykit draws
    (``params`` None), else the parameters' own floating dtype (float64 if any leaf is)."""
    if dtype is not None or params is None:
        return resolve_dtype(dtype)
    kinds = {np.dtype(getattr(leaf, "dtype", np.asarray(leaf).dtype))
             for leaf in jax.tree_util.tree_leaves(params)}
    floats = [k for k in kinds if np.issubdtype(k, np.floating)]
    if floats and all(k.itemsize <= 4 for k in floats):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def make_problem(model, input_shape, *, params=None, alpha=None, center=None, seed=0,
                 dtype=np.float64) -> Problem:
    """A :class:`Problem` from any model (see :func:`model_spec`); ``input_shape`` is the
    number of features or the shape of one input."""
    spec = model_spec(model, params=params, alpha=alpha, center=center)
    return spec.problem(spec.initial_params(seed, input_shape, np.dtype(dtype)))


def as_inputs(x, name: str, *, dtype=None, matrix: bool = True) -> np.ndarray:
    """Inputs as a finite floating array: (n, d) for a lazykit model (``matrix``), else any
    (n, ...) with at least one example; raises naming ``name`` (the checks of
    :func:`lazykit._validation.as_matrix`, on rows)."""
    if matrix:
        return as_matrix(x, name, dtype=dtype)
    if hasattr(x, "__jax_array__") or type(x).__module__.startswith("jax"):
        x = np.asarray(x)
    try:
        array = np.asarray(x)
    except (TypeError, ValueError):
        array = None  # as_matrix raises the error that names the argument
    if array is None or array.ndim in (0, 2):
        return as_matrix(x, name, dtype=dtype)
    rows = as_matrix(array.reshape(array.shape[0], math.prod(array.shape[1:])), name,
                     dtype=dtype)
    return rows.reshape(array.shape)


def check_same_shape(x1: np.ndarray, x2: np.ndarray, name1: str, name2: str) -> None:
    """Raise if two inputs differ in their number of features (shape of one example)."""
    if x1.shape[1:] == x2.shape[1:]:
        return
    if x1.ndim == x2.ndim == 2:
        raise ValueError(f"{name1} and {name2} must have the same number of features; "
                         f"got {x1.shape[1]} and {x2.shape[1]}.")
    raise ValueError(f"{name1} and {name2} must have the same shape per example; got "
                     f"{x1.shape[1:]} and {x2.shape[1:]}.")


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


def _input_dim(input_shape) -> int:
    return int(input_shape) if np.ndim(input_shape) == 0 else int(input_shape[0])


def _check_input_dim(model, params, input_shape):
    """Params of a lazykit model must have been made for inputs of ``input_dim`` features."""
    if isinstance(model, TwoLayer):
        got = params["a"].shape[1] - 1 if isinstance(params, dict) and "a" in params else None
    elif isinstance(model, Network):
        got = params[0]["W"].shape[0] if params and isinstance(params[0], dict) else None
    else:
        return
    input_dim = _input_dim(input_shape)
    if got != input_dim:
        raise ValueError(f"params do not fit the inputs: they were made for {got} features but "
                         f"X has {input_dim}. Use model.init(seed, input_dim={input_dim}).")


def output_of(problem: Problem, params, x, out0):
    """g(w, x) for rows whose f(w_0, x) is ``out0``."""
    out = as_2d(problem.f(params, x))
    return problem.alpha * (out - out0) if problem.center else problem.alpha * out


def as_2d(out):
    return out[:, None] if out.ndim == 1 else out.reshape(out.shape[0], -1)


def kink_preactivations(model, params, x) -> list:
    """Pre-activations of ReLU-like (kinked) activations, whose signs are the activation pattern.

    ``model`` is the unscaled f of a :class:`Problem` (its ``key``). Empty for plain
    functions and smooth activations.
    """
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
