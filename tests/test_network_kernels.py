"""Properties of Network.kernel: symmetry, PSD, diagonals, tiling, parameterizations."""

import numpy as np
import pytest

import lazykit

NETWORKS = {
    "relu3": lazykit.mlp(3, 512, "relu", W_std=1.3, b_std=0.2),
    "erf2": lazykit.mlp(2, 512, "erf", W_std=1.7, b_std=0.05),
    "gelu1_std": lazykit.mlp(1, 256, "gelu", W_std=1.1, b_std=0.3, parameterization="standard"),
    "quadratic": lazykit.mlp(1, 512, "quadratic", W_std=1.0, b_std=None),
    "tanh_quadrature": lazykit.mlp(2, 128, "tanh", W_std=1.5, b_std=0.1, n_nodes=12),
}


@pytest.fixture
def data(rng):
    return rng.normal(size=(23, 5)), rng.normal(size=(11, 5))


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_symmetric_and_positive_semidefinite(name, data):
    x, _ = data
    k = NETWORKS[name].kernel(x)
    for m in k:
        np.testing.assert_allclose(m, m.T, rtol=1e-13, atol=1e-13 * np.abs(m).max())
        eigenvalues = np.linalg.eigvalsh(m)
        assert eigenvalues.min() >= -1e-10 * eigenvalues.max()


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_diagonal_equals_full_diagonal(name, data):
    x, y = data
    net = NETWORKS[name]
    full, diag = net.kernel(x), net.kernel(x, diagonal=True)
    for f, d in zip(full, diag, strict=True):
        np.testing.assert_allclose(d, np.diag(f), rtol=1e-12)
    pairs = net.kernel(x[:11], y, diagonal=True)
    cross = net.kernel(x[:11], y)
    for f, d in zip(cross, pairs, strict=True):
        np.testing.assert_allclose(d, np.diag(f), rtol=1e-12)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_x2_none_equals_x2_equal_x1_and_cross_blocks(name, data):
    x, y = data
    net = NETWORKS[name]
    both = np.concatenate([x, y])
    k_all = net.kernel(both)
    k_cross = net.kernel(x, y)
    np.testing.assert_allclose(k_all.nngp[:23, 23:], k_cross.nngp, rtol=1e-12)
    np.testing.assert_allclose(k_all.ntk[:23, 23:], k_cross.ntk, rtol=1e-12)
    np.testing.assert_allclose(net.kernel(x, x).ntk, net.kernel(x).ntk, rtol=1e-12)


@pytest.mark.parametrize("tile", [1, 4, 7, 16])
def test_tiles_give_the_same_kernel(tile, data):
    x, y = data
    net = NETWORKS["relu3"]
    for args in ((x,), (x, y)):
        reference = net.kernel(*args)
        tiled = net.kernel(*args, tile_size=tile)
        for r, t in zip(reference, tiled, strict=True):
            np.testing.assert_allclose(t, r, rtol=1e-12, atol=1e-14)


def test_parameterizations_share_the_nngp_not_the_ntk(data):
    x, _ = data
    ntk = lazykit.mlp(2, 64, "relu", W_std=1.4, b_std=0.1).kernel(x)
    std = lazykit.mlp(2, 64, "relu", W_std=1.4, b_std=0.1, parameterization="standard").kernel(x)
    np.testing.assert_allclose(std.nngp, ntk.nngp, rtol=1e-13)
    assert not np.allclose(std.ntk, ntk.ntk)


def test_standard_ntk_grows_with_width(data):
    """In the standard parameterization the NTK carries width * E[y y'] terms."""
    x, _ = data
    small = lazykit.mlp(1, 64, "relu", parameterization="standard").kernel(x).ntk
    large = lazykit.mlp(1, 4096, "relu", parameterization="standard").kernel(x).ntk
    assert np.all(np.diag(large) > np.diag(small))


def test_depth_one_relu_closed_form(data):
    """Depth-1 ReLU NNGP written out by hand (arc-cosine kernel of degree 1)."""
    x, _ = data
    w, b = 1.3, 0.2
    k = lazykit.mlp(1, 512, "relu", W_std=w, b_std=b).kernel(x)
    k1 = w**2 * x @ x.T / 5 + b**2
    norms = np.sqrt(np.diag(k1))
    rho = np.clip(k1 / np.outer(norms, norms), -1, 1)
    theta = np.arccos(rho)
    nngp = w**2 * np.outer(norms, norms) * (np.sin(theta) + (np.pi - theta) * rho) / (2 * np.pi)
    nngp += b**2
    ntk = nngp + w**2 * (np.pi - theta) / (2 * np.pi) * k1
    np.testing.assert_allclose(k.nngp, nngp, rtol=1e-12)
    np.testing.assert_allclose(k.ntk, ntk, rtol=5e-9)  # arccos' conditioning near rho = 1


def test_serial_flattens_networks_and_exposes_shapes():
    block = lazykit.serial(lazykit.Dense(8), lazykit.Relu())
    net = lazykit.serial(block, lazykit.Dense(8), lazykit.Erf(), lazykit.Dense(3))
    assert len(net.layers) == 5 and net.depth == 2 and net.output_dim == 3
    params = net.init(1, input_dim=4)
    assert net.apply(params, np.ones((2, 4))).shape == (2, 3)


def test_equal_descriptions_compare_equal_and_hash_equal():
    a = lazykit.mlp(2, 64, "relu", W_std=1.4)
    b = lazykit.mlp(2, 64, "relu", W_std=1.4)
    assert a == b and hash(a) == hash(b)
    assert a != lazykit.mlp(2, 64, "relu", W_std=1.5)
