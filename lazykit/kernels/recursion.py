"""Layer-by-layer NNGP and NTK recursions of a fully-connected network.

A :class:`KernelState` holds, for a pair of input batches, the covariance of
the current layer's features (``nngp``), the two variances (``var1``,
``var2``), the tangent kernel (``ntk``, None before the first Dense layer) and
the current width. Dense layers and activations each map a state to the next
(design.md, "Mathematics"). The same recursion serves a kernel block
(``nngp`` of shape (n1, n2), ``var1`` (n1, 1), ``var2`` (1, n2)) and a diagonal
(all three of shape (n,)), because the activation duals broadcast.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from lazykit.kernels.fast_math import snap_covariance


class KernelState(NamedTuple):
    """Second moments of one layer's features for two batches of inputs."""

    nngp: jax.Array
    var1: jax.Array
    var2: jax.Array
    ntk: jax.Array | None
    width: int


class Kernel(NamedTuple):
    """The two infinite-width kernels of a network: ``nngp`` and ``ntk``."""

    nngp: jax.Array
    ntk: jax.Array


def input_moments(x1, x2=None, *, diagonal: bool = False):
    """Return (<x1_i, x2_j>, |x1_i|^2, |x2_j|^2): the raw input moments.

    With ``diagonal`` the first entry is <x1_i, x2_i> (or |x1_i|^2), shape (n,).
    """
    sq1 = jnp.sum(x1 * x1, axis=1)
    sq2 = sq1 if x2 is None else jnp.sum(x2 * x2, axis=1)
    if diagonal:
        return (sq1 if x2 is None else jnp.sum(x1 * x2, axis=1)), sq1, sq2
    # Full float32 precision on GPUs (whose default is TF32), and the Gram matrix
    # kept out of the elementwise fusion that follows: XLA on CPU otherwise fuses
    # the matmul into its consumers and runs it as a slow loop.
    gram = jnp.matmul(x1, (x1 if x2 is None else x2).T, precision=jax.lax.Precision.HIGHEST)
    gram = jax.lax.optimization_barrier(gram)
    if x2 is None:  # identical inputs: correlation exactly 1
        sq1 = sq2 = jnp.diagonal(gram)
    return gram, sq1, sq2


def input_state(cross, sq1, sq2, d: int, *, diagonal: bool = False) -> KernelState:
    """State of the inputs, covariance <x, x'> / d, from raw moments (see input_moments)."""
    if diagonal:
        return KernelState(cross / d, sq1 / d, sq2 / d, None, d)
    return KernelState(cross / d, sq1[:, None] / d, sq2[None, :] / d, None, d)


def through_dense(state: KernelState, *, out_dim: int, W_std: float, b_std: float | None,
                  parameterization: str) -> KernelState:
    """Kernels after z = W y + b (NTK or standard parameterization)."""
    w2 = W_std * W_std
    b2 = 0.0 if b_std is None else b_std * b_std
    nngp = w2 * state.nngp + b2
    var1 = w2 * state.var1 + b2
    var2 = var1 if state.var2 is state.var1 else w2 * state.var2 + b2
    if parameterization == "ntk":
        ntk = nngp if state.ntk is None else nngp + w2 * state.ntk
    else:
        # Standard parameterization: the gradient with respect to W of variance
        # W_std^2 / width contributes width * E[y y'] (not W_std^2 E[y y']), and the bias 1.
        ntk = state.width * state.nngp + (0.0 if b_std is None else 1.0)
        if state.ntk is not None:
            ntk = ntk + w2 * state.ntk
    return KernelState(nngp, var1, var2, ntk, out_dim)


def through_activation(activation, state: KernelState) -> KernelState:
    """Kernels after an elementwise activation, through its Gaussian dual."""
    cross = state.nngp
    if not activation.snaps_correlation:
        cross = snap_covariance(cross, state.var1, state.var2)
    nngp, dot = activation.dual(cross, state.var1, state.var2)
    var1 = activation.dual(state.var1, state.var1, state.var1)[0]
    var2 = var1 if state.var2 is state.var1 else activation.dual(
        state.var2, state.var2, state.var2)[0]
    ntk = None if state.ntk is None else dot * state.ntk
    return KernelState(nngp, var1, var2, ntk, state.width)


def pack(nngp, ntk):
    """One complex array nngp + i ntk.

    A single output lets XLA fuse the whole depth of the recursion into one loop
    that computes every layer of an entry in registers; two outputs make it
    split the chain into several fusions that recompute the shared transcendental
    terms, about 1.5-3x slower on CPU.
    """
    return jax.lax.complex(nngp, ntk)


# Repeats of one (Dense, activation) block beyond this count run in a lax.scan:
# fully unrolled recursions fuse into one fast loop but compile in time
# quadratic in depth (a depth-30 ReLU network took 36 s to compile).
MAX_UNROLLED_REPEATS = 4


def propagate(layers, state: KernelState) -> KernelState:
    """Run ``state`` through ``layers``, scanning over long runs of a repeated block."""
    i = 0
    while i < len(layers):
        block = tuple(layers[i:i + 2])
        repeats = 1
        while len(block) == 2 and tuple(layers[i + 2 * repeats:i + 2 * repeats + 2]) == block:
            repeats += 1
        if repeats - 1 <= MAX_UNROLLED_REPEATS:
            for layer in layers[i:i + 2 * repeats] if len(block) == 2 else block:
                state = layer.propagate(state)
        else:
            for layer in block:  # the first repeat sets the width and creates the NTK
                state = layer.propagate(state)
            state = _scan_block(block, state, repeats - 1)
        i += 2 * repeats if len(block) == 2 else len(block)
    return state


def _scan_block(block, state: KernelState, repeats: int) -> KernelState:
    width = state.width
    same_vars = state.var2 is state.var1

    def step(carry, _):
        nngp, var1, var2, ntk = carry
        s = KernelState(nngp, var1, var1 if same_vars else var2, ntk, width)
        for layer in block:
            s = layer.propagate(s)
        return (s.nngp, s.var1, s.var2, s.ntk), None

    carry = (state.nngp, state.var1, state.var2, state.ntk)
    (nngp, var1, var2, ntk), _ = jax.lax.scan(step, carry, None, length=repeats)
    return KernelState(nngp, var1, var1 if same_vars else var2, ntk, width)
