"""Bad input: a clear error naming the argument, what was expected and what was got."""

import numpy as np
import pytest

import lazykit


@pytest.fixture
def net():
    return lazykit.mlp(2, 64, "relu")


def test_nan_in_x(net):
    x = np.ones((3, 2))
    x[1, 0] = np.nan
    with pytest.raises(ValueError, match=r"x1 must be finite; found nan at index \(1, 0\)"):
        net.kernel(x)


def test_inf_in_x2(net):
    x2 = np.ones((3, 2))
    x2[2, 1] = np.inf
    with pytest.raises(ValueError, match="x2 must be finite; found inf"):
        net.kernel(np.ones((2, 2)), x2)


def test_mismatched_features(net):
    with pytest.raises(ValueError, match="same number of features; got 2 and 3"):
        net.kernel(np.ones((2, 2)), np.ones((2, 3)))


def test_one_dimensional_x(net):
    with pytest.raises(ValueError, match=r"x1 must be 2-D .* got an array of shape \(3,\).*"
                                         r"reshape\(-1, 1\)"):
        net.kernel(np.ones(3))


def test_empty_x(net):
    with pytest.raises(ValueError, match=r"at least one sample .* got shape \(0, 2\)"):
        net.kernel(np.ones((0, 2)))


def test_non_numeric_x(net):
    with pytest.raises(TypeError, match="x1 must hold real numbers"):
        net.kernel(np.array([["a", "b"]]))


def test_depth_zero():
    with pytest.raises(ValueError, match="depth must be an integer >= 1; got 0"):
        lazykit.mlp(0)


def test_negative_w_std():
    with pytest.raises(ValueError, match=r"W_std must be a finite number >= 0; got -1\.0"):
        lazykit.Dense(3, W_std=-1.0)
    with pytest.raises(ValueError, match="W_std"):
        lazykit.mlp(2, W_std=-0.5)


def test_unknown_activation():
    with pytest.raises(ValueError, match=r"activation must be one of .*relu.*; got 'relux'"):
        lazykit.mlp(2, activation="relux")


def test_bad_parameterization_and_width():
    with pytest.raises(ValueError, match="parameterization must be one of"):
        lazykit.Dense(3, parameterization="mup")
    with pytest.raises(ValueError, match="width must be an integer >= 1; got 0"):
        lazykit.mlp(2, width=0)


def test_layer_order():
    with pytest.raises(ValueError, match="first layer must be Dense"):
        lazykit.serial(lazykit.Relu(), lazykit.Dense(1))
    with pytest.raises(ValueError, match="both activations"):
        lazykit.serial(lazykit.Dense(4), lazykit.Relu(), lazykit.Erf(), lazykit.Dense(1))
    with pytest.raises(TypeError, match="layer 1 must be a Dense or an Activation"):
        lazykit.serial(lazykit.Dense(4), "relu")


def test_diagonal_needs_matching_rows(net):
    with pytest.raises(ValueError, match="same number of rows; got 2 and 3"):
        net.kernel(np.ones((2, 2)), np.ones((3, 2)), diagonal=True)


def test_bad_tile_size(net):
    with pytest.raises(ValueError, match="tile_size must be an integer >= 1; got 0"):
        net.kernel(np.ones((2, 2)), tile_size=0)


def test_result_too_large_is_refused_before_allocation(net):
    x = np.zeros((1_000_000, 1))
    with pytest.raises(lazykit.InsufficientMemoryError,
                       match=r"\(1000000, 1000000\) in float64 \(14901.16 GiB for the result"):
        net.kernel(x)


def test_elementwise_rejects_non_callables():
    with pytest.raises(TypeError, match="fn must be a callable"):
        lazykit.Elementwise(3.0)
    with pytest.raises(ValueError, match="n_nodes must be an integer >= 1"):
        lazykit.Elementwise(np.tanh, n_nodes=0)


@pytest.mark.parametrize("transform", ["jit", "vmap", "grad"])
def test_tracing_kernel_points_to_kernel_fn(net, transform):
    """jax.jit(net.kernel) failed with a raw TracerArrayConversionError."""
    import jax

    x = np.ones((3, 2))
    traced = {"jit": lambda: jax.jit(net.kernel)(x),
              "vmap": lambda: jax.vmap(lambda row: net.kernel(row[None]).ntk)(x),
              "grad": lambda: jax.grad(lambda s: net.kernel(s * x).ntk.sum())(1.0)}[transform]
    with pytest.raises(TypeError, match=r"Network\.kernel returns NumPy arrays and cannot be "
                                        r"traced by jax\.jit.*use net\.kernel_fn\(x1, x2\)"):
        traced()
    # the advice works: kernel_fn traces, and agrees with kernel
    np.testing.assert_allclose(jax.jit(net.kernel_fn)(x).ntk, net.kernel(x).ntk, rtol=1e-6)
