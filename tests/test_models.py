"""TwoLayer: validation, symmetric initialization, homogeneity, and its infinite-width
kernels against Monte Carlo over finite networks (z-scores, as in test_monte_carlo.py)."""

import numpy as np
import pytest

import lazykit
from lazykit._dtypes import precision

Z_MAX = 5.0


def test_validation_names_the_argument():
    with pytest.raises(ValueError, match=r"width must be an integer >= 1; got 0"):
        lazykit.TwoLayer(0)
    with pytest.raises(ValueError, match=r"width must be even when symmetric=True"):
        lazykit.TwoLayer(5)
    with pytest.raises(ValueError, match=r"alpha must be a finite number > 0; got 0\.0"):
        lazykit.TwoLayer(4, alpha=0.0)
    with pytest.raises(ValueError, match=r"alpha must be a finite number > 0; got -1\.0"):
        lazykit.TwoLayer(4, alpha=-1.0)
    with pytest.raises(ValueError, match="init_scale must be a finite number > 0"):
        lazykit.TwoLayer(4, init_scale=0.0)
    with pytest.raises(ValueError, match="activation must be one of"):
        lazykit.TwoLayer(4, activation="nope")
    assert lazykit.TwoLayer(5, symmetric=False).width == 5


def test_symmetric_initialization_gives_exactly_zero_output(rng):
    x = rng.normal(size=(7, 3))
    for dtype in ("float32", "float64"):
        model = lazykit.TwoLayer(40, activation="tanh", alpha=100.0, init_scale=2.0)
        params = model.init(3, input_dim=3, dtype=dtype)
        assert params["a"].shape == (40, 4) and params["c"].shape == (40,)
        assert str(params["a"].dtype) == dtype
        with precision(dtype):
            out = np.asarray(model.apply(params, x.astype(dtype)))
            np.testing.assert_array_equal(out, 0.0)
        np.testing.assert_array_equal(params["a"][:20], params["a"][20:])
        np.testing.assert_array_equal(params["c"][:20], -params["c"][20:])
    independent = lazykit.TwoLayer(40, symmetric=False).init(3, input_dim=3)
    assert np.abs(np.asarray(lazykit.TwoLayer(40, symmetric=False).apply(independent, x))).max() > 0


def test_init_is_reproducible_from_seed_or_key():
    import jax

    model = lazykit.TwoLayer(8)
    a = model.init(5, 2)["a"]
    np.testing.assert_array_equal(a, model.init(5, 2)["a"])
    assert not np.array_equal(a, model.init(6, 2)["a"])
    k1, k2 = model.init(jax.random.PRNGKey(1), 2), model.init(jax.random.key(1), 2)
    np.testing.assert_array_equal(k1["a"], k2["a"])


def test_output_formula_and_two_homogeneity(rng):
    """alpha f = (alpha/m) sum_j c_j relu(a_j . (x, 1)); scaling all parameters by t scales
    f by t^2."""
    x = rng.normal(size=(5, 2))
    model = lazykit.TwoLayer(6, alpha=3.0, symmetric=False)
    params = model.init(0, 2, dtype="float64")
    a, c = np.asarray(params["a"]), np.asarray(params["c"])
    expected = 3.0 / 6 * np.maximum(np.c_[x, np.ones(5)] @ a.T, 0) @ c
    with precision("float64"):
        np.testing.assert_allclose(np.asarray(model.apply(params, x))[:, 0], expected,
                                   rtol=1e-13)
        scaled = {"a": 2.0 * params["a"], "c": 2.0 * params["c"]}
        np.testing.assert_allclose(model.apply(scaled, x), 4.0 * model.apply(params, x),
                                   rtol=1e-13)


@pytest.mark.parametrize("activation", ["relu", "erf", "tanh"])
@pytest.mark.parametrize("symmetric", [True, False])
def test_analytic_kernels_match_monte_carlo(rng, activation, symmetric):
    """E over initializations of the empirical NTK (and of g(x) g(x')) equals model.kernel.

    Both estimators are unbiased at any width for one hidden layer, so the
    derivation in lazykit/models.py (Dense(m, tau sqrt(d), tau), readout
    alpha / sqrt(m), NNGP times tau^2) is checked exactly, up to sampling error.
    """
    x = rng.normal(size=(5, 3)) / np.sqrt(3)
    model = lazykit.TwoLayer(32, activation=activation, alpha=3.0, init_scale=0.7,
                             symmetric=symmetric)
    exact = model.kernel(x)
    ntks, nngps = [], []
    for seed in range(300):
        params = model.init(seed, 3, dtype="float64")
        ntks.append(np.asarray(lazykit.empirical_ntk(model, params, x)))
        if not symmetric:
            with precision("float64"):
                out = np.asarray(model.apply(params, x))
            nngps.append(out @ out.T)
    pairs = [(np.array(ntks), exact.ntk)] + ([(np.array(nngps), exact.nngp)] if nngps else [])
    for samples, analytic in pairs:
        stderr = samples.std(0, ddof=1) / np.sqrt(len(samples))
        z = np.abs(samples.mean(0) - analytic) / np.maximum(stderr, 1e-12)
        assert z.max() < Z_MAX, z.max()


def test_kernel_is_width_independent_at_ntk_scaling(rng):
    x = rng.normal(size=(4, 2))
    small = lazykit.TwoLayer(10, alpha=np.sqrt(10)).kernel(x)
    large = lazykit.TwoLayer(1000, alpha=np.sqrt(1000)).kernel(x)
    np.testing.assert_allclose(small.ntk, large.ntk, rtol=1e-12)
    np.testing.assert_allclose(small.nngp, large.nngp, rtol=1e-12)
    diag = lazykit.TwoLayer(10, alpha=2.0).kernel(x, diagonal=True)
    np.testing.assert_allclose(diag.ntk, np.diag(lazykit.TwoLayer(10, alpha=2.0).kernel(x).ntk))


def test_network_description_is_a_lazykit_network():
    net = lazykit.TwoLayer(100, activation="erf", alpha=5.0, init_scale=0.5).network(4)
    assert isinstance(net, lazykit.Network)
    assert net.layers[0] == lazykit.Dense(100, W_std=0.5 * 2.0, b_std=0.5)
    assert net.layers[2] == lazykit.Dense(1, W_std=0.5)
