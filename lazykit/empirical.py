"""Empirical (finite-width) neural tangent kernel of any ``apply_fn(params, x)``.

Theta(x1, x2)[a, b] = sum over parameters p of  d f_a(x1) / dp  d f_b(x2) / dp,
with f_a the a-th output. Three implementations give the same kernel:

* ``"structured"`` (lazykit models only): a fully-connected layer z = s_w y W + s_b b
  contributes `(s_w^2 <y, y'> + s_b^2) <g, g'>` with g = d f / d z, so the kernel
  is a sum of Hadamard products of small Gram matrices and no Jacobian is ever
  formed. For :class:`lazykit.TwoLayer` this is the closed form
  (alpha/m)^2 [sigma(U) sigma(U')^T + ((c sigma'(U)) (c sigma'(U'))^T) * (X X'^T + 1)].
* ``"jacobian"``: per-example Jacobians by reverse mode, then contracted.
* ``"ntvp"``: NTK-vector products, J1 (J2^T v), in chunks of ``x2`` rows, which
  bounds memory when the Jacobians do not fit.

``"auto"`` picks structured for lazykit models, otherwise the Jacobian
contraction when both Jacobians fit in a memory budget, else NTK-vector products.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from lazykit._dtypes import precision
from lazykit._validation import as_matrix, deprecation
from lazykit.kernels.compute import check_memory
from lazykit.tangent import check_params

MODES = ("trace", "full")
IMPLEMENTATIONS = ("auto", "structured", "jacobian", "ntvp")
# Bytes the Jacobian contraction may use before "auto" switches to NTK-vector products.
JACOBIAN_BUDGET = 2 * 2**30


def empirical_ntk(apply_fn, params, x1, x2=None, *, mode: str = "trace",
                  diagonal: bool = False, implementation: str = "auto",
                  per_example: bool = True):
    """Finite-width NTK of ``apply_fn`` at ``params``.

    With f of shape (n, o) (neural-tangents equivalents in brackets):

    * ``mode="trace"``: the mean over outputs, (1/o) sum_a Theta[i, j, a, a], shape
      (n1, n2), the scalar kernel that converges to the analytic NTK
      [``trace_axes=(-1,)``].
    * ``mode="full"``: Theta[i, j, a, b], shape (n1, n2, o, o) [``trace_axes=()``].
    * ``diagonal=True``: only the pairs (x1[i], x2[i]), as in
      :meth:`lazykit.Network.kernel`: shape (n1,) for "trace", (n1, o, o) for "full"
      [``diagonal_axes=(0,)``].

    Args:
        apply_fn: ``apply_fn(params, x) -> (n, o)`` (an output of shape (n,) counts
            as o = 1), or a :class:`lazykit.TwoLayer` / :class:`lazykit.Network`
            (or its bound ``apply``), which enables the structured implementation.
        params: a pytree of arrays.
        x1: inputs with a leading batch axis, (n1, ...); (n1, d) for a lazykit model.
        x2: inputs (n2, ...); None means ``x1``.
        mode: "trace" (default) or "full". The old ``mode="diagonal"`` is deprecated
            (a DeprecationWarning; it means ``mode="trace", diagonal=True``).
        diagonal: only the kernel of the pairs (x1[i], x2[i]) (x1 and x2 need the same
            number of rows).
        implementation: "auto", "structured", "jacobian" or "ntvp".
        per_example: ``apply_fn`` treats the rows of ``x`` independently (no batch
            statistics), so Jacobians are taken one example at a time. Set False
            for functions that mix examples (slower, exact).

    Returns:
        A JAX array, in float64 if any input or parameter is float64 (computed in a
        local x64 context; the global JAX configuration is untouched), else float32.
        Works inside ``jax.jit`` and ``jax.vmap``.

    Raises:
        ValueError: on empty, non-finite or wrongly shaped inputs or parameters (1-D
            inputs of a lazykit model: reshape with ``x.reshape(-1, 1)``), naming the argument.
        TypeError: on parameters that are not arrays (an Equinox module must be split
            first, e.g. with ``eqx.partition(module, eqx.is_array)``).
        lazykit.InsufficientMemoryError: before anything is allocated, when the kernel
            and its working arrays cannot fit in the available memory.

    Examples:
        >>> import numpy as np, lazykit
        >>> model = lazykit.TwoLayer(128, alpha=np.sqrt(128))
        >>> params = model.init(0, input_dim=3, dtype="float64")
        >>> x = np.random.default_rng(0).normal(size=(4, 3))
        >>> k = lazykit.empirical_ntk(model.apply, params, x)
        >>> k.shape, str(k.dtype)
        ((4, 4), 'float64')
        >>> j = lazykit.empirical_ntk(model.apply, params, x, implementation="jacobian")
        >>> bool(np.allclose(k, j, rtol=1e-12))
        True
        >>> d = lazykit.empirical_ntk(model.apply, params, x, diagonal=True)
        >>> bool(np.allclose(d, np.diag(k), rtol=1e-12))
        True
    """
    if isinstance(mode, str) and mode == "diagonal":
        deprecation('empirical_ntk(mode="diagonal") is diagonal=True (with mode="trace")')
        mode, diagonal = "trace", True
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}.")
    if not isinstance(diagonal, (bool, np.bool_)):
        raise TypeError(f"diagonal must be True or False; got {diagonal!r}.")
    diagonal = bool(diagonal)
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}; "
                         f"got {implementation!r}.")
    model = structured_model(apply_fn)
    if implementation == "structured" and model is None:
        raise ValueError("implementation='structured' needs a lazykit.TwoLayer or "
                         f"lazykit.Network (or its .apply); got {apply_fn!r}. Use "
                         "implementation='auto'.")
    fn = model if model is not None else apply_fn
    if not callable(fn) and model is None:
        raise TypeError(f"apply_fn must be a function apply_fn(params, x) or a lazykit model; "
                        f"got {apply_fn!r}.")
    for x, name in ((x1, "x1"), (x2, "x2")):
        if x is not None:
            _check_inputs(x, name, matrix=model is not None)
    check_params(params)
    if diagonal and x2 is not None and np.shape(x1)[0] != np.shape(x2)[0]:
        raise ValueError(f"diagonal=True pairs x1[i] with x2[i], so x1 and x2 need the same "
                         f"number of rows; got {np.shape(x1)[0]} and {np.shape(x2)[0]}.")
    leaves = [*jax.tree_util.tree_leaves(params), x1, *(() if x2 is None else (x2,))]
    if any(isinstance(leaf, jax.core.Tracer) for leaf in leaves):
        if implementation == "auto":
            implementation = _choose(model, fn, params, x1, x2, diagonal)
        _check_memory(fn, params, x1, x2, mode, diagonal, implementation)
        return _ntk(fn, params, x1, x2, mode, diagonal, implementation, per_example)
    wide = any(np.dtype(getattr(leaf, "dtype", np.float64)) == np.float64 for leaf in leaves)
    dtype = np.float64 if wide else np.float32
    with precision(dtype):
        params = jax.tree_util.tree_map(lambda p: jnp.asarray(p, dtype), params)
        x1 = jnp.asarray(x1, dtype)
        x2 = None if x2 is None else jnp.asarray(x2, dtype)
        if implementation == "auto":
            implementation = _choose(model, fn, params, x1, x2, diagonal)
        _check_memory(fn, params, x1, x2, mode, diagonal, implementation)
        try:
            hash(fn)
        except TypeError:
            return _ntk(fn, params, x1, x2, mode, diagonal, implementation, per_example)
        return _ntk_jit(fn, params, x1, x2, mode, diagonal, implementation, per_example)


def structured_model(apply_fn):
    """The model behind ``apply_fn`` if it has the structured path, else None.

    A model has it when it provides ``layer_features(params, x)`` (lazykit's
    :class:`~lazykit.Network` and :class:`~lazykit.TwoLayer` do): per trainable layer,
    the inputs y (n, N_in), the output gradients g (o, n, N_out) and the weight and bias
    variances s_w^2, s_b^2 of `(s_w^2 <y, y'> + s_b^2) <g, g'>`. ``apply_fn`` may be the
    model or its bound ``apply`` method.
    """
    if callable(getattr(apply_fn, "layer_features", None)):
        return apply_fn
    owner = getattr(apply_fn, "__self__", None)
    if callable(getattr(owner, "layer_features", None)) and \
            getattr(apply_fn, "__func__", None) is getattr(type(owner), "apply", None):
        return owner
    return None


def _check_inputs(x, name: str, *, matrix: bool) -> None:
    """Inputs (n, ...) of a function, (n, d) of a lazykit model: non-empty, real and finite.

    Concrete inputs get :func:`lazykit._validation.as_matrix`'s checks (the errors of
    :meth:`lazykit.Network.kernel`); traced ones only the shape check.
    """
    if isinstance(x, jax.core.Tracer):
        if x.ndim < 1 or (matrix and x.ndim != 2):
            expected = "(n_samples, n_features)" if matrix else "(n_samples, ...)"
            raise ValueError(f"{name} must have shape {expected}; got a traced array of shape "
                             f"{x.shape}.")
        return
    try:
        array = np.asarray(x)
    except (TypeError, ValueError):
        array = None  # as_matrix raises the error that names the argument
    if array is None or matrix or array.ndim < 1 or array.ndim == 2:
        as_matrix(x, name)
    else:  # a function's (n,) or (n, ...) inputs: the same checks on rows
        as_matrix(array.reshape(array.shape[0], math.prod(array.shape[1:])), name)


def _choose(model, fn, params, x1, x2, diagonal) -> str:
    if model is not None:
        return "structured"
    if diagonal:
        return "jacobian"  # per-example Jacobians, one row at a time: n * o * P numbers
    rows = np.shape(x1)[0] + (0 if x2 is None else np.shape(x2)[0])
    jacobians = rows * _output_count(fn, params, x1) * _param_count(params) * 8
    return "jacobian" if jacobians <= _budget() else "ntvp"


def _param_count(params) -> int:
    return sum(int(np.prod(np.shape(p))) for p in jax.tree_util.tree_leaves(params))


def _output_count(fn, params, x1) -> int:
    """o, the outputs per example of ``fn`` (a function or a lazykit model)."""
    model = structured_model(fn)
    apply = fn if model is None else model.apply
    out = jax.eval_shape(lambda p, x: apply(p, x[:1]), params, x1)
    return int(np.prod(out.shape[1:])) if out.ndim > 1 else 1


def memory_needed(implementation: str, mode: str, n1: int, n2: int | None, outputs: int,
                  n_params: int, itemsize: int, *, diagonal: bool = False) -> tuple[int, int]:
    """Bytes (result, working arrays) of :func:`empirical_ntk`; ``n2=None`` for x2=None.

    The structured kernel holds a few (n1, n2)-sized Gram and gradient products at
    once; the Jacobian contraction all per-example Jacobians; NTK-vector products the
    full (n1, n2, o, o) kernel twice plus a chunk of rows sized by the memory budget.

    Examples:
        >>> from lazykit.empirical import memory_needed
        >>> memory_needed("structured", "trace", 1000, None, 1, 100, 8)
        (8000000, 24000000)
    """
    cols = n1 if n2 is None else n2
    per_pair = outputs * outputs if mode == "full" else 1
    result = (n1 if diagonal else n1 * cols) * per_pair * itemsize
    if implementation == "structured":
        return result, _STRUCTURED_TEMPORARIES * result
    rows = n1 + (0 if n2 is None else n2)
    if implementation == "jacobian":
        return result, rows * outputs * n_params * itemsize + 2 * result
    full = 0 if diagonal else n1 * cols * outputs * outputs * itemsize
    chunk = min(cols * outputs * (n_params + n1 * outputs) * itemsize, _budget())
    return result, 2 * full + chunk


# (n1, n2) arrays live besides the result in the structured sum: a Gram matrix of the
# layer inputs, a product of output gradients, and the previous partial sum.
_STRUCTURED_TEMPORARIES = 3


def _check_memory(fn, params, x1, x2, mode, diagonal, implementation) -> None:
    """Refuse, before anything is allocated, a kernel that cannot fit in memory."""
    n1 = np.shape(x1)[0]
    n2 = None if x2 is None else np.shape(x2)[0]
    outputs = _output_count(fn, params, x1)
    dtype = np.dtype(getattr(x1, "dtype", np.float64))
    result, work = memory_needed(implementation, mode, n1, n2, outputs, _param_count(params),
                                 dtype.itemsize, diagonal=diagonal)
    cols = n1 if n2 is None else n2
    shape = ((n1,) if diagonal else (n1, cols)) + ((outputs, outputs) if mode == "full" else ())
    check_memory(
        result + work,
        f"the empirical NTK of shape {shape} in {dtype.name} (mode={mode!r}, "
        f"implementation={implementation!r}: {result / 2**30:.2f} GiB for the result, "
        f"{work / 2**30:.2f} GiB of working arrays)",
        "Use fewer points or compute the kernel in blocks of rows (x1[i:j] against x2), "
        "diagonal=True if only k(x_i, x_i) is needed, " +
        ("mode='trace' (o^2 times smaller), " if mode == "full" else "") +
        "or float32 inputs and parameters.")


def _budget() -> int:
    from lazykit.kernels.compute import available_memory

    return int(min(JACOBIAN_BUDGET, 0.25 * available_memory()))


def _as_2d(out):
    return out[:, None] if out.ndim == 1 else out.reshape(out.shape[0], -1)


def _ntk(fn, params, x1, x2, mode, diagonal, implementation, per_example):
    if implementation == "structured":
        return _structured(fn, params, x1, x2, mode, diagonal)
    fn = fn if structured_model(fn) is None else fn.apply
    if implementation == "jacobian":
        return _jacobian_contraction(fn, params, x1, x2, mode, diagonal, per_example)
    return _ntk_vector_products(fn, params, x1, x2, mode, diagonal, per_example)


_ntk_jit = jax.jit(_ntk, static_argnums=(0, 4, 5, 6, 7))


# Structured (closed-form) implementation -------------------------------------------------

def _structured(model, params, x1, x2, mode, diagonal):
    """Sum over layers of (s_w^2 <y, y'> + s_b^2) * <g, g'> (module docstring)."""
    feats1 = model.layer_features(params, x1)
    feats2 = feats1 if x2 is None else model.layer_features(params, x2)
    total = 0.0
    for (y1, g1, sw2, sb2), (y2, g2, _, _) in zip(feats1, feats2, strict=True):
        outputs = g1.shape[0]
        if diagonal:
            k = sw2 * jnp.sum(y1 * y2, axis=1) + sb2
            if mode == "full":
                k, gg = k[:, None, None], jnp.einsum("ain,bin->iab", g1, g2)
            else:
                gg = jnp.einsum("ain,ain->i", g1, g2) / outputs
        elif mode == "trace":
            k = sw2 * (y1 @ y2.T) + sb2
            # One output: a plain matmul (the einsum would transpose (1, n, N) first).
            gg = g1[0] @ g2[0].T if outputs == 1 else jnp.einsum("ain,ajn->ij", g1, g2) / outputs
        else:
            k = (sw2 * (y1 @ y2.T) + sb2)[:, :, None, None]
            gg = jnp.einsum("ain,bjn->ijab", g1, g2)
        total = total + k * gg
    return total


# Jacobian contraction ---------------------------------------------------------------------

def _jacobians(fn, params, x, per_example):
    """Leaves of shape (n, o, P_leaf)."""
    if per_example:
        def one(p, xi):
            return _as_2d(fn(p, xi[None]))[0]

        jac = jax.vmap(jax.jacrev(one), in_axes=(None, 0))(params, x)
    else:
        jac = jax.jacrev(lambda p: _as_2d(fn(p, x)))(params)
    return [j.reshape(j.shape[0], j.shape[1], -1) for j in jax.tree_util.tree_leaves(jac)]


def _contract(a, b, mode, diagonal):
    outputs = a.shape[1]
    if diagonal:
        if mode == "full":
            return jnp.einsum("iap,ibp->iab", a, b)
        return jnp.einsum("iap,iap->i", a, b) / outputs
    if mode == "trace":
        return jnp.einsum("iap,jap->ij", a, b) / outputs
    return jnp.einsum("iap,jbp->ijab", a, b)


def _jacobian_contraction(fn, params, x1, x2, mode, diagonal, per_example):
    j1 = _jacobians(fn, params, x1, per_example)
    j2 = j1 if x2 is None else _jacobians(fn, params, x2, per_example)
    return functools.reduce(jnp.add, [_contract(a, b, mode, diagonal)
                                      for a, b in zip(j1, j2, strict=True)])


# NTK-vector products ---------------------------------------------------------------------

def _ntk_vector_products(fn, params, x1, x2, mode, diagonal, per_example):
    """Columns J1 J2^T e_(j, b): a VJP of f(x2) then a JVP of f(x1), in chunks of x2 rows."""
    x2 = x1 if x2 is None else x2
    if diagonal:
        if per_example:
            return _diagonal_products(fn, params, x1, x2, mode)
        whole = _ntk_vector_products(fn, params, x1, x2, mode, False, False)
        return jnp.einsum("ii...->i...", whole)

    def f1(p):
        return _as_2d(fn(p, x1))

    if per_example:
        def vjp_row(xj, cotangent):  # gradient of <cotangent, f(x2[j])>
            return jax.vjp(lambda p: _as_2d(fn(p, xj[None]))[0], params)[1](cotangent)[0]
    else:
        _, vjp2 = jax.vjp(lambda p: _as_2d(fn(p, x2)), params)

    out_shape = jax.eval_shape(lambda p: _as_2d(fn(p, x2[:1])), params).shape
    outputs = out_shape[1]
    eye = jnp.eye(outputs, dtype=x1.dtype)

    def column_block(j):
        """Theta[:, j, :, :] (n1, o, o): all outputs b of x2 row j."""
        if per_example:
            vectors = jax.vmap(lambda e: vjp_row(x2[j], e))(eye)
        else:
            cot = jnp.zeros((outputs, x2.shape[0], outputs), x1.dtype).at[:, j, :].set(eye)
            vectors = jax.vmap(lambda c: vjp2(c)[0])(cot)
        cols = jax.vmap(lambda v: jax.jvp(f1, (params,), (v,))[1])(vectors)  # (b, n1, a)
        return jnp.transpose(cols, (1, 2, 0))

    n_params = sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(params))
    per_row = outputs * (n_params + x1.shape[0] * outputs) * x1.dtype.itemsize
    chunk = int(max(1, min(x2.shape[0], _budget() // max(per_row, 1))))
    blocks = jax.lax.map(column_block, jnp.arange(x2.shape[0]), batch_size=chunk)
    full = jnp.transpose(blocks, (1, 0, 2, 3))  # (n1, n2, a, b)
    if mode == "trace":
        return jnp.einsum("ijaa->ij", full) / outputs
    return full


def _diagonal_products(fn, params, x1, x2, mode):
    """Theta(x1[i], x2[i]) pair by pair: its trace / o, or the (o, o) block for "full"."""
    def one(xi, xj):
        fi = lambda p: _as_2d(fn(p, xi[None]))[0]  # noqa: E731
        out, vjp_fn = jax.vjp(lambda p: _as_2d(fn(p, xj[None]))[0], params)
        eye = jnp.eye(out.shape[0], dtype=out.dtype)
        vectors = jax.vmap(lambda e: vjp_fn(e)[0])(eye)
        cols = jax.vmap(lambda v: jax.jvp(fi, (params,), (v,))[1])(vectors)  # (b, a)
        return cols.T if mode == "full" else jnp.trace(cols) / out.shape[0]

    return jax.vmap(one)(x1, x2)
