"""Shared data and reference solvers for the lazy-training tests (NumPy/SciPy only)."""

import numpy as np
import scipy.linalg


def teacher_student(seed, n=40, d=5, n_test=0, hidden=4):
    """Targets of a random two-layer ReLU teacher on Gaussian inputs of norm ~1, standardized."""
    rng = np.random.default_rng(seed)
    teacher = rng.normal(size=(hidden, d + 1))
    x = rng.normal(size=(n + n_test, d)) / np.sqrt(d)
    h = np.maximum(x @ teacher[:, :d].T + teacher[:, d], 0.0).mean(1)
    y = (h - h[:n].mean()) / h[:n].std()
    return x[:n], y[:n], x[n:], y[n:]


def ridgeless(k_train, k_cross, y):
    """Kernel interpolation k(x, X) K^-1 y by a Cholesky solve."""
    factor = scipy.linalg.cho_factor(k_train)
    return k_cross @ scipy.linalg.cho_solve(factor, y)


def numpy_network_params(network, input_dim, seed=0):
    """Parameters for a lazykit.Network drawn with NumPy (same layout and distribution as
    Network.init, without compiling JAX's random number generator for every shape)."""
    import lazykit

    rng = np.random.default_rng(seed)
    params, width = [], input_dim
    for layer in network.layers:
        if not isinstance(layer, lazykit.Dense):
            params.append(())
            continue
        scale_w = layer.W_std / np.sqrt(width) if layer.parameterization == "standard" else 1.0
        entry = {"W": scale_w * rng.normal(size=(width, layer.out_dim))}
        if layer.b_std is not None:
            scale_b = layer.b_std if layer.parameterization == "standard" else 1.0
            entry["b"] = scale_b * rng.normal(size=layer.out_dim)
        params.append(entry)
        width = layer.out_dim
    return params
