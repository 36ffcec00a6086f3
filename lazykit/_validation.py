"""Input checks shared by the public functions: clear errors that name the argument."""

from __future__ import annotations

import math
import numbers
import warnings

import jax
import numpy as np


def as_matrix(x, name: str, *, dtype=None) -> np.ndarray:
    """Return ``x`` as a finite, non-empty 2-D floating NumPy array, or raise.

    Float64 input stays float64 unless ``dtype`` asks otherwise; integer and
    boolean input is promoted to ``dtype`` (float64 by default).
    """
    if hasattr(x, "__jax_array__") or type(x).__module__.startswith("jax"):
        x = np.asarray(x)
    try:
        array = np.asarray(x)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be an array of shape (n_samples, n_features); "
                        f"got an object of type {type(x).__name__}.") from err
    if array.dtype == object or (not np.issubdtype(array.dtype, np.number) and array.dtype != bool):
        raise TypeError(f"{name} must hold real numbers; got dtype {array.dtype}.")
    if np.iscomplexobj(array):
        raise TypeError(f"{name} must hold real numbers; got complex dtype {array.dtype}.")
    if array.ndim != 2:
        hint = " Reshape with x.reshape(-1, 1) for a single feature." if array.ndim == 1 else ""
        raise ValueError(f"{name} must be 2-D with shape (n_samples, n_features); "
                         f"got an array of shape {array.shape}.{hint}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} must have at least one sample and one feature; "
                         f"got shape {array.shape}.")
    target = np.dtype(dtype) if dtype is not None else (
        array.dtype if array.dtype in (np.float32, np.float64) else np.dtype(np.float64))
    array = np.asarray(array, dtype=target)
    if not np.all(np.isfinite(array)):
        bad = np.argwhere(~np.isfinite(array))[0]
        raise ValueError(f"{name} must be finite; found {array[tuple(bad)]} at index "
                         f"{tuple(int(i) for i in bad)}. Remove or impute NaN/inf values first.")
    return array


def check_same_features(x1: np.ndarray, x2: np.ndarray, name1="x1", name2="x2") -> None:
    """Raise if two input matrices do not have the same number of features."""
    if x1.shape[1] != x2.shape[1]:
        raise ValueError(f"{name1} and {name2} must have the same number of features; "
                         f"got {x1.shape[1]} and {x2.shape[1]}.")


def positive_int(value, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an int >= ``minimum`` or raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value}.")
    return int(value)


def finite_float(value, name: str, *, minimum: float | None = None,
                 strict: bool = False) -> float:
    """Return ``value`` as a finite float (>= ``minimum``; > if ``strict``) or raise naming it.

    Examples:
        >>> from lazykit._validation import finite_float
        >>> finite_float(2, "gamma", minimum=0)
        2.0
        >>> finite_float(float("nan"), "b")
        Traceback (most recent call last):
        ...
        ValueError: b must be a finite number; got nan.
    """
    bound = "" if minimum is None else f" {'>' if strict else '>='} {minimum:g}"
    if isinstance(value, jax.core.Tracer):  # a traced hyperparameter (jax.grad, jit, vmap)
        return value
    if isinstance(value, (jax.Array, np.ndarray)) and value.shape == ():
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number{bound}; got {value!r}.")
    value = float(value)
    below = minimum is not None and (value < minimum or (strict and value == minimum))
    if not math.isfinite(value) or below:
        raise ValueError(f"{name} must be a finite number{bound}; got {value}.")
    return value


def nonnegative_float(value, name: str, *, strict: bool = False) -> float:
    """Return ``value`` as a finite float >= 0 (> 0 if ``strict``) or raise naming ``name``."""
    return finite_float(value, name, minimum=0, strict=strict)


MAX_SEED = 2**32 - 1  # NumPy's seed range (numpy.random.seed)


def check_seed(seed, name: str = "seed") -> int:
    """``seed`` as an int in NumPy's seed range 0 .. 2**32 - 1, or a TypeError/ValueError.

    Examples:
        >>> from lazykit._validation import check_seed
        >>> check_seed(7)
        7
        >>> check_seed(-1)
        Traceback (most recent call last):
        ...
        ValueError: seed must be an integer from 0 to 4294967295 (NumPy's seed range); got -1.
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{name} must be an integer from 0 to {MAX_SEED} (NumPy's seed range); "
                        f"got {seed!r} of type {type(seed).__name__}.")
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"{name} must be an integer from 0 to {MAX_SEED} (NumPy's seed range); "
                         f"got {seed}.")
    return int(seed)


class _Deprecated:
    """The default of a deprecated keyword: tells "not given" apart from any value."""

    def __repr__(self) -> str:
        return "<deprecated>"


# Default of every deprecated keyword of the public API (tests/test_conventions.py allows an
# old spelling in a signature only with this default).
DEPRECATED = _Deprecated()


def deprecated_keyword(new_value, old_value, new: str, old: str, *, default=None,
                       stacklevel: int = 3):
    """The value of keyword ``new`` when a caller may still use its old name ``old``.

    ``old_value`` is :data:`DEPRECATED` unless the caller passed ``old``; then a
    DeprecationWarning points at the caller of the public function (``stacklevel`` 3 when
    that function calls this one directly) and the old value is used. Both at once (the
    new one not at its ``default``) is a TypeError.

    Examples:
        >>> import warnings
        >>> from lazykit._validation import DEPRECATED, deprecated_keyword
        >>> deprecated_keyword(0.5, DEPRECATED, "learning_rate", "lr")
        0.5
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     value = deprecated_keyword(None, 2.0, "learning_rate", "lr", stacklevel=2)
        >>> value, caught[0].category.__name__
        (2.0, 'DeprecationWarning')
    """
    if old_value is DEPRECATED:
        return new_value
    if new_value is not default:
        raise TypeError(f"give {new}= only ({old}= is its deprecated name); got both "
                        f"{new}={new_value!r} and {old}={old_value!r}.")
    warnings.warn(f"{old}= is deprecated and will be removed in the next release; use "
                  f"{new}= instead.", DeprecationWarning, stacklevel=stacklevel)
    return old_value


def deprecation(message: str, *, stacklevel: int = 3) -> None:
    """Warn that an old spelling is deprecated (one release), pointing at the caller of the
    public function that calls this (``stacklevel`` 3)."""
    warnings.warn(f"{message} (deprecated; it will be removed in the next release).",
                  DeprecationWarning, stacklevel=stacklevel)


def init_dtype(dtype) -> np.dtype:
    """The dtype of parameters that an ``init`` hands back: ``dtype`` ("float32" or
    "float64") if given, else JAX's default float dtype (float32 unless x64 is enabled),
    the dtype the caller's own JAX code computes in (docs/architecture.md, Conventions).

    Examples:
        >>> from lazykit._validation import init_dtype
        >>> str(init_dtype("float64"))
        'float64'
    """
    if dtype is None:
        return np.dtype(jax.dtypes.canonicalize_dtype(np.float64))
    from lazykit._dtypes import resolve_dtype

    try:
        return resolve_dtype(dtype)
    except (TypeError, ValueError) as err:
        raise type(err)(f"dtype must be 'float32', 'float64' or None (JAX's default float "
                        f"dtype); got {dtype!r}.") from err
