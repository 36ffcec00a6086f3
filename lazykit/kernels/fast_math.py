"""The arc-cosine functions of rectifier kernels, fast and accurate without ``arccos``.

XLA on CPU evaluates ``arccos``/``atan2`` about 50x slower than a fused
multiply-add pass, and the kernels of ReLU-type networks need, per entry and
layer, with theta = arccos(rho):

    pi - theta                                   (the NTK factor), and
    J(rho) = sin(theta) + (pi - theta) rho       (the NNGP factor).

With t = |rho|, both are written through one square root and two polynomials:

    arccos(t) = sqrt(1 - t) g(t),
    J(rho) = pi max(rho, 0) + (1 - t)^{3/2} k(t),

where g(t) = arccos(t) / sqrt(1 - t) and k(t) = (sqrt(1 - t^2) - t arccos t) / (1 - t)^{3/2}
are analytic on [0, 1]. (For rho < 0, pi - theta = arccos(t) and
J = sqrt(1 - t^2) - t arccos(t); for rho >= 0 the same identities give the
extra pi rho.) The factored form keeps full *relative* accuracy where J
vanishes like (1 + rho)^{3/2} (antipodal inputs) and where theta vanishes
(near-duplicate inputs). g and k are Chebyshev interpolants in s = 2 t - 1,
computed once from float64 samples and evaluated by Horner's rule (monomial
coefficients below 1.5 in magnitude, so the evaluation is stable). Degrees 16
and 14 give a relative error of 2e-15 in float64, degrees 8 and 7 reach
float32 round-off.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

# Degrees reaching round-off (relative error): float64 2e-15, float32 6e-8.
_DEGREES = {np.dtype(np.float32): {"g": 8, "k": 7}, np.dtype(np.float64): {"g": 16, "k": 14}}


def _g_samples(t: np.ndarray) -> np.ndarray:
    return np.arccos(t) / np.sqrt(1.0 - t)


def _k_samples(t: np.ndarray) -> np.ndarray:
    """k(t) sampled without cancellation: sin(theta) - theta cos(theta) by its series when small."""
    theta = np.arccos(t)
    direct = np.sqrt((1.0 - t) * (1.0 + t)) - t * theta
    series = np.zeros_like(theta)
    # sin x - x cos x = sum_{n>=1} (-1)^(n+1) 2n x^(2n+1) / (2n+1)!
    for n in range(1, 12):
        series += (-1) ** (n + 1) * 2 * n * theta ** (2 * n + 1) / float(math.factorial(2 * n + 1))
    numerator = np.where(theta < 0.5, series, direct)
    return numerator / (1.0 - t) ** 1.5


@functools.cache
def _coefficients(which: str, degree: int) -> tuple[float, ...]:
    """Monomial coefficients in s = 2t - 1 (highest degree first) of g or k."""
    n_nodes = 4 * degree + 40
    s = np.cos(np.pi * (np.arange(n_nodes) + 0.5) / n_nodes)
    t = (s + 1.0) / 2.0
    samples = _g_samples(t) if which == "g" else _k_samples(t)
    cheb = np.polynomial.chebyshev.chebfit(s, samples, degree)
    return tuple(float(c) for c in np.polynomial.chebyshev.cheb2poly(cheb)[::-1])


@jax.custom_jvp
def sqrt_flat_at_zero(x):
    """sqrt(x) whose derivative at x = 0 is 0 instead of inf (no NaN under autodiff).

    The arc-cosine and quadrature duals take sqrt(1 - |rho|); at rho = +-1
    (identical inputs, the diagonal of a Gram matrix) rho does not move with
    W_std or b_std, and the chain rule would form 0 * inf = NaN.

    Examples:
        >>> import jax
        >>> from lazykit.kernels.fast_math import sqrt_flat_at_zero
        >>> float(jax.grad(sqrt_flat_at_zero)(0.0)), float(jax.grad(sqrt_flat_at_zero)(4.0))
        (0.0, 0.25)
    """
    return jnp.sqrt(x)


@sqrt_flat_at_zero.defjvp
def _sqrt_flat_at_zero_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    root = jnp.sqrt(x)
    positive = root > 0
    return root, jnp.where(positive, 0.5 / jnp.where(positive, root, 1.0), 0.0) * dx


def _horner(s, coefficients):
    result = jnp.full_like(s, coefficients[0])
    for c in coefficients[1:]:
        result = result * s + c
    return result


def snap_correlation(rho):
    """Clip ``rho`` to [-1, 1] and round values within 8 ulps of +-1 to +-1.

    d theta / d rho is infinite at +-1, so a correlation computed from a Gram
    matrix cannot resolve angles below about sqrt(eps) there; snapping makes the
    diagonal of a symmetric kernel exactly theta = 0, as it must be.
    """
    snap = 1.0 - 8.0 * jnp.finfo(rho.dtype).eps
    return jnp.where(rho > snap, 1.0, jnp.where(rho < -snap, -1.0, rho))


def snap_covariance(k12, k11, k22):
    """Clip a covariance to |k12| <= sqrt(k11 k22), snapping values within 8 ulps of the bound.

    Identical inputs must keep correlation exactly 1 through every layer: in the
    chaotic phase of an activation (erf or tanh with large W_std) correlation 1
    is an unstable fixed point, and a rounding error of one ulp would grow
    exponentially with depth.
    """
    s1 = jnp.sqrt(jnp.maximum(k11, 0.0))
    s2 = jnp.sqrt(jnp.maximum(k22, 0.0))
    bound = jnp.where(k11 == k22, k11, s1 * s2)
    slack = 8.0 * jnp.finfo(jnp.result_type(k12)).eps * bound
    return jnp.where(k12 > bound - slack, bound, jnp.where(k12 < slack - bound, -bound, k12))


class Separation(NamedTuple):
    """What a covariance cannot resolve about a pair (u, v): its separation, tracked exactly.

    ``gap`` = E[(u - v)^2] = k11 + k22 - 2 k12 (small for near-duplicates),
    ``anti_gap`` = E[(u + v)^2] = k11 + k22 + 2 k12 (small for near-antipodal
    pairs) and ``diff`` = k11 - k22. Computed from the covariance they carry its
    absolute error (a few ulps of k11 + k22) and resolve no 1 -+ rho below about
    1e-15 (float64); the recursion instead carries them from the inputs' exact
    differences (see :mod:`lazykit.kernels.recursion`).
    """

    gap: jax.Array
    anti_gap: jax.Array
    diff: jax.Array


def covariance_separation(k12, k11, k22) -> Separation:
    """The :class:`Separation` of a covariance, the fallback when none is tracked.

    Identical (antipodal) inputs, with k12 = k11 = k22 (k12 = -k11) bitwise as
    :func:`snap_covariance` leaves them, get a gap (anti_gap) of exactly 0.

    Examples:
        >>> from lazykit.kernels.fast_math import covariance_separation
        >>> [float(v) for v in covariance_separation(0.5, 1.0, 2.0)]
        [2.0, 4.0, -1.0]
    """
    total = k11 + k22
    return Separation(jnp.maximum(total - 2.0 * k12, 0.0), jnp.maximum(total + 2.0 * k12, 0.0),
                      k11 - k22 + jnp.zeros_like(k12))


def rho_gap_product(k12, k11, k22):
    """(1 - rho)(1 + rho) = 1 - rho^2 for rho = k12 / sqrt(k11 k22), without cancellation.

    rho is snapped to +-1 within 8 ulps (see :func:`snap_correlation`), so
    identical inputs give exactly 0; 1 - |rho| is exact (Sterbenz), so the product
    has full relative accuracy given rho. The fast path when no separation is tracked.

    Examples:
        >>> from lazykit.kernels.fast_math import rho_gap_product
        >>> float(rho_gap_product(1.0, 1.0, 1.0)), float(rho_gap_product(0.5, 1.0, 1.0))
        (0.0, 0.75)
    """
    s1 = jnp.sqrt(jnp.maximum(k11, 0.0))
    s2 = jnp.sqrt(jnp.maximum(k22, 0.0))
    norm = s1 * s2
    positive = norm > 0
    t = jnp.abs(snap_correlation(jnp.where(positive, k12 / jnp.where(positive, norm, 1.0), 0.0)))
    return (1.0 - t) * (1.0 + t)


def correlation_gaps(k12, k11, k22, separation: Separation):
    """Return ``(q, p, close, anti_close)``: q = 1 - rho and p = 1 + rho without cancellation.

    rho = k12 / sqrt(k11 k22) is the correlation (0 where a variance is 0). For
    close pairs (gap <= sqrt(k11 k22), so rho >= 1/2) q comes from the
    separation, q = (gap - s^2) / (2 sqrt(k11 k22)) with s = sqrt(k11) -
    sqrt(k22) = diff / (sqrt(k11) + sqrt(k22)), which keeps its relative
    accuracy for near-duplicates (1 - rho far below the float resolution of
    rho); for anti-close pairs (anti_gap <= sqrt(k11 k22)) p likewise from
    anti_gap; elsewhere 1 -+ rho. ``close`` and ``anti_close`` mark them.

    Examples:
        >>> from lazykit.kernels.fast_math import Separation, correlation_gaps
        >>> tiny = 2.0**-100  # rho rounds to 1
        >>> q, p, close, _ = correlation_gaps(1.0, 1.0, 1.0, Separation(tiny, 4.0, 0.0))
        >>> float(q) == tiny / 2, float(p), bool(close)
        (True, 2.0, True)
    """
    s1 = jnp.sqrt(jnp.maximum(k11, 0.0))
    s2 = jnp.sqrt(jnp.maximum(k22, 0.0))
    norm = s1 * s2
    positive = norm > 0
    safe_norm = jnp.where(positive, norm, 1.0)
    rho = snap_correlation(jnp.where(positive, k12 / safe_norm, 0.0))
    total = s1 + s2
    spread = jnp.where(total > 0, separation.diff / jnp.where(total > 0, total, 1.0), 0.0)
    square = spread * spread

    def gap_ratio(gap):
        return jnp.clip((gap - square) / (2.0 * safe_norm), 0.0, 1.0)

    q_gap, p_gap = gap_ratio(separation.gap), gap_ratio(separation.anti_gap)
    close = positive & (separation.gap <= norm)
    anti_close = positive & (separation.anti_gap <= norm) & ~close
    q = jnp.where(close, q_gap, jnp.where(anti_close, 2.0 - p_gap, 1.0 - rho))
    p = jnp.where(anti_close, p_gap, jnp.where(close, 2.0 - q_gap, 1.0 + rho))
    return q, p, close, anti_close


def arc_cosine_terms(rho):
    """Return ``(pi - arccos(rho), J(rho))`` with J(rho) = sin(theta) + (pi - theta) rho.

    ``rho`` must lie in [-1, 1] (see :func:`snap_correlation`).

    Examples:
        >>> import jax.numpy as jnp
        >>> from lazykit.kernels.fast_math import arc_cosine_terms
        >>> complement, j = arc_cosine_terms(jnp.asarray([-1.0, 0.0, 1.0]))
        >>> [round(float(v), 6) for v in complement], [round(float(v), 6) for v in j]
        ([0.0, 1.570796, 3.141593], [0.0, 1.0, 3.141593])
    """
    rho = jnp.asarray(rho)
    degrees = _DEGREES.get(np.dtype(rho.dtype), _DEGREES[np.dtype(np.float64)])
    t = jnp.abs(rho)
    s = 2.0 * t - 1.0
    one_minus_t = 1.0 - t
    root = sqrt_flat_at_zero(one_minus_t)
    arccos_t = root * _horner(s, _coefficients("g", degrees["g"]))
    tail = one_minus_t * root * _horner(s, _coefficients("k", degrees["k"]))
    negative = rho < 0
    complement = jnp.where(negative, arccos_t, jnp.pi - arccos_t)
    j = jnp.where(negative, tail, tail + jnp.pi * rho)
    return complement, j
