"""Closed-form Gaussian duals against direct numerical integration (SciPy), an
independent oracle: E[phi(u) phi(v)] and E[phi'(u) phi'(v)] for (u, v) ~ N(0, Sigma)."""

import math

import jax
import numpy as np
import pytest
from scipy import integrate, special

import lazykit
from lazykit._dtypes import precision

COVARIANCES = [  # (k11, k22, k12)
    (1.0, 1.0, 0.3),
    (0.7, 1.9, -0.8),
    (2.5, 0.4, 0.95),
    (1.3, 1.3, -1.25),
]

CASES = {
    "relu": (lazykit.Relu(), lambda x: np.maximum(x, 0), lambda x: (x > 0) * 1.0),
    "leaky": (lazykit.LeakyRelu(0.2), lambda x: np.where(x > 0, x, 0.2 * x),
              lambda x: np.where(x > 0, 1.0, 0.2)),
    "abs": (lazykit.Abs(), np.abs, np.sign),
    "step": (lazykit.Step(), lambda x: (x > 0) * 1.0, lambda x: 0 * x),
    "sign": (lazykit.Sign(), np.sign, lambda x: 0 * x),
    "erf": (lazykit.Erf(1.3, 0.7, 0.2), lambda x: 1.3 * special.erf(0.7 * x) + 0.2,
            lambda x: 1.3 * 0.7 * 2 / math.sqrt(math.pi) * np.exp(-(0.7 * x) ** 2)),
    "gelu": (lazykit.Gelu(), lambda x: x * special.ndtr(x),
             lambda x: special.ndtr(x) + x * np.exp(-x * x / 2) / math.sqrt(2 * math.pi)),
    "sin": (lazykit.Sin(1.1, 0.8, 0.3), lambda x: 1.1 * np.sin(0.8 * x + 0.3),
            lambda x: 1.1 * 0.8 * np.cos(0.8 * x + 0.3)),
    "rbf": (lazykit.Rbf(0.7), lambda x: math.sqrt(2) * np.sin(math.sqrt(1.4) * x + math.pi / 4),
            lambda x: math.sqrt(2) * math.sqrt(1.4) * np.cos(math.sqrt(1.4) * x + math.pi / 4)),
    "gaussian": (lazykit.Gaussian(1.2, -0.8), lambda x: 1.2 * np.exp(-0.8 * x * x),
                 lambda x: -1.6 * 1.2 * x * np.exp(-0.8 * x * x)),
    "exp": (lazykit.Exp(0.9, 0.5), lambda x: 0.9 * np.exp(0.5 * x),
            lambda x: 0.45 * np.exp(0.5 * x)),
    "cubic_poly": (lazykit.Polynomial((0.3, -1.0, 0.5, 0.2)),
                   lambda x: 0.3 - x + 0.5 * x**2 + 0.2 * x**3,
                   lambda x: -1.0 + x + 0.6 * x**2),
}


def gaussian_expectation(f, g, k11, k22, k12):
    """E[f(u) g(v)] by nested adaptive quadrature in whitened coordinates, split where
    u = 0 or v = 0 so that kinks and jumps of rectifiers are integrated exactly."""
    rho = k12 / math.sqrt(k11 * k22)
    s1, s2 = math.sqrt(k11), math.sqrt(k22)
    c = math.sqrt(max(1 - rho * rho, 0.0))
    phi = 1 / math.sqrt(2 * math.pi)

    def inner(z1):
        fu = float(f(s1 * z1)) * phi * math.exp(-z1 * z1 / 2)
        if c == 0.0:
            return fu * float(g(s2 * rho * z1))
        kink = -rho * z1 / c
        value, _ = integrate.quad(
            lambda z2: float(g(s2 * (rho * z1 + c * z2))) * phi * math.exp(-z2 * z2 / 2),
            -10, 10, points=[kink] if abs(kink) < 10 else None, limit=200,
            epsabs=1e-13, epsrel=1e-12)
        return fu * value

    value, _ = integrate.quad(inner, -10, 10, points=[0.0], limit=200, epsabs=1e-12,
                              epsrel=1e-11)
    return value


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("cov", COVARIANCES[:3])
def test_dual_matches_numerical_integration(name, cov):
    activation, f, df = CASES[name]
    k11, k22, k12 = cov
    with precision("float64"):
        e, de = activation.dual(np.float64(k12), np.float64(k11), np.float64(k22))
    expected = gaussian_expectation(f, f, k11, k22, k12)
    expected_d = gaussian_expectation(df, df, k11, k22, k12)
    assert float(e) == pytest.approx(expected, rel=1e-6, abs=1e-8)
    assert float(de) == pytest.approx(expected_d, rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("name", ["relu", "abs", "sign", "step", "erf"])
def test_dual_at_exact_correlation_one_is_the_variance_case(name):
    activation, f, _df = CASES[name]
    with precision("float64"):
        e, _ = activation.dual(np.float64(1.7), np.float64(1.7), np.float64(1.7))
    expected = gaussian_expectation(f, f, 1.7, 1.7, 1.7 * (1 - 1e-15))
    assert float(e) == pytest.approx(expected, rel=1e-6, abs=1e-8)


def test_zero_variance_gives_finite_values():
    for activation in (lazykit.Relu(), lazykit.Sign(), lazykit.Step(), lazykit.Erf()):
        with precision("float64"):
            e, de = activation.dual(np.float64(0.0), np.float64(0.0), np.float64(1.0))
        assert np.isfinite(e) and np.isfinite(de)


def test_float32_duals_are_accurate_near_plus_minus_one():
    # Reference at the float32-rounded correlations: only our arithmetic is compared.
    rho = np.array([-1.0, -1 + 1e-6, -0.5, 0.0, 0.5, 1 - 1e-6, 1.0]).astype(np.float32)
    rho = rho.astype(np.float64)
    with precision("float64"):
        ref, dref = lazykit.Relu().dual(rho, np.ones_like(rho), np.ones_like(rho))
    with precision("float32"):
        got, dgot = lazykit.Relu().dual(rho.astype(np.float32), np.float32(1.0), np.float32(1.0))
    assert got.dtype == np.float32
    np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=0, atol=3e-7)
    np.testing.assert_allclose(np.asarray(dgot), np.asarray(dref), rtol=0, atol=3e-7)


def test_jax_differentiable():
    """The duals are plain jax.numpy: gradients exist and are finite inside (-1, 1)."""
    with precision("float64"):
        grad = jax.grad(lambda c: lazykit.Relu().dual(c, 1.0, 1.0)[0])(0.3)
    # d/drho of (sin t + (pi - t) rho) / (2 pi) = (pi - t) / (2 pi)
    assert float(grad) == pytest.approx((math.pi - math.acos(0.3)) / (2 * math.pi), rel=1e-12)
