"""Layer-by-layer NNGP and NTK recursions of a fully-connected network.

A :class:`KernelState` holds, for a pair of input batches, the covariance of
the current layer's features (``nngp``), the two variances (``var1``,
``var2``), the tangent kernel (``ntk``, None before the first Dense layer) and
the current width. Dense layers and activations each map a state to the next
(design.md, "Mathematics"). The same recursion serves a kernel block
(``nngp`` of shape (n1, n2), ``var1`` (n1, 1), ``var2`` (1, n2)) and a diagonal
(all three of shape (n,)), because the activation duals broadcast.

The state may also carry, for each pair, a
:class:`~lazykit.kernels.fast_math.Separation`: E[(u - v)^2] =
var1 + var2 - 2 nngp, E[(u + v)^2] = var1 + var2 + 2 nngp and var1 - var2,
computed without cancellation: exactly through a Dense layer, and by the
activation's ``dual_with_gap`` (erf, sin, rbf, identity) through an
activation. From it the duals get 1 -+ rho with full relative accuracy for
near-duplicate (near-antipodal) inputs, whose correlation rounds to +-1; this
keeps them apart in the chaotic phase, where 1 - rho grows exponentially with
depth. An activation without ``dual_with_gap`` falls back to the moments,
which resolve no 1 -+ rho below about 1e-15 (float64). The separation is
tracked once given to :func:`input_state` (see :func:`input_separation`) or
created by the first activation with ``dual_with_gap``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lazykit.kernels.fast_math import Separation, covariance_separation, snap_covariance


class KernelState(NamedTuple):
    """Second moments of one layer's features for two batches of inputs."""

    nngp: jax.Array
    var1: jax.Array
    var2: jax.Array
    ntk: jax.Array | None
    width: int
    separation: Separation | None = None


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


def input_separation(x1, x2=None, cross=None, *, diagonal: bool = False,
                     rtol: float = 1e-3) -> Separation:
    """|x1_i -+ x2_j|^2 and |x1_i|^2 - |x2_j|^2 without cancellation (NumPy, on the host).

    From the moments, |x|^2 + |x'|^2 -+ 2 <x, x'> has an absolute error of a
    few ulps of |x|^2 + |x'|^2; pairs for which it comes out below ``rtol``
    times that sum (near-duplicates, near-antipodal pairs) are recomputed from
    the inputs, (x -+ x') . (x -+ x') and (x - x') . (x + x'), exact up to the
    rounding of the result. ``cross`` is the Gram matrix x1 x2^T if already
    computed; ``diagonal`` pairs x1[i] with x2[i] (all computed directly).

    Examples:
        >>> import numpy as np
        >>> from lazykit.kernels.recursion import input_separation
        >>> x = np.array([[1.0, 2.0], [1.0, 2.0 + 1e-12]])
        >>> sep = input_separation(x)
        >>> float(sep.gap[0, 1]) == (2.0 + 1e-12 - 2.0) ** 2, bool(sep.gap[0, 0] == 0.0)
        (True, True)
    """
    x1 = np.asarray(x1)
    x2 = x1 if x2 is None else np.asarray(x2)
    if diagonal:
        return _separation_of_rows(x1, x2)
    sq1, sq2 = np.einsum("ij,ij->i", x1, x1), np.einsum("ij,ij->i", x2, x2)
    cross = x1 @ x2.T if cross is None else np.asarray(cross)
    total = sq1[:, None] + sq2[None, :]
    sep = Separation(total - 2.0 * cross, total + 2.0 * cross, sq1[:, None] - sq2[None, :])
    rows, cols = np.nonzero(np.minimum(sep.gap, sep.anti_gap) <= rtol * total)
    chunk = max(1, 2**22 // max(1, x1.shape[1]))  # bounds the temporaries to 32 MiB
    for start in range(0, len(rows), chunk):
        i, j = rows[start:start + chunk], cols[start:start + chunk]
        for part, exact in zip(sep, _separation_of_rows(x1[i], x2[j]), strict=True):
            part[i, j] = exact
    return Separation(np.maximum(sep.gap, 0.0), np.maximum(sep.anti_gap, 0.0), sep.diff)


def _separation_of_rows(a, b) -> Separation:
    """Row-wise |a - b|^2, |a + b|^2 and (a - b) . (a + b)."""
    minus, plus = a - b, a + b
    return Separation(np.einsum("ij,ij->i", minus, minus), np.einsum("ij,ij->i", plus, plus),
                      np.einsum("ij,ij->i", minus, plus))


def input_state(cross, sq1, sq2, d: int, *, diagonal: bool = False,
                separation: Separation | None = None) -> KernelState:
    """State of the inputs, covariance <x, x'> / d, from raw moments (see input_moments).

    ``separation``, if given, holds |x1_i -+ x2_j|^2 and |x1_i|^2 - |x2_j|^2 (the
    shape of ``cross``) computed from the inputs (see :func:`input_separation`):
    it resolves near-duplicate inputs that the moments cannot.
    """
    if separation is not None:
        separation = Separation(*(part / d for part in separation))
    if diagonal:
        return KernelState(cross / d, sq1 / d, sq2 / d, None, d, separation)
    return KernelState(cross / d, sq1[:, None] / d, sq2[None, :] / d, None, d, separation)


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
    sep = state.separation
    if sep is not None:  # the bias cancels in u - v and doubles in u + v
        sep = Separation(w2 * sep.gap, w2 * sep.anti_gap + 4.0 * b2, w2 * sep.diff)
    return KernelState(nngp, var1, var2, ntk, out_dim, sep)


def through_activation(activation, state: KernelState) -> KernelState:
    """Kernels after an elementwise activation, through its Gaussian dual.

    An activation with a ``dual_with_gap(k12, k11, k22, separation)`` method,
    returning (E[phi phi], E[phi' phi'], the activations' separation), gets and
    updates the separation (see :mod:`lazykit.kernels.duals`).
    """
    cross = state.nngp
    if not activation.snaps_correlation:
        cross = snap_covariance(cross, state.var1, state.var2)
    var1 = activation.dual(state.var1, state.var1, state.var1)[0]
    var2 = var1 if state.var2 is state.var1 else activation.dual(
        state.var2, state.var2, state.var2)[0]
    dual_with_gap = getattr(activation, "dual_with_gap", None)
    sep = state.separation
    if dual_with_gap is not None:
        if sep is None:
            sep = covariance_separation(cross, state.var1, state.var2)
        nngp, dot, sep = dual_with_gap(cross, state.var1, state.var2, sep)
    else:
        nngp, dot = activation.dual(cross, state.var1, state.var2)
        sep = None if sep is None else _moment_separation(nngp, var1, var2)
    ntk = None if state.ntk is None else dot * state.ntk
    return KernelState(nngp, var1, var2, ntk, state.width, sep)


def _moment_separation(nngp, var1, var2) -> Separation:
    """The fallback separation from the moments; round-off below 16 ulps of var1 + var2 is 0.

    Identical (antipodal) inputs must keep a gap (anti_gap) of exactly 0 (see
    :func:`snap_covariance`); the fallback cannot resolve smaller ones anyway.
    """
    total = var1 + var2
    slack = 16.0 * jnp.finfo(jnp.result_type(nngp)).eps * jnp.abs(total)

    def snapped(value):
        return jnp.where(value > slack, value, 0.0)

    return Separation(snapped(total - 2.0 * nngp), snapped(total + 2.0 * nngp),
                      var1 - var2 + jnp.zeros_like(nngp))


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
        nngp, var1, var2, ntk, sep = carry
        s = KernelState(nngp, var1, var1 if same_vars else var2, ntk, width, sep)
        for layer in block:
            s = layer.propagate(s)
        return (s.nngp, s.var1, s.var2, s.ntk, s.separation), None

    carry = (state.nngp, state.var1, state.var2, state.ntk, state.separation)
    (nngp, var1, var2, ntk, sep), _ = jax.lax.scan(step, carry, None, length=repeats)
    return KernelState(nngp, var1, var1 if same_vars else var2, ntk, width, sep)
