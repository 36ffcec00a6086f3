"""Closed-form Gaussian duals of activation functions.

Every function here maps a covariance ``(k12, k11, k22)`` of a centred Gaussian
pair ``(u, v)`` (``k12`` the covariance, ``k11`` and ``k22`` the variances; the
arrays broadcast together) to the pair

    E[phi(u) phi(v)],  E[phi'(u) phi'(v)],

the first driving the NNGP recursion and the second the NTK recursion. They are
pure ``jax.numpy`` functions of arrays, safe for zero variances (no NaN) and for
correlations rounded slightly past +-1.
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from lazykit.kernels.fast_math import arc_cosine_terms, snap_correlation


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


def erf(k12, k11, k22, *, a: float, b: float, c: float):
    """phi(x) = a erf(b x) + c (Williams 1997).

    E[phi phi] = a^2 (2/pi) arcsin(2 b^2 k12 / sqrt((1 + 2 b^2 k11)(1 + 2 b^2 k22))) + c^2,
    E[phi' phi'] = a^2 b^2 (4/pi) / sqrt((1 + 2 b^2 k11)(1 + 2 b^2 k22) - 4 b^4 k12^2).
    """
    b2 = b * b
    d1 = 1.0 + 2.0 * b2 * k11
    d2 = 1.0 + 2.0 * b2 * k22
    # d1 d2 - 4 b^4 k12^2 = 1 + 2 b^2 (k11 + k22) + 4 b^4 (k11 k22 - k12^2): summing
    # non-negative parts avoids the cancellation that gives inf for near-duplicates.
    det = jnp.maximum(k11 * k22 - k12 * k12, 0.0)
    root = jnp.sqrt(1.0 + 2.0 * b2 * (k11 + k22) + 4.0 * b2 * b2 * det)
    ratio = jnp.clip(2.0 * b2 * k12 / (jnp.sqrt(d1) * jnp.sqrt(d2)), -1.0, 1.0)
    nngp = a * a * (2.0 / math.pi) * jnp.arcsin(ratio) + c * c
    dot = a * a * b2 * (4.0 / math.pi) / root
    return nngp, dot


def gelu(k12, k11, k22):
    """phi(x) = x Phi(x), Phi the standard normal CDF (Tsuchida et al. 2020).

    With D = (1 + k11)(1 + k22) - k12^2 and angle = arcsin(k12 / sqrt((1 + k11)(1 + k22))):
    E[phi phi] = k12 / 4
                 + (k12 angle + (k12^2 + k11 k22 D) / ((1 + k11)(1 + k22) sqrt(D))) / (2 pi),
    E[phi' phi'] = 1/4 + angle / (2 pi) + k12 (1/D + (1 - k11 k22) / ((1 + k11)(1 + k22)) + 1)
                   / (2 pi sqrt(D)).
    """
    p1 = (1.0 + k11) * (1.0 + k22)
    delta2 = jnp.maximum(p1 - k12 * k12, 0.0)
    delta = jnp.sqrt(delta2)
    angle = jnp.arctan2(k12, delta)
    prod = k11 * k22
    nngp = 0.25 * k12 + (k12 * angle + (k12 * k12 + prod * delta2) / (p1 * delta)) / (2 * math.pi)
    dot = 0.25 + angle / (2 * math.pi) + (
        k12 * (1.0 / delta2 + (1.0 - prod) / p1 + 1.0) / (2 * math.pi * delta))
    return nngp, dot


def sin(k12, k11, k22, *, a: float, b: float, c: float):
    """phi(x) = a sin(b x + c); cos is the phase c + pi/2.

    E[phi phi] = a^2/2 [exp(-b^2 (k11 + k22 - 2 k12)/2) - exp(-b^2 (k11 + k22 + 2 k12)/2) cos 2c],
    E[phi' phi'] = a^2 b^2/2 [same two terms, added].
    """
    b2 = b * b
    half_sum = 0.5 * (k11 + k22)
    s1 = jnp.exp(b2 * (k12 - half_sum))
    s2 = jnp.exp(-b2 * (k12 + half_sum)) * math.cos(2.0 * c)
    half_a2 = 0.5 * a * a
    return half_a2 * (s1 - s2), half_a2 * b2 * (s1 + s2)


def rbf(k12, k11, k22, *, gamma: float):
    """phi(x) = sqrt(2) sin(sqrt(2 gamma) x + pi/4): E = exp(-gamma (k11 + k22 - 2 k12)).

    After a Dense layer without bias this is the RBF kernel exp(-gamma ||x - x'||^2 / d).
    """
    nngp = jnp.exp(gamma * (2.0 * k12 - k11 - k22))
    return nngp, 2.0 * gamma * nngp


def gaussian(k12, k11, k22, *, a: float, b: float):
    """phi(x) = a exp(b x^2) (b < 0 for a bump).

    With det = sqrt((1 - 2 b k11)(1 - 2 b k22) - 4 b^2 k12^2):
    E[phi phi] = a^2 / det,  E[phi' phi'] = 4 a^2 b^2 k12 / det^3.
    """
    det = jnp.sqrt(jnp.maximum((1.0 - 2.0 * b * k11) * (1.0 - 2.0 * b * k22)
                               - 4.0 * b * b * k12 * k12, 0.0))
    return a * a / det, 4.0 * a * a * b * b * k12 / det**3


def exp(k12, k11, k22, *, a: float, b: float):
    """phi(x) = a exp(b x): E[phi phi] = a^2 exp(b^2 (k11 + k22 + 2 k12) / 2), E' = b^2 E."""
    b2 = b * b
    nngp = a * a * jnp.exp(b2 * (0.5 * (k11 + k22) + k12))
    return nngp, b2 * nngp


def identity(k12, k11, k22):
    """phi(x) = x: E[phi phi] = k12, E[phi' phi'] = 1."""
    return k12, jnp.ones_like(k12)


def _hermite_moment_coefficients(coef: tuple[float, ...]) -> list[list[tuple[float, int]]]:
    """For phi = sum_i coef[i] x^i, return for each k the terms (weight, m) of A_k(s).

    E[phi(u) phi(v)] = sum_k k! k12^k A_k(k11) A_k(k22) with
    A_k(s) = sum_{i >= k, i = k mod 2} coef[i] alpha(i, (i - k)/2) s^{(i - k)/2},
    alpha(i, m) = i! / (m! (i - 2m)! 2^m) the Hermite coefficients of x^i.
    """
    terms: list[list[tuple[float, int]]] = [[] for _ in range(len(coef))]
    for i, q in enumerate(coef):
        if q == 0:
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
