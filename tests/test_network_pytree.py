"""Network descriptions are pytrees: W_std, b_std and activation parameters are leaves.

Gradients through the public API agree with central differences; a new W_std reuses the
compiled kernel (the jitted function's cache does not grow); vmap over W_std matches one
network at a time; a deep network with different W_std per layer (the scanned path) matches
a hand-written NumPy recursion; ``get=`` computes one kernel.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lazykit
from lazykit._dtypes import precision
from lazykit.kernels import compute

X = np.random.default_rng(0).normal(size=(5, 3))


def entry(w_std, b_std, activation="erf", depth=3, kind="ntk"):
    net = lazykit.mlp(depth, activation=activation, W_std=w_std, b_std=b_std)
    return getattr(net.kernel_fn(jnp.asarray(X)), kind)[0, 1]


@pytest.mark.parametrize("activation", ["relu", "erf", "gelu"])
@pytest.mark.parametrize("depth", [2, 7])  # 7 hidden layers run the scanned path
def test_grad_wrt_w_std_and_b_std_matches_central_differences(activation, depth):
    w, b, h = 1.3, 0.2, 1e-5
    for kind in ("nngp", "ntk"):
        with precision("float64"):
            grad = jax.jit(jax.grad(entry, argnums=(0, 1)), static_argnums=(2, 3, 4))(
                w, b, activation, depth, kind)
            f = jax.jit(functools.partial(entry, activation=activation, depth=depth, kind=kind))
            central = [f(w + h, b) - f(w - h, b), f(w, b + h) - f(w, b - h)]
        for got, difference in zip(grad, central, strict=True):
            expected = float(difference) / (2 * h)
            assert abs(float(got) - expected) <= 1e-6 * abs(expected) + 1e-12, (kind, got, expected)


def test_grad_with_respect_to_the_network_pytree_includes_activation_parameters():
    net = lazykit.serial(lazykit.Dense(8, W_std=1.2, b_std=0.3), lazykit.Erf(a=1.5, b=0.7),
                         lazykit.Dense(1, W_std=0.9))
    with precision("float64"):
        x = jnp.asarray(X)
        grads = jax.grad(lambda n: n.kernel_fn(x).ntk[1, 2])(net)
        h = 1e-5

        def at(a):
            shifted = lazykit.serial(net.layers[0], lazykit.Erf(a=a, b=0.7), net.layers[2])
            return float(shifted.kernel_fn(x).ntk[1, 2])

        central = (at(1.5 + h) - at(1.5 - h)) / (2 * h)
    assert isinstance(grads, lazykit.Network)
    assert abs(float(grads.layers[1].a) - central) <= 1e-6 * abs(central)
    assert grads.layers[2].b_std is None  # no bias: part of the structure, no leaf


def test_a_new_w_std_does_not_recompile():
    x = np.random.default_rng(1).normal(size=(40, 4))
    lazykit.mlp(2, activation="erf", W_std=1.1).kernel(x)
    lazykit.mlp(2, activation="erf", W_std=1.1).kernel(x, diagonal=True)
    sizes = compute._from_moments._cache_size()
    for w in (0.7, 1.9, 2.5):
        k = lazykit.mlp(2, activation="erf", W_std=w).kernel(x)
        assert np.all(np.isfinite(k.ntk))
        lazykit.mlp(2, activation="erf", W_std=w, b_std=0.3).kernel(x, diagonal=True)
    assert compute._from_moments._cache_size() == sizes


def test_vmap_over_w_std_matches_one_network_at_a_time():
    with precision("float64"):
        ws, x = jnp.asarray([0.8, 1.4, 2.0]), jnp.asarray(X)
        batched = jax.vmap(lambda w: lazykit.mlp(6, W_std=w).kernel_fn(x).ntk)(ws)
        single = [lazykit.mlp(6, W_std=float(w)).kernel(X).ntk for w in ws]
    np.testing.assert_allclose(np.asarray(batched), np.stack(single), rtol=1e-12)


def _relu_reference(x, w_stds, b_std):
    """Hand-written NumPy NNGP/NTK recursion of a ReLU network, one W_std per Dense layer."""
    nngp = x @ x.T / x.shape[1]
    nngp = w_stds[0] ** 2 * nngp + b_std**2
    ntk = nngp.copy()
    for w in w_stds[1:]:
        d = np.sqrt(np.diag(nngp))
        rho = np.clip(nngp / np.outer(d, d), -1, 1)
        np.fill_diagonal(rho, 1.0)  # arccos amplifies the rounding of rho = 1
        theta = np.arccos(rho)
        e = np.outer(d, d) * (np.sin(theta) + (np.pi - theta) * rho) / (2 * np.pi)
        de = (np.pi - theta) / (2 * np.pi)
        nngp = w**2 * e + b_std**2
        ntk = nngp + w**2 * de * ntk
    return nngp, ntk


def test_deep_network_with_a_different_w_std_per_layer_matches_a_hand_recursion():
    w_stds = [1.0, 1.2, 1.4, 1.1, 0.9, 1.3, 1.5, 1.05, 1.25]  # 8 hidden layers: scanned
    layers = []
    for w in w_stds[:-1]:
        layers += [lazykit.Dense(64, W_std=w, b_std=0.1), lazykit.Relu()]
    net = lazykit.serial(*layers, lazykit.Dense(1, W_std=w_stds[-1], b_std=0.1))
    k = net.kernel(X)
    nngp, ntk = _relu_reference(X, w_stds, 0.1)
    np.testing.assert_allclose(k.nngp, nngp, rtol=1e-12)
    np.testing.assert_allclose(k.ntk, ntk, rtol=1e-12)


def test_get_computes_only_the_kernel_asked_for():
    net = lazykit.mlp(2, activation="erf")
    both = net.kernel(X)
    only_ntk = net.kernel(X, get="ntk")
    only_nngp = net.kernel(X, X[:2], get=("nngp",))
    diag = net.kernel(X, diagonal=True, get="nngp")
    assert only_ntk.nngp is None and only_nngp.ntk is None and diag.ntk is None
    np.testing.assert_array_equal(only_ntk.ntk, both.ntk)
    np.testing.assert_array_equal(only_nngp.nngp, both.nngp[:, :2])
    np.testing.assert_allclose(diag.nngp, np.diag(both.nngp), rtol=1e-14)
    assert only_ntk.ntk.flags.writeable


@pytest.mark.parametrize("bad", ["ntk2", ("nngp", 3), (), 5])
def test_get_names_the_argument_on_bad_values(bad):
    with pytest.raises(ValueError, match="get must be None"):
        lazykit.mlp(1).kernel(X, get=bad)


def test_tree_map_rebuilds_an_equal_description_without_validation():
    net = lazykit.mlp(2, activation=lazykit.Erf(a=2.0), W_std=1.5, b_std=0.1)
    doubled = jax.tree_util.tree_map(lambda v: 2 * v, net)
    assert doubled.layers[0].W_std == 3.0 and doubled.layers[1].a == 4.0
    assert jax.tree_util.tree_map(lambda v: v, net) == net
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(net)][:2]
    assert paths == [".layers[0].W_std", ".layers[0].b_std"]


def test_kernels_of_many_sizes_share_a_few_compiled_tile_shapes():
    net = lazykit.mlp(2, activation="erf", W_std=1.7)
    rng = np.random.default_rng(3)
    net.kernel(rng.normal(size=(65, 3)))
    sizes = compute._from_moments._cache_size()
    for n in (70, 90, 127):  # all padded to 128-row tiles
        x = rng.normal(size=(n, 3))
        full, cross = net.kernel(x), net.kernel(x, x[: n // 3])
        np.testing.assert_allclose(cross.ntk, full.ntk[:, : n // 3], rtol=1e-14)
    assert compute._from_moments._cache_size() == sizes
