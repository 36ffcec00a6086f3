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
tracked only when given to :func:`input_state` (see :func:`input_separation`):
the tracking duals cost several times the plain ones.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lazykit.kernels.fast_math import Separation, snap_covariance


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
                     rtol: float = 1e-3, if_needed: bool = False) -> Separation | None:
    """|x1_i -+ x2_j|^2 and |x1_i|^2 - |x2_j|^2 without cancellation (NumPy, on the host).

    From the moments, |x|^2 + |x'|^2 -+ 2 <x, x'> has an absolute error of a
    few ulps of |x|^2 + |x'|^2; pairs for which it comes out below ``rtol``
    times that sum (near-duplicates, near-antipodal pairs) are recomputed from
    the inputs, (x -+ x') . (x -+ x') and (x - x') . (x + x'), exact up to the
    rounding of the result. ``cross`` is the Gram matrix x1 x2^T if already
    computed; ``diagonal`` pairs x1[i] with x2[i] (all computed directly).
    With ``if_needed``, return None when no pair is near (:func:`near_pairs`;
    identical inputs the moments resolve): tracking costs about ten times the
    plain erf dual.

    Examples:
        >>> import numpy as np
        >>> from lazykit.kernels.recursion import input_separation
        >>> x = np.array([[1.0, 2.0], [1.0, 2.0 + 1e-12]])
        >>> sep = input_separation(x)
        >>> float(sep.gap[0, 1]) == (2.0 + 1e-12 - 2.0) ** 2, bool(sep.gap[0, 0] == 0.0)
        (True, True)
        >>> input_separation(x[:1], if_needed=True) is None
        True
    """
    x1 = np.asarray(x1)
    x2 = x1 if x2 is None else np.asarray(x2)
    if diagonal:
        sep = _separation_of_rows(x1, x2)
        total = np.einsum("ij,ij->i", x1, x1) + np.einsum("ij,ij->i", x2, x2)
    else:
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
    sep = Separation(np.maximum(sep.gap, 0.0), np.maximum(sep.anti_gap, 0.0), sep.diff)
    if if_needed and not np.any(near_pairs(sep, total, rtol)):
        return None
    return sep


def near_pairs(separation: Separation, total, rtol: float = 1e-3):
    """Mask of the near-duplicate (not identical) and near-antipodal pairs (within ``rtol``).

    Identical inputs keep correlation exactly 1 through every layer; antipodal
    ones do not once a bias or an even part of an activation moves them off -1.
    """
    near = (separation.gap > 0) & (separation.gap <= rtol * total)
    return near | (separation.anti_gap <= rtol * total)


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

    When the state tracks a separation, an activation with a
    ``dual_with_gap(k12, k11, k22, separation)`` method, returning
    (E[phi phi], E[phi' phi'], the activations' separation), updates it (see
    :mod:`lazykit.kernels.duals`); any other falls back to the moments.
    """
    cross = state.nngp
    if not activation.snaps_correlation:
        cross = snap_covariance(cross, state.var1, state.var2)
    var1 = activation.dual(state.var1, state.var1, state.var1)[0]
    var2 = var1 if state.var2 is state.var1 else activation.dual(
        state.var2, state.var2, state.var2)[0]
    dual_with_gap = getattr(activation, "dual_with_gap", None)
    sep = state.separation
    if sep is not None and dual_with_gap is not None:
        nngp, dot, sep = dual_with_gap(cross, state.var1, state.var2, sep)
    else:  # the plain dual is several times cheaper
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
    """Run ``state`` through ``layers``, scanning over long runs of a repeated block.

    A block is a (Dense, activation) pair; consecutive blocks of the same pytree
    structure (layer types, widths; hyperparameter values may differ, and may be
    traced) repeat it, and their hyperparameters are stacked for the scan.
    """
    i = 0
    while i < len(layers):
        block = tuple(layers[i:i + 2])
        structure = jax.tree_util.tree_structure(block)
        repeats = 1
        while len(block) == 2 and _same_structure(layers[i + 2 * repeats:i + 2 * repeats + 2],
                                                  structure):
            repeats += 1
        if repeats - 1 <= MAX_UNROLLED_REPEATS:
            for layer in layers[i:i + 2 * repeats] if len(block) == 2 else block:
                state = layer.propagate(state)
        else:
            for layer in block:  # the first repeat sets the width and creates the NTK
                state = layer.propagate(state)
            state = _scan_blocks(layers[i + 2:i + 2 * repeats], structure, state)
        i += 2 * repeats if len(block) == 2 else len(block)
    return state


def _same_structure(layers, structure) -> bool:
    return len(layers) == 2 and jax.tree_util.tree_structure(tuple(layers)) == structure


def _scan_blocks(layers, structure, state: KernelState) -> KernelState:
    """``state`` through consecutive blocks of one ``structure``, as one lax.scan."""
    width = state.width
    same_vars = state.var2 is state.var1
    dtype = jnp.result_type(state.nngp)
    blocks = [jax.tree_util.tree_leaves(tuple(layers[k:k + 2])) for k in range(0, len(layers), 2)]
    stacked = [jnp.stack([jnp.asarray(v, dtype) for v in column])
               for column in zip(*blocks, strict=True)]

    def step(carry, leaves):
        nngp, var1, var2, ntk, sep = carry
        s = KernelState(nngp, var1, var1 if same_vars else var2, ntk, width, sep)
        for layer in jax.tree_util.tree_unflatten(structure, leaves):
            s = layer.propagate(s)
        return (s.nngp, s.var1, s.var2, s.ntk, s.separation), None

    carry = (state.nngp, state.var1, state.var2, state.ntk, state.separation)
    (nngp, var1, var2, ntk, sep), _ = jax.lax.scan(step, carry, stacked)
    return KernelState(nngp, var1, var1 if same_vars else var2, ntk, width, sep)


# Near-duplicate inputs in the chaotic phase ----------------------------------------------


class NearDuplicateWarning(UserWarning):
    """Kernel entries of near-duplicate (or near-antipodal) inputs are less accurate than stated.

    In the chaotic phase of a network (erf or tanh with a large W_std, several
    layers) an error in 1 - rho near rho = 1 grows exponentially with depth, and
    the moments resolve 1 - rho only to a few float ulps. Layers that track the
    inputs' exact separation (erf, sin, rbf, identity; see
    :func:`input_separation`) are exact; any other layer loses it.
    """


def near_duplicate_tolerance(dtype) -> float:
    """Relative error of near-duplicate kernel entries above which lazykit warns.

    100 sqrt(eps): 1.5e-6 in float64, 3.5e-2 in float32 (entries relative to
    sqrt(K(x, x) K(x', x'))).

    Examples:
        >>> from lazykit.kernels.recursion import near_duplicate_tolerance
        >>> f"{near_duplicate_tolerance('float64'):.1e}"
        '1.5e-06'
    """
    return 100.0 * float(np.sqrt(np.finfo(np.dtype(dtype)).eps))


@functools.partial(jax.jit, static_argnames="width")
def _compiled_layer(layer, arrays, *, width: int):
    """``layer.propagate`` compiled once per layer structure (the layer is a pytree argument)."""
    return tuple(layer.propagate(KernelState(*arrays, width))[:4])


def _propagate_layerwise(layers, cross, sq1, sq2, input_dim):
    """(nngp, ntk) of pairs with moments (cross, sq1, sq2), one compiled layer at a time."""
    state = input_state(*(jnp.asarray(v) for v in (cross, sq1, sq2)), input_dim, diagonal=True)
    arrays, width = tuple(state[:4]), state.width
    for layer in layers:
        arrays = _compiled_layer(layer, arrays, width=width)
        width = getattr(layer, "out_dim", width)  # Dense layers set the width
    return np.asarray(arrays[0]), np.asarray(arrays[3])


def _sensitivity(layers, cross, sq1, sq2, sign, input_dim, step):
    """max over NNGP, NTK of |K(1 -+ rho + step) - K| / sqrt(K(x, x) K(x', x')), per pair.

    ``sign`` +1 moves near-duplicates apart, -1 near-antipodal pairs.
    """
    n = len(cross)
    moved = cross - sign * step * np.sqrt(sq1) * np.sqrt(sq2)
    both = _propagate_layerwise(layers, np.concatenate([cross, moved, sq1, sq2]),
                                np.concatenate([sq1, sq1, sq1, sq2]),
                                np.concatenate([sq2, sq2, sq1, sq2]), input_dim)
    change = 0.0
    for kernel in both:
        at, away, own1, own2 = (kernel[k * n:(k + 1) * n] for k in range(4))
        scale = np.sqrt(np.abs(own1)) * np.sqrt(np.abs(own2))  # no overflow
        change = np.maximum(change, np.abs(away - at) / np.where(scale > 0, scale, np.inf))
    return change


def near_duplicate_error(layers, x1, x2=None, *, diagonal: bool = False, dtype=np.float64,
                         tracked: bool = False, max_pairs: int = 4096):
    """Estimate the largest relative error of the kernel entries of near-duplicate pairs.

    Near-duplicate (near-antipodal) pairs, those with 1 -+ rho below about 1e-3,
    get kernel entries whose error is about the change of the entry when
    1 -+ rho moves by its resolution r = eps (the moments, or a layer without
    separation tracking), found by moving it by a larger step h and scaling by
    r / h: linear where the network amplifies moderately, and of the right
    order, O(1), where the amplification saturates. A first pass on the diagonal,
    at 65 quantiles of the input norms, bounds every pair's error
    (:func:`moment_error_bound`); only when it exceeds
    :func:`near_duplicate_tolerance` are the near pairs (exact separations from
    :func:`input_separation`; identical inputs, which are exact, left out)
    checked, at most ``max_pairs`` of them. ``tracked`` says whether the kernel
    computation gets the inputs' separation.

    Returns:
        (error, pair, count): the largest estimated error (relative to
        sqrt(K(x, x) K(x', x'))), the (row of x1, row of x2) where it occurs
        (None if no pair was checked), and the number of checked pairs above the
        tolerance.
    """
    activations = [layer for layer in layers if hasattr(layer, "dual")]
    if (diagonal and x2 is None) or (tracked and all(
            getattr(layer, "dual_with_gap", None) for layer in activations)):
        return 0.0, None, 0
    bound = moment_error_bound(layers, x1, x2, dtype=dtype)
    if bound <= near_duplicate_tolerance(dtype):
        return bound, None, 0
    x1 = np.asarray(x1, dtype=np.float64)
    x2 = x1 if x2 is None else np.asarray(x2, dtype=np.float64)
    rows, cols, sep = _near_pairs_of(x1, x2, diagonal)
    rows, cols, sep = rows[:max_pairs], cols[:max_pairs], Separation(
        *(part[:max_pairs] for part in sep))
    if len(rows) == 0:
        return 0.0, None, 0
    sq1, sq2 = (np.einsum("ij,ij->i", x[index], x[index]) for x, index in ((x1, rows), (x2, cols)))
    duplicate_like = sep.gap <= sep.anti_gap
    total = sq1 + sq2
    cross = np.where(duplicate_like, (total - sep.gap) / 2, (sep.anti_gap - total) / 2)
    errors = _scaled_sensitivity(layers, cross, sq1, sq2, np.where(duplicate_like, 1.0, -1.0),
                                 x1.shape[1], dtype)
    worst = int(np.argmax(errors))
    return float(errors[worst]), (int(rows[worst]), int(cols[worst])), int(
        np.sum(errors > near_duplicate_tolerance(dtype)))


def moment_error_bound(layers, x1, x2=None, *, dtype=np.float64) -> float:
    """Bound on the error of any near pair's entries when 1 -+ rho comes from the moments.

    The sensitivity of K(x, x') to 1 -+ rho at rho = +-1 times the resolution,
    on the diagonal at 65 quantiles of the input norms (see :func:`near_duplicate_error`).
    """
    sq = np.concatenate([np.einsum("ij,ij->i", x, x) for x in (x1, x1 if x2 is None else x2)])
    norms = np.unique(np.quantile(np.asarray(sq, dtype=np.float64), np.linspace(0.0, 1.0, 65)))
    both = np.concatenate([norms, norms])
    sign = np.concatenate([np.ones_like(norms), -np.ones_like(norms)])  # rho = 1 and rho = -1
    return float(np.max(_scaled_sensitivity(layers, sign * both, both, both, sign,
                                            np.shape(x1)[1], dtype)))


def _scaled_sensitivity(layers, cross, sq1, sq2, sign, input_dim, dtype):
    """:func:`_sensitivity` at a step h scaled to the resolution eps of ``dtype`` (float64)."""
    from lazykit._dtypes import precision

    resolution = float(np.finfo(np.dtype(dtype)).eps)
    step = max(64.0 * float(np.finfo(np.float64).eps), resolution)
    with precision("float64"):
        return _sensitivity(layers, cross, sq1, sq2, sign, input_dim, step) * (resolution / step)


def _near_pairs_of(x1, x2, diagonal: bool):
    """Rows, columns and separations of the near (not exact) pairs, row blocks at a time."""
    if diagonal:
        sep = input_separation(x1, x2, diagonal=True)
        total = np.einsum("ij,ij->i", x1, x1) + np.einsum("ij,ij->i", x2, x2)
        index = np.nonzero(near_pairs(sep, total))[0]
        return index, index, Separation(*(part[index] for part in sep))
    symmetric = x2 is x1
    found = []
    block = max(1, 2**20 // max(1, x2.shape[0]))
    for start in range(0, x1.shape[0], block):
        part = x1[start:start + block]
        sep = input_separation(part, x2)
        total = np.einsum("ij,ij->i", part, part)[:, None] + np.einsum("ij,ij->i", x2, x2)
        mask = near_pairs(sep, total)
        if symmetric:
            mask &= np.arange(start, start + len(part))[:, None] < np.arange(x2.shape[0])
        i, j = np.nonzero(mask)
        found.append((i + start, j, Separation(*(s[i, j] for s in sep))))
    rows = np.concatenate([f[0] for f in found])
    cols = np.concatenate([f[1] for f in found])
    return rows, cols, Separation(*(np.concatenate([f[2][k] for f in found]) for k in range(3)))


def plan_near_duplicates(layers, x1, x2=None, *, diagonal: bool = False, dtype=np.float64,
                         can_track: bool = True, stacklevel: int = 2) -> bool:
    """Whether a kernel computation should carry the inputs' separation; warns where needed.

    Tracking costs several times the plain erf dual on tiles with near pairs, so
    it is worth it only where some layer has a ``dual_with_gap`` and the layers
    amplify the moments' resolution beyond 1e-13 (:func:`moment_error_bound`);
    ``can_track`` says whether the computation can carry it at all. Then
    :func:`check_near_duplicates` (``stacklevel`` counted from the caller).

    Examples:
        >>> import numpy as np, lazykit
        >>> from lazykit.kernels.recursion import plan_near_duplicates
        >>> x = np.array([[0.3, -1.2, 0.8], [0.3, -1.2, 0.8 + 1e-12]])
        >>> plan_near_duplicates(lazykit.mlp(3, activation="relu").layers, x)  # nothing tracks
        False
    """
    track = (can_track and not (diagonal and x2 is None)
             and any(getattr(layer, "dual_with_gap", None) for layer in layers)
             and moment_error_bound(layers, x1, x2, dtype=dtype) > 1e-13)
    check_near_duplicates(layers, x1, x2, diagonal=diagonal, dtype=dtype, tracked=track,
                          stacklevel=stacklevel + 1)
    return track


def check_near_duplicates(layers, x1, x2=None, *, diagonal: bool = False, dtype=np.float64,
                          tracked: bool = False, stacklevel: int = 2) -> None:
    """Warn (:class:`NearDuplicateWarning`) when near-duplicate entries miss the tolerance.

    See :func:`near_duplicate_error`; ``x1``, ``x2``, ``diagonal`` and ``dtype`` as
    in :meth:`lazykit.Network.kernel`; ``stacklevel`` that of the warning, counted
    from the caller of this function.

    Examples:
        >>> import numpy as np, lazykit
        >>> from lazykit.kernels.recursion import check_near_duplicates
        >>> x = np.array([[0.3, -1.2, 0.8], [0.3, -1.2, 0.8 + 1e-12]])
        >>> check_near_duplicates(lazykit.mlp(3, activation="relu").layers, x)  # no warning
    """
    error, pair, count = near_duplicate_error(layers, x1, x2, diagonal=diagonal, dtype=dtype,
                                              tracked=tracked)
    tolerance = near_duplicate_tolerance(dtype)
    if error <= tolerance or pair is None:
        return
    import warnings

    warnings.warn(NearDuplicateWarning(
        f"{count} pair(s) of near-duplicate or near-antipodal inputs (e.g. row {pair[0]} of x1 "
        f"and row {pair[1]} of {'x1' if x2 is None else 'x2'}) get kernel entries accurate only "
        f"to about {min(error, 1.0):.1g} (relative), above lazykit's {tolerance:.1g} in "
        f"{np.dtype(dtype).name}: the network is chaotic (it amplifies a change of their "
        "correlation exponentially with depth) and their correlation is below the float "
        "resolution. Erf, sin, rbf and identity layers track such pairs exactly when given "
        "their separation; otherwise use float64, fewer layers or a smaller W_std, or "
        "deduplicate the inputs."), stacklevel=stacklevel + 1)
