"""Activation parameters: refused when the math does not hold, exact where it does.

Gaussian activations with b > 0 have Gaussian expectations that diverge beyond a
pre-activation variance; monomials have closed-form moments up to degree 20.
The oracles are mpmath evaluations in 50 digits of the Gaussian expectations.
"""

import math
import re

import jax.numpy as jnp
import mpmath
import numpy as np
import pytest

import lazykit
from lazykit._dtypes import precision

mpmath.mp.dps = 50

# (constructor, parameter name, class name in the message)
PARAMETERS = [
    (lazykit.ABRelu, "a", "ABRelu"), (lazykit.ABRelu, "b", "ABRelu"),
    (lazykit.LeakyRelu, "alpha", "LeakyRelu"),
    (lazykit.Erf, "a", "Erf"), (lazykit.Erf, "b", "Erf"), (lazykit.Erf, "c", "Erf"),
    (lazykit.Sin, "a", "Sin"), (lazykit.Sin, "b", "Sin"), (lazykit.Sin, "c", "Sin"),
    (lazykit.Cos, "a", "Cos"), (lazykit.Cos, "b", "Cos"), (lazykit.Cos, "c", "Cos"),
    (lazykit.Rbf, "gamma", "Rbf"),
    (lazykit.Gaussian, "a", "Gaussian"), (lazykit.Gaussian, "b", "Gaussian"),
    (lazykit.Exp, "a", "Exp"), (lazykit.Exp, "b", "Exp"),
]


@pytest.mark.parametrize("make, name, owner", PARAMETERS)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_parameters_are_refused(make, name, owner, bad):
    with pytest.raises(ValueError, match=rf"^{name} of {owner} must be a finite number.*; "
                                         rf"got {bad}\.$"):
        make(**{name: bad})


@pytest.mark.parametrize("make, name, owner", PARAMETERS)
@pytest.mark.parametrize("bad", ["1.0", 1j, None, True])
def test_non_real_parameters_are_refused(make, name, owner, bad):
    with pytest.raises(TypeError, match=rf"^{name} of {owner} must be a real number.*; "
                                        rf"got {re.escape(repr(bad))}\.$"):
        make(**{name: bad})


def test_parameters_are_stored_as_floats_and_descriptions_still_compare_equal():
    assert lazykit.ABRelu(-1, 1) == lazykit.Abs() and repr(lazykit.ABRelu(-1, 1)) == (
        "ABRelu(a=-1.0, b=1.0)")
    assert hash(lazykit.Erf(1, np.float32(0.5), 0)) == hash(lazykit.Erf(1.0, 0.5, 0.0))
    assert lazykit.LeakyRelu(np.float64(0.2)) == lazykit.ABRelu(0.2, 1.0)
    assert lazykit.Cos(2.0, 0.5, 0.1) == lazykit.Sin(2.0, 0.5, 0.1 + math.pi / 2)


def test_rbf_gamma_must_be_nonnegative():
    """gamma < 0 gave sin(sqrt(2 gamma) x) = NaN for the network and an indefinite kernel."""
    with pytest.raises(ValueError, match=r"gamma of Rbf must be a finite number >= 0; got -1\.0"):
        lazykit.Rbf(gamma=-1)
    x = np.random.default_rng(0).normal(size=(40, 3))
    net = lazykit.serial(lazykit.Dense(8), lazykit.Rbf(gamma=0.0), lazykit.Dense(1))
    np.testing.assert_allclose(net.kernel(x).nngp, 1.0, rtol=1e-15)  # gamma = 0: constant


def test_polynomial_coefficients_are_checked():
    with pytest.raises(ValueError, match=r"coef\[2\] of Polynomial must be a finite number; "
                                         r"got nan"):
        lazykit.Polynomial((1.0, 0.0, math.nan))
    with pytest.raises(TypeError, match="coef of Polynomial must be a sequence of real numbers"):
        lazykit.Polynomial(3.0)
    # trailing zeros do not raise the degree
    assert lazykit.Polynomial((0.0, 1.0) + (0.0,) * 30).coef[:2] == (0.0, 1.0)


# -- monomials ---------------------------------------------------------------------------


def _normal_moment(m):
    """E[z^m] for z ~ N(0, 1)."""
    return mpmath.mpf(0) if m % 2 else mpmath.fac2(m - 1) if m > 0 else mpmath.mpf(1)


def _product_moment(p, q, k11, k12, k22):
    """E[u^p v^q], (u, v) ~ N(0, [[k11, k12], [k12, k22]]): v = c u + s w, binomial expansion."""
    k11, k12, k22 = (mpmath.mpf(float(v)) for v in (k11, k12, k22))
    c, s = k12 / k11, mpmath.sqrt(k22 - k12**2 / k11)
    return sum(mpmath.binomial(q, j) * c**j * s**(q - j) * _normal_moment(p + j)
               * k11 ** (mpmath.mpf(p + j) / 2) * _normal_moment(q - j) for j in range(q + 1))


@pytest.mark.parametrize("degree", [7, 20])
def test_monomial_kernels_match_exact_moments_up_to_the_largest_degree(degree):
    x = np.array([[0.9, -0.4, 0.3], [0.5, 0.7, -0.6], [-0.8, -0.5, 0.2]])
    net = lazykit.serial(lazykit.Dense(1), lazykit.Monomial(degree), lazykit.Dense(1))
    k, g = net.kernel(x), x @ x.T / 3
    for i, j in [(0, 0), (0, 1), (0, 2), (1, 1)]:
        nngp = _product_moment(degree, degree, g[i, i], g[i, j], g[j, j])
        dot = degree**2 * _product_moment(degree - 1, degree - 1, g[i, i], g[i, j], g[j, j])
        assert k.nngp[i, j] == pytest.approx(float(nngp), rel=1e-14)
        assert k.ntk[i, j] == pytest.approx(float(nngp + dot * g[i, j]), rel=1e-14)


def test_degrees_beyond_20_are_refused_with_the_supported_range():
    """Monomial(21) crashed with an OverflowError from JAX's argument parsing (21! > 2^63)."""
    with pytest.raises(ValueError, match=r"degree must be an integer in \[0, 20\]; got 21\. .*"
                                         r"lazykit\.Elementwise\(lambda x: x\*\*p, "
                                         r"n_nodes=p \+ 1\)"):
        lazykit.Monomial(21)
    with pytest.raises(ValueError, match=r"coef of Polynomial must have degree <= 20 .*; got "
                                         r"degree 22"):
        lazykit.Polynomial((0.0,) * 22 + (1.0,))


def test_the_suggested_quadrature_is_exact_beyond_degree_20():
    p, x = 25, np.array([[0.9, -0.4, 0.3], [0.5, 0.7, -0.6]])
    act = lazykit.Elementwise(lambda z: z**p, n_nodes=p + 1)
    k = lazykit.serial(lazykit.Dense(1), act, lazykit.Dense(1)).kernel(x)
    g = x @ x.T / 3
    assert k.nngp[0, 1] == pytest.approx(float(_product_moment(p, p, g[0, 0], g[0, 1], g[1, 1])),
                                         rel=1e-12)


# -- Gaussian bump with b > 0 ------------------------------------------------------------


def _gaussian_expectations(a, b, k11, k12, k22):
    """(E[phi(u) phi(v)], E[phi'(u) phi'(v)]) for phi = a exp(b x^2), by 1-D mpmath quadrature
    over u of the closed-form conditional expectation over v | u (finite cases only)."""
    a, b, k11, k12, k22 = (mpmath.mpf(float(v)) for v in (a, b, k11, k12, k22))
    c, s2 = k12 / k11, k22 - k12**2 / k11
    r = 1 - 2 * b * s2  # E[exp(b v^2) | u] needs r > 0

    def density(u):
        return mpmath.exp(-u * u / (2 * k11)) / mpmath.sqrt(2 * mpmath.pi * k11)

    def nngp(u):
        return a * a * mpmath.exp(b * u * u) * mpmath.exp(b * c * c * u * u / r) / mpmath.sqrt(r)

    def dot(u):  # E[v exp(b v^2) | u] = (c u / r) E[exp(b v^2) | u]
        return 4 * a * a * b * b * u * (c * u / r) * mpmath.exp(b * u * u) * mpmath.exp(
            b * c * c * u * u / r) / mpmath.sqrt(r)

    return tuple(mpmath.quad(lambda u, f=f: f(u) * density(u), [-mpmath.inf, 0, mpmath.inf])
                 for f in (nngp, dot))


def _gaussian_dual(b, k11, k12, k22, a=1.0):
    with precision("float64"):
        nngp, dot = lazykit.Gaussian(a=a, b=b).dual(jnp.float64(k12), jnp.float64(k11),
                                                    jnp.float64(k22))
        return float(nngp), float(dot)


@pytest.mark.parametrize("b, k11, k12, k22", [
    (0.1, 1.0, 0.3, 2.0), (0.1, 2.4, -1.5, 2.4), (0.3, 0.5, 0.45, 0.6), (-0.8, 3.0, 1.0, 2.0)])
def test_gaussian_dual_matches_quadrature_where_finite(b, k11, k12, k22):
    nngp, dot = _gaussian_expectations(1.3, b, k11, k12, k22)
    got = _gaussian_dual(b, k11, k12, k22, a=1.3)
    assert got == pytest.approx((float(nngp), float(dot)), rel=1e-12)


@pytest.mark.parametrize("k11, k12, k22", [
    (10.0, 0.0, 10.0),  # both factors 1 - 2 b k negative, product positive: was a finite 1.0
    (3.0, 3.0, 3.0),  # an input with itself: 4 b k > 1
    (4.0, 3.0, 4.5),  # both 1 - 2 b k > 0, but the determinant is negative
    (1.0, 0.0, 6.0),  # one factor negative
])
def test_gaussian_dual_is_infinite_exactly_where_the_expectation_diverges(k11, k12, k22):
    """For b > 0, E[exp(b (u^2 + v^2))] is finite iff I - 2 b Sigma is positive definite."""
    b = 0.1
    m11, m22 = 1 - 2 * b * k11, 1 - 2 * b * k22
    assert not (m11 > 0 and m11 * m22 - 4 * b * b * k12 * k12 > 0)
    nngp, dot = _gaussian_dual(b, k11, k12, k22)
    assert nngp == math.inf
    assert dot == math.inf or (k12 == 0 and math.isnan(dot))


def test_gaussian_dual_is_finite_just_inside_the_boundary():
    b, k = 0.1, 2.5 * (1 - 1e-9)  # an input with itself just below 1 / (4 b)
    nngp, _ = _gaussian_dual(b, k, k, k)
    assert nngp == pytest.approx(1 / math.sqrt(1 - 4 * b * k), rel=1e-6)


def _rows_with_variances(variances, d=4):
    """Mutually orthogonal rows x_i with |x_i|^2 / d = variances[i]."""
    return np.sqrt(np.asarray(variances) * d)[:, None] * np.eye(len(variances), d)


def test_network_kernel_refuses_inputs_past_the_gaussian_variance_limit():
    """Two orthogonal inputs of variance 10 gave a finite K(x1, x2) = 1 though E diverges."""
    net = lazykit.serial(lazykit.Dense(1), lazykit.Gaussian(b=0.1), lazykit.Dense(1))
    x = _rows_with_variances([1.0, 10.0])
    with pytest.raises(ValueError, match=r"layer 1, Gaussian\(a=1\.0, b=0\.1\), needs "
                                         r"pre-activation variances below 2\.5 .*; row 0 of x2 "
                                         r"reaches 10"):
        net.kernel(x[:1], x[1:])
    with pytest.raises(ValueError, match="row 1 of x1 reaches 10"):
        net.kernel(x, diagonal=True)


def test_deeper_gaussian_layers_are_checked_at_their_own_variance():
    gaussian = lazykit.Gaussian(a=2.0, b=0.1)
    net = lazykit.serial(lazykit.Dense(8), lazykit.Relu(), lazykit.Dense(8, W_std=1.0),
                         gaussian, lazykit.Dense(1))
    x = _rows_with_variances([1.0, 4.0])  # after ReLU and Dense: variance k / 2 = 0.5 and 2
    k = net.kernel(x)  # below 2.5: the oracle holds
    nngp, _ = _gaussian_expectations(2.0, 0.1, 0.5, 1 / math.pi, 2.0)  # ReLU cross: sqrt(4)/2pi
    assert k.nngp[0, 1] == pytest.approx(float(nngp), rel=1e-12)
    with pytest.raises(ValueError, match=r"layer 3, Gaussian\(a=2\.0, b=0\.1\).*row 0 of x1 "
                                         r"reaches 3"):
        net.kernel(_rows_with_variances([6.0]))


def test_neural_kernel_refuses_the_same_inputs():
    kernel = lazykit.NeuralKernel(depth=1, activation=lazykit.Gaussian(b=0.1), W_std=1.0,
                                  b_std=None)
    x = _rows_with_variances([1.0, 10.0])
    with pytest.raises(ValueError, match="row 1 of X reaches 10"):
        kernel(x)
    with pytest.raises(ValueError, match="row 1 of X reaches 10"):
        kernel.diag(x)
    assert np.all(np.isfinite(kernel(x[:1], x[:1])))
