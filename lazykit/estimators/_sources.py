"""Where an estimator's kernels come from: a network, a kernel source, an NT kernel_fn.

A *kernel source* is any object with
``kernel(x1, x2=None, *, diagonal=False, dtype=None)`` returning a
:class:`lazykit.Kernel` of NumPy arrays (``nngp``, ``ntk``). A lazykit
:class:`~lazykit.Network` is one; a bare callable is taken to be a
neural-tangents ``kernel_fn`` and wrapped in
:class:`~lazykit.NeuralTangentsKernel`.
"""

from __future__ import annotations

import dataclasses

from lazykit.interop.neural_tangents import NeuralTangentsKernel
from lazykit.kernels.recursion import Kernel
from lazykit.network import Network, mlp

PRECOMPUTED = "precomputed"


@dataclasses.dataclass(frozen=True)
class PaddedNetworkKernel:
    """A Network's exact kernels as an estimator's kernel source.

    ``Network.kernel`` pads its tiles to a few bucketed shapes itself
    (:func:`lazykit.kernels.tiling.bucket`), so data sets of many sizes
    (cross-validation, grid searches) compile a handful of shapes, and returns
    fresh, writeable C-ordered arrays that the exact solvers factorize where
    they lie. ``get`` ("nngp" or "ntk") computes one kernel only (the other
    field is then None).
    """

    network: Network

    def kernel_from_moments(self, *args, **kwargs):
        """The network's jit-compatible kernels from input moments (matrix-free products)."""
        return self.network.kernel_from_moments(*args, **kwargs)

    def kernel(self, x1, x2=None, *, diagonal: bool = False, dtype=None, get=None) -> Kernel:
        return self.network.kernel(x1, x2, diagonal=diagonal, dtype=dtype, get=get)


def is_kernel_source(obj) -> bool:
    return callable(getattr(obj, "kernel", None))


def resolve_source(network, *, depth, activation, W_std, b_std, parameterization):
    """The kernel source an estimator's parameters describe, or PRECOMPUTED.

    Raises:
        TypeError: if ``network`` is none of None, "precomputed", a Network, an
            object with a ``kernel`` method, or a callable.
    """
    if network is None:
        network = mlp(depth, activation=activation, W_std=W_std, b_std=b_std,
                      parameterization=parameterization)
    if isinstance(network, str) and network == PRECOMPUTED:
        return PRECOMPUTED
    if isinstance(network, Network):
        return PaddedNetworkKernel(network)
    if is_kernel_source(network):
        return network
    if callable(network) and not isinstance(network, type):
        return NeuralTangentsKernel(network)
    raise TypeError(
        "network must be None (use depth, activation, W_std, b_std, parameterization), "
        "'precomputed', a lazykit Network (lazykit.mlp / lazykit.serial), an object with a "
        "kernel(x1, x2=None, *, diagonal=False, dtype=None) method, or a neural-tangents "
        f"kernel_fn; got {network!r}.")
