"""Properties of laziness: kappa and its factors against explicit NumPy derivatives.

For a TwoLayer the Jacobian and the Hessians of every output are written out in
NumPy (tests/property/_reference.py). Then ||Dg|| is the largest singular value
of the Jacobian, and the Hessian-norm search (documented as a lower bound of
sup over unit v of ||sum_i v_i D^2 g_i||) must lie between the norm at the
residual direction, where the search starts, and sqrt(sum_i ||D^2 g_i||^2).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lazykit
from tests.property import _reference as ref
from tests.property._support import MALFORMED, corrupted, examples, matrices, raises_naming

N, D, WIDTH = 6, 2, 8
DATA = matrices(rows=(N,), features=(D,), scales=(0.1, 1.0, 3.0))
TARGETS = hnp.arrays(np.float64, (N,), elements=st.floats(-2, 2)).filter(
    lambda y: np.any(y != 0))


def _params(activation):
    return lazykit.TwoLayer(WIDTH, activation=activation).init(0, D, dtype="float64")


@settings(max_examples=examples(1.0))
@given(DATA, TARGETS, st.sampled_from(("relu", "erf")), st.sampled_from((1e-3, 1.0, 1e3)))
def test_kappa_and_its_factors_match_explicit_derivatives(X, y, activation, alpha):
    model = lazykit.TwoLayer(WIDTH, activation=activation, alpha=alpha)
    params = _params(activation)
    result = lazykit.laziness(model, params, X, y)
    jac = ref.two_layer_jacobian(activation, params, X, alpha)
    hessians = ref.two_layer_hessians(activation, params, X, alpha)
    np.testing.assert_allclose(result.residual_norm, np.linalg.norm(y), rtol=1e-12)
    np.testing.assert_allclose(result.jacobian_norm, np.linalg.norm(jac, 2), rtol=1e-5)
    at_residual = np.linalg.norm(np.tensordot(-y / np.linalg.norm(y), hessians, 1), 2)
    upper = np.sqrt(sum(np.linalg.norm(h, 2) ** 2 for h in hessians))
    assert at_residual * (1 - 1e-4) <= result.hessian_norm <= upper * (1 + 1e-9), (
        at_residual, result.hessian_norm, upper)
    np.testing.assert_allclose(
        result.kappa, result.residual_norm * result.hessian_norm / result.jacobian_norm**2,
        rtol=1e-12)


@settings(max_examples=examples(0.5))
@given(DATA, TARGETS, st.sampled_from(("relu", "erf")),
       st.sampled_from(((1e-3, 1.0), (1.0, 1e3), (1e-2, 1e4))))
def test_kappa_is_inversely_proportional_to_alpha(X, y, activation, alphas):
    model = lazykit.TwoLayer(WIDTH, activation=activation)
    params = _params(activation)
    small, large = (lazykit.laziness(model.replace(alpha=a), params, X, y).kappa
                    for a in alphas)
    np.testing.assert_allclose(small / large, alphas[1] / alphas[0], rtol=1e-6)


def _laziness(X, y, **kwargs):
    model = lazykit.TwoLayer(WIDTH, activation="erf")
    return lazykit.laziness(model, _params("erf"), X, y, **kwargs)


@given(DATA, TARGETS, st.sampled_from(("X", "y")), st.data())
def test_nan_and_inf_data_are_refused_naming_them(X, y, which, data):
    if which == "X":
        X = data.draw(corrupted(X))
    else:
        y = data.draw(corrupted(y[:, None]))[:, 0]
    with raises_naming(which):
        _laziness(X, y)


@pytest.mark.parametrize("kind", ["empty rows", "empty features", "1-D", "3-D", "scalar",
                                  "complex", "strings"])
def test_malformed_inputs_are_refused_naming_x(kind):
    with raises_naming("X"):
        _laziness(MALFORMED[kind], np.zeros(3))


@pytest.mark.parametrize("y", [np.ones(N - 1), np.ones((N, 2)), np.ones(N, dtype=complex),
                               np.array(list("abcdef")), np.ones((N, 1, 1))],
                         ids=["too few", "two outputs", "complex", "strings", "3-D"])
def test_malformed_targets_are_refused_naming_y(y):
    with raises_naming("y"):
        _laziness(np.ones((N, D)), y)


@pytest.mark.parametrize(("name", "value"), [
    ("max_iter", 0), ("max_iter", -1), ("max_iter", 2.5), ("restarts", -1),
    ("restarts", 1.5), ("tol", np.nan), ("tol", -1.0), ("tol", np.inf), ("seed", -1),
    ("seed", "zero"), ("dtype", "float16"),
])
def test_bad_arguments_are_refused_naming_them(name, value):
    X = np.random.default_rng(0).normal(size=(N, D))
    with raises_naming(name):
        _laziness(X, np.ones(N), **{"max_iter": 20, name: value})


@given(DATA, TARGETS, st.sampled_from((0.0, -2.0, np.nan, np.inf)))
def test_network_output_scales_must_be_positive_and_finite(X, y, alpha):
    net = lazykit.mlp(1, width=8)
    with raises_naming("alpha"):
        lazykit.laziness(net, net.init(0, D), X, y, alpha=alpha)
