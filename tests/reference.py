"""Independent high-precision reference kernels (mpmath, 50 digits) for the tests.

A plain, unoptimized transcription of the recursions of docs/architecture.md
("Mathematics") for dense networks with ReLU or erf activations, in the NTK
parameterization, and of the textbook closed-form duals. Inputs are taken as exact (every float is a
rational number), so near-duplicate inputs keep their tiny separation here.
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


def erf_dual(k11, k22, k12, a=1, b=1, c=0):
    """(E[phi(u) phi(v)], E[phi'(u) phi'(v)]) for phi = a erf(b x) + c (Williams 1997)."""
    k11, k22, k12 = (mp.mpf(v) for v in (k11, k22, k12))
    a, b, c = mp.mpf(a), mp.mpf(b), mp.mpf(c)
    d1, d2 = 1 + 2 * b**2 * k11, 1 + 2 * b**2 * k22
    e = a**2 * 2 / mp.pi * mp.asin(2 * b**2 * k12 / mp.sqrt(d1 * d2)) + c**2
    de = a**2 * b**2 * 4 / mp.pi / mp.sqrt(d1 * d2 - 4 * b**4 * k12**2)
    return e, de


def sin_dual(k11, k22, k12, a=1, b=1, c=0):
    """The same for phi = a sin(b x + c)."""
    k11, k22, k12 = (mp.mpf(v) for v in (k11, k22, k12))
    a, b, c = mp.mpf(a), mp.mpf(b), mp.mpf(c)
    near = mp.exp(-b**2 * (k11 + k22 - 2 * k12) / 2)
    far = mp.exp(-b**2 * (k11 + k22 + 2 * k12) / 2) * mp.cos(2 * c)
    return a**2 / 2 * (near - far), a**2 * b**2 / 2 * (near + far)


def rbf_dual(k11, k22, k12, gamma=1):
    """The same for phi = sqrt(2) sin(sqrt(2 gamma) x + pi/4)."""
    e = mp.exp(-mp.mpf(gamma) * (mp.mpf(k11) + mp.mpf(k22) - 2 * mp.mpf(k12)))
    return e, 2 * mp.mpf(gamma) * e


def gelu_dual(k11, k22, k12):
    """The same for phi = x Phi(x) (Tsuchida et al. 2020), as written in lazykit's docstring."""
    k11, k22, k12 = (mp.mpf(v) for v in (k11, k22, k12))
    p1 = (1 + k11) * (1 + k22)
    det = p1 - k12**2
    delta = mp.sqrt(det)
    angle = mp.atan2(k12, delta)
    prod = k11 * k22
    e = k12 / 4 + (k12 * angle + (k12**2 + prod * det) / (p1 * delta)) / (2 * mp.pi)
    de = mp.mpf(1) / 4 + angle / (2 * mp.pi) + k12 * (1 / det + (1 - prod) / p1 + 1) / (
        2 * mp.pi * delta)
    return e, de


def gaussian_dual(k11, k22, k12, a=1, b=-1):
    """The same for phi = a exp(b x^2)."""
    k11, k22, k12 = (mp.mpf(v) for v in (k11, k22, k12))
    a, b = mp.mpf(a), mp.mpf(b)
    det = mp.sqrt((1 - 2 * b * k11) * (1 - 2 * b * k22) - 4 * b**2 * k12**2)
    return a**2 / det, 4 * a**2 * b**2 * k12 / det**3


DUALS = {"relu": _relu, "erf": erf_dual, "sin": sin_dual, "rbf": rbf_dual}


def kernel_pair(x, y, *, activation: str, depth: int, W_std: float, b_std: float,
                params=(), dps: int = 50):
    """(nngp, ntk) between two input vectors for Dense-act-...-Dense(1).

    ``activation`` is a key of DUALS and ``params`` its parameters after the
    covariance, e.g. (a, b, c) of a erf(b x) + c; ``dps`` is the working
    precision in decimal digits.
    """
    with mp.workdps(dps):
        x = [mp.mpf(float(v)) for v in x]
        y = [mp.mpf(float(v)) for v in y]
        d = len(x)
        w2, b2 = mp.mpf(W_std) ** 2, mp.mpf(b_std) ** 2
        k11 = sum(a * a for a in x) / d
        k22 = sum(a * a for a in y) / d
        k12 = sum(a * b for a, b in zip(x, y, strict=True)) / d

        def dual(k11, k22, k12):
            return DUALS[activation](k11, k22, k12, *params)

        k11, k22, k12 = w2 * k11 + b2, w2 * k22 + b2, w2 * k12 + b2
        ntk = k12
        for _ in range(depth):
            e, de = dual(k11, k22, k12)
            e11, _ = dual(k11, k11, k11)
            e22, _ = dual(k22, k22, k22)
            k11, k22, k12 = w2 * e11 + b2, w2 * e22 + b2, w2 * e + b2
            ntk = k12 + w2 * de * ntk
        return float(k12), float(ntk)
