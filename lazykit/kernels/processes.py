"""Kernel tiles shared out over JAX processes (``jax.distributed``) and gathered back.

With ``jax.distributed.initialize`` over several processes (one per host, or
several on one machine with CPU collectives such as gloo), each process
computes every ``jax.process_count()``-th tile of a kernel on its own local
devices, and the tiles are gathered so that every process holds the whole
kernel, identical to what one process computes. One process: nothing changes.
"""

from __future__ import annotations

import math

import jax
import numpy as np

from lazykit.kernels.recursion import Kernel

KINDS = ("nngp", "ntk")


def process_share(pairs: list) -> list:
    """The tile pairs this process computes: every ``process_count``-th, from its index.

    Examples:
        >>> process_share([(0, 0), (0, 8), (8, 8)])  # one process: all of them
        [(0, 0), (0, 8), (8, 8)]
    """
    return pairs[jax.process_index()::jax.process_count()]


def gather_tiles(tiles, pairs: list, tile: int, shape: tuple[int, int], get, dtype, *,
                 mirror: bool):
    """Every process's tiles, from this process's ``tiles`` (its :func:`process_share`).

    ``tiles`` yields ((i, j), block, mirrored) as the tile pipelines of
    :mod:`lazykit.kernels.compute` do; the result yields the same for all
    ``pairs``, the mirrored blocks (``mirror``: symmetric kernel, upper tiles only)
    transposed here. Tiles travel as one padded stack per kernel and process
    (``jax.experimental.multihost_utils.process_allgather``).
    """
    from jax.experimental import multihost_utils

    processes = jax.process_count()
    count = math.ceil(len(pairs) / processes)
    stacks = {kind: np.zeros((count, tile, tile), dtype) for kind in get}
    for k, (_, block, _) in enumerate(tiles):
        for kind, part in zip(KINDS, block, strict=True):
            if part is not None:
                stacks[kind][k, :part.shape[0], :part.shape[1]] = part
    gathered = {kind: np.asarray(multihost_utils.process_allgather(stack))
                for kind, stack in stacks.items()}
    for process in range(processes):
        for k, (i, j) in enumerate(pairs[process::processes]):
            rows, cols = min(tile, shape[0] - i), min(tile, shape[1] - j)
            block = Kernel(*(gathered[kind][process, k, :rows, :cols] if kind in get else None
                             for kind in KINDS))
            mirrored = None
            if mirror and i != j:
                mirrored = Kernel(*(None if part is None else part.T for part in block))
            yield (i, j), block, mirrored
