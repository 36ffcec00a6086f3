"""Gauss-Hermite quadrature against the closed forms, at the accuracy documented in
lazykit.Elementwise (two hidden layers, W_std = 1.4, b_std = 0.2, |x|^2 = d)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lazykit


def _two_layers(activation):
    return lazykit.serial(lazykit.Dense(64, 1.4, 0.2), activation, lazykit.Dense(64, 1.4, 0.2),
                          activation, lazykit.Dense(1, 1.4, 0.2))


def _unit_variance_inputs(rng, n=6, d=4):
    x = rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True) * np.sqrt(d)


def _relative_errors(k, ref):
    return tuple(np.abs(a - b).max() / np.abs(b).max() for a, b in zip(k, ref, strict=True))


@pytest.mark.parametrize("closed,fn,n_nodes,tolerance", [
    (lazykit.Monomial(2), lambda z: z**2, 8, (1e-13, 1e-13)),  # exact: degree < 2 n_nodes
    (lazykit.Erf(), jax.scipy.special.erf, 32, (1e-4, 2e-3)),
    (lazykit.Erf(), jax.scipy.special.erf, 64, (5e-8, 2e-6)),
    (lazykit.Gelu(), lambda z: jax.nn.gelu(z, approximate=False), 64, (1e-11, 1e-10)),
    (lazykit.Relu(), jax.nn.relu, 32, (2e-2, 1e-1)),
    (lazykit.Relu(), jax.nn.relu, 64, (1e-2, 5e-2)),
])
def test_quadrature_matches_closed_form(rng, closed, fn, n_nodes, tolerance):
    x = _unit_variance_inputs(rng)
    k = _two_layers(lazykit.Elementwise(fn, n_nodes=n_nodes)).kernel(x)
    errors = _relative_errors(k, _two_layers(closed).kernel(x))
    assert errors[0] <= tolerance[0] and errors[1] <= tolerance[1], errors


@pytest.mark.parametrize("name", ["tanh", "softplus", "sigmoid"])
def test_quadrature_converges_with_nodes(rng, name):
    x = _unit_variance_inputs(rng)
    kernels = {n: lazykit.mlp(2, 64, name, W_std=1.4, b_std=0.2, n_nodes=n).kernel(x)
               for n in (8, 16, 32, 96)}
    errors = [max(_relative_errors(kernels[n], kernels[96])) for n in (8, 16, 32)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 5e-3


def test_quadrature_kernel_is_symmetric_to_rounding(rng):
    """The symmetric (principal-axes) rule: even with a coarse grid K(x, y) = K(y, x)."""
    x = rng.normal(size=(9, 3))
    k = lazykit.mlp(2, 64, "tanh", n_nodes=10).kernel(x)
    np.testing.assert_allclose(k.nngp, k.nngp.T, rtol=1e-13, atol=1e-15)


def test_user_callable_and_named_quadrature_agree(rng):
    x = rng.normal(size=(5, 3))
    named = lazykit.mlp(1, 64, "tanh", n_nodes=20).kernel(x)
    custom = lazykit.mlp(1, 64, jnp.tanh, n_nodes=20).kernel(x)
    np.testing.assert_allclose(custom.ntk, named.ntk, rtol=1e-14)
