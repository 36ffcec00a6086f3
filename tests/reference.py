"""Independent high-precision reference kernels (mpmath, 50 digits) for the tests.

A plain, unoptimized transcription of the recursions in design.md for dense
networks with ReLU or erf activations, in the NTK parameterization.
"""

import mpmath as mp

mp.mp.dps = 50


def _relu(k11, k22, k12):
    norm = mp.sqrt(k11 * k22)
    rho = max(min(k12 / norm, mp.mpf(1)), mp.mpf(-1)) if norm > 0 else mp.mpf(0)
    theta = mp.acos(rho)
    e = norm * (mp.sin(theta) + (mp.pi - theta) * rho) / (2 * mp.pi)
    de = (mp.pi - theta) / (2 * mp.pi)
    return e, de


def _erf(k11, k22, k12):
    d1, d2 = 1 + 2 * k11, 1 + 2 * k22
    e = 2 / mp.pi * mp.asin(2 * k12 / mp.sqrt(d1 * d2))
    de = 4 / mp.pi / mp.sqrt(d1 * d2 - 4 * k12**2)
    return e, de


def kernel_pair(x, y, *, activation: str, depth: int, W_std: float, b_std: float):
    """(nngp, ntk) between two input vectors for Dense-act-...-Dense(1)."""
    x = [mp.mpf(float(v)) for v in x]
    y = [mp.mpf(float(v)) for v in y]
    d = len(x)
    w2, b2 = mp.mpf(W_std) ** 2, mp.mpf(b_std) ** 2
    k11 = sum(a * a for a in x) / d
    k22 = sum(a * a for a in y) / d
    k12 = sum(a * b for a, b in zip(x, y, strict=True)) / d
    dual = {"relu": _relu, "erf": _erf}[activation]
    k11, k22, k12 = w2 * k11 + b2, w2 * k22 + b2, w2 * k12 + b2
    ntk = k12
    for _ in range(depth):
        e, de = dual(k11, k22, k12)
        e11, _ = dual(k11, k11, k11)
        e22, _ = dual(k22, k22, k22)
        k11, k22, k12 = w2 * e11 + b2, w2 * e22 + b2, w2 * e + b2
        ntk = k12 + w2 * de * ntk
    return float(k12), float(ntk)
