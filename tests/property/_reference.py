"""Independent references for the property tests: textbook formulas in mpmath and NumPy.

Nothing here imports lazykit's numerics. The Gaussian expectations are the
closed forms of the literature (Cho & Saul 2009 for the arc-cosine kernels,
Williams 1997 for erf, Hermite expansions for polynomials, completing the square
for exponentials), evaluated at 50 digits from the exact binary values of the
float64 inputs, and run through the layer recursion of design.md.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import mpmath as mp
import numpy as np

DIGITS = 50


# Gaussian duals: (E[phi(u) phi(v)], E[phi'(u) phi'(v)]) for (u, v) ~ N(0, [[k11, k12], [k12, k22]])

def _angle(k12, k11, k22):
    norm = mp.sqrt(k11 * k22)
    if norm == 0:
        return norm, mp.mpf(0), mp.pi / 2
    rho = max(min(k12 / norm, mp.mpf(1)), mp.mpf(-1))
    return norm, rho, mp.acos(rho)


def abrelu_dual(k12, k11, k22, a, b):
    """phi = a min(x, 0) + b max(x, 0): the degree-1 arc-cosine kernel (Cho & Saul)."""
    a, b = mp.mpf(a), mp.mpf(b)
    norm, rho, theta = _angle(k12, k11, k22)
    factor = (a - b) ** 2 / (2 * mp.pi)
    e = norm * (factor * (mp.sin(theta) + (mp.pi - theta) * rho) + a * b * rho)
    return e, factor * (mp.pi - theta) + a * b


def step_dual(k12, k11, k22):
    norm, _, theta = _angle(k12, k11, k22)
    return (mp.mpf(0) if norm == 0 else (mp.pi - theta) / (2 * mp.pi)), mp.mpf(0)


def sign_dual(k12, k11, k22):
    norm, _, theta = _angle(k12, k11, k22)
    return (mp.mpf(0) if norm == 0 else 1 - 2 * theta / mp.pi), mp.mpf(0)


def erf_dual(k12, k11, k22, a, b, c):
    a, b, c = mp.mpf(a), mp.mpf(b), mp.mpf(c)
    d1, d2 = 1 + 2 * b * b * k11, 1 + 2 * b * b * k22
    e = a * a * 2 / mp.pi * mp.asin(2 * b * b * k12 / mp.sqrt(d1 * d2))
    # d1 d2 - 4 b^4 k12^2 expanded, so that 50 digits suffice at variances of 1e300.
    gap = 1 + 2 * b * b * (k11 + k22) + 4 * b**4 * (k11 * k22 - k12 * k12)
    return e + c * c, a * a * b * b * 4 / mp.pi / mp.sqrt(gap)


def sin_dual(k12, k11, k22, a, b, c):
    """phi = a sin(b x + c): E[sin X sin Y] = (E cos(X - Y) - E cos(X + Y)) / 2."""
    a, b, c = mp.mpf(a), mp.mpf(b), mp.mpf(c)
    minus = mp.exp(-b * b * (k11 + k22 - 2 * k12) / 2)
    plus = mp.cos(2 * c) * mp.exp(-b * b * (k11 + k22 + 2 * k12) / 2)
    return a * a * (minus - plus) / 2, a * a * b * b * (minus + plus) / 2


def exp_dual(k12, k11, k22, a, b):
    a, b = mp.mpf(a), mp.mpf(b)
    e = a * a * mp.exp(b * b * (k11 + k22 + 2 * k12) / 2)
    return e, b * b * e


def gaussian_dual(k12, k11, k22, a, b):
    """phi = a exp(b x^2); None where the expectation diverges (I - 2 b Sigma not positive)."""
    a, b = mp.mpf(a), mp.mpf(b)
    sigma = mp.matrix([[k11, k12], [k12, k22]])
    m = mp.eye(2) - 2 * b * sigma
    det = mp.det(m)
    if m[0, 0] <= 0 or det <= 0:
        return None
    tilted = mp.inverse(m) * sigma
    return a * a / mp.sqrt(det), 4 * a * a * b * b * tilted[0, 1] / mp.sqrt(det)


def _hermite_coefficient(p: int, k: int) -> int:
    """x^p = sum_k coef(p, k) He_k(x) (probabilists' Hermite polynomials)."""
    if k > p or (p - k) % 2:
        return 0
    m = (p - k) // 2
    return math.factorial(p) // (math.factorial(k) * math.factorial(m) * 2**m)


def monomial_moment(p: int, q: int, k12, k11, k22):
    """E[u^p v^q] = sum_k c_pk c_qk k! k12^k k11^((p-k)/2) k22^((q-k)/2)."""
    total = mp.mpf(0)
    for k in range(min(p, q) + 1):
        cp, cq = _hermite_coefficient(p, k), _hermite_coefficient(q, k)
        if cp and cq:
            total += cp * cq * math.factorial(k) * k12**k * k11 ** ((p - k) // 2) * \
                k22 ** ((q - k) // 2)
    return total


def polynomial_dual(k12, k11, k22, coef):
    coef = [mp.mpf(c) for c in coef]
    slope = [p * c for p, c in enumerate(coef)][1:]

    def moment(cs):
        return sum((ci * cj * monomial_moment(i, j, k12, k11, k22)
                    for i, ci in enumerate(cs) for j, cj in enumerate(cs) if ci and cj),
                   mp.mpf(0))

    return moment(coef), moment(slope)


def identity_dual(k12, k11, k22):
    return k12, mp.mpf(1)


# Layer recursion ---------------------------------------------------------------------------

# Relative rounding of a float64 Gram entry (relative to the norms) that no kernel computed
# from Gram entries can avoid: the references report how much the kernel moves under it.
GRAM_ROUNDING = 2e-15


class Reference(NamedTuple):
    nngp: np.ndarray
    ntk: np.ndarray
    sensitivity_nngp: np.ndarray  # change of each entry when the input correlation moves
    sensitivity_ntk: np.ndarray  # by GRAM_ROUNDING (the conditioning of the entry)


def mlp_kernels(x1, x2, dual, *, depth: int, W_std: float, b_std: float | None,
                parameterization: str = "ntk", width: int = 512) -> Reference:
    """The kernels of mlp(depth, width, activation, W_std, b_std) as float64 arrays.

    ``dual(k12, k11, k22)`` returns the pair of expectations, or None where one
    diverges (the entry is then NaN).
    """
    x2 = x1 if x2 is None else x2
    shape = (x1.shape[0], x2.shape[0])
    out = [np.empty(shape) for _ in range(4)]
    with mp.workdps(DIGITS):
        rows1 = [[mp.mpf(float(v)) for v in row] for row in x1]
        rows2 = [[mp.mpf(float(v)) for v in row] for row in x2]
        for i, u in enumerate(rows1):
            for j, v in enumerate(rows2):
                args = (u, v, dual, depth, W_std, b_std, parameterization, width)
                exact = _pair(*args, shift=0)
                moved = [_pair(*args, shift=s) for s in (GRAM_ROUNDING, -GRAM_ROUNDING)]
                out[0][i, j], out[1][i, j] = exact
                for k in (0, 1):
                    out[2 + k][i, j] = max(abs(m[k] - exact[k]) for m in moved)
    return Reference(*out)


def mlp_diagonal(x, dual, *, depth: int, W_std: float, b_std: float | None,
                 parameterization: str = "ntk", width: int = 512):
    """(nngp, ntk) of K(x_i, x_i), shape (n,) each (see mlp_kernels)."""
    nngp, ntk = np.empty(x.shape[0]), np.empty(x.shape[0])
    with mp.workdps(DIGITS):
        for i, row in enumerate(x):
            u = [mp.mpf(float(v)) for v in row]
            nngp[i], ntk[i] = _pair(u, u, dual, depth, W_std, b_std, parameterization, width,
                                    shift=0)
    return nngp, ntk


def _pair(u, v, dual, depth, W_std, b_std, parameterization, width, shift):
    d = len(u)
    w2 = mp.mpf(W_std) ** 2
    b2 = mp.mpf(0) if b_std is None else mp.mpf(b_std) ** 2
    cross = sum(p * q for p, q in zip(u, v, strict=True)) / d
    sq1, sq2 = sum(p * p for p in u) / d, sum(q * q for q in v) / d
    k12, k11, k22 = w2 * cross + b2, w2 * sq1 + b2, w2 * sq2 + b2
    bias_grad = 0 if b_std is None else 1
    ntk = k12 if parameterization == "ntk" else d * cross + bias_grad
    if shift:
        bound = mp.sqrt(k11 * k22)
        k12 = max(min(k12 + shift * bound, bound), -bound)
    for _ in range(depth):
        pair, own1, own2 = dual(k12, k11, k22), dual(k11, k11, k11), dual(k22, k22, k22)
        if pair is None or own1 is None or own2 is None:
            return math.nan, math.nan
        e, de = pair
        k12, k11, k22 = w2 * e + b2, w2 * own1[0] + b2, w2 * own2[0] + b2
        if parameterization == "ntk":
            ntk = k12 + w2 * de * ntk
        else:
            ntk = width * e + bias_grad + w2 * de * ntk
    return float(k12), float(ntk)


# NumPy references --------------------------------------------------------------------------

def relu_depth1_numpy(x1, x2, W_std: float, b_std: float | None) -> Reference:
    """mlp(1, activation="relu") in NumPy: the arc-cosine formula with Kahan's angle.

    theta = 2 atan2(|a - b|, |a + b|) for the unit vectors a, b of the
    augmented inputs (W_std x / sqrt(d), b_std): accurate for near-duplicate
    and antipodal inputs, and for norms from 1e-150 to 1e150 (each row is
    scaled by its largest entry before squaring).
    """
    d = x1.shape[1]
    b = 0.0 if b_std is None else b_std

    def augmented(x):
        z = np.concatenate([W_std * x / math.sqrt(d), np.full((x.shape[0], 1), b)], axis=1)
        big = np.max(np.abs(z), axis=1, keepdims=True)
        safe = np.where(big > 0, big, 1.0)
        norm = big[:, 0] * np.linalg.norm(z / safe, axis=1)
        unit = z / np.where(norm > 0, norm, 1.0)[:, None]
        return norm, unit

    n1, a = augmented(x1)
    n2, c = augmented(x2)
    diff = np.linalg.norm(a[:, None, :] - c[None, :, :], axis=2)
    plus = np.linalg.norm(a[:, None, :] + c[None, :, :], axis=2)
    zero = (n1[:, None] == 0) | (n2[None, :] == 0)
    theta = np.where(zero, np.pi / 2, 2 * np.arctan2(diff, plus))
    k1 = W_std**2 * (x1 @ x2.T) / d + b * b
    norms = np.outer(n1, n2)

    def kernels(theta):
        e = norms * (np.sin(theta) + (np.pi - theta) * np.cos(theta)) / (2 * np.pi)
        nngp = W_std**2 * np.where(zero, 0.0, e) + b * b
        return nngp, nngp + W_std**2 * (np.pi - theta) / (2 * np.pi) * k1

    nngp, ntk = kernels(theta)
    moved = [kernels(np.arccos(np.clip(np.cos(theta) + s, -1, 1)))
             for s in (GRAM_ROUNDING, -GRAM_ROUNDING)]
    return Reference(nngp, ntk, *(np.maximum(np.abs(moved[0][k] - exact),
                                             np.abs(moved[1][k] - exact))
                                  for k, exact in enumerate((nngp, ntk))))


def gauss_hermite_dual_numpy(f, k12, k11, k22, n_nodes: int = 120):
    """E[f(u) f(v)] by a 2-D Gauss-Hermite rule in NumPy (smooth f, moderate variances)."""
    s, w = np.polynomial.hermite_e.hermegauss(n_nodes)
    w = w / w.sum()
    s1, s2 = math.sqrt(k11), math.sqrt(k22)
    rho = 0.0 if s1 * s2 == 0 else max(-1.0, min(1.0, k12 / (s1 * s2)))
    u = s1 * s[:, None]
    v = s2 * (rho * s[:, None] + math.sqrt(max(0.0, 1 - rho * rho)) * s[None, :])
    return float(np.sum(w[:, None] * w[None, :] * f(u) * f(v)))


# The two-layer model f(w, x) = (alpha / m) sum_j c_j sigma(a_j . (x, 1)) ------------------------

def _two_layer_terms(activation, params, X):
    a, c = np.asarray(params["a"], np.float64), np.asarray(params["c"], np.float64)
    xt = np.concatenate([X, np.ones((X.shape[0], 1))], axis=1)
    u = xt @ a.T
    if activation == "relu":
        value, slope, curve = np.maximum(u, 0), (u > 0).astype(float), np.zeros_like(u)
    elif activation == "erf":
        value = np.vectorize(math.erf)(u)
        slope = 2 / math.sqrt(math.pi) * np.exp(-u * u)
        curve = -2 * u * slope
    else:
        raise ValueError(f"no reference for activation {activation!r}")
    return a, c, xt, value, slope, curve


def two_layer_jacobian(activation, params, X, alpha=1.0):
    """d (alpha f)(x_i) / d (a, c), shape (n, m (d + 1) + m), parameters in the order a, c."""
    a, c, xt, value, slope, _ = _two_layer_terms(activation, params, X)
    m = a.shape[0]
    da = (c * slope)[:, :, None] * xt[:, None, :]  # (n, m, d + 1)
    return alpha / m * np.concatenate([da.reshape(X.shape[0], -1), value], axis=1)


def two_layer_hessians(activation, params, X, alpha=1.0):
    """D^2 (alpha f)(x_i) with respect to (a, c), shape (n, P, P)."""
    a, c, xt, _, slope, curve = _two_layer_terms(activation, params, X)
    m, p = a.shape
    size = m * p + m
    hessians = np.zeros((X.shape[0], size, size))
    for i in range(X.shape[0]):
        for j in range(m):
            block = slice(j * p, (j + 1) * p)
            hessians[i, block, block] = c[j] * curve[i, j] * np.outer(xt[i], xt[i])
            hessians[i, block, m * p + j] = slope[i, j] * xt[i]
            hessians[i, m * p + j, block] = slope[i, j] * xt[i]
    return alpha / m * hessians
