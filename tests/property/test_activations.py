"""Properties of the activations: closed-form kernels against references, parameter checks.

Every closed-form dual is compared, through a depth-1 network, with the
textbook expectation evaluated by mpmath at 50 digits (tests/property/_reference.py);
the RBF activation with scikit-learn's rbf_kernel; GELU with a NumPy Gauss-Hermite
rule; the quadrature activation with the exact polynomial kernels. Parameters
that are not finite real numbers, or outside the activation's domain, must be
refused naming the parameter.
"""

import math

import numpy as np
import pytest
import scipy.special
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics.pairwise import rbf_kernel

import lazykit
from tests.property import _reference as ref
from tests.property._support import (
    SCALES,
    assert_close_scaled,
    examples,
    matrices,
    mentions,
    pair_scale,
    raises_naming,
)

W_STD, B_STD = 1.2, 0.3
SQRT2 = math.sqrt(2.0)

CLOSED_FORMS = [  # (activation, reference dual)
    (lazykit.LeakyRelu(0.2), lambda k12, k11, k22: ref.abrelu_dual(k12, k11, k22, 0.2, 1)),
    (lazykit.ABRelu(-0.5, 2.0), lambda k12, k11, k22: ref.abrelu_dual(k12, k11, k22, -0.5, 2)),
    (lazykit.Abs(), lambda k12, k11, k22: ref.abrelu_dual(k12, k11, k22, -1, 1)),
    (lazykit.Step(), ref.step_dual),
    (lazykit.Sign(), ref.sign_dual),
    (lazykit.Erf(0.5, 2.0, 0.3), lambda k12, k11, k22: ref.erf_dual(k12, k11, k22, 0.5, 2, 0.3)),
    (lazykit.Sin(1.5, 0.7, 0.2), lambda k12, k11, k22: ref.sin_dual(k12, k11, k22, 1.5, 0.7, 0.2)),
    (lazykit.Cos(), lambda k12, k11, k22: ref.sin_dual(k12, k11, k22, 1, 1, math.pi / 2)),
    (lazykit.Rbf(0.5),
     lambda k12, k11, k22: ref.sin_dual(k12, k11, k22, SQRT2, 1.0, math.pi / 4)),
    (lazykit.Exp(0.5, 0.3), lambda k12, k11, k22: ref.exp_dual(k12, k11, k22, 0.5, 0.3)),
    (lazykit.Gaussian(1.0, -0.5),
     lambda k12, k11, k22: ref.gaussian_dual(k12, k11, k22, 1.0, -0.5)),
    (lazykit.Identity(), ref.identity_dual),
    (lazykit.Polynomial((0.5, -1.0, 0.25)),
     lambda k12, k11, k22: ref.polynomial_dual(k12, k11, k22, (0.5, -1.0, 0.25))),
    (lazykit.Monomial(3), lambda k12, k11, k22: ref.polynomial_dual(k12, k11, k22, (0, 0, 0, 1))),
]
MODERATE = (0.1, 1.0, 2.0)


def _check_depth_1(net, x, dual, rtol, *, description=None, x2=None):
    description = description or dict(depth=1, W_std=W_STD, b_std=B_STD)
    k = net.kernel(x, x2)  # first: a refusal fails fast (cheap shrinking)
    expected = ref.mlp_kernels(x, x2, dual, **description)
    diag1 = ref.mlp_diagonal(x, dual, **description)
    diag2 = diag1 if x2 is None else ref.mlp_diagonal(x2, dual, **description)
    for index, name in enumerate(("nngp", "ntk")):
        scale = pair_scale(diag1[index], diag2[index])
        slack = 10 * getattr(expected, f"sensitivity_{name}")
        assert_close_scaled(getattr(k, name), getattr(expected, name), scale + slack / rtol,
                            rtol, f"{net.layers[1]} {name}")


@settings(max_examples=examples(2.0))
@given(matrices(rows=(3,), features=(3,), scales=MODERATE), st.sampled_from(CLOSED_FORMS))
def test_closed_form_kernels_match_the_textbook_expectations(x, case):
    activation, dual = case
    net = lazykit.mlp(1, activation=activation, W_std=W_STD, b_std=B_STD)
    _check_depth_1(net, x, dual, 1e-10)


ERF_HUGE = [  # (network, its description, input magnitudes with finite variances)
    (lazykit.mlp(1, activation="erf", W_std=1e8, b_std=0.1),
     dict(depth=1, W_std=1e8, b_std=0.1), (1e-6, 1.0, 1e6)),
    (lazykit.mlp(1, activation="erf", W_std=1e4, b_std=None),
     dict(depth=1, W_std=1e4, b_std=None), (1e-6, 1.0, 1e8)),
    (lazykit.mlp(2, activation="erf", W_std=1.5, b_std=None),
     dict(depth=2, W_std=1.5, b_std=None), SCALES),
]


@settings(max_examples=examples(1.0))
@given(st.sampled_from(ERF_HUGE), st.data())
def test_erf_kernels_are_accurate_at_huge_variances(case, data):
    net, description, scales = case
    x = data.draw(matrices(rows=(3,), scales=scales))
    _check_depth_1(net, x, lambda k12, k11, k22: ref.erf_dual(k12, k11, k22, 1, 1, 0), 1e-9,
                   description=description)


@pytest.mark.parametrize("x", [[[0.3, -1.2, 0.8, 0.5]], [[1e8, 0.0], [0.0, 1e8]],
                               [[1e5, 1.0], [1e5, 2.0]]])
def test_erf_at_huge_variance_reproducers_of_issue_16(x):
    x = np.array(x)
    description = dict(depth=1, W_std=1e8, b_std=0.1)
    _check_depth_1(lazykit.mlp(1, activation="erf", **{k: v for k, v in description.items()
                                                          if k != "depth"}),
                   x, lambda k12, k11, k22: ref.erf_dual(k12, k11, k22, 1, 1, 0), 1e-9,
                   description=description)


@given(matrices(rows=(3,), scales=MODERATE), st.sampled_from((0.1, 1.0)))
def test_rbf_activation_gives_the_rbf_kernel(x, gamma):
    net = lazykit.mlp(1, activation=lazykit.Rbf(gamma), W_std=1.0, b_std=None)
    expected = rbf_kernel(x, gamma=gamma / x.shape[1])
    assert_close_scaled(net.kernel(x).nngp, expected, np.ones_like(expected), 1e-10, "rbf")


def _gelu(x):
    return x * scipy.special.ndtr(x)


def _gelu_slope(x):
    return scipy.special.ndtr(x) + x * np.exp(-x * x / 2) / math.sqrt(2 * math.pi)


@settings(max_examples=examples(0.5))
@given(matrices(rows=(3,), features=(3,), scales=(0.1, 1.0), relations=("free", "zero")))
def test_gelu_matches_a_numpy_gauss_hermite_rule(x):
    net = lazykit.mlp(1, activation="gelu", W_std=1.0, b_std=0.2)
    k1 = x @ x.T / 3 + 0.04
    nngp, ntk = np.empty_like(k1), np.empty_like(k1)
    for i in range(3):
        for j in range(3):
            e = ref.gauss_hermite_dual_numpy(_gelu, k1[i, j], k1[i, i], k1[j, j])
            de = ref.gauss_hermite_dual_numpy(_gelu_slope, k1[i, j], k1[i, i], k1[j, j])
            nngp[i, j] = e + 0.04
            ntk[i, j] = nngp[i, j] + de * k1[i, j]
    k = net.kernel(x)
    for name, expected in (("nngp", nngp), ("ntk", ntk)):
        assert_close_scaled(getattr(k, name), expected, pair_scale(np.diag(expected),
                            np.diag(expected)), 1e-9, name)


def _cubic(x):
    return 0.5 - x + 0.25 * x**3


def _quintic(x):
    return x**5 - 2.0 * x**2


POLYNOMIALS = [(_cubic, (0.5, -1.0, 0.0, 0.25)), (_quintic, (0.0, 0.0, -2.0, 0.0, 0.0, 1.0))]


@settings(max_examples=examples(0.5))
@given(matrices(rows=(3,), features=(3,), scales=(0.1, 1.0)), st.sampled_from(POLYNOMIALS),
       st.sampled_from((6, 8)))
def test_quadrature_is_exact_for_polynomials_of_low_degree(x, polynomial, n_nodes):
    fn, coef = polynomial  # degree < n_nodes: phi(u) phi(v) has degree < 2 n_nodes
    quadrature = lazykit.mlp(1, activation=lazykit.Elementwise(fn, n_nodes=n_nodes))
    exact = lazykit.mlp(1, activation=lazykit.Polynomial(coef))
    k, expected = quadrature.kernel(x), exact.kernel(x)
    for name in ("nngp", "ntk"):
        gram = getattr(expected, name)
        assert_close_scaled(getattr(k, name), gram, pair_scale(np.diag(gram), np.diag(gram)),
                            1e-10, name)


@settings(max_examples=examples(1.0))
@given(matrices(rows=(3,), scales=(0.1, 1.0)),
       st.one_of(st.sampled_from((0, 1, 2, 7, 13, 20)), st.integers(21, 60)))
def test_monomials_match_their_hermite_moments_or_are_refused(x, degree):
    if degree > 20:  # beyond the closed-form moments: refused naming the degree
        with raises_naming("degree"):
            lazykit.mlp(1, activation=lazykit.Monomial(degree), W_std=W_STD,
                        b_std=B_STD).kernel(x)
        return
    coef = (0,) * degree + (1,)
    net = lazykit.mlp(1, activation=lazykit.Monomial(degree), W_std=W_STD, b_std=B_STD)
    _check_depth_1(net, x, lambda k12, k11, k22: ref.polynomial_dual(k12, k11, k22, coef),
                   1e-10)


@given(matrices(rows=(3,), scales=(0.1, 1.0, 3.0)), st.sampled_from((0.005, 0.05, 0.5)))
def test_gaussian_kernel_is_refused_exactly_where_its_expectation_diverges(x, b):
    net = lazykit.mlp(1, activation=lazykit.Gaussian(1.0, b), W_std=1.0, b_std=0.1)
    description = dict(depth=1, W_std=1.0, b_std=0.1)
    dual = lambda k12, k11, k22: ref.gaussian_dual(k12, k11, k22, 1.0, b)  # noqa: E731
    expected = ref.mlp_kernels(x, None, dual, **description)
    if np.all(np.isfinite(expected.nngp)):
        try:
            _check_depth_1(net, x, dual, 1e-9, description=description)
        except ValueError as err:  # a conservative refusal is allowed, if it names b
            assert mentions(str(err), "b"), str(err)
    else:
        with raises_naming("b"):
            net.kernel(x)


BAD_REALS = st.sampled_from((np.nan, np.inf, -np.inf, "1.0", None, 1j, True, [1.0]))
PARAMETERS = [  # (constructor, parameter)
    (lazykit.ABRelu, "a"), (lazykit.ABRelu, "b"), (lazykit.LeakyRelu, "alpha"),
    (lazykit.Erf, "a"), (lazykit.Erf, "b"), (lazykit.Erf, "c"),
    (lazykit.Sin, "a"), (lazykit.Sin, "b"), (lazykit.Sin, "c"), (lazykit.Cos, "a"),
    (lazykit.Rbf, "gamma"), (lazykit.Gaussian, "a"), (lazykit.Gaussian, "b"),
    (lazykit.Exp, "a"), (lazykit.Exp, "b"),
]


@given(st.sampled_from(PARAMETERS), BAD_REALS)
def test_parameters_that_are_not_finite_real_numbers_are_refused_naming_them(case, value):
    constructor, name = case
    with raises_naming(name):
        activation = constructor(**{name: value})
        lazykit.mlp(1, activation=activation).kernel(np.ones((2, 3)))


@given(st.floats(max_value=-1e-300, allow_nan=False, allow_infinity=False))
def test_negative_rbf_gamma_is_refused(gamma):
    with raises_naming("gamma"):
        lazykit.mlp(1, activation=lazykit.Rbf(gamma)).kernel(np.ones((2, 3)))


@given(st.one_of(st.integers(max_value=-1), st.sampled_from((1.5, 2.0, "2", None, True))))
def test_bad_monomial_degrees_are_refused_naming_degree(degree):
    with raises_naming("degree"):
        lazykit.Monomial(degree)


@given(st.one_of(st.just(()), st.lists(st.sampled_from((1.0, np.nan, np.inf)), min_size=1,
                                       max_size=4).filter(lambda c: not np.all(np.isfinite(c)))))
def test_polynomial_coefficients_must_be_finite_and_non_empty(coef):
    with raises_naming("coef"):
        lazykit.Polynomial(tuple(coef))


@given(st.one_of(st.integers(max_value=0), st.sampled_from((2.5, "8", None, True))))
def test_quadrature_node_counts_must_be_positive_integers(n_nodes):
    with raises_naming("n_nodes"):
        lazykit.Elementwise(np.tanh, n_nodes=n_nodes)


@given(st.sampled_from((1.0, "not a function", None, (1, 2))))
def test_elementwise_needs_a_callable(fn):
    with raises_naming("fn"):
        lazykit.Elementwise(fn)


@given(st.sampled_from(lazykit.ACTIVATION_NAMES), st.booleans())
def test_every_listed_name_gives_an_activation(name, upper):
    activation = lazykit.get_activation(name.upper() if upper else name)
    assert isinstance(activation, lazykit.Activation)
    assert activation == lazykit.get_activation(name)


@given(st.one_of(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", max_size=12),
                 st.sampled_from((1, 2.5, None, (), np.ones(2)))))
def test_unknown_activations_are_refused_naming_the_argument(spec):
    if isinstance(spec, str) and spec.lower() in lazykit.ACTIVATION_NAMES:
        return
    with raises_naming("activation"):
        lazykit.get_activation(spec)
