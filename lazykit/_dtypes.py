"""Dtype policy: float64 results by default, without touching the global JAX config.

JAX computes in float32 unless ``jax_enable_x64`` is set. lazykit wraps its own
computations in a *local* x64 context instead, so a user's global configuration
is never changed, and returns NumPy arrays of the requested dtype.
"""

from __future__ import annotations

import contextlib

import jax
import numpy as np

_ALLOWED = {"float32": np.float32, "float64": np.float64}


def resolve_dtype(dtype, argument: str = "dtype") -> np.dtype:
    """Return the NumPy dtype for a user's ``dtype`` argument (None means float64)."""
    if dtype is None:
        return np.dtype(np.float64)
    try:
        resolved = np.dtype(dtype)
    except TypeError as err:
        raise TypeError(
            f"{argument} must be 'float32', 'float64' or None (float64); got {dtype!r}."
        ) from err
    if resolved.name not in _ALLOWED:
        raise ValueError(
            f"{argument} must be 'float32', 'float64' or None (float64); got {resolved.name!r}."
        )
    return resolved


def precision(dtype) -> contextlib.AbstractContextManager:
    """Context manager enabling (float64) or disabling (float32) JAX's x64 mode locally.

    Works on jax 0.5.x (``jax.experimental.enable_x64``) and on current jax
    (``jax.enable_x64`` as a context manager).
    """
    want_x64 = np.dtype(dtype) == np.float64
    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(want_x64)
    from jax.experimental import disable_x64, enable_x64

    return enable_x64() if want_x64 else disable_x64()
