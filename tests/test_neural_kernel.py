"""NeuralKernel as a scikit-learn Kernel: values, gradients, hyperparameters, uses in sklearn."""

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, WhiteKernel
from sklearn.kernel_ridge import KernelRidge
from sklearn.metrics.pairwise import pairwise_kernels
from sklearn.svm import SVC

import lazykit


@pytest.fixture
def x(rng):
    x = rng.normal(size=(12, 3))
    x[-1] = x[0]  # a duplicate: correlation exactly 1 off the diagonal too
    return x


@pytest.mark.parametrize("kind", ["ntk", "nngp"])
def test_values_are_the_networks_kernels(x, kind):
    kernel = lazykit.NeuralKernel(depth=3, activation="erf", W_std=1.7, b_std=0.3, kind=kind)
    net = lazykit.mlp(3, activation="erf", W_std=1.7, b_std=0.3)
    np.testing.assert_allclose(kernel(x), getattr(net.kernel(x), kind), rtol=1e-13)
    np.testing.assert_allclose(kernel(x, x[:4]), getattr(net.kernel(x, x[:4]), kind), rtol=1e-13)
    np.testing.assert_allclose(kernel.diag(x), np.diag(kernel(x)), rtol=1e-13)
    np.testing.assert_allclose(kernel(x, eval_gradient=True)[0], kernel(x), rtol=1e-12)
    np.testing.assert_allclose(pairwise_kernels(x, metric=kernel), kernel(x), rtol=1e-13)


@pytest.mark.parametrize("activation, depth, parameterization, kind", [
    ("relu", 1, "ntk", "ntk"), ("relu", 3, "ntk", "nngp"), ("erf", 2, "ntk", "ntk"),
    ("tanh", 2, "ntk", "nngp"), ("gelu", 2, "standard", "ntk"),
    ("leaky_relu", 2, "standard", "nngp")])
def test_gradient_matches_finite_differences(x, activation, depth, parameterization, kind):
    kernel = lazykit.NeuralKernel(depth=depth, activation=activation, W_std=1.3, b_std=0.4,
                                  parameterization=parameterization, kind=kind)
    _, gradient = kernel(x, eval_gradient=True)
    assert gradient.shape == (12, 12, 2) and np.all(np.isfinite(gradient))
    h = 1e-5
    numeric = np.stack([
        (kernel.clone_with_theta(kernel.theta + h * e)(x)
         - kernel.clone_with_theta(kernel.theta - h * e)(x)) / (2 * h)
        for e in np.eye(2)], axis=-1)
    np.testing.assert_allclose(gradient, numeric, rtol=1e-6, atol=1e-8 * np.abs(numeric).max())


def test_hyperparameters_bounds_theta_and_clone(x):
    kernel = lazykit.NeuralKernel(W_std=2.0, b_std=0.5, W_std_bounds=(0.1, 10.0))
    assert [h.name for h in kernel.hyperparameters] == ["W_std", "b_std"]
    np.testing.assert_allclose(kernel.theta, np.log([2.0, 0.5]))
    np.testing.assert_allclose(kernel.bounds, np.log([[0.1, 10.0], [1e-5, 1e2]]))
    other = kernel.clone_with_theta(np.log([1.5, 0.25]))
    assert (other.W_std, other.b_std) == pytest.approx((1.5, 0.25))
    assert clone(kernel) == kernel and other != kernel
    no_bias = lazykit.NeuralKernel(b_std=None)
    assert no_bias.theta.shape == (1,) and no_bias.hyperparameter_b_std.fixed
    assert no_bias(x, eval_gradient=True)[1].shape == (12, 12, 1)
    fixed = lazykit.NeuralKernel(W_std_bounds="fixed", b_std_bounds="fixed")
    assert fixed(x, eval_gradient=True)[1].shape == (12, 12, 0)
    assert "depth=1" in repr(kernel) and "kind='ntk'" in repr(kernel)
    assert not kernel.is_stationary() and kernel.requires_vector_input


def test_gaussian_process_maximizes_the_marginal_likelihood(rng):
    x = rng.normal(size=(40, 2))
    y = np.sin(2 * x[:, 0]) + 0.1 * rng.normal(size=40)
    start = lazykit.NeuralKernel(depth=2, W_std=0.5, b_std=1.0, kind="nngp")
    gp = GaussianProcessRegressor(ConstantKernel() * start + WhiteKernel(), random_state=0)
    gp.fit(x, y)
    fitted = gp.kernel_.k1.k2
    assert (fitted.W_std, fitted.b_std) != pytest.approx((0.5, 1.0))
    initial = gp.log_marginal_likelihood(gp.kernel.theta)
    assert gp.log_marginal_likelihood_value_ > initial + 1.0
    theta = gp.kernel_.theta
    _, gradient = gp.log_marginal_likelihood(theta, eval_gradient=True)
    h = 1e-5
    numeric = [(gp.log_marginal_likelihood(theta + h * e) - gp.log_marginal_likelihood(
        theta - h * e)) / (2 * h) for e in np.eye(len(theta))]
    np.testing.assert_allclose(gradient, numeric, rtol=1e-4, atol=1e-4)


def test_svc_and_kernel_ridge_accept_the_kernel(rng):
    x = rng.normal(size=(60, 3))
    y = (x[:, 0] * x[:, 1] > 0).astype(int)
    svc = SVC(kernel=lazykit.NeuralKernel(depth=2)).fit(x, y)
    assert svc.score(x, y) > 0.8
    kernel = lazykit.NeuralKernel(depth=2, kind="nngp")
    krr = KernelRidge(alpha=1e-3, kernel=kernel).fit(x, y)
    expected = KernelRidge(alpha=1e-3, kernel="precomputed").fit(kernel(x), y).predict(
        kernel(x[:5], x))
    np.testing.assert_allclose(krr.predict(x[:5]), expected, rtol=1e-10)


def test_diag_is_linear_in_n():
    """A full Gram of 60 000 points would need 27 GiB; the diagonal needs 1 MiB."""
    x = np.random.default_rng(0).normal(size=(60_000, 3))
    diag = lazykit.NeuralKernel(depth=2).diag(x)
    assert diag.shape == (60_000,) and np.all(diag > 0)


def test_errors_name_the_problem(x):
    with pytest.raises(ValueError, match="kind must be one of"):
        lazykit.NeuralKernel(kind="gp")(x)
    with pytest.raises(ValueError, match="Gradient can only be evaluated when Y is None"):
        lazykit.NeuralKernel()(x, x, eval_gradient=True)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        lazykit.NeuralKernel()(np.full((2, 2), np.nan))
    with pytest.raises(ValueError, match="same number of features"):
        lazykit.NeuralKernel()(x, x[:, :2])
    with pytest.raises(lazykit.InsufficientMemoryError, match="gradient on 100000 points"):
        lazykit.NeuralKernel()(np.ones((100_000, 2)), eval_gradient=True)


@pytest.mark.parametrize("params, error, message", [
    ({"depth": 0}, ValueError, "depth must be an integer >= 1; got 0"),
    ({"depth": 1.5}, TypeError, "depth must be an integer >= 1; got 1.5"),
    ({"parameterization": "nope"}, ValueError,
     r"parameterization must be one of \('ntk', 'standard'\); got 'nope'"),
    ({"W_std": -1.0}, ValueError, r"W_std must be a finite number > 0; got -1\.0"),
    ({"W_std": 0.0}, ValueError, r"W_std must be a finite number > 0; got 0\.0"),
    ({"W_std": np.nan}, ValueError, "W_std must be a finite number > 0; got nan"),
    ({"b_std": -0.1}, ValueError, r"b_std \(None or 0: no bias\) must be a finite number >= 0"),
    ({"activation": "relux"}, ValueError, "activation must be one of"),
])
def test_invalid_parameters_are_refused_before_any_kernel(x, params, error, message):
    """depth=0 gave a depth-1 kernel, "nope" the standard one, W_std=-1 an all-NaN kernel."""
    kernel = lazykit.NeuralKernel(**params)  # scikit-learn kernels store, check on use
    with pytest.raises(error, match=message):
        kernel(x)
    with pytest.raises(error, match=message):
        kernel.diag(x)
    with pytest.raises(error, match=message):
        kernel(x, eval_gradient=True)
    with pytest.raises(error, match=message):
        kernel.theta  # noqa: B018 - the log of the hyperparameters
    assert "NeuralKernel(" in repr(kernel)
    # set_params and clone bypass nothing
    with pytest.raises(error, match=message):
        lazykit.NeuralKernel().set_params(**params)(x)


def test_gaussian_process_reports_a_negative_w_std_before_any_nan(x):
    gp = GaussianProcessRegressor(lazykit.NeuralKernel(W_std=-1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no log(-1) = nan on the way
        with pytest.raises(ValueError, match=r"W_std must be a finite number > 0; got -1\.0"):
            gp.fit(x, x[:, 0])
