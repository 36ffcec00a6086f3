"""Closed-form Gaussian duals of activation functions.

Every function here maps a covariance ``(k12, k11, k22)`` of a centred Gaussian
pair ``(u, v)`` (``k12`` the covariance, ``k11`` and ``k22`` the variances; the
arrays broadcast together) to the pair

    E[phi(u) phi(v)],  E[phi'(u) phi'(v)],

the first driving the NNGP recursion and the second the NTK recursion. They are
pure ``jax.numpy`` functions of arrays, safe for zero variances (no NaN) and for
correlations rounded slightly past +-1.

Determinants such as (1 + 2 k11)(1 + 2 k22) - 4 k12^2 are never formed as a
difference: they are sums of non-negative terms in 1 - rho and 1 + rho
(:func:`lazykit.kernels.fast_math.correlation_gaps`), so they keep full
relative accuracy at any variance.

The ``*_with_gap`` duals also take the pair's
:class:`~lazykit.kernels.fast_math.Separation` (E[(u -+ v)^2], k11 - k22)
and return that of the activations, (E[(phi(u) -+ phi(v))^2],
E[phi(u)^2] - E[phi(v)^2]), each computed without cancellation: the recursion
tracks it so that near-duplicate (near-antipodal) inputs keep their separation
through chaotic layers (see :mod:`lazykit.kernels.recursion`).
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from lazykit.kernels.fast_math import (
    Separation,
    arc_cosine_terms,
    correlation_gaps,
    covariance_separation,
    rho_gap_product,
    snap_correlation,
)


def _norms_and_correlation(k12, k11, k22):
    """Return sqrt(k11 k22) and the correlation k12 / sqrt(k11 k22), within [-1, 1].

    The square roots are taken separately so the product cannot overflow, and a
    zero variance gives correlation 0 instead of NaN.
    """
    s1 = jnp.sqrt(jnp.maximum(k11, 0.0))
    s2 = jnp.sqrt(jnp.maximum(k22, 0.0))
    inv1 = jnp.where(s1 > 0, 1.0 / jnp.where(s1 > 0, s1, 1.0), 0.0)
    inv2 = jnp.where(s2 > 0, 1.0 / jnp.where(s2 > 0, s2, 1.0), 0.0)
    return s1 * s2, snap_correlation(k12 * inv1 * inv2)


def abrelu(k12, k11, k22, *, a: float, b: float):
    """phi(x) = a min(x, 0) + b max(x, 0): ReLU (0, 1), leaky ReLU (alpha, 1), abs (-1, 1).

    With theta = arccos(rho) and F = (a - b)^2 / (2 pi):
    E[phi phi] = sqrt(k11 k22) [F (sin theta + (pi - theta) rho) + a b rho],
    E[phi' phi'] = F (pi - theta) + a b.
    """
    norm, rho = _norms_and_correlation(k12, k11, k22)
    complement, j = arc_cosine_terms(rho)
    factor = (a - b) ** 2 / (2.0 * math.pi)
    return norm * (factor * j + a * b * rho), factor * complement + a * b


def step(k12, k11, k22):
    """Heaviside step 1[x > 0]: E = (pi - theta) / (2 pi); gradients do not flow (0)."""
    norm, rho = _norms_and_correlation(k12, k11, k22)
    nngp = jnp.where(norm > 0, arc_cosine_terms(rho)[0] / (2.0 * math.pi), 0.0)
    return nngp, jnp.zeros_like(nngp)


def sign(k12, k11, k22):
    """sign(x): E = 1 - 2 theta / pi; gradients do not flow (0)."""
    norm, rho = _norms_and_correlation(k12, k11, k22)
    nngp = jnp.where(norm > 0, 2.0 * arc_cosine_terms(rho)[0] / math.pi - 1.0, 0.0)
    return nngp, jnp.zeros_like(nngp)


def _shifted_determinant(x1, x2, rho_gap):
    """(1 + x1)(1 + x2) - x1 x2 rho^2 = 1 + x1 + x2 + x1 x2 (1 - rho^2), no cancellation.

    ``rho_gap`` is (1 - rho)(1 + rho), from :func:`rho_gap_product` or :func:`correlation_gaps`.
    """
    return 1.0 + x1 + x2 + x1 * x2 * rho_gap


def _root_shifted_determinant(x1, x2, rho_gap):
    """sqrt of :func:`_shifted_determinant`, also where x1 x2 exceeds the float range.

    For x1, x2 > 1 it is sqrt(x1) sqrt(x2) sqrt(1/(x1 x2) + 1/x1 + 1/x2 + rho_gap): the
    same sum of non-negative terms, scaled (pre-activation variances beyond 1e154 in float64).

    Examples:
        >>> from lazykit.kernels.duals import _root_shifted_determinant
        >>> import jax.numpy as jnp
        >>> big = jnp.float32(1e30)  # x1 x2 = 1e60 overflows float32
        >>> round(float(_root_shifted_determinant(big, big, 0.0)) / 1e15, 5)  # sqrt(2e30 + 1)
        1.41421
    """
    big = (x1 > 1.0) & (x2 > 1.0)
    s1, s2 = jnp.where(big, x1, 1.0), jnp.where(big, x2, 1.0)
    scaled = jnp.sqrt(s1) * jnp.sqrt(s2) * jnp.sqrt(1.0 / (s1 * s2) + 1.0 / s1 + 1.0 / s2
                                                    + rho_gap)
    plain = jnp.sqrt(_shifted_determinant(jnp.where(big, 0.0, x1), jnp.where(big, 0.0, x2),
                                          rho_gap))
    return jnp.where(big, scaled, plain)


def erf(k12, k11, k22, *, a: float, b: float, c: float):
    """phi(x) = a erf(b x) + c (Williams 1997).

    E[phi phi] = a^2 (2/pi) arcsin(2 b^2 k12 / sqrt((1 + 2 b^2 k11)(1 + 2 b^2 k22))) + c^2,
    E[phi' phi'] = a^2 b^2 (4/pi) / sqrt((1 + 2 b^2 k11)(1 + 2 b^2 k22) - 4 b^4 k12^2).
    With alpha_i = 2 b^2 k_ii the determinant is D = 1 + alpha_1 + alpha_2 +
    alpha_1 alpha_2 (1 - rho^2), a sum without cancellation, and the arcsine is
    atan2(2 b^2 k12, sqrt(D)), accurate where its argument is near +-1 (large variances).
    """
    return _erf_moments(k12, k11, k22, rho_gap_product(k12, k11, k22), a=a, b=b, c=c)[:2]


def _erf_moments(k12, k11, k22, rho_gap, *, a, b, c):
    """(E[phi phi], E[phi' phi'], arcsine angle, sqrt(D)) of :func:`erf`."""
    b2 = b * b
    root = _root_shifted_determinant(2.0 * b2 * k11, 2.0 * b2 * k22, rho_gap)
    angle = jnp.arctan2(2.0 * b2 * k12, root)
    return a * a * (2.0 / math.pi) * angle + c * c, a * a * b2 * (4.0 / math.pi) / root, angle, root


def erf_with_gap(k12, k11, k22, separation: Separation, *, a: float, b: float, c: float):
    """(E[phi phi], E[phi' phi'], output :class:`Separation`) for phi(x) = a erf(b x) + c.

    :func:`erf` with 1 -+ rho from the separation. With phi_i =
    arcsin(alpha_i / (1 + alpha_i)), the angle of a variance, and phi_12 that of
    the pair, the output gap is a^2 (2/pi) (phi_1 + phi_2 - 2 phi_12), the
    anti-gap a^2 (2/pi) (phi_1 + phi_2 + 2 phi_12) + 4 c^2 and the diff
    a^2 (2/pi) (phi_1 - phi_2); for close (anti-close) pairs the angle sums come
    from :func:`_erf_close_spread`, which needs no difference of nearly equal angles.

    Examples:
        >>> import jax.numpy as jnp
        >>> from lazykit.kernels.duals import erf_with_gap
        >>> from lazykit.kernels.fast_math import Separation
        >>> one, zero = jnp.float32(1.0), jnp.float32(0.0)
        >>> nngp, dot, sep = erf_with_gap(one, one, one, Separation(zero, 4 * one, zero),
        ...                               a=1.0, b=1.0, c=0.0)
        >>> round(float(nngp), 6), round(float(dot), 6), float(sep.gap)  # (2/pi) arcsin(2/3)
        (0.464559, 0.56941, 0.0)
    """
    q, p, close, anti_close = correlation_gaps(k12, k11, k22, separation)
    nngp, dot, angle, root = _erf_moments(k12, k11, k22, q * p, a=a, b=b, c=c)
    b2 = b * b
    alpha1, alpha2 = 2.0 * b2 * k11, 2.0 * b2 * k22
    alpha_diff = 2.0 * b2 * separation.diff
    scale = a * a * (2.0 / math.pi)
    # The arcsine is odd in rho: phi_1 + phi_2 + 2 phi_12(rho) = phi_1 + phi_2 - 2 phi_12(-rho).
    near = _erf_close_spread(alpha1, alpha2, alpha_diff, jnp.where(anti_close, p, q), root)
    both = _erf_variance_angle(alpha1) + _erf_variance_angle(alpha2)
    out = Separation(scale * jnp.where(close, near, both - 2.0 * angle),
                     scale * jnp.where(anti_close, near, both + 2.0 * angle) + 4.0 * c * c,
                     scale * _erf_angle_difference(alpha1, alpha2, alpha_diff))
    return nngp, dot, out


def _erf_variance_angle(alpha):
    """arcsin(alpha / (1 + alpha)), the angle of E[erf(u)^2] for 2 b^2 Var u = alpha."""
    return jnp.arctan2(alpha, jnp.sqrt(1.0 + 2.0 * alpha))


def _erf_angle_difference(alpha1, alpha2, alpha_diff):
    """phi_1 - phi_2 of :func:`_erf_variance_angle`, given alpha_diff = alpha1 - alpha2.

    sin(phi_1 - phi_2) = (x_1 - x_2)(x_1 + x_2) / (x_1 cos phi_2 + x_2 cos phi_1) with
    x_i = sin phi_i = alpha_i u_i, u_i = 1 / (1 + alpha_i), x_1 - x_2 = alpha_diff u_1 u_2.
    """
    u1, u2 = 1.0 / (1.0 + alpha1), 1.0 / (1.0 + alpha2)
    x1, x2 = alpha1 * u1, alpha2 * u2
    cos1, cos2 = jnp.sqrt(1.0 + 2.0 * alpha1) * u1, jnp.sqrt(1.0 + 2.0 * alpha2) * u2
    den = x1 * cos2 + x2 * cos1
    sin = jnp.where(den > 0, alpha_diff * u1 * u2 * (x1 + x2) / jnp.where(den > 0, den, 1.0), 0.0)
    return jnp.arctan2(sin, cos1 * cos2 + x1 * x2)


def _erf_close_spread(alpha1, alpha2, alpha_diff, q, root):
    """phi_1 + phi_2 - 2 phi_12 for a close pair (rho >= 1/2), with full relative accuracy.

    phi_i = arcsin(r_i^2) and phi_12 = arcsin(r_1 r_2 rho), r_i^2 = alpha_i / (1 + alpha_i).
    The sum splits at phi_g = arcsin(r_1 r_2), the angle of collinear inputs: the
    norm part S = (phi_1 - phi_g) + (phi_2 - phi_g) is second order in
    d = r_1 - r_2, and sin S is formed from d^2 directly, the first-order terms of
    the two sines cancelling in the algebra (not in rounding); the correlation
    part delta = phi_g - phi_12 has sin delta = r_1 r_2 (1 - rho)(1 + rho) /
    (cos phi_12 + rho cos phi_g). S + 2 delta is summed as an angle (one atan2).
    """
    u1, u2 = 1.0 / (1.0 + alpha1), 1.0 / (1.0 + alpha2)
    a, b = jnp.sqrt(alpha1 * u1), jnp.sqrt(alpha2 * u2)
    total, prod = a + b, a * b
    positive = prod > 0
    d = alpha_diff * u1 * u2 / jnp.where(positive, total, 1.0)  # r_1 - r_2
    cos_a, cos_b = jnp.sqrt(u1 * (1.0 + a * a)), jnp.sqrt(u2 * (1.0 + b * b))  # cos phi_i
    cos_g = jnp.sqrt(u1 + u2 - u1 * u2)  # cos phi_g = sqrt(1 - r_1^2 r_2^2)
    den_a = jnp.where(positive, a * cos_g + b * cos_a, 1.0)
    den_b = jnp.where(positive, b * cos_g + a * cos_b, 1.0)
    sin1, sin2 = d * a * total / den_a, -d * b * total / den_b  # sin(phi_i - phi_g)
    cos1, cos2 = cos_a * cos_g + a * prod * a, cos_b * cos_g + b * prod * b
    # sin1 + sin2 = d (a + b) (a^2 cos_b - b^2 cos_a) / (den_a den_b), and
    # a^2 cos_b - b^2 cos_a = (a^4 - b^4) / (a^2 cos_b + b^2 cos_a).
    sum_sin = jnp.where(positive, jnp.square(d * total) * (a * a + b * b)
                        / jnp.where(positive, (a * a * cos_b + b * b * cos_a) * den_a * den_b, 1.0),
                        0.0)
    sin_s = sum_sin - sin1 * sin2 * sin2 / (1.0 + cos2) - sin2 * sin1 * sin1 / (1.0 + cos1)
    cos_s = cos1 * cos2 - sin1 * sin2
    rho = 1.0 - q
    cos12 = root * jnp.sqrt(u1 * u2)
    sin_d = prod * q * (2.0 - q) / jnp.where(positive, cos12 + rho * cos_g, 1.0)
    cos_d = cos_g * cos12 + prod * prod * rho
    sin_2d, cos_2d = 2.0 * sin_d * cos_d, cos_d * cos_d - sin_d * sin_d
    return jnp.arctan2(sin_s * cos_2d + cos_s * sin_2d, cos_s * cos_2d - sin_s * sin_2d)


def gelu(k12, k11, k22):
    """phi(x) = x Phi(x), Phi the standard normal CDF (Tsuchida et al. 2020).

    With D = (1 + k11)(1 + k22) - k12^2 and angle = arcsin(k12 / sqrt((1 + k11)(1 + k22))):
    E[phi phi] = k12 / 4
                 + (k12 angle + (k12^2 + k11 k22 D) / ((1 + k11)(1 + k22) sqrt(D))) / (2 pi),
    E[phi' phi'] = 1/4 + angle / (2 pi) + k12 (1/D + (1 - k11 k22) / ((1 + k11)(1 + k22)) + 1)
                   / (2 pi sqrt(D)).
    """
    p1 = (1.0 + k11) * (1.0 + k22)
    delta2 = _shifted_determinant(k11, k22, rho_gap_product(k12, k11, k22))
    delta = jnp.sqrt(delta2)
    angle = jnp.arctan2(k12, delta)
    prod = k11 * k22
    nngp = 0.25 * k12 + (k12 * angle + (k12 * k12 + prod * delta2) / (p1 * delta)) / (2 * math.pi)
    # (1 - k11 k22) / p1 + 1 = (2 + k11 + k22) / p1, which does not cancel at large variances.
    dot = 0.25 + angle / (2 * math.pi) + (
        k12 * (1.0 / delta2 + (2.0 + k11 + k22) / p1) / (2 * math.pi * delta))
    return nngp, dot


def sin(k12, k11, k22, *, a: float, b: float, c: float):
    """phi(x) = a sin(b x + c); cos is the phase c + pi/2.

    E[phi phi] = a^2/2 [exp(-b^2 (k11 + k22 - 2 k12)/2) - exp(-b^2 (k11 + k22 + 2 k12)/2) cos 2c],
    E[phi' phi'] = a^2 b^2/2 [same two terms, added]. See :func:`sin_with_gap`.
    """
    return sin_with_gap(k12, k11, k22, covariance_separation(k12, k11, k22), a=a, b=b, c=c)[:2]


def sin_with_gap(k12, k11, k22, separation: Separation, *, a: float, b: float, c: float):
    """:func:`sin` and the output :class:`Separation`, from g, h = E[(u -+ v)^2], diff.

    With e_i = exp(-b^2 k_ii) and C = cos 2c, the gap is
    a^2/2 [-2 expm1(-b^2 g/2) + 2 C e_1 e_2 expm1(b^2 g/2) - C (e_1 - e_2)^2], the
    anti-gap a^2/2 [(1 - C)(2 + e_1^2 + e_2^2) - 2 C expm1(-b^2 h/2)
    + 2 e_1 e_2 expm1(b^2 h/2) - (e_1 - e_2)^2] and the diff a^2/2 C (e_2^2 - e_1^2),
    each part free of cancellation (expm1, and e_1 - e_2 from expm1(b^2 diff)).

    Examples:
        >>> import jax.numpy as jnp
        >>> from lazykit.kernels.duals import sin_with_gap
        >>> from lazykit.kernels.fast_math import Separation
        >>> one, zero = jnp.float32(1.0), jnp.float32(0.0)
        >>> nngp, dot, sep = sin_with_gap(one, one, one, Separation(zero, 4 * one, zero),
        ...                               a=1.0, b=1.0, c=0.0)
        >>> [round(float(v), 6) for v in (nngp, dot, *sep)]
        [0.432332, 0.567668, 0.0, 1.729329, 0.0]
    """
    b2 = b * b
    cos2c = jnp.cos(2.0 * c)
    half_a2 = 0.5 * a * a
    e1, e2 = jnp.exp(-b2 * k11), jnp.exp(-b2 * k22)
    near, far = jnp.exp(-0.5 * b2 * separation.gap), jnp.exp(-0.5 * b2 * separation.anti_gap)
    square = jnp.square(_exp_difference(b2 * k11, b2 * k22, -b2 * separation.diff))
    gap = (-2.0 * jnp.expm1(-0.5 * b2 * separation.gap)
           + 2.0 * cos2c * _scaled_expm1(e1 * e2, 0.5 * b2 * separation.gap, far)
           - cos2c * square)
    anti_gap = ((1.0 - cos2c) * (2.0 + e1 * e1 + e2 * e2)
                - 2.0 * cos2c * jnp.expm1(-0.5 * b2 * separation.anti_gap)
                + 2.0 * _scaled_expm1(e1 * e2, 0.5 * b2 * separation.anti_gap, near) - square)
    diff = cos2c * _exp_difference(2.0 * b2 * k22, 2.0 * b2 * k11, 2.0 * b2 * separation.diff)
    out = Separation(half_a2 * jnp.maximum(gap, 0.0), half_a2 * jnp.maximum(anti_gap, 0.0),
                     half_a2 * diff)
    far = far * cos2c
    return half_a2 * (near - far), half_a2 * b2 * (near + far), out


def _scaled_expm1(scale, x, product):
    """scale expm1(x) for x >= 0, given product = scale exp(x) (used for x >= 1: no overflow)."""
    small = x < 1.0
    return jnp.where(small, scale * jnp.expm1(jnp.where(small, x, 0.0)), product - scale)


def _exp_difference(x, y, delta):
    """exp(-x) - exp(-y) given delta = y - x accurately (-exp(-x) expm1(-delta) if small)."""
    small = jnp.abs(delta) < 1.0
    return jnp.where(small, -jnp.exp(-x) * jnp.expm1(-jnp.where(small, delta, 0.0)),
                     jnp.exp(-x) - jnp.exp(-y))


def rbf(k12, k11, k22, *, gamma: float):
    """phi(x) = sqrt(2) sin(sqrt(2 gamma) x + pi/4): E = exp(-gamma (k11 + k22 - 2 k12)).

    After a Dense layer without bias this is the RBF kernel exp(-gamma ||x - x'||^2 / d).
    """
    return rbf_with_gap(k12, k11, k22, covariance_separation(k12, k11, k22), gamma=gamma)[:2]


def rbf_with_gap(k12, k11, k22, separation: Separation, *, gamma: float):
    """:func:`rbf` from the gap g; output gap -2 expm1(-gamma g), anti-gap 2 + 2 E, diff 0.

    Examples:
        >>> import jax.numpy as jnp
        >>> from lazykit.kernels.duals import rbf_with_gap
        >>> from lazykit.kernels.fast_math import Separation
        >>> one, zero = jnp.float32(1.0), jnp.float32(0.0)
        >>> nngp, dot, sep = rbf_with_gap(one, one, one, Separation(1e-3 * one, 4 * one, zero),
        ...                               gamma=0.5)
        >>> [round(float(v), 6) for v in (nngp, dot, *sep)]
        [0.9995, 0.9995, 0.001, 3.999, 0.0]
    """
    del k12, k11, k22
    nngp = jnp.exp(-gamma * separation.gap)
    out = Separation(-2.0 * jnp.expm1(-gamma * separation.gap), 2.0 + 2.0 * nngp,
                     jnp.zeros_like(separation.diff))
    return nngp, 2.0 * gamma * nngp, out


def gaussian(k12, k11, k22, *, a: float, b: float):
    """phi(x) = a exp(b x^2) (b < 0 for a bump).

    With det = sqrt((1 - 2 b k11)(1 - 2 b k22) - 4 b^2 k12^2):
    E[phi phi] = a^2 / det,  E[phi' phi'] = 4 a^2 b^2 k12 / det^3.
    """
    rho_gap = rho_gap_product(k12, k11, k22)
    det = jnp.sqrt(jnp.maximum(_shifted_determinant(-2.0 * b * k11, -2.0 * b * k22, rho_gap), 0.0))
    return a * a / det, 4.0 * a * a * b * b * k12 / det**3


def exp(k12, k11, k22, *, a: float, b: float):
    """phi(x) = a exp(b x): E[phi phi] = a^2 exp(b^2 (k11 + k22 + 2 k12) / 2), E' = b^2 E."""
    b2 = b * b
    nngp = a * a * jnp.exp(b2 * (0.5 * (k11 + k22) + k12))
    return nngp, b2 * nngp


def identity(k12, k11, k22):
    """phi(x) = x: E[phi phi] = k12, E[phi' phi'] = 1."""
    return k12, jnp.ones_like(k12)


def identity_with_gap(k12, k11, k22, separation: Separation):
    """phi(x) = x: the separation passes through unchanged."""
    del k11, k22
    return k12, jnp.ones_like(k12), separation


def _hermite_moment_coefficients(coef: tuple[float, ...]) -> list[list[tuple[float, int]]]:
    """For phi = sum_i coef[i] x^i, return for each k the terms (weight, m) of A_k(s).

    E[phi(u) phi(v)] = sum_k k! k12^k A_k(k11) A_k(k22) with
    A_k(s) = sum_{i >= k, i = k mod 2} coef[i] alpha(i, (i - k)/2) s^{(i - k)/2},
    alpha(i, m) = i! / (m! (i - 2m)! 2^m) the Hermite coefficients of x^i.
    """
    terms: list[list[tuple[float, int]]] = [[] for _ in range(len(coef))]
    for i, q in enumerate(coef):
        if isinstance(q, float) and q == 0:  # a traced coefficient (jax.grad) is kept
            continue
        for m in range(i // 2 + 1):
            k = i - 2 * m
            alpha = math.factorial(i) / (math.factorial(m) * math.factorial(k) * 2**m)
            terms[k].append((q * alpha, m))
    return terms


def _polynomial_moment(coef, k12, k11, k22):
    """E[p(u) p(v)] for the polynomial p with coefficients ``coef`` (lowest degree first)."""
    result = jnp.zeros_like(k12 + k11 + k22)
    for k, terms in reversed(list(enumerate(_hermite_moment_coefficients(coef)))):
        a1 = sum(w * k11**m for w, m in terms) if terms else 0.0
        a2 = sum(w * k22**m for w, m in terms) if terms else 0.0
        result = result * k12 + math.factorial(k) * a1 * a2
    return result


def polynomial(k12, k11, k22, *, coef: tuple[float, ...]):
    """phi(x) = sum_i coef[i] x^i (monomials and the quadratic activation included).

    Exact Gaussian moments through the Hermite expansion of each power, evaluated
    by Horner's rule in k12; no square roots, so exact in k11, k22 = 0 too.
    """
    derivative = tuple(i * q for i, q in enumerate(coef))[1:] or (0.0,)
    return (_polynomial_moment(coef, k12, k11, k22),
            _polynomial_moment(derivative, k12, k11, k22))
