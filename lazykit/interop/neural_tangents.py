"""Two-way bridge to neural-tangents (optional: ``pip install lazykit[nt]``).

neural-tangents 0.6.5 runs only with jax <= 0.5.3; lazykit supports that jax
too, so both can share an environment (see the Makefile's oracle environment).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from lazykit._dtypes import precision, resolve_dtype
from lazykit._validation import as_matrix, check_same_features
from lazykit.kernels.recursion import Kernel


def _stax():
    try:
        from neural_tangents import stax
    except ImportError as err:  # pragma: no cover - exercised only without the extra
        raise ImportError("neural-tangents is not installed; install lazykit[nt] in an "
                          "environment with jax<=0.5.3 (see the README).") from err
    return stax


def to_neural_tangents(network):
    """The neural-tangents ``(init_fn, apply_fn, kernel_fn)`` triple of a lazykit network.

    Each layer converts itself (``layer.to_neural_tangents(stax)``); a layer without a
    neural-tangents equivalent raises NotImplementedError.

    Examples:
        >>> import lazykit
        >>> from lazykit.interop.neural_tangents import to_neural_tangents
        >>> net = lazykit.mlp(depth=2, width=64, activation="erf")
        >>> init_fn, apply_fn, kernel_fn = to_neural_tangents(net)  # doctest: +SKIP
    """
    stax = _stax()
    return stax.serial(*(layer.to_neural_tangents(stax) for layer in network.layers))


@dataclasses.dataclass(frozen=True)
class NeuralTangentsKernel:
    """A neural-tangents ``kernel_fn`` used where lazykit expects a kernel source.

    Any object with ``kernel(x1, x2=None, *, diagonal=False, dtype=None)``
    returning a :class:`lazykit.Kernel` of NumPy arrays can feed lazykit's
    estimators; this wraps a neural-tangents kernel function (CNNs, attention,
    ...) that way.

    Examples:
        >>> from lazykit.interop.neural_tangents import NeuralTangentsKernel
        >>> from neural_tangents import stax  # doctest: +SKIP
        >>> _, _, kernel_fn = stax.serial(
        ...     stax.Dense(1), stax.Relu(), stax.Dense(1))  # doctest: +SKIP
        >>> NeuralTangentsKernel(kernel_fn).kernel([[1.0, 0.0]]).ntk.shape  # doctest: +SKIP
        (1, 1)
    """

    kernel_fn: object

    def kernel(self, x1, x2=None, *, diagonal: bool = False, dtype=None) -> Kernel:
        dtype = resolve_dtype(dtype)
        x1 = as_matrix(x1, "x1", dtype=dtype)
        if x2 is not None:
            x2 = as_matrix(x2, "x2", dtype=dtype)
            check_same_features(x1, x2)
        with precision(dtype):
            if diagonal:
                pairs = x1 if x2 is None else x2
                values = [self.kernel_fn(x1[i:i + 1], pairs[i:i + 1], ("nngp", "ntk"))
                          for i in range(x1.shape[0])]
                return Kernel(*(np.array([np.asarray(v[k]).item() for v in values], dtype)
                                for k in range(2)))
            nngp, ntk = self.kernel_fn(x1, x2, ("nngp", "ntk"))
        return Kernel(np.asarray(nngp, dtype), np.asarray(ntk, dtype))
