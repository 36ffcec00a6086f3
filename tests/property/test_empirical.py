"""Properties of empirical_ntk: every implementation and mode against an explicit Jacobian.

The reference is jax.jacobian of the flattened outputs with respect to every
parameter, contracted in NumPy: Theta[i, j, a, b] = sum_p J1[i, a, p] J2[j, b, p].
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lazykit
from tests.property._support import (
    MALFORMED,
    assert_close_scaled,
    corrupted,
    examples,
    matrices,
    raises_naming,
    x64,
)

D = 3


def _plain(params, x):
    """A plain apply_fn with two outputs (no structured path)."""
    return jnp.tanh(x @ params["W"]) @ params["v"]


def _models():
    with x64():
        two_layer = lazykit.TwoLayer(8, alpha=2.0)
        erf_two_layer = lazykit.TwoLayer(6, activation="erf", symmetric=False)
        net = lazykit.mlp(1, width=8, activation="relu", b_std=0.1)
        wide_out = lazykit.mlp(2, width=4, activation="erf", parameterization="standard",
                               out_dim=2)
        key = jax.random.PRNGKey(0)
        plain_params = {"W": jax.random.normal(key, (D, 5), jnp.float64),
                        "v": jax.random.normal(jax.random.split(key)[0], (5, 2), jnp.float64)}
        return [
            ("TwoLayer relu", two_layer.apply, two_layer.init(0, D, dtype="float64"), True),
            ("TwoLayer erf", erf_two_layer, erf_two_layer.init(1, D, dtype="float64"), True),
            ("mlp relu", net.apply, net.init(2, D, dtype=jnp.float64), True),
            ("mlp erf standard, 2 outputs", wide_out, wide_out.init(3, D, dtype=jnp.float64),
             True),
            ("plain function", _plain, plain_params, False),
        ]


MODELS = _models()


def _apply(model):
    return model.apply if isinstance(model, (lazykit.TwoLayer, lazykit.Network)) else model


@functools.cache
def _jacobian_fn(fn):
    def outputs(p, x):
        out = fn(p, x)
        return out.reshape(out.shape[0], -1)

    return jax.jit(jax.jacobian(outputs))


def _jacobian(fn, params, x):
    """(n, o, P) float64 Jacobian of the outputs, by jax.jacobian of the whole batch."""
    with x64():
        jac = _jacobian_fn(fn)(params, jnp.asarray(x, jnp.float64))
        leaves = [np.asarray(leaf).reshape(x.shape[0], -1, int(np.prod(leaf.shape[2:])))
                  for leaf in jax.tree_util.tree_leaves(jac)]
    return np.concatenate(leaves, axis=2)


def _reference(fn, params, x1, x2, mode):
    j1 = _jacobian(fn, params, x1)
    j2 = j1 if x2 is None else _jacobian(fn, params, x2)
    full = np.einsum("iap,jbp->ijab", j1, j2)
    own1 = np.einsum("iap,iap->i", j1, j1) / j1.shape[1]
    own2 = np.einsum("iap,iap->i", j2, j2) / j2.shape[1]
    trace = np.einsum("ijaa->ij", full) / full.shape[2]
    if mode == "full":
        return full, np.sqrt(own1)[:, None, None, None] * np.sqrt(own2)[None, :, None, None]
    if mode == "trace":
        return trace, np.sqrt(own1)[:, None] * np.sqrt(own2)[None, :]
    return np.diagonal(trace).copy(), np.sqrt(own1 * own2)


@settings(max_examples=examples(0.8))
@given(st.sampled_from(MODELS), st.sampled_from(("auto", "structured", "jacobian", "ntvp")),
       st.sampled_from(("full", "trace", "diagonal")),
       matrices(features=(D,), scales=(1e-6, 1.0, 1e6)), st.data())
def test_every_implementation_and_mode_equals_the_explicit_jacobian(model, implementation,
                                                                    mode, x1, data):
    label, apply_fn, params, structured = model
    if implementation == "structured" and not structured:
        implementation = "auto"
    x2 = None
    if data.draw(st.booleans()):
        rows = (x1.shape[0],) if mode == "diagonal" else (2,)
        x2 = data.draw(matrices(rows=rows, features=(D,), scales=(1e-6, 1.0, 1e6)))
    spelled = {"diagonal": True} if mode == "diagonal" else {"mode": mode}
    k = lazykit.empirical_ntk(apply_fn, params, x1, x2, **spelled,
                              implementation=implementation)
    assert k.dtype == jnp.float64
    expected, scale = _reference(_apply(apply_fn), params, x1, x2, mode)
    assert_close_scaled(np.asarray(k), expected, scale, 1e-11,
                        f"{label}, {implementation}, {mode}")


@settings(max_examples=examples(0.5))
@given(st.sampled_from(MODELS[:3]), matrices(rows=(3,), features=(D,), scales=(0.1, 1.0)))
def test_trace_kernel_is_symmetric_and_positive_semidefinite(model, x):
    _, apply_fn, params, _ = model
    k = np.asarray(lazykit.empirical_ntk(apply_fn, params, x))
    scale = np.sqrt(np.abs(np.diag(k)))
    assert_close_scaled(k, k.T, np.outer(scale, scale), 1e-13, "symmetry")
    peak = np.max(np.abs(k))
    if peak > 0:
        assert np.linalg.eigvalsh(k / peak).min() >= -1e-12


@settings(max_examples=examples(0.5))
@given(st.sampled_from(MODELS[:3]), matrices(rows=(3,), features=(D,), scales=(0.1, 1.0)))
def test_float32_parameters_and_inputs_give_float32_near_the_float64_kernel(model, x):
    _, apply_fn, params, _ = model
    single = jax.tree_util.tree_map(lambda p: np.asarray(p, np.float32), params)
    k32 = lazykit.empirical_ntk(apply_fn, single, x.astype(np.float32))
    assert k32.dtype == jnp.float32
    with x64():
        wide = jax.tree_util.tree_map(lambda p: jnp.asarray(np.asarray(p, np.float64)), single)
    expected, scale = _reference(_apply(apply_fn), wide, x.astype(np.float32), None, "trace")
    assert_close_scaled(np.asarray(k32), expected, scale, 1e-4, "float32")


@given(st.sampled_from(MODELS), st.sampled_from(("x1", "x2")),
       matrices(rows=(3,), features=(D,)), st.data())
def test_nan_and_inf_inputs_are_refused_naming_them(model, which, x, data):
    _, apply_fn, params, _ = model
    bad = data.draw(corrupted(x))
    args = (bad, None) if which == "x1" else (x, bad)
    with raises_naming(which):
        lazykit.empirical_ntk(apply_fn, params, *args)


@given(st.sampled_from(MODELS), st.data())
def test_nan_parameters_are_refused_naming_params(model, data):
    _, apply_fn, params, _ = model
    leaves, tree = jax.tree_util.tree_flatten(params)
    index = data.draw(st.integers(0, len(leaves) - 1))
    leaf = np.array(leaves[index])
    leaf.reshape(-1)[data.draw(st.integers(0, leaf.size - 1))] = data.draw(
        st.sampled_from((np.nan, np.inf)))
    leaves[index] = leaf
    with raises_naming("params"):
        lazykit.empirical_ntk(apply_fn, jax.tree_util.tree_unflatten(tree, leaves), np.ones((2, D)))


@pytest.mark.parametrize("kind", ["empty rows", "empty features", "empty 1-D", "1-D", "3-D",
                                  "scalar", "strings", "objects"])
@pytest.mark.parametrize("model", MODELS[:4], ids=[m[0] for m in MODELS[:4]])
def test_malformed_inputs_of_lazykit_models_are_refused_naming_x1(model, kind):
    _, apply_fn, params, _ = model
    with raises_naming("x1"):
        lazykit.empirical_ntk(apply_fn, params, MALFORMED[kind])


@given(st.sampled_from(MODELS), st.one_of(
    st.tuples(st.just("mode"), st.text(alphabet="abcdefghijklmnopqrstuvwxyz", max_size=8)),
    st.tuples(st.just("implementation"), st.text(alphabet="abcdefghijklmnopqrstuvwxyz",
                                                 max_size=8))))
def test_unknown_modes_and_implementations_are_refused_naming_them(model, case):
    _, apply_fn, params, _ = model
    name, value = case
    if value in ("full", "trace", "diagonal", "auto", "structured", "jacobian", "ntvp"):
        return
    with raises_naming(name):
        lazykit.empirical_ntk(apply_fn, params, np.ones((2, D)), **{name: value})


def test_structured_implementation_needs_a_lazykit_model():
    _, apply_fn, params, _ = MODELS[-1]
    with raises_naming("implementation"):
        lazykit.empirical_ntk(apply_fn, params, np.ones((2, D)), implementation="structured")


@given(st.sampled_from(MODELS), matrices(rows=(1, 3), features=(D,)),
       matrices(rows=(2,), features=(D,)))
def test_diagonal_mode_refuses_different_row_counts(model, x1, x2):
    _, apply_fn, params, _ = model
    with raises_naming("x1", "x2"):
        lazykit.empirical_ntk(apply_fn, params, x1, x2, diagonal=True)
