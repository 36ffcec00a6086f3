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
from lazykit.kernels.processes import gather_tiles, process_share
from lazykit.kernels.recursion import (
    Kernel,
    input_moments,
    input_separation,
    pack,
    plan_near_duplicates,
)
from lazykit.kernels.resources import check_device_memory, current_budget, kernel_devices
from lazykit.kernels.tiling import bucket, dispatch_ahead, pad_rows

DEFAULT_TILE_SIZE = {"cpu": 1024}
DEFAULT_ACCELERATOR_TILE_SIZE = 8192
# Live tile-sized arrays during a deep recursion (inputs, packed state, temporaries).
_WORK_ARRAYS_PER_TILE = 12


class InsufficientMemoryError(MemoryError):
    """A computation was refused because its result or working set cannot fit in memory."""


def available_memory() -> int:
    """Bytes of memory the checks may plan with: the budget in force, else what is available now.

    The budget is set by :func:`lazykit.kernels.resources.memory_budget` (a
    context manager), :func:`~lazykit.kernels.resources.set_memory_budget` or an
    estimator's ``memory_budget``; without one, MemAvailable on Linux.
    """
    budget = current_budget()
    if budget is not None:
        return budget
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
        budget = " (the memory budget in force)" if current_budget() is not None else ""
        raise InsufficientMemoryError(
            f"{what} needs {required / 2**30:.2f} GiB but only {free / 2**30:.2f} GiB of memory "
            f"is available{budget}. {hint}")


def default_tile_size() -> int:
    """Tile edge used when ``tile_size`` is None: 1024 on CPU, 8192 on accelerators.

    On CPU, tiles of 1024 keep each XLA buffer small enough for the allocator to
    recycle it; fresh buffers cost a page fault per 4 KiB, which dominated larger tiles.
    """
    return DEFAULT_TILE_SIZE.get(jax.default_backend(), DEFAULT_ACCELERATOR_TILE_SIZE)


KINDS = ("nngp", "ntk")


def resolve_get(get) -> tuple[str, ...]:
    """The kernels asked for by ``get``: None (both), "nngp", "ntk" or a tuple of them.

    Examples:
        >>> resolve_get(None), resolve_get("ntk")
        (('nngp', 'ntk'), ('ntk',))
    """
    if get is None:
        return KINDS
    names = (get,) if isinstance(get, str) else get
    try:
        names = tuple(names)
    except TypeError:
        names = (get,)
    if not names or any(not isinstance(n, str) or n not in KINDS for n in names):
        raise ValueError(f"get must be None (both kernels), 'nngp', 'ntk' or a tuple of them; "
                         f"got {get!r}.")
    return tuple(kind for kind in KINDS if kind in names)


def _select(kernel: Kernel, get: tuple[str, ...]):
    """The kernels in ``get``: one real array, or both packed as nngp + i ntk (recursion.pack).

    Only what is returned is computed: XLA drops the recursion of a kernel not asked for.
    """
    return pack(*kernel) if len(get) == 2 else getattr(kernel, get[0])


@functools.partial(jax.jit, static_argnames=("input_dim", "diagonal", "get"))
def _from_moments(network, cross, sq1, sq2, separation=None, *, input_dim: int,
                  diagonal: bool, get: tuple[str, ...]):
    """Kernels from raw moments; ``network`` is an argument (a pytree), so a new W_std or
    activation parameter reuses the program compiled for the network's structure."""
    return _select(network.kernel_from_moments(cross, sq1, sq2, input_dim, diagonal=diagonal,
                                               separation=separation), get)


def _one_tile_pair(network, x1, x2, same, get):
    """Kernels of one tile pair; ``same`` marks a diagonal tile of a symmetric kernel, whose
    Gram diagonal is set to the squared norms so that identical inputs have correlation 1."""
    gram, sq1, sq2 = input_moments(x1, x2)
    gram = jnp.where(same & jnp.eye(x1.shape[0], dtype=bool), sq1[:, None], gram)
    return _select(network.kernel_from_moments(gram, sq1, sq2, x1.shape[1]), get)


@functools.partial(jax.jit, static_argnames="get")
def _from_inputs_batched(network, x1, x2, same, *, get: tuple[str, ...]):
    """Kernels of a batch of tile pairs, the leading axis one tile pair per device."""
    return jax.vmap(lambda a, b, c: _one_tile_pair(network, a, b, c, get))(x1, x2, same)


@functools.partial(jax.jit, static_argnames="transpose")
def _split(block, transpose: bool = False):
    parts = (jnp.real(block), jnp.imag(block)) if jnp.iscomplexobj(block) else (block,)
    if transpose:  # XLA transposes in cache-friendly blocks; NumPy's strided copy does not.
        parts = tuple(jnp.swapaxes(part, -1, -2) for part in parts)
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(part)) for part in parts]))
    return parts, finite


def _unpack(block, dtype, get, transpose: bool = False) -> Kernel:
    """NumPy kernels (None where not in ``get``) from a block; raise if any entry is not finite."""
    parts, finite = _split(block, transpose)
    if not bool(finite):
        raise ValueError(
            f"the kernel overflows {np.dtype(dtype).name}: some entries are not finite although "
            "the inputs are, so the exact kernel exceeds the range of this dtype (large W_std or "
            "depth). Use dtype='float64', a smaller W_std, or rescale the inputs.")
    found = dict(zip(get, parts, strict=True))
    return Kernel(*(None if kind not in found else np.asarray(found[kind]) for kind in KINDS))


def compute_kernel(network, x1, x2=None, *, diagonal: bool = False, dtype=None,
                   tile_size: int | None = None, get=None) -> Kernel:
    """Validate inputs; ``network``'s NNGP and NTK as NumPy arrays (see Network.kernel)."""
    get = resolve_get(get)
    dtype = resolve_dtype(dtype)
    x1 = as_matrix(x1, "x1", dtype=dtype)
    if x2 is not None:
        x2 = as_matrix(x2, "x2", dtype=dtype)
        check_same_features(x1, x2)
    tile = default_tile_size() if tile_size is None else positive_int(tile_size, "tile_size")
    devices = kernel_devices()
    # Near-duplicate inputs: the exact separation goes with diagonals and host tiles.
    track = plan_near_duplicates(
        network.layers, x1, x2, diagonal=diagonal, dtype=dtype, stacklevel=3,
        can_track=diagonal or (len(devices) == 1 and devices[0].platform == "cpu"))
    with precision(dtype):
        if diagonal:
            return _diagonal(network, x1, x2, dtype, tile, get, track)
        return _full(network, x1, x2, dtype, tile, get, track)


def _empty(shape, dtype, get) -> Kernel:
    return Kernel(*(np.empty(shape, dtype) if kind in get else None for kind in KINDS))


def _diagonal(network, x1, x2, dtype, tile, get, track=False) -> Kernel:
    if x2 is not None and x2.shape[0] != x1.shape[0]:
        raise ValueError(f"diagonal=True pairs x1[i] with x2[i], so x1 and x2 need the same "
                         f"number of rows; got {x1.shape[0]} and {x2.shape[0]}.")
    n, d = x1.shape
    check_memory(len(get) * n * dtype.itemsize, f"the kernel diagonal of {n} points", "")
    chunk = tile * tile  # a diagonal chunk costs what one tile costs
    out = _empty(n, dtype, get)
    for start in range(0, n, chunk):
        rows = slice(start, min(start + chunk, n))
        a = x1[rows]
        b = a if x2 is None else x2[rows]
        sq1 = np.einsum("ij,ij->i", a, a)
        sq2 = sq1 if x2 is None else np.einsum("ij,ij->i", b, b)
        cross = sq1 if x2 is None else np.einsum("ij,ij->i", a, b)
        separation = input_separation(a, b, diagonal=True, if_needed=True) if track else None
        moments = _pad_moments(cross, sq1, sq2, separation, (bucket(len(a)),))
        block = _from_moments(network, *moments, input_dim=d, diagonal=True, get=get)
        for target, part in zip(out, _crop(_unpack(block, dtype, get), len(a)), strict=True):
            if target is not None:
                target[rows] = part
    return out


def _full(network, x1, x2, dtype, tile, get, track=False) -> Kernel:
    symmetric = x2 is None
    x2 = x1 if symmetric else x2
    n1, n2 = x1.shape[0], x2.shape[0]
    devices = kernel_devices()  # local: other processes' devices compute their own share
    processes = jax.process_count()
    on_host = len(devices) == 1 and devices[0].platform == "cpu"
    n_max = max(n1, n2)
    if len(devices) > 1 and n_max <= tile:
        # Split a one-tile problem so that every device gets work.
        tile = max(1, math.ceil(n_max / math.ceil(math.sqrt(len(devices)))))
    tile = math.ceil(n_max / math.ceil(n_max / tile))  # equal tiles: the least padding
    if not on_host:  # device tiles are padded inputs: a bucketed edge, few compiled shapes
        tile = bucket(tile)
    # Several processes: the gathered tiles sit next to the result.
    result_bytes = len(get) * n1 * n2 * dtype.itemsize * (2 if processes > 1 else 1)
    work_bytes = _WORK_ARRAYS_PER_TILE * tile * tile * dtype.itemsize * len(devices)
    check_memory(
        result_bytes + work_bytes,
        f"the {' and '.join(k.upper() for k in get)} of shape ({n1}, {n2}) in {dtype.name} "
        f"({result_bytes / 2**30:.2f} GiB "
        f"for the result, {work_bytes / 2**30:.2f} GiB for tiles of {tile} rows)",
        "Use diagonal=True if only the variances are needed, a smaller tile_size, "
        "dtype='float32', or a matrix-free solver that never forms the full kernel.")
    if not on_host:
        check_device_memory(_WORK_ARRAYS_PER_TILE * tile * tile * dtype.itemsize,
                            f"a kernel tile of {tile} rows in {dtype.name}",
                            "Use a smaller tile_size or dtype='float32'.", devices)
    # On accelerators, mirroring tiles on the host costs more than computing them.
    mirror = symmetric and on_host
    starts1, starts2 = range(0, n1, tile), range(0, n2, tile)
    pairs = [(i, j) for i in starts1 for j in starts2 if not mirror or j >= i]
    mine = process_share(pairs)
    if on_host:
        tiles = _host_tiles(network, x1, x2, symmetric, mine, tile, dtype, get, track)
    else:
        tiles = _device_tiles(network, x1, x2, symmetric, mine, tile, dtype, get, devices)
    if processes > 1:
        tiles = gather_tiles(tiles, pairs, tile, (n1, n2), get, dtype, mirror=mirror)
    out = _empty((n1, n2), dtype, get)  # writable arrays the caller may factorize in place
    for (i, j), block, mirrored in tiles:
        for target, part in zip(out, block, strict=True):
            if target is not None:
                target[i:i + part.shape[0], j:j + part.shape[1]] = part
        for target, part in zip(out, mirrored or (), strict=False):
            if target is not None:
                target[j:j + part.shape[0], i:i + part.shape[1]] = part
    return out


def _host_tiles(network, x1, x2, symmetric, pairs, tile, dtype, get, track):
    """Tiles with NumPy Gram matrices (single CPU device), one dispatch ahead.

    With ``track``, tiles with near-duplicate pairs carry their exact separation.
    Yields ((i, j), (nngp, ntk), transposed blocks for the mirror tile or None).
    """
    sq1 = np.einsum("ij,ij->i", x1, x1)
    sq2 = sq1 if symmetric else np.einsum("ij,ij->i", x2, x2)

    shape = (bucket(tile),) * 2  # one compiled shape for every tile of every size

    def submit(pair):
        i, j = pair
        a, b = x1[i:i + tile], x2[j:j + tile]
        if symmetric and i == j:
            gram = a @ a.T  # runs as SYRK
            np.fill_diagonal(gram, sq1[i:i + tile])  # identical inputs: correlation exactly 1
        else:
            gram = a @ b.T
        separation = input_separation(a, b, gram, if_needed=True) if track else None
        moments = _pad_moments(gram, sq1[i:i + tile], sq2[j:j + tile], separation, shape)
        return _from_moments(network, *moments, input_dim=x1.shape[1], diagonal=False,
                             get=get), len(a), len(b)

    def finish(pair, submitted):
        block, rows, cols = submitted
        mirror = symmetric and pair[0] != pair[1]
        kernels = _unpack(block, dtype, get)
        mirrored = _unpack(block, dtype, get, True) if mirror else None
        yield pair, _crop(kernels, rows, cols), mirrored and _crop(mirrored, cols, rows)

    return dispatch_ahead(pairs, submit, finish)


def _pad_moments(cross, sq1, sq2, separation, shape):
    """Moments padded to ``shape`` with independent unit-variance pairs (cropped afterwards)."""
    pad = [(0, shape[k] - cross.shape[k]) for k in range(cross.ndim)]
    if not any(after for _, after in pad):
        return cross, sq1, sq2, separation
    cross = np.pad(cross, pad, constant_values=1.0 if cross.ndim == 1 else 0.0)
    sq1, sq2 = (np.pad(sq, [(0, size - len(sq))], constant_values=1.0)
                for sq, size in ((sq1, shape[0]), (sq2, shape[-1])))
    if separation is not None:  # |u -+ v|^2 of the padded pairs: (0, 4) diagonal, (2, 2) else
        fills = (0.0, 4.0, 0.0) if cross.ndim == 1 else (2.0, 2.0, 0.0)
        separation = type(separation)(*(np.pad(part, pad, constant_values=fill) for part, fill
                                        in zip(separation, fills, strict=True)))
    return cross, sq1, sq2, separation


def _crop(kernel: Kernel, rows: int, cols: int | None = None) -> Kernel:
    index = (slice(rows),) if cols is None else (slice(rows), slice(cols))
    return Kernel(*(None if part is None else part[index] for part in kernel))


def _device_tiles(network, x1, x2, symmetric, pairs, tile, dtype, get, devices):
    """Tiles in batches of one per device, the batch axis sharded over the devices."""
    a = pad_rows(x1, math.ceil(x1.shape[0] / tile) * tile)
    b = a if symmetric else pad_rows(x2, math.ceil(x2.shape[0] / tile) * tile)
    n1, n2 = x1.shape[0], x2.shape[0]
    mesh = jax.sharding.Mesh(np.asarray(devices), ("tiles",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("tiles"))
    batches = [pairs[start:start + len(devices)] for start in range(0, len(pairs), len(devices))]

    def submit(batch):
        padded = batch + [batch[-1]] * (len(devices) - len(batch))
        left = jax.device_put(np.stack([a[i:i + tile] for i, _ in padded]), sharding)
        right = jax.device_put(np.stack([b[j:j + tile] for _, j in padded]), sharding)
        same = jax.device_put(np.array([symmetric and i == j for i, j in padded]), sharding)
        return _from_inputs_batched(network, left, right, same, get=get)

    def finish(batch, block):
        kernels = _unpack(block, dtype, get)
        return [((i, j), tuple(None if part is None else
                               part[k, :min(tile, n1 - i), :min(tile, n2 - j)]
                               for part in kernels), None)
                for k, (i, j) in enumerate(batch)]

    return dispatch_ahead(batches, submit, finish)
