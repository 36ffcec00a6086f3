"""Properties of the infinite-width kernels: Network.kernel, kernel_fn and mlp.

References: the depth-1 ReLU arc-cosine formula in NumPy (Kahan's angle), a
50-digit mpmath transcription of the layer recursion, and structural facts
(symmetry, positive semi-definiteness, diagonal mode, tiles, permutations,
homogeneity). A kernel entry may differ from its reference by ``RTOL`` of its
natural size sqrt(K(x, x) K(x', x')), plus ten times the change that rounding
the input correlation by 2e-15 causes (the documented limit for near-duplicate
inputs, whose angle a Gram matrix cannot resolve).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lazykit
from tests.property import _reference as ref
from tests.property._support import (
    MALFORMED,
    assert_close_scaled,
    corrupted,
    examples,
    matrices,
    moderate_matrices,
    pair_scale,
    pairs,
    raises_naming,
    x64,
)

RTOL = 1e-11
SQRT2 = 2.0**0.5
# Shared by the tests, so that compiled kernels are reused.
RELU = lazykit.mlp(1, activation="relu", W_std=SQRT2, b_std=0.1)
RELU_NO_BIAS = lazykit.mlp(1, activation="relu", W_std=2.0, b_std=None)
RELU_DEEP = lazykit.mlp(3, activation="relu", W_std=1.5, b_std=0.2)
ERF = lazykit.mlp(2, activation="erf", W_std=1.5, b_std=None)
ERF_STANDARD = lazykit.mlp(1, activation="erf", W_std=1.0, b_std=1.0,
                           parameterization="standard")
DESCRIPTIONS = {  # activation and the arguments of the references
    RELU: ("relu", dict(depth=1, W_std=SQRT2, b_std=0.1)),
    RELU_NO_BIAS: ("relu", dict(depth=1, W_std=2.0, b_std=None)),
    RELU_DEEP: ("relu", dict(depth=3, W_std=1.5, b_std=0.2)),
    ERF: ("erf", dict(depth=2, W_std=1.5, b_std=None)),
    ERF_STANDARD: ("erf", dict(depth=1, W_std=1.0, b_std=1.0, parameterization="standard")),
}
DUALS = {"relu": lambda k12, k11, k22: ref.abrelu_dual(k12, k11, k22, 0, 1),
         "erf": lambda k12, k11, k22: ref.erf_dual(k12, k11, k22, 1, 1, 0)}
NETWORKS = (RELU, ERF)  # for the structural properties


def _compare(k, expected, diag1, diag2, what, rtol=RTOL):
    """Each entry within rtol of sqrt(K(x1_i, x1_i) K(x2_j, x2_j)) (reference diagonals),
    plus ten times its sensitivity to rounding the input correlation."""
    for index, name in enumerate(("nngp", "ntk")):
        scale = pair_scale(diag1[index], diag2[index])
        slack = 10 * getattr(expected, f"sensitivity_{name}")
        assert_close_scaled(getattr(k, name), getattr(expected, name), scale + slack / rtol,
                            rtol, f"{what} {name}")


def _kernel(net, *args, **kwargs):
    """net.kernel(...), or None where an erf network refuses a huge variance as an overflow.

    The exact erf kernels stay finite there; whether lazykit computes them is checked
    against the mpmath reference in test_activations.py, not by the structural properties.
    """
    try:
        return net.kernel(*args, **kwargs)
    except ValueError as err:
        if "overflow" in str(err) and isinstance(net.layers[1], lazykit.Erf):
            return None
        raise


def _own_scale(k, name):
    gram = getattr(k, name)
    return pair_scale(np.diag(gram), np.diag(gram))


@given(pairs(), st.sampled_from((RELU, RELU_NO_BIAS)))
def test_relu_depth_1_matches_the_numpy_arc_cosine_formula(xs, net):
    x1, x2 = xs
    x2_ = x1 if x2 is None else x2
    stds = DESCRIPTIONS[net][1]
    expected = ref.relu_depth1_numpy(x1, x2_, stds["W_std"], stds["b_std"])
    own = [ref.relu_depth1_numpy(x, x, stds["W_std"], stds["b_std"]) for x in (x1, x2_)]
    diag1, diag2 = [(np.diag(o.nngp), np.diag(o.ntk)) for o in own]
    _compare(net.kernel(x1, x2), expected, diag1, diag2, "relu depth 1")


@settings(max_examples=examples(0.75))
@given(pairs(moderate_matrices), st.sampled_from((RELU_DEEP, ERF, ERF_STANDARD)))
def test_deep_kernels_match_the_mpmath_recursion(xs, net):
    x1, x2 = xs
    activation, description = DESCRIPTIONS[net]
    dual = DUALS[activation]
    k = net.kernel(x1, x2)
    expected = ref.mlp_kernels(x1, x2, dual, **description)
    diag1 = ref.mlp_diagonal(x1, dual, **description)
    diag2 = diag1 if x2 is None else ref.mlp_diagonal(x2, dual, **description)
    _compare(k, expected, diag1, diag2, f"{activation} {description}", rtol=1e-10)


@given(matrices(rows=(3,), features=(3,)), st.sampled_from(
    (RELU, ERF, lazykit.mlp(1, activation="sin", W_std=1.0, b_std=0.5),
     lazykit.mlp(1, activation=lazykit.LeakyRelu(0.2), W_std=2.0, b_std=1.0))))
def test_gram_matrix_is_symmetric_and_positive_semidefinite(x, net):
    k = _kernel(net, x)
    if k is None:
        return
    for name in ("nngp", "ntk"):
        gram = getattr(k, name)
        assert_close_scaled(gram, gram.T, _own_scale(k, name), 1e-14, f"{name} symmetry")
        assert np.all(np.diag(gram) >= 0)
        peak = np.max(np.abs(gram))
        if peak > 0:
            eigenvalues = np.linalg.eigvalsh(gram / peak)
            assert eigenvalues.min() >= -1e-10, (name, eigenvalues)


@given(pairs(functools.partial(matrices, features=(3,))), st.sampled_from(NETWORKS))
def test_diagonal_mode_equals_the_diagonal_of_the_full_kernel(xs, net):
    x1, x2 = xs
    if x2 is not None:
        x2 = np.resize(x2, x1.shape)  # diagonal mode pairs x1[i] with x2[i]
    full = _kernel(net, x1, x2)
    if full is None:
        return
    diagonal = net.kernel(x1, x2, diagonal=True)
    own1 = net.kernel(x1, diagonal=True)
    own2 = own1 if x2 is None else net.kernel(x2, diagonal=True)
    # The two modes round the cross moment differently: near-duplicates may move by the
    # documented sqrt(eps) limit.
    rtol = 1e-12 if x2 is None else 2e-7
    for name in ("nngp", "ntk"):
        assert getattr(diagonal, name).shape == (x1.shape[0],)
        scale = np.sqrt(getattr(own1, name)) * np.sqrt(getattr(own2, name))
        assert_close_scaled(getattr(diagonal, name), np.diag(getattr(full, name)), scale, rtol,
                            f"diagonal {name}")


@given(pairs(functools.partial(matrices, features=(3,))), st.sampled_from(NETWORKS))
def test_swapping_the_arguments_transposes_the_kernel(xs, net):
    x1, x2 = xs
    x2 = x1.copy() if x2 is None else x2
    k12 = _kernel(net, x1, x2)
    if k12 is None:
        return
    k21 = net.kernel(x2, x1)
    own1, own2 = net.kernel(x1, diagonal=True), net.kernel(x2, diagonal=True)
    for name in ("nngp", "ntk"):
        scale = pair_scale(getattr(own1, name), getattr(own2, name))
        assert_close_scaled(getattr(k12, name), getattr(k21, name).T, scale, 2e-7, name)


@given(matrices(rows=(3,), features=(3,)), st.permutations(range(3)), st.sampled_from((1, 2)),
       st.sampled_from(NETWORKS))
def test_permuting_rows_and_tiling_permute_the_kernel_and_nothing_else(x, order, tile, net):
    order = np.array(order)
    k = _kernel(net, x)
    if k is None:
        return
    permuted = net.kernel(x[order], tile_size=tile)
    for name in ("nngp", "ntk"):
        gram = getattr(k, name)[np.ix_(order, order)]
        assert_close_scaled(getattr(permuted, name), gram, pair_scale(np.diag(gram),
                            np.diag(gram)), 2e-7, f"{name} permuted, tile_size={tile}")


@given(matrices(scales=(1.0,)), st.sampled_from((-400, -30, 30, 400)))
def test_bias_free_relu_kernels_are_homogeneous_of_degree_2(x, power):
    k, scaled = RELU_NO_BIAS.kernel(x), RELU_NO_BIAS.kernel(x * 2.0**power)
    for name in ("nngp", "ntk"):
        assert_close_scaled(getattr(scaled, name) / 4.0**power, getattr(k, name),
                            _own_scale(k, name), 1e-13, name)


@given(st.lists(st.integers(-3, 3), min_size=9, max_size=9),
       st.sampled_from((np.int8, np.int64, np.bool_, np.float32, np.float64)),
       st.sampled_from((None, "float64", "float32", np.float32)))
def test_any_real_dtype_gives_the_requested_dtype_and_the_float64_values(values, in_dtype,
                                                                          dtype):
    x = np.array(values).reshape(3, 3).astype(in_dtype)
    k, exact = RELU.kernel(x, dtype=dtype), RELU.kernel(x.astype(np.float64))
    single = dtype is not None and np.dtype(dtype) == np.float32
    for name in ("nngp", "ntk"):
        got = getattr(k, name)
        assert got.dtype == (np.float32 if single else np.float64)
        assert_close_scaled(got, getattr(exact, name), _own_scale(exact, name),
                            1e-4 if single else 1e-15, name)


@given(pairs(), st.sampled_from(("x1", "x2")), st.data())
def test_nan_and_inf_inputs_are_refused_naming_the_argument(xs, which, data):
    x1, x2 = xs
    x2 = x1 if x2 is None else x2
    if which == "x1":
        x1 = data.draw(corrupted(x1))
    else:
        x2 = data.draw(corrupted(x2))
    with raises_naming(which):
        RELU.kernel(x1, x2)


@pytest.mark.parametrize("as_second", [False, True])
@pytest.mark.parametrize("kind", MALFORMED)
def test_malformed_inputs_are_refused_naming_the_argument(kind, as_second):
    x = MALFORMED[kind]
    args = (np.ones((2, 3)), x) if as_second else (x,)
    with raises_naming("x2" if as_second else "x1"):
        RELU.kernel(*args)


@given(matrices(features=(1,)), matrices(features=(3,)))
def test_mismatched_features_are_refused_naming_both_inputs(x1, x2):
    with raises_naming("x1", "x2"):
        RELU.kernel(x1, x2)


@given(matrices(rows=(2,)), matrices(rows=(1, 3)))
def test_diagonal_mode_refuses_different_row_counts(x1, x2):
    x2 = np.resize(x2, (x2.shape[0], x1.shape[1]))
    with raises_naming("x1", "x2"):
        RELU.kernel(x1, x2, diagonal=True)


@given(st.sampled_from(("float16", "int32", "complex128", "nope", "", int, np.float16, object)))
def test_unsupported_dtypes_are_refused_naming_dtype(dtype):
    with raises_naming("dtype"):
        RELU.kernel(np.ones((2, 3)), dtype=dtype)


BAD_COUNTS = st.one_of(st.integers(-3, 0), st.just(True), st.floats(0.5, 4.5),
                       st.sampled_from(("2", 2.0, np.nan)))


@given(BAD_COUNTS)
def test_bad_tile_sizes_are_refused_naming_tile_size(tile):
    with raises_naming("tile_size"):
        RELU.kernel(np.ones((2, 3)), tile_size=tile)


BAD_STDS = st.one_of(st.floats(max_value=-1e-300), st.sampled_from((np.nan, np.inf, -np.inf)),
                     st.sampled_from(("1.0", 1j, (1.0,))))


@given(st.sampled_from(("depth", "width", "out_dim")), BAD_COUNTS)
def test_mlp_refuses_bad_counts_naming_them(name, value):
    with raises_naming(name):
        lazykit.mlp(**{"depth": 1, name: value})


@given(st.sampled_from(("W_std", "b_std")), BAD_STDS)
def test_mlp_and_dense_refuse_bad_standard_deviations_naming_them(name, value):
    with raises_naming(name):
        lazykit.mlp(1, **{name: value})
    with raises_naming(name):
        lazykit.Dense(4, **{name: value})


@given(st.one_of(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_ -", max_size=10),
                 st.sampled_from(("NTK", "Standard", None, 1))))
def test_unknown_parameterizations_are_refused_naming_the_argument(value):
    if value in ("ntk", "standard"):
        return
    with raises_naming("parameterization"):
        lazykit.mlp(1, parameterization=value)


@functools.cache
def _jitted_kernel_fn(net, diagonal):
    return jax.jit(functools.partial(net.kernel_fn, diagonal=diagonal))


@settings(max_examples=examples(0.5))
@given(matrices(scales=(1e-6, 1.0, 1e6), features=(3,)), st.sampled_from(NETWORKS),
       st.booleans())
def test_jitted_kernel_fn_equals_kernel(x, net, diagonal):
    with x64():
        k = _jitted_kernel_fn(net, diagonal)(jnp.asarray(x))
        assert k.ntk.dtype == jnp.float64
    expected, own = net.kernel(x, diagonal=diagonal), net.kernel(x, diagonal=True)
    for name in ("nngp", "ntk"):
        scale = np.sqrt(getattr(own, name))
        scale = scale * scale if diagonal else pair_scale(scale**2, scale**2)
        assert_close_scaled(np.asarray(getattr(k, name)), getattr(expected, name), scale,
                            1e-12, name)


@settings(max_examples=examples(0.25))
@given(matrices(scales=(1.0,)))
def test_jitting_kernel_points_to_kernel_fn(x):
    with pytest.raises((TypeError, ValueError)) as info:
        jax.jit(RELU.kernel)(jnp.asarray(x))
    assert "kernel_fn" in str(info.value), str(info.value)[:500]
