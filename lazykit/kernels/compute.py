"""Kernel matrices of any size: validation, dtype policy, memory check, tiles, devices.

The result is assembled on the host from square tiles of ``tile_size`` rows
and columns; for ``x2=None`` only the tiles on and above the diagonal are
computed and mirrored. On a single CPU device the Gram matrix of each tile
comes from NumPy's BLAS (about twice as fast as XLA's CPU matmul) and XLA
evaluates the layer recursion. Otherwise tiles are computed in batches of one
tile per device, the batch axis sharded over a one-dimensional device mesh, so
the same code runs on several GPUs, or on CPU devices forced with
``XLA_FLAGS=--xla_force_host_platform_device_count=N``.
"""

from __future__ import annotations

import functools
import math
import os

import jax
import jax.numpy as jnp
import numpy as np

from lazykit._dtypes import precision, resolve_dtype
from lazykit._validation import as_matrix, check_same_features, positive_int
from lazykit.kernels.recursion import (
    Kernel,
    input_moments,
    input_separation,
    pack,
    plan_near_duplicates,
)

DEFAULT_TILE_SIZE = {"cpu": 1024}
DEFAULT_ACCELERATOR_TILE_SIZE = 8192
# Live tile-sized arrays during a deep recursion (inputs, packed state, temporaries).
_WORK_ARRAYS_PER_TILE = 12


class InsufficientMemoryError(MemoryError):
    """A computation was refused because its result or working set cannot fit in memory."""


def available_memory() -> int:
    """Bytes of memory available to this process now (MemAvailable on Linux)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def check_memory(required: int, what: str, hint: str) -> None:
    """Raise :class:`InsufficientMemoryError` if ``required`` bytes exceed 90% of what is free."""
    free = available_memory()
    if required > 0.9 * free:
        raise InsufficientMemoryError(
            f"{what} needs {required / 2**30:.2f} GiB but only {free / 2**30:.2f} GiB of memory "
            f"is available. {hint}")


def default_tile_size() -> int:
    """Tile edge used when ``tile_size`` is None: 1024 on CPU, 8192 on accelerators.

    On CPU, tiles of 1024 keep each XLA buffer small enough for the allocator to
    recycle it; fresh buffers cost a page fault per 4 KiB, which dominated larger tiles.
    """
    return DEFAULT_TILE_SIZE.get(jax.default_backend(), DEFAULT_ACCELERATOR_TILE_SIZE)


@functools.lru_cache(maxsize=128)
def _from_moments(network, input_dim: int, diagonal: bool):
    """Jitted kernels from raw moments, packed as nngp + i ntk (see recursion.pack)."""

    def fn(cross, sq1, sq2, separation=None):
        return pack(*network.kernel_from_moments(cross, sq1, sq2, input_dim, diagonal=diagonal,
                                                 separation=separation))

    return jax.jit(fn)


@functools.lru_cache(maxsize=128)
def _from_inputs_batched(network):
    """Jitted kernels of a batch of tile pairs (leading axis = one tile pair per device).

    ``same[k]`` marks a diagonal tile of a symmetric kernel, whose Gram diagonal
    is set to the squared norms so that identical inputs have correlation exactly 1.
    """

    def fn(x1, x2, same):
        gram, sq1, sq2 = input_moments(x1, x2)
        gram = jnp.where(same & jnp.eye(x1.shape[0], dtype=bool), sq1[:, None], gram)
        return pack(*network.kernel_from_moments(gram, sq1, sq2, x1.shape[1]))

    return jax.jit(jax.vmap(fn))


@functools.partial(jax.jit, static_argnames="transpose")
def _split(packed, transpose: bool = False):
    parts = (jnp.real(packed), jnp.imag(packed))
    if transpose:  # XLA transposes in cache-friendly blocks; NumPy's strided copy does not.
        parts = tuple(jnp.swapaxes(part, -1, -2) for part in parts)
    return parts, jnp.all(jnp.isfinite(parts[0]) & jnp.isfinite(parts[1]))


def _unpack(packed, dtype, transpose: bool = False):
    """NumPy (nngp, ntk) from a packed block; raise if any entry is not finite."""
    (nngp, ntk), finite = _split(packed, transpose)
    if not bool(finite):
        raise ValueError(
            f"the kernel overflows {np.dtype(dtype).name}: some entries are not finite although "
            "the inputs are, so the exact kernel exceeds the range of this dtype (large W_std or "
            "depth). Use dtype='float64', a smaller W_std, or rescale the inputs.")
    return np.asarray(nngp), np.asarray(ntk)


def compute_kernel(network, x1, x2=None, *, diagonal: bool = False, dtype=None,
                   tile_size: int | None = None) -> Kernel:
    """Validate inputs; ``network``'s NNGP and NTK as NumPy arrays (see Network.kernel)."""
    dtype = resolve_dtype(dtype)
    x1 = as_matrix(x1, "x1", dtype=dtype)
    if x2 is not None:
        x2 = as_matrix(x2, "x2", dtype=dtype)
        check_same_features(x1, x2)
    tile = default_tile_size() if tile_size is None else positive_int(tile_size, "tile_size")
    devices = jax.devices()
    # Near-duplicate inputs: the exact separation goes with diagonals and host tiles.
    track = plan_near_duplicates(
        network.layers, x1, x2, diagonal=diagonal, dtype=dtype, stacklevel=3,
        can_track=diagonal or (len(devices) == 1 and devices[0].platform == "cpu"))
    with precision(dtype):
        if diagonal:
            return _diagonal(network, x1, x2, dtype, tile, track)
        return _full(network, x1, x2, dtype, tile, track)


def _diagonal(network, x1, x2, dtype, tile, track=False) -> Kernel:
    if x2 is not None and x2.shape[0] != x1.shape[0]:
        raise ValueError(f"diagonal=True pairs x1[i] with x2[i], so x1 and x2 need the same "
                         f"number of rows; got {x1.shape[0]} and {x2.shape[0]}.")
    n, d = x1.shape
    check_memory(2 * n * dtype.itemsize, f"the kernel diagonal of {n} points", "")
    fn = _from_moments(network, d, True)
    chunk = tile * tile  # a diagonal chunk costs what one tile costs
    nngp, ntk = np.empty(n, dtype), np.empty(n, dtype)
    for start in range(0, n, chunk):
        rows = slice(start, min(start + chunk, n))
        a = x1[rows]
        b = a if x2 is None else x2[rows]
        sq1 = np.einsum("ij,ij->i", a, a)
        sq2 = sq1 if x2 is None else np.einsum("ij,ij->i", b, b)
        cross = sq1 if x2 is None else np.einsum("ij,ij->i", a, b)
        separation = input_separation(a, b, diagonal=True, if_needed=True) if track else None
        nngp[rows], ntk[rows] = _unpack(fn(cross, sq1, sq2, separation), dtype)
    return Kernel(nngp, ntk)


def _full(network, x1, x2, dtype, tile, track=False) -> Kernel:
    symmetric = x2 is None
    x2 = x1 if symmetric else x2
    n1, n2 = x1.shape[0], x2.shape[0]
    devices = jax.devices()
    on_host = len(devices) == 1 and devices[0].platform == "cpu"
    n_max = max(n1, n2)
    if len(devices) > 1 and n_max <= tile:
        # Split a one-tile problem so that every device gets work.
        tile = max(1, math.ceil(n_max / math.ceil(math.sqrt(len(devices)))))
    tile = math.ceil(n_max / math.ceil(n_max / tile))  # equal tiles: the least padding
    result_bytes = 2 * n1 * n2 * dtype.itemsize
    work_bytes = _WORK_ARRAYS_PER_TILE * tile * tile * dtype.itemsize * len(devices)
    check_memory(
        result_bytes + work_bytes,
        f"the NNGP and NTK of shape ({n1}, {n2}) in {dtype.name} ({result_bytes / 2**30:.2f} GiB "
        f"for the result, {work_bytes / 2**30:.2f} GiB for tiles of {tile} rows)",
        "Use diagonal=True if only the variances are needed, a smaller tile_size, "
        "dtype='float32', or a matrix-free solver that never forms the full kernel.")
    # On accelerators, mirroring tiles on the host costs more than computing them.
    mirror = symmetric and on_host
    starts1, starts2 = range(0, n1, tile), range(0, n2, tile)
    pairs = [(i, j) for i in starts1 for j in starts2 if not mirror or j >= i]
    if on_host:
        tiles = _host_tiles(network, x1, x2, symmetric, pairs, tile, dtype, track)
    else:
        tiles = _device_tiles(network, x1, x2, symmetric, pairs, tile, dtype, devices)
    if len(pairs) == 1:
        (_, block, _), = tiles
        return Kernel(*block)
    out = Kernel(np.empty((n1, n2), dtype), np.empty((n1, n2), dtype))
    for (i, j), block, mirrored in tiles:
        for target, part in zip(out, block, strict=True):
            target[i:i + part.shape[0], j:j + part.shape[1]] = part
        for target, part in zip(out, mirrored or (), strict=False):
            target[j:j + part.shape[0], i:i + part.shape[1]] = part
    return out


def _host_tiles(network, x1, x2, symmetric, pairs, tile, dtype, track):
    """Tiles with NumPy Gram matrices (single CPU device), one dispatch ahead.

    With ``track``, tiles with near-duplicate pairs carry their exact separation.
    Yields ((i, j), (nngp, ntk), transposed blocks for the mirror tile or None).
    """
    sq1 = np.einsum("ij,ij->i", x1, x1)
    sq2 = sq1 if symmetric else np.einsum("ij,ij->i", x2, x2)
    fn = _from_moments(network, x1.shape[1], False)

    def finish(pair, packed):
        mirror = symmetric and pair[0] != pair[1]
        return pair, _unpack(packed, dtype), _unpack(packed, dtype, True) if mirror else None

    pending = None
    for i, j in pairs:
        a, b = x1[i:i + tile], x2[j:j + tile]
        if symmetric and i == j:
            gram = a @ a.T  # runs as SYRK
            np.fill_diagonal(gram, sq1[i:i + tile])  # identical inputs: correlation exactly 1
        else:
            gram = a @ b.T
        separation = input_separation(a, b, gram, if_needed=True) if track else None
        result = fn(gram, sq1[i:i + tile], sq2[j:j + tile], separation)  # asynchronous
        if pending is not None:
            yield finish(*pending)
        pending = ((i, j), result)
    yield finish(*pending)


def _pad_rows(x: np.ndarray, tile: int) -> np.ndarray:
    pad = math.ceil(x.shape[0] / tile) * tile - x.shape[0]
    return x if pad == 0 else np.concatenate([x, np.repeat(x[:1], pad, axis=0)])


def _device_tiles(network, x1, x2, symmetric, pairs, tile, dtype, devices):
    """Tiles in batches of one per device, the batch axis sharded over the devices."""
    a = _pad_rows(x1, tile)
    b = a if symmetric else _pad_rows(x2, tile)
    n1, n2 = x1.shape[0], x2.shape[0]
    mesh = jax.sharding.Mesh(np.asarray(devices), ("tiles",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("tiles"))
    fn = _from_inputs_batched(network)

    def finish(batch, packed):
        nngp, ntk = _unpack(packed, dtype)
        return [((i, j), (nngp[k, :min(tile, n1 - i), :min(tile, n2 - j)],
                          ntk[k, :min(tile, n1 - i), :min(tile, n2 - j)]), None)
                for k, (i, j) in enumerate(batch)]

    pending = None
    for start in range(0, len(pairs), len(devices)):
        batch = pairs[start:start + len(devices)]
        padded = batch + [batch[-1]] * (len(devices) - len(batch))
        left = jax.device_put(np.stack([a[i:i + tile] for i, _ in padded]), sharding)
        right = jax.device_put(np.stack([b[j:j + tile] for _, j in padded]), sharding)
        same = jax.device_put(np.array([symmetric and i == j for i, j in padded]), sharding)
        result = fn(left, right, same)  # dispatched asynchronously
        if pending is not None:
            yield from finish(*pending)
        pending = (batch, result)
    yield from finish(*pending)
