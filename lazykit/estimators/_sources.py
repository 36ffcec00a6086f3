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
import inspect
import math

import numpy as np

from lazykit.interop.neural_tangents import NeuralTangentsKernel
from lazykit.kernels.compute import default_tile_size
from lazykit.kernels.recursion import Kernel
from lazykit.network import Network, mlp

PRECOMPUTED = "precomputed"
# Row counts are rounded up to these buckets before lazykit's jitted kernels run,
# so that fitting on many differently sized data sets (cross-validation, grid
# searches) compiles a handful of shapes instead of one per size.
_MIN_BUCKET = 16


def bucket(n: int) -> int:
    """Smallest padded row count for n rows: a power of two up to one tile, then whole tiles."""
    tile = default_tile_size()
    if n <= tile:
        return max(_MIN_BUCKET, 1 << (n - 1).bit_length())
    return math.ceil(n / tile) * tile


def _writeable_block(part, n1: int, n2: int):
    """part[:n1, :n2] as an owned, writeable, C-contiguous array (copied only if needed)."""
    if part is None:  # a kernel that was not asked for
        return None
    if part.shape == (n1, n2) and part.flags.c_contiguous and part.flags.writeable:
        return part
    return np.array(part[:n1, :n2], order="C", copy=True)


def pad_rows(x: np.ndarray) -> np.ndarray:
    """x with rows repeating its first one appended, up to ``bucket(len(x))`` rows."""
    extra = bucket(x.shape[0]) - x.shape[0]
    return x if extra == 0 else np.concatenate([x, np.repeat(x[:1], extra, axis=0)])


@dataclasses.dataclass(frozen=True)
class PaddedNetworkKernel:
    """A Network's exact kernels, computed on inputs padded to a few bucketed sizes.

    The padding rows repeat the first row and are cut from the result; every
    kernel entry depends only on its own pair of inputs, so the values are
    those of ``network.kernel`` on the unpadded inputs. A symmetric kernel of
    more than one tile of rows is computed unpadded: it is the training Gram
    matrix that the exact solvers factorize where it lies, and padding would
    cost a second copy of it. ``get`` ("nngp" or "ntk") computes one kernel
    only where the network's ``kernel`` takes it (the other field is then None).
    """

    network: Network

    def kernel_from_moments(self, *args, **kwargs):
        """The network's jit-compatible kernels from input moments (matrix-free products)."""
        return self.network.kernel_from_moments(*args, **kwargs)

    def kernel(self, x1, x2=None, *, diagonal: bool = False, dtype=None, get=None) -> Kernel:
        n1 = x1.shape[0]
        if diagonal:
            k = self._kernel(pad_rows(x1), None if x2 is None else pad_rows(x2),
                             diagonal=True, dtype=dtype, get=get)
            return Kernel(*(None if part is None else part[:n1].copy() for part in k))
        if x2 is None:
            if n1 > default_tile_size():
                k = self._kernel(x1, dtype=dtype, get=get)
            else:
                k = self._kernel(pad_rows(x1), dtype=dtype, get=get)
            return Kernel(*(_writeable_block(part, n1, n1) for part in k))
        n2 = x2.shape[0]
        k = self._kernel(pad_rows(x1), pad_rows(x2), dtype=dtype, get=get)
        return Kernel(*(_writeable_block(part, n1, n2) for part in k))

    def _kernel(self, x1, x2=None, *, get=None, **options) -> Kernel:
        if get is not None and _takes_get(self.network):
            return self.network.kernel(x1, x2, get=get, **options)
        return self.network.kernel(x1, x2, **options)


def _takes_get(network) -> bool:
    return "get" in inspect.signature(network.kernel).parameters


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
