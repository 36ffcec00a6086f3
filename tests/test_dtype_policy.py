"""float64 by default without touching the global JAX config; float32 on request."""

import jax
import jax.numpy as jnp
import numpy as np

import lazykit


def test_default_is_float64_and_global_config_untouched(rng):
    assert not jax.config.jax_enable_x64
    x = rng.normal(size=(6, 3)).astype(np.float32)
    k = lazykit.mlp(2).kernel(x)
    assert k.nngp.dtype == np.float64 and k.ntk.dtype == np.float64
    assert not jax.config.jax_enable_x64
    assert jnp.ones(2).dtype == jnp.float32


def test_float32_on_request(rng):
    k = lazykit.mlp(2).kernel(rng.normal(size=(6, 3)), dtype="float32")
    assert k.nngp.dtype == np.float32 and k.ntk.dtype == np.float32


def test_float64_input_is_not_downcast(rng):
    """Inputs differing below float32 resolution give different float64 kernels."""
    x = rng.normal(size=(4, 3))
    y = x.copy()
    y[0, 0] += 1e-12
    net = lazykit.mlp(1)
    assert np.float32(x[0, 0]) == np.float32(y[0, 0])
    assert not np.array_equal(net.kernel(x, y).nngp, net.kernel(x, x).nngp)


def test_float32_agrees_with_float64(rng):
    x = rng.normal(size=(30, 7))
    for name in ("relu", "erf", "gelu", "abs"):
        net = lazykit.mlp(3, activation=name, W_std=1.4, b_std=0.1)
        k64, k32 = net.kernel(x), net.kernel(x, dtype="float32")
        for a, b in zip(k64, k32, strict=True):
            np.testing.assert_allclose(b, a, rtol=2e-5, atol=2e-6 * np.abs(a).max())


def test_invalid_dtype():
    import pytest

    with pytest.raises(ValueError, match="dtype"):
        lazykit.mlp(1).kernel(np.ones((2, 2)), dtype="float16")
