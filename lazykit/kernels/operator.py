"""Products with kernel matrices that are never stored: Gram tiles recomputed on the fly.

A :class:`KernelOperator` multiplies the NTK (or NNGP) Gram matrix of its
inputs ``x`` by a block of vectors, K(x, x) V, or the kernel between new
inputs and ``x`` by one, K(x_new, x) V, in memory O((n + n_new) k + tile^2):
square tiles of the kernel are computed, multiplied and dropped inside one
jitted function, so a tile never leaves the device that computed it. The
symmetric product computes only the tiles on and above the diagonal and
applies each one twice (K_ij v_j and K_ij^T v_i). Tile pairs are processed in
batches of one pair per JAX device, the batch axis sharded over a
one-dimensional device mesh, as in :mod:`lazykit.kernels.compute`: all local
devices are used (several GPUs, or CPU devices forced with
``XLA_FLAGS=--xla_force_host_platform_device_count=N``), and the result does
not depend on their number.

Any kernel source (an object with ``kernel(x1, x2)``) works too, tile by tile
on the host; only sources with jit-compatible kernels from input moments
(``kernel_from_moments``: lazykit Networks) get the jitted, sharded path.

The same operator gives the dense pieces that the other solvers need, from
the source's own ``kernel``: the whole Gram matrix (:meth:`KernelOperator.gram`,
only the operator's kernel computed where the source takes ``get=``),
rectangular blocks and diagonals. :class:`PrecomputedOperator` is the operator
of a Gram matrix given by the user. Every solver of :mod:`lazykit.solvers`
sees its kernel through one of these two.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect

import jax
import jax.numpy as jnp
import numpy as np

from lazykit._dtypes import precision
from lazykit.kernels.compute import default_tile_size
from lazykit.kernels.recursion import Kernel, input_moments
from lazykit.kernels.resources import kernel_devices
from lazykit.kernels.tiling import dispatch_ahead, pad_rows

KINDS = ("ntk", "nngp")


def _shard_map(fn, mesh, spec):
    """jax.shard_map (jax >= 0.7) or its experimental predecessor."""
    if hasattr(jax, "shard_map"):
        return jax.shard_map(fn, mesh=mesh, in_specs=spec, out_specs=spec)
    from jax.experimental.shard_map import shard_map  # pragma: no cover - older jax

    return shard_map(fn, mesh=mesh, in_specs=spec, out_specs=spec)  # pragma: no cover


@functools.lru_cache(maxsize=64)
def _tile_products(network, kind: str, devices: tuple):
    """Jitted (K(a, b) v_b, K(a, b)^T v_a) for a batch of tile pairs, one pair per device.

    shard_map hands each device its own pair, so the matrix products stay plain
    matrix products (a vmapped batch of one runs as a batched dot, about twice
    as slow on CPU).
    """

    def one(a, b, v_b, v_a, same):
        a, b, v_b, v_a, same = a[0], b[0], v_b[0], v_a[0], same[0]
        gram, sq1, sq2 = input_moments(a, b)
        # A diagonal tile of a symmetric kernel: identical inputs have correlation exactly 1.
        gram = jnp.where(same & jnp.eye(a.shape[0], dtype=bool), sq1[:, None], gram)
        k = getattr(network.kernel_from_moments(gram, sq1, sq2, a.shape[1]), kind)
        return (k @ v_b)[None], (v_a.T @ k).T[None]

    mesh = jax.sharding.Mesh(np.asarray(devices), ("tiles",))
    return jax.jit(_shard_map(one, mesh, jax.sharding.PartitionSpec("tiles"))), mesh


def _padded_tile(x: np.ndarray, start: int, tile: int, dtype) -> np.ndarray:
    """x[start:start + tile] in ``dtype``, the last tile padded by :func:`tiling.pad_rows`."""
    return pad_rows(np.asarray(x[start:start + tile], dtype=dtype), tile)


def _padded_vectors(v: np.ndarray, start: int, tile: int, dtype) -> np.ndarray:
    """v[start:start + tile] padded with zero rows: padding rows contribute nothing."""
    block = np.zeros((tile, v.shape[1]), dtype)
    part = v[start:start + tile]
    block[:part.shape[0]] = part
    return block


@dataclasses.dataclass(frozen=True)
class KernelOperator:
    """The Gram matrix K(x, x) of one kernel of ``source``, applied without being stored.

    Args:
        source: a lazykit Network (jitted tiles sharded over the devices) or any
            object with ``kernel(x1, x2, dtype=...)`` returning a Kernel.
        x: inputs, shape (n, d); kept as given (tiles are converted one at a time).
        kind: "ntk" or "nngp".
        dtype: precision of the kernel tiles (NumPy dtype); products are float64.
        tile_size: rows and columns per tile (None: the kernels' default).

    Examples:
        >>> import numpy as np, lazykit
        >>> from lazykit.kernels.operator import KernelOperator
        >>> net = lazykit.mlp(2)
        >>> x = np.random.default_rng(0).normal(size=(50, 3))
        >>> op = KernelOperator(net, x, "ntk", np.dtype("float64"), tile_size=16)
        >>> v = np.ones((50, 1))
        >>> bool(np.allclose(op.matvec(v), net.kernel(x).ntk @ v))
        True
    """

    source: object
    x: np.ndarray
    kind: str
    dtype: np.dtype
    tile_size: int | None = None

    @property
    def n(self) -> int:
        return self.x.shape[0]

    @property
    def tile(self) -> int:
        """The tile edge: ``tile_size``, or for fewer rows the next power of two (at least 16)."""
        tile = default_tile_size() if self.tile_size is None else self.tile_size
        return min(tile, max(16, 1 << (self.n - 1).bit_length()))

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}; got {self.kind!r}.")

    @property
    def inputs(self) -> np.ndarray:
        """The training inputs the kernel is taken on (tiles of them are computed)."""
        return self.x

    def with_kind(self, kind: str) -> KernelOperator:
        """The operator of the source's other kernel ("ntk" or "nngp") on the same inputs."""
        return dataclasses.replace(self, kind=kind)

    def gram(self) -> np.ndarray:
        """K(x, x) as an owned, writeable, C-ordered float64 (n, n) array, for in-place work.

        Only this operator's kernel is computed where the source's ``kernel``
        takes ``get=`` (lazykit Networks); the result is used as it comes
        when it is already such an array (no copy).
        """
        return _owned(self.block(self.x))

    def block(self, x1: np.ndarray, x2: np.ndarray | None = None) -> np.ndarray:
        """K(x1, x2) (``x2=None``: K(x1, x1), symmetric) as float64, from the source's kernel."""
        return np.asarray(_one_kernel(self.source, self.kind, x1, x2, dtype=self.dtype),
                          dtype=np.float64)

    def kernels(self, x1: np.ndarray, x2: np.ndarray | None = None, *,
                diagonal: bool = False) -> Kernel:
        """Both kernels (NNGP and NTK) of the source between x1 and x2 (or their diagonal)."""
        return self.source.kernel(x1, x2, diagonal=diagonal, dtype=self.dtype)

    def cross(self, x_new: np.ndarray) -> np.ndarray:
        """K(x_new, x), float64 (n_new, n): the kernel between new and training inputs."""
        return self.block(x_new, self.x)

    @property
    def layers(self) -> int:
        """Layers of the source's network (3 when unknown): the cost model of a kernel entry."""
        network = getattr(self.source, "network", self.source)
        return len(getattr(network, "layers", ())) or 3

    def diagonal(self, x1: np.ndarray) -> np.ndarray:
        """K(x1[i], x1[i]) for each row, float64 (n1,)."""
        return np.asarray(_one_kernel(self.source, self.kind, x1, None, dtype=self.dtype,
                                      diagonal=True), dtype=np.float64)

    def matvec(self, v: np.ndarray) -> np.ndarray:
        """K(x, x) v for v of shape (n, k), float64."""
        starts = range(0, self.n, self.tile)
        pairs = [(i, j) for i in starts for j in starts if j >= i]
        return self._products(self.x, pairs, v, symmetric=True)

    def cross_matvec(self, x_new: np.ndarray, v: np.ndarray) -> np.ndarray:
        """K(x_new, x) v for v of shape (n, k): shape (n_new, k), float64."""
        rows, cols = range(0, x_new.shape[0], self.tile), range(0, self.n, self.tile)
        return self._products(x_new, [(i, j) for i in rows for j in cols], v, symmetric=False)

    def _products(self, left: np.ndarray, pairs, v: np.ndarray, *, symmetric: bool):
        """Sum over pairs of K_ij v_j into rows i (and K_ij^T v_i into rows j if symmetric)."""
        v = np.asarray(v, dtype=np.float64)
        out = np.zeros((left.shape[0], v.shape[1]))
        with precision(self.dtype):
            for (i, j), forward, backward in self._tile_results(left, pairs, v, symmetric):
                out[i:i + forward.shape[0]] += forward[:out.shape[0] - i]
                if symmetric and i != j:
                    out[j:j + backward.shape[0]] += backward[:out.shape[0] - j]
        return out

    def _tile_results(self, left, pairs, v, symmetric):
        """Yield ((i, j), K_ij v_j, K_ij^T v_i) for each tile pair, one device batch ahead."""
        # A source with jit-compatible kernels from input moments (a lazykit Network) runs
        # on the devices; any other kernel source is called tile by tile on the host.
        if not callable(getattr(self.source, "kernel_from_moments", None)):
            yield from self._host_tile_results(left, pairs, v, symmetric)
            return
        tile, dtype = self.tile, self.dtype
        devices = kernel_devices()  # local: other processes compute their own
        fn, mesh = _tile_products(self.source, self.kind, devices)
        sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("tiles"))
        zeros = np.zeros((tile, v.shape[1]), dtype)

        def submit(batch):
            padded = batch + [batch[-1]] * (len(devices) - len(batch))

            def stacked(make):
                return jax.device_put(np.stack([make(i, j) for i, j in padded]), sharding)

            return fn(
                stacked(lambda i, j: _padded_tile(left, i, tile, dtype)),
                stacked(lambda i, j: _padded_tile(self.x, j, tile, dtype)),
                stacked(lambda i, j: _padded_vectors(v, j, tile, dtype)),
                stacked(lambda i, j: _padded_vectors(v, i, tile, dtype) if symmetric and i != j
                        else zeros),
                stacked(lambda i, j: np.asarray(symmetric and i == j)))

        batches = [pairs[s:s + len(devices)] for s in range(0, len(pairs), len(devices))]
        yield from dispatch_ahead(batches, submit, _finish)

    def _host_tile_results(self, left, pairs, v, symmetric):
        tile = self.tile
        for i, j in pairs:
            a, b = left[i:i + tile], self.x[j:j + tile]
            k = np.asarray(getattr(self.source.kernel(a, b, dtype=self.dtype), self.kind),
                           dtype=np.float64)
            backward = k.T @ v[i:i + tile] if symmetric and i != j else None
            yield (i, j), k @ v[j:j + tile], backward


def _finish(batch, result):
    forward, backward = (np.asarray(part, dtype=np.float64) for part in result)
    for k, pair in enumerate(batch):
        yield pair, forward[k], backward[k]


def _takes_get(source) -> bool:
    """Whether ``source.kernel`` takes ``get=`` (compute only the NNGP or only the NTK)."""
    try:
        return "get" in inspect.signature(source.kernel).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return False


def _one_kernel(source, kind: str, x1, x2, *, dtype, diagonal: bool = False):
    """One kernel of ``source``: alone where its ``kernel`` takes ``get=``, else from both."""
    if _takes_get(source):
        return getattr(source.kernel(x1, x2, diagonal=diagonal, dtype=dtype, get=kind), kind)
    return getattr(source.kernel(x1, x2, diagonal=diagonal, dtype=dtype), kind)


def _owned(a) -> np.ndarray:
    """``a`` itself when it is an owned, writeable, C-ordered float64 array, else such a copy."""
    if (isinstance(a, np.ndarray) and a.dtype == np.float64 and a.flags.c_contiguous
            and a.flags.writeable and a.flags.owndata):
        return a
    return np.array(a, dtype=np.float64, order="C", copy=True)


@dataclasses.dataclass(frozen=True)
class PrecomputedOperator:
    """The operator of a Gram matrix given by the user (``network="precomputed"``).

    Only the kernel between training points, and between new and training
    points, is known: ``cross`` takes that kernel as its argument. Solvers that
    need kernel values at other inputs (Nystrom centres, the matrix-free
    solvers' tiles) refuse it with a clear error.

    Examples:
        >>> import numpy as np
        >>> from lazykit.kernels.operator import PrecomputedOperator
        >>> op = PrecomputedOperator(np.array([[2.0, 1.0], [1.0, 2.0]]))
        >>> op.matvec(np.ones((2, 1))).ravel().tolist(), op.n
        ([3.0, 3.0], 2)
    """

    matrix: np.ndarray
    kind: str = "ntk"

    @property
    def n(self) -> int:
        return self.matrix.shape[0]

    @property
    def inputs(self) -> None:
        """None: the training inputs are not known, only their Gram matrix."""
        return None

    def gram(self) -> np.ndarray:
        """A writeable C-ordered float64 copy of the matrix (the user's array is not touched)."""
        return np.array(self.matrix, dtype=np.float64, order="C", copy=True)

    layers = 0

    def matvec(self, v: np.ndarray) -> np.ndarray:
        return self.matrix @ np.asarray(v, dtype=np.float64)

    def cross(self, x_new: np.ndarray) -> np.ndarray:
        """The kernel between new and training points, which is what is given as ``x_new``."""
        if np.ndim(x_new) != 2 or x_new.shape[1] != self.n:
            raise ValueError(f"with network='precomputed', X must be the kernel between the test "
                             f"and the {self.n} training points, shape (n_test, {self.n}); got "
                             f"shape {np.shape(x_new)}.")
        return np.asarray(x_new, dtype=np.float64)

    def kernels(self, *args, **kwargs):
        raise ValueError(
            "network='precomputed' gives only the kernel between test and training points, not "
            "among test points, so it cannot return a standard deviation or covariance. Pass a "
            "network instead.")
