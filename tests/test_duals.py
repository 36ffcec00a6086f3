"""Closed-form Gaussian duals against direct numerical integration (SciPy), an
independent oracle: E[phi(u) phi(v)] and E[phi'(u) phi'(v)] for (u, v) ~ N(0, Sigma)."""

import math

import jax
import mpmath as mp
import numpy as np
import pytest
from scipy import integrate, special

import lazykit
from lazykit._dtypes import precision
from lazykit.kernels import duals
from lazykit.kernels.fast_math import Separation
from tests import reference

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


# Extreme variances and near-duplicates, against the 50-digit closed forms (tests/reference.py).
# Under jit XLA may fuse k11 k22 - k12^2 into a fused multiply-add, so the determinants of
# the erf, gelu and gaussian duals must not be formed as differences.

DETERMINANT_DUALS = {
    "erf": (lazykit.Erf(1.3, 0.7, 0.2), lambda k11, k22, k12: reference.erf_dual(
        k11, k22, k12, 1.3, 0.7, 0.2)),
    "gelu": (lazykit.Gelu(), reference.gelu_dual),
    "gaussian": (lazykit.Gaussian(1.2, -0.8), lambda k11, k22, k12: reference.gaussian_dual(
        k11, k22, k12, 1.2, -0.8)),
}


@pytest.mark.parametrize("name", sorted(DETERMINANT_DUALS))
@pytest.mark.parametrize("k", [12345.678, 3.3e12, 1.2345678e16])
@pytest.mark.parametrize("ratio,rho", [(1.0, 1.0), (1.3, 0.3), (1.0, -1.0), (1.7, -0.9)])
def test_determinant_duals_at_large_variances_under_jit(name, k, ratio, rho):
    """Identical, antipodal and unrelated pairs (a covariance near rho = +-1 that is not
    exactly +-1 is ill-conditioned here: its rounding alone moves the determinant)."""
    activation, ref = DETERMINANT_DUALS[name]
    k11, k22 = k, k * ratio
    k12 = rho * k if ratio == 1.0 else rho * math.sqrt(k11 * k22)
    with precision("float64"):
        got = jax.jit(activation.dual)(np.float64(k12), np.float64(k11), np.float64(k22))
    # Relative to the kernel's scale sqrt(E(u, u) E(v, v)), like a Gram matrix entry.
    scales = [mp.sqrt(abs(a * b)) for a, b in zip(ref(k11, k11, k11), ref(k22, k22, k22),
                                                    strict=True)]
    for value, expected, scale in zip(got, ref(k11, k22, k12), scales, strict=True):
        assert abs(float(value) - float(expected)) <= 1e-13 * float(scale), (value, expected)


GAP_DUALS = {
    "erf": (lambda *args: duals.erf_with_gap(*args, a=1.3, b=0.7, c=0.2),
            lambda *k: reference.erf_dual(*k, 1.3, 0.7, 0.2)),
    "erf_odd_saturated": (lambda *args: duals.erf_with_gap(*args, a=1.0, b=3.0, c=0.0),
                          lambda *k: reference.erf_dual(*k, 1.0, 3.0, 0.0)),
    "sin": (lambda *args: duals.sin_with_gap(*args, a=1.1, b=0.8, c=0.3),
            lambda *k: reference.sin_dual(*k, 1.1, 0.8, 0.3)),
    "sin_odd": (lambda *args: duals.sin_with_gap(*args, a=1.1, b=0.8, c=0.0),
                lambda *k: reference.sin_dual(*k, 1.1, 0.8, 0.0)),
    "rbf": (lambda *args: duals.rbf_with_gap(*args, gamma=0.7),
            lambda *k: reference.rbf_dual(*k, 0.7)),
    "identity": (duals.identity_with_gap, lambda k11, k22, k12: (mp.mpf(k12), mp.mpf(1))),
}

GAP_CASES = [  # (k11, k22, gap, anti_gap), one of the two given exactly, the other implied
    (1.3, 1.3, 0.0, None),
    (1.3, 1.3, 3e-30, None),
    (1.3, 1.3 + 2e-12, 3e-24, None),
    (0.7, 0.7 * (1 + 1e-9), 2e-19, None),
    (2.0, 1.7, 0.05, None),
    (1.2345678e16, 1.2345678e16 * (1 + 1e-10), 7e-5, None),
    (0.9, 1.4, 2.0, None),
    (1.3, 1.3, None, 0.0),
    (1.3, 1.3 + 2e-12, None, 3e-24),
    (2.0, 1.7, None, 0.05),
    (1.2345678e16, 1.2345678e16 * (1 + 1e-10), None, 7e-5),
]


@pytest.mark.parametrize("name", sorted(GAP_DUALS))
@pytest.mark.parametrize("case", GAP_CASES)
def test_gap_duals_keep_relative_accuracy_for_near_duplicates(name, case):
    """Output E[(phi(u) -+ phi(v))^2] and E[phi(u)^2] - E[phi(v)^2] to 1e-12 relative.

    The covariance k12 is rounded to float; the separation given is exact.
    """
    fn, ref = GAP_DUALS[name]
    k11, k22, gap, anti_gap = case
    with mp.workdps(80):
        total = mp.mpf(k11) + mp.mpf(k22)
        gap = 2 * total - mp.mpf(anti_gap) if gap is None else mp.mpf(gap)
        k12 = (total - gap) / 2
        e12, de = ref(k11, k22, k12)
        e11, e22 = ref(k11, k11, k11)[0], ref(k22, k22, k22)[0]
        expected = (e12, de, e11 + e22 - 2 * e12, e11 + e22 + 2 * e12, e11 - e22)
        separation = Separation(*(np.float64(v) for v in (gap, 2 * total - gap, k11 - k22)))
        with precision("float64"):
            nngp, dot, out = fn(np.float64(k12), np.float64(k11), np.float64(k22), separation)
        for i, (value, want) in enumerate(zip((nngp, dot, *out), expected, strict=True)):
            # An exact zero (identical or antipodal inputs) may come out as round-off of the scale.
            slack = 1e-15 * (abs(e11) + abs(e22)) if want == 0 else 0.0
            assert abs(float(value) - float(want)) <= 1e-12 * abs(want) + slack, (i, value, want)
