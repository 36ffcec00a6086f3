"""Analytic kernels against Monte Carlo over sampled finite networks.

Tolerances come from the samples: z-scores |mean - analytic| / stderr must stay
below 5 for every entry (with 30-50 entries per test, a 5-sigma event under a
correct kernel has probability below 1e-4). For one hidden layer both
estimators are unbiased at any width. Deeper networks carry an O(1/width) bias;
Richardson extrapolation 2 K(2m) - K(m) cancels it, and its standard error
combines the two estimates.
"""

import numpy as np
import pytest

import lazykit

Z_MAX = 5.0


@pytest.mark.parametrize("activation", ["relu", "erf", "gelu", "sin", "quadratic", "abs",
                                        "leaky_relu", "tanh"])
@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_one_hidden_layer_is_unbiased(rng, activation, parameterization):
    x = rng.normal(size=(6, 3))
    net = lazykit.mlp(1, 256, activation, W_std=1.3, b_std=0.2,
                      parameterization=parameterization, n_nodes=64)
    exact = net.kernel(x)
    mc = lazykit.monte_carlo_kernel(net, x, n_samples=96, seed=7)
    for estimate, stderr, analytic in ((mc.nngp, mc.nngp_stderr, exact.nngp),
                                       (mc.ntk, mc.ntk_stderr, exact.ntk)):
        z = np.abs(estimate - analytic) / np.maximum(stderr, 1e-12 * np.abs(analytic).max())
        assert z.max() < Z_MAX, z.max()


@pytest.mark.slow
@pytest.mark.parametrize("activation", ["relu", "erf"])
def test_two_hidden_layers_after_richardson_extrapolation(rng, activation):
    x = rng.normal(size=(5, 3))
    width = 128
    exact = lazykit.mlp(2, width, activation, W_std=1.5, b_std=0.1).kernel(x)
    small = lazykit.monte_carlo_kernel(lazykit.mlp(2, width, activation, W_std=1.5, b_std=0.1),
                                       x, n_samples=192, seed=1)
    large = lazykit.monte_carlo_kernel(lazykit.mlp(2, 2 * width, activation, W_std=1.5,
                                                   b_std=0.1), x, n_samples=192, seed=2)
    for kind in ("nngp", "ntk"):
        estimate = 2 * getattr(large, kind) - getattr(small, kind)
        stderr = np.sqrt(4 * getattr(large, kind + "_stderr") ** 2
                         + getattr(small, kind + "_stderr") ** 2)
        z = np.abs(estimate - getattr(exact, kind)) / stderr
        assert z.max() < Z_MAX, (kind, z.max())


def test_monte_carlo_validates_arguments():
    net = lazykit.mlp(1, 8)
    with pytest.raises(ValueError, match="n_samples must be an integer >= 2; got 1"):
        lazykit.monte_carlo_kernel(net, np.ones((2, 2)), n_samples=1)
